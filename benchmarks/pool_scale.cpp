// pool_scale: does an acquire cost more in a bigger pool? The same work at max_size 8 and at
// max_size 10,000 (target: at most 2x), with only a few resources alive in either:
//
//  - stale hint, 1 thread: each iteration takes two leases and returns them, so the second
//    acquire always finds the slot its thread returned last in use and must look elsewhere.
//  - contended, 8 threads on 4 resources (the factory refuses a fifth), holding 1 us.
//
// Method: --runs (default 3) of --seconds (default 1), sizes interleaved run by run, the median
// reported. One JSON line per figure, then the ratios against the target.
#include <respool/pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

#include "bench_util.hpp"

namespace {

using namespace std::chrono_literals;
using respool_bench::steady;

struct stub {
  int value = 1;
};

// Makes at most `limit` resources over its life; refuses the rest, so a pool with room for
// 10,000 still has only a few.
struct limited_factory {
  std::shared_ptr<std::atomic<int>> made = std::make_shared<std::atomic<int>>(0);
  int limit = 4;
  auto create() -> stub {
    if (made->fetch_add(1) >= limit) throw std::runtime_error("no more (benchmark limit)");
    return {};
  }
};

using pool_t = respool::pool<limited_factory>;

auto make_pool(std::size_t max_size, int alive) -> std::unique_ptr<pool_t> {
  return std::make_unique<pool_t>(
      limited_factory{std::make_shared<std::atomic<int>>(0), alive},
      respool::pool_options{.max_size = max_size, .min_idle = static_cast<std::size_t>(alive),
                            .idle_timeout = 0ms, .max_lifetime = 0ms,
                            .validate_after_idle = respool::pool_options::never});
}

auto stale_hint_rate(std::size_t max_size, double seconds) -> double {
  auto p = make_pool(max_size, 2);
  const auto r = respool_bench::run_timed(
      1, seconds,
      [&](int, const std::atomic<bool>& stop) -> std::uint64_t {
        std::uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          auto a = p->acquire();
          auto b = p->acquire();  // the hint names a's slot, which is in use: look elsewhere
          a.return_to_pool();
          b.return_to_pool();
          n += 2;
        }
        return n;
      },
      [] {}, [] {});
  return static_cast<double>(r.total()) / r.elapsed;
}

auto contended_rate(std::size_t max_size, double seconds) -> double {
  auto p = make_pool(max_size, 4);
  const auto r = respool_bench::run_timed(
      8, seconds,
      [&](int, const std::atomic<bool>& stop) -> std::uint64_t {
        std::uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          auto l = p->acquire(10s);
          const auto until = steady::now() + 1us;
          while (steady::now() < until) l->value = l->value * 31 + 1;
          ++n;
        }
        return n;
      },
      [] {}, [] {});
  return static_cast<double>(r.total()) / r.elapsed;
}

void print(const char* what, std::size_t max_size, double rate) {
  std::printf("{\"bench\":\"pool_scale\",\"case\":\"%s\",\"max_size\":%zu,\"cycles_per_sec\":%.0f}\n",
              what, max_size, rate);
}

}  // namespace

auto main(int argc, char** argv) -> int {
  const auto cfg = respool_bench::parse_settings(argc, argv);
  constexpr std::size_t small = 8;
  constexpr std::size_t big = 10'000;
  std::vector<double> stale_small, stale_big, cont_small, cont_big;
  for (int r = 0; r < cfg.runs; ++r) {
    stale_small.push_back(stale_hint_rate(small, cfg.seconds));
    stale_big.push_back(stale_hint_rate(big, cfg.seconds));
    cont_small.push_back(contended_rate(small, cfg.seconds));
    cont_big.push_back(contended_rate(big, cfg.seconds));
  }
  const double ss = respool_bench::median(stale_small), sb = respool_bench::median(stale_big);
  const double cs = respool_bench::median(cont_small), cb = respool_bench::median(cont_big);
  print("stale hint, 1 thread, 2 resources", small, ss);
  print("stale hint, 1 thread, 2 resources", big, sb);
  print("contended, 8 threads, 4 resources, 1 us hold", small, cs);
  print("contended, 8 threads, 4 resources, 1 us hold", big, cb);
  const double stale_cost = sb > 0 ? ss / sb : 0.0;  // time per cycle, big over small
  const double cont_cost = cb > 0 ? cs / cb : 0.0;
  std::printf(
      "{\"bench\":\"pool_scale\",\"summary\":\"targets\","
      "\"stale_hint_cost_10000_over_8\":{\"value\":%s,\"target\":\"<= 2\",\"met\":%s},"
      "\"contended_cost_10000_over_8\":{\"value\":%s,\"target\":\"<= 2\",\"met\":%s}}\n",
      respool_bench::num(stale_cost).c_str(), respool_bench::boolean(stale_cost <= 2.0),
      respool_bench::num(cont_cost).c_str(), respool_bench::boolean(cont_cost <= 2.0));
  return 0;
}
