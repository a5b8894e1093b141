// The resetter runs only on resources that will be reused: a lease returned after close(), after
// evict_all(), after its max_lifetime passed, or after the pool itself was destroyed is destroyed
// without a reset (a reset is a round trip to the server, wasted on a connection about to close).
#include <respool/pool.hpp>

#include <atomic>
#include <memory>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::counting_reset;
using respool_test::eventually;
using respool_test::manual_clock;
using respool_test::resource;
using respool_test::test_factory;

namespace {
using reset_pool = respool::pool<test_factory, respool::always_valid, counting_reset, manual_clock>;

auto manual(respool::pool_options o) -> respool::pool_options {
  o.housekeeping_interval = 0ms;
  return o;
}
}  // namespace

TEST_CASE("the resetter runs when a lease comes back for reuse") {
  manual_clock::reset();
  test_factory f;
  counting_reset s;
  reset_pool p{f, manual({.max_size = 1}), {}, s};
  { auto l = p.acquire(1s); }
  CHECK(*s.calls == 1);
  { auto l = p.acquire(1s); }
  CHECK(*s.calls == 2);
  CHECK(f.c->made == 1);
}

// A lease held while `doom` runs on the pool, then returned: destroyed for `why`, never reset.
template <class Doom>
void returned_after(Doom doom, respool::destroy_reason why) {
  manual_clock::reset();
  test_factory f;
  counting_reset s;
  reset_pool p{f, manual({.max_size = 1}), {}, s};
  auto l = p.acquire(1s);
  REQUIRE(l);
  doom(p);
  l.return_to_pool();
  // Destroyed, possibly on one of the pool's threads: wait for it, then look at the resetter.
  CHECK(eventually([&] { return f.c->live == 0; }, 5s));
  CHECK(*s.calls == 0);
  CHECK(eventually([&] { return p.stats().destroyed(why) == 1; }, 5s));
}

TEST_CASE("a lease returned after close() is destroyed without a reset") {
  returned_after([](reset_pool& p) { p.close(); }, respool::destroy_reason::closed);
}

TEST_CASE("a lease returned after evict_all() is destroyed without a reset") {
  returned_after([](reset_pool& p) { p.evict_all(); }, respool::destroy_reason::evicted);
}

TEST_CASE("a lease returned after its max_lifetime is destroyed without a reset") {
  manual_clock::reset();
  test_factory f;
  counting_reset s;
  reset_pool p{f, manual({.max_size = 1, .max_lifetime = 60s}), {}, s};
  auto l = p.acquire(1s);
  REQUIRE(l);
  manual_clock::advance(61s);
  p.run_maintenance();  // ticks the pool's clock
  l.return_to_pool();
  CHECK(eventually([&] { return f.c->live == 0; }, 5s));
  CHECK(*s.calls == 0);
  CHECK(
      eventually([&] { return p.stats().destroyed(respool::destroy_reason::lifetime) == 1; }, 5s));
}

TEST_CASE("a lease that outlives its pool is destroyed without a reset") {
  manual_clock::reset();
  test_factory f;
  counting_reset s;
  auto p = std::make_unique<reset_pool>(f, manual({.max_size = 1}), respool::always_valid{}, s);
  auto l = p->acquire(1s);
  REQUIRE(l);
  p.reset();
  CHECK(f.c->live == 1);  // the holder keeps using it
  l.return_to_pool();
  CHECK(eventually([&] { return f.c->live == 0; }, 5s));
  CHECK(*s.calls == 0);
}
