// respool-lab: how big should a pool be? Sweeps pool sizes under a mixed read/write workload
// from many client threads and shows where throughput peaks and latency stays low, next to the
// size respool::sizing recommends for this machine. `respool-lab --help` says what it does.
#include <respool/errors.hpp>
#include <respool/pool.hpp>
#include <respool/sizing.hpp>
#include <respool/version.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <system_error>
#include <type_traits>
#include <vector>

#include "adaptive.hpp"
#include "cli.hpp"
#include "format.hpp"
#include "measure.hpp"
#include "report.hpp"
#include "runner.hpp"
#include "thread_pool_burst.hpp"
#include "workload_sqlite.hpp"
#if RESPOOL_LAB_WITH_POSTGRES
#include "workload_postgres.hpp"
#endif
#if RESPOOL_LAB_WITH_REDIS
#include "workload_redis.hpp"
#endif
#if RESPOOL_LAB_WITH_MYSQL
#include "workload_mysql.hpp"
#endif

namespace lab {
namespace {

/// The run failed for a reason outside the command line (exit code 1).
class run_error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Opens one connection through a pool of one, so an unreachable backend is reported the way the
// pool reports it (and quickly), then lets the workload create its table on it.
template <class Workload>
void check_and_prepare(const options& o, Workload& w) {
  using pool_type = pool_for<Workload>;
  pool_type probe{w.make_factory(),
                  respool::pool_options{.max_size = 1,
                                        .acquire_timeout = std::min(o.acquire_timeout,
                                                                    std::chrono::milliseconds(10'000)),
                                        .name = "lab-probe"},
                  w.make_validator(), w.make_resetter()};
  typename pool_type::lease_type conn;
  try {
    conn = probe.acquire();
  } catch (const respool::error& e) {
    throw run_error("cannot reach the " + o.backend + " backend (" + w.describe() + "):\n  " +
                    e.what());
  }
  try {
    w.prepare(*conn);
  } catch (const std::exception& e) {
    throw run_error("cannot set up the " + o.backend + " workload: " + e.what());
  }
}

// Why a measured best far from cores * 2 + spindles may still be right.
inline auto disagreement_reason(const std::string& backend) -> std::string {
  if (backend == "SQLite")
    return "SQLite lets one writer at a time (one write lock per database), so throughput hardly "
           "depends on the pool size and only latency shows the cost of a big pool";
  return "the recommendation counts this machine's cores; a server on another machine, a data "
         "set in memory (--spindles 0) or requests that wait on something else move the knee";
}

template <class Workload>
auto run_lab(const options& o, Workload&& w) -> int {
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  if (ec) throw run_error("cannot create the output directory " + o.out.string() + ": " + ec.message());

  const std::size_t cores = respool::sizing::hardware_cores();
  const std::size_t recommended = respool::sizing::recommended_pool_size(cores, o.spindles);
  std::vector<std::size_t> sizes = o.sizes;
  if (sizes.empty()) {
    sizes = default_sweep;
    sizes.push_back(recommended);
    std::sort(sizes.begin(), sizes.end());
    sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
  }

  check_and_prepare(o, w);

  const bool tty = isatty(STDOUT_FILENO) == 1;
  client_runner runner(o.use_thread_pool, o.clients);
  const progress out(tty);
  const std::size_t steps =
      o.rounds * (sizes.size() + (o.unpooled ? 1 : 0) + (o.adaptive ? 1 : 0));
  const double estimate = static_cast<double>(steps) * (o.warmup_s + o.duration_s);

  std::printf("respool-lab %s: %s\n", respool::version_string, w.describe().c_str());
  std::printf(
      "%zu clients (%s), %u%% reads / %u%% writes over %s accounts; pool sizes", o.clients,
      runner.describe().c_str(), 100 - o.write_percent, o.write_percent,
      grouped(static_cast<double>(o.accounts)).c_str());
  for (std::size_t i = 0; i < sizes.size(); ++i) std::printf("%s%zu", i == 0 ? " " : ",", sizes[i]);
  std::printf("%s%s; %zu round%s, %s s warm-up + %s s each: about %s s\n",
              o.unpooled ? " and unpooled" : "",
              o.adaptive ? " and adaptive (max 128)" : "", o.rounds, o.rounds == 1 ? "" : "s",
              seconds(o.warmup_s).c_str(), seconds(o.duration_s).c_str(),
              fixed(estimate, 0).c_str());
  std::fflush(stdout);

  report r;
  r.backend = w.name();
  r.description = w.describe();
  r.clients_on = runner.describe();
  r.clients = o.clients;
  r.write_percent = o.write_percent;
  r.accounts = o.accounts;
  r.duration_s = o.duration_s;
  r.rounds = o.rounds;
  r.warmup_s = o.warmup_s;
  r.acquire_timeout_ms = static_cast<long long>(o.acquire_timeout.count());
  r.cores = cores;
  r.spindles = o.spindles;
  r.recommended = recommended;

  const auto started = clock::now();
  std::size_t step = 0;
  auto label_for = [&](const std::string& what) {
    ++step;
    char buf[64];
    std::snprintf(buf, sizeof buf, "[%zu/%zu] %-13s", step, steps, what.c_str());
    return std::string(buf);
  };
  // Round k measures the sizes starting from the k-th (rotated), so that a machine getting
  // busier or quieter during the sweep shifts every size alike rather than the last ones.
  std::vector<std::vector<step_result>> runs(sizes.size());
  std::vector<step_result> unpooled_runs;
  std::optional<adaptive_run<std::decay_t<Workload>>> adaptive;
  if (o.adaptive) adaptive.emplace(o, w);
  for (std::size_t round = 0; round < o.rounds; ++round) {
    for (std::size_t k = 0; k < sizes.size(); ++k) {
      const std::size_t i = (k + round) % sizes.size();
      runs[i].push_back(
          run_pooled(o, w, sizes[i], label_for("pool size " + std::to_string(sizes[i])), runner, out));
    }
    if (o.unpooled) unpooled_runs.push_back(run_unpooled(o, w, label_for("unpooled"), runner, out));
    if (adaptive) adaptive->run_turn(label_for("adaptive"), runner, out);
  }
  std::optional<adaptive_report> adaptive_result;
  if (adaptive) adaptive_result = adaptive->finish();
  for (const auto& per_size : runs) r.steps.push_back(combine_rounds(per_size));
  if (o.unpooled) r.unpooled = combine_rounds(unpooled_runs);
  const double wall = std::chrono::duration<double>(clock::now() - started).count();

  print_table(r);
  std::printf("recommended by respool::sizing for this machine: %zu (%zu cores * 2 + %zu effective "
              "spindle%s)\n",
              recommended, cores, o.spindles, o.spindles == 1 ? "" : "s");
  if (const step_result* best = r.best()) {
    const step_result* top = r.highest();
    std::printf("measured best: %zu (median %s req/s, p99 %s)", best->pool_size,
                grouped(best->throughput).c_str(), milliseconds(best->p99_ms).c_str());
    if (top != best) {
      std::printf(": the smallest size within the noise of the highest median, %zu (%s req/s; "
                  "their rounds' ranges overlap)",
                  top->pool_size, grouped(top->throughput).c_str());
    }
    std::printf("\n");
    if (best->pool_size > 2 * recommended || 2 * best->pool_size < recommended) {
      std::printf("the measurement and the recommendation disagree (best %zu, recommended %zu): "
                  "%s\n",
                  best->pool_size, recommended, disagreement_reason(r.backend).c_str());
    }
    // Little's law with the shortest hold time measured: the time the work itself needs a
    // connection. At bigger sizes a connection is also held while its thread waits for a core,
    // which inflates the hold time without doing any work.
    const step_result* quickest = nullptr;
    for (const auto& s : r.steps) {
      if (s.requests > 0 && s.mean_hold_ms > 0 &&
          (quickest == nullptr || s.mean_hold_ms < quickest->mean_hold_ms)) {
        quickest = &s;
      }
    }
    if (quickest != nullptr) {
      const auto hold = std::chrono::duration<double, std::milli>(quickest->mean_hold_ms);
      std::printf(
          "Little's law: %s req/s (the best) x %s holding a connection (the shortest mean, at "
          "pool size %zu) = %s busy on average; with 20%% headroom: %zu\n",
          grouped(best->throughput).c_str(), milliseconds(quickest->mean_hold_ms).c_str(),
          quickest->pool_size, fixed(best->throughput * quickest->mean_hold_ms / 1000.0, 1).c_str(),
          respool::sizing::littles_law_size(best->throughput, hold, 1.2));
    }
    if (r.unpooled && r.unpooled->throughput > 0) {
      std::printf("pooled at the best size vs a connection per request: %.1fx the throughput\n",
                  best->throughput / r.unpooled->throughput);
    }
    if (adaptive_result) print_adaptive(*adaptive_result, *best, *top);
  }

  const auto csv = o.out / ("pool-lab-" + o.backend + ".csv");
  const auto chart = o.out / ("pool-lab-" + o.backend + ".svg");
  const auto adaptive_csv = o.out / ("pool-lab-" + o.backend + "-adaptive.csv");
  const auto adaptive_chart = o.out / ("pool-lab-" + o.backend + "-adaptive.svg");
  try {
    write_csv(csv, r);
    write_svg(chart, r);
    if (adaptive_result && r.best() != nullptr) {
      write_adaptive_csv(adaptive_csv, *adaptive_result);
      write_adaptive_svg(adaptive_chart, *adaptive_result, r, r.best()->pool_size);
    }
  } catch (const std::exception& e) {
    throw run_error(e.what());
  }
  std::printf("\nswept in %.0f s\nCSV:   %s\nchart: %s\n", wall, csv.string().c_str(),
              chart.string().c_str());
  if (adaptive_result && r.best() != nullptr)
    std::printf("adaptive pool's limit: %s, %s\n", adaptive_csv.string().c_str(),
                adaptive_chart.string().c_str());

  if (r.best() == nullptr) {
    std::fprintf(stderr, "respool-lab: no request succeeded at any pool size (see the errors above)\n");
    return 1;
  }
  return 0;
}

// No --backend: PostgreSQL on a server of its own, where it can run; else SQLite, saying why.
auto run_default(options o) -> int {
#if RESPOOL_LAB_WITH_POSTGRES
  o.backend = "postgres";
  std::optional<postgres_workload> pg;
  try {
    pg.emplace(o);
  } catch (const server_unavailable& e) {
    std::printf("respool-lab: %s\nrespool-lab: running the embedded SQLite workload instead "
                "(--backend sqlite; install Debian's postgresql for the default)\n\n",
                e.what());
  }
  if (pg) return run_lab(o, std::move(*pg));
#else
  std::printf("respool-lab: built without libpq (apt-get install libpq-dev, then reconfigure): "
              "running the embedded SQLite workload\n\n");
#endif
  o.backend = "sqlite";
  return run_lab(o, sqlite_workload(o));
}

auto run(const options& o) -> int {
  if (o.thread_pool_burst) {
    try {
      return run_thread_pool_lab(o.out);
    } catch (const std::exception& e) {  // output not writable, a burst that never finished
      throw run_error(e.what());
    }
  }
  if (o.backend == "auto") return run_default(o);
  if (o.backend == "sqlite") return run_lab(o, sqlite_workload(o));
  if (o.backend == "postgres") {
#if RESPOOL_LAB_WITH_POSTGRES
    try {
      return run_lab(o, postgres_workload(o));
    } catch (const server_unavailable& e) {
      throw run_error(e.what());
    }
#else
    throw usage_error(
        "this respool-lab was built without PostgreSQL support (libpq was not found when it was "
        "configured: apt-get install libpq-dev, then reconfigure)");
#endif
  }
  if (o.backend == "redis") {
#if RESPOOL_LAB_WITH_REDIS
    return run_lab(o, redis_workload(o));
#else
    throw usage_error(
        "this respool-lab was built without Redis support (hiredis was not found when it was "
        "configured: apt-get install libhiredis-dev, then reconfigure)");
#endif
  }
  if (o.backend == "mysql") {
#if RESPOOL_LAB_WITH_MYSQL
    return run_lab(o, mysql_workload(o));
#else
    throw usage_error(
        "this respool-lab was built without MySQL support (libmariadb was not found when it was "
        "configured: apt-get install libmariadb-dev, then reconfigure)");
#endif
  }
  throw usage_error("unknown backend '" + o.backend + "'");
}

}  // namespace
}  // namespace lab

auto main(int argc, char** argv) -> int {
  lab::options o;
  try {
    o = lab::parse(argc, argv);
    if (o.help) {
      std::fputs(lab::usage().c_str(), stdout);
      return 0;
    }
    if (o.version) {
      std::printf("respool-lab %s\n", respool::version_string);
      return 0;
    }
    return lab::run(o);
  } catch (const lab::usage_error& e) {
    std::fprintf(stderr, "respool-lab: %s\nTry 'respool-lab --help' for the options.\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "respool-lab: %s\n", e.what());
    return 1;
  }
}
