// Clocks whose now() is negative (a manual clock started far before its epoch, and
// std::chrono::file_clock, whose libstdc++ epoch is in 2174): the pool still creates resources
// (no "retry at time 0" that is never reached), and deadlines computed from a negative now()
// still pass (no overflow to "never").
#include <respool/pool.hpp>

#include <atomic>
#include <cstdint>
#include <memory>

#include "bounded_run.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::background;
using respool_test::counters;
using respool_test::eventually;
using respool_test::resource;
using respool_test::test_factory;

namespace {

// Like manual_clock, but its ticks start at -4e18 ns (about 127 years before its epoch).
struct negative_clock {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<negative_clock>;
  static constexpr bool is_steady = true;
  static constexpr rep start = -4'000'000'000'000'000'000;

  static inline std::atomic<rep> ticks{start};
  static auto now() noexcept -> time_point { return time_point(duration(ticks.load())); }
  static void advance(duration d) noexcept { ticks.fetch_add(d.count()); }
  static void reset() noexcept { ticks.store(start); }
};

// A factory whose calls wait until the test opens the gate.
struct gated_factory {
  std::shared_ptr<counters> c = std::make_shared<counters>();
  std::shared_ptr<std::atomic<bool>> open = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  auto create() -> resource {
    ++*calls;
    while (!open->load()) std::this_thread::sleep_for(1ms);
    return resource(c, ++c->made);
  }
};

using negative_pool =
    respool::pool<test_factory, respool::always_valid, respool::no_reset, negative_clock>;
using negative_gated_pool =
    respool::pool<gated_factory, respool::always_valid, respool::no_reset, negative_clock>;
using file_pool =
    respool::pool<test_factory, respool::always_valid, respool::no_reset, std::chrono::file_clock>;
}  // namespace

TEST_CASE("a pool on a clock whose now() is negative creates resources") {
  negative_clock::reset();
  REQUIRE(negative_clock::now().time_since_epoch().count() < 0);
  test_factory f;
  auto p = std::make_unique<negative_pool>(
      f, respool::pool_options{.max_size = 2, .housekeeping_interval = 0ms});
  negative_pool* raw = p.get();
  background<respool::lease<resource>> first([raw] {
    std::error_code ec;
    return raw->acquire(1h, ec);
  });
  const bool returned = first.ready_within(3s);
  CHECK(returned);  // an empty pool with room creates at once, whatever the clock reads
  if (!returned) {
    respool_test::unstick(p, first);
    return;
  }
  auto a = first.get();
  CHECK(a);
  CHECK(f.c->made == 1);
  // A second one while the first is held, then both back and lent again.
  background<respool::lease<resource>> second([raw] {
    std::error_code ec;
    return raw->acquire(1h, ec);
  });
  if (!second.ready_within(3s)) {
    respool_test::unstick(p, second);
    FAIL("a second acquire on an empty place did not return");
  }
  auto b = second.get();
  CHECK(b);
  a.return_to_pool();
  b.return_to_pool();
  auto again = p->try_acquire();
  CHECK(again.has_value());
}

TEST_CASE("a waiter times out on a clock whose now() is negative") {
  negative_clock::reset();
  gated_factory f;  // nothing is ever made while the gate is shut: the waiter can only time out
  auto p = std::make_unique<negative_gated_pool>(
      f, respool::pool_options{.max_size = 1, .housekeeping_interval = 0ms});
  negative_gated_pool* raw = p.get();
  background<std::error_code> waiter([raw] {
    std::error_code ec;
    auto l = raw->acquire(1h, ec);
    return ec;
  });
  if (!eventually([&] { return p->stats().waiters == 1; }, 5s)) {
    f.open->store(true);
    respool_test::unstick(p, waiter);
    FAIL("the caller never queued");
  }
  negative_clock::advance(59min);
  p->run_maintenance();
  CHECK_FALSE(waiter.ready_within(50ms));  // not yet
  negative_clock::advance(2min);
  p->run_maintenance();
  const bool returned = waiter.ready_within(3s);
  CHECK(returned);  // its deadline (a negative now() plus 1 h) has passed
  if (returned) CHECK(waiter.get() == respool::errc::timeout);
  f.open->store(true);
  respool_test::unstick(p, waiter);
}

TEST_CASE("a pool on std::chrono::file_clock lends and takes back and times out") {
  // With libstdc++ its epoch is in 2174, so now() is negative; elsewhere this is a plain check
  // that a non-steady clock works.
  INFO("file_clock::now() = " << std::chrono::file_clock::now().time_since_epoch().count());
  test_factory f;
  auto p = std::make_unique<file_pool>(f, respool::pool_options{.max_size = 1});
  file_pool* raw = p.get();
  background<respool::lease<resource>> first([raw] {
    std::error_code ec;
    return raw->acquire(2s, ec);
  });
  const bool got_first = first.ready_within(3s);
  CHECK(got_first);
  respool::lease<resource> held;
  if (got_first) {
    held = first.get();
    CHECK(held);
    held.return_to_pool();  // back, and lent again
    held = p->acquire(2s);
    CHECK(held);
  }
  // The only resource is held (or, if creation is broken, none exists): a short wait times out.
  background<std::pair<std::error_code, double>> waiter([raw] {
    const auto start = std::chrono::steady_clock::now();
    std::error_code ec;
    auto l = raw->acquire(20ms, ec);
    return std::pair{ec, respool_test::ms_since(start)};
  });
  const bool returned = waiter.ready_within(2s);
  CHECK(returned);
  if (returned) {
    const auto [ec, took_ms] = waiter.get();
    CHECK(ec == respool::errc::timeout);
    INFO("acquire(20ms) took " << took_ms << " ms");
    CHECK(took_ms >= 19.0);
    CHECK(took_ms < 20.0 + 200.0);
  }
  held.return_to_pool();
  respool_test::unstick(p, first, waiter);
}
