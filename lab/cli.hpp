#pragma once
// respool-lab's command line: the options, their defaults, parsing and the --help text.
#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <vector>

namespace lab {

/// Bad command line: reported with a hint to --help, exit code 2.
class usage_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

inline constexpr std::size_t max_pool_size = 4096;
inline constexpr std::size_t max_clients = 10'000;

struct options {
  std::string backend = "auto";      // auto: postgres on a server of its own, else sqlite
  std::string conninfo;              // empty: the backend's default
  std::vector<std::size_t> sizes;    // empty: the default sweep plus the recommended size
  double duration_s = 5.0;           // measured seconds per pool size and round
  std::size_t rounds = 3;            // each size measured this often, sizes rotated per round
  double warmup_s = 1.0;             // unmeasured seconds before each measurement
  std::size_t clients = 200;
  unsigned write_percent = 20;
  std::int64_t accounts = 10'000;
  std::chrono::milliseconds acquire_timeout{2000};
  std::size_t spindles = 1;          // effective spindles for respool::sizing's recommendation
  std::string synchronous = "FULL";  // SQLite: FULL (each commit waits for the disk), NORMAL, OFF
  bool unpooled = false;
  bool adaptive = true;              // also run a pool with pool_options::adaptive
  bool thread_pool_burst = false;    // --thread-pool: the thread pool's IO burst instead
  bool use_thread_pool = false;
  bool help = false;
  bool version = false;
  std::filesystem::path out = "lab-results";
};

inline const std::vector<std::size_t> default_sweep{1, 2, 4, 8, 16, 32, 64, 128};

inline auto usage() -> std::string {
  return R"(usage: respool-lab [options]

Sweeps pool sizes: for each size, CLIENTS threads run a mixed read/write workload through a
respool::pool of that many connections, then it prints a table (throughput, p50/p99 latency,
mean wait for a connection, timeouts, errors), writes a CSV and an SVG chart, and compares the
best measured size with the size respool::sizing recommends for this machine
(cores * 2 + effective spindles).

The workload: a bank. A table of ACCOUNTS accounts (id, owner, balance) and a ledger of
transfers. Each client loops without pause: take a connection from the pool, run one request
(a transaction), give the connection back. 100 - WRITE% of the requests read an account page
(the account by a random id and its last five transfers, from one snapshot); WRITE% transfer a
random amount between two random accounts (BEGIN; check the balance; two UPDATEs; INSERT into
the ledger; COMMIT). Each pool is fixed-size (min_idle = max_size, all connections opened
before the warm-up). Per request the lab measures the wait for a connection and the total
latency; a request that gets no connection within the acquire timeout counts as a timeout, one
whose query fails as an error. Throughput counts the requests completed in the measured window.

By default the lab starts a PostgreSQL server of its own (Debian's postgresql package; the
server runs on 127.0.0.1 at a free port, its data in a temporary directory removed afterwards,
durable: a commit waits for the disk) and runs the workload there; without PostgreSQL it says so
and falls back to the embedded SQLite database.

SQLite (--backend sqlite: embedded, no server) runs in WAL mode with synchronous=FULL (SQLite's
default, and what PostgreSQL and MySQL do by default: a commit returns once it is on disk) and a
5 s busy timeout: readers run in parallel, writers take turns on the database's one write lock
and each commit waits for the disk.
With a small pool the callers queue in the pool, in order, and the connections stay busy; with
a big one they all reach the database at once: writers that find the lock taken sleep in
SQLite's busy handler and retry, and the threads holding connections compete for the cores.

options:
  --backend NAME          postgres, sqlite, redis or mysql (when built with libpq / hiredis /
                          libmariadb; on Redis a read is a GET, a write a Lua script moving
                          the amount); default: postgres where it can run, else sqlite
  --conninfo STR          sqlite: the database file (default OUT/lab.db; its tables
                          respool_lab_accounts and respool_lab_transfers are recreated);
                          postgres: a libpq connection string (the same two tables are
                          recreated; default: the lab starts a PostgreSQL server of its own,
                          which needs initdb: Debian's postgresql); redis: HOST[:PORT]
                          or redis://HOST[:PORT][/DB] (default 127.0.0.1:6379); mysql: "host=H
                          port=P user=U password=S database=D" (the same two tables are
                          recreated; default: the lab starts a MariaDB server of its own in a
                          temporary directory, which needs mariadbd: Debian's mariadb-server)
  --sizes LIST            comma-separated pool sizes (default 1,2,4,8,16,32,64,128 plus the
                          recommended size)
  --duration SEC          measured seconds per pool size and round (default 5)
  --rounds N              rounds (default 3): every size is measured once per round, the
                          order rotated from one round to the next so that drift falls on all
                          sizes alike; the table shows medians and their spread
  --warmup SEC            unmeasured seconds before each measurement (default 1)
  --clients N             client threads (default 200)
  --write-percent P       share of requests that write, 0-100 (default 20)
  --accounts N            rows in the accounts table (default 10000)
  --acquire-timeout MS    how long a client waits for a connection (default 2000)
  --spindles N            effective spindles for the recommended size (default 1; 0 when the
                          data set is in memory)
  --synchronous MODE      SQLite's synchronous setting: FULL (default: every commit waits for
                          the disk), NORMAL (WAL commits wait for nothing; the last ones may be
                          lost on a power cut) or OFF
  --unpooled              also run the connection-per-request baseline (no pool: each request
                          opens and closes its own connection)
  --no-adaptive           skip the adaptive pool (by default each round ends with a pool of
                          max_size 128 with pool_options::adaptive, starting at a limit of 1,
                          keeping what it learnt between rounds; the lab compares it with the
                          best fixed size and draws its limit over time)
  --thread-pool           instead of the sweep: respool::thread_pool's IO burst (1,000 tasks
                          of 2 ms, core 2, max 64, queue 1,000) with growth threads_first and
                          queue_first, tasks completed over time (a CSV and an SVG)
  --use-thread-pool       run the clients on a respool::thread_pool instead of std::threads
  --out DIR               where the CSVs and the SVGs go (default lab-results)
  --help                  this text
  --version               respool's version

exit status: 0 done, 1 the run failed (backend unreachable, a server of its own that cannot
start, output not writable), 2 bad usage.
)";
}

