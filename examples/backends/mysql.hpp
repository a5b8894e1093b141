#pragma once
/**
 * A MySQL / MariaDB adapter for `respool::pool` on the MySQL C API as MariaDB Connector/C
 * provides it (Debian: libmariadb-dev; `mysql.h`, `-lmariadb`; it speaks to MySQL servers too):
 * example code to copy, not part of respool's headers (those use only the standard library).
 *
 * - `mysql::factory` connects with `mysql_real_connect`, bounded by a connect timeout, and sets
 *   read and write timeouts, so that no call on the connection can hang longer. Automatic
 *   reconnection stays off: a reconnect would silently drop the session (and a transaction)
 *   under the caller; the pool must see a dead connection as dead. A failure throws
 *   `mysql::error` carrying the server's (or the client library's) own code, SQLSTATE and text:
 *   "ERROR 1045 (28000): Access denied for user ...", "ERROR 1049 (42000): Unknown database
 *   ...", "ERROR 2002 (HY000): Can't connect to server on '127.0.0.1' (115)", and where it was
 *   connecting to; the pool keeps it as the `cause()` of its error and quotes it in `what()`.
 * - `mysql::validator` checks, without a round trip, that the client is not in the middle of a
 *   result and that the server has not closed the connection: a server that ends one
 *   (`wait_timeout`, `KILL`, a restart) closes the socket, and MySQL 8 first sends an error
 *   packet, so on an idle connection end-of-file or any byte waiting (`recv` with MSG_PEEK |
 *   MSG_DONTWAIT) means it is gone. One system call, ~0.1-0.2 µs: cheap enough for every borrow.
 *   `mysql_ping` (COM_PING) is a full round trip (~60-80 µs on loopback, far more over a
 *   network) that also catches what no socket check can see (a host that vanished without
 *   closing, a middlebox that dropped an idle flow): `ping_after_idle` adds it for connections
 *   unused for at least that long (0: on every validation).
 * - `mysql::resetter` cleans the session when a connection comes back, per `mode`:
 *     - `reset_connection` (the default): `mysql_reset_connection` (COM_RESET_CONNECTION) drops
 *       all session state — user variables, temporary tables, prepared statements, an open
 *       transaction (rolled back), table locks, `SET SESSION` variables including `autocommit`
 *       and `sql_mode` — without re-authenticating or reconnecting: one round trip per return.
 *       MariaDB restores the character set the connection was opened with; the client
 *       library's own record of it (used by `mysql_real_escape_string`) is re-synchronised
 *       if a `SET NAMES` changed it (a second round trip, only then). On MySQL servers, whose
 *       reset restores the server's global character set, it is always re-set.
 *     - `rollback_only`: a `ROLLBACK` when the connection comes back inside a transaction (the
 *       server reports it in every reply: known without a round trip), with `autocommit` off,
 *       or after a failed statement; `SET autocommit=1` if it was off. No round trip at all for
 *       a connection that comes back clean. User variables, temporary tables and session
 *       variables survive: for code that changes no session state.
 *   reset_connection is the default because a pool's first duty is that users do not see each
 *   other's state. A connection that is lost or in the middle of a result is not reset but
 *   destroyed (`false`).
 *
 * Recommended pool options: validate every borrow (`validate_after_idle = 0ms`: the socket check
 * is one `recv`), or at least after less idle time than the server's `wait_timeout`; or retire
 * idle connections before the server does (`idle_timeout` below `wait_timeout`).
 *
 * **Example**:
 * ```cpp
 * namespace my = respool_examples::mysql;
 * respool::pool db{my::factory{my::options::parse("host=127.0.0.1 user=app password=... database=app")},
 *                  respool::pool_options{.max_size = 4, .validate_after_idle = 0ms},
 *                  my::validator{}, my::resetter{}};
 * auto conn = db.acquire();
 * std::puts(conn->scalar("SELECT name FROM users WHERE id = " + conn->quote("42")).c_str());
 * ```
 */
#include <mysql.h>
#include <sys/socket.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>

