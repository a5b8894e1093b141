#pragma once
// Operating a running pool: set_max_size(), pause() and resume(), wait_ready(), and the gate
// that sends every lend and return through the lock while paused or over a lowered limit. Part
// of pool_core (its member functions, defined here to be read on their own); invariants P1-P6
// are at the top of pool_core.hpp.
#include "pool_core.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

// Growing adds empty slots (the table grows in segments that never move) and lets waiters be
// served by new creations at once. Shrinking below what is live retires the surplus: the idle
// part now, on this thread; the rest as it comes back, or at its next borrow (P6).
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::set_max_size(std::size_t n) {
  if (n == 0 || n > pool_options::max_size_limit)
    throw std::invalid_argument("respool pool '" + opts_.name +
                                "': set_max_size: max_size must be from 1 to 1,048,576, not " +
                                std::to_string(n));
  delivery_scope scope(*this);
  {
    std::lock_guard lk(mutex_);
    try {
      if (n > table_.size()) {
        free_slots_.reserve(2 * n);  // the table's capacity may end up to twice n
        table_.grow(n, [&](std::uint32_t i) { free_slots_.push_back(i); });
      }
      set_limits_locked(n);
    } catch (const std::bad_alloc&) {
      throw std::invalid_argument("respool pool '" + opts_.name + "': set_max_size: " +
                                  std::to_string(n) + " slots cannot be allocated");
    }
    limit_moved_locked();  // grown: creations for the waiters now
    if (live_ <= limit_) return;
  }
  retire_idle_surplus();
}

// Idle resources beyond the limit, now. The gate went up first (seq_cst), so a slot being
// returned either sees it (and its holder decides under the lock) or is idle for this sweep.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::retire_idle_surplus() noexcept {
  bool done = false;
  table_.for_each([&](slot_type& s) {
    if (done) return;
    slot_table<R>::await_return(s);
    if (!slot_table<R>::try_reserve(s)) return;
    std::unique_lock lk(mutex_);
    if (take_surplus_locked()) {
      lk.unlock();
      destroy_reserved(s, destroy_reason::resized);
      return;
    }
    done = true;  // nothing surplus left: give it back
    pass_on_locked(s, lk);
  });
}

// A lend met the gate: decide under the lock. Paused: the slot goes back idle and the caller
// waits (a queued one at its place). Surplus: retired, and the caller looks again (it will
// wait: nothing is created while the pool is over its limit).
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::gated_borrow(slot_type& s, waiter* w) noexcept -> borrow {
  std::unique_lock lk(mutex_);
  const auto keep_place_if_queued = [&] {
    if (w != nullptr && w->ticket != 0) keep_place_locked(*w);
  };
  if (paused_) {
    keep_place_if_queued();
    table_.make_idle(s);  // waiters do not look while paused: nobody to wake
    return borrow::paused;
  }
  if (take_surplus_locked()) {
    keep_place_if_queued();
    retire_locked(s, destroy_reason::resized, lk);
    return borrow::retired;
  }
  return borrow::ok;
}

// While paused, acquires wait (nothing idle is lent, nothing new is made) and time out saying
// so; returns and housekeeping go on.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::pause() {
  std::lock_guard lk(mutex_);
  paused_ = true;
  update_gate_locked();
}

// Serves the waiters in order: the oldest get what is idle, the rest what is made or returned.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::resume() {
  delivery_scope scope(*this);
  std::lock_guard lk(mutex_);
  if (!paused_) return;
  paused_ = false;
  update_gate_locked();
  table_.for_each([&](slot_type& s) {
    // Over a limit lowered meanwhile: lend nothing; the gate has borrowers retire the surplus.
    if (queue_.empty() || live_ > limit_ + doomed_ || !slot_table<R>::try_reserve(s)) return;
    grant_locked(*queue_.front(), s, false);  // not fresh: it passes the borrow check
  });
  if (!queue_.empty()) announce_idle_locked();  // one went idle past the sweep: P3
  want_min_idle_locked();
  kick_locked();
}

// Until min_idle resources exist (idle or in use), the pool closes, or the timeout; the timeout
// error carries the last creation error as its cause.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::wait_ready(std::int64_t timeout, failure_slot* fail) -> bool {
  std::unique_lock lk(mutex_);
  const auto deadline = add_sat(clock_.now(), timeout);
  for (;;) {
    if (closed()) {
      fail_locked(fail, errc::closed, "the pool is closed");
      return false;
    }
    const auto exist = live_ - creating_;
    if (exist >= min_idle_) return true;
    const auto now = clock_.now();
    if (now >= deadline) {
      if (fail != nullptr)
        *fail = make_failure_locked(errc::timeout,
                                    "not ready after " + std::to_string(timeout / 1'000'000) +
                                        " ms: " + std::to_string(exist) + " of min_idle " +
                                        std::to_string(min_idle_) + " resources exist",
                                    last_error_);
      return false;
    }
    ready_cv_.wait_for(lk, sleep_span(now, deadline, 50'000'000));  // a manual clock: re-read
  }
}

}  // namespace detail
RESPOOL_NAMESPACE_END
