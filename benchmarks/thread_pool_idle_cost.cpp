// thread_pool_idle_cost: what an idle thread's wait costs, against the plain pool of
// plain_thread_pool.hpp, side by side in one run (the implementations take turns each round).
//
//   trickle   4,000 IO-like tasks a second (each sleeps 200 us, like a quick database call) for
//             1.5 s, from one producer; CPU time of the whole process per task. respool: core 4,
//             max 64; plain: 4 threads. Target: respool within 1.3x the plain pool.
//   producers 8 producers post 50,000 tiny tasks each to 2 threads through a bounded queue of
//             1,024 (respool: rejection_policy::block; plain: waits for room); tasks per second.
//             Target: respool at least 0.9x the plain pool.
//
// Prints one JSON line per implementation and figure (medians of the rounds), then the ratios
// with their targets.
//
//   respool_bench_thread_pool_idle_cost [rounds=5]
#include <respool/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <thread>
#include <vector>

#include <sys/resource.h>

#include "plain_thread_pool.hpp"

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

auto process_cpu_seconds() -> double {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

auto median(std::vector<double> v) -> double {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// --- trickle ------------------------------------------------------------------------------------

constexpr int trickle_rate = 4000;  // tasks per second
constexpr auto trickle_for = 1500ms;
constexpr auto trickle_task = 200us;

// Posts at a steady rate (sleeping to each next due time) and returns CPU ns per task.
template <class Post, class Drain>
auto trickle(Post post, Drain drain) -> double {
  const double cpu0 = process_cpu_seconds();
  const auto start = clock_type::now();
  const auto gap = std::chrono::nanoseconds(1'000'000'000 / trickle_rate);
  int posted = 0;
  for (auto due = start; due - start < trickle_for; due += gap) {
    std::this_thread::sleep_until(due);
    post([] { std::this_thread::sleep_for(trickle_task); });
    ++posted;
  }
  drain();
  return (process_cpu_seconds() - cpu0) * 1e9 / posted;
}

auto trickle_respool() -> double {
  respool::thread_pool pool{{.core_threads = 4, .max_threads = 64, .prestart_core = true}};
  return trickle([&](auto f) { pool.execute(std::move(f)); }, [&] { pool.shutdown(); });
}

auto trickle_plain() -> double {
  respool_bench::plain_thread_pool pool(4);
  return trickle([&](auto f) { pool.post(std::move(f)); }, [&] { pool.join(); });
}

// --- producers ----------------------------------------------------------------------------------

constexpr int producers = 8;
constexpr int per_producer = 50'000;
constexpr std::size_t workers = 2;
constexpr std::size_t capacity = 1024;

template <class Post, class Drain>
auto produce(Post post, Drain drain) -> double {
  std::atomic<long> sink{0};
  const auto start = clock_type::now();
  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) {
    threads.emplace_back([&] {
      for (int i = 0; i < per_producer; ++i) {
        post([&sink] { sink.fetch_add(1, std::memory_order_relaxed); });
      }
    });
  }
  for (auto& t : threads) t.join();
  drain();
  const std::chrono::duration<double> took = clock_type::now() - start;
  if (sink.load() != static_cast<long>(producers) * per_producer) std::abort();
  return producers * per_producer / took.count();
}

auto producers_respool() -> double {
  respool::thread_pool pool{{.core_threads = workers,
                             .max_threads = workers,
                             .queue_capacity = capacity,
                             .rejection = respool::rejection_policy::block,
                             .prestart_core = true}};
  return produce([&](auto f) { pool.execute(std::move(f)); }, [&] { pool.shutdown(); });
}

auto producers_plain() -> double {
  respool_bench::plain_thread_pool pool(workers, capacity);
  return produce([&](auto f) { pool.post(std::move(f)); }, [&] { pool.join(); });
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 5;
  std::vector<double> tr, tp, pr, pp;
  for (int r = 0; r < rounds; ++r) {
    // Alternate which goes first, so drift over the run falls on both alike.
    if (r % 2 == 0) {
      tr.push_back(trickle_respool());
      tp.push_back(trickle_plain());
      pr.push_back(producers_respool());
      pp.push_back(producers_plain());
    } else {
      tp.push_back(trickle_plain());
      tr.push_back(trickle_respool());
      pp.push_back(producers_plain());
      pr.push_back(producers_respool());
    }
  }
  std::printf("{\"bench\":\"thread_pool_idle_cost\",\"figure\":\"trickle\",\"impl\":\"respool\","
              "\"rate\":%d,\"cpu_ns_per_task\":%.0f,\"rounds\":%d}\n",
              trickle_rate, median(tr), rounds);
  std::printf("{\"bench\":\"thread_pool_idle_cost\",\"figure\":\"trickle\",\"impl\":\"plain\","
              "\"rate\":%d,\"cpu_ns_per_task\":%.0f,\"rounds\":%d}\n",
              trickle_rate, median(tp), rounds);
  std::printf("{\"bench\":\"thread_pool_idle_cost\",\"figure\":\"producers\",\"impl\":\"respool\","
              "\"producers\":%d,\"tasks_per_s\":%.0f,\"rounds\":%d}\n",
              producers, median(pr), rounds);
  std::printf("{\"bench\":\"thread_pool_idle_cost\",\"figure\":\"producers\",\"impl\":\"plain\","
              "\"producers\":%d,\"tasks_per_s\":%.0f,\"rounds\":%d}\n",
              producers, median(pp), rounds);
  const double cpu_ratio = median(tr) / median(tp);
  const double producer_ratio = median(pr) / median(pp);
  std::printf("{\"bench\":\"thread_pool_idle_cost\",\"figure\":\"targets\","
              "\"trickle_cpu_respool_over_plain\":%.2f,\"trickle_target_at_most\":1.3,"
              "\"producers_respool_over_plain\":%.2f,\"producers_target_at_least\":0.9,"
              "\"met\":%s}\n",
              cpu_ratio, producer_ratio,
              cpu_ratio <= 1.3 && producer_ratio >= 0.9 ? "true" : "false");
  return 0;
}
