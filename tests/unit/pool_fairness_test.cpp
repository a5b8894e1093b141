// A waiter keeps its place in the queue when the resource handed to it fails validation: it is
// served by the next resource (the replacement), before anyone who queued after it.
#include <respool/pool.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

#include "bounded_run.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::background;
using respool_test::eventually;
using respool_test::resource;
using respool_test::test_factory;

namespace {
// Once armed, fails the next validation only; passes every other.
struct fails_once_when_armed {
  struct state {
    std::atomic<bool> armed{false};
    std::atomic<int> failed{0};
    std::atomic<int> calls{0};
  };
  std::shared_ptr<state> st = std::make_shared<state>();
  auto validate(resource&) const -> bool {
    ++st->calls;
    if (st->armed.exchange(false)) {
      ++st->failed;
      return false;
    }
    return true;
  }
};
}  // namespace

TEST_CASE("a waiter whose hand-off fails validation keeps its place in the queue") {
  test_factory f;
  fails_once_when_armed v;
  using validated_pool = respool::pool<test_factory, fails_once_when_armed>;
  auto p = std::make_unique<validated_pool>(
      f, respool::pool_options{.max_size = 1, .validate_after_idle = 0ms}, v);
  auto held = p->acquire(1s);
  REQUIRE(held);
  // Shared with the waiters, which a failing run may leave behind (detached).
  struct record {
    std::mutex m;
    std::vector<char> order;
  };
  auto rec = std::make_shared<record>();
  validated_pool* raw = p.get();
  auto waiter = [raw, rec](char name) {
    std::error_code ec;
    auto l = raw->acquire(5s, ec);  // bounded by its own timeout
    if (l) {
      std::lock_guard lk(rec->m);
      rec->order.push_back(name);  // while holding the only resource: the order is exact
    }
    return ec;
  };
  background<std::error_code> a([waiter] { return waiter('A'); });
  const bool a_queued = eventually([&] { return p->stats().waiters == 1; }, 5s);
  background<std::error_code> b([waiter] { return waiter('B'); });
  const bool b_queued = a_queued && eventually([&] { return p->stats().waiters == 2; }, 5s);
  if (!b_queued) {
    held.return_to_pool();
    respool_test::unstick(p, a, b);
    FAIL("the two callers never queued one after the other");
  }
  std::this_thread::sleep_for(20ms);  // both have waited a while: no barging window applies
  v.st->armed = true;                 // the resource handed to A is found dead
  held.return_to_pool();
  const bool done = a.ready_within(10s) && b.ready_within(10s);  // both bounded (5 s)
  if (!done) {
    respool_test::unstick(p, a, b);
    FAIL("an acquire(5s) never returned");
  }
  CHECK_FALSE(a.get());
  CHECK_FALSE(b.get());
  CHECK(v.st->failed == 1);
  CHECK(eventually(
      [&] { return p->stats().destroyed(respool::destroy_reason::failed_validation) == 1; }, 5s));
  std::lock_guard lk(rec->m);
  REQUIRE(rec->order.size() == 2);
  CHECK(rec->order[0] == 'A');  // A queued first: the replacement is A's, not B's
  CHECK(rec->order[1] == 'B');
}
