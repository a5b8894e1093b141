#pragma once
// Real servers for the integration tests and the backend benchmarks: each starts its own
// PostgreSQL, Redis, nginx, MariaDB or Prometheus on 127.0.0.1, on a free port, in a fresh
// temporary directory, and stops it in its destructor. Every wait has a deadline; nothing here loops
// forever.
//
// The building blocks (run a command, spawn a server in its own process group, find a free port,
// wait for readiness, kill the group) are shared by the servers. A server left behind by a
// crash would outlive the test and hold the machine's ports and ctest's pipes, so each server
// also has a `reaper`: a tiny shell that waits for this process to go away by any route (even
// SIGKILL) and then stops the server and removes its directory. The normal path stops the server
// itself and dismisses the reaper first.
//
// PostgreSQL and MariaDB refuse to run as root: when we are root, PostgreSQL's commands run
// through `runuser -u postgres --`, MariaDB's with `--user=mysql` (they drop to that account
// at once), and their directories belong to those accounts.
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace respool_it {

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;
namespace fs = std::filesystem;

[[noreturn]] inline void fail_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

/// Polls `done` every `step` until it returns true or `limit` passes; returns the last answer.
inline auto wait_until(const std::function<bool()>& done, std::chrono::milliseconds limit,
                       std::chrono::milliseconds step = 10ms) -> bool {
  const auto end = steady::now() + limit;
  for (;;) {
    if (done()) return true;
    if (steady::now() >= end) return false;
    std::this_thread::sleep_for(step);
  }
}

inline auto join_args(const std::vector<std::string>& argv) -> std::string {
  std::string s;
  for (const auto& a : argv) {
    if (!s.empty()) s += ' ';
    s += a;
  }
  return s;
}

/// Single-quotes `s` for /bin/sh.
inline auto sh_quote(std::string_view s) -> std::string {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'') {
      q += "'\\''";
    } else {
      q += c;
    }
  }
  return q + "'";
}

/// The last `max` bytes of a file (server logs in error messages).
inline auto file_tail(const fs::path& p, std::size_t max = 2000) -> std::string {
  std::ifstream in(p, std::ios::binary);
  if (!in) return "(no log at " + p.string() + ")";
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return text.size() > max ? "..." + text.substr(text.size() - max) : text;
}

/// The port a program we started printed after `prefix` on a complete line of its log
/// ("listening on 8080\n"), or nullopt while it has not.
inline auto port_in_log(const fs::path& log, std::string_view prefix) -> std::optional<int> {
  const auto text = file_tail(log);
  const auto at = text.find(prefix);
  if (at == std::string::npos || text.find('\n', at) == std::string::npos) return std::nullopt;
  return std::atoi(text.c_str() + at + prefix.size());
}

/// Finds `name` in PATH, then in the sbin directories PATH often lacks.
inline auto find_program(const std::string& name) -> std::optional<fs::path> {
  std::vector<std::string> dirs;
  if (const char* path = std::getenv("PATH")) {
    std::stringstream ss(path);
    for (std::string d; std::getline(ss, d, ':');)
      if (!d.empty()) dirs.push_back(d);
  }
  for (const char* d : {"/usr/sbin", "/sbin", "/usr/local/sbin"}) dirs.emplace_back(d);
  for (const auto& d : dirs) {
    fs::path p = fs::path(d) / name;
    if (::access(p.c_str(), X_OK) == 0) return p;
  }
  return std::nullopt;
}

inline auto need_program(const std::string& name, const std::string& package) -> fs::path {
  if (auto p = find_program(name)) return *p;
  throw std::runtime_error(name + " not found: install the Debian package " + package +
                           " (bash scripts/install-deps.sh test installs it)");
}

// ------------------------------------------------------------------ processes

/// A spawned process in a process group of its own (so that killing the group kills what it
/// starts too). Stdin is /dev/null unless given; stdout and stderr go to `log` (or /dev/null).
class child {
 public:
  child() = default;
  child(const std::vector<std::string>& argv, const fs::path& log, int stdin_fd = -1) {
    if (argv.empty()) throw std::invalid_argument("child: empty command");
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    const std::string out = log.empty() ? "/dev/null" : log.string();
    if (stdin_fd >= 0) {
      posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
    } else {
      posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    }
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    posix_spawnattr_setpgroup(&attr, 0);
    // Signals this test process ignores or blocks must not be ignored or blocked in the server.
    sigset_t none;
    sigset_t all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                         POSIX_SPAWN_SETSIGDEF);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    const int rc = posix_spawnp(&pid_, args[0], &fa, &attr, args.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    if (rc != 0) {
      pid_ = -1;
      throw std::system_error(rc, std::generic_category(), "spawning " + join_args(argv));
    }
  }
  child(const child&) = delete;
  auto operator=(const child&) -> child& = delete;
  child(child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), status_(o.status_) {}
  auto operator=(child&& o) noexcept -> child& {
    if (this != &o) {
      kill_and_wait();
      pid_ = std::exchange(o.pid_, -1);
      status_ = o.status_;
    }
    return *this;
  }
  ~child() { kill_and_wait(); }

  [[nodiscard]] auto pid() const noexcept -> pid_t { return pid_; }

  /// True while the process has not exited (reaps it if it has).
  auto running() -> bool {
    if (pid_ <= 0) return false;
    int st = 0;
    const pid_t r = ::waitpid(pid_, &st, WNOHANG);
    if (r == 0) return true;
    if (r == pid_) status_ = st;
    pid_ = -1;
    return false;
  }

  /// Waits up to `limit` for the process to exit; its exit code, or nullopt if still running.
  auto wait_for(std::chrono::milliseconds limit) -> std::optional<int> {
    wait_until([this] { return !running(); }, limit, 2ms);
    if (pid_ > 0) return std::nullopt;
    return exit_code();
  }

