#pragma once
// The lab's workload on MySQL / MariaDB, through the example adapter examples/backends/mysql.hpp.
// Without --conninfo the lab starts a MariaDB server of its own (as the integration tests do:
// tests/integration/support/servers.hpp), durable like a real one, and removes it afterwards.
#include <algorithm>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "backends/mysql.hpp"
#include "cli.hpp"
#include "format.hpp"
#include "servers.hpp"

namespace lab {

class mysql_workload {
 public:
  using factory_type = respool_examples::mysql::factory;
  using validator_type = respool_examples::mysql::validator;
  using resetter_type = respool_examples::mysql::resetter;
  using connection_type = respool_examples::mysql::connection;

  explicit mysql_workload(const options& o) : accounts_(o.accounts) {
    std::string conninfo = o.conninfo;
    if (conninfo.empty()) {
      // Room for the biggest pool and, with --unpooled, one connection per client at once.
      const auto most = std::max(o.clients, o.sizes.empty() ? std::size_t{128} : o.sizes.back());
      server_ = std::make_unique<respool_it::mariadb_server>(respool_it::mariadb_server::options{
          .max_connections = static_cast<int>(most + o.clients + 50),
          .durable = true,  // a commit waits for the disk, as on any real server
          .buffer_pool_mb = 128});
      conninfo = server_->conninfo();
    }
    try {
      opts_ = respool_examples::mysql::options::parse(conninfo);
    } catch (const std::invalid_argument& e) {
      throw usage_error(std::string("--conninfo: ") + e.what());
    }
    where_ = server_ ? "its own server on 127.0.0.1:" + std::to_string(server_->port())
                     : masked_conninfo(conninfo);
  }

  [[nodiscard]] auto name() const -> std::string { return "MySQL"; }
  [[nodiscard]] auto describe() const -> std::string {
    return (server_version_.empty() ? "MySQL" : server_version_) + " (" + where_ +
           "), resetter: rollback only";
  }
  [[nodiscard]] auto make_factory() const -> factory_type { return factory_type{opts_}; }
  [[nodiscard]] static auto make_validator() -> validator_type { return {}; }
  // The workload changes no session state: returning a connection only rolls back what a
  // failed request left open (free when it comes back clean). The adapter's default,
  // mysql_reset_connection, costs a round trip per request.
  [[nodiscard]] static auto make_resetter() -> resetter_type {
    return resetter_type{.mode = respool_examples::mysql::session_reset::rollback_only};
  }

  void prepare(connection_type& c) {
    server_version_ = c.server_version();
    c.exec("DROP TABLE IF EXISTS respool_lab_transfers, respool_lab_accounts");
    c.exec(
        "CREATE TABLE respool_lab_accounts (id BIGINT PRIMARY KEY, owner VARCHAR(64) NOT NULL, "
        "balance BIGINT NOT NULL, updated_at BIGINT NOT NULL) ENGINE=InnoDB");
    c.exec(
        "CREATE TABLE respool_lab_transfers (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
        "from_id BIGINT NOT NULL, to_id BIGINT NOT NULL, amount BIGINT NOT NULL, "
        "at BIGINT NOT NULL, KEY respool_lab_transfers_from (from_id, id)) ENGINE=InnoDB");
    c.exec("START TRANSACTION");
    constexpr std::int64_t batch = 1000;
    for (std::int64_t first = 1; first <= accounts_; first += batch) {
      std::string sql = "INSERT INTO respool_lab_accounts VALUES ";
      for (std::int64_t id = first; id < first + batch && id <= accounts_; ++id) {
        const auto n = std::to_string(id);
        sql += (id == first ? "(" : ",(") + n + ", 'owner-" + n + "', 100000, 0)";
      }
      c.exec(sql);
    }
    c.exec("COMMIT");
    c.exec("ANALYZE TABLE respool_lab_accounts, respool_lab_transfers");
  }

  /// The account page: the account joined with its last five transfers, in one statement (one
  /// snapshot, one round trip).
  static void read(connection_type& c, std::int64_t id) {
    auto r = c.query(
        "SELECT a.owner, a.balance, t.to_id, t.amount, t.at FROM respool_lab_accounts AS a "
        "LEFT JOIN respool_lab_transfers AS t ON t.from_id = a.id WHERE a.id = " +
        std::to_string(id) + " ORDER BY t.id DESC LIMIT 5");
    if (mysql_num_rows(r.get()) == 0)
      throw std::runtime_error("account " + std::to_string(id) + " is missing");
  }

  /// A transfer: lock and check the balance, move the amount, record it in the ledger. Six
  /// round trips with the connection held, as an application's transaction does.
  static void write(connection_type& c, std::int64_t from, std::int64_t to, std::int64_t amount,
                    std::int64_t now) {
    const std::string a = std::to_string(from), b = std::to_string(to), x = std::to_string(amount),
                      t = std::to_string(now);
    c.exec("START TRANSACTION");
    if (c.scalar("SELECT balance FROM respool_lab_accounts WHERE id = " + a + " FOR UPDATE").empty())
      throw std::runtime_error("account " + a + " is missing");
    c.exec("UPDATE respool_lab_accounts SET balance = balance - " + x + ", updated_at = " + t +
           " WHERE id = " + a);
    c.exec("UPDATE respool_lab_accounts SET balance = balance + " + x + ", updated_at = " + t +
           " WHERE id = " + b);
    c.exec("INSERT INTO respool_lab_transfers (from_id, to_id, amount, at) VALUES (" + a + ", " +
           b + ", " + x + ", " + t + ")");
    c.exec("COMMIT");
  }

 private:
  std::unique_ptr<respool_it::mariadb_server> server_;  // declared first, so destroyed last
  respool_examples::mysql::options opts_;
  std::string where_;
  std::int64_t accounts_;
  std::string server_version_;
};

}  // namespace lab
