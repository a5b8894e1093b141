#pragma once
/**
 * A Redis (hiredis) adapter for `respool::pool`: example code to copy, not part of respool's
 * headers (those use only the standard library). Needs `hiredis/hiredis.h` and `-lhiredis`
 * (Debian: libhiredis-dev; works with hiredis 0.14 and 1.x).
 *
 * - `redis::factory` connects with a timeout, sets a command timeout (so no call can hang),
 *   authenticates, selects the configured database and names the client. A failure throws
 *   `redis::error` with hiredis's or the server's own text ("Connection refused",
 *   "WRONGPASS invalid username-password pair ...").
 * - `redis::validator` checks, without a round trip, that the server has not closed the
 *   connection (`CLIENT KILL`, `timeout`, a restart: the socket reads as closed) and that no
 *   unexpected data waits on it; then, unless `round_trip` is off, sends `PING`.
 * - `redis::resetter` restores the session a user may have changed: the database index
 *   (`SELECT 5`), a `MULTI` left open, `WATCH`ed keys, subscriptions, client tracking, `CLIENT
 *   REPLY`, RESP3. It sends `RESET` (Redis 6.2+; it also de-authenticates, so `AUTH` and
 *   `SELECT` follow in the same pipeline: one round trip), and on older servers `DISCARD`,
 *   `UNWATCH`, `SELECT`. It only does so when the session is *dirty*: `connection::command`
 *   notices the commands that change session state, and `connection::get()` (raw hiredis
 *   access, which the wrapper cannot see through) marks the session dirty too. A plain
 *   `GET`/`SET` user pays nothing on return.
 *
 * **Example**:
 * ```cpp
 * namespace rd = respool_examples::redis;
 * respool::pool cache{rd::factory{{.host = "127.0.0.1", .port = 6379}},
 *                     respool::pool_options{.max_size = 8, .validate_after_idle = 0ms},
 *                     rd::validator{}, rd::resetter{}};
 * auto c = cache.acquire();
 * c->command({"SET", "greeting", "hello"});
 * auto r = c->command({"GET", "greeting"});
 * std::puts(r->str);
 * ```
 */
#include <hiredis/hiredis.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <algorithm>
#include <cctype>
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

namespace respool_examples::redis {

/// A failed connect or command; `what()` carries hiredis's or the server's text.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// How `factory` connects.
struct options {
  std::string host = "127.0.0.1";
  int port = 6379;
  /// The database every connection uses, restored by the resetter.
  int db = 0;
  /// ACL user (empty: the default user) and password (empty: no AUTH).
  std::string user;
  std::string password;
  /// `CLIENT SETNAME` for every connection (shows in `CLIENT LIST`); empty: none.
  std::string client_name;
  std::chrono::milliseconds connect_timeout{2000};
  /// Bound on every command's send and reply (socket timeouts): no call hangs longer.
  std::chrono::milliseconds command_timeout{2000};
};

namespace detail {
struct context_freer {
  void operator()(redisContext* c) const noexcept { redisFree(c); }
};
struct reply_freer {
  void operator()(redisReply* r) const noexcept { freeReplyObject(r); }
};

inline auto to_timeval(std::chrono::milliseconds d) -> timeval {
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
  return tv;
}

inline auto upper(std::string_view s) -> std::string {
  std::string u(s);
  std::transform(u.begin(), u.end(), u.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::toupper(ch)); });
  return u;
}

// Commands after which the session differs from a fresh connection's.
inline auto changes_session(const std::vector<std::string_view>& args) -> bool {
  static constexpr std::string_view commands[] = {
      "SELECT", "MULTI",     "WATCH",    "SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE",
      "HELLO",  "AUTH",      "READONLY", "READWRITE", "MONITOR",    "ASKING", "RESET"};
  static constexpr std::string_view client_subcommands[] = {
      "SETNAME", "TRACKING", "REPLY", "CACHING", "NO-EVICT", "NO-TOUCH", "SETINFO"};
  const auto name = upper(args.front());
  if (name == "CLIENT")  // CLIENT INFO, LIST, ID, GETNAME, KILL leave the session as it was
    return args.size() < 2 || std::find(std::begin(client_subcommands), std::end(client_subcommands),
                                        upper(args[1])) != std::end(client_subcommands);
  return std::find(std::begin(commands), std::end(commands), name) != std::end(commands);
}
}  // namespace detail

