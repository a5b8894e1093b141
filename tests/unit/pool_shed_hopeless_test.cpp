// shed_hopeless: a caller whose estimated wait (its place in the queue x the recent mean hold
// time / max_size) already exceeds its timeout is refused at once with errc::exhausted, the
// estimate in the message, instead of waiting out a timeout it cannot beat.
#include <respool/pool.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::contains;
using respool_test::eventually;
using respool_test::test_factory;

namespace {
// A first hold of `hold` (the first hold of each resource is timed for use_time), then the
// resource leased again and held by the caller.
template <class Pool>
auto hold_once_then_keep(Pool& p, std::chrono::milliseconds hold) {
  {
    auto l = p.acquire(1s);
    std::this_thread::sleep_for(hold);
  }
  REQUIRE(p.stats().use_time.count() >= 1);
  return p.acquire(1s);
}

// A 20 ms acquire on a pool whose resources are all held: it waits its timeout out, unshed.
template <class Pool>
void check_waited_out(Pool& p) {
  std::error_code ec;
  auto l = p.acquire(20ms, ec);
  CHECK(ec == respool::errc::timeout);
  CHECK(p.stats().shed == 0);
}
}  // namespace

TEST_CASE("shed_hopeless: a timeout shorter than the estimated wait is refused at once",
          "[shed]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .shed_hopeless = true}};
  auto held = hold_once_then_keep(p, 100ms);
  try {
    auto l = p.acquire(20ms);
    FAIL("a hopeless acquire was served");
  } catch (const respool::error& e) {
    CHECK(e.code() == respool::errc::exhausted);
    CHECK(contains(e.what(), "estimated wait"));
    CHECK(contains(e.what(), "mean hold"));
  }
  CHECK(p.stats().shed == 1);
  CHECK(p.stats().timeouts == 0);
  // A caller whose timeout can be met waits, and is served.
  std::error_code ec;
  std::thread patient([&] { auto l = p.acquire(10s, ec); });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  held = {};
  patient.join();
  CHECK_FALSE(ec);
  CHECK(p.stats().shed == 1);
}

TEST_CASE("shed_hopeless off: the same caller waits out its timeout", "[shed]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = hold_once_then_keep(p, 100ms);
  check_waited_out(p);
}

TEST_CASE("shed_hopeless: with no hold timed yet, nobody is refused", "[shed]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .min_idle = 1, .shed_hopeless = true}};
  REQUIRE(p.stats().use_time.count() == 0);
  // Held without a timed hold finished: no mean to estimate from.
  auto held = p.acquire(1s);
  check_waited_out(p);
}

TEST_CASE("shed_hopeless: the place in the queue counts", "[shed]") {
  test_factory f;
  // Mean hold ~100 ms over 2 resources: place 1 expects ~50 ms, place 3 ~150 ms.
  respool::pool p{f, {.max_size = 2, .shed_hopeless = true}};
  auto a = hold_once_then_keep(p, 100ms);
  auto b = hold_once_then_keep(p, 100ms);
  std::error_code first_ec;
  std::error_code second_ec;
  std::thread first([&] { auto l = p.acquire(10s, first_ec); });
  std::thread second([&] { auto l = p.acquire(10s, second_ec); });
  REQUIRE(eventually([&] { return p.stats().waiters == 2; }));
  std::error_code ec;
  auto l = p.acquire(100ms, ec);  // place 3: ~150 ms > 100 ms
  CHECK(ec == respool::errc::exhausted);
  a = {};
  b = {};
  first.join();
  second.join();
  CHECK_FALSE(first_ec);
  CHECK_FALSE(second_ec);
}
