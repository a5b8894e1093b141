// Resource lifecycle on a manual clock: prewarm, min_idle upkeep, idle timeout, max lifetime
// (with jitter), max uses, validate-after-idle, keepalive, evict_all. No sleeping on the clock.
#include <respool/pool.hpp>

#include <vector>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::eventually;
using respool_test::flag_validator;
using respool_test::manual_clock;
using respool_test::resource;
using respool_test::test_factory;

namespace {
using manual_pool = respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock>;
using validated_pool = respool::pool<test_factory, flag_validator, respool::no_reset, manual_clock>;

// Manual-clock pools run no housekeeping thread: the test calls run_maintenance().
auto manual(respool::pool_options o) -> respool::pool_options {
  o.housekeeping_interval = 0ms;
  return o;
}
}  // namespace

TEST_CASE("min_idle resources are created at construction") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, manual({.max_size = 4, .min_idle = 3})};
  auto s = p.stats();
  CHECK(s.idle == 3);
  CHECK(s.created == 3);
  CHECK(f.c->live == 3);
}

TEST_CASE("min_idle is kept up in the background when resources go away") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, manual({.max_size = 4, .min_idle = 2})};
  {
    auto a = p.acquire();
    auto b = p.acquire();
    a.discard();
    b.discard();
  }
  REQUIRE(eventually([&] { return p.stats().idle == 2; }));
  CHECK(f.c->made == 4);
}

TEST_CASE("idle resources above min_idle close after idle_timeout - min_idle stay") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, manual({.max_size = 4, .min_idle = 1, .idle_timeout = 10min,
                           .max_lifetime = 0ms})};
  {
    std::vector<respool::lease<resource>> held;
    for (int i = 0; i < 4; ++i) held.push_back(p.acquire());
  }
  REQUIRE(p.stats().idle == 4);
  manual_clock::advance(9min);
  p.run_maintenance();
  CHECK(p.stats().idle == 4);  // not yet
  manual_clock::advance(2min);
  p.run_maintenance();
  auto s = p.stats();
  CHECK(s.idle == 1);
  CHECK(s.destroyed(respool::destroy_reason::idle_timeout) == 3);
  manual_clock::advance(1h);
  p.run_maintenance();
  CHECK(p.stats().idle == 1);  // min_idle is never timed out
}

TEST_CASE("a resource used recently is not idle-timed-out") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, manual({.max_size = 2, .idle_timeout = 10min, .max_lifetime = 0ms})};
  { auto l = p.acquire(); }
  manual_clock::advance(8min);
  p.run_maintenance();  // ticks the coarse clock the return reads
  { auto l = p.acquire(); }
  manual_clock::advance(8min);  // 16 min since creation, 8 since last use
  p.run_maintenance();
  CHECK(p.stats().idle == 1);
}

TEST_CASE("max_lifetime closes idle resources, jittered down by at most 2.5%") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, manual({.max_size = 8, .min_idle = 8, .idle_timeout = 0ms,
                           .max_lifetime = 1000s})};
  REQUIRE(p.stats().idle == 8);
  manual_clock::advance(975s - 1ms);  // before the earliest possible expiry
  p.run_maintenance();
  CHECK(p.stats().destroyed(respool::destroy_reason::lifetime) == 0);
  manual_clock::advance(25s + 2ms);  // past the latest
  p.run_maintenance();
  CHECK(p.stats().destroyed(respool::destroy_reason::lifetime) == 8);
}

TEST_CASE("lifetimes are jittered: resources made together do not all expire together") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, manual({.max_size = 16, .min_idle = 16, .idle_timeout = 0ms,
                           .max_lifetime = 10000s})};
  manual_clock::advance(9875s);  // the middle of the 2.5% window
  p.run_maintenance();
  const auto gone = p.stats().destroyed(respool::destroy_reason::lifetime);
  CHECK(gone > 0);   // with 16 uniform draws, all on one side has odds 2 * 2^-16
  CHECK(gone < 16);
}

TEST_CASE("a resource in use when it expires is closed when it comes back") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, manual({.max_size = 1, .max_lifetime = 60s})};
  auto l = p.acquire();
  manual_clock::advance(61s);
  p.run_maintenance();
  CHECK(p.stats().in_use == 1);  // not taken from its holder
  l.return_to_pool();  // destroyed in the background
  REQUIRE(eventually([&] { return p.stats().destroyed(respool::destroy_reason::lifetime) == 1; }));
  CHECK(f.c->live == 0);
}

TEST_CASE("max_uses retires a resource after that many leases") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, manual({.max_size = 1, .max_uses = 3})};
  for (int i = 0; i < 3; ++i) {
    auto l = p.acquire();
    CHECK(l->id == 1);
  }
  REQUIRE(eventually([&] { return p.stats().destroyed(respool::destroy_reason::max_uses) == 1; }));
  auto l = p.acquire();
  CHECK(l->id == 2);
}

TEST_CASE("validation on borrow happens only after validate_after_idle") {
  manual_clock::reset();
  test_factory f;
  flag_validator v;
  validated_pool p{f, manual({.max_size = 1, .validate_after_idle = 5s}), v};
  { auto l = p.acquire(); }  // fresh from the creator: no check
  { auto l = p.acquire(); }  // idle for no time: no check
  CHECK(*v.calls == 0);
  manual_clock::advance(6s);
  p.run_maintenance();
  { auto l = p.acquire(); }
  CHECK(*v.calls == 1);
}

