#pragma once
/**
 * A SQLite adapter for `respool::pool`: example code to copy, not part of respool's headers
 * (those use only the standard library). Needs `sqlite3.h` and `-lsqlite3` (Debian:
 * libsqlite3-dev).
 *
 * - `sqlite::factory` opens a file database: read-write, created if missing, in WAL mode (readers
 *   never block the writer, nor it them) with `synchronous=NORMAL` and a busy timeout, so a
 *   connection that meets the write lock waits for it instead of failing at once.
 * - `sqlite::validator` runs `SELECT 1` (the pool calls it only after `validate_after_idle`).
 * - `sqlite::resetter` resets every statement still running and rolls back a transaction left
 *   open (a request that threw between BEGIN and COMMIT), so the next holder starts clean and the
 *   write lock is not held by a connection sitting idle in the pool.
 * - `sqlite::connection` keeps its prepared statements: `prepare(sql)` compiles a statement once
 *   per connection and hands it out again afterwards, which matters because compiling costs as
 *   much as running a simple query.
 *
 * Each connection is opened with `SQLITE_OPEN_NOMUTEX`: the pool lends it to one thread at a
 * time, so SQLite's per-connection mutex would only cost.
 *
 * **Example**:
 * ```cpp
 * namespace sq = respool_examples::sqlite;
 * respool::pool db{sq::factory{{.path = "app.db"}}, respool::pool_options{.max_size = 4},
 *                  sq::validator{}, sq::resetter{}};
 * {
 *   auto conn = db.acquire();
 *   auto q = conn->prepare("SELECT balance FROM accounts WHERE id = ?1");
 *   q.bind(1, std::int64_t{42});
 *   if (q.step()) std::printf("%lld\n", static_cast<long long>(q.column_int64(0)));
 * }  // the statement was reset when `q` went away; the lease returns the connection
 * ```
 */
#include <sqlite3.h>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>

namespace respool_examples::sqlite {

/// A failed SQLite call: `code()` is SQLite's (extended) result code, `what()` says which call
/// failed and SQLite's message.
class error : public std::runtime_error {
 public:
  error(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  [[nodiscard]] auto code() const noexcept -> int { return code_; }
  /// The database stayed locked by another connection beyond the busy timeout.
  [[nodiscard]] auto busy() const noexcept -> bool {
    return (code_ & 0xff) == SQLITE_BUSY || (code_ & 0xff) == SQLITE_LOCKED;
  }

 private:
  int code_;
};

/// How `factory` opens connections.
struct options {
  /// The database file; created if missing.
  std::string path;
  /// How long a statement waits for a lock another connection holds before failing with
  /// SQLITE_BUSY (SQLite sleeps and retries meanwhile).
  std::chrono::milliseconds busy_timeout{5000};
  /// Write-ahead logging: readers and the one writer do not block each other. Persistent in the
  /// file once set.
  bool wal = true;
  /// `PRAGMA synchronous`: NORMAL is durable across application crashes and, in WAL mode, safe
  /// from corruption on power loss (a last few commits may roll back). FULL syncs every commit.
  std::string synchronous = "NORMAL";
  /// Prepared statements kept per connection; statements beyond this are compiled on each use.
  std::size_t statement_cache_size = 64;
};

namespace detail {
struct db_closer {
  void operator()(sqlite3* db) const noexcept { sqlite3_close_v2(db); }
};
struct stmt_finalizer {
  void operator()(sqlite3_stmt* s) const noexcept { sqlite3_finalize(s); }
};
using db_ptr = std::unique_ptr<sqlite3, db_closer>;
using stmt_ptr = std::unique_ptr<sqlite3_stmt, stmt_finalizer>;

[[noreturn]] inline void fail(sqlite3* db, int rc, std::string_view doing) {
  std::string what = "sqlite: ";
  what += doing;
  what += ": ";
  what += db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
  throw error(db != nullptr ? sqlite3_extended_errcode(db) : rc, what);
}
}  // namespace detail

/**
 * A prepared statement lent by `connection::prepare`. Bind parameters (1-based), `step()` through
 * the rows, read columns (0-based). Move-only; when it goes away the statement is reset and its
 * bindings cleared, so it holds no read snapshot and can be lent again.
 */
class statement {
 public:
  statement() = default;
  statement(statement&& other) noexcept
      : db_(std::exchange(other.db_, nullptr)),
        stmt_(std::exchange(other.stmt_, nullptr)),
        owned_(std::move(other.owned_)),
        in_use_(std::exchange(other.in_use_, nullptr)) {}
  auto operator=(statement&& other) noexcept -> statement& {
    if (this != &other) {
      release();
      db_ = std::exchange(other.db_, nullptr);
      stmt_ = std::exchange(other.stmt_, nullptr);
      owned_ = std::move(other.owned_);
      in_use_ = std::exchange(other.in_use_, nullptr);
    }
    return *this;
  }
  statement(const statement&) = delete;
  auto operator=(const statement&) -> statement& = delete;
  ~statement() { release(); }

