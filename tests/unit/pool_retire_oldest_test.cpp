// pool::oldest_idle_age() and pool::retire_oldest_idle(): what keyed_pool uses to close the
// idle resource of one key that has waited longest, to make room for another key.
#include <respool/pool.hpp>

#include <chrono>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::manual_clock;
using respool_test::resource;
using respool_test::test_factory;

TEST_CASE("retire_oldest_idle closes the resource returned longest ago", "[retire_oldest]") {
  manual_clock::reset();
  test_factory f;
  respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock> p{
      f, {.max_size = 3, .housekeeping_interval = 0ms}};
  CHECK_FALSE(p.oldest_idle_age());  // nothing idle
  CHECK_FALSE(p.retire_oldest_idle());
  auto a = p.acquire(1s);
  auto b = p.acquire(1s);
  const int first = a->id;
  const int second = b->id;
  a.return_to_pool();  // idle since now
  manual_clock::advance(30ms);
  p.run_maintenance();  // ticks the coarse clock that returns read
  b.return_to_pool();
  manual_clock::advance(5ms);
  const auto age = p.oldest_idle_age();
  REQUIRE(age);
  CHECK(*age >= 35ms);  // a's
  CHECK(*age < 40ms);
  CHECK(p.retire_oldest_idle());
  CHECK(p.stats().idle == 1);
  CHECK(p.stats().destroyed(respool::destroy_reason::reclaimed) == 1);
  CHECK(f.c->live.load() == 1);
  auto left = p.acquire(1s);
  CHECK(left->id == second);
  CHECK(left->id != first);
  CHECK_FALSE(p.retire_oldest_idle());  // the only one is in use
}