TEST_CASE("a resource failing validation on borrow is replaced, never lent") {
  manual_clock::reset();
  test_factory f;
  flag_validator v;
  validated_pool p{f, manual({.max_size = 1, .validate_after_idle = 0ms}), v};
  { auto l = p.acquire(); l->alive = false; }  // the server cut it while idle
  auto l = p.acquire();
  CHECK(l->alive);
  CHECK(l->id == 2);
  CHECK(p.stats().destroyed(respool::destroy_reason::failed_validation) == 1);
}

TEST_CASE("validate_after_idle = 0 validates a resource handed from one holder to the next") {
  test_factory f;
  flag_validator v;
  respool::pool<test_factory, flag_validator> p{f, {.max_size = 1, .validate_after_idle = 0ms}, v};
  auto held = p.acquire();  // fresh from the creator: not validated
  CHECK(*v.calls == 0);
  std::thread waiter([&] { auto l = p.acquire(30s); });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  held.return_to_pool();  // handed straight to the waiter, which validates it
  waiter.join();
  CHECK(*v.calls == 1);
}

TEST_CASE("validate_after_idle = never skips validation entirely") {
  manual_clock::reset();
  test_factory f;
  flag_validator v;
  validated_pool p{f, manual({.max_size = 1, .validate_after_idle = respool::pool_options::never}), v};
  { auto l = p.acquire(); }
  manual_clock::advance(1h);
  p.run_maintenance();
  { auto l = p.acquire(); }
  CHECK(*v.calls == 0);
}

TEST_CASE("keepalive validates idle resources in the background and drops dead ones") {
  manual_clock::reset();
  test_factory f;
  flag_validator v;
  validated_pool p{f, manual({.max_size = 2, .min_idle = 2, .idle_timeout = 0ms,
                              .max_lifetime = 0ms, .validate_after_idle = respool::pool_options::never,
                              .keepalive_interval = 30s}),
                   v};
  {
    auto a = p.acquire();
    auto b = p.acquire();
    b->alive = false;  // dies while idle
  }
  manual_clock::advance(10s);
  p.run_maintenance();
  CHECK(*v.calls == 0);  // not due yet
  manual_clock::advance(21s);
  p.run_maintenance();
  CHECK(*v.calls == 2);
  CHECK(p.stats().destroyed(respool::destroy_reason::failed_validation) == 1);
  REQUIRE(eventually([&] { return p.stats().idle == 2; }));  // min_idle refilled
}

TEST_CASE("keepalive never blocks a borrower: a resource under check is skipped") {
  manual_clock::reset();
  test_factory f;
  std::atomic<bool> in_check{false};
  std::atomic<bool> release_check{false};
  auto slow_validator = [&](resource&) {
    in_check = true;
    while (!release_check) std::this_thread::yield();
    return true;
  };
  respool::pool<test_factory, decltype(slow_validator), respool::no_reset, manual_clock> p{
      f, manual({.max_size = 2, .min_idle = 2, .idle_timeout = 0ms, .max_lifetime = 0ms,
                 .validate_after_idle = respool::pool_options::never, .keepalive_interval = 1s}),
      slow_validator};
  manual_clock::advance(2s);
  std::thread housekeeping([&] { p.run_maintenance(); });
  REQUIRE(eventually([&] { return in_check.load(); }));
  auto l = p.acquire(5s);  // served by the other idle resource while the first is checked
  CHECK(l);
  release_check = true;
  housekeeping.join();
}

TEST_CASE("evict_all closes idle now and leased on return") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, manual({.max_size = 3, .min_idle = 3})};
  auto held = p.acquire();
  p.evict_all();
  CHECK(p.stats().destroyed(respool::destroy_reason::evicted) == 2);
  CHECK(held);  // the holder keeps using it
  held.return_to_pool();  // destroyed in the background
  REQUIRE(eventually([&] { return p.stats().destroyed(respool::destroy_reason::evicted) == 3; }));
  const bool kept = eventually([&] { return p.stats().idle == 3; });  // new ones, min_idle kept
  const auto st = p.stats();
  INFO("idle " << st.idle << ", total " << st.total << ", creating " << st.creating << ", made "
               << f.c->made.load() << ", live " << f.c->live.load());
  REQUIRE(kept);
  CHECK(f.c->made == 6);
}

TEST_CASE("close destroys idle resources, refuses new acquires, closes leased ones on return") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, manual({.max_size = 2, .min_idle = 2})};
  auto held = p.acquire();
  p.close();
  CHECK(f.c->live == 1);
  std::error_code ec;
  auto l = p.acquire(1s, ec);
  CHECK(ec == respool::errc::closed);
  CHECK_FALSE(p.try_acquire().has_value());
  held.return_to_pool();
  CHECK(f.c->live == 0);
  auto s = p.stats();
  CHECK(s.total == 0);
  CHECK(s.destroyed(respool::destroy_reason::closed) == 2);
  p.close();  // idempotent
}
