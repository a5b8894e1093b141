// pool_deadlines: does acquire(t) come back on time when the CPU is saturated? 4 threads spin
// on the 2 cores while a caller asks an exhausted pool (its one resource held) for
// acquire(0ms), acquire(1ms) and acquire(20ms), --tries times each (default 50), interleaved.
// Figure: how long past t each call returned (median, p99, max). Target: within t + 20 ms.
#include <respool/pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"

namespace {
using namespace std::chrono_literals;
using respool_bench::steady;

auto quantile(std::vector<double> v, double q) -> double {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  auto i = static_cast<std::size_t>(q * static_cast<double>(v.size()));
  return v[std::min(i, v.size() - 1)];
}
}  // namespace

auto main(int argc, char** argv) -> int {
  int tries = 50;
  int burners = 4;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a.rfind("--tries=", 0) == 0) tries = std::max(1, std::atoi(a.c_str() + 8));
    else if (a.rfind("--burners=", 0) == 0) burners = std::max(0, std::atoi(a.c_str() + 10));
    else {
      std::fprintf(stderr, "usage: %s [--tries=N] [--burners=N]\n", argv[0]);
      return 2;
    }
  }
  respool::pool p{[] { return 1; }, respool::pool_options{.max_size = 1, .name = "deadlines"}};
  auto held = p.acquire();

  std::atomic<bool> stop{false};
  std::vector<std::thread> busy;
  for (int i = 0; i < burners; ++i)
    busy.emplace_back([&] {
      volatile unsigned x = 1;
      while (!stop.load(std::memory_order_relaxed)) x = x * 31U + 1U;
    });
  std::this_thread::sleep_for(100ms);  // let the burners take the cores

  const std::chrono::milliseconds timeouts[] = {0ms, 1ms, 20ms};
  std::vector<std::vector<double>> late(3);  // ms past the timeout
  for (int t = 0; t < tries; ++t)
    for (std::size_t k = 0; k < 3; ++k) {
      std::error_code ec;
      const auto t0 = steady::now();
      auto l = p.acquire(timeouts[k], ec);
      const auto took = std::chrono::duration<double, std::milli>(steady::now() - t0).count();
      late[k].push_back(took - static_cast<double>(timeouts[k].count()));
    }
  stop = true;
  for (auto& b : busy) b.join();

  bool met = true;
  for (std::size_t k = 0; k < 3; ++k) {
    const double mx = quantile(late[k], 1.0);
    met = met && mx <= 20.0;
    std::printf(
        "{\"bench\":\"pool_deadlines\",\"timeout_ms\":%lld,\"busy_threads\":%d,\"tries\":%d,"
        "\"late_p50_ms\":%s,\"late_p99_ms\":%s,\"late_max_ms\":%s}\n",
        static_cast<long long>(timeouts[k].count()), burners, tries,
        respool_bench::num(quantile(late[k], 0.5)).c_str(),
        respool_bench::num(quantile(late[k], 0.99)).c_str(), respool_bench::num(mx).c_str());
  }
  std::printf(
      "{\"bench\":\"pool_deadlines\",\"summary\":\"targets\",\"late_max_within_20ms\":%s}\n",
      respool_bench::boolean(met));
  return 0;
}