/// A reply; freed on destruction. `type` is REDIS_REPLY_*; error replies come back as
/// REDIS_REPLY_ERROR (a Redis error is an answer, not a broken connection).
using reply = std::unique_ptr<redisReply, detail::reply_freer>;

inline auto text_of(const redisReply* r) -> std::string {
  if (r == nullptr || r->str == nullptr) return {};
  return {r->str, static_cast<std::size_t>(r->len)};
}

/// One connection. Move-only; closed on destruction.
class connection {
 public:
  connection(redisContext* c, options o) noexcept : c_(c), opts_(std::move(o)) {}

  /// Raw hiredis access. The wrapper cannot see what is sent through it, so the session counts
  /// as dirty from here on and is reset on return.
  [[nodiscard]] auto get() noexcept -> redisContext* {
    dirty_ = true;
    return c_.get();
  }
  /// The socket (for checks that send nothing).
  [[nodiscard]] auto fd() const noexcept -> int { return c_->fd; }
  /// An I/O error happened: hiredis cannot use this connection again.
  [[nodiscard]] auto broken() const noexcept -> bool { return c_->err != 0; }
  /// The session may differ from a fresh connection's (see the top of this file).
  [[nodiscard]] auto dirty() const noexcept -> bool { return dirty_; }
  [[nodiscard]] auto settings() const noexcept -> const options& { return opts_; }

  /// Sends one command (binary-safe arguments) and waits for its reply. Throws `error` on an
  /// I/O error or timeout (the connection is then broken); a Redis error reply is returned.
  auto command(std::initializer_list<std::string_view> args) -> reply {
    return command(std::vector<std::string_view>(args));
  }
  auto command(const std::vector<std::string_view>& args) -> reply {
    if (args.empty()) throw error("redis: empty command");
    if (detail::changes_session(args)) dirty_ = true;
    if (detail::upper(args.front()).find("SUBSCRIBE") != std::string::npos) subscribed_ = true;
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (auto a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    void* raw = redisCommandArgv(c_.get(), static_cast<int>(argv.size()), argv.data(), lens.data());
    if (raw == nullptr) throw error("redis " + where() + ": " + c_->errstr);
    return reply(static_cast<redisReply*>(raw));
  }

  /// Like `command`, but throws `error` with the server's text on an error reply too.
  auto command_ok(std::initializer_list<std::string_view> args) -> reply {
    auto r = command(args);
    if (r->type == REDIS_REPLY_ERROR)
      throw error("redis " + where() + ": " + std::string(args.begin()->data(), args.begin()->size()) +
                  ": " + text_of(r.get()));
    return r;
  }

  /// Brings the session back to what the factory made: see the top of this file. One round
  /// trip. False if that failed (the connection should then be destroyed).
  auto reset_session() noexcept -> bool {
    try {
      if (broken()) return false;
      std::vector<std::vector<std::string>> cmds{{"RESET"}};
      append_setup(cmds);
      auto replies = pipeline(cmds);
      const auto& first = replies.front();
      if (first->type == REDIS_REPLY_STATUS && text_of(first.get()) == "RESET") {
        for (const auto& r : replies)
          if (r->type == REDIS_REPLY_ERROR) return false;
      } else if (first->type == REDIS_REPLY_ERROR && !broken()) {
        // Before Redis 6.2: no RESET. Subscriptions cannot be left without it.
        if (subscribed_) return false;
        cmds = {{"DISCARD"}, {"UNWATCH"}, {"SELECT", std::to_string(opts_.db)}};
        replies = pipeline(cmds);
        for (std::size_t i = 1; i < replies.size(); ++i)  // DISCARD errs outside MULTI: fine
          if (replies[i]->type == REDIS_REPLY_ERROR) return false;
      } else {
        return false;  // anything else ("QUEUED"?): the session is not what we think
      }
      dirty_ = false;
      subscribed_ = false;
      return true;
    } catch (...) {
      return false;
    }
  }

  /// AUTH, SELECT and CLIENT SETNAME as configured (the factory's setup, sent in one pipeline).
  void setup() {
    std::vector<std::vector<std::string>> cmds;
    append_setup(cmds);
    if (cmds.empty()) return;
    auto replies = pipeline(cmds);
    for (std::size_t i = 0; i < replies.size(); ++i)
      if (replies[i]->type == REDIS_REPLY_ERROR)
        throw error("redis " + where() + ": " + cmds[i][0] + ": " + text_of(replies[i].get()));
  }

 private:
  [[nodiscard]] auto where() const -> std::string {
    return opts_.host + ":" + std::to_string(opts_.port);
  }

  void append_setup(std::vector<std::vector<std::string>>& cmds) const {
    if (!opts_.password.empty()) {
      if (opts_.user.empty()) {
        cmds.push_back({"AUTH", opts_.password});
      } else {
        cmds.push_back({"AUTH", opts_.user, opts_.password});
      }
    }
    if (opts_.db != 0) cmds.push_back({"SELECT", std::to_string(opts_.db)});
    if (!opts_.client_name.empty()) cmds.push_back({"CLIENT", "SETNAME", opts_.client_name});
  }

  // Sends all commands, then reads all replies: one round trip.
  auto pipeline(const std::vector<std::vector<std::string>>& cmds) -> std::vector<reply> {
    for (const auto& cmd : cmds) {
      std::vector<const char*> argv;
      std::vector<std::size_t> lens;
      for (const auto& a : cmd) {
        argv.push_back(a.c_str());
        lens.push_back(a.size());
      }
      if (redisAppendCommandArgv(c_.get(), static_cast<int>(argv.size()), argv.data(),
                                 lens.data()) != REDIS_OK)
        throw error("redis " + where() + ": " + c_->errstr);
    }
    std::vector<reply> replies;
    for (std::size_t i = 0; i < cmds.size(); ++i) {
      void* raw = nullptr;
      if (redisGetReply(c_.get(), &raw) != REDIS_OK || raw == nullptr)
        throw error("redis " + where() + ": " + c_->errstr);
      replies.emplace_back(static_cast<redisReply*>(raw));
    }
    return replies;
  }

  std::unique_ptr<redisContext, detail::context_freer> c_;
  options opts_;
  bool dirty_ = false;
  bool subscribed_ = false;
};

/// The pool's factory (see the top of this file).
struct factory {
  options opts;

