// evict_all() reaches every resource, wherever it is at that moment: one under a keepalive check
// is destroyed (destroy_reason::evicted) as soon as the check ends, not put back as idle to wait
// for a borrower; one being created is never lent (it points at the old backend).
#include <respool/pool.hpp>

#include <atomic>
#include <memory>

#include "bounded_run.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::background;
using respool_test::counters;
using respool_test::eventually;
using respool_test::first_call_hangs;
using respool_test::manual_clock;
using respool_test::resource;
using respool_test::test_factory;

namespace {
struct check_state {
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
};
// The first check waits until released, then says the resource is fine.
struct slow_ping {
  std::shared_ptr<check_state> st = std::make_shared<check_state>();
  auto validate(resource&) const -> bool {
    st->entered = true;
    while (!st->release) std::this_thread::sleep_for(1ms);
    return true;
  }
};
using ping_pool = respool::pool<test_factory, slow_ping, respool::no_reset, manual_clock>;

}  // namespace

TEST_CASE("evict_all reaches a resource under a keepalive check") {
  manual_clock::reset();
  test_factory f;
  slow_ping v;
  auto p = std::make_unique<ping_pool>(
      f,
      respool::pool_options{.max_size = 1,
                            .min_idle = 1,
                            .idle_timeout = 0ms,
                            .max_lifetime = 0ms,
                            .validate_after_idle = respool::pool_options::never,
                            .keepalive_interval = 1s,
                            .housekeeping_interval = 0ms},
      v);
  REQUIRE(p->stats().idle == 1);
  ping_pool* raw = p.get();
  manual_clock::advance(2s);
  background<void> housekeeping([raw] { raw->run_maintenance(); });
  if (!eventually([&] { return v.st->entered.load(); }, 5s)) {  // resource 1 is under check
    v.st->release = true;
    respool_test::unstick(p, housekeeping);
    FAIL("the keepalive check never started");
  }
  background<void> evict([raw] { raw->evict_all(); });
  CHECK(evict.ready_within(2s));  // does not wait for the check
  v.st->release = true;           // the check ends: the resource was fine, but it is evicted
  const bool done = housekeeping.ready_within(5s) && evict.ready_within(5s);
  CHECK(done);
  if (!done) {
    respool_test::unstick(p, housekeeping, evict);
    return;
  }
  // Destroyed now, as evicted, without waiting for someone to borrow it.
  CHECK(
      eventually([&] { return p->stats().destroyed(respool::destroy_reason::evicted) >= 1; }, 2s));
  CHECK(p->stats().destroyed(respool::destroy_reason::failed_validation) == 0);
  background<int> next([raw] {
    std::error_code ec;
    auto l = raw->acquire(5s, ec);
    return l ? l->id : -1;
  });
  if (!next.ready_within(5s)) {
    manual_clock::advance(1h);
    p->run_maintenance();
    respool_test::unstick(p, next);
    FAIL("acquire after evict_all did not return");
  }
  const int id = next.get();
  CHECK(id > 1);  // a new resource, not the one that was under check
  CHECK(p->stats().destroyed(respool::destroy_reason::evicted) == 1);
}

TEST_CASE("a resource being created when evict_all runs is not lent") {
  first_call_hangs f;
  auto p =
      std::make_unique<respool::pool<first_call_hangs>>(f, respool::pool_options{.max_size = 1});
  auto* raw = p.get();
  background<int> waiter([raw] {
    std::error_code ec;
    auto l = raw->acquire(5s, ec);
    return l ? l->id : -1;
  });
  if (!eventually([&] { return f.st->first_entered.load(); }, 5s)) {
    f.st->open = true;
    respool_test::unstick(p, waiter);
    FAIL("the creation never started");
  }
  background<void> evict([raw] { raw->evict_all(); });
  CHECK(evict.ready_within(2s));  // does not wait for the creation
  f.st->open = true;
  CHECK(waiter.ready_within(6s));
  if (waiter.ready_within(0ms))
    CHECK(waiter.get() == 2);  // resource 1 was made for the old backend
  CHECK(
      eventually([&] { return p->stats().destroyed(respool::destroy_reason::evicted) == 1; }, 2s));
  respool_test::unstick(p, waiter, evict);
}
