// pool_cycle: uncontended acquire+release cycles per second at 1, 2, 4 and 8 threads on a pool of
// 32 stub resources (so nobody ever waits), for
//   - respool with default options (`pool_options{.max_size = 32}`),
//   - respool tuned for the stub (no lifetime, no idle timeout, never validate on borrow),
//   - respool with default options and `adaptive` on (its limit starting at 32: the rule moves
//     it only when callers want more, which they never do here), against the default: the fast
//     path with the adaptive rule is to stay within 5% of it and allocation-free,
//   - a plain mutex + condition-variable pool (baseline_pool.hpp),
//   - Poco::ObjectPool (when built with Poco: Debian's libpoco-dev).
// Heap allocations are counted by a replaced global operator new over each timed window
// (process-wide: the pool's own threads count too).
//
// Method: each configuration runs `--runs` times (default 3) for `--seconds` (default 1) after a
// 0.2 s warm-up on the same pool; the figure is the median run. One JSON line per figure, then
// one line per respool variant with the ratios against the targets:
//   >= 1.5x Poco at 1 thread, >= 5x Poco at 2 and 8 threads, 2-thread rate >= 1.6x the 1-thread
//   rate, zero allocations per cycle.
#include <respool/pool.hpp>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "baseline_pool.hpp"
#include "bench_util.hpp"

#if RESPOOL_BENCH_HAVE_POCO
#include <Poco/ObjectPool.h>
#endif

// ------------------------------------------------------------------ allocation counting

