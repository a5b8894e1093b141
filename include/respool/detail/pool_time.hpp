#pragma once
// Time inside the pool: signed nanoseconds since the pool was made, on the pool's `Clock`, with
// saturating arithmetic. Counting from the pool's own origin keeps every value small and
// non-negative whatever the clock's epoch is (std::chrono::file_clock and a manual test clock
// before its epoch have negative `now()`), and converting any caller's duration through
// `saturating_ns` means no `std::chrono::duration` type can overflow into "wait forever" or
// "expired at once".
#include <chrono>
#include <cstdint>
#include <limits>
#include <ratio>
#include <type_traits>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

using ns = std::chrono::nanoseconds;
// "Never" in pool time, and the largest duration the pool distinguishes from it (292 years).
inline constexpr std::int64_t never_ns = std::numeric_limits<std::int64_t>::max();

[[nodiscard]] constexpr auto add_sat(std::int64_t a, std::int64_t b) noexcept -> std::int64_t {
  if (b > 0 && a > never_ns - b) return never_ns;
  if (b < 0 && a < std::numeric_limits<std::int64_t>::min() - b)
    return std::numeric_limits<std::int64_t>::min();
  return a + b;
}

/// Any duration as nanoseconds, clamped to [0, never_ns]: negative and NaN become 0, anything
/// at or beyond 292 years becomes never_ns. Integer counts are scaled with an overflow check
/// first (duration<int16_t, milli>, duration<int>, hours::max() all work); floating ones go
/// through long double.
template <class Rep, class Period>
[[nodiscard]] constexpr auto saturating_ns(std::chrono::duration<Rep, Period> d) noexcept
    -> std::int64_t {
  if constexpr (std::is_floating_point_v<Rep>) {
    const long double v = static_cast<long double>(d.count()) * Period::num * 1'000'000'000.0L /
                          Period::den;
    if (!(v > 0.0L)) return 0;  // also NaN
    if (v >= static_cast<long double>(never_ns)) return never_ns;
    return static_cast<std::int64_t>(v);
  } else {
    if (d.count() <= 0) return 0;
    using per_tick = std::ratio_divide<Period, std::nano>;  // ns per tick, as a fraction
    const auto c = static_cast<std::uintmax_t>(d.count());
    constexpr auto num = static_cast<std::uintmax_t>(per_tick::num);
    constexpr auto den = static_cast<std::uintmax_t>(per_tick::den);
    constexpr auto limit = static_cast<std::uintmax_t>(never_ns);
    if (c > limit / num) return never_ns;
    const auto v = c * num / den;
    return v >= limit ? never_ns : static_cast<std::int64_t>(v);
  }
}

// The pool's clock as pool time. `origin` is read once, at construction.
template <class Clock>
class pool_clock {
 public:
  pool_clock() : origin_(Clock::now()) {}

  /// Nanoseconds since the origin, plus one: 0 is never a reading, so it can mean "not read".
  [[nodiscard]] auto now() const noexcept -> std::int64_t {
    const auto d = Clock::now() - origin_;
    return add_sat(signed_ns(d), 1);
  }

 private:
  template <class D>
  static auto signed_ns(D d) noexcept -> std::int64_t {
    if (d < D::zero()) return -saturating_ns(-d);
    return saturating_ns(d);
  }
  typename Clock::time_point origin_;
};

/// A real-time span to sleep for while the pool's clock runs to `until` (pool time), capped so
/// that a waiter re-reads its clock at least this often (a manual clock moves only when told,
/// and a system clock may jump): nothing in the standard library is handed a value it could
/// overflow converting.
[[nodiscard]] inline auto sleep_span(std::int64_t now, std::int64_t until,
                                     std::int64_t cap = 1'000'000'000) noexcept -> ns {
  if (until <= now) return ns::zero();
  const auto left = until == never_ns ? cap : add_sat(until, -now);
  return ns(left < cap ? left : cap);
}

}  // namespace detail
RESPOOL_NAMESPACE_END