  /// Exit code (128 + signal when killed); valid once the process is gone.
  [[nodiscard]] auto exit_code() const noexcept -> int {
    if (WIFEXITED(status_)) return WEXITSTATUS(status_);
    if (WIFSIGNALED(status_)) return 128 + WTERMSIG(status_);
    return -1;
  }

  /// Sends `sig` to the whole process group.
  void signal_group(int sig) const noexcept {
    if (pid_ > 0) ::kill(-pid_, sig);
  }

  /// SIGTERM to the group, then SIGKILL if it lingers past `grace`; always reaps.
  void kill_and_wait(std::chrono::milliseconds grace = 0ms) noexcept {
    if (pid_ <= 0) return;
    if (grace > 0ms) {
      signal_group(SIGTERM);
      if (wait_for(grace)) return;
    }
    signal_group(SIGKILL);
    int st = 0;
    while (::waitpid(pid_, &st, 0) < 0 && errno == EINTR) {
    }
    status_ = st;
    pid_ = -1;
  }

 private:
  pid_t pid_ = -1;
  int status_ = 0;
};

struct command_result {
  int exit_code = -1;
  bool timed_out = false;
  std::string output;  // stdout and stderr together
};

/// Runs a command to completion, capturing its output; kills its process group after `limit`.
inline auto run(const std::vector<std::string>& argv, std::chrono::milliseconds limit = 60s)
    -> command_result {
  char tmpl[] = "/tmp/respool-run-XXXXXX";
  const int fd = ::mkstemp(tmpl);
  if (fd < 0) fail_errno("mkstemp");
  ::close(fd);
  const fs::path out = tmpl;
  command_result r;
  {
    child c(argv, out);
    auto code = c.wait_for(limit);
    if (!code) {
      r.timed_out = true;
      c.kill_and_wait();
      r.exit_code = c.exit_code();
    } else {
      r.exit_code = *code;
    }
  }
  r.output = file_tail(out, 64 * 1024);
  std::error_code ec;
  fs::remove(out, ec);
  return r;
}

/// Runs a command and throws with its output unless it exits 0 in time.
inline auto run_checked(const std::vector<std::string>& argv,
                        std::chrono::milliseconds limit = 60s) -> std::string {
  auto r = run(argv, limit);
  if (r.timed_out || r.exit_code != 0)
    throw std::runtime_error("command " + std::string(r.timed_out ? "timed out" : "failed") +
                             " (exit " + std::to_string(r.exit_code) + "): " + join_args(argv) +
                             "\n" + r.output);
  return r.output;
}

// ------------------------------------------------------------------ ports