namespace {
std::atomic<std::uint64_t> g_allocations{0};

auto counted_alloc(std::size_t n) -> void* {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
auto counted_alloc(std::size_t n, std::align_val_t al) -> void* {
  g_allocations.fetch_add(1, std::memory_order_relaxed);
  const auto a = static_cast<std::size_t>(al);
  const auto rounded = (n + a - 1) / a * a;
  if (void* p = std::aligned_alloc(a, rounded == 0 ? a : rounded)) return p;
  throw std::bad_alloc();
}
}  // namespace

auto operator new(std::size_t n) -> void* { return counted_alloc(n); }
auto operator new[](std::size_t n) -> void* { return counted_alloc(n); }
auto operator new(std::size_t n, std::align_val_t a) -> void* { return counted_alloc(n, a); }
auto operator new[](std::size_t n, std::align_val_t a) -> void* { return counted_alloc(n, a); }
auto operator new(std::size_t n, const std::nothrow_t&) noexcept -> void* {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
auto operator new[](std::size_t n, const std::nothrow_t&) noexcept -> void* {
  try {
    return counted_alloc(n);
  } catch (...) {
    return nullptr;
  }
}
auto operator new(std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept -> void* {
  try {
    return counted_alloc(n, a);
  } catch (...) {
    return nullptr;
  }
}
auto operator new[](std::size_t n, std::align_val_t a, const std::nothrow_t&) noexcept -> void* {
  try {
    return counted_alloc(n, a);
  } catch (...) {
    return nullptr;
  }
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete[](void* p, std::size_t, std::align_val_t) noexcept { std::free(p); }
void operator delete(void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }
void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept { std::free(p); }

// ------------------------------------------------------------------ the benchmark

namespace {

using namespace std::chrono_literals;
using respool_bench::steady;

constexpr std::size_t pool_size = 32;
constexpr int thread_counts[] = {1, 2, 4, 8};
constexpr std::uint64_t batch = 64;  // cycles between looks at the stop flag

struct stub {
  int value = 1;
};

struct figure {
  double cycles_per_sec = 0.0;
  double allocs_per_cycle = 0.0;
  double cores_used = 0.0;           // CPU seconds the threads got per wall second (median run)
  double cycles_per_cpu_sec = 0.0;   // load-independent cost: cycles per CPU second (median run)
  std::vector<double> runs;
};

// Measures `make_pool()` + `cycle(pool, sum)` at `threads` threads: median of the runs.
template <class MakePool, class Cycle>
auto measure(const respool_bench::settings& cfg, int threads, MakePool make_pool, Cycle cycle)
    -> figure {
  figure f;
  std::vector<double> allocs;
  std::vector<std::pair<double, double>> cpu;  // per run: (cores used, cycles per CPU second)
  for (int run = 0; run < cfg.runs; ++run) {
    auto pool = make_pool();
    auto body = [&](int, const std::atomic<bool>& stop) -> std::uint64_t {
      std::uint64_t n = 0;
      std::uint64_t sum = 0;
      while (!stop.load(std::memory_order_relaxed)) {
        for (std::uint64_t i = 0; i < batch; ++i) cycle(*pool, sum);
        n += batch;
      }
      if (sum != n) std::fprintf(stderr, "pool_cycle: lost cycles (%llu of %llu)\n",
                                 static_cast<unsigned long long>(sum),
                                 static_cast<unsigned long long>(n));
      return n;
    };
    respool_bench::run_timed(threads, 0.2, body, [] {}, [] {});  // warm-up: creates resources
    std::uint64_t a0 = 0;
    std::uint64_t a1 = 0;
    const auto r = respool_bench::run_timed(
        threads, cfg.seconds, body, [&] { a0 = g_allocations.load(); },
        [&] { a1 = g_allocations.load(); });
    const auto total = static_cast<double>(r.total());
    f.runs.push_back(total / r.elapsed);
    allocs.push_back(total > 0 ? static_cast<double>(a1 - a0) / total : 0.0);
    cpu.emplace_back(r.cpu_total() / r.elapsed, r.cpu_total() > 0 ? total / r.cpu_total() : 0.0);
  }
  f.cycles_per_sec = respool_bench::median(f.runs);
  // The CPU figures of the median run (the one closest to the median for an even count).
  std::size_t mid = 0;
  for (std::size_t i = 1; i < f.runs.size(); ++i)
    if (std::abs(f.runs[i] - f.cycles_per_sec) < std::abs(f.runs[mid] - f.cycles_per_sec)) mid = i;
  std::tie(f.cores_used, f.cycles_per_cpu_sec) = cpu[mid];
  f.allocs_per_cycle = *std::max_element(allocs.begin(), allocs.end());  // the worst run
  return f;
}

void print_figure(const char* impl, const char* options, int threads, const figure& f,
                  const respool_bench::settings& cfg) {
  std::string runs = "[";
  for (std::size_t i = 0; i < f.runs.size(); ++i) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%s%.0f", i == 0 ? "" : ",", f.runs[i]);
    runs += buf;
  }
  runs += "]";
  std::printf(
      "{\"bench\":\"pool_cycle\",\"impl\":\"%s\",\"options\":\"%s\",\"threads\":%d,\"max_size\":%zu,"
      "\"cycles_per_sec\":%.0f,\"allocs_per_cycle\":%s,\"cores_used\":%.2f,"
      "\"cycles_per_cpu_sec\":%.0f,\"stat\":\"median of %d runs of %.2f s\",\"runs\":%s}\n",
      impl, options, threads, pool_size, f.cycles_per_sec,
      respool_bench::num(f.allocs_per_cycle).c_str(), f.cores_used, f.cycles_per_cpu_sec, cfg.runs,
      cfg.seconds, runs.c_str());
  std::fflush(stdout);
}

auto respool_default_options() -> respool::pool_options {
  return respool::pool_options{.max_size = pool_size};
}

// For a stub that never goes stale: no lifetime or idle limits, never validate on borrow.
auto respool_tuned_options() -> respool::pool_options {
  return respool::pool_options{.max_size = pool_size,
                               .idle_timeout = 0ms,
                               .max_lifetime = 0ms,
                               .validate_after_idle = respool::pool_options::never};
}

auto respool_adaptive_options() -> respool::pool_options {
  auto o = respool_default_options();
  o.adaptive = respool::adaptive_options{.initial_limit = pool_size};
  return o;
}

auto make_stub() -> stub { return stub{}; }
using respool_pool = respool::pool<stub (*)()>;

void respool_cycle(respool_pool& p, std::uint64_t& sum) {
  auto l = p.acquire();
  sum += static_cast<std::uint64_t>(l->value);
}

auto make_unique_stub() -> std::unique_ptr<stub> { return std::make_unique<stub>(); }
using baseline = respool_bench::baseline_pool<stub, std::unique_ptr<stub> (*)()>;

void baseline_cycle(baseline& p, std::uint64_t& sum) {
  auto h = p.acquire();
  sum += static_cast<std::uint64_t>(h->value);
}

#if RESPOOL_BENCH_HAVE_POCO
using poco_pool = Poco::ObjectPool<stub>;
void poco_cycle(poco_pool& p, std::uint64_t& sum) {
  stub* s = p.borrowObject();
  if (s == nullptr) return;  // cannot happen: 32 objects, at most 8 borrowers
  sum += static_cast<std::uint64_t>(s->value);
  p.returnObject(s);
}
#endif

struct target {
  const char* name;
  double ratio;  // < 0: not measured
  double goal;
  bool at_most = false;
};

void print_summary(const char* variant, const std::map<int, figure>& ours,
                   const std::map<int, figure>* poco) {
  auto vs_poco = [&](int t) {
    if (poco == nullptr) return -1.0;
    return ours.at(t).cycles_per_sec / poco->at(t).cycles_per_sec;
  };
  double worst_allocs = 0.0;
  for (const auto& [t, f] : ours) worst_allocs = std::max(worst_allocs, f.allocs_per_cycle);
  const target targets[] = {
      {"vs_poco_1_thread", vs_poco(1), 1.5},
      {"vs_poco_2_threads", vs_poco(2), 5.0},
      {"vs_poco_8_threads", vs_poco(8), 5.0},
      {"scaling_2_over_1_thread", ours.at(2).cycles_per_sec / ours.at(1).cycles_per_sec, 1.6},
      {"allocs_per_cycle", worst_allocs, 0.0, true},
  };
  std::string line = std::string("{\"bench\":\"pool_cycle\",\"summary\":\"targets\",\"impl\":\"") +
                     variant + "\"";
  bool all = true;
  for (const auto& t : targets) {
    const std::string goal = std::string(t.at_most ? "\"<= " : "\">= ") + respool_bench::num(t.goal) + "\"";
    line += std::string(",\"") + t.name + "\":{";
    if (t.ratio < 0) {  // not measured (built without Poco)
      line += "\"value\":null,\"target\":" + goal + ",\"met\":null}";
      continue;
    }
    const bool met = t.at_most ? t.ratio <= t.goal : t.ratio >= t.goal;
    all = all && met;
    line += "\"value\":" + respool_bench::num(t.ratio) + ",\"target\":" + goal +
            ",\"met\":" + respool_bench::boolean(met) + "}";
  }
  line += std::string(",\"all_measured_met\":") + respool_bench::boolean(all) +
          ",\"poco\":" + respool_bench::boolean(poco != nullptr) + "}";
  std::printf("%s\n", line.c_str());
  std::fflush(stdout);
}

}  // namespace

auto main(int argc, char** argv) -> int {
  const auto cfg = respool_bench::parse_settings(argc, argv);
  std::map<int, figure> ours_default, ours_tuned, ours_adaptive, base, poco;

  for (int t : thread_counts) {
    ours_default[t] = measure(
        cfg, t, [] { return std::make_unique<respool_pool>(&make_stub, respool_default_options()); },
        respool_cycle);
    print_figure("respool", "default", t, ours_default[t], cfg);
    ours_adaptive[t] = measure(
        cfg, t, [] { return std::make_unique<respool_pool>(&make_stub, respool_adaptive_options()); },
        respool_cycle);
    print_figure("respool", "adaptive", t, ours_adaptive[t], cfg);
    ours_tuned[t] = measure(
        cfg, t, [] { return std::make_unique<respool_pool>(&make_stub, respool_tuned_options()); },
        respool_cycle);
    print_figure("respool", "tuned", t, ours_tuned[t], cfg);
    base[t] = measure(
        cfg, t, [] { return std::make_unique<baseline>(&make_unique_stub, pool_size); },
        baseline_cycle);
    print_figure("mutex_condvar_baseline", "-", t, base[t], cfg);
#if RESPOOL_BENCH_HAVE_POCO
    poco[t] = measure(
        cfg, t, [] { return std::make_unique<poco_pool>(pool_size, pool_size); }, poco_cycle);
    print_figure("poco_objectpool", "-", t, poco[t], cfg);
#endif
  }
#if RESPOOL_BENCH_HAVE_POCO
  const std::map<int, figure>* poco_figures = &poco;
#else
  const std::map<int, figure>* poco_figures = nullptr;
#endif
  print_summary("respool_default", ours_default, poco_figures);
  print_summary("respool_tuned", ours_tuned, poco_figures);
  // The adaptive rule's cost on the fast path: none is meant (it runs in housekeeping).
  std::string line = "{\"bench\":\"pool_cycle\",\"summary\":\"adaptive_vs_default\"";
  bool met = true;
  for (int t : thread_counts) {
    const double r = ours_adaptive[t].cycles_per_sec / ours_default[t].cycles_per_sec;
    met = met && r >= 0.95 && ours_adaptive[t].allocs_per_cycle == 0.0;
    line += ",\"threads_" + std::to_string(t) + "\":" + respool_bench::num(r);
  }
  line += std::string(",\"target\":\">= 0.95, 0 allocations\",\"met\":") +
          respool_bench::boolean(met) + "}";
  std::printf("%s\n", line.c_str());
  return 0;
}
