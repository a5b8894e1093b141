// io_burst: 1,000 tasks that each block 2 ms (a stand-in for a database or HTTP call) on a pool
// with core 2, max 64, queue 1,000 — under threads_first (respool's default) and queue_first (the
// JDK's order) in the same run. Prints one JSON line per figure:
//   makespan (median of the runs) against the ideal 1,000 × 2 ms / 64 = 31.25 ms, peak threads,
//   the floor (64 plain threads, no pool), the speed-up of threads_first over queue_first, and
//   the thread count after keep-alive.
//
//   respool_bench_io_burst [runs=5]
#include <respool/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <latch>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

constexpr int tasks = 1000;
constexpr auto task_time = 2ms;
constexpr std::size_t core = 2;
constexpr std::size_t max = 64;
constexpr double ideal_ms = tasks * 2.0 / static_cast<double>(max);
constexpr auto keep_alive = 200ms;

struct burst_result {
  double makespan_ms;
  std::size_t peak_threads;
};

auto options(respool::thread_growth growth) -> respool::thread_pool_options {
  return {.core_threads = core,
          .max_threads = max,
          .queue_capacity = 1000,
          .keep_alive = keep_alive,
          .growth = growth,
          .prestart_core = true,
          .name = "io-burst"};
}

auto burst(respool::thread_pool& pool) -> burst_result {
  std::latch done(tasks);
  const auto start = clock_type::now();
  for (int i = 0; i < tasks; ++i) {
    pool.execute([&done] {
      std::this_thread::sleep_for(task_time);
      done.count_down();
    });
  }
  done.wait();
  const std::chrono::duration<double, std::milli> elapsed = clock_type::now() - start;
  return {elapsed.count(), pool.stats().largest};
}

auto median(std::vector<double> v) -> double {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

auto measure(respool::thread_growth growth, const char* name, int runs) -> double {
  std::vector<double> makespans;
  std::size_t peak = 0;
  for (int r = 0; r < runs; ++r) {
    respool::thread_pool pool{options(growth)};  // fresh pool: core threads only, as after a lull
    const auto result = burst(pool);
    makespans.push_back(result.makespan_ms);
    peak = std::max(peak, result.peak_threads);
  }
  const double m = median(makespans);
  std::printf(
      "{\"bench\":\"io_burst\",\"policy\":\"%s\",\"tasks\":%d,\"task_ms\":2,\"core\":%zu,"
      "\"max\":%zu,\"queue\":1000,\"runs\":%d,\"makespan_ms\":%.2f,\"min_ms\":%.2f,"
      "\"max_ms\":%.2f,\"ideal_ms\":%.2f,\"ratio\":%.3f,\"peak_threads\":%zu}\n",
      name, tasks, core, max, runs, m, *std::min_element(makespans.begin(), makespans.end()),
      *std::max_element(makespans.begin(), makespans.end()), ideal_ms, m / ideal_ms, peak);
  std::fflush(stdout);
  return m;
}

}  // namespace

int main(int argc, char** argv) {
  const int runs = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  const double threads_first =
      measure(respool::thread_growth::threads_first, "threads_first", runs);
  const double queue_first =
      measure(respool::thread_growth::queue_first, "queue_first", std::max(1, runs / 2));
  // The floor on this machine: 64 plain threads pulling the same 1,000 sleeps from a counter,
  // with no pool at all (what the sleeps themselves cost, oversleeping included).
  std::vector<double> floors;
  for (int r = 0; r < runs; ++r) {
    std::atomic<int> next{0};
    const auto start = clock_type::now();
    std::vector<std::thread> threads;
    for (std::size_t t = 0; t < max; ++t) {
      threads.emplace_back([&next] {
        while (next.fetch_add(1) < tasks) std::this_thread::sleep_for(task_time);
      });
    }
    for (auto& t : threads) t.join();
    floors.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - start).count());
  }
  std::printf(
      "{\"bench\":\"io_burst\",\"figure\":\"floor\",\"what\":\"64 std::threads, no pool\","
      "\"makespan_ms\":%.2f,\"ideal_ms\":%.2f,\"ratio\":%.3f}\n",
      median(floors), ideal_ms, median(floors) / ideal_ms);

  std::printf(
      "{\"bench\":\"io_burst\",\"figure\":\"speedup\",\"threads_first_ms\":%.2f,"
      "\"queue_first_ms\":%.2f,\"speedup\":%.1f,\"target\":10}\n",
      threads_first, queue_first, queue_first / threads_first);

  // After the burst the threads above core leave once they have idled keep_alive.
  respool::thread_pool pool{options(respool::thread_growth::threads_first)};
  const auto peak = burst(pool).peak_threads;
  const auto idle_since = clock_type::now();
  while (pool.stats().threads > core && clock_type::now() - idle_since < 10s) {
    std::this_thread::sleep_for(5ms);
  }
  const std::chrono::duration<double, std::milli> shrink = clock_type::now() - idle_since;
  std::printf(
      "{\"bench\":\"io_burst\",\"figure\":\"after_keep_alive\",\"keep_alive_ms\":%lld,"
      "\"peak_threads\":%zu,\"threads\":%zu,\"core\":%zu,\"back_to_core_after_ms\":%.0f}\n",
      static_cast<long long>(keep_alive.count()), peak, pool.stats().threads, core, shrink.count());
  return 0;
}
