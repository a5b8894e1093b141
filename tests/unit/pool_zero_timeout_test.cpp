// Short timeouts are kept: acquire(0ms) on an exhausted pool fails at once with errc::timeout,
// never queueing as a waiter and never spinning or yielding; under CPU load, acquire(20ms) returns
// close to 20 ms and acquire(0ms) at once (no yield loop that the busy threads can stretch).
#include <respool/pool.hpp>

#include <atomic>
#include <vector>

#include "bounded_run.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::background;
using respool_test::test_factory;

namespace {
using real_pool = respool::pool<test_factory>;

// CPU-bound threads that spin until destroyed.
class busy_threads {
 public:
  explicit busy_threads(int n) {
    for (int i = 0; i < n; ++i)
      threads_.emplace_back([this] {
        std::uint64_t x = 0;
        while (!stop_.load(std::memory_order_relaxed)) x = x * 6364136223846793005ULL + 1;
        sink_.fetch_add(x, std::memory_order_relaxed);
      });
  }
  busy_threads(const busy_threads&) = delete;
  auto operator=(const busy_threads&) -> busy_threads& = delete;
  ~busy_threads() {
    stop_ = true;
    for (auto& t : threads_) t.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> sink_{0};
  std::vector<std::thread> threads_;
};
}  // namespace

TEST_CASE("acquire(0ms) on an exhausted pool fails at once and never queues") {
  test_factory f;
  auto p = std::make_unique<real_pool>(f, respool::pool_options{.max_size = 1});
  auto held = p->acquire(1s);
  REQUIRE(held);
  real_pool* raw = p.get();
  // Samples the waiter count from another thread for as long as the loop runs.
  std::atomic<bool> stop{false};
  std::atomic<std::size_t> most_waiters{0};
  std::atomic<int> samples{0};
  std::thread sampler([&] {
    while (!stop) {
      const auto w = raw->stats().waiters;
      if (w > most_waiters) most_waiters = w;
      ++samples;
    }
  });
  struct result {
    int timeouts = 0;
    int others = 0;
    double took_ms = 0;
  };
  background<result> loop([raw] {
    result r;
    const auto start = std::chrono::steady_clock::now();
    for (int i = 0; i < 1000; ++i) {
      std::error_code ec;
      auto l = raw->acquire(0ms, ec);
      if (ec == respool::errc::timeout) {
        ++r.timeouts;
      } else {
        ++r.others;
      }
    }
    r.took_ms = respool_test::ms_since(start);
    return r;
  });
  const bool returned = loop.ready_within(10s);
  stop = true;
  sampler.join();
  if (!returned) {
    respool_test::unstick(p, loop);
    FAIL("1000 x acquire(0ms) did not return within 10 s");
  }
  const auto r = loop.get();
  INFO("1000 x acquire(0ms) took " << r.took_ms << " ms; " << samples.load() << " samples");
  CHECK(r.timeouts == 1000);
  CHECK(r.others == 0);
  CHECK(most_waiters == 0);  // never counted as a waiter, not even for a moment
  CHECK(r.took_ms < 500.0);  // no spinning, no yielding: microseconds each
  CHECK(p->stats().waiters == 0);
}

TEST_CASE("under CPU load acquire(20ms) returns close to 20 ms and acquire(0ms) at once") {
  test_factory f;
  real_pool p{f, {.max_size = 1}};
  auto held = p.acquire(1s);
  REQUIRE(held);
  std::vector<double> short_waits;
  std::vector<double> zero_waits;
  std::vector<std::error_code> codes;
  {
    busy_threads busy(4);  // 4 spinning threads on a 2-core machine: every yield costs a slice
    std::this_thread::sleep_for(20ms);
    for (int i = 0; i < 10; ++i) {
      const auto start = std::chrono::steady_clock::now();
      std::error_code ec;
      auto l = p.acquire(20ms, ec);  // bounded by its own timeout on the real clock
      short_waits.push_back(respool_test::ms_since(start));
      codes.push_back(ec);
    }
    for (int i = 0; i < 10; ++i) {
      const auto start = std::chrono::steady_clock::now();
      std::error_code ec;
      auto l = p.acquire(0ms, ec);
      zero_waits.push_back(respool_test::ms_since(start));
      codes.push_back(ec);
    }
  }
  for (const auto& ec : codes) CHECK(ec == respool::errc::timeout);
  const auto med20 = respool_test::median(short_waits);
  const auto max20 = respool_test::maximum(short_waits);
  const auto med0 = respool_test::median(zero_waits);
  INFO("acquire(20ms): median " << med20 << " ms, max " << max20 << " ms; acquire(0ms): median "
                                << med0 << " ms, max " << respool_test::maximum(zero_waits)
                                << " ms");
  CHECK(med20 < 20.0 + 20.0);
  CHECK(max20 < 20.0 + 150.0);
  CHECK(med0 < 5.0);
}