  auto bind(int index, std::int64_t value) -> statement& {
    check(sqlite3_bind_int64(stmt_, index, value), "bind");
    return *this;
  }
  auto bind(int index, double value) -> statement& {
    check(sqlite3_bind_double(stmt_, index, value), "bind");
    return *this;
  }
  /// Binds a copy of the text (SQLITE_TRANSIENT): `value` may go away after the call.
  auto bind(int index, std::string_view value) -> statement& {
    check(sqlite3_bind_text64(stmt_, index, value.data(), value.size(), SQLITE_TRANSIENT,
                              SQLITE_UTF8),
          "bind");
    return *this;
  }
  auto bind_null(int index) -> statement& {
    check(sqlite3_bind_null(stmt_, index), "bind");
    return *this;
  }

  /// Advances to the next row: `true` when there is one, `false` when done. Throws `error`
  /// (`busy()` when the busy timeout ran out).
  auto step() -> bool {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    detail::fail(db_, rc, sqlite3_sql(stmt_));
  }
  /// Runs to completion, ignoring rows (INSERT, UPDATE, BEGIN, ...).
  void run() {
    while (step()) {
    }
  }
  /// Rewinds the statement so it can run again, keeping its bindings (a loop of INSERTs).
  void rewind() noexcept { sqlite3_reset(stmt_); }

  [[nodiscard]] auto column_int64(int column) const noexcept -> std::int64_t {
    return sqlite3_column_int64(stmt_, column);
  }
  [[nodiscard]] auto column_double(int column) const noexcept -> double {
    return sqlite3_column_double(stmt_, column);
  }
  [[nodiscard]] auto column_text(int column) const noexcept -> std::string_view {
    const auto* text = sqlite3_column_text(stmt_, column);
    if (text == nullptr) return {};
    return {reinterpret_cast<const char*>(text),
            static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column))};
  }
  [[nodiscard]] auto get() const noexcept -> sqlite3_stmt* { return stmt_; }

 private:
  friend class connection;
  statement(sqlite3* db, sqlite3_stmt* cached, bool* in_use) noexcept
      : db_(db), stmt_(cached), in_use_(in_use) {}
  statement(sqlite3* db, detail::stmt_ptr owned) noexcept
      : db_(db), stmt_(owned.get()), owned_(std::move(owned)) {}

  void check(int rc, std::string_view doing) const {
    if (rc != SQLITE_OK) detail::fail(db_, rc, doing);
  }
  void release() noexcept {
    if (stmt_ == nullptr) return;
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
    if (in_use_ != nullptr) *in_use_ = false;
    stmt_ = nullptr;
    in_use_ = nullptr;
    owned_.reset();
  }

  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
  detail::stmt_ptr owned_;  // a statement compiled for one use (cache full, or cached one busy)
  bool* in_use_ = nullptr;  // the cache entry's flag, for a cached statement
};

/// One open database connection with its statement cache. Movable, not copyable; closes on
/// destruction (statements first).
class connection {
 public:
  /// Opens and configures a connection; throws `error` (a missing directory, a file that is
  /// not a database, a database locked while switching to WAL beyond the busy timeout).
  explicit connection(const options& opts) : cache_limit_(opts.statement_cache_size) {
    sqlite3* raw = nullptr;
    const int rc = sqlite3_open_v2(opts.path.c_str(), &raw,
                                   SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                   nullptr);
    db_.reset(raw);  // even a failed open allocates a handle (to carry the message)
    if (rc != SQLITE_OK) detail::fail(db_.get(), rc, "opening '" + opts.path + "'");
    sqlite3_extended_result_codes(db_.get(), 1);
    const auto busy_ms = opts.busy_timeout.count();
    sqlite3_busy_timeout(db_.get(), busy_ms > 0x7fffffff ? 0x7fffffff : static_cast<int>(busy_ms));
    if (opts.wal) {
      // Answers with the mode now in force; an in-memory database, for one, stays "memory".
      auto q = prepare_uncached("PRAGMA journal_mode=WAL");
      if (q.step() && q.column_text(0) != "wal" && opts.path != ":memory:") {
        throw error(SQLITE_ERROR, "sqlite: '" + opts.path + "' refused WAL mode (journal_mode=" +
                                      std::string(q.column_text(0)) + ")");
      }
    }
    exec("PRAGMA synchronous=" + opts.synchronous);
  }