namespace respool_examples::mysql {

/// A failed connect or statement: the server's (or the client library's) error number,
/// SQLSTATE and message. `what()` reads like the `mariadb` client's errors:
/// "ERROR 1146 (42S02): Table 'app.nope' doesn't exist".
class error : public std::runtime_error {
 public:
  error(unsigned code, std::string sqlstate, std::string message, const std::string& context = {})
      : std::runtime_error(format(code, sqlstate, message, context)),
        code_(code),
        sqlstate_(std::move(sqlstate)),
        message_(std::move(message)) {}

  /// `mysql_errno`: a server error (1000-1999, 3000+) or a client one (2000-2999).
  [[nodiscard]] auto code() const noexcept -> unsigned { return code_; }
  /// `mysql_sqlstate`: five characters, "HY000" when there is no better one.
  [[nodiscard]] auto sqlstate() const -> const std::string& { return sqlstate_; }
  /// `mysql_error`: the server's or the library's own words, nothing added.
  [[nodiscard]] auto message() const -> const std::string& { return message_; }
  /// The connection is gone: lost during a statement, gone between statements, or never made.
  [[nodiscard]] auto connection_lost() const noexcept -> bool {
    return code_ == 2002 || code_ == 2003 || code_ == 2006 || code_ == 2013 || code_ == 2055;
  }

 private:
  static auto format(unsigned code, const std::string& state, const std::string& message,
                     const std::string& context) -> std::string {
    std::string s = "ERROR " + std::to_string(code) + " (" + state + "): " + message;
    if (!context.empty()) s += "; " + context;
    return s;
  }

  unsigned code_;
  std::string sqlstate_;
  std::string message_;
};

/// How `factory` connects. `parse` reads them from a "key=value ..." string.
struct options {
  std::string host = "127.0.0.1";
  unsigned port = 3306;
  /// A Unix socket path; used instead of TCP when set (or when host is "localhost").
  std::string unix_socket;
  std::string user;
  std::string password;
  /// The default database (schema); empty: none.
  std::string database;
  /// The session's character set, restored by the resetter.
  std::string charset = "utf8mb4";
  /// Bounds on connecting, and on each read and write on the connection (the C API counts
  /// whole seconds): no call blocks longer.
  std::chrono::seconds connect_timeout{5};
  std::chrono::seconds read_timeout{30};
  std::chrono::seconds write_timeout{30};

