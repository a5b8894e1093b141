// pause() and resume(): while paused, acquires wait and time out saying so, nothing idle is lent
// and nothing new is created; resume() serves the waiters in the order they came.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::contains;
using respool_test::eventually;
using respool_test::test_factory;

TEST_CASE("paused: acquires time out saying the pool is paused - nothing idle is lent",
          "[pause]") {
  test_factory f;
  respool::pool p{f, {.max_size = 2, .min_idle = 1}};
  REQUIRE(p.stats().idle == 1);
  p.pause();
  CHECK(p.stats().paused);
  CHECK_FALSE(p.try_acquire());
  for (auto timeout : {0ms, 30ms}) {
    try {
      auto l = p.acquire(timeout);
      FAIL("acquire while paused succeeded");
    } catch (const respool::error& e) {
      CHECK(e.code() == respool::errc::timeout);
      CHECK(contains(e.what(), "paused"));
    }
  }
  const auto s = p.stats();
  CHECK(s.idle == 1);
  CHECK(s.created == 1);  // the failed acquires made nothing
  CHECK(s.timeouts == 2);
  p.resume();
  CHECK_FALSE(p.stats().paused);
  auto l = p.acquire(1s);
  CHECK(l);
}

TEST_CASE("paused: nothing new is created - resume() creates for the waiters", "[pause]") {
  test_factory f;
  respool::pool p{f, {.max_size = 2}};
  p.pause();
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    auto l = p.acquire(20s);
    got = true;
  });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  std::this_thread::sleep_for(50ms);  // time for a creation that should not happen
  CHECK(p.stats().created == 0);
  CHECK_FALSE(got);
  p.resume();
  waiter.join();
  CHECK(got);
  CHECK(p.stats().created == 1);
}

TEST_CASE("a lease returned while paused stays idle - resume() serves the waiters in order",
          "[pause]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .fairness_window = 0ms}};
  auto held = p.acquire(1s);
  p.pause();
  std::mutex m;
  std::vector<int> order;
  std::vector<std::thread> waiters;
  for (int i = 0; i < 3; ++i) {
    waiters.emplace_back([&, i] {
      auto l = p.acquire(20s);
      std::lock_guard lk(m);
      order.push_back(i);
    });
    REQUIRE(eventually([&] { return p.stats().waiters == static_cast<std::size_t>(i + 1); }));
  }
  held = {};  // returned while paused: not handed to the head
  auto s = p.stats();
  CHECK(s.idle == 1);
  CHECK(s.waiters == 3);
  p.resume();
  for (auto& t : waiters) t.join();
  CHECK(order == std::vector<int>{0, 1, 2});
  CHECK(p.stats().created == 1);
}

TEST_CASE("close() while paused fails the waiters with closed", "[pause]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  p.pause();
  std::error_code ec;
  std::thread waiter([&] { auto l = p.acquire(20s, ec); });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  p.close();
  waiter.join();
  CHECK(ec == respool::errc::closed);
}

TEST_CASE("pause() and resume() are idempotent", "[pause]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  p.resume();  // not paused: nothing to do
  p.pause();
  p.pause();
  p.resume();
  CHECK_FALSE(p.stats().paused);
  auto l = p.acquire(1s);
  CHECK(l);
}
