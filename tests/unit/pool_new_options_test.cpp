// The slow path's new pool_options fields: fail_fast_after (consecutive creation failures after
// which the backend counts as down, default 3), create_concurrency (factory calls in flight at
// once, default 2, at least 1) and fairness_window (0: strict FIFO hand-off). Their defaults and
// validation, and that the pool honours the first two. (This file does not compile against a
// pool_options without them.)
//
// The fields are set by assignment, not designated initialisers, so that these tests do not
// depend on where the fields are declared in the struct.
#include <respool/pool.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "bounded_run.hpp"
#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::error_of;
using respool_test::background;
using respool_test::counters;
using respool_test::eventually;
using respool_test::manual_clock;
using respool_test::resource;
using respool_test::test_factory;

namespace {

struct gate_state {
  std::shared_ptr<counters> c = std::make_shared<counters>();
  std::atomic<int> calls{0};
  std::atomic<int> in_flight{0};
  std::atomic<int> most_in_flight{0};
  std::atomic<bool> open{false};
};
// Every call waits until the test opens the gate.
struct gated_factory {
  std::shared_ptr<gate_state> st = std::make_shared<gate_state>();
  auto create() -> resource {
    ++st->calls;
    const int now = ++st->in_flight;
    for (int seen = st->most_in_flight;
         now > seen && !st->most_in_flight.compare_exchange_weak(seen, now);) {
    }
    while (!st->open) std::this_thread::sleep_for(1ms);
    --st->in_flight;
    return resource(st->c, ++st->c->made);
  }
};
}  // namespace

TEST_CASE("the new options have their documented types and defaults") {
  const respool::pool_options o;
  STATIC_REQUIRE(std::is_same_v<decltype(respool::pool_options::fail_fast_after), std::uint32_t>);
  STATIC_REQUIRE(std::is_same_v<decltype(respool::pool_options::create_concurrency), std::size_t>);
  STATIC_REQUIRE(
      std::is_same_v<decltype(respool::pool_options::fairness_window), std::chrono::microseconds>);
  CHECK(o.fail_fast_after == 3);
  CHECK(o.create_concurrency == 2);
  CHECK(o.fairness_window >= 0us);
  CHECK_NOTHROW(o.validate());
}

TEST_CASE("validate() names create_concurrency and fail_fast_after when they are 0") {
  respool::pool_options o;
  o.create_concurrency = 0;
  CHECK(error_of(o).find("create_concurrency") != std::string::npos);
  o.create_concurrency = 1;
  CHECK(error_of(o).empty());

  respool::pool_options p;
  p.fail_fast_after = 0;
  CHECK(error_of(p).find("fail_fast_after") != std::string::npos);
  p.fail_fast_after = 1;
  CHECK(error_of(p).empty());

  respool::pool_options q;
  q.fairness_window = 0us;  // strict FIFO hand-off
  CHECK(error_of(q).empty());

  test_factory f;
  respool::pool_options bad;
  bad.create_concurrency = 0;
  CHECK_THROWS_AS((respool::pool{f, bad}), std::invalid_argument);
  CHECK(f.c->made == 0);
}

TEST_CASE("create_concurrency bounds the factory calls in flight") {
  gated_factory f;
  respool::pool_options o;
  o.max_size = 8;
  o.create_concurrency = 2;
  auto p = std::make_unique<respool::pool<gated_factory>>(f, o);
  auto* raw = p.get();
  constexpr int callers = 5;
  std::vector<std::unique_ptr<background<bool>>> waiters;
  for (int i = 0; i < callers; ++i)
    waiters.push_back(std::make_unique<background<bool>>([raw] {
      std::error_code ec;
      return static_cast<bool>(raw->acquire(5s, ec));
    }));
  CHECK(
      eventually([&] { return f.st->in_flight == 2; }, 3s));  // 5 callers want one each: 2 at once
  std::this_thread::sleep_for(100ms);
  CHECK(f.st->most_in_flight == 2);
  f.st->open = true;
  for (auto& w : waiters) {
    CHECK(w->ready_within(6s));  // bounded: acquire(5s)
    if (w->ready_within(0ms)) CHECK(w->get());
  }
  for (auto& w : waiters)
    if (!respool_test::unstick(p, *w)) FAIL("an acquire(5s) never returned");
  CHECK(f.st->most_in_flight == 2);
}

TEST_CASE("create_concurrency = 1 makes one factory call at a time") {
  gated_factory f;
  respool::pool_options o;
  o.max_size = 4;
  o.create_concurrency = 1;
  auto p = std::make_unique<respool::pool<gated_factory>>(f, o);
  auto* raw = p.get();
  background<bool> a([raw] {
    std::error_code ec;
    return static_cast<bool>(raw->acquire(5s, ec));
  });
  background<bool> b([raw] {
    std::error_code ec;
    return static_cast<bool>(raw->acquire(5s, ec));
  });
  CHECK(eventually([&] { return p->stats().waiters == 2; }, 3s));
  CHECK(eventually([&] { return f.st->in_flight == 1; }, 3s));
  std::this_thread::sleep_for(100ms);
  CHECK(f.st->most_in_flight == 1);
  f.st->open = true;
  const bool done = a.ready_within(6s) && b.ready_within(6s);  // bounded: acquire(5s)
  if (!done) {
    respool_test::unstick(p, a, b);
    FAIL("an acquire(5s) never returned");
  }
  CHECK(a.get());
  CHECK(b.get());
  CHECK(f.st->most_in_flight == 1);
}

TEST_CASE("fail_fast_after = 1 fails fast after the first creation failure") {
  manual_clock::reset();
  test_factory f;
  f.fail->store(true);
  respool::pool_options o;
  o.max_size = 2;
  o.create_backoff_min = 10s;
  o.create_backoff_max = 60s;
  o.housekeeping_interval = 0ms;
  o.fail_fast_after = 1;
  auto p = std::make_unique<
      respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock>>(f, o);
  auto* raw = p.get();
  background<std::error_code> first([raw] {
    std::error_code ec;
    auto l = raw->acquire(5s, ec);
    return ec;
  });
  if (!first.ready_within(2s)) {  // waiting for a retry is allowed: move the clock past it
    manual_clock::advance(6s);
    p->run_maintenance();
  }
  if (!first.ready_within(5s)) {
    manual_clock::advance(2h);
    p->run_maintenance();
    respool_test::unstick(p, first);
    FAIL("acquire(5s) did not return after its deadline");
  }
  CHECK(first.get());
  REQUIRE(p->stats().create_failures >= 1);
  background<std::error_code> second([raw] {
    std::error_code ec;
    auto l = raw->acquire(1h, ec);
    return ec;
  });
  if (!second.ready_within(2s)) {
    manual_clock::advance(2h);
    p->run_maintenance();
    respool_test::unstick(p, second);
    FAIL("acquire waited although the backend counts as down after one failure");
  }
  CHECK(second.get() == respool::errc::backend_unavailable);
}
