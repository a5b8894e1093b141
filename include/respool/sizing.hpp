#pragma once
/**
 * `respool::sizing`: how big a pool should be. Three rules of thumb, as functions.
 *
 * - `recommended_pool_size(cores, effective_spindles)`: `cores * 2 + effective_spindles`, the
 *   classic starting point for a database pool (PostgreSQL's wiki, HikariCP's "About Pool
 *   Sizing"). A database server does useful work on about two connections per core, one running
 *   while the other waits on the network or the disk; more connections only add context switches
 *   and lock contention. The callers beyond that wait in the pool's short, fair queue, which is
 *   faster for them too. Run `respool-lab` to see it on your own machine.
 * - `deadlock_free_min_size(threads, connections_per_thread)`: `T * (C - 1) + 1`. When each of
 *   T threads may hold up to C connections at once and acquires them one by one, a smaller pool
 *   can end with every thread holding C - 1 and waiting for its last one, forever (until the
 *   acquire timeout). With one more connection than that, some thread always completes.
 * - `littles_law_size(throughput_per_sec, mean_response_time, headroom)`: Little's law,
 *   L = λ × W. To sustain λ requests a second that each hold a connection for W, about λ × W
 *   connections are busy on average; `headroom` (default 1.2) covers bursts. Rounds up.
 *
 * Bad arguments (zero or negative counts, a non-positive throughput or response time, a headroom
 * below 1, NaN) throw `std::invalid_argument` naming the function and the argument; a result
 * too large for `std::size_t` throws `std::overflow_error`.
 *
 * **Example**:
 * ```cpp
 * namespace sz = respool::sizing;
 * sz::recommended_pool_size();              // this machine: hardware_cores() * 2 + 1
 * sz::recommended_pool_size(4, 1);          // 9
 * sz::deadlock_free_min_size(8, 3);         // 17: 8 threads, each up to 3 connections at once
 * sz::littles_law_size(2000.0, 5ms);        // 2000/s × 5 ms = 10 busy, × 1.2 -> 12
 * respool::pool db{factory, {.max_size = std::max(sz::recommended_pool_size(),
 *                                                 sz::deadlock_free_min_size(8, 2))}};
 * ```
 */
#include <chrono>
#include <cmath>
#include <concepts>
#include <cstddef>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>

#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

