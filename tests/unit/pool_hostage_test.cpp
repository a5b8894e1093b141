// A hung backend call does not take the pool hostage: a factory call that hangs (a connect to a
// black-holed host) leaves room for other creations (create_concurrency, default 2); close() and
// the pool's destructor return promptly during it, and the resource it finally returns is
// destroyed; a keepalive ping that hangs does not stop the pool's clock, so resources past their
// max_lifetime are still retired instead of lent.
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
using respool_test::resource;

namespace {
using respool_test::first_call_hangs;
using gated_pool = respool::pool<first_call_hangs>;

// A resource that knows when it was made.
struct aged {
  int id = 0;
  std::chrono::steady_clock::time_point born;
};
struct aged_factory {
  std::shared_ptr<std::atomic<int>> n = std::make_shared<std::atomic<int>>(0);
  auto create() -> aged { return {++*n, std::chrono::steady_clock::now()}; }
};
struct ping_state {
  std::atomic<bool> entered{false};
  std::atomic<bool> release{false};
};
// Hangs on resource 1 until released; every other resource answers at once.
struct hanging_ping {
  std::shared_ptr<ping_state> st = std::make_shared<ping_state>();
  auto validate(aged& r) const -> bool {
    if (r.id == 1) {
      st->entered = true;
      while (!st->release) std::this_thread::sleep_for(1ms);
    }
    return true;
  }
};
}  // namespace

TEST_CASE("a hung connect does not stop the pool from serving its only caller") {
  first_call_hangs f;
  auto p = std::make_unique<gated_pool>(f, respool::pool_options{.max_size = 4});
  // Bounded by its own timeout. This acquire's creation hangs; another one must serve it.
  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  auto mine = p->acquire(2s, ec);
  INFO("acquire(2s) took " << respool_test::ms_since(start) << " ms; factory calls "
                           << f.st->calls.load());
  CHECK_FALSE(ec);
  CHECK(mine);
  CHECK(f.st->first_entered.load());
  CHECK_FALSE(f.st->open.load());  // ... while the first one still hangs
  mine.return_to_pool();
  f.st->open = true;
  // The hung creation's resource is accounted for once it returns.
  CHECK(eventually(
      [&] {
        const auto s = p->stats();
        return s.creating == 0 && s.created == static_cast<std::uint64_t>(f.st->c->made.load()) &&
               s.created >= 1 && s.total == s.created - s.destroyed();
      },
      5s));
}

TEST_CASE("a hung connect does not stop other creations") {
  first_call_hangs f;
  auto p = std::make_unique<gated_pool>(f, respool::pool_options{.max_size = 4});
  gated_pool* raw = p.get();
  // Someone's acquire starts the creation that hangs.
  background<respool::lease<resource>> first([raw] {
    std::error_code ec;
    return raw->acquire(10s, ec);
  });
  if (!eventually([&] { return f.st->first_entered.load(); }, 5s)) {
    f.st->open = true;
    respool_test::unstick(p, first);
    FAIL("the first creation never started");
  }
  // Bounded by its own timeout: with the first creation hung, another one serves us.
  std::error_code ec;
  auto mine = p->acquire(2s, ec);
  CHECK_FALSE(ec);
  CHECK(mine);
  CHECK_FALSE(f.st->open.load());  // ... while the first one still hangs
  CHECK(f.st->calls >= 2);
  mine.return_to_pool();
  f.st->open = true;
  CHECK(first.ready_within(5s));
  if (first.ready_within(0ms)) CHECK(first.get());
  // The hung creation's resource is accounted for once it returns.
  CHECK(eventually(
      [&] {
        const auto s = p->stats();
        return s.creating == 0 && s.created == static_cast<std::uint64_t>(f.st->c->made.load()) &&
               s.total == s.created - s.destroyed();
      },
      5s));
  respool_test::unstick(p, first);
}

