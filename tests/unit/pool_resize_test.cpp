// set_max_size(n) at runtime: growing serves waiters with new creations at once (also past the
// table the pool was made with); shrinking closes idle surplus now and leased surplus as it
// comes back, and from then on nothing is lent above the new limit.
#include <respool/pool.hpp>

#include <chrono>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::contains;
using respool_test::eventually;
using respool_test::test_factory;
using respool::destroy_reason;

namespace {
using test_pool = respool::pool<test_factory>;
using lease_t = test_pool::lease_type;

auto take(test_pool& p, std::size_t n) -> std::vector<lease_t> {
  std::vector<lease_t> out;
  for (std::size_t i = 0; i < n; ++i) out.push_back(p.acquire(5s));
  return out;
}

// The books every snapshot must balance.
void check_books(const respool::pool_stats& s) {
  CHECK(s.created - s.destroyed() == s.total - s.creating);
}
}  // namespace

TEST_CASE("set_max_size rejects 0 and sizes above the limit, naming max_size", "[resize]") {
  test_factory f;
  test_pool p{f, {.max_size = 2}};
  for (std::size_t bad : {std::size_t{0}, respool::pool_options::max_size_limit + 1}) {
    try {
      p.set_max_size(bad);
      FAIL("set_max_size(" << bad << ") did not throw");
    } catch (const std::invalid_argument& e) {
      CHECK(contains(e.what(), "max_size"));
      CHECK(contains(e.what(), std::to_string(bad)));
    }
  }
  CHECK(p.options().max_size == 2);
  CHECK(p.stats().max_size == 2);
}

TEST_CASE("growing serves the waiters with new creations at once", "[resize]") {
  test_factory f;
  test_pool p{f, {.max_size = 2}};
  auto held = take(p, 2);
  std::vector<std::thread> waiters;
  std::atomic<int> served{0};
  for (int i = 0; i < 2; ++i)
    waiters.emplace_back([&] {
      auto l = p.acquire(20s);
      ++served;
      while (served < 2) std::this_thread::sleep_for(1ms);  // hold until both are served
    });
  REQUIRE(eventually([&] { return p.stats().waiters == 2; }));
  p.set_max_size(4);
  CHECK(p.options().max_size == 4);
  CHECK(p.stats().max_size == 4);
  REQUIRE(eventually([&] { return served == 2; }));
  for (auto& t : waiters) t.join();
  const auto s = p.stats();
  CHECK(s.created == 4);
  CHECK(s.total == 4);
  CHECK(s.timeouts == 0);
  check_books(s);
}

TEST_CASE("growing far past the first table: every new slot is usable and distinct", "[resize]") {
  test_factory f;
  test_pool p{f, {.max_size = 1}};
  for (std::size_t n : {std::size_t{3}, std::size_t{40}, std::size_t{300}}) {
    p.set_max_size(n);
    auto held = take(p, n);
    std::set<int> ids;
    for (auto& l : held) ids.insert(l->id);
    CHECK(ids.size() == n);
    CHECK(p.stats().in_use == n);
    std::error_code ec;
    CHECK_FALSE(p.acquire(0ms, ec));  // the limit holds
    CHECK(ec == respool::errc::timeout);
  }
  // Returned and lent again: the idle ones in the grown segments are found by a scan.
  auto again = take(p, 300);
  CHECK(p.stats().created == 300);
  check_books(p.stats());
}

TEST_CASE("shrinking closes idle surplus now and leased surplus as it comes back", "[resize]") {
  test_factory f;
  test_pool p{f, {.max_size = 4, .min_idle = 3}};
  auto held = take(p, 4);
  held.pop_back();
  held.pop_back();  // 2 idle, 2 in use
  REQUIRE(p.stats().idle == 2);
  p.set_max_size(1);
  auto s = p.stats();
  CHECK(s.destroyed(destroy_reason::resized) == 2);  // the idle ones, on this thread
  CHECK(s.total == 2);
  CHECK(s.max_size == 1);
  CHECK(p.options().min_idle == 1);  // capped at the limit
  check_books(s);
  // Over the limit: nothing is lent.
  CHECK_FALSE(p.try_acquire());
  held.pop_back();  // surplus: closed on return (in the background)
  REQUIRE(eventually([&] { return p.stats().total == 1; }));
  s = p.stats();
  CHECK(s.destroyed(destroy_reason::resized) == 3);
  CHECK_FALSE(p.try_acquire());  // the one left is in use: the limit is 1
  held.clear();                  // within the limit: it stays
  s = p.stats();
  CHECK(s.destroyed(destroy_reason::resized) == 3);
  CHECK(s.idle == 1);
  auto one = p.acquire(1s);
  std::error_code ec;
  CHECK_FALSE(p.acquire(0ms, ec));
  CHECK(f.c->live == 1);
  check_books(p.stats());
}

TEST_CASE("shrinking with waiters: a return over the limit is closed, not handed on", "[resize]") {
  test_factory f;
  test_pool p{f, {.max_size = 2, .fairness_window = 0ms}};
  auto held = take(p, 2);
  std::atomic<bool> got{false};
  std::thread waiter([&] {
    auto l = p.acquire(20s);
    got = true;
  });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  p.set_max_size(1);
  held.pop_back();
  REQUIRE(eventually([&] { return p.stats().total == 1; }));
  auto s = p.stats();
  CHECK(s.destroyed(destroy_reason::resized) == 1);
  CHECK(s.waiters == 1);  // strict FIFO would have handed it over: the limit came first
  CHECK_FALSE(got);
  held.clear();  // within the limit now: the waiter gets it
  waiter.join();
  CHECK(got);
  CHECK(p.stats().total == 1);
  check_books(p.stats());
}

TEST_CASE("a creation that ends after the limit dropped is closed as surplus", "[resize]") {
  respool_test::first_call_hangs f;
  respool::pool p{f, {.max_size = 2}};
  auto first = p.acquire(5s);  // the first call hangs: a second lane makes this one
  REQUIRE(f.st->first_entered);
  p.set_max_size(1);  // live: the lease and the hung creation
  f.st->open = true;  // the hung creation returns: surplus
  REQUIRE(eventually([&] { return p.stats().destroyed(destroy_reason::resized) == 1; }));
  const auto s = p.stats();
  CHECK(s.total == 1);
  CHECK(s.in_use == 1);
  check_books(s);
}

TEST_CASE("shrink then grow again: waiters go on being served", "[resize]") {
  test_factory f;
  test_pool p{f, {.max_size = 3}};
  p.set_max_size(1);
  {
    auto l = p.acquire(1s);
    std::error_code ec;
    CHECK_FALSE(p.acquire(10ms, ec));
    CHECK(ec == respool::errc::timeout);
  }
  p.set_max_size(3);
  auto held = take(p, 3);
  CHECK(p.stats().in_use == 3);
  check_books(p.stats());
}
