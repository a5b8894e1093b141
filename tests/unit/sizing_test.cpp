#include <respool/sizing.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>

#include "respool_catch.hpp"

namespace sz = respool::sizing;
using namespace std::chrono_literals;

namespace {
// The message of the std::invalid_argument `f` throws, or "" when it throws nothing.
template <class F>
auto invalid_argument_message(F f) -> std::string {
  try {
    f();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}
}  // namespace

// The formulas are constexpr where they can be: usable in static_asserts and constants.
static_assert(sz::recommended_pool_size(4, 1) == 9);
static_assert(sz::deadlock_free_min_size(8, 3) == 17);

TEST_CASE("recommended_pool_size is cores * 2 + effective_spindles") {
  CHECK(sz::recommended_pool_size(1, 0) == 2);
  CHECK(sz::recommended_pool_size(2, 0) == 4);
  CHECK(sz::recommended_pool_size(2, 1) == 5);
  CHECK(sz::recommended_pool_size(4, 1) == 9);    // HikariCP's example: 4 cores, 1 disk
  CHECK(sz::recommended_pool_size(16, 4) == 36);
  CHECK(sz::recommended_pool_size(2) == 5);       // one effective spindle unless told
  // Any integer type: what a caller has at hand (int from a config file, size_t, unsigned).
  CHECK(sz::recommended_pool_size(std::size_t{8}, 2U) == 18);
  CHECK(sz::recommended_pool_size(std::int64_t{3}, short{0}) == 6);
}

TEST_CASE("recommended_pool_size() uses this machine's processor count") {
  const unsigned reported = std::thread::hardware_concurrency();
  const std::size_t cores = reported == 0 ? 1 : reported;
  CHECK(sz::hardware_cores() == cores);
  CHECK(sz::recommended_pool_size() == cores * 2 + 1);
  CHECK(sz::recommended_pool_size() >= 3);
}

TEST_CASE("recommended_pool_size refuses zero or negative cores and negative spindles") {
  const auto no_cores = invalid_argument_message([] { (void)sz::recommended_pool_size(0, 1); });
  CHECK(no_cores.find("recommended_pool_size") != std::string::npos);
  CHECK(no_cores.find("cores must be at least 1 (got 0)") != std::string::npos);

  const auto negative = invalid_argument_message([] { (void)sz::recommended_pool_size(-4, 1); });
  CHECK(negative.find("cores must not be negative (got -4)") != std::string::npos);

  const auto spindles = invalid_argument_message([] { (void)sz::recommended_pool_size(4, -1); });
  CHECK(spindles.find("effective_spindles must not be negative (got -1)") != std::string::npos);

  CHECK_NOTHROW(sz::recommended_pool_size(4, 0));  // zero spindles: the data set is in memory
}

TEST_CASE("recommended_pool_size reports overflow instead of wrapping") {
  constexpr auto huge = std::numeric_limits<std::size_t>::max();
  CHECK_THROWS_AS(sz::recommended_pool_size(huge / 2 + 1, 0), std::overflow_error);
  CHECK_THROWS_AS(sz::recommended_pool_size(huge / 2, huge), std::overflow_error);
  CHECK(sz::recommended_pool_size(huge / 2, 1) == huge);  // the largest result that fits
}

TEST_CASE("deadlock_free_min_size is threads * (connections_per_thread - 1) + 1") {
  CHECK(sz::deadlock_free_min_size(1, 1) == 1);
  CHECK(sz::deadlock_free_min_size(200, 1) == 1);  // one connection each: never waits holding one
  CHECK(sz::deadlock_free_min_size(1, 5) == 5);    // a lone thread needs all it asks for
  CHECK(sz::deadlock_free_min_size(2, 2) == 3);
  CHECK(sz::deadlock_free_min_size(8, 3) == 17);
  CHECK(sz::deadlock_free_min_size(3, 4) == 10);
  CHECK(sz::deadlock_free_min_size(std::size_t{100}, 2L) == 101);
}

TEST_CASE("deadlock_free_min_size: one less could deadlock, that many cannot") {
  // The worst case the formula guards against: every thread holds C - 1 and waits for one more.
  // With T * (C - 1) connections all of them can be held that way and no thread can finish;
  // with one more, some thread always gets its last connection, finishes, and frees C.
  for (std::size_t threads = 1; threads <= 6; ++threads) {
    for (std::size_t per_thread = 1; per_thread <= 6; ++per_thread) {
      const std::size_t size = sz::deadlock_free_min_size(threads, per_thread);
      CHECK(size - 1 == threads * (per_thread - 1));   // all held, each thread one short
      CHECK(size - threads * (per_thread - 1) == 1);   // the one that lets somebody finish
    }
  }
}

TEST_CASE("deadlock_free_min_size refuses zero or negative arguments, naming them") {
  const auto no_threads =
      invalid_argument_message([] { (void)sz::deadlock_free_min_size(0, 2); });
  CHECK(no_threads.find("deadlock_free_min_size: threads must be at least 1 (got 0)") !=
        std::string::npos);
  const auto no_connections =
      invalid_argument_message([] { (void)sz::deadlock_free_min_size(4, 0); });
  CHECK(no_connections.find("connections_per_thread must be at least 1 (got 0)") !=
        std::string::npos);
  const auto negative = invalid_argument_message([] { (void)sz::deadlock_free_min_size(4, -3); });
  CHECK(negative.find("connections_per_thread must not be negative (got -3)") != std::string::npos);
  const auto negative_threads =
      invalid_argument_message([] { (void)sz::deadlock_free_min_size(-1, 3); });
  CHECK(negative_threads.find("threads must not be negative (got -1)") != std::string::npos);
}

TEST_CASE("deadlock_free_min_size reports overflow instead of wrapping") {
  constexpr auto huge = std::numeric_limits<std::size_t>::max();
  CHECK_THROWS_AS(sz::deadlock_free_min_size(huge, 3), std::overflow_error);
  CHECK_THROWS_AS(sz::deadlock_free_min_size(huge, 2), std::overflow_error);  // huge * 1 + 1
  CHECK(sz::deadlock_free_min_size(huge - 1, 2) == huge);
  CHECK(sz::deadlock_free_min_size(huge, 1) == 1);
}

TEST_CASE("littles_law_size is throughput x response time x headroom, rounded up") {
  CHECK(sz::littles_law_size(2000.0, 5ms) == 12);        // 10 busy, +20%
  CHECK(sz::littles_law_size(1000.0, 10ms, 1.0) == 10);  // exactly 10: not 11
  CHECK(sz::littles_law_size(1000.0, 10ms, 1.2) == 12);
  CHECK(sz::littles_law_size(100.0, 50ms, 1.2) == 6);    // 6.000000000000001 in doubles: still 6
  CHECK(sz::littles_law_size(30.0, 100ms) == 4);         // 3.6 -> 4
  CHECK(sz::littles_law_size(30.0, 100ms, 1.0) == 3);
  CHECK(sz::littles_law_size(10'001.0, 1ms, 1.0) == 11);  // 10.001 -> 11: real excess rounds up
  CHECK(sz::littles_law_size(41'000.0, 90us, 1.5) == 6);  // 3.69 busy, +50% = 5.535 -> 6
  CHECK(sz::littles_law_size(1.0, 1ms) == 1);             // far below one connection: still 1
  // Any duration type: seconds as double, microseconds, minutes.
  CHECK(sz::littles_law_size(500.0, std::chrono::duration<double>(0.02), 1.0) == 10);
  CHECK(sz::littles_law_size(0.5, std::chrono::minutes(1), 1.0) == 30);
}

TEST_CASE("littles_law_size refuses non-positive, non-finite and too-small arguments") {
  const auto nan = std::numeric_limits<double>::quiet_NaN();
  const auto inf = std::numeric_limits<double>::infinity();
  CHECK(invalid_argument_message([] { (void)sz::littles_law_size(0.0, 5ms); })
            .find("littles_law_size: throughput_per_sec must be positive") != std::string::npos);
  CHECK(invalid_argument_message([] { (void)sz::littles_law_size(-10.0, 5ms); })
            .find("throughput_per_sec") != std::string::npos);
  CHECK(invalid_argument_message([&] { (void)sz::littles_law_size(nan, 5ms); })
            .find("throughput_per_sec") != std::string::npos);
  CHECK(invalid_argument_message([&] { (void)sz::littles_law_size(inf, 5ms); })
            .find("throughput_per_sec") != std::string::npos);
  CHECK(invalid_argument_message([] { (void)sz::littles_law_size(100.0, 0ms); })
            .find("mean_response_time must be positive") != std::string::npos);
  CHECK(invalid_argument_message([] { (void)sz::littles_law_size(100.0, -3ms); })
            .find("mean_response_time") != std::string::npos);
  CHECK(invalid_argument_message([] { (void)sz::littles_law_size(100.0, 5ms, 0.9); })
            .find("headroom must be at least 1") != std::string::npos);
  CHECK(invalid_argument_message([&] { (void)sz::littles_law_size(100.0, 5ms, nan); })
            .find("headroom") != std::string::npos);
  CHECK_NOTHROW(sz::littles_law_size(100.0, 5ms, 1.0));
}

TEST_CASE("littles_law_size reports a result too large for size_t") {
  const double big = std::numeric_limits<double>::max();
  CHECK_THROWS_AS(sz::littles_law_size(big, std::chrono::hours(1)), std::overflow_error);
  CHECK_THROWS_AS(sz::littles_law_size(1e300, std::chrono::seconds(1)), std::overflow_error);
}
