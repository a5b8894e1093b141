// pool_faults: what callers see when the backend misbehaves.
//
//  1. Flaky backend: 8 threads on a pool of 4, acquire(200ms), a factory that fails 10% of
//     connects, a validator that fails 5% of borrows (validate_after_idle = 0: every borrow is
//     checked), a resetter that fails 2% of returns, a 1 us hold. Figure: the share of
//     acquires served (target >= 95%), and how the others failed.
//  2. Backend down: every connect fails at once. Once fail_fast_after (3) failures have been
//     seen, how long an acquire(200ms) takes to answer (target: p99 under 1 ms), from 1 and 8
//     threads, and what it answers (backend_unavailable).
//
// Method: --seconds (default 2) of cycles per run, --runs (default 3), the median run reported.
// One JSON line per figure, then a summary with the targets.
#include <respool/pool.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <random>
#include <stdexcept>
#include <vector>

#include "bench_util.hpp"

namespace {

using namespace std::chrono_literals;
using respool_bench::steady;

auto chance(unsigned per_mille) -> bool {
  thread_local std::minstd_rand gen{std::random_device{}()};
  return std::uniform_int_distribution<unsigned>(0, 999)(gen) < per_mille;
}

struct stub {
  int value = 1;
};

struct flaky_factory {
  auto create() -> stub {
    if (chance(100)) throw std::runtime_error("connection refused (injected)");
    return {};
  }
};
struct flaky_validator {
  auto validate(stub&) const -> bool { return !chance(50); }
};
struct flaky_resetter {
  auto reset(stub&) const -> bool { return !chance(20); }
};

void hold_for(std::chrono::nanoseconds d) {
  const auto until = steady::now() + d;
  while (steady::now() < until) {
  }
}

struct outcome {
  std::uint64_t served = 0, timeout = 0, unavailable = 0, create_failed = 0, other = 0;
  [[nodiscard]] auto total() const -> std::uint64_t {
    return served + timeout + unavailable + create_failed + other;
  }
  [[nodiscard]] auto share() const -> double {
    return total() == 0 ? 0.0 : static_cast<double>(served) / static_cast<double>(total());
  }
  void count(const std::error_code& ec) {
    if (!ec) ++served;
    else if (ec == respool::errc::timeout) ++timeout;
    else if (ec == respool::errc::backend_unavailable) ++unavailable;
    else if (ec == respool::errc::create_failed) ++create_failed;
    else ++other;
  }
};

auto flaky_run(double seconds) -> outcome {
  respool::pool p{flaky_factory{},
                  respool::pool_options{.max_size = 4, .validate_after_idle = 0ms, .name = "flaky"},
                  flaky_validator{}, flaky_resetter{}};
  std::vector<outcome> per(8);
  respool_bench::run_timed(
      8, seconds,
      [&](int i, const std::atomic<bool>& stop) -> std::uint64_t {
        auto& o = per[static_cast<std::size_t>(i)];
        while (!stop.load(std::memory_order_relaxed)) {
          std::error_code ec;
          auto l = p.acquire(200ms, ec);
          o.count(ec);
          if (l) hold_for(1us);
        }
        return o.total();
      },
      [] {}, [] {});
  outcome all;
  for (const auto& o : per) {
    all.served += o.served;
    all.timeout += o.timeout;
    all.unavailable += o.unavailable;
    all.create_failed += o.create_failed;
    all.other += o.other;
  }
  return all;
}

struct down_result {
  double p50_us = 0, p99_us = 0, max_us = 0;
  outcome answers;
};

auto down_run(int threads, int calls_per_thread) -> down_result {
  auto refuse = []() -> stub { throw std::runtime_error("connection refused (down)"); };
  respool::pool p{refuse, respool::pool_options{.max_size = 4, .name = "down"}};
  // Reach the threshold: the first callers wait for the attempts and learn why.
  while (p.stats().create_failures < p.options().fail_fast_after) {
    std::error_code ec;
    auto l = p.acquire(200ms, ec);
  }
  std::vector<respool_bench::latency_histogram> hist(static_cast<std::size_t>(threads));
  std::vector<outcome> per(static_cast<std::size_t>(threads));
  std::vector<double> worst(static_cast<std::size_t>(threads), 0.0);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      const auto i = static_cast<std::size_t>(t);
      for (int n = 0; n < calls_per_thread; ++n) {
        std::error_code ec;
        const auto t0 = steady::now();
        auto l = p.acquire(200ms, ec);
        const auto took = std::chrono::duration<double, std::micro>(steady::now() - t0).count();
        hist[i].add(static_cast<std::uint64_t>(took * 1000.0));
        worst[i] = std::max(worst[i], took);
        per[i].count(ec);
      }
    });
  for (auto& t : pool) t.join();
  respool_bench::latency_histogram all;
  down_result r;
  for (std::size_t i = 0; i < hist.size(); ++i) {
    all.merge(hist[i]);
    r.max_us = std::max(r.max_us, worst[i]);
    r.answers.served += per[i].served;
    r.answers.timeout += per[i].timeout;
    r.answers.unavailable += per[i].unavailable;
    r.answers.create_failed += per[i].create_failed;
  }
  r.p50_us = all.percentile(0.50) / 1000.0;
  r.p99_us = all.percentile(0.99) / 1000.0;
  return r;
}

