// Waiting: first come, first served; hand-off on return; whichever comes first between a return
// and a creation; load shedding; timeouts on a manual clock; close wakes waiters.
#include <respool/pool.hpp>

#include <future>
#include <mutex>
#include <vector>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::eventually;
using respool_test::manual_clock;
using respool_test::resource;
using respool_test::test_factory;

// The order is promised in strict mode only: with a fairness window, a waiter that is still
// running (spinning, or scanning) may take a return ahead of older ones that sleep, and the
// promise is a bounded wait instead.
TEST_CASE("strict FIFO (fairness_window 0): waiters are served first come, first served") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .fairness_window = std::chrono::microseconds(0)}};
  auto held = p.acquire();
  constexpr int n = 6;
  std::mutex m;
  std::vector<int> order;
  std::vector<std::thread> threads;
  for (int i = 0; i < n; ++i) {
    threads.emplace_back([&, i] {
      auto l = p.acquire(30s);
      std::lock_guard lk(m);
      order.push_back(i);
    });
    // Wait until thread i is queued before starting the next, so arrival order is known.
    REQUIRE(eventually([&] { return p.stats().waiters == static_cast<std::size_t>(i + 1); }));
  }
  held.return_to_pool();
  for (auto& t : threads) t.join();
  REQUIRE(order.size() == n);
  for (int i = 0; i < n; ++i) CHECK(order[static_cast<std::size_t>(i)] == i);
  CHECK(f.c->made == 1);  // handed from waiter to waiter, never a second resource
}

TEST_CASE("strict FIFO (fairness_window 0): a return goes to the waiter, not to a barger") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .fairness_window = std::chrono::microseconds(0)}};
  auto held = p.acquire();
  std::promise<int> got;
  std::promise<void> may_return;
  std::thread waiter([&] {
    auto l = p.acquire(30s);
    got.set_value(l->id);
    may_return.get_future().wait();
  });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  held.return_to_pool();
  // The hand-off happened inside return_to_pool(): nothing is idle for a barger to take.
  CHECK_FALSE(p.try_acquire().has_value());
  CHECK(got.get_future().get() == 1);
  may_return.set_value();
  waiter.join();
}

TEST_CASE("a waiter is served by a return when creation is slow") {
  test_factory inner;
  std::atomic<bool> creation_may_finish{false};
  auto slow_factory = [&] {
    while (!creation_may_finish) std::this_thread::yield();
    return inner.create();
  };
  respool::pool p{slow_factory, respool::pool_options{.max_size = 2}};
  creation_may_finish = true;
  auto held = p.acquire();
  creation_may_finish = false;  // the next creation hangs
  std::promise<int> got;
  std::thread waiter([&] {
    auto l = p.acquire(30s);
    got.set_value(l->id);
  });
  REQUIRE(eventually([&] { return p.stats().creating == 1 && p.stats().waiters == 1; }));
  held.return_to_pool();  // comes first
  CHECK(got.get_future().get() == 1);
  waiter.join();
  creation_may_finish = true;  // let the creator finish; its resource goes idle
  REQUIRE(eventually([&] { return p.stats().idle == 2; }));
}

TEST_CASE("a waiter is served by a new resource when nothing comes back") {
  test_factory f;
  respool::pool p{f, {.max_size = 2}};
  auto held = p.acquire();
  auto second = p.acquire(30s);  // no return will come: the creator serves it
  CHECK(second->id == 2);
  CHECK(f.c->made == 2);
}

TEST_CASE("max_waiters sheds load at once with errc::exhausted") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .max_waiters = 1}};
  auto held = p.acquire();
  std::thread waiter([&] {
    std::error_code ec;
    auto l = p.acquire(30s, ec);
    CHECK_FALSE(ec);
  });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  auto l = p.acquire(30s, ec);
  CHECK(ec == respool::errc::exhausted);
  CHECK(std::chrono::steady_clock::now() - start < 10s);  // at once, not after the timeout
  CHECK(p.stats().shed == 1);
  held.return_to_pool();
  waiter.join();
}

TEST_CASE("max_waiters = 0 is refused: acquire(0ms) and try_acquire are the calls that never wait") {
  test_factory f;
  try {
    respool::pool p{f, {.max_size = 1, .min_idle = 1, .max_waiters = 0}};
    FAIL("a pool that could never serve a cold acquire was accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()).find("max_waiters") != std::string::npos);
  }
}

TEST_CASE("a waiter times out on the pool's clock, without real waiting") {
  manual_clock::reset();
  test_factory f;
  respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock> p{
      f, {.max_size = 1, .housekeeping_interval = 0ms}};
  auto held = p.acquire();
  std::promise<std::error_code> result;
  std::thread waiter([&] {
    std::error_code ec;
    auto l = p.acquire(std::chrono::hours(1), ec);
    result.set_value(ec);
  });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  manual_clock::advance(std::chrono::minutes(59));
  p.run_maintenance();
  auto fut = result.get_future();
  CHECK(fut.wait_for(50ms) == std::future_status::timeout);  // still waiting
  manual_clock::advance(std::chrono::minutes(2));
  p.run_maintenance();
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  CHECK(fut.get() == respool::errc::timeout);
  waiter.join();
  auto s = p.stats();
  CHECK(s.timeouts == 1);
  CHECK(s.waiters == 0);
  CHECK(s.wait_max >= std::chrono::minutes(61));
}

TEST_CASE("close wakes every waiter with errc::closed") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = p.acquire();
  std::vector<std::thread> threads;
  std::atomic<int> closed_count{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      std::error_code ec;
      auto l = p.acquire(60s, ec);
      if (ec == respool::errc::closed) ++closed_count;
    });
  }
  REQUIRE(eventually([&] { return p.stats().waiters == 4; }));
  p.close();
  for (auto& t : threads) t.join();
  CHECK(closed_count == 4);
}

TEST_CASE("no lost wake-ups: many threads churn a tiny pool") {
  test_factory f;
  respool::pool p{f, {.max_size = 2, .acquire_timeout = 30s}};
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; ++i) {
        auto l = p.acquire();  // would throw after 30 s if a wake-up were lost
        ++done;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(done == 12000);
  auto s = p.stats();
  CHECK(s.timeouts == 0);
  CHECK(s.total <= 2);
  CHECK(s.acquired == 12000);
}

TEST_CASE("eventual fairness: a waiter is served while another thread keeps barging") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .fairness_window = std::chrono::milliseconds(2)}};
  std::atomic<bool> stop{false};
  std::atomic<long> barged{0};
  std::thread barger([&] {  // returns and re-takes the only resource as fast as it can
    while (!stop) {
      auto l = p.acquire(30s);
      ++barged;
    }
  });
  REQUIRE(eventually([&] { return barged.load() > 100; }));
  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  auto l = p.acquire(10s, ec);  // once it has waited the window, the next return is its
  const auto waited = std::chrono::steady_clock::now() - start;
  stop = true;
  l.return_to_pool();
  barger.join();
  CHECK_FALSE(ec);
  CHECK(waited < 2s);  // a few windows, with slack for a loaded machine; never the timeout
}
