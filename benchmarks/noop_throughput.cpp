// noop_throughput: one producer posts 10^6 empty tasks to 2 worker threads; time until all have
// run and the threads are joined. respool::thread_pool against boost::asio::thread_pool (when the
// Boost headers were found at configure time) in the same run. The implementations take turns in
// each round, so noise from the rest of the machine falls on all of them alike. One JSON line per
// implementation (median, best and worst of the rounds, and the CPU time the whole process spent
// per task, which other processes on a busy machine disturb much less), then the ratios of the
// medians.
//
//   respool_bench_noop_throughput [rounds=7]
#include <respool/thread_pool.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#if defined(__unix__)
#include <sys/resource.h>
#endif

#if RESPOOL_BENCH_HAVE_BOOST_ASIO
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#endif

namespace {

using clock_type = std::chrono::steady_clock;
constexpr int tasks = 1'000'000;

struct contender {
  const char* impl;
  const char* config;
  std::function<void()> run;
  std::vector<double> rates = {};
  std::vector<double> cpu_ns = {};  // per task, all threads of the process
};

// CPU seconds used by the whole process so far (0 where getrusage is missing).
auto process_cpu_seconds() -> double {
#if defined(__unix__)
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  const auto seconds = [](const timeval& t) {
    return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) * 1e-6;
  };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
#else
  return 0;
#endif
}

auto median(std::vector<double> v) -> double {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const int rounds = argc > 1 ? std::max(1, std::atoi(argv[1])) : 7;

  std::vector<contender> contenders;
  // A queue as large as the burst: like asio's unbounded queue, the producer never waits.
  contenders.push_back({"respool", "queue 2^20, abort", [] {
                          respool::thread_pool pool{{.core_threads = 2,
                                                     .max_threads = 2,
                                                     .queue_capacity = 1u << 20,
                                                     .prestart_core = true}};
                          for (int i = 0; i < tasks; ++i) pool.execute([] {});
                          pool.shutdown();
                        }});
  // A bounded queue with back-pressure: the producer waits for room.
  contenders.push_back({"respool", "queue 1024, block", [] {
                          respool::thread_pool pool{{.core_threads = 2,
                                                     .max_threads = 2,
                                                     .queue_capacity = 1024,
                                                     .rejection = respool::rejection_policy::block,
                                                     .prestart_core = true}};
                          for (int i = 0; i < tasks; ++i) pool.execute([] {});
                          pool.shutdown();
                        }});
#if RESPOOL_BENCH_HAVE_BOOST_ASIO
  contenders.push_back({"boost::asio::thread_pool", "unbounded", [] {
                          boost::asio::thread_pool pool(2);
                          for (int i = 0; i < tasks; ++i) boost::asio::post(pool, [] {});
                          pool.join();
                        }});
#endif

  for (int r = 0; r < rounds; ++r) {
    for (auto& c : contenders) {
      const double cpu_start = process_cpu_seconds();
      const auto start = clock_type::now();
      c.run();
      const std::chrono::duration<double> elapsed = clock_type::now() - start;
      c.rates.push_back(tasks / elapsed.count());
      c.cpu_ns.push_back((process_cpu_seconds() - cpu_start) * 1e9 / tasks);
    }
  }
  for (const auto& c : contenders) {
    std::printf(
        "{\"bench\":\"noop_throughput\",\"impl\":\"%s\",\"config\":\"%s\",\"tasks\":%d,"
        "\"threads\":2,\"rounds\":%d,\"tasks_per_s\":%.0f,\"best\":%.0f,\"worst\":%.0f,"
        "\"cpu_ns_per_task\":%.0f}\n",
        c.impl, c.config, tasks, rounds, median(c.rates),
        *std::max_element(c.rates.begin(), c.rates.end()),
        *std::min_element(c.rates.begin(), c.rates.end()), median(c.cpu_ns));
  }
#if RESPOOL_BENCH_HAVE_BOOST_ASIO
  std::printf(
      "{\"bench\":\"noop_throughput\",\"figure\":\"ratio\",\"respool_over_asio\":%.2f,"
      "\"cpu_per_task_asio_over_respool\":%.2f,\"target\":1.5}\n",
      median(contenders.front().rates) / median(contenders.back().rates),
      median(contenders.back().cpu_ns) / median(contenders.front().cpu_ns));
#else
  std::printf(
      "{\"bench\":\"noop_throughput\",\"figure\":\"ratio\",\"skipped\":\"Boost headers "
      "not found at configure time (apt-get install libboost-dev)\"}\n");
#endif
  return 0;
}
