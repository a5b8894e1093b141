// PostgreSQL select-only through respool, against the server's own benchmark client in the same
// run: `pgbench -S` with as many connections as the pool has (K), and against opening a
// connection per request. Prints JSON lines; the last ones carry the ratios.
//
//   respool_bench_pg_select [--conninfo=STR] [--pool=K] [--threads=N,N,...] [--seconds=S]
//                           [--runs=R] [--scale=SF]
//
// Without --conninfo it starts its own PostgreSQL on 127.0.0.1 (initdb in a temp dir, as the
// integration tests do). pgbench -i creates pgbench_accounts at scale SF (100,000 rows per unit).
// Every figure is the median of R runs of S seconds, taken in rotation (pgbench, then respool,
// then pgbench again ...) so drift hits all of them alike.
//
// What is compared:
//   pgbench       pgbench -S -n -M simple -c K -j min(K, cores) -T S: K persistent connections,
//                 the built-in select-only script (one SELECT on a random aid per transaction).
//   pooled        N threads through respool::pool (max_size = min_idle = K), each request:
//                 acquire, the same SELECT with the simple protocol (PQexec), return. Measured
//                 with the resetter in `rollback_only` mode (nothing to clean after a SELECT,
//                 which is what pgbench does) and in the default `discard_all` mode (one more
//                 round trip per request: the price of guaranteed-clean sessions).
//   mutex_pool    N threads through the 60-line mutex + condition-variable pool of
//                 baseline_pool.hpp (K connections, no validation or reset): what respool's
//                 slow path must not lose to (target: rollback_only >= 0.95x it, and >= 0.9x
//                 pgbench, at 16 and 64 threads).
//   per_request   N threads, each request opens a connection, runs the SELECT and closes it.
//   pgbench_connect  pgbench -S -C (a new connection per transaction), for reference.
#include <respool/pool.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend_bench.hpp"
#include "backends/postgres.hpp"
#include "baseline_pool.hpp"
#include "servers.hpp"

namespace pg = respool_examples::pg;
namespace bb = respool_backend_bench;
using namespace std::chrono_literals;

namespace {

// "tps = 18123.456789 (without initial connection time)"
auto parse_tps(const std::string& out) -> double {
  const auto at = out.find("tps = ");
  if (at == std::string::npos) return 0.0;
  return std::atof(out.c_str() + at + 6);
}

struct pgbench_runner {
  std::string program;
  std::string conninfo;

  auto run(std::vector<std::string> args, std::chrono::seconds limit) const -> std::string {
    std::vector<std::string> argv{program};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(conninfo);
    return respool_it::run_checked(argv, limit);
  }
};

auto select_sql(std::minstd_rand& rng, int rows) -> std::string {
  std::uniform_int_distribution<int> aid(1, rows);
  return "SELECT abalance FROM pgbench_accounts WHERE aid = " + std::to_string(aid(rng));
}

auto run_select(PGconn* c, const std::string& sql) -> bool {
  PGresult* r = PQexec(c, sql.c_str());
  const bool ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
  PQclear(r);
  return ok;
}

}  // namespace

