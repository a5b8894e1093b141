// Timeouts of any std::chrono::duration type are kept: acquire() with an int-based duration
// (seconds, microseconds) or a 16-bit one (milliseconds) times out with errc::timeout, on the
// pool's manual clock and on the real clock, instead of waiting forever (the conversion to the
// pool's internal "forever" bound must not overflow the caller's representation).
#include <respool/pool.hpp>

#include <cstdint>
#include <memory>

#include "bounded_run.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::background;
using respool_test::eventually;
using respool_test::manual_clock;
using respool_test::test_factory;

namespace {
using manual_pool =
    respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock>;
using real_pool = respool::pool<test_factory>;

// With the only resource held, a caller waits `timeout`; the manual clock is moved past it and a
// maintenance pass wakes the waiter, which must then return errc::timeout within real seconds.
template <class Rep, class Period>
void times_out_on_manual_clock(std::chrono::duration<Rep, Period> timeout) {
  manual_clock::reset();
  test_factory f;
  auto p = std::make_unique<manual_pool>(
      f, respool::pool_options{.max_size = 1, .housekeeping_interval = 0ms});
  auto held = p->acquire(1s);
  REQUIRE(held);
  manual_pool* raw = p.get();
  background<std::error_code> waiter([raw, timeout] {
    std::error_code ec;
    auto l = raw->acquire(timeout, ec);
    return ec;
  });
  if (!eventually([&] { return p->stats().waiters == 1; }, 5s)) {
    respool_test::unstick(p, waiter);
    FAIL("the caller never queued");
  }
  manual_clock::advance(std::chrono::duration_cast<std::chrono::nanoseconds>(timeout) + 1s);
  p->run_maintenance();
  const bool returned = waiter.ready_within(3s);
  CHECK(returned);  // the deadline passed on the pool's clock: no waiting forever
  if (returned) {
    CHECK(waiter.get() == respool::errc::timeout);
  } else {
    held.return_to_pool();  // the stuck waiter takes it (or close() wakes it)
    respool_test::unstick(p, waiter);
  }
}

template <class Rep, class Period>
void times_out_on_real_clock(std::chrono::duration<Rep, Period> timeout) {
  test_factory f;
  auto p = std::make_unique<real_pool>(f, respool::pool_options{.max_size = 1});
  auto held = p->acquire(1s);
  REQUIRE(held);
  real_pool* raw = p.get();
  background<std::pair<std::error_code, double>> waiter([raw, timeout] {
    const auto start = std::chrono::steady_clock::now();
    std::error_code ec;
    auto l = raw->acquire(timeout, ec);
    return std::pair{ec, respool_test::ms_since(start)};
  });
  const auto limit = std::chrono::duration_cast<std::chrono::milliseconds>(timeout) + 1s;
  const bool returned = waiter.ready_within(limit);
  CHECK(returned);
  if (returned) {
    const auto [ec, took_ms] = waiter.get();
    CHECK(ec == respool::errc::timeout);
    const auto want_ms = std::chrono::duration<double, std::milli>(timeout).count();
    INFO("took " << took_ms << " ms for a timeout of " << want_ms << " ms");
    CHECK(took_ms >= want_ms - 5.0);
    CHECK(took_ms < want_ms + 1000.0);
  } else {
    held.return_to_pool();
    respool_test::unstick(p, waiter);
  }
}
}  // namespace

TEST_CASE("acquire with int seconds times out on the pool's clock") {
  times_out_on_manual_clock(std::chrono::duration<int>(1));
}

TEST_CASE("acquire with int microseconds times out on the pool's clock") {
  times_out_on_manual_clock(std::chrono::duration<int, std::micro>(50'000));
}

TEST_CASE("acquire with int16 milliseconds times out on the pool's clock") {
  times_out_on_manual_clock(
      std::chrono::duration<std::int16_t, std::milli>(static_cast<std::int16_t>(13'000)));
}

TEST_CASE("acquire with int seconds times out on the real clock") {
  times_out_on_real_clock(std::chrono::duration<int>(1));
}

TEST_CASE("acquire with int microseconds times out on the real clock") {
  times_out_on_real_clock(std::chrono::duration<int, std::micro>(50'000));
}