namespace sizing {

namespace detail {
/// A count argument: any integer type but `bool` (and the character types, which are not counts).
template <class T>
concept count = std::integral<T> && !std::same_as<std::remove_cv_t<T>, bool> &&
                !std::same_as<std::remove_cv_t<T>, char> &&
                !std::same_as<std::remove_cv_t<T>, wchar_t> &&
                !std::same_as<std::remove_cv_t<T>, char8_t> &&
                !std::same_as<std::remove_cv_t<T>, char16_t> &&
                !std::same_as<std::remove_cv_t<T>, char32_t>;

[[noreturn]] inline void invalid(const char* function, const char* argument, const std::string& why) {
  throw std::invalid_argument(std::string("respool::sizing::") + function + ": " + argument + " " +
                              why);
}

[[noreturn]] inline void overflow(const char* function) {
  throw std::overflow_error(std::string("respool::sizing::") + function +
                            ": the result does not fit in std::size_t");
}

// The value as a std::size_t, after checking it is at least `minimum` (negative values of signed
// types are refused by name instead of wrapping around to huge sizes).
template <count T>
constexpr auto checked_count(T value, std::size_t minimum, const char* function,
                             const char* argument) -> std::size_t {
  if (std::cmp_less(value, 0)) {
    invalid(function, argument, "must not be negative (got " + std::to_string(value) + ")");
  }
  if (std::cmp_less(value, minimum)) {
    invalid(function, argument,
            "must be at least " + std::to_string(minimum) + " (got " + std::to_string(value) + ")");
  }
  if (std::cmp_greater(value, std::numeric_limits<std::size_t>::max())) overflow(function);
  return static_cast<std::size_t>(value);
}

constexpr auto checked_mul(std::size_t a, std::size_t b, const char* function) -> std::size_t {
  if (a != 0 && b > std::numeric_limits<std::size_t>::max() / a) overflow(function);
  return a * b;
}

constexpr auto checked_add(std::size_t a, std::size_t b, const char* function) -> std::size_t {
  if (b > std::numeric_limits<std::size_t>::max() - a) overflow(function);
  return a + b;
}
}  // namespace detail

/// The processors this machine reports (`std::thread::hardware_concurrency()`), or 1 when it
/// cannot tell. These are logical processors: with simultaneous multithreading (hyper-threads)
/// the physical core count the rule of thumb means may be half of it, and a container's CPU
/// quota is not taken into account. Pass your own count when you know better.
[[nodiscard]] inline auto hardware_cores() noexcept -> std::size_t {
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? std::size_t{1} : std::size_t{n};
}

/**
 * `cores * 2 + effective_spindles`: a good first `max_size` for a pool in front of a database
 * server with `cores` cores. `effective_spindles` counts the disks that can seek in parallel for
 * requests the cache does not serve: 0 when the working set is fully in memory, about 1 for an
 * SSD, more for a disk array. `cores` must be at least 1.
 *
 * **Example**: `recommended_pool_size(4, 1) == 9`; `recommended_pool_size(2, 0) == 4`.
 */
template <detail::count Cores, detail::count Spindles = int>
[[nodiscard]] constexpr auto recommended_pool_size(Cores cores, Spindles effective_spindles = 1)
    -> std::size_t {
  constexpr const char* fn = "recommended_pool_size";
  const std::size_t c = detail::checked_count(cores, 1, fn, "cores");
  const std::size_t s = detail::checked_count(effective_spindles, 0, fn, "effective_spindles");
  return detail::checked_add(detail::checked_mul(c, 2, fn), s, fn);
}

/// The rule of thumb for this machine: `hardware_cores() * 2 + 1` (one effective spindle).
[[nodiscard]] inline auto recommended_pool_size() -> std::size_t {
  return recommended_pool_size(hardware_cores(), 1);
}

/**
 * The smallest pool that cannot deadlock when each of `threads` threads holds up to
 * `connections_per_thread` connections at once, acquired one after another:
 * `threads * (connections_per_thread - 1) + 1`. Both arguments must be at least 1; with one
 * connection per thread the answer is 1 (a thread that holds one never waits for another).
 *
 * **Example**: `deadlock_free_min_size(8, 3) == 17`; `deadlock_free_min_size(200, 1) == 1`.
 */
template <detail::count Threads, detail::count PerThread>
[[nodiscard]] constexpr auto deadlock_free_min_size(Threads threads,
                                                    PerThread connections_per_thread)
    -> std::size_t {
  constexpr const char* fn = "deadlock_free_min_size";
  const std::size_t t = detail::checked_count(threads, 1, fn, "threads");
  const std::size_t c =
      detail::checked_count(connections_per_thread, 1, fn, "connections_per_thread");
  return detail::checked_add(detail::checked_mul(t, c - 1, fn), 1, fn);
}

/**
 * Little's law with headroom: `ceil(throughput_per_sec × mean_response_time × headroom)`, at
 * least 1. `mean_response_time` is how long a request holds its connection (not how long it
 * waited for it). `throughput_per_sec` and `mean_response_time` must be positive and finite,
 * `headroom` at least 1. Differences below one part in 10^9 from a whole number are taken as
 * floating-point noise, so that `littles_law_size(100.0, 50ms, 1.2)` is 6, not 7.
 *
 * **Example**: `littles_law_size(2000.0, std::chrono::milliseconds(5)) == 12` (10 busy on
 * average, 20% headroom); `littles_law_size(1000.0, 10ms, 1.0) == 10`.
 */
template <class Rep, class Period>
[[nodiscard]] auto littles_law_size(double throughput_per_sec,
                                    std::chrono::duration<Rep, Period> mean_response_time,
                                    double headroom = 1.2) -> std::size_t {
  constexpr const char* fn = "littles_law_size";
  if (!std::isfinite(throughput_per_sec) || throughput_per_sec <= 0.0) {
    detail::invalid(fn, "throughput_per_sec",
                    "must be positive and finite (got " + std::to_string(throughput_per_sec) + ")");
  }
  const double seconds = std::chrono::duration<double>(mean_response_time).count();
  if (!std::isfinite(seconds) || seconds <= 0.0) {
    detail::invalid(fn, "mean_response_time",
                    "must be positive (got " + std::to_string(seconds) + " s)");
  }
  if (!std::isfinite(headroom) || headroom < 1.0) {
    detail::invalid(fn, "headroom",
                    "must be at least 1 (got " + std::to_string(headroom) +
                        "); 1.2 means 20% above the average");
  }
  const double busy = throughput_per_sec * seconds * headroom;
  if (!std::isfinite(busy)) detail::overflow(fn);
  const double size = std::ceil(busy - busy * 1e-9);
  if (size >= static_cast<double>(std::numeric_limits<std::size_t>::max())) detail::overflow(fn);
  return size < 1.0 ? std::size_t{1} : static_cast<std::size_t>(size);
}

}  // namespace sizing

RESPOOL_NAMESPACE_END