int main(int argc, char** argv) {
  const bb::args a(argc, argv, {"conninfo", "pool", "threads", "seconds", "runs", "scale"},
                   "[--conninfo=STR] [--pool=K] [--threads=N,N] [--seconds=S] [--runs=R] [--scale=SF]");
  const int k = std::max(1, static_cast<int>(a.number("pool", 4)));
  const auto thread_counts = a.integers("threads", std::to_string(k) + ",16,64");
  const double seconds = std::max(0.5, a.number("seconds", 5));
  const int runs = std::max(1, static_cast<int>(a.number("runs", 3)));
  const int scale = std::max(1, static_cast<int>(a.number("scale", 1)));
  const int rows = 100000 * scale;
  const int cores = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));

  try {
    std::optional<respool_it::postgres_server> server;
    std::string conninfo = a.get("conninfo", "");
    pgbench_runner pgbench;
    if (conninfo.empty()) {
      server.emplace(respool_it::postgres_server::options{.max_connections = 300});
      conninfo = server->conninfo();
      pgbench.program = (server->bindir() / "pgbench").string();
    } else {
      pgbench.program = (respool_it::postgres_bindir() / "pgbench").string();
    }
    pgbench.conninfo = conninfo;

    std::string version;
    {
      auto c = pg::factory{conninfo}.create();
      version = c.scalar("SHOW server_version");
    }
    std::fprintf(stderr, "pg_select: PostgreSQL %s, initialising pgbench scale %d ...\n",
                 version.c_str(), scale);
    pgbench.run({"-i", "-q", "-s", std::to_string(scale)}, 600s);

    const auto secs = std::to_string(static_cast<int>(seconds + 0.5));
    const auto jobs = std::to_string(std::min(k, cores));
    auto run_pgbench = [&](bool connect_each) {
      std::vector<std::string> args{"-S", "-n", "-M", "simple", "-c", std::to_string(k), "-j", jobs, "-T", secs};
      if (connect_each) args.push_back("-C");
      return parse_tps(pgbench.run(args, std::chrono::seconds(static_cast<int>(seconds) + 120)));
    };

    struct pooled_config {
      int threads;
      pg::session_reset mode;
      const char* mode_name;
      std::vector<double> tps;
      std::uint64_t errors = 0;
    };
    std::vector<pooled_config> pooled;
    for (int n : thread_counts) {
      pooled.push_back({n, pg::session_reset::rollback_only, "rollback_only", {}});
      pooled.push_back({n, pg::session_reset::discard_all, "discard_all", {}});
    }
    std::vector<std::vector<double>> mutex_tps(thread_counts.size());
    auto make_conn = [conninfo] { return std::make_unique<pg::connection>(pg::factory{conninfo}.create()); };
    using mutex_pool = respool_bench::baseline_pool<pg::connection, decltype(make_conn)>;
    std::vector<double> pgbench_tps, pgbench_connect_tps, per_request_tps;
    std::uint64_t per_request_errors = 0;

    for (int r = 0; r < runs; ++r) {
      std::fprintf(stderr, "pg_select: run %d of %d\n", r + 1, runs);
      pgbench_tps.push_back(run_pgbench(false));
      for (auto& cfg : pooled) {
        respool::pool db{pg::factory{conninfo},
                         respool::pool_options{.max_size = static_cast<std::size_t>(k),
                                               .min_idle = static_cast<std::size_t>(k),
                                               .acquire_timeout = 30s,
                                               .name = "bench"},
                         pg::validator{}, pg::resetter{.mode = cfg.mode}};
        std::vector<std::minstd_rand> rngs;
        for (int t = 0; t < cfg.threads; ++t) rngs.emplace_back(static_cast<unsigned>(t + 1 + r * 1000));
        const auto res = bb::run_for(cfg.threads, seconds, [&](int t) {
          const auto sql = select_sql(rngs[static_cast<std::size_t>(t)], rows);
          auto c = db.acquire();
          return run_select(c->get(), sql);
        });
        cfg.tps.push_back(res.per_second);
        cfg.errors += res.errors;
      }
      for (std::size_t i = 0; i < thread_counts.size(); ++i) {
        const int n = thread_counts[i];
        mutex_pool db(make_conn, static_cast<std::size_t>(k));
        db.prefill();
        std::vector<std::minstd_rand> rngs;
        for (int t = 0; t < n; ++t) rngs.emplace_back(static_cast<unsigned>(t + 3 + r * 1000));
        const auto res = bb::run_for(n, seconds, [&](int t) {
          const auto sql = select_sql(rngs[static_cast<std::size_t>(t)], rows);
          auto c = db.acquire();
          return run_select(c->get(), sql);
        });
        mutex_tps[i].push_back(res.per_second);
      }
      {
        const int n = thread_counts.front();
        std::vector<std::minstd_rand> rngs;
        for (int t = 0; t < n; ++t) rngs.emplace_back(static_cast<unsigned>(t + 7 + r * 1000));
        const auto res = bb::run_for(n, seconds, [&](int t) {
          const auto sql = select_sql(rngs[static_cast<std::size_t>(t)], rows);
          std::unique_ptr<PGconn, void (*)(PGconn*)> c(PQconnectdb(conninfo.c_str()), PQfinish);
          return PQstatus(c.get()) == CONNECTION_OK && run_select(c.get(), sql);
        });
        per_request_tps.push_back(res.per_second);
        per_request_errors += res.errors;
      }
      pgbench_connect_tps.push_back(run_pgbench(true));
    }

    const double pgb = bb::median(pgbench_tps);
    bb::json_line()
        .field("bench", "pg_select").field("what", "pgbench").field("clients", k)
        .field("jobs", std::atoi(jobs.c_str())).field("tps", pgb).field("runs", runs)
        .field("seconds", seconds).field("server", "PostgreSQL " + version).field("cores", cores)
        .print();
    bb::json_line()
        .field("bench", "pg_select").field("what", "pgbench_connect_per_transaction")
        .field("clients", k).field("tps", bb::median(pgbench_connect_tps)).print();
    const double per_request = bb::median(per_request_tps);
    bb::json_line()
        .field("bench", "pg_select").field("what", "connect_per_request")
        .field("threads", thread_counts.front()).field("tps", per_request)
        .field("errors", per_request_errors).print();
    auto mutex_median = [&](int threads) {
      for (std::size_t i = 0; i < thread_counts.size(); ++i)
        if (thread_counts[i] == threads) return bb::median(mutex_tps[i]);
      return 0.0;
    };
    for (std::size_t i = 0; i < thread_counts.size(); ++i)
      bb::json_line()
          .field("bench", "pg_select").field("what", "mutex_pool").field("threads", thread_counts[i])
          .field("pool", k).field("tps", bb::median(mutex_tps[i])).print();
    for (const auto& cfg : pooled) {
      const double tps = bb::median(cfg.tps);
      const double mutex = mutex_median(cfg.threads);
      bb::json_line()
          .field("bench", "pg_select").field("what", "pooled").field("threads", cfg.threads)
          .field("pool", k).field("reset", cfg.mode_name).field("tps", tps)
          .field("errors", cfg.errors)
          .field("vs_pgbench", pgb > 0 ? tps / pgb : 0.0)
          .field("vs_mutex_pool", mutex > 0 ? tps / mutex : 0.0)
          .field("vs_connect_per_request", per_request > 0 ? tps / per_request : 0.0)
          .print();
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "pg_select: %s\n", e.what());
    return 1;
  }
}
