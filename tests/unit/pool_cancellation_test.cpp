// acquire(std::stop_token, timeout): a stop request ends the wait at once with errc::cancelled,
// frees the caller's place in the queue, and leaks nothing.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <stop_token>
#include <thread>
#include <vector>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::contains;
using respool_test::eventually;
using respool_test::test_factory;
using steady = std::chrono::steady_clock;

TEST_CASE("a stop requested before the call fails at once with cancelled", "[cancel]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  std::stop_source src;
  src.request_stop();
  std::error_code ec;
  auto l = p.acquire(src.get_token(), 5s, ec);
  CHECK_FALSE(l);
  CHECK(ec == respool::errc::cancelled);
  CHECK(p.stats().cancelled == 1);
  // A token that never stops changes nothing.
  auto ok = p.acquire(std::stop_token{}, 5s);
  CHECK(ok);
}

TEST_CASE("a stop request wakes a waiter at once and frees its place", "[cancel]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .max_waiters = 1}};
  auto held = p.acquire(5s);
  std::stop_source src;
  std::error_code ec;
  steady::duration waited{};
  std::thread waiter([&] {
    const auto t0 = steady::now();
    auto l = p.acquire(src.get_token(), 30s, ec);
    waited = steady::now() - t0;
  });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  src.request_stop();
  waiter.join();
  CHECK(ec == respool::errc::cancelled);
  CHECK(waited < 10s);  // not the 30 s timeout
  const auto s = p.stats();
  CHECK(s.waiters == 0);
  CHECK(s.cancelled == 1);
  // Its place is free: with max_waiters 1 the next caller queues instead of being shed, and is
  // served by the return.
  std::error_code ec2;
  std::thread next([&] { auto l = p.acquire(30s, ec2); });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  held = {};
  next.join();
  CHECK(!ec2);
}

TEST_CASE("the throwing form throws respool::error with cancelled and says why", "[cancel]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = p.acquire(5s);
  std::stop_source src;
  std::thread stopper([&] {
    REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
    src.request_stop();
  });
  try {
    auto l = p.acquire(src.get_token(), 30s);
    FAIL("the acquire should have been cancelled");
  } catch (const respool::error& e) {
    CHECK(e.code() == respool::errc::cancelled);
    CHECK(contains(e.what(), "cancelled"));
  }
  stopper.join();
}

TEST_CASE("cancellations racing returns and hand-offs leak nothing", "[cancel][stress]") {
  test_factory f;
  respool::pool p{f, {.max_size = 2}};
  std::atomic<bool> stop{false};
  std::atomic<long> served{0};
  std::atomic<long> cancelled{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      int i = 0;
      while (!stop.load()) {
        std::stop_source src;
        std::thread canceller;
        if (t % 2 == 0) canceller = std::thread([&src, i] {
                          std::this_thread::sleep_for(std::chrono::microseconds(i % 200));
                          src.request_stop();
                        });
        std::error_code ec;
        {
          auto l = p.acquire(src.get_token(), 2s, ec);
          if (l) {
            served.fetch_add(1);
            std::this_thread::sleep_for(50us);
          } else if (ec == respool::errc::cancelled) {
            cancelled.fetch_add(1);
          } else {
            FAIL("unexpected error: " << ec.message());
          }
        }
        if (canceller.joinable()) canceller.join();
        ++i;
      }
    });
  }
  std::this_thread::sleep_for(700ms);
  stop = true;
  for (auto& th : threads) th.join();
  INFO("served " << served.load() << ", cancelled " << cancelled.load());
  CHECK(cancelled.load() > 0);
  CHECK(served.load() > 0);
  const auto s = p.stats();
  CHECK(s.waiters == 0);
  CHECK(s.in_use == 0);
  CHECK(s.total <= 2);
  CHECK(s.created - s.destroyed() == s.total - s.creating);
  CHECK(s.cancelled == static_cast<std::uint64_t>(cancelled.load()));
  // Every resource is still usable.
  auto a = p.acquire(2s);
  auto b = p.acquire(2s);
  CHECK((a && b));
}
