// MySQL / MariaDB point selects through respool, against the server's standard benchmark tool in
// the same run: `sysbench oltp_point_select` with as many persistent connections as the pool has
// (K), and against opening a connection per request. Also measures what the validator and the
// resetter cost per call. Prints JSON lines; the `pooled` ones carry the ratios.
//
//   respool_bench_mysql_select [--conninfo=STR] [--pool=K] [--threads=N,N,...] [--seconds=S]
//                              [--runs=R] [--rows=N]
//
// Without --conninfo it starts its own MariaDB on 127.0.0.1 (mariadb-install-db in a temp dir, as
// the integration tests do). `sysbench oltp_point_select prepare` creates sbtest1 with N rows
// (default 10,000). Every figure is the median of R rounds of S-second runs; each round runs every
// configuration once, in an order shuffled for that round (the machine's speed drifts, and a
// fixed order gives one configuration the same place in every round).
//
// What is compared:
//   sysbench      sysbench oltp_point_select --threads=K --time=S --db-ps-mode=disable
//                 --rand-type=uniform: K persistent connections, each event one
//                 `SELECT c FROM sbtest1 WHERE id=<random>` as a text query (the text protocol
//                 respool's side uses too; sysbench's default would prepare it server-side).
//   pooled        N threads through respool::pool (max_size = min_idle = K, validated on every
//                 borrow with the socket check), each request: acquire, the same SELECT, return.
//                 With the resetter in `rollback_only` mode (nothing to clean after a SELECT: no
//                 round trip) and in the default `reset_connection` mode (one COM_RESET_CONNECTION
//                 round trip per request: the price of guaranteed-clean sessions).
//   mutex_pool    N threads through the 60-line mutex + condition-variable pool
//                 (baseline_pool.hpp) of K, the same SELECT, no validation or reset.
//   k_of_n        the control for N > K: N threads, of which only K use the pool (the others
//                 sleep). What the pool would give if the threads beyond K cost nothing.
//   per_request   N threads (the first N), each request connects, runs the SELECT and closes.
//   validator_cost / resetter_cost  one connection, a tight loop: the socket check against
//                 mysql_ping, and a clean rollback_only return against mysql_reset_connection.
// The pooled, mutex_pool and k_of_n lines also give the client threads' context switches and CPU
// time per request (getrusage per thread): where the time of threads sharing connections goes.
#include <respool/pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend_bench.hpp"
#include "baseline_pool.hpp"
#include "backends/mysql.hpp"
#include "servers.hpp"

namespace my = respool_examples::mysql;
namespace bb = respool_backend_bench;
using namespace std::chrono_literals;

namespace {

// "    transactions:                        123456 (12345.67 per sec.)"
auto parse_tps(const std::string& out) -> double {
  const auto at = out.find("transactions:");
  if (at == std::string::npos) return 0.0;
  const auto open = out.find('(', at);
  return open == std::string::npos ? 0.0 : std::atof(out.c_str() + open + 1);
}

struct sysbench_runner {
  std::string program;
  std::vector<std::string> connection;  // --db-driver=mysql --mysql-host=... --tables ...

  auto run(const std::vector<std::string>& args, std::chrono::seconds limit) const -> std::string {
    std::vector<std::string> argv{program, "oltp_point_select"};
    argv.insert(argv.end(), connection.begin(), connection.end());
    argv.insert(argv.end(), args.begin(), args.end());
    return respool_it::run_checked(argv, limit);
  }
};

auto select_sql(std::minstd_rand& rng, int rows) -> std::string {
  std::uniform_int_distribution<int> id(1, rows);
  return "SELECT c FROM sbtest1 WHERE id=" + std::to_string(id(rng));
}

auto run_select(my::connection& c, const std::string& sql) -> bool {
  auto r = c.query(sql);
  MYSQL_ROW row = mysql_fetch_row(r.get());
  return row != nullptr && row[0] != nullptr;
}

// Nanoseconds per call of `op`, over `calls` calls (after a few unmeasured ones).
auto ns_per_call(int calls, const std::function<bool()>& op) -> double {
  for (int i = 0; i < 10; ++i) op();
  int failures = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < calls; ++i) failures += op() ? 0 : 1;
  const auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
  if (failures > 0) std::fprintf(stderr, "mysql_select: %d of %d calls failed\n", failures, calls);
  return ns / calls;
}

}  // namespace

