#pragma once
/**
 * A PostgreSQL (libpq) adapter for `respool::pool`: example code to copy, not part of respool's
 * headers (those use only the standard library). Needs `libpq-fe.h` and `-lpq` (Debian:
 * libpq-dev).
 *
 * - `pg::factory` opens a connection with `PQconnectdb`. A failure throws `pg::error` carrying
 *   libpq's own text (`PQerrorMessage`: "connection to server at ... failed: Connection
 *   refused", or the server's "FATAL: database ... does not exist"); the pool keeps it as the
 *   `cause()` of its error and quotes it in `what()`.
 * - `pg::validator` checks, without a round trip, that the connection is healthy and that the
 *   server has not closed it: a server that ends a backend (`pg_terminate_backend`, a restart,
 *   `idle_session_timeout`) sends a FATAL message and closes the socket, so bytes waiting on an
 *   idle connection (`recv` with MSG_PEEK | MSG_DONTWAIT) mean it is gone. Then, unless `round_trip` is off, `SELECT 1` with a deadline catches what the
 *   socket cannot show (a peer that vanished without closing). Every step is bounded by
 *   `timeout`: a validator must never hang the caller.
 * - `pg::resetter` rolls back a transaction left open (`PQtransactionStatus`, free: no round
 *   trip when idle), then cleans session state per `mode`:
 *     - `discard_all` (the default): `DISCARD ALL` drops everything a session can accumulate —
 *       `SET` parameters, temporary tables, prepared statements, cursors, `LISTEN`s, advisory
 *       locks, cached plans and sequence state. Nothing one user did can leak into the next
 *       user's session. It costs one round trip per return.
 *     - `reset_all`: `RESET ALL` restores run-time parameters only; keeps prepared statements
 *       (for code that prepares once per connection) but not the other guarantees.
 *     - `rollback_only`: no round trip at all when the connection comes back idle; for code that
 *       never changes session state (this is what `pgbench` measures).
 *   DISCARD ALL is the default because a pool's first duty is that users do not see each
 *   other's state; the others are opt-in speedups for code that knows what it does.
 *   A connection that is broken, busy with a query or in an unknown state is not reset but
 *   destroyed (`false`).
 *
 * Recommended pool options for a service that must ride out server restarts: validate every
 * borrow (`validate_after_idle = 0ms`: the socket check is one `recv` with MSG_PEEK; turn
 * `round_trip` off if a `SELECT 1` per borrow is too dear) and keep `acquire_timeout` short.
 *
 * **Example**:
 * ```cpp
 * namespace pg = respool_examples::pg;
 * respool::pool db{pg::factory{"host=127.0.0.1 dbname=app"},
 *                  respool::pool_options{.max_size = 4, .validate_after_idle = 0ms},
 *                  pg::validator{}, pg::resetter{}};
 * auto conn = db.acquire();
 * auto r = conn->exec_params("SELECT name FROM users WHERE id = $1", {"42"});
 * std::puts(PQgetvalue(r.get(), 0, 0));
 * ```
 */
#include <libpq-fe.h>
#include <poll.h>
#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstddef>
#include <initializer_list>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace respool_examples::pg {

/// A failed connect or query; `what()` is libpq's (and so the server's) own message.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

namespace detail {
struct conn_closer {
  void operator()(PGconn* c) const noexcept { PQfinish(c); }
};
struct result_clearer {
  void operator()(PGresult* r) const noexcept { PQclear(r); }
};

/// libpq's message without its trailing newline.
inline auto message_of(const char* text) -> std::string {
  std::string s = text != nullptr ? text : "";
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

using clock = std::chrono::steady_clock;

/// Waits until the socket is readable or the deadline passes; false on timeout or error.
inline auto wait_readable(int fd, clock::time_point deadline) -> bool {
  for (int tries = 0; tries < 1000; ++tries) {  // EINTR retries, bounded
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    const int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) return false;
  }
  return false;
}

/// Runs `sql` and reads every result before `timeout` passes. True if all succeeded. On a
/// timeout the connection is left mid-query: the caller must discard it (validator and resetter
/// return false, and the pool destroys it).
inline auto exec_bounded(PGconn* c, const char* sql, std::chrono::milliseconds timeout) -> bool {
  const auto deadline = clock::now() + timeout;
  if (PQsendQuery(c, sql) == 0) return false;
  bool ok = true;
  for (int results = 0; results < 64; ++results) {  // a statement list has a few results
    while (PQisBusy(c) != 0) {
      if (!wait_readable(PQsocket(c), deadline)) return false;
      if (PQconsumeInput(c) == 0) return false;
    }
    PGresult* r = PQgetResult(c);
    if (r == nullptr) return ok && PQstatus(c) == CONNECTION_OK;
    const auto st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) ok = false;
    PQclear(r);
  }
  return false;
}
}  // namespace detail

/// A query result; cleared on destruction.
using result = std::unique_ptr<PGresult, detail::result_clearer>;

/// One connection. Move-only; closed (`PQfinish`) on destruction.
class connection {
 public:
  explicit connection(PGconn* c) noexcept : c_(c) {}

