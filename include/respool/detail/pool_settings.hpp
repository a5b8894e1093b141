#pragma once
// The user's pool_options converted once, into the units the pool works in (nanoseconds of pool
// time, with never_ns for "disabled" or "forever"), so no other code converts a duration.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <thread>

#include "../options.hpp"
#include "../version.hpp"
#include "pool_time.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

struct pool_settings {
  // max_size, min_idle and create_concurrency are not here: set_max_size() changes them
  // (pool_core's limits).
  std::int64_t acquire_timeout;
  std::size_t max_waiters;
  std::uint64_t max_uses;              // 0: no limit
  std::int64_t idle_timeout;           // never_ns: disabled
  std::int64_t max_lifetime;           // never_ns: disabled
  std::int64_t validate_after_idle;    // 0: every borrow; never_ns: never
  std::int64_t keepalive;              // never_ns: disabled
  std::int64_t leak_threshold;         // never_ns: disabled
  std::int64_t housekeeping;           // 0: no housekeeping thread
  std::int64_t backoff_min;
  std::int64_t backoff_max;
  std::int64_t fairness_window;        // 0: strict FIFO hand-off
  std::uint32_t fail_fast_after;
  std::size_t max_spinners;            // waiters allowed to spin at once (half the cores)
  bool shed_hopeless;
  unwind_policy on_unwind;
  bool detect_nested_acquire;          // and on_event set: a report needs somewhere to go
  bool unusual_returns;                // every return does more: see pool_core::release()

  [[nodiscard]] auto strict_fifo() const noexcept -> bool { return fairness_window == 0; }

  static auto from(const pool_options& o) noexcept -> pool_settings {
    const auto zero_is_never = [](pool_options::duration d) {
      return d == pool_options::duration::zero() ? never_ns : saturating_ns(d);
    };
    pool_settings s{};
    s.acquire_timeout = saturating_ns(o.acquire_timeout);
    s.max_waiters = o.max_waiters;
    s.max_uses = o.max_uses;
    s.idle_timeout = zero_is_never(o.idle_timeout);
    s.max_lifetime = zero_is_never(o.max_lifetime);
    s.validate_after_idle = saturating_ns(o.validate_after_idle);
    s.keepalive = zero_is_never(o.keepalive_interval);
    s.leak_threshold = zero_is_never(o.leak_threshold);
    s.housekeeping = saturating_ns(o.housekeeping_interval);
    s.backoff_min = saturating_ns(o.create_backoff_min);
    s.backoff_max = saturating_ns(o.create_backoff_max);
    s.fairness_window = saturating_ns(o.fairness_window);
    s.fail_fast_after = o.fail_fast_after;
    s.max_spinners = std::max(1U, std::thread::hardware_concurrency() / 2);
    s.shed_hopeless = o.shed_hopeless;
    s.on_unwind = o.on_unwind;
    s.detect_nested_acquire = o.detect_nested_acquire && static_cast<bool>(o.on_event);
    s.unusual_returns = s.detect_nested_acquire || s.leak_threshold != never_ns || s.max_uses != 0;
    return s;
  }
};

}  // namespace detail
RESPOOL_NAMESPACE_END
