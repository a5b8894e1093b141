#pragma once
// The lab's workload on PostgreSQL, through the example adapter examples/backends/postgres.hpp.
// Without --conninfo the lab starts a PostgreSQL server of its own (as the integration tests do:
// tests/integration/support/servers.hpp), durable like a real one, and removes it afterwards.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>

#include "backends/postgres.hpp"
#include "cli.hpp"
#include "format.hpp"
#include "servers.hpp"

namespace lab {

/// A server of its own could not start (no PostgreSQL installed, initdb failed): the default
/// run falls back to SQLite; an explicit --backend postgres fails with this.
class server_unavailable : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class postgres_workload {
 public:
  using factory_type = respool_examples::pg::factory;
  using validator_type = respool_examples::pg::validator;
  using resetter_type = respool_examples::pg::resetter;
  using connection_type = respool_examples::pg::connection;

  explicit postgres_workload(const options& o) : conninfo_(o.conninfo), accounts_(o.accounts) {
    // A server that does not answer must not stall the lab: libpq's connect timeout applies
    // unless the connection string or the environment sets one.
    ::setenv("PGCONNECT_TIMEOUT", "5", 0);
    if (!conninfo_.empty()) return;
    // Room for the biggest pool and, with --unpooled, one connection per client at once.
    const auto most = std::max(o.clients, o.sizes.empty() ? std::size_t{128} : o.sizes.back());
    try {
      server_ = std::make_unique<respool_it::postgres_server>(respool_it::postgres_server::options{
          .max_connections = static_cast<int>(most + o.clients + 50),
          .fsync = true});  // a commit waits for the disk, as on any real server
    } catch (const std::exception& e) {
      throw server_unavailable(std::string("cannot start a PostgreSQL server of its own: ") + e.what());
    }
    conninfo_ = server_->conninfo();
  }

  [[nodiscard]] auto name() const -> std::string { return "PostgreSQL"; }
  [[nodiscard]] auto describe() const -> std::string {
    std::string d = "PostgreSQL";
    if (!server_version_.empty()) d += " " + server_version_;
    d += server_ ? " (its own server on 127.0.0.1:" + std::to_string(server_->port()) + ")"
                 : " (" + masked_conninfo(conninfo_) + ")";
    return d + ", resetter: rollback only";
  }
  [[nodiscard]] auto make_factory() const -> factory_type { return factory_type{conninfo_}; }
  [[nodiscard]] static auto make_validator() -> validator_type { return {}; }
  // The workload changes no session state, so returning a connection only rolls back a
  // transaction a failed request left open, as pgbench's sessions do; the adapter's default
  // (DISCARD ALL, one more round trip per request) is for code that does change it.
  [[nodiscard]] static auto make_resetter() -> resetter_type {
    return resetter_type{.mode = respool_examples::pg::session_reset::rollback_only};
  }

  void prepare(connection_type& c) {
    server_version_ = c.scalar("SHOW server_version");
    c.exec("SET client_min_messages = warning");  // no NOTICE for the first DROP IF EXISTS
    c.exec("DROP TABLE IF EXISTS respool_lab_transfers, respool_lab_accounts");
    c.exec(
        "CREATE TABLE respool_lab_accounts (id bigint PRIMARY KEY, owner text NOT NULL, "
        "balance bigint NOT NULL, updated_at bigint NOT NULL)");
    c.exec(
        "CREATE TABLE respool_lab_transfers (id bigserial PRIMARY KEY, from_id bigint NOT NULL, "
        "to_id bigint NOT NULL, amount bigint NOT NULL, at bigint NOT NULL)");
    c.exec("CREATE INDEX respool_lab_transfers_from ON respool_lab_transfers (from_id, id)");
    c.exec("INSERT INTO respool_lab_accounts SELECT g, 'owner-' || g, 100000, 0 "
           "FROM generate_series(1, " + std::to_string(accounts_) + ") AS g");
    c.exec("ANALYZE respool_lab_accounts");
  }

  /// The account page: the account and its last five transfers, in one statement (one
  /// snapshot, one round trip).
  static void read(connection_type& c, std::int64_t id) {
    const std::string key = std::to_string(id);
    auto r = c.exec_params(
        "SELECT a.owner, a.balance, (SELECT json_agg(t) FROM (SELECT to_id, amount, at FROM "
        "respool_lab_transfers WHERE from_id = a.id ORDER BY id DESC LIMIT 5) AS t) "
        "FROM respool_lab_accounts AS a WHERE a.id = $1",
        {key.c_str()});
    if (PQntuples(r.get()) != 1) throw std::runtime_error("account " + key + " is missing");
  }

  /// A transfer: lock and check the balance, move the amount, record it in the ledger. Six
  /// round trips with the connection held, as an application's transaction does.
  static void write(connection_type& c, std::int64_t from, std::int64_t to, std::int64_t amount,
                    std::int64_t now) {
    const std::string a = std::to_string(from), b = std::to_string(to),
                      x = std::to_string(amount), minus_x = std::to_string(-amount),
                      t = std::to_string(now);
    c.exec("BEGIN");
    auto balance = c.exec_params(
        "SELECT balance FROM respool_lab_accounts WHERE id = $1 FOR UPDATE", {a.c_str()});
    if (PQntuples(balance.get()) != 1) throw std::runtime_error("account " + a + " is missing");
    const char* move =
        "UPDATE respool_lab_accounts SET balance = balance + $2, updated_at = $3 WHERE id = $1";
    c.exec_params(move, {a.c_str(), minus_x.c_str(), t.c_str()});
    c.exec_params(move, {b.c_str(), x.c_str(), t.c_str()});
    c.exec_params(
        "INSERT INTO respool_lab_transfers (from_id, to_id, amount, at) VALUES ($1, $2, $3, $4)",
        {a.c_str(), b.c_str(), x.c_str(), t.c_str()});
    c.exec("COMMIT");
  }

 private:
  std::unique_ptr<respool_it::postgres_server> server_;  // declared first, so destroyed last
  std::string conninfo_;
  std::int64_t accounts_;
  std::string server_version_;
};

}  // namespace lab