int main(int argc, char** argv) {
  const bb::args a(argc, argv, {"conninfo", "pool", "threads", "seconds", "runs", "rows"},
                   "[--conninfo=STR] [--pool=K] [--threads=N,N] [--seconds=S] [--runs=R] [--rows=N]");
  const int k = std::max(1, static_cast<int>(a.number("pool", 4)));
  const auto thread_counts = a.integers("threads", std::to_string(k) + "," + std::to_string(4 * k));
  const double seconds = std::max(1.0, a.number("seconds", 5));
  const int runs = std::max(1, static_cast<int>(a.number("runs", 3)));
  const int rows = std::max(100, static_cast<int>(a.number("rows", 10000)));
  const int cores = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));

  try {
    std::optional<respool_it::mariadb_server> server;
    std::string conninfo = a.get("conninfo", "");
    if (conninfo.empty()) {
      server.emplace(respool_it::mariadb_server::options{.max_connections = 300, .buffer_pool_mb = 64});
      conninfo = server->conninfo();
    }
    const auto opts = my::options::parse(conninfo);
    sysbench_runner sysbench{respool_it::need_program("sysbench", "sysbench").string(),
                             {"--db-driver=mysql", "--mysql-user=" + opts.user,
                              "--mysql-password=" + opts.password, "--mysql-db=" + opts.database,
                              "--tables=1", "--table-size=" + std::to_string(rows)}};
    if (opts.unix_socket.empty()) {
      sysbench.connection.push_back("--mysql-host=" + opts.host);
      sysbench.connection.push_back("--mysql-port=" + std::to_string(opts.port));
    } else {
      sysbench.connection.push_back("--mysql-socket=" + opts.unix_socket);
    }

    const my::factory factory{opts};
    std::string version;
    {
      auto c = factory.create();
      version = c.server_version();
    }
    std::fprintf(stderr, "mysql_select: %s, preparing sbtest1 with %d rows ...\n", version.c_str(), rows);
    sysbench.run({"cleanup"}, 120s);
    sysbench.run({"prepare"}, 600s);

    // What a borrow and a return cost, on one idle connection.
    {
      auto c = factory.create();
      const my::validator socket_check{};
      const my::resetter reset_connection{};
      const my::resetter rollback_only{.mode = my::session_reset::rollback_only};
      const double check_ns = ns_per_call(200000, [&] { return socket_check.validate(c); });
      const double ping_ns = ns_per_call(5000, [&] { return mysql_ping(c.get()) == 0; });
      const double clean_ns = ns_per_call(200000, [&] { return rollback_only.reset(c); });
      const double reset_ns = ns_per_call(5000, [&] { return reset_connection.reset(c); });
      bb::json_line()
          .field("bench", "mysql_select").field("what", "validator_cost")
          .field("socket_check_ns", check_ns).field("mysql_ping_ns", ping_ns)
          .field("ping_vs_socket_check", check_ns > 0 ? ping_ns / check_ns : 0.0).print();
      bb::json_line()
          .field("bench", "mysql_select").field("what", "resetter_cost")
          .field("rollback_only_clean_ns", clean_ns).field("reset_connection_ns", reset_ns).print();
    }

    const auto secs = std::to_string(static_cast<int>(seconds + 0.5));
    auto run_sysbench = [&] {
      return parse_tps(sysbench.run({"--threads=" + std::to_string(k), "--time=" + secs,
                                     "--db-ps-mode=disable", "--rand-type=uniform",
                                     "--report-interval=0", "run"},
                                    std::chrono::seconds(static_cast<int>(seconds) + 120)));
    };

    // One configuration's runs: medians of these are reported.
    struct samples {
      std::vector<double> tps, switches, cpu_us;
      std::uint64_t errors = 0;
      void add(const bb::rate& r) {
        tps.push_back(r.per_second);
        switches.push_back(r.switches_per_op);
        cpu_us.push_back(r.cpu_us_per_op);
        errors += r.errors;
      }
    };
    enum class client { respool, mutex_pool, k_of_n };
    struct pooled_config {
      int threads;
      client kind;
      my::session_reset mode;
      const char* mode_name;
      samples runs;
    };
    std::vector<pooled_config> pooled;
    for (int n : thread_counts) {
      pooled.push_back({n, client::respool, my::session_reset::rollback_only, "rollback_only", {}});
      pooled.push_back({n, client::respool, my::session_reset::reset_connection, "reset_connection", {}});
      // The mutex pool neither validates nor resets: its mode is not used.
      pooled.push_back({n, client::mutex_pool, my::session_reset::rollback_only, "none", {}});
      if (n > k) pooled.push_back({n, client::k_of_n, my::session_reset::rollback_only, "rollback_only", {}});
    }
    std::vector<double> sysbench_tps;
    samples per_request;
    auto rngs_for = [](int threads, unsigned seed) {
      std::vector<std::minstd_rand> rngs;
      for (int t = 0; t < threads; ++t) rngs.emplace_back(static_cast<unsigned>(t) + seed);
      return rngs;
    };
    auto make_connection = [&] { return std::make_unique<my::connection>(factory.create()); };
    using mutex_pool = respool_bench::baseline_pool<my::connection, decltype(make_connection)>;

    auto run_pooled = [&](pooled_config& cfg, unsigned seed) {
      auto rngs = rngs_for(cfg.threads, seed);
      if (cfg.kind == client::mutex_pool) {
        mutex_pool db(make_connection, static_cast<std::size_t>(k));
        db.prefill();
        return cfg.runs.add(bb::run_for(cfg.threads, seconds, [&](int t) {
          const auto sql = select_sql(rngs[static_cast<std::size_t>(t)], rows);
          auto c = db.acquire();
          return run_select(*c, sql);
        }));
      }
      respool::pool db{factory,
                       respool::pool_options{.max_size = static_cast<std::size_t>(k),
                                             .min_idle = static_cast<std::size_t>(k),
                                             .acquire_timeout = 30s,
                                             .validate_after_idle = 0ms,
                                             .name = "bench"},
                       my::validator{}, my::resetter{.mode = cfg.mode}};
      const bool only_k = cfg.kind == client::k_of_n;
      std::atomic<std::uint64_t> failed{0};  // the requests' own failures (not the sleepers')
      auto res = bb::run_for(cfg.threads, seconds, [&](int t) {
        if (only_k && t >= k) {  // present, asleep, never in the pool; not a request
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          return false;
        }
        const auto sql = select_sql(rngs[static_cast<std::size_t>(t)], rows);
        auto c = db.acquire();
        const bool ok = run_select(*c, sql);
        if (!ok) ++failed;
        return ok;
      });
      res.errors = failed.load();
      cfg.runs.add(res);
    };
    auto run_per_request = [&](unsigned seed) {
      auto rngs = rngs_for(thread_counts.front(), seed);
      per_request.add(bb::run_for(thread_counts.front(), seconds, [&](int t) {
        const auto sql = select_sql(rngs[static_cast<std::size_t>(t)], rows);
        try {
          auto c = factory.create();
          return run_select(c, sql);
        } catch (const my::error&) {
          return false;  // out of ephemeral ports, say: counted, not fatal
        }
      }));
    };

    for (int r = 0; r < runs; ++r) {
      std::fprintf(stderr, "mysql_select: run %d of %d\n", r + 1, runs);
      const auto seed = static_cast<unsigned>(r) * 1000U;
      std::vector<std::function<void()>> round;
      round.emplace_back([&] { sysbench_tps.push_back(run_sysbench()); });
      for (auto& cfg : pooled) round.emplace_back([&, seed] { run_pooled(cfg, seed + 1U); });
      round.emplace_back([&, seed] { run_per_request(seed + 7U); });
      std::shuffle(round.begin(), round.end(), std::minstd_rand(static_cast<unsigned>(r) + 1U));
      for (auto& run : round) run();
    }

    const double reference = bb::median(sysbench_tps);
    bb::json_line()
        .field("bench", "mysql_select").field("what", "sysbench").field("clients", k)
        .field("tps", reference).field("runs", runs).field("seconds", seconds)
        .field("rows", rows).field("server", version).field("cores", cores).print();
    const double per_request_tps = bb::median(per_request.tps);
    bb::json_line()
        .field("bench", "mysql_select").field("what", "connect_per_request")
        .field("threads", thread_counts.front()).field("tps", per_request_tps)
        .field("errors", per_request.errors).print();
    auto median_of = [&](client kind, int threads) {
      for (const auto& cfg : pooled)
        if (cfg.kind == kind && cfg.threads == threads) return bb::median(cfg.runs.tps);
      return 0.0;
    };
    for (const auto& cfg : pooled) {
      const double tps = bb::median(cfg.runs.tps);
      const char* what = cfg.kind == client::respool      ? "pooled"
                         : cfg.kind == client::mutex_pool ? "mutex_pool"
                                                          : "k_of_n";
      auto line = bb::json_line();
      line.field("bench", "mysql_select").field("what", what).field("threads", cfg.threads)
          .field("pool", k).field("reset", cfg.mode_name).field("tps", tps)
          .field("errors", cfg.runs.errors)
          .field("vs_sysbench", reference > 0 ? tps / reference : 0.0);
      if (cfg.kind == client::respool) {
        const double mutex = median_of(client::mutex_pool, cfg.threads);
        line.field("vs_mutex_pool", mutex > 0 ? tps / mutex : 0.0)
            .field("vs_connect_per_request", per_request_tps > 0 ? tps / per_request_tps : 0.0);
      }
      line.field("switches_per_request", bb::median(cfg.runs.switches))
          .field("client_cpu_us_per_request", bb::median(cfg.runs.cpu_us))
          .print();
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "mysql_select: %s\n", e.what());
    return 1;
  }
}
