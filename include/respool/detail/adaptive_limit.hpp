#pragma once
// The rule behind pool_options::adaptive: how many resources a pool lends at once, found online
// from what the pool counts anyway. Policy only (no clock, no lock, no threads): the pool feeds
// it a reading at each housekeeping pass, and tests feed it any backend they simulate.
//
// What it measures. Over a window (at least `adaptive_options::window` long, and long enough
// for a few leases per resource), the leases completed, N, while L resources were lent. By
// Little's law a lease was then held h = L * T / N on average: no lease is timed, so the fast
// path pays nothing for it. Only windows in which callers wanted more than the limit (some
// waited or were refused) count: otherwise the callers set the pace, not the backend, and h
// says nothing about it ("application-limited", as Netflix's concurrency-limits calls it).
//
// The rule is TCP Vegas's, as concurrency-limits applies it to requests. The lowest hold seen,
// b, is what a lease costs when the backend does not queue. Then q = L * (1 - b / h) estimates
// how many of the L leases wait inside the backend instead of being served (Little again: the
// backend serves N / T * b of them at a time). Below `low`, the backend has room: the limit
// grows by one. Above `high`, it queues: the limit drops to what it serves plus `low` (L * b / h
// + low, as Gradient2 drops to limit * gradient + queue; at most halving), once two judged
// windows in a row say so: one window of queueing is as often a stall of the backend (a
// checkpoint) as too many connections. Queueing in the backend is where more connections stop
// adding throughput and only add latency (a database past its cores, its locks, its disk).
// Between the two, it stays.
//   low = 1 and high = 3, each times log10(L) once L is past 10: below Vegas's usual alpha and
// beta (2-3 and 4-6). A queue of one or two keeps the backend busy between one lease's end and
// the next; more only adds latency. On PostgreSQL on 2 cores (the lab) these settle at the best
// fixed size, where 2 and 4 let the limit wander up to twice it, and the p99 with it.
//   Slow start: until the first window in which q reaches `low`, the limit doubles, so a pool
// starting at 1 reaches 64 in six windows. A change is followed by one window that is not
// judged: resources are being created or retired during it.
//   Probing the baseline: b only falls, so a backend that became slower for good (a failover
// to a smaller replica, a bigger data set) would read as queueing from then on. Every
// `probe_every` judged windows the limit halves for one window (as BBR drains to measure its
// minimum round trip), and b moves to the hold measured there, with half the leases, rising by
// at most 10% a probe: half the leases still queue a little on most backends, and a b raised to
// it at once would let the limit creep up probe after probe. A backend twice as slow for good
// is followed within about seven probes.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <utility>

#include "../options.hpp"
#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

class adaptive_limit {
 public:
  // What the pool counted, cumulatively, at a housekeeping pass.
  struct reading {
    std::int64_t now = 0;         // ns, the pool's clock
    std::uint64_t completed = 0;  // leases ever granted (each is completed by its return)
    std::uint64_t unmet = 0;      // acquires that ever found nothing to take (waited, refused)
    std::size_t resources = 0;    // resources that exist now (idle or lent)
    bool waiting = false;         // callers queued now
  };

  adaptive_limit(const adaptive_options& o, std::size_t ceiling) noexcept
      : min_(std::min(o.min_limit, ceiling)),
        max_(ceiling),
        window_(std::chrono::duration_cast<std::chrono::nanoseconds>(o.window).count()),
        limit_(std::clamp(o.initial_limit == 0 ? o.min_limit : o.initial_limit, min_, max_)) {}

  [[nodiscard]] auto limit() const noexcept -> std::size_t { return limit_; }
  // The estimated unloaded hold (ns), 0 before the first judged window: for the event's text.
  [[nodiscard]] auto baseline_ns() const noexcept -> double { return baseline_; }
  [[nodiscard]] auto last_hold_ns() const noexcept -> double { return hold_; }