/// A port on 127.0.0.1 that nothing listens on right now (the kernel picks it).
inline auto free_port() -> int {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) fail_errno("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    const int e = errno;
    ::close(fd);
    throw std::system_error(e, std::generic_category(), "finding a free port");
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

/// A blocking TCP connection to 127.0.0.1:port, or -1. Used for readiness checks.
inline auto connect_local(int port, std::chrono::milliseconds io_timeout = 1s) -> int {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(io_timeout.count() / 1000);
  tv.tv_usec = static_cast<suseconds_t>((io_timeout.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

inline auto port_accepts(int port) -> bool {
  const int fd = connect_local(port);
  if (fd < 0) return false;
  ::close(fd);
  return true;
}

/// Sends `request` on a fresh connection and reads until the peer closes or `limit` bytes.
inline auto tcp_exchange(int port, std::string_view request, std::size_t limit = 64 * 1024)
    -> std::optional<std::string> {
  const int fd = connect_local(port);
  if (fd < 0) return std::nullopt;
  std::string reply;
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
      static_cast<ssize_t>(request.size())) {
    char buf[4096];
    for (int i = 0; i < 1000 && reply.size() < limit; ++i) {  // bounded: SO_RCVTIMEO per read
      const auto n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      reply.append(buf, static_cast<std::size_t>(n));
    }
  }
  ::close(fd);
  return reply;
}

// ------------------------------------------------------------------ directories and users

/// The account a server runs as when we are root; nullopt when we are not root.
struct run_as_user {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
};

/// `user` (which the Debian package `package` creates) when we are root, else nullopt.
inline auto service_account(const std::string& user, const std::string& server,
                            const std::string& package) -> std::optional<run_as_user> {
  if (::geteuid() != 0) return std::nullopt;
  const passwd* pw = ::getpwnam(user.c_str());
  if (pw == nullptr)
    throw std::runtime_error("running as root and there is no '" + user + "' user to run " +
                             server + " as: install the " + package +
                             " package (bash scripts/install-deps.sh test)");
  return run_as_user{user, pw->pw_uid, pw->pw_gid};
}

inline auto postgres_account() -> std::optional<run_as_user> {
  return service_account("postgres", "PostgreSQL", "postgresql");
}

/// A fresh directory under /tmp, removed (with everything in it) on destruction.
class temp_dir {
 public:
  explicit temp_dir(const std::string& tag) {
    std::string tmpl = "/tmp/respool-" + tag + "-XXXXXX";
    if (::mkdtemp(tmpl.data()) == nullptr) fail_errno("mkdtemp " + tmpl);
    path_ = tmpl;
  }
  temp_dir(const temp_dir&) = delete;
  auto operator=(const temp_dir&) -> temp_dir& = delete;
  ~temp_dir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  [[nodiscard]] auto path() const -> const fs::path& { return path_; }
  void give_to(const run_as_user& u) const {
    if (::chown(path_.c_str(), u.uid, u.gid) != 0) fail_errno("chown " + path_.string());
  }

 private:
  fs::path path_;
};

// ------------------------------------------------------------------ the reaper

/// Runs `cleanup` (a /bin/sh command) once this process is gone, however it went, unless
/// dismissed first. A shell reads a pipe whose only writer is this process (close-on-exec, so
/// no server inherits it); end of file means we are gone.
class reaper {
 public:
  explicit reaper(const std::string& cleanup) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) fail_errno("pipe2");
    write_end_ = fds[1];
    try {
      shell_ = child({"/bin/sh", "-c", "cat >/dev/null; " + cleanup}, {}, fds[0]);
    } catch (...) {
      ::close(fds[0]);
      ::close(fds[1]);
      throw;
    }
    ::close(fds[0]);
  }
  reaper(const reaper&) = delete;
  auto operator=(const reaper&) -> reaper& = delete;
  /// Normal exit: the owner has cleaned up itself; the shell is killed without running cleanup.
  ~reaper() {
    shell_.kill_and_wait();
    if (write_end_ >= 0) ::close(write_end_);
  }

 private:
  int write_end_ = -1;
  child shell_;
};

/// How `start_server` starts a server and tells that it is up.
struct server_start {
  std::vector<std::string> argv;
  fs::path log;                             ///< the server's stdout and stderr
  fs::path dir;                             ///< removed by the reaper
  int port = 0;                             ///< for the error message
  std::chrono::milliseconds limit = 20s;    ///< for `ready`
  std::function<bool()> ready;
  std::function<std::string()> diagnostics;  ///< what the error shows (the log's tail)
};

/// Spawns `s.argv` as `proc` (in a process group of its own) with a reaper in `cleanup` that
/// kills the group and removes `s.dir` should this process go first, and waits up to `s.limit`
/// for `s.ready()`. Throws "<program> did not start on port <port>:" and `s.diagnostics()` if
/// the server exits first or is not ready in time.
inline void start_server(child& proc, std::optional<reaper>& cleanup, const server_start& s) {
  proc = child(s.argv, s.log);
  cleanup.reset();
  cleanup.emplace("kill -KILL -" + std::to_string(proc.pid()) + " 2>/dev/null; rm -rf " +
                  sh_quote(s.dir.string()));
  const bool up = wait_until([&] { return s.ready() || !proc.running(); }, s.limit);
  if (!up || !proc.running())
    throw std::runtime_error(fs::path(s.argv.front()).filename().string() +
                             " did not start on port " + std::to_string(s.port) + ":\n" +
                             s.diagnostics());
}

// ------------------------------------------------------------------ PostgreSQL

/// The directory with initdb, pg_ctl, postgres and pgbench: $RESPOOL_PG_BINDIR, else the newest
/// /usr/lib/postgresql/<version>/bin, else wherever PATH has initdb.
inline auto postgres_bindir() -> fs::path {
  if (const char* d = std::getenv("RESPOOL_PG_BINDIR")) return d;
  std::optional<fs::path> best;
  int best_version = -1;
  std::error_code ec;
  if (fs::is_directory("/usr/lib/postgresql", ec)) {
    for (const auto& e : fs::directory_iterator("/usr/lib/postgresql", ec)) {
      const auto name = e.path().filename().string();
      const int v = std::atoi(name.c_str());
      if (v > best_version && fs::exists(e.path() / "bin" / "initdb")) {
        best_version = v;
        best = e.path() / "bin";
      }
    }
  }
  if (best) return *best;
  if (auto p = find_program("initdb")) return p->parent_path();
  throw std::runtime_error(
      "PostgreSQL server programs (initdb, pg_ctl) not found: install the Debian package "
      "postgresql (bash scripts/install-deps.sh test), or set RESPOOL_PG_BINDIR");
}

/// A PostgreSQL cluster of its own: initdb in a temp dir, `pg_ctl start` on 127.0.0.1:port.
///
/// Streaming replication: a server made with `options::replication` is a primary that replicas
/// can follow (wal_level=replica, max_wal_senders, a pg_hba line for replication connections
/// from 127.0.0.1); `postgres_server(postgres_server::replica_of{primary})` makes a hot standby
/// of it: `pg_basebackup -R -X stream` from the primary into a temp dir of its own (run as the
/// postgres account), started on a free port of its own. `postgres_replication` below puts a
/// primary and N replicas together.
class postgres_server {
 public:
  struct options {
    int max_connections = 100;
    bool fsync = false;  // tests and select-only benchmarks need no durability
    /// A primary for streaming replicas (see above).
    bool replication = false;
    /// shared_buffers ("16MB"); empty leaves the server's default (128MB).
    std::string shared_buffers = {};
  };
  /// The primary a replica is made from (`pg_basebackup` from it while it runs).
  struct replica_of {
    const postgres_server& primary;
  };

  explicit postgres_server(options o) : opts_(std::move(o)), dir_("pg"), account_(postgres_account()) {
    prepare();
    make_data([this] {
      run_checked(as_user({(bindir_ / "initdb").string(), "-D", data().string(), "-A", "trust",
                           "-U", "postgres", "-N", "-E", "UTF8", "--locale=C"}),
                  120s);
      if (opts_.replication) {
        // initdb's own pg_hba.conf has this line already with -A trust; it is the one replicas
        // need, so it is written here whatever initdb's template says.
        std::ofstream hba(data() / "pg_hba.conf", std::ios::app);
        hba << "host replication all 127.0.0.1/32 trust\n";
        if (!hba) throw std::runtime_error("writing " + (data() / "pg_hba.conf").string());
      }
    });
  }
  postgres_server() : postgres_server(options{}) {}

  /// A hot standby of `r.primary` (which must have `options::replication` and be running), with
  /// the primary's options (a standby needs max_connections and max_wal_senders at least the
  /// primary's), on a port of its own. Streams from the primary at once; `wait_replayed` waits
  /// for it to catch up.
  explicit postgres_server(replica_of r)
      : opts_(r.primary.opts_), dir_("pg-replica"), account_(postgres_account()),
        replica_(true), primary_port_(r.primary.port()) {
    if (!opts_.replication)
      throw std::invalid_argument("postgres_server: a replica needs a primary made with "
                                  "options::replication");
    prepare();
    make_data([this] {
      // -R: standby.signal and primary_conninfo (host, port, user) in postgresql.auto.conf;
      // -X stream: the WAL written meanwhile comes along; -c fast: no spread checkpoint to
      // wait for; -N: no fsync of the copy.
      run_checked(as_user({(bindir_ / "pg_basebackup").string(), "-h", "127.0.0.1", "-p",
                           std::to_string(primary_port_), "-U", "postgres", "-D", data().string(),
                           "-R", "-X", "stream", "-c", "fast", "-N"}),
                  120s);
    });
  }

  postgres_server(const postgres_server&) = delete;
  auto operator=(const postgres_server&) -> postgres_server& = delete;
  ~postgres_server() {
    try {
      stop();
    } catch (...) {  // fall back to the pid file below
    }
    kill_from_pid_file();
    reaper_.reset();
  }

  [[nodiscard]] auto port() const noexcept -> int { return port_; }
  [[nodiscard]] auto dir() const -> const fs::path& { return dir_.path(); }
  [[nodiscard]] auto bindir() const -> const fs::path& { return bindir_; }
  [[nodiscard]] auto is_replica() const noexcept -> bool { return replica_; }

  /// A libpq connection string for this server; `extra` is appended ("application_name=x").
  [[nodiscard]] auto conninfo(const std::string& extra = {}) const -> std::string {
    std::string s = "host=127.0.0.1 port=" + std::to_string(port_) +
                    " user=postgres dbname=postgres connect_timeout=5";
    if (!extra.empty()) s += " " + extra;
    return s;
  }

  /// Starts the server (again, after a stop: on the same port and data) and returns once it
  /// accepts connections (a replica: once it is consistent and serves reads).
  void start() {
    try {
      run_checked(as_user({(bindir_ / "pg_ctl").string(), "-D", data().string(), "-l",
                           log().string(), "-o", server_options(), "-w", "-t", "60", "start"}),
                  90s);
    } catch (const std::exception& e) {
      throw std::runtime_error(std::string(e.what()) + "\nserver log:\n" + log_tail());
    }
  }

  /// Stops the server at once (`-m immediate`: no clean shutdown, like a crash; every backend
  /// is killed, clients get an error or a closed socket).
  void stop() { stop_with("immediate"); }

  /// A clean shutdown (`-m fast`): open transactions rolled back, clients told "terminating
  /// connection due to administrator command", a shutdown checkpoint.
  void stop_fast() { stop_with("fast"); }

  /// True while the postmaster runs (its pid file is there).
  [[nodiscard]] auto running() const -> bool { return fs::exists(data() / "postmaster.pid"); }

  /// `pg_ctl restart -m immediate`: every backend dies at once, the postmaster runs crash
  /// recovery and accepts connections again; returns when it does.
  void restart_immediate() {
    run_checked(as_user({(bindir_ / "pg_ctl").string(), "-D", data().string(), "-l", log().string(),
                         "-o", server_options(), "-m", "immediate", "-w", "-t", "60", "restart"}),
                90s);
  }

  [[nodiscard]] auto log_tail() const -> std::string { return file_tail(log()); }

  /// Runs a program from the server's bin directory (pgbench, psql) as the server's account.
  [[nodiscard]] auto tool(const std::string& name, std::vector<std::string> args) const
      -> std::vector<std::string> {
    args.insert(args.begin(), (bindir_ / name).string());
    return as_user(std::move(args));
  }

  /// Runs `sql` through psql (no libpq needed here) and returns its unaligned, tuples-only
  /// output without the trailing newline ("f", "0/3000148"). Throws with psql's message if it
  /// fails or takes longer than `limit`.
  auto query(const std::string& sql, std::chrono::milliseconds limit = 10s) const
      -> std::string {
    auto out = run_checked(tool("psql", {"-h", "127.0.0.1", "-p", std::to_string(port_), "-U",
                                         "postgres", "-d", "postgres", "-X", "-A", "-t", "-q",
                                         "-v", "ON_ERROR_STOP=1", "-c", sql}),
                           limit);
    while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
    return out;
  }

  /// The primary's WAL position now (`pg_current_wal_lsn()`), e.g. "0/3000148".
  [[nodiscard]] auto current_wal_lsn() const -> std::string {
    return query("SELECT pg_current_wal_lsn()");
  }

  /// A replica: waits up to `limit` until it has replayed the WAL up to `lsn` (the primary's
  /// `current_wal_lsn()`: everything committed there by then is visible here). False on
  /// timeout; a failing query (the replica down) counts as not there yet.
  [[nodiscard]] auto wait_replayed(const std::string& lsn, std::chrono::milliseconds limit = 10s) const
      -> bool {
    const auto sql = "SELECT pg_last_wal_replay_lsn() >= '" + lsn + "'::pg_lsn";
    return wait_until(
        [&] {
          try {
            return query(sql, 5s) == "t";
          } catch (const std::exception&) {
            return false;
          }
        },
        limit, 20ms);
  }
  /// ... up to the primary's position now.
  [[nodiscard]] auto wait_replayed(const postgres_server& primary,
                                   std::chrono::milliseconds limit = 10s) const -> bool {
    return wait_replayed(primary.current_wal_lsn(), limit);
  }

 private:
  // What both constructors do before the data directory exists: the account, the bin
  // directory, a free port and the reaper (which stops the server and removes the directory
  // should this process die first).
  void prepare() {
    bindir_ = postgres_bindir();
    if (account_) dir_.give_to(*account_);
    port_ = free_port();
    reaper_.emplace(as_user_shell({(bindir_ / "pg_ctl").string(), "-D", data().string(), "-m",
                                   "immediate", "-w", "-t", "10", "stop"}) +
                    " >/dev/null 2>&1; rm -rf " + sh_quote(dir_.path().string()));
  }

  template <class Make>
  void make_data(Make make) {
    try {
      make();
      start();
    } catch (...) {
      // pg_ctl may have given up waiting on a postmaster that runs all the same.
      try {
        stop();
      } catch (...) {
      }
      kill_from_pid_file();
      throw;
    }
  }

  void stop_with(const char* mode) {
    if (!running()) return;
    run_checked(as_user({(bindir_ / "pg_ctl").string(), "-D", data().string(), "-m", mode, "-w",
                         "-t", "30", "stop"}),
                60s);
  }

  [[nodiscard]] auto data() const -> fs::path { return dir_.path() / "data"; }
  [[nodiscard]] auto log() const -> fs::path { return dir_.path() / "server.log"; }

  [[nodiscard]] auto server_options() const -> std::string {
    // On the command line, so a replica's copy of the primary's postgresql.auto.conf (which
    // pg_basebackup -R extends with primary_conninfo) cannot move its port.
    std::string o = "-p " + std::to_string(port_) + " -k " + dir_.path().string() +
                    " -c listen_addresses=127.0.0.1 -c max_connections=" +
                    std::to_string(opts_.max_connections) + " -c fsync=" +
                    (opts_.fsync ? "on" : "off");
    if (!opts_.shared_buffers.empty()) o += " -c shared_buffers=" + opts_.shared_buffers;
    if (opts_.replication) {
      // wal_keep_size: a replica stopped for a while can still catch up from the primary's WAL.
      o += " -c wal_level=replica -c max_wal_senders=10 -c wal_keep_size=256MB"
           " -c hot_standby=on";
    }
    if (replica_) {
      // Reconnect to the primary soon after losing it (default 5 s); report replay progress
      // often.
      o += " -c wal_retrieve_retry_interval=200ms -c wal_receiver_status_interval=1s";
    }
    return o;
  }

  [[nodiscard]] auto as_user(std::vector<std::string> argv) const -> std::vector<std::string> {
    if (account_) argv.insert(argv.begin(), {"runuser", "-u", account_->name, "--"});
    return argv;
  }
  [[nodiscard]] auto as_user_shell(const std::vector<std::string>& argv) const -> std::string {
    std::string s;
    for (const auto& a : as_user(argv)) s += sh_quote(a) + " ";
    return s;
  }

  void kill_from_pid_file() noexcept {
    std::ifstream in(data() / "postmaster.pid");
    long pid = 0;
    if (in >> pid && pid > 1) ::kill(static_cast<pid_t>(pid), SIGKILL);
  }

  options opts_;
  temp_dir dir_;
  std::optional<run_as_user> account_;
  bool replica_ = false;
  int primary_port_ = 0;
  fs::path bindir_;
  int port_ = 0;
  std::optional<reaper> reaper_;
};

/// A primary and `replicas` streaming replicas, each a `postgres_server` of its own (temp dir,
/// free port, reaper) on 127.0.0.1. Cheap to start: small shared_buffers, fsync off, no spread
/// checkpoint for the base backups. The replicas are stopped before the primary.
class postgres_replication {
 public:
  struct options {
    int replicas = 2;
    int max_connections = 100;
    std::string shared_buffers = "16MB";
  };

  explicit postgres_replication(options o)
      : primary_(postgres_server::options{.max_connections = o.max_connections,
                                          .replication = true,
                                          .shared_buffers = o.shared_buffers}) {
    for (int i = 0; i < o.replicas; ++i)
      replicas_.push_back(std::make_unique<postgres_server>(postgres_server::replica_of{primary_}));
  }
  postgres_replication() : postgres_replication(options{}) {}
  postgres_replication(const postgres_replication&) = delete;
  auto operator=(const postgres_replication&) -> postgres_replication& = delete;
  ~postgres_replication() { replicas_.clear(); }

  [[nodiscard]] auto primary() -> postgres_server& { return primary_; }
  [[nodiscard]] auto primary() const -> const postgres_server& { return primary_; }
  [[nodiscard]] auto replica(std::size_t i) -> postgres_server& { return *replicas_.at(i); }
  [[nodiscard]] auto replica(std::size_t i) const -> const postgres_server& { return *replicas_.at(i); }
  [[nodiscard]] auto replica_count() const noexcept -> std::size_t { return replicas_.size(); }

  /// Waits (bounded, `limit` in all) until every running replica has replayed the primary's
  /// WAL as of now; false if one has not in time.
  [[nodiscard]] auto wait_replicas_caught_up(std::chrono::milliseconds limit = 10s) const -> bool {
    const auto lsn = primary_.current_wal_lsn();
    const auto end = steady::now() + limit;
    for (const auto& r : replicas_) {
      if (!r->running()) continue;
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(end - steady::now());
      if (!r->wait_replayed(lsn, std::max(left, std::chrono::milliseconds(0)))) return false;
    }
    return true;
  }

 private:
  postgres_server primary_;
  std::vector<std::unique_ptr<postgres_server>> replicas_;
};

// ------------------------------------------------------------------ PgBouncer

/// PgBouncer (Debian's `pgbouncer`) in front of one PostgreSQL: listens on 127.0.0.1 at a free
/// port, database `postgres` forwarded to the server as user postgres, `pool_mode` and
/// `default_pool_size` as given, trust authentication. Runs as the postgres account when we are
/// root (it refuses root too).
class pgbouncer_server {
 public:
  pgbouncer_server(const postgres_server& pg, std::string pool_mode, int default_pool_size)
      : dir_("pgbouncer"), account_(postgres_account()) {
    binary_ = need_program("pgbouncer", "pgbouncer");
    port_ = free_port();
    const auto d = dir_.path().string();
    {
      std::ofstream users(dir_.path() / "users.txt");
      users << "\"postgres\" \"\"\n";
      std::ofstream conf(dir_.path() / "pgbouncer.ini");
      conf << "[databases]\n"
           << "postgres = host=127.0.0.1 port=" << pg.port() << " dbname=postgres user=postgres\n"
           << "[pgbouncer]\n"
           << "listen_addr = 127.0.0.1\n"
           << "listen_port = " << port_ << "\n"
           << "unix_socket_dir =\n"
           << "auth_type = trust\n"
           << "auth_file = " << d << "/users.txt\n"
           << "pool_mode = " << pool_mode << "\n"
           << "default_pool_size = " << default_pool_size << "\n"
           << "max_client_conn = 500\n"
           << "ignore_startup_parameters = extra_float_digits\n"
           << "logfile = " << d << "/pgbouncer.log\n"
           << "pidfile = " << d << "/pgbouncer.pid\n";
      if (!conf || !users) throw std::runtime_error("writing the pgbouncer config in " + d);
    }
    if (account_) {
      dir_.give_to(*account_);
      for (const char* f : {"users.txt", "pgbouncer.ini"})
        if (::chown((dir_.path() / f).c_str(), account_->uid, account_->gid) != 0)
          fail_errno("chown " + (dir_.path() / f).string());
    }
    std::vector<std::string> argv{binary_.string(), d + "/pgbouncer.ini"};
    if (account_) argv.insert(argv.begin(), {"runuser", "-u", account_->name, "--"});
    start_server(proc_, reaper_,
                 {.argv = argv, .log = dir_.path() / "stdout.log", .dir = dir_.path(), .port = port_,
                  .ready = [this] { return port_accepts(port_); },
                  .diagnostics = [this] {
                    return file_tail(dir_.path() / "pgbouncer.log") +
                           file_tail(dir_.path() / "stdout.log");
                  }});
  }
  pgbouncer_server(const pgbouncer_server&) = delete;
  auto operator=(const pgbouncer_server&) -> pgbouncer_server& = delete;
  ~pgbouncer_server() {
    proc_.kill_and_wait(2s);
    reaper_.reset();
  }

  [[nodiscard]] auto port() const noexcept -> int { return port_; }
  /// A libpq connection string through PgBouncer; `extra` is appended.
  [[nodiscard]] auto conninfo(const std::string& extra = {}) const -> std::string {
    std::string s = "host=127.0.0.1 port=" + std::to_string(port_) +
                    " user=postgres dbname=postgres connect_timeout=5";
    if (!extra.empty()) s += " " + extra;
    return s;
  }

 private:
  temp_dir dir_;
  std::optional<run_as_user> account_;
  fs::path binary_;
  int port_ = 0;
  child proc_;
  std::optional<reaper> reaper_;
};

// ------------------------------------------------------------------ Redis

/// True if a Redis server answers PING on 127.0.0.1:port (even if only to ask for AUTH).
inline auto redis_ping(int port) -> bool {
  const int fd = connect_local(port, 500ms);
  if (fd < 0) return false;
  bool ok = false;
  constexpr std::string_view ping = "PING\r\n";
  if (::send(fd, ping.data(), ping.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(ping.size())) {
    char buf[64];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    // A server with requirepass answers, but with -NOAUTH: it is up all the same.
    ok = (n >= 5 && std::string_view(buf, 5) == "+PONG") ||
         (n >= 7 && std::string_view(buf, 7) == "-NOAUTH");
  }
  ::close(fd);
  return ok;
}

/// `redis-server` as our child, no persistence, on 127.0.0.1:port.
class redis_server {
 public:
  explicit redis_server(std::vector<std::string> extra_args = {})
      : dir_("redis"), extra_(std::move(extra_args)) {
    binary_ = need_program("redis-server", "redis-server");
    port_ = free_port();
    start();
  }
  redis_server(const redis_server&) = delete;
  auto operator=(const redis_server&) -> redis_server& = delete;
  ~redis_server() {
    proc_.kill_and_wait();
    reaper_.reset();
  }

  [[nodiscard]] auto port() const noexcept -> int { return port_; }

  void start() {
    std::vector<std::string> argv{binary_.string(), "--port", std::to_string(port_), "--bind",
                                  "127.0.0.1", "--save", "", "--appendonly", "no",
                                  "--daemonize", "no", "--dir", dir_.path().string(),
                                  "--protected-mode", "no"};
    argv.insert(argv.end(), extra_.begin(), extra_.end());
    start_server(proc_, reaper_,
                 {.argv = argv, .log = log(), .dir = dir_.path(), .port = port_,
                  .ready = [this] { return redis_ping(port_); },
                  .diagnostics = [this] { return log_tail(); }});
  }

  /// SIGKILL, as a crash: no goodbye to the clients.
  void kill9() { proc_.kill_and_wait(); }

  [[nodiscard]] auto log_tail() const -> std::string { return file_tail(log()); }

 private:
  [[nodiscard]] auto log() const -> fs::path { return dir_.path() / "redis.log"; }

  temp_dir dir_;
  std::vector<std::string> extra_;
  fs::path binary_;
  int port_ = 0;
  child proc_;
  std::optional<reaper> reaper_;
};

// ------------------------------------------------------------------ nginx

/// nginx in the foreground as our child, with a config of its own in a temp dir:
///   /          200 "hello\n"
///   /close     200 with `Connection: close` (keepalive_timeout 0 there)
///   /status    stub_status (the server's own count of open connections)
class nginx_server {
 public:
  explicit nginx_server(std::chrono::seconds keepalive_timeout = 1s) : dir_("nginx") {
    binary_ = need_program("nginx", "nginx");
    port_ = free_port();
    const auto d = dir_.path().string();
    std::ofstream conf(dir_.path() / "nginx.conf");
    conf << "daemon off;\n"
         << "worker_processes 1;\n"
         << "pid " << d << "/nginx.pid;\n"
         << "error_log " << d << "/error.log info;\n"
         << "events { worker_connections 256; }\n"
         << "http {\n"
         << "  access_log off;\n"
         << "  client_body_temp_path " << d << "/body;\n"
         << "  proxy_temp_path " << d << "/proxy;\n"
         << "  fastcgi_temp_path " << d << "/fastcgi;\n"
         << "  uwsgi_temp_path " << d << "/uwsgi;\n"
         << "  scgi_temp_path " << d << "/scgi;\n"
         << "  keepalive_timeout " << keepalive_timeout.count() << "s;\n"
         << "  keepalive_requests 100000;\n"
         << "  server {\n"
         << "    listen 127.0.0.1:" << port_ << ";\n"
         << "    location = / { default_type text/plain; return 200 \"hello\\n\"; }\n"
         << "    location = /close { keepalive_timeout 0; default_type text/plain; "
            "return 200 \"bye\\n\"; }\n"
         << "    location = /status { stub_status; }\n"
         << "  }\n"
         << "}\n";
    conf.close();
    ::chmod(d.c_str(), 0755);
    start();
  }
  nginx_server(const nginx_server&) = delete;
  auto operator=(const nginx_server&) -> nginx_server& = delete;
  ~nginx_server() {
    proc_.kill_and_wait(2s);
    reaper_.reset();
  }

  [[nodiscard]] auto port() const noexcept -> int { return port_; }

  void start() {
    const auto d = dir_.path().string();
    start_server(proc_, reaper_,
                 {.argv = {binary_.string(), "-p", d, "-e", d + "/error.log", "-c",
                           d + "/nginx.conf"},
                  .log = dir_.path() / "stdout.log", .dir = dir_.path(), .port = port_,
                  .ready = [this] { return port_accepts(port_); },
                  .diagnostics = [this] { return log_tail(); }});
  }

  /// SIGKILL to the master and its workers, as a crash.
  void kill9() { proc_.kill_and_wait(); }

  /// The server's count of open client connections (stub_status "Active connections"),
  /// including the one that asks; nullopt if the server did not answer.
  [[nodiscard]] auto active_connections() const -> std::optional<int> {
    auto reply = tcp_exchange(port_, "GET /status HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    if (!reply) return std::nullopt;
    const auto at = reply->find("Active connections:");
    if (at == std::string::npos) return std::nullopt;
    return std::atoi(reply->c_str() + at + std::strlen("Active connections:"));
  }

  [[nodiscard]] auto log_tail() const -> std::string { return file_tail(dir_.path() / "error.log"); }

 private:
  temp_dir dir_;
  fs::path binary_;
  int port_ = 0;
  child proc_;
  std::optional<reaper> reaper_;
};

// ------------------------------------------------------------------ MariaDB

/// True if something on 127.0.0.1:port speaks the MySQL protocol: a server sends its handshake
/// (protocol version 10) as soon as it accepts, or an error packet (too many connections, a
/// blocked host) when it will not serve us; either way it is up.
inline auto mysql_greets(int port) -> bool {
  const int fd = connect_local(port, 500ms);
  if (fd < 0) return false;
  unsigned char buf[64];
  const auto n = ::recv(fd, buf, sizeof buf, 0);
  ::close(fd);
  return n >= 5 && (buf[4] == 0x0a || buf[4] == 0xff);
}

/// A MariaDB server of its own: a data directory from `mariadb-install-db` (run once per process,
/// copied for each server) in a temp dir, then `mariadbd` as our child
/// (in its own process group) on 127.0.0.1:port, with a user `respool` (password `respool`,
/// every privilege) that reaches it over TCP and a database `respool`. Killed with SIGKILL (as a
/// crash) and restarted on the same port and data by `kill9()` and `start()`.
class mariadb_server {
 public:
  struct options {
    int max_connections = 200;
    /// innodb_flush_log_at_trx_commit = 1 (a commit waits for the disk, the server's default);
    /// off by default: tests and select-only benchmarks need no durability.
    bool durable = false;
    int buffer_pool_mb = 32;
    /// More mariadbd options, e.g. "--wait-timeout=1".
    std::vector<std::string> extra_args = {};
  };
  static constexpr const char* user = "respool";
  static constexpr const char* password = "respool";
  static constexpr const char* database = "respool";

  explicit mariadb_server(options o)
      : opts_(std::move(o)), dir_("mariadb"), account_(service_account("mysql", "MariaDB", "mariadb-server")) {
    server_ = need_program("mariadbd", "mariadb-server");
    if (account_) dir_.give_to(*account_);
    port_ = free_port();
    reaper_.emplace("rm -rf " + sh_quote(dir_.path().string()));
    {
      std::ofstream init(dir_.path() / "init.sql");
      init << "CREATE USER IF NOT EXISTS '" << user << "'@'127.0.0.1' IDENTIFIED BY '" << password
           << "';\nGRANT ALL PRIVILEGES ON *.* TO '" << user << "'@'127.0.0.1' WITH GRANT OPTION;\n"
           << "CREATE DATABASE IF NOT EXISTS " << database << ";\n";
    }
    run_checked({"cp", "-a", installed(account_).data().string(), data().string()}, 120s);
    start();
  }
  mariadb_server() : mariadb_server(options{}) {}
  mariadb_server(const mariadb_server&) = delete;
  auto operator=(const mariadb_server&) -> mariadb_server& = delete;
  ~mariadb_server() {
    proc_.kill_and_wait();
    reaper_.reset();
  }

  [[nodiscard]] auto port() const noexcept -> int { return port_; }
  [[nodiscard]] auto dir() const -> const fs::path& { return dir_.path(); }

  /// A key=value connection string for examples/backends/mysql.hpp; `extra` is appended
  /// ("read_timeout=2").
  [[nodiscard]] auto conninfo(const std::string& extra = {}) const -> std::string {
    std::string s = "host=127.0.0.1 port=" + std::to_string(port_) + " user=" + user +
                    " password=" + password + " database=" + database + " connect_timeout=5";
    if (!extra.empty()) s += " " + extra;
    return s;
  }

  /// Starts mariadbd (again, after `kill9`: InnoDB recovers) and waits until it greets clients.
  void start() {
    const auto d = dir_.path();
    std::vector<std::string> argv{server_.string(), "--no-defaults", "--datadir=" + data().string(),
                                  "--port=" + std::to_string(port_), "--bind-address=127.0.0.1",
                                  "--socket=" + (d / "mysqld.sock").string(),
                                  "--pid-file=" + (d / "mariadbd.pid").string(),
                                  "--log-error=" + log().string(),
                                  "--init-file=" + (d / "init.sql").string(), "--skip-log-bin",
                                  "--skip-name-resolve", "--performance-schema=OFF",
                                  "--max-connections=" + std::to_string(opts_.max_connections)};
    if (account_) argv.push_back("--user=" + account_->name);
    const auto engine = engine_options();
    argv.insert(argv.end(), engine.begin(), engine.end());
    argv.insert(argv.end(), opts_.extra_args.begin(), opts_.extra_args.end());
    proc_ = child(argv, d / "stdout.log");
    reaper_.reset();
    reaper_.emplace("kill -KILL -" + std::to_string(proc_.pid()) + " 2>/dev/null; rm -rf " +
                    sh_quote(d.string()));
    const bool up = wait_until([&] { return mysql_greets(port_) || !proc_.running(); }, 60s);
    if (!up || !proc_.running())
      throw std::runtime_error("mariadbd did not start on port " + std::to_string(port_) + ":\n" +
                               log_tail() + file_tail(d / "stdout.log"));
  }

  /// SIGKILL, as a crash: every connection drops at once, with no goodbye.
  void kill9() { proc_.kill_and_wait(); }

  [[nodiscard]] auto log_tail() const -> std::string { return file_tail(log()); }

 private:
  [[nodiscard]] auto data() const -> fs::path { return dir_.path() / "data"; }
  [[nodiscard]] auto log() const -> fs::path { return dir_.path() / "server.log"; }
  // Small, and quick to recover after a SIGKILL.
  [[nodiscard]] auto engine_options() const -> std::vector<std::string> {
    return {"--innodb-buffer-pool-size=" + std::to_string(opts_.buffer_pool_mb) + "M",
            log_file_size,
            std::string("--innodb-flush-log-at-trx-commit=") + (opts_.durable ? "1" : "0")};
  }

  // mariadb-install-db takes from half a second to several on a busy disk: it runs once per
  // process, and each server starts from a copy of what it made (`cp -a` keeps the owner). The
  // copy is removed at exit, or by its reaper if the process dies first.
  struct installed_data {
    explicit installed_data(const std::optional<run_as_user>& account) : dir("mariadb-installed") {
      if (account) dir.give_to(*account);
      cleanup.emplace("rm -rf " + sh_quote(dir.path().string()));
      std::vector<std::string> argv{need_program("mariadb-install-db", "mariadb-server").string(),
                                    "--no-defaults", "--datadir=" + data().string(),
                                    "--auth-root-authentication-method=normal", "--skip-test-db",
                                    "--skip-name-resolve", log_file_size};
      if (account) argv.push_back("--user=" + account->name);
      run_checked(argv, 120s);
    }
    [[nodiscard]] auto data() const -> fs::path { return dir.path() / "data"; }
    temp_dir dir;
    std::optional<reaper> cleanup;
  };
  static auto installed(const std::optional<run_as_user>& account) -> const installed_data& {
    static const installed_data once(account);  // a failure is retried by the next server
    return once;
  }
  static constexpr const char* log_file_size = "--innodb-log-file-size=16M";

  options opts_;
  temp_dir dir_;
  std::optional<run_as_user> account_;
  fs::path server_;
  int port_ = 0;
  child proc_;
  std::optional<reaper> reaper_;
};

// ------------------------------------------------------------------ Prometheus

/// `prometheus` (the server) as our child, on 127.0.0.1:port, with a config of its own and its
/// database in a temp dir, scraping `targets` ("127.0.0.1:8080") as job "respool" every
/// `scrape_interval`. Ready once `/-/ready` answers 200.
class prometheus_server {
 public:
  explicit prometheus_server(const std::vector<std::string>& targets,
                             std::chrono::milliseconds scrape_interval = 200ms)
      : dir_("prometheus") {
    binary_ = need_program("prometheus", "prometheus");
    port_ = free_port();
    std::ofstream conf(dir_.path() / "prometheus.yml");
    conf << "global:\n"
         << "  scrape_interval: " << scrape_interval.count() << "ms\n"
         << "  scrape_timeout: " << scrape_interval.count() << "ms\n"
         << "scrape_configs:\n"
         << "  - job_name: respool\n"
         << "    static_configs:\n"
         << "      - targets: [";
    for (std::size_t i = 0; i < targets.size(); ++i) conf << (i ? ", '" : "'") << targets[i] << "'";
    conf << "]\n";
    conf.close();
    const auto d = dir_.path().string();
    start_server(proc_, reaper_,
                 {.argv = {binary_.string(), "--config.file=" + d + "/prometheus.yml",
                           "--storage.tsdb.path=" + d + "/data",
                           "--web.listen-address=127.0.0.1:" + std::to_string(port_)},
                  .log = log(), .dir = dir_.path(), .port = port_, .limit = 30s,
                  .ready =
                      [this] {
                        auto r = tcp_exchange(port_, "GET /-/ready HTTP/1.1\r\nHost: 127.0.0.1"
                                                     "\r\nConnection: close\r\n\r\n");
                        return r && r->rfind("HTTP/1.1 200", 0) == 0;
                      },
                  .diagnostics = [this] { return log_tail(); }});
  }
  prometheus_server(const prometheus_server&) = delete;
  auto operator=(const prometheus_server&) -> prometheus_server& = delete;
  ~prometheus_server() {
    proc_.kill_and_wait(5s);
    reaper_.reset();
  }

  [[nodiscard]] auto port() const noexcept -> int { return port_; }
  [[nodiscard]] auto log_tail() const -> std::string { return file_tail(log()); }

 private:
  [[nodiscard]] auto log() const -> fs::path { return dir_.path() / "prometheus.log"; }

  temp_dir dir_;
  fs::path binary_;
  int port_ = 0;
  child proc_;
  std::optional<reaper> reaper_;
};

}  // namespace respool_it