  connection(connection&&) noexcept = default;
  auto operator=(connection&&) noexcept -> connection& = default;
  connection(const connection&) = delete;
  auto operator=(const connection&) -> connection& = delete;
  ~connection() = default;

  [[nodiscard]] auto get() const noexcept -> sqlite3* { return db_.get(); }

  /// The statement for `sql`, compiled on first use and cached. If the cached one is still lent
  /// out (a nested use of the same SQL), a fresh one is compiled for this use.
  auto prepare(const std::string& sql) -> statement {
    if (auto it = cache_.find(sql); it != cache_.end()) {
      if (!it->second.in_use) {
        it->second.in_use = true;
        return statement(db_.get(), it->second.stmt.get(), &it->second.in_use);
      }
      return prepare_uncached(sql);
    }
    if (cache_.size() >= cache_limit_) return prepare_uncached(sql);
    detail::stmt_ptr compiled = compile(sql);
    auto [it, inserted] = cache_.emplace(sql, cached{std::move(compiled), true});
    (void)inserted;
    return statement(db_.get(), it->second.stmt.get(), &it->second.in_use);
  }

  /// Runs one or more statements without results (DDL, PRAGMA, BEGIN/COMMIT written inline).
  void exec(const std::string& sql) {
    char* message = nullptr;
    const int rc = sqlite3_exec(db_.get(), sql.c_str(), nullptr, nullptr, &message);
    if (rc != SQLITE_OK) {
      std::string what = "sqlite: " + sql + ": " + (message != nullptr ? message : sqlite3_errstr(rc));
      sqlite3_free(message);
      throw error(sqlite3_extended_errcode(db_.get()), what);
    }
  }

  /// True between BEGIN and COMMIT/ROLLBACK.
  [[nodiscard]] auto in_transaction() const noexcept -> bool {
    return sqlite3_get_autocommit(db_.get()) == 0;
  }
  /// Statements compiled and kept in this connection's cache.
  [[nodiscard]] auto cached_statements() const noexcept -> std::size_t { return cache_.size(); }

  /// Resets every statement of this connection that is still running (holding a read snapshot
  /// or a lock). The resetter calls this before the connection goes back to the pool.
  void reset_statements() noexcept {
    for (sqlite3_stmt* s = sqlite3_next_stmt(db_.get(), nullptr); s != nullptr;
         s = sqlite3_next_stmt(db_.get(), s)) {
      if (sqlite3_stmt_busy(s) != 0) sqlite3_reset(s);
    }
  }

 private:
  struct cached {
    detail::stmt_ptr stmt;
    bool in_use = false;
  };

  auto compile(const std::string& sql) -> detail::stmt_ptr {
    sqlite3_stmt* raw = nullptr;
    const int rc = sqlite3_prepare_v3(db_.get(), sql.data(), static_cast<int>(sql.size()),
                                      SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    detail::stmt_ptr s(raw);
    if (rc != SQLITE_OK) detail::fail(db_.get(), rc, "preparing '" + sql + "'");
    if (!s) throw error(SQLITE_MISUSE, "sqlite: '" + sql + "' holds no statement");
    return s;
  }
  auto prepare_uncached(const std::string& sql) -> statement {
    return statement(db_.get(), compile(sql));
  }

  // Declared first, destroyed last: the cached statements are finalized before the close.
  detail::db_ptr db_;
  std::unordered_map<std::string, cached> cache_;
  std::size_t cache_limit_;
};

/// The pool's factory: opens a connection per `create()`.
struct factory {
  options opts;
  [[nodiscard]] auto create() const -> connection { return connection(opts); }
};

/// The pool's validator: `SELECT 1` through the statement cache. False (the pool then destroys
/// the connection) if it fails, for instance because the file was deleted or became corrupt.
struct validator {
  auto validate(connection& c) const noexcept -> bool {
    try {
      auto q = c.prepare("SELECT 1");
      return q.step() && q.column_int64(0) == 1;
    } catch (...) {
      return false;
    }
  }
};

/// The pool's resetter: resets running statements and rolls back an open transaction. False
/// (destroy the connection) only if the rollback itself fails.
struct resetter {
  auto reset(connection& c) const noexcept -> bool {
    c.reset_statements();
    if (!c.in_transaction()) return true;
    try {
      c.exec("ROLLBACK");
    } catch (...) {
      return false;
    }
    return !c.in_transaction();
  }
};

}  // namespace respool_examples::sqlite