  [[nodiscard]] auto get() const noexcept -> PGconn* { return c_.get(); }
  [[nodiscard]] auto ok() const noexcept -> bool { return PQstatus(c_.get()) == CONNECTION_OK; }
  /// The server process serving this connection (stable for its lifetime).
  [[nodiscard]] auto backend_pid() const noexcept -> int { return PQbackendPID(c_.get()); }

  /// Runs SQL with the simple protocol (one or more statements, no parameters). Throws `error`
  /// with the server's message unless the last statement succeeded.
  auto exec(const char* sql) -> result {
    result r(PQexec(c_.get(), sql));
    check(r.get());
    return r;
  }
  auto exec(const std::string& sql) -> result { return exec(sql.c_str()); }

  /// Runs one statement with text parameters `$1, $2, ...` (never spliced into the SQL).
  auto exec_params(const char* sql, std::initializer_list<const char*> params) -> result {
    const std::vector<const char*> values(params);
    result r(PQexecParams(c_.get(), sql, static_cast<int>(values.size()), nullptr, values.data(),
                          nullptr, nullptr, 0));
    check(r.get());
    return r;
  }

  /// The first column of the first row as text ("" if there is no row).
  auto scalar(const char* sql) -> std::string {
    auto r = exec(sql);
    if (PQntuples(r.get()) == 0 || PQnfields(r.get()) == 0) return {};
    return PQgetvalue(r.get(), 0, 0);
  }

 private:
  void check(PGresult* r) const {
    const auto st = r != nullptr ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK || st == PGRES_EMPTY_QUERY) return;
    const char* text = r != nullptr ? PQresultErrorMessage(r) : nullptr;
    throw error(detail::message_of(text != nullptr && *text != '\0' ? text
                                                                     : PQerrorMessage(c_.get())));
  }

  std::unique_ptr<PGconn, detail::conn_closer> c_;
};

/// The pool's factory: `PQconnectdb(conninfo)`. Throws `error` with libpq's message.
/// Put `connect_timeout=N` in the conninfo so a server that does not answer cannot stall the
/// pool's creator thread for long.
struct factory {
  std::string conninfo;

  [[nodiscard]] auto create() const -> connection {
    PGconn* raw = PQconnectdb(conninfo.c_str());
    if (raw == nullptr) throw error("PQconnectdb: out of memory");
    connection c(raw);  // owns it from here, closed on the throw below too
    if (PQstatus(raw) != CONNECTION_OK) throw error(detail::message_of(PQerrorMessage(raw)));
    return c;
  }
};

/// The pool's validator (see the top of this file).
struct validator {
  /// Also send `SELECT 1` (one round trip) after the socket check.
  bool round_trip = true;
  /// Bound on the round trip.
  std::chrono::milliseconds timeout{2000};

  auto validate(connection& c) const noexcept -> bool {
    PGconn* conn = c.get();
    if (PQstatus(conn) != CONNECTION_OK || PQtransactionStatus(conn) != PQTRANS_IDLE) return false;
    if (PQisBusy(conn) != 0) return false;
    // An idle connection has nothing to read unless the server spoke, and when it speaks
    // unasked it is nearly always to say goodbye: a FATAL ("terminating connection due to
    // administrator command") just before it closes. That message arrives before the close does,
    // so the only race-free reading is: any byte waiting here fails the connection. (Notices and
    // NOTIFYs for a LISTEN left behind would fail it too; a new connection is cheap next to a
    // caller receiving a dead one.)
    char byte = 0;
    const auto n = ::recv(PQsocket(conn), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0) return false;  // 0: closed by the server; > 0: unsolicited data
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (!round_trip) return true;
    return detail::exec_bounded(conn, "SELECT 1", timeout);
  }
};

/// What `resetter` cleans (see the top of this file).
enum class session_reset { discard_all, reset_all, rollback_only };

/// The pool's resetter (see the top of this file).
struct resetter {
  session_reset mode = session_reset::discard_all;
  /// Bound on each statement it sends.
  std::chrono::milliseconds timeout{2000};

  auto reset(connection& c) const noexcept -> bool {
    PGconn* conn = c.get();
    if (PQstatus(conn) != CONNECTION_OK || PQisBusy(conn) != 0) return false;
    switch (PQtransactionStatus(conn)) {
      case PQTRANS_IDLE: break;
      case PQTRANS_INTRANS:
      case PQTRANS_INERROR:
        if (!detail::exec_bounded(conn, "ROLLBACK", timeout)) return false;
        break;
      default: return false;  // a query still running, or the state is unknown
    }
    if (PQtransactionStatus(conn) != PQTRANS_IDLE) return false;
    switch (mode) {
      case session_reset::discard_all: return detail::exec_bounded(conn, "DISCARD ALL", timeout);
      case session_reset::reset_all: return detail::exec_bounded(conn, "RESET ALL", timeout);
      case session_reset::rollback_only: return true;
    }
    return false;
  }
};

}  // namespace respool_examples::pg