TEST_CASE("close() returns promptly while a connect hangs and the late resource is destroyed") {
  first_call_hangs f;
  auto p = std::make_unique<gated_pool>(f, respool::pool_options{.max_size = 2});
  gated_pool* raw = p.get();
  background<std::error_code> waiter([raw] {
    std::error_code ec;
    auto l = raw->acquire(10s, ec);
    return ec;
  });
  if (!eventually([&] { return f.st->first_entered.load() && p->stats().waiters == 1; }, 5s)) {
    f.st->open = true;
    respool_test::unstick(p, waiter);
    FAIL("the caller never queued behind the hung creation");
  }
  background<void> closer([raw] { raw->close(); });
  CHECK(closer.ready_within(500ms));  // does not wait for the factory
  CHECK(waiter.ready_within(500ms));  // the waiter is told at once
  if (waiter.ready_within(0ms)) CHECK(waiter.get() == respool::errc::closed);
  f.st->open = true;  // the factory returns: its resource goes nowhere but away
  CHECK(eventually([&] { return f.st->c->made == 1 && f.st->c->live == 0; }, 5s));
  if (!closer.ready_within(5s)) {
    (void)p.release();  // close() is stuck inside it: leak it rather than destroy it under a thread
    FAIL("close() did not return even after the factory did");
  }
  respool_test::unstick(p, waiter);
}

TEST_CASE("the pool's destructor returns promptly while a connect hangs") {
  first_call_hangs f;
  auto p = std::make_unique<gated_pool>(f, respool::pool_options{.max_size = 2});
  {
    std::error_code ec;
    auto l = p->acquire(50ms, ec);  // starts the creation, gives up waiting for it
    // ... or is served by a second creation started once the first counts as stalled (20 ms):
    // either way the first one still hangs.
    CHECK((ec == respool::errc::timeout || !ec));
  }
  REQUIRE(eventually([&] { return f.st->first_entered.load(); }, 5s));
  background<void> destroyer([&p] { p.reset(); });
  CHECK(destroyer.ready_within(500ms));
  f.st->open = true;
  CHECK(eventually([&] { return f.st->c->made >= 1 && f.st->c->live == 0; }, 5s));
  // If the destructor is still stuck, `destroyer` detaches it: `p` was already set to null by
  // reset(), and the pool it destroys lives on the heap.
  CHECK(destroyer.ready_within(5s));
}

TEST_CASE("a hung keepalive ping does not stop the pool's clock") {
  const auto start = std::chrono::steady_clock::now();
  aged_factory f;
  hanging_ping v;
  constexpr auto max_lifetime = 300ms;
  respool::pool<aged_factory, hanging_ping> p{f,
                                              {.max_size = 2,
                                               .min_idle = 2,
                                               .max_lifetime = max_lifetime,
                                               .validate_after_idle = respool::pool_options::never,
                                               .keepalive_interval = 20ms,
                                               .housekeeping_interval = 10ms},
                                              v};
  struct release_at_exit {
    ping_state& st;
    ~release_at_exit() { st.release = true; }
  } release{*v.st};
  REQUIRE(eventually([&] { return v.st->entered.load(); }, 5s));  // resource 1's ping hangs
  std::this_thread::sleep_until(start + 600ms);
  int lent = 0;
  double oldest_ms = 0;
  int oldest_id = 0;
  for (int i = 0; i < 10; ++i) {
    std::error_code ec;
    auto l = p.acquire(1s, ec);  // bounded by its own timeout
    if (l) {
      ++lent;
      const auto age =
          std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - l->born)
              .count();
      if (age > oldest_ms) {
        oldest_ms = age;
        oldest_id = l->id;
      }
    }
    l.return_to_pool();
    std::this_thread::sleep_for(10ms);
  }
  INFO("lent " << lent << " of 10; oldest lent: resource " << oldest_id << ", " << oldest_ms
               << " ms old; " << f.n->load() << " created");
  CHECK(lent == 10);
  CHECK(oldest_ms < std::chrono::duration<double, std::milli>(max_lifetime).count() + 150.0);
}