  // set_max_size(): the limit stays within the new ceiling.
  void set_ceiling(std::size_t ceiling) noexcept {
    max_ = ceiling;
    min_ = std::min(min_, ceiling);
    limit_ = std::clamp(limit_, min_, max_);
  }

  // One pass. Returns the new limit when it changed.
  auto observe(const reading& r) noexcept -> std::optional<std::size_t> {
    if (!started_) return restart(r);
    const auto elapsed = r.now - start_.now;
    const auto completed = r.completed - start_.completed;
    if (elapsed < window_ || completed < std::max<std::uint64_t>(min_leases, 2 * limit_))
      return std::nullopt;  // too short to judge: the window goes on
    const bool wanted_more = r.unmet != start_.unmet || r.waiting;
    const bool settling = skip_;
    // Callers wanted more, so what existed was lent: the limit, or less while creations lag.
    const auto lent = std::min({limit_, r.resources, start_.resources});
    restart(r);
    if (settling || !wanted_more || lent == 0) return std::nullopt;
    return judge(static_cast<double>(lent) * static_cast<double>(elapsed) /
                     static_cast<double>(completed),
                 static_cast<double>(lent));
  }

 private:
  static constexpr std::uint64_t min_leases = 16;
  static constexpr std::size_t probe_every = 100;
  static constexpr double probe_rise = 1.1;  // what one probe may raise the baseline by

  auto restart(const reading& r) noexcept -> std::optional<std::size_t> {
    started_ = true;
    skip_ = false;
    start_ = r;
    return std::nullopt;
  }

  auto judge(double hold, double lent) noexcept -> std::optional<std::size_t> {
    hold_ = hold;
    if (probe_return_ != 0) {  // a probe's window: the baseline follows its hold, and back
      baseline_ = std::min(hold, baseline_ * probe_rise);
      return change_to(std::clamp(std::exchange(probe_return_, 0), min_, max_));  // set_max_size
    }
    baseline_ = baseline_ == 0 ? hold : std::min(hold, baseline_);
    const double queued = lent * (1.0 - baseline_ / hold);
    const double scale = std::max(1.0, std::log10(lent));
    const double low = 1.0 * scale;
    const double high = 3.0 * scale;
    if (queued >= low) slow_start_ = false;
    std::size_t next = limit_;
    if (slow_start_) {
      next = limit_ * 2;
    } else if (queued < low) {
      next = limit_ + 1;
    } else if (queued > high) {
      const double served = lent * baseline_ / hold;
      const auto target = std::max(limit_ / 2, static_cast<std::size_t>(served + low));
      // Only when the window before said so too (then the milder of the two): a backend that
      // stalls for a moment (a checkpoint's fsync) queues everything at once, and fewer
      // connections would only slow the recovery after it.
      next = shrink_to_ != 0 ? std::max(shrink_to_, target) : limit_;
      shrink_to_ = shrink_to_ != 0 ? 0 : target;
    }
    if (queued <= high) shrink_to_ = 0;
    next = std::clamp(next, min_, max_);
    if (!slow_start_ && next == limit_ && ++since_probe_ >= probe_every && limit_ / 2 >= min_ &&
        limit_ >= 2) {
      since_probe_ = 0;
      probe_return_ = limit_;
      next = limit_ / 2;
    }
    return change_to(next);
  }

  auto change_to(std::size_t next) noexcept -> std::optional<std::size_t> {
    if (next == limit_) return std::nullopt;
    limit_ = next;
    skip_ = true;
    return next;
  }

  std::size_t min_;
  std::size_t max_;
  std::int64_t window_;
  std::size_t limit_;
  reading start_{};
  bool started_ = false;
  bool skip_ = false;
  bool slow_start_ = true;
  std::size_t since_probe_ = 0;
  std::size_t probe_return_ = 0;  // while probing: the limit to go back to
  std::size_t shrink_to_ = 0;     // the last judged window's shrink, waiting for a second
  double baseline_ = 0;
  double hold_ = 0;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