  /// "host=127.0.0.1 port=3306 user=app password='s e c' database=app charset=utf8mb4
  /// connect_timeout=5 read_timeout=30 write_timeout=30 unix_socket=/run/mysqld/mysqld.sock"
  /// (`dbname` is accepted for `database`). Values may be single-quoted, with `\'` and `\\`
  /// inside. Throws `std::invalid_argument` naming an unknown key or a bad number.
  static auto parse(std::string_view text) -> options {
    options o;
    std::size_t i = 0;
    auto skip_space = [&] {
      while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) != 0) ++i;
    };
    for (skip_space(); i < text.size(); skip_space()) {
      const auto eq = text.find('=', i);
      if (eq == std::string_view::npos)
        throw std::invalid_argument("mysql options: '" + std::string(text.substr(i)) +
                                    "' is not key=value");
      std::string key(text.substr(i, eq - i));
      while (!key.empty() && std::isspace(static_cast<unsigned char>(key.back())) != 0) key.pop_back();
      i = eq + 1;
      skip_space();
      std::string value;
      if (i < text.size() && text[i] == '\'') {
        for (++i; i < text.size() && text[i] != '\''; ++i) {
          if (text[i] == '\\' && i + 1 < text.size()) ++i;
          value += text[i];
        }
        if (i >= text.size())
          throw std::invalid_argument("mysql options: unterminated quote in " + key);
        ++i;
      } else {
        while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i])) == 0)
          value += text[i++];
      }
      o.set(key, value);
    }
    return o;
  }

  /// Where it connects, for messages: "127.0.0.1:3306 as 'app'" (never the password).
  [[nodiscard]] auto describe() const -> std::string {
    const std::string where = !unix_socket.empty() ? unix_socket : host + ":" + std::to_string(port);
    return where + " as '" + user + "'" + (database.empty() ? "" : ", database '" + database + "'");
  }

 private:
  void set(const std::string& key, const std::string& value) {
    auto number = [&](unsigned long max) -> unsigned long {
      char* end = nullptr;
      errno = 0;
      const unsigned long v = std::strtoul(value.c_str(), &end, 10);
      if (value.empty() || *end != '\0' || errno != 0 || v > max || value.front() == '-')
        throw std::invalid_argument("mysql options: " + key + " expects a whole number up to " +
                                    std::to_string(max) + ", got '" + value + "'");
      return v;
    };
    auto secs = [&] { return std::chrono::seconds(static_cast<long>(number(86'400))); };
    if (key == "host") {
      host = value;
    } else if (key == "port") {
      port = static_cast<unsigned>(number(65'535));
    } else if (key == "unix_socket" || key == "socket") {
      unix_socket = value;
    } else if (key == "user") {
      user = value;
    } else if (key == "password") {
      password = value;
    } else if (key == "database" || key == "dbname") {
      database = value;
    } else if (key == "charset") {
      charset = value;
    } else if (key == "connect_timeout") {
      connect_timeout = secs();
    } else if (key == "read_timeout") {
      read_timeout = secs();
    } else if (key == "write_timeout") {
      write_timeout = secs();
    } else {
      throw std::invalid_argument(
          "mysql options: unknown key '" + key +
          "' (expected host, port, unix_socket, user, password, database, charset, "
          "connect_timeout, read_timeout, write_timeout)");
    }
  }
};

namespace detail {
struct handle_closer {
  void operator()(MYSQL* m) const noexcept { mysql_close(m); }
};
struct result_freer {
  void operator()(MYSQL_RES* r) const noexcept { mysql_free_result(r); }
};

inline auto error_of(MYSQL* m, const std::string& context = {}) -> error {
  const char* state = mysql_sqlstate(m);
  const char* text = mysql_error(m);
  return error(mysql_errno(m), state != nullptr && *state != '\0' ? state : "HY000",
               text != nullptr ? text : "", context);
}

/// The C API takes whole seconds; a positive duration below one second would mean "none".
inline auto whole_seconds(std::chrono::seconds s) -> unsigned {
  return static_cast<unsigned>(s.count() < 1 ? 1 : s.count());
}

/// Once per process, before any thread calls the library (it is not safe to race on).
inline void library_init() {
  static const int rc = mysql_library_init(0, nullptr, nullptr);
  if (rc != 0) throw error(2000, "HY000", "mysql_library_init failed");
}
}  // namespace detail

/// A stored result set; freed on destruction.
using result = std::unique_ptr<MYSQL_RES, detail::result_freer>;

/// One connection. Move-only; closed (`mysql_close`) on destruction.
class connection {
 public:
  using clock = std::chrono::steady_clock;

  connection(MYSQL* m, std::string charset) noexcept
      : m_(m), charset_(std::move(charset)), last_used_(clock::now()) {}

  /// The raw handle, for the C API. What is done through it the wrapper cannot see: the
  /// resetter still works from the server's reply flags, but a failed statement sent here is
  /// not noticed (`rollback_only` then relies on the transaction flag alone).
  [[nodiscard]] auto get() const noexcept -> MYSQL* { return m_.get(); }
  /// The server's id for this connection (`CONNECTION_ID()`, `KILL` takes it); stable for the
  /// connection's life, and kept by `mysql_reset_connection`.
  [[nodiscard]] auto thread_id() const noexcept -> unsigned long { return mysql_thread_id(m_.get()); }
  /// "10.11.6-MariaDB-0+deb12u1", "8.0.36".
  [[nodiscard]] auto server_version() const -> std::string {
    const char* v = mysql_get_server_info(m_.get());
    return v != nullptr ? v : "";
  }
  [[nodiscard]] auto is_mariadb() const -> bool {
    if (flavour_ == flavour::unknown)
      flavour_ = server_version().find("MariaDB") != std::string::npos ? flavour::mariadb
                                                                      : flavour::mysql;
    return flavour_ == flavour::mariadb;
  }
  /// The character set the factory opened the session with.
  [[nodiscard]] auto charset() const -> const std::string& { return charset_; }

  /// From the status flags of the server's last reply: no round trip. (Stale right after
  /// `mysql_reset_connection`, whose reply the library does not read them from.)
  [[nodiscard]] auto in_transaction() const noexcept -> bool {
    return (m_->server_status & SERVER_STATUS_IN_TRANS) != 0;
  }
  [[nodiscard]] auto autocommit() const noexcept -> bool {
    return (m_->server_status & SERVER_STATUS_AUTOCOMMIT) != 0;
  }
  /// The library is ready for a new statement (no result half read, none pending).
  [[nodiscard]] auto ready() const noexcept -> bool {
    return m_->status == MYSQL_STATUS_READY && (m_->server_status & SERVER_MORE_RESULTS_EXIST) == 0;
  }
  /// A statement failed because the connection is gone: it is never usable again.
  [[nodiscard]] auto lost() const noexcept -> bool { return lost_ || mysql_get_socket(m_.get()) < 0; }
  /// A statement failed since the last reset (`rollback_only` rolls back then).
  [[nodiscard]] auto failed_since_reset() const noexcept -> bool { return failed_; }
  /// How long since the connection last spoke to the server through this wrapper (a
  /// statement, a validator's ping) or came back to the pool.
  [[nodiscard]] auto idle_for() const noexcept -> clock::duration { return clock::now() - last_used_; }
  void touch() noexcept { last_used_ = clock::now(); }
  void mark_reset() noexcept {
    failed_ = false;
    touch();
  }

  /// Runs one statement and reads every result it produced; returns the affected rows of the
  /// last. Throws `error` with the server's code, SQLSTATE and message.
  auto exec(std::string_view sql) -> std::uint64_t {
    send(sql);
    std::uint64_t affected = 0;
    for (;;) {
      result r(mysql_store_result(m_.get()));
      if (r == nullptr && mysql_field_count(m_.get()) != 0) fail();
      if (r == nullptr) affected = mysql_affected_rows(m_.get());
      const int next = mysql_next_result(m_.get());
      if (next < 0) return affected;
      if (next > 0) fail();
    }
  }

  /// Runs one statement and returns its (first) result set, stored client-side; any further
  /// results (a `CALL`) are read and dropped.
  auto query(std::string_view sql) -> result {
    send(sql);
    result r(mysql_store_result(m_.get()));
    if (r == nullptr) {
      if (mysql_field_count(m_.get()) != 0) fail();
      throw error(2000, "HY000", "the statement returned no result set: " + std::string(sql));
    }
    while (mysql_more_results(m_.get()) != 0) {
      if (mysql_next_result(m_.get()) > 0) fail();
      mysql_free_result(mysql_store_result(m_.get()));
    }
    return r;
  }

  /// The first column of the first row as text ("" if there is no row or it is NULL).
  auto scalar(std::string_view sql) -> std::string {
    auto r = query(sql);
    MYSQL_ROW row = mysql_fetch_row(r.get());
    if (row == nullptr || mysql_num_fields(r.get()) == 0 || row[0] == nullptr) return {};
    return {row[0], mysql_fetch_lengths(r.get())[0]};
  }

  /// `s` as a quoted SQL string literal, escaped for the session's character set.
  [[nodiscard]] auto quote(std::string_view s) const -> std::string {
    std::string out(s.size() * 2 + 3, '\0');
    out[0] = '\'';
    const auto n = mysql_real_escape_string(m_.get(), out.data() + 1, s.data(),
                                            static_cast<unsigned long>(s.size()));
    if (n == static_cast<unsigned long>(-1))
      throw error(2000, "HY000", "the string is not valid in the character set " + charset_);
    out.resize(n + 1);
    return out + '\'';
  }

 private:
  void send(std::string_view sql) {
    if (mysql_real_query(m_.get(), sql.data(), static_cast<unsigned long>(sql.size())) != 0) fail();
    touch();
  }
  [[noreturn]] void fail() {
    failed_ = true;
    auto e = detail::error_of(m_.get());
    if (e.connection_lost()) lost_ = true;
    throw e;
  }

  enum class flavour { unknown, mariadb, mysql };

  std::unique_ptr<MYSQL, detail::handle_closer> m_;
  std::string charset_;
  clock::time_point last_used_;
  bool failed_ = false;
  bool lost_ = false;
  mutable flavour flavour_ = flavour::unknown;
};

/// The pool's factory: `mysql_real_connect` with `opts`. Throws `error` with the server's or the
/// library's code and message, and where it was connecting to.
struct factory {
  options opts;

  [[nodiscard]] auto create() const -> connection {
    detail::library_init();
    MYSQL* raw = mysql_init(nullptr);
    if (raw == nullptr) throw error(2008, "HY000", "mysql_init: out of memory");
    connection c(raw, opts.charset);  // owns it from here, closed on the throws below too
    const unsigned connect_s = detail::whole_seconds(opts.connect_timeout);
    const unsigned read_s = detail::whole_seconds(opts.read_timeout);
    const unsigned write_s = detail::whole_seconds(opts.write_timeout);
    const my_bool no = 0;
    if (mysql_options(raw, MYSQL_OPT_CONNECT_TIMEOUT, &connect_s) != 0 ||
        mysql_options(raw, MYSQL_OPT_READ_TIMEOUT, &read_s) != 0 ||
        mysql_options(raw, MYSQL_OPT_WRITE_TIMEOUT, &write_s) != 0 ||
        mysql_options(raw, MYSQL_OPT_RECONNECT, &no) != 0 ||
        mysql_options(raw, MYSQL_SET_CHARSET_NAME, opts.charset.c_str()) != 0)
      throw detail::error_of(raw, "setting the connection's options");
    if (mysql_real_connect(raw, opts.host.c_str(), opts.user.c_str(), opts.password.c_str(),
                           opts.database.empty() ? nullptr : opts.database.c_str(), opts.port,
                           opts.unix_socket.empty() ? nullptr : opts.unix_socket.c_str(),
                           0) == nullptr) {
      // The library's text names the host but not the port or the user: add them. (Its
      // "(115)" after "Can't connect" is the errno of the non-blocking connect, EINPROGRESS,
      // for a refused connection as for a timed-out one: not worth translating.)
      throw detail::error_of(raw, "connecting to " + opts.describe());
    }
    return c;
  }
};

/// The pool's validator (see the top of this file).
struct validator {
  static constexpr std::chrono::milliseconds never = std::chrono::milliseconds::max();
  /// Also `mysql_ping` (one round trip, bounded by the read timeout) when the connection has
  /// not spoken to the server for at least this long; 0 pings on every validation, `never`
  /// (the default) relies on the socket check alone.
  std::chrono::milliseconds ping_after_idle = never;

  auto validate(connection& c) const noexcept -> bool {
    if (c.lost() || !c.ready()) return false;
    // Nothing should wait on an idle connection: the protocol has no unsolicited messages
    // except the goodbye before a close (MySQL 8's "ER_CLIENT_INTERACTION_TIMEOUT" packet);
    // MariaDB just closes. So end-of-file, an error or any byte means it is gone.
    char byte = 0;
    const auto n = ::recv(mysql_get_socket(c.get()), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n >= 0) return false;  // 0: closed by the server; > 0: unsolicited data
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (ping_after_idle != never && c.idle_for() >= ping_after_idle) {
      if (mysql_ping(c.get()) != 0) return false;
      c.touch();
    }
    return true;
  }
};

/// What `resetter` cleans (see the top of this file).
enum class session_reset { reset_connection, rollback_only };

/// The pool's resetter (see the top of this file). Each round trip is bounded by the
/// connection's read and write timeouts.
struct resetter {
  session_reset mode = session_reset::reset_connection;

  auto reset(connection& c) const noexcept -> bool {
    if (c.lost() || !c.ready()) return false;
    MYSQL* m = c.get();
    try {
      if (mode == session_reset::reset_connection) {
        if (mysql_reset_connection(m) != 0) return false;
        // MariaDB gives the session back the character set of the handshake, but the library
        // still believes what the last SET NAMES said; MySQL resets it to the server's default.
        if (!c.is_mariadb() || c.charset() != mysql_character_set_name(m)) {
          if (mysql_set_character_set(m, c.charset().c_str()) != 0) return false;
        }
      } else {
        const bool autocommit_off = !c.autocommit();
        if (c.in_transaction() || autocommit_off || c.failed_since_reset()) {
          if (mysql_rollback(m) != 0) return false;
        }
        if (autocommit_off && mysql_autocommit(m, 1) != 0) return false;
        if (c.charset() != mysql_character_set_name(m) &&
            mysql_set_character_set(m, c.charset().c_str()) != 0)
          return false;
        if (c.in_transaction()) return false;  // still in one: do not lend it
      }
    } catch (...) {  // std::string allocation
      return false;
    }
    c.mark_reset();
    return true;
  }
};

}  // namespace respool_examples::mysql