namespace detail {
template <class T>
auto parse_integer(std::string_view flag, std::string_view text) -> T {
  T value{};
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end) {
    if (!text.empty() && text.front() == '-') {
      throw usage_error(std::string(flag) + " must not be negative (got '" + std::string(text) + "')");
    }
    throw usage_error(std::string(flag) + " expects a whole number, got '" + std::string(text) + "'");
  }
  return value;
}

inline auto parse_seconds(std::string_view flag, std::string_view text) -> double {
  double value = 0;
  const auto* end = text.data() + text.size();
  const auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || ec != std::errc{} || ptr != end || !(value >= 0.0) || value > 86'400.0) {
    throw usage_error(std::string(flag) + " expects seconds between 0 and 86400, got '" +
                      std::string(text) + "'");
  }
  return value;
}

inline auto parse_sizes(std::string_view text) -> std::vector<std::size_t> {
  std::vector<std::size_t> sizes;
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = text.find(',', start);
    const std::string_view item =
        text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start);
    if (item.empty()) throw usage_error("--sizes: empty entry in '" + std::string(text) + "'");
    const auto size = parse_integer<std::size_t>("--sizes", item);
    if (size == 0) {
      throw usage_error("--sizes: pool size 0 is not possible: a pool needs at least 1 connection");
    }
    if (size > max_pool_size) {
      throw usage_error("--sizes: pool size " + std::to_string(size) + " is above the lab's limit of " +
                        std::to_string(max_pool_size));
    }
    sizes.push_back(size);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  std::sort(sizes.begin(), sizes.end());
  sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  return sizes;
}
}  // namespace detail