void print_outcome(const char* what, const outcome& o) {
  std::printf(
      "{\"bench\":\"pool_faults\",\"case\":\"%s\",\"acquires\":%llu,\"served\":%llu,"
      "\"served_share\":%s,\"timeout\":%llu,\"backend_unavailable\":%llu,\"create_failed\":%llu,"
      "\"other\":%llu}\n",
      what, static_cast<unsigned long long>(o.total()), static_cast<unsigned long long>(o.served),
      respool_bench::num(o.share()).c_str(), static_cast<unsigned long long>(o.timeout),
      static_cast<unsigned long long>(o.unavailable),
      static_cast<unsigned long long>(o.create_failed), static_cast<unsigned long long>(o.other));
}

}  // namespace

auto main(int argc, char** argv) -> int {
  auto cfg = respool_bench::parse_settings(argc, argv);
  if (cfg.seconds == 1.0) cfg.seconds = 2.0;

  std::vector<outcome> runs;
  for (int r = 0; r < cfg.runs; ++r) runs.push_back(flaky_run(cfg.seconds));
  std::sort(runs.begin(), runs.end(),
            [](const outcome& a, const outcome& b) { return a.share() < b.share(); });
  const auto flaky = runs[runs.size() / 2];
  print_outcome("flaky: 8 threads, max_size 4, acquire(200ms), connect fails 10%, "
                "validate 5%, reset 2%",
                flaky);

  std::array<down_result, 2> down{down_run(1, 2000), down_run(8, 500)};
  const int threads[] = {1, 8};
  for (std::size_t i = 0; i < down.size(); ++i)
    std::printf(
        "{\"bench\":\"pool_faults\",\"case\":\"down: every connect fails, after the threshold\","
        "\"threads\":%d,\"answer_p50_us\":%s,\"answer_p99_us\":%s,\"answer_max_us\":%s,"
        "\"backend_unavailable\":%llu,\"other_answers\":%llu}\n",
        threads[i], respool_bench::num(down[i].p50_us).c_str(),
        respool_bench::num(down[i].p99_us).c_str(), respool_bench::num(down[i].max_us).c_str(),
        static_cast<unsigned long long>(down[i].answers.unavailable),
        static_cast<unsigned long long>(down[i].answers.total() - down[i].answers.unavailable));

  const bool served_ok = flaky.share() >= 0.95;
  const bool down_ok = down[0].p99_us < 1000.0 && down[1].p99_us < 1000.0;
  std::printf(
      "{\"bench\":\"pool_faults\",\"summary\":\"targets\",\"flaky_served_share\":{\"value\":%s,"
      "\"target\":\">= 0.95\",\"met\":%s},\"down_answer_p99_us\":{\"value\":%s,"
      "\"target\":\"< 1000\",\"met\":%s}}\n",
      respool_bench::num(flaky.share()).c_str(), respool_bench::boolean(served_ok),
      respool_bench::num(std::max(down[0].p99_us, down[1].p99_us)).c_str(),
      respool_bench::boolean(down_ok));
  return 0;
}
