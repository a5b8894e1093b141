// Leases: acquire and return, move semantics, discard, try_acquire, the error-code form, reset on
// return, and a lease that outlives its pool.
#include <respool/pool.hpp>

#include <set>
#include <stdexcept>
#include <vector>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::eventually;
using respool_test::resource;
using respool_test::test_factory;

TEST_CASE("acquire lends a resource and its return makes it reusable") {
  test_factory f;
  respool::pool p{f, {.max_size = 2}};
  int first_id = 0;
  {
    auto l = p.acquire();
    REQUIRE(l);
    first_id = l->id;
    CHECK((*l).id == first_id);
    CHECK(l.get().id == first_id);
    CHECK(p.stats().in_use == 1);
  }
  CHECK(p.stats().in_use == 0);
  CHECK(p.stats().idle == 1);
  auto again = p.acquire();
  CHECK(again->id == first_id);  // reused, not created again
  CHECK(f.c->made == 1);
}

TEST_CASE("leases are move-only and return exactly once") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  STATIC_REQUIRE_FALSE(std::is_copy_constructible_v<respool::lease<resource>>);
  STATIC_REQUIRE(std::is_nothrow_move_constructible_v<respool::lease<resource>>);
  auto a = p.acquire();
  auto b = std::move(a);
  CHECK_FALSE(a);  // NOLINT(bugprone-use-after-move): the moved-from lease is empty
  CHECK(b);
  CHECK(p.stats().in_use == 1);
  respool::lease<resource> c;
  c = std::move(b);
  CHECK(p.stats().in_use == 1);
  c.return_to_pool();
  CHECK_FALSE(c);
  CHECK(p.stats().in_use == 0);
  c.return_to_pool();  // a second return is a no-op
  CHECK(p.stats().idle == 1);
  auto d = p.acquire();
  CHECK_FALSE(p.try_acquire().has_value());  // max_size 1: nothing left
  respool::lease<resource> empty;
  d = std::move(empty);  // move-assignment returns what `d` held first
  CHECK(p.stats().in_use == 0);
  CHECK(p.stats().idle == 1);
}

TEST_CASE("no resource is lent to two holders at once") {
  test_factory f;
  respool::pool p{f, {.max_size = 4}};
  std::vector<respool::lease<resource>> held;
  std::set<const resource*> seen;
  for (int i = 0; i < 4; ++i) {
    held.push_back(p.acquire());
    CHECK(seen.insert(&held.back().get()).second);
  }
  std::error_code ec;
  auto none = p.acquire(0ms, ec);
  CHECK_FALSE(none);
  CHECK(ec == respool::errc::timeout);
}

TEST_CASE("discard destroys the resource and frees its place") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  {
    auto l = p.acquire();
    l.discard();
    CHECK_FALSE(l);
  }
  // Destroyed in the background, so the discarding thread does not wait on a destructor.
  REQUIRE(eventually([&] { return f.c->live == 0 && p.stats().total == 0; }));
  auto s = p.stats();
  CHECK(s.total == 0);
  CHECK(s.destroyed(respool::destroy_reason::discarded) == 1);
  auto l = p.acquire();  // room for a new one
  CHECK(l->id == 2);
}

TEST_CASE("try_acquire never waits, and asks for a spare when there is room") {
  test_factory f;
  respool::pool p{f, {.max_size = 2}};
  auto none = p.try_acquire();  // cold pool: nothing idle
  CHECK_FALSE(none.has_value());
  REQUIRE(eventually([&] { return p.stats().idle == 1; }));
  auto one = p.try_acquire();
  REQUIRE(one.has_value());
  CHECK((*one)->id == 1);
}

TEST_CASE("the error-code form reports failures without throwing") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = p.acquire();
  std::error_code ec;
  auto l = p.acquire(1ms, ec);
  CHECK_FALSE(l);
  CHECK(ec == respool::errc::timeout);
  held.return_to_pool();
  auto ok = p.acquire(1s, ec);
  CHECK(ok);
  CHECK_FALSE(ec);
}

TEST_CASE("the throwing form raises respool::error naming the pool and its counts") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .name = "orders-db"}};
  auto held = p.acquire();
  try {
    auto l = p.acquire(5ms);
    FAIL("acquire should have timed out");
  } catch (const respool::error& e) {
    const std::string what = e.what();
    CHECK(e.code() == respool::errc::timeout);
    CHECK(what.find("orders-db") != std::string::npos);
    CHECK(what.find("total 1") != std::string::npos);
    CHECK(what.find("in use 1") != std::string::npos);
    CHECK(what.find("idle 0") != std::string::npos);
    CHECK(what.find("waiters") != std::string::npos);
    CHECK(what.find("creating 0") != std::string::npos);
  }
}

TEST_CASE("reset runs on return - false or an exception destroys the resource") {
  test_factory f;
  int mode = 0;  // 0: clean and keep, 1: say false, 2: throw
  auto resetter = [&](resource& r) {
    if (mode == 2) throw std::runtime_error("ROLLBACK failed");
    r.session_state = 0;
    return mode == 0;
  };
  respool::pool p{f, respool::pool_options{.max_size = 1}, respool::always_valid{}, resetter};
  {
    auto l = p.acquire();
    l->session_state = 5;  // SET search_path ... / SELECT 5
  }
  {
    auto l = p.acquire();
    CHECK(l->session_state == 0);  // the next user sees a clean session
    CHECK(l->id == 1);
    mode = 1;
  }
  // Destroyed in the background, so the returning thread does not wait on a destructor.
  CHECK(eventually([&] { return p.stats().destroyed(respool::destroy_reason::failed_reset) == 1; }));
  CHECK(f.c->live == 0);
  {
    auto l = p.acquire();
    CHECK(l->id == 2);
    mode = 2;
  }
  CHECK(eventually([&] { return p.stats().destroyed(respool::destroy_reason::failed_reset) == 2; }));
  CHECK(f.c->live == 0);
  CHECK(p.stats().total == 0);
}

TEST_CASE("a lease may outlive its pool - returning it then destroys the resource") {
  test_factory f;
  auto counters = f.c;
  respool::lease<resource> survivor;
  {
    respool::pool p{f, {.max_size = 2, .min_idle = 1}};
    survivor = p.acquire();
    auto other = p.acquire();
    other.return_to_pool();  // idle: closed with the pool
  }
  CHECK(counters->live == 1);  // only the leased one is still open
  CHECK(survivor->id >= 1);    // and still usable
  survivor.return_to_pool();
  CHECK(counters->live == 0);
}

TEST_CASE("a discarded lease after the pool is gone is destroyed too") {
  test_factory f;
  auto counters = f.c;
  auto p = std::make_unique<respool::pool<test_factory>>(f, respool::pool_options{.max_size = 1});
  auto l = p->acquire();
  p.reset();
  l.discard();
  CHECK(counters->live == 0);
}