/// Parses argv; throws `usage_error` with a message that names the flag.
inline auto parse(int argc, char** argv) -> options {
  options o;
  const std::vector<std::string_view> args(argv + 1, argv + argc);
  for (std::size_t i = 0; i < args.size(); ++i) {
    std::string_view flag = args[i];
    std::string_view value;
    bool has_value = false;
    if (const auto eq = flag.find('='); flag.starts_with("--") && eq != std::string_view::npos) {
      value = flag.substr(eq + 1);
      flag = flag.substr(0, eq);
      has_value = true;
    }
    auto next = [&]() -> std::string_view {
      if (has_value) return value;
      if (i + 1 >= args.size()) throw usage_error(std::string(flag) + " needs a value");
      return args[++i];
    };
    auto no_value = [&] {
      if (has_value) throw usage_error(std::string(flag) + " takes no value");
    };

    if (flag == "--help" || flag == "-h") {
      no_value();
      o.help = true;
    } else if (flag == "--version") {
      no_value();
      o.version = true;
    } else if (flag == "--backend") {
      o.backend = std::string(next());
      if (o.backend != "sqlite" && o.backend != "postgres" && o.backend != "redis" &&
          o.backend != "mysql") {
        throw usage_error("unknown backend '" + o.backend +
                          "' (expected sqlite, postgres, redis or mysql)");
      }
    } else if (flag == "--conninfo") {
      o.conninfo = std::string(next());
    } else if (flag == "--sizes") {
      o.sizes = detail::parse_sizes(next());
    } else if (flag == "--duration") {
      o.duration_s = detail::parse_seconds(flag, next());
      if (o.duration_s <= 0.0) throw usage_error("--duration must be more than 0 seconds");
    } else if (flag == "--warmup") {
      o.warmup_s = detail::parse_seconds(flag, next());
    } else if (flag == "--rounds") {
      o.rounds = detail::parse_integer<std::size_t>(flag, next());
      if (o.rounds == 0 || o.rounds > 20) throw usage_error("--rounds must be between 1 and 20");
    } else if (flag == "--clients") {
      o.clients = detail::parse_integer<std::size_t>(flag, next());
      if (o.clients == 0 || o.clients > max_clients) {
        throw usage_error("--clients must be between 1 and " + std::to_string(max_clients));
      }
    } else if (flag == "--write-percent") {
      o.write_percent = detail::parse_integer<unsigned>(flag, next());
      if (o.write_percent > 100) throw usage_error("--write-percent must be between 0 and 100");
    } else if (flag == "--accounts") {
      o.accounts = detail::parse_integer<std::int64_t>(flag, next());
      if (o.accounts < 2 || o.accounts > 100'000'000) {
        throw usage_error("--accounts must be between 2 and 100000000");
      }
    } else if (flag == "--acquire-timeout") {
      const auto ms = detail::parse_integer<std::int64_t>(flag, next());
      if (ms <= 0 || ms > 3'600'000) {
        throw usage_error("--acquire-timeout must be between 1 and 3600000 ms");
      }
      o.acquire_timeout = std::chrono::milliseconds(ms);
    } else if (flag == "--spindles") {
      o.spindles = detail::parse_integer<std::size_t>(flag, next());
      if (o.spindles > 1000) throw usage_error("--spindles must be between 0 and 1000");
    } else if (flag == "--synchronous") {
      o.synchronous = std::string(next());
      if (o.synchronous != "FULL" && o.synchronous != "NORMAL" && o.synchronous != "OFF") {
        throw usage_error("--synchronous must be FULL, NORMAL or OFF");
      }
    } else if (flag == "--unpooled") {
      no_value();
      o.unpooled = true;
    } else if (flag == "--no-adaptive") {
      no_value();
      o.adaptive = false;
    } else if (flag == "--thread-pool") {
      no_value();
      o.thread_pool_burst = true;
    } else if (flag == "--use-thread-pool") {
      no_value();
      o.use_thread_pool = true;
    } else if (flag == "--out") {
      o.out = std::string(next());
      if (o.out.empty()) throw usage_error("--out needs a directory");
    } else {
      throw usage_error("unknown option '" + std::string(args[i]) + "'");
    }
  }
  return o;
}

}  // namespace lab