  [[nodiscard]] auto create() const -> connection {
    redisContext* raw = redisConnectWithTimeout(opts.host.c_str(), opts.port,
                                                detail::to_timeval(opts.connect_timeout));
    if (raw == nullptr) throw error("redis: out of memory allocating a connection");
    connection c(raw, opts);  // owns it from here
    if (raw->err != 0)
      throw error("redis " + opts.host + ":" + std::to_string(opts.port) + ": " + raw->errstr);
    if (redisSetTimeout(raw, detail::to_timeval(opts.command_timeout)) != REDIS_OK)
      throw error("redis: setting the command timeout: " + std::string(raw->errstr));
    c.setup();
    return c;
  }
};

/// The pool's validator (see the top of this file).
struct validator {
  /// Also send `PING` (one round trip) after the socket check.
  bool round_trip = true;

  auto validate(connection& c) const noexcept -> bool {
    if (c.broken()) return false;
    char byte = 0;
    const auto n = ::recv(c.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;  // closed by the server
    if (n > 0) return false;   // unexpected data on an idle connection: state unknown
    if (errno != EAGAIN && errno != EWOULDBLOCK) return false;
    if (!round_trip) return true;
    try {
      auto r = c.command({"PING"});
      return r->type == REDIS_REPLY_STATUS && text_of(r.get()) == "PONG";
    } catch (...) {
      return false;
    }
  }
};

/// The pool's resetter (see the top of this file): free for a clean session, one round trip
/// for a dirty one; false (destroy) for a broken connection or a failed reset.
struct resetter {
  auto reset(connection& c) const noexcept -> bool {
    if (c.broken()) return false;
    if (!c.dirty()) return true;
    return c.reset_session();
  }
};

}  // namespace respool_examples::redis
