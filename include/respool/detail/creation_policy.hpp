#pragma once
// When the pool creates resources, as pure functions and one small state machine, free of
// locks, threads and clocks (the caller passes the time), so each rule has a one-line test.
//
// - creations_to_start: how many factory calls to begin now.
// - creation_breaker: consecutive failures, backoff and the circuit breaker. Below the
//   threshold a failed creation is retried at once (a flaky backend is not a down one). At the
//   threshold the breaker opens. While the pool still has resources that serve (the backend
//   answered them), attempts go on at once: pausing would only drain the pool of a backend that
//   is flaky, not down. Once nothing is left, the backend counts as down: attempts wait for a
//   jittered, doubling backoff, each a single probe, and callers fail fast meanwhile; the first
//   success closes it.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "../version.hpp"
#include "pool_time.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

/// Factory calls to begin now. `live` counts every slot not empty (creating ones included),
/// `creating` the calls in flight, `stalled` those of them that have taken much longer than
/// creations usually do (a hung connect: they no longer count as on their way), `waiting` the
/// callers queued, `extra` the resources wanted beyond them (min_idle, a spare for try_acquire).
[[nodiscard]] constexpr auto creations_to_start(std::size_t max_size, std::size_t live,
                                                std::size_t creating, std::size_t stalled,
                                                std::size_t concurrency, std::size_t waiting,
                                                std::size_t extra) noexcept -> std::size_t {
  const std::size_t room = max_size > live ? max_size - live : 0;
  const std::size_t lanes = concurrency > creating ? concurrency - creating : 0;
  const std::size_t coming = creating > stalled ? creating - stalled : 0;
  const std::size_t demand = waiting + extra > coming ? waiting + extra - coming : 0;
  return std::min({room, lanes, demand});
}

/// How long a creation may take before it counts as stalled: four times the usual (a moving
/// average of successful ones), and never less than `floor`.
[[nodiscard]] constexpr auto stall_after(std::int64_t usual, std::int64_t floor) noexcept
    -> std::int64_t {
  return usual > floor / 4 ? usual * 4 : floor;
}

/// The n-th backoff (n >= 1) before jitter: min, 2 min, 4 min, ... capped at max.
[[nodiscard]] constexpr auto backoff_delay(std::int64_t min, std::int64_t max,
                                           std::uint32_t n) noexcept -> std::int64_t {
  std::int64_t d = min;
  for (std::uint32_t i = 1; i < n && d < max; ++i) d = d > max / 2 ? max : d * 2;
  return std::min(d, max);
}

class creation_breaker {
 public:
  creation_breaker(std::uint32_t threshold, std::int64_t backoff_min, std::int64_t backoff_max)
      : threshold_(threshold), min_(backoff_min), max_(backoff_max) {}

  /// The backend counts as down.
  [[nodiscard]] auto open() const noexcept -> bool { return failures_ >= threshold_; }
  [[nodiscard]] auto consecutive_failures() const noexcept -> std::uint32_t { return failures_; }
  /// When the next attempt may start (meaningful while open).
  [[nodiscard]] auto next_attempt_at() const noexcept -> std::int64_t { return next_at_; }

  /// How many of `wanted` creations may start at `now`: all while closed or while the pool
  /// still `serving` (has resources other than ones being created); else one probe when due,
  /// none while a probe is out or the backoff runs.
  [[nodiscard]] auto admit(std::int64_t now, std::size_t wanted, bool serving) const noexcept
      -> std::size_t {
    if (!open() || serving) return wanted;
    return (probing_ || now < next_at_) ? 0 : std::min<std::size_t>(wanted, 1);
  }
  /// Whether a caller that nothing alive could serve should be refused at `now`.
  [[nodiscard]] auto fails_fast(std::int64_t now) const noexcept -> bool {
    return open() && !probing_ && now < next_at_;
  }

  /// A creation begins; true if it is the probe (the breaker was open, nothing serving).
  auto on_start(bool serving) noexcept -> bool {
    if (!open() || serving) return false;
    probing_ = true;
    return true;
  }
  void on_success() noexcept {
    failures_ = 0;
    probing_ = false;
    next_at_ = 0;
  }
  /// The backend is known to answer again (cluster_pool's probe said so): the backoff ends,
  /// the next attempt (still a single probe) may start at once.
  void clear_backoff() noexcept { next_at_ = 0; }
  /// `jitter` in [0.5, 1]: the fraction of the backoff to wait, so many pools do not retry in
  /// lockstep.
  void on_failure(std::int64_t now, double jitter, bool was_probe) noexcept {
    if (failures_ < 0xffffffffU) ++failures_;
    if (was_probe) probing_ = false;
    if (!open()) return;
    const auto d = backoff_delay(min_, max_, failures_ - threshold_ + 1);
    next_at_ = add_sat(now, static_cast<std::int64_t>(static_cast<double>(d) * jitter));
  }

 private:
  std::uint32_t threshold_;
  std::int64_t min_;
  std::int64_t max_;
  std::uint32_t failures_ = 0;
  bool probing_ = false;
  std::int64_t next_at_ = 0;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
