#pragma once
// Small helpers shared by the pool benchmarks: command line, timed multi-threaded runs, medians,
// a log-linear latency histogram. Header-only so each benchmark stays one translation unit.
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <time.h>  // clock_gettime(CLOCK_THREAD_CPUTIME_ID): POSIX

namespace respool_bench {

using steady = std::chrono::steady_clock;

struct settings {
  double seconds = 1.0;  // per measurement
  int runs = 3;          // per configuration; the median is reported
};

// --seconds=S --runs=N, or RESPOOL_BENCH_SECONDS / RESPOOL_BENCH_RUNS.
inline auto parse_settings(int argc, char** argv) -> settings {
  settings s;
  if (const char* v = std::getenv("RESPOOL_BENCH_SECONDS")) s.seconds = std::atof(v);
  if (const char* v = std::getenv("RESPOOL_BENCH_RUNS")) s.runs = std::atoi(v);
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--seconds=", 0) == 0) s.seconds = std::atof(a.c_str() + 10);
    else if (a.rfind("--runs=", 0) == 0) s.runs = std::atoi(a.c_str() + 7);
    else {
      std::fprintf(stderr, "usage: %s [--seconds=S] [--runs=N]\n", argv[0]);
      std::exit(2);
    }
  }
  if (!(s.seconds > 0.0)) s.seconds = 1.0;
  if (s.runs < 1) s.runs = 1;
  return s;
}

inline auto median(std::vector<double> v) -> double {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

inline auto thread_cpu_seconds() -> double {
  timespec ts{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Runs `body(thread_index, stop)` on `threads` threads for `seconds`; every thread starts at
// once and is told to stop together. `body` returns how many operations it did. The result:
// operations per thread, the elapsed seconds between the start signal and the stop signal, and
// the CPU time the threads got (on a machine busy with other work, fewer cores than threads).
struct timed_result {
  std::vector<std::uint64_t> per_thread;
  std::vector<double> cpu;  // seconds of CPU time per thread
  double elapsed = 0.0;
  [[nodiscard]] auto total() const -> std::uint64_t {
    std::uint64_t t = 0;
    for (auto n : per_thread) t += n;
    return t;
  }
  [[nodiscard]] auto cpu_total() const -> double {
    double t = 0;
    for (auto c : cpu) t += c;
    return t;
  }
};

// `before` and `after` run on the calling thread just before the start signal and just after
// every thread has stopped (for counters such as allocations).
template <class Body, class Before, class After>
auto run_timed(int threads, double seconds, Body body, Before before, After after) -> timed_result {
  timed_result r;
  r.per_thread.assign(static_cast<std::size_t>(threads), 0);
  r.cpu.assign(static_cast<std::size_t>(threads), 0.0);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::atomic<bool> stop{false};
  std::vector<std::thread> pool;
  pool.reserve(static_cast<std::size_t>(threads));
  for (int i = 0; i < threads; ++i)
    pool.emplace_back([&, i] {
      ready.fetch_add(1);
      while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
      const double c0 = thread_cpu_seconds();
      r.per_thread[static_cast<std::size_t>(i)] = body(i, stop);
      r.cpu[static_cast<std::size_t>(i)] = thread_cpu_seconds() - c0;
    });
  while (ready.load() != threads) std::this_thread::yield();
  before();
  const auto t0 = steady::now();
  go.store(true, std::memory_order_release);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true, std::memory_order_relaxed);
  const auto t1 = steady::now();
  for (auto& t : pool) t.join();
  after();
  r.elapsed = std::chrono::duration<double>(t1 - t0).count();
  return r;
}

// Latency histogram: exact below 16 ns, then 16 buckets per power of two (error under 6%).
class latency_histogram {
 public:
  static constexpr std::size_t size = 64 * 16;
  void add(std::uint64_t ns) noexcept { ++b_[index(ns)]; }
  void merge(const latency_histogram& o) noexcept {
    for (std::size_t i = 0; i < size; ++i) b_[i] += o.b_[i];
  }
  [[nodiscard]] auto count() const noexcept -> std::uint64_t {
    std::uint64_t n = 0;
    for (auto c : b_) n += c;
    return n;
  }
  // The q-quantile in ns (the midpoint of its bucket).
  [[nodiscard]] auto percentile(double q) const noexcept -> double {
    const auto n = count();
    if (n == 0) return 0.0;
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n));
    if (rank >= n) rank = n - 1;
    std::uint64_t seen = 0;
    for (std::size_t i = 0; i < size; ++i) {
      seen += b_[i];
      if (seen > rank) return midpoint(i);
    }
    return midpoint(size - 1);
  }

 private:
  static auto index(std::uint64_t ns) noexcept -> std::size_t {
    if (ns < 16) return static_cast<std::size_t>(ns);
    const auto msb = static_cast<unsigned>(63 - std::countl_zero(ns));
    const auto top = static_cast<std::size_t>(ns >> (msb - 4U));  // 16..31
    return (msb - 3U) * 16U + (top - 16U);
  }
  static auto midpoint(std::size_t i) noexcept -> double {
    if (i < 16) return static_cast<double>(i);
    const auto msb = static_cast<unsigned>(i / 16 + 3);
    const auto top = static_cast<double>(i % 16 + 16);
    const auto unit = static_cast<double>(std::uint64_t{1} << (msb - 4U));
    return (top + 0.5) * unit;
  }
  std::array<std::uint64_t, size> b_{};
};

// A JSON number that is never NaN or infinite.
inline auto num(double v) -> std::string {
  if (!(v == v) || v > 1e300 || v < -1e300) return "null";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", v);
  return buf;
}

inline auto boolean(bool b) -> const char* { return b ? "true" : "false"; }

}  // namespace respool_bench
