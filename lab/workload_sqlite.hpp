#pragma once
// The lab's workload on SQLite, through the example adapter examples/backends/sqlite.hpp.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>

#include "backends/sqlite.hpp"
#include "cli.hpp"

namespace lab {

class sqlite_workload {
 public:
  using factory_type = respool_examples::sqlite::factory;
  using validator_type = respool_examples::sqlite::validator;
  using resetter_type = respool_examples::sqlite::resetter;
  using connection_type = respool_examples::sqlite::connection;

  explicit sqlite_workload(const options& o) : accounts_(o.accounts) {
    opts_.path = o.conninfo.empty() ? (o.out / "lab.db").string() : o.conninfo;
    opts_.busy_timeout = std::chrono::milliseconds(5000);
    opts_.wal = true;
    opts_.synchronous = o.synchronous;
  }

  [[nodiscard]] auto name() const -> std::string { return "SQLite"; }
  [[nodiscard]] auto describe() const -> std::string {
    return std::string("SQLite ") + sqlite3_libversion() + ", file " + opts_.path +
           ", WAL, synchronous=" + opts_.synchronous + ", busy timeout 5 s";
  }
  [[nodiscard]] auto make_factory() const -> factory_type { return factory_type{opts_}; }
  [[nodiscard]] static auto make_validator() -> validator_type { return {}; }
  [[nodiscard]] static auto make_resetter() -> resetter_type { return {}; }

  /// Recreates the tables (on a connection lent by the lab's first pool).
  void prepare(connection_type& c) const {
    c.exec("DROP TABLE IF EXISTS respool_lab_transfers");
    c.exec("DROP TABLE IF EXISTS respool_lab_accounts");
    c.exec(
        "CREATE TABLE respool_lab_accounts (id INTEGER PRIMARY KEY, owner TEXT NOT NULL, "
        "balance INTEGER NOT NULL, updated_at INTEGER NOT NULL)");
    c.exec(
        "CREATE TABLE respool_lab_transfers (id INTEGER PRIMARY KEY, from_id INTEGER NOT NULL, "
        "to_id INTEGER NOT NULL, amount INTEGER NOT NULL, at INTEGER NOT NULL)");
    c.exec("CREATE INDEX respool_lab_transfers_from ON respool_lab_transfers (from_id, id)");
    c.exec("BEGIN");
    {
      auto insert = c.prepare(
          "INSERT INTO respool_lab_accounts (id, owner, balance, updated_at) VALUES (?1, ?2, "
          "100000, 0)");
      for (std::int64_t id = 1; id <= accounts_; ++id) {
        insert.bind(1, id).bind(2, "owner-" + std::to_string(id));
        insert.run();
        insert.rewind();
      }
    }
    c.exec("COMMIT");
    c.exec("PRAGMA wal_checkpoint(TRUNCATE)");
  }

  /// The account page: the account and its last five transfers, from one snapshot.
  static void read(connection_type& c, std::int64_t id) {
    c.prepare("BEGIN").run();
    {
      auto account = c.prepare("SELECT owner, balance FROM respool_lab_accounts WHERE id = ?1");
      account.bind(1, id);
      if (!account.step()) throw std::runtime_error("account " + std::to_string(id) + " is missing");
    }
    {
      auto recent = c.prepare(
          "SELECT to_id, amount, at FROM respool_lab_transfers WHERE from_id = ?1 "
          "ORDER BY id DESC LIMIT 5");
      recent.bind(1, id);
      while (recent.step()) {
      }
    }
    c.prepare("COMMIT").run();
  }

  /// A transfer: check the balance, move the amount, record it in the ledger.
  static void write(connection_type& c, std::int64_t from, std::int64_t to, std::int64_t amount,
                    std::int64_t now) {
    // IMMEDIATE takes the write lock up front (waiting in SQLite's busy handler if another
    // connection has it), so the transaction cannot fail halfway on a lock upgrade.
    c.prepare("BEGIN IMMEDIATE").run();
    {
      auto balance = c.prepare("SELECT balance FROM respool_lab_accounts WHERE id = ?1");
      balance.bind(1, from);
      if (!balance.step()) throw std::runtime_error("account " + std::to_string(from) + " is missing");
    }
    {
      auto move = c.prepare(
          "UPDATE respool_lab_accounts SET balance = balance + ?2, updated_at = ?3 WHERE id = ?1");
      move.bind(1, from).bind(2, -amount).bind(3, now).run();
      move.rewind();
      move.bind(1, to).bind(2, amount).bind(3, now).run();
    }
    {
      auto ledger = c.prepare(
          "INSERT INTO respool_lab_transfers (from_id, to_id, amount, at) VALUES (?1, ?2, ?3, ?4)");
      ledger.bind(1, from).bind(2, to).bind(3, amount).bind(4, now).run();
    }
    c.prepare("COMMIT").run();
  }

 private:
  respool_examples::sqlite::options opts_;
  std::int64_t accounts_;
};

}  // namespace lab
