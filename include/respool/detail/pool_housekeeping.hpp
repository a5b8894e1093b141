#pragma once
// Housekeeping: the clock thread, the pass that retires idle and expired resources and plans
// keepalive checks, min_idle upkeep, and leak reports. Part of pool_core (its member
// functions, defined here to be read on their own); invariants P1-P5 are at the top of
// pool_core.hpp.
#include "pool_core.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

// The housekeeper thread: ticks the coarse clock and plans every housekeeping_interval, wakes
// for the breaker's probe, and times out asynchronous waiters at their deadlines (the earliest
// is the timer heap's top); never runs user code.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::housekeeper_loop() {
  std::unique_lock lk(mutex_);
  auto next_pass = add_sat(steady_ns(), cfg_.housekeeping);
  while (!stopping_) {
    const auto now = clock_.now();
    auto span = ns(std::max<std::int64_t>(0, next_pass - steady_ns()));
    if (breaker_.open())  // wake for the probe, not a tick later (at most every millisecond)
      span = std::min(span, std::max(ns(1'000'000), sleep_span(now, breaker_.next_attempt_at(),
                                                                 cfg_.housekeeping)));
    span = std::min(span, sleep_span(now, next_async_deadline_locked(), cfg_.housekeeping));
    if (span > ns::zero()) housekeeper_cv_.wait_for(lk, span);
    if (stopping_) break;
    expire_async_locked(clock_.now());
    const bool probe_due = breaker_.open() && clock_.now() >= breaker_.next_attempt_at();
    if (steady_ns() < next_pass && !probe_due) continue;
    next_pass = add_sat(steady_ns(), cfg_.housekeeping);
    lk.unlock();
    plan_maintenance(clock_.now(), false);
    lk.lock();
  }
}

// Decides what housekeeping is due at `now`. The user code it needs (pings, destructors,
// events) is queued for workers, or with `here` run at once on this thread, one at a time, so
// only one resource at a time is out of circulation for a check.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::plan_maintenance(std::int64_t now, bool here) {
  coarse_now_.store(now, std::memory_order_relaxed);
  if (closed()) return;
  if (cfg_.leak_threshold != never_ns) detect_leaks(now, here);
  if (adaptive_) adapt_limit(now, here);
  std::size_t idle_now = 0;
  // Over a limit just lowered (P6, P7): idle resources are retired in this sweep too.
  const auto [min_idle, surplus] = [this] {
    std::lock_guard lk(mutex_);
    return std::pair{min_idle_, live_ > limit_ + doomed_};
  }();
  for (std::size_t i = 0; i < table_.size(); ++i)
    if (slot_table<R>::state_of(table_[i]) == slot_state::idle) ++idle_now;
  for (std::size_t i = 0; i < table_.size(); ++i) {
    auto& s = table_[i];
    const auto last_used = s.last_used.load(std::memory_order_relaxed);
    const bool expired = now >= s.expires_at.load(std::memory_order_relaxed);
    const bool idle_expired = cfg_.idle_timeout != never_ns &&
                              now - last_used >= cfg_.idle_timeout && idle_now > min_idle;
    const bool check_due =
        cfg_.keepalive != never_ns &&
        now - std::max(s.last_checked.load(std::memory_order_relaxed), last_used) >= cfg_.keepalive;
    if (!expired && !idle_expired && !check_due && !surplus) continue;
    if (!slot_table<R>::try_reserve(s)) continue;
    // Reserved: borrowers skip it. The readings above may be stale (it was lent and returned
    // meanwhile): read them again.
    std::unique_lock lk(mutex_);
    if (now >= s.expires_at.load(std::memory_order_relaxed)) {
      --idle_now;
      post_or_run_locked(destroy_job(s, destroy_reason::lifetime), lk, here);
    } else if (idle_expired && s.last_used.load(std::memory_order_relaxed) == last_used) {
      --idle_now;
      post_or_run_locked(destroy_job(s, destroy_reason::idle_timeout), lk, here);
    } else if (check_due) {
      s.last_checked.store(now, std::memory_order_relaxed);
      post_or_run_locked(check_job(s), lk, here);
    } else if (apply_evict_checks_locked(s, lk)) {  // evict_if's sweep skipped it: ours
      post_or_run_locked(destroy_job(s, destroy_reason::evicted), lk, here);
    } else if (auto why = give_locked(s, false)) {
      post_or_run_locked(destroy_job(s, *why), lk, here);
    }
  }
  std::lock_guard lk(mutex_);
  want_min_idle_locked();
  // Waiters sleep on the pool's clock; a manual clock only moves when told, so wake those whose
  // deadline has passed to let them notice.
  queue_.for_each([&](waiter& w) {
    if (w.deadline <= now) w.wake(w);
  });
  expire_async_locked(now);
  kick_locked();
}

// pool_options::adaptive: a reading for the rule (adaptive_limit.hpp) from counts the pool
// keeps anyway; a new limit applies at once (creations start, or the gate retires the surplus).
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::adapt_limit(std::int64_t now, bool here) {
  const auto granted = granted_total();
  std::unique_lock lk(mutex_);
  const auto before = limit_;
  const auto next = adaptive_->observe({.now = now,
                                        .completed = granted,
                                        .unmet = unmet_demand_,
                                        .resources = live_ - creating_,
                                        .waiting = !queue_.empty()});
  if (!next) return;
  apply_limit_locked(*next);
  limit_moved_locked();
  if (!opts_.on_event) return;
  try {
    job j = event_job(event_kind::limit_changed);
    j.limit = *next;
    j.previous_limit = before;
    const auto us = [](double v) { return std::to_string(std::llround(v / 1e3)); };
    j.text = "adaptive limit " + std::to_string(before) + " -> " + std::to_string(*next) +
             ": mean hold " + us(adaptive_->last_hold_ns()) + " us, unloaded " +
             us(adaptive_->baseline_ns()) + " us";
    post_or_run_locked(std::move(j), lk, here);
  } catch (...) {  // no memory for the text: the event is dropped, the pool goes on
  }
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::post_or_run_locked(job&& j, std::unique_lock<std::mutex>& lk, bool here) {
  if (!here && post_locked(std::move(j))) return;
  lk.unlock();
  run_job(j);
  lk.lock();
}

// min_idle: the background makes what is not idle. extra_wanted_ counts the creations in
// flight too (creations_to_start subtracts them, each one made idle takes one off), so they are
// not subtracted here as well: counted twice, they hid part of the need (under load, evict_all
// with min_idle 3 ended with 2 idle about once in 30 runs).
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::want_min_idle_locked() noexcept {
  const auto idle = idle_count_locked();
  extra_wanted_ = std::max(extra_wanted_, min_idle_ > idle ? min_idle_ - idle : 0);
}

template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::idle_count_locked() const noexcept -> std::size_t {
  std::size_t n = 0;
  for (std::size_t i = 0; i < table_.size(); ++i)
    if (slot_table<R>::state_of(table_[i]) == slot_state::idle) ++n;
  return n;
}

// A worker's half of a keepalive check: the ping, then back into circulation through the same
// checks as any hand-off (an eviction or close during the ping wins).
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::finish_keepalive(slot_type& s) noexcept {
  bool ok = true;
  if constexpr (!std::is_same_v<V, always_valid>) ok = invoke_validator(s);
  if (!ok) return destroy_reserved(s, destroy_reason::failed_validation);
  s.must_validate = false;  // validated: an unwound lease's mark is honoured
  std::unique_lock lk(mutex_);
  const auto dropped = make_available_locked(s, true, lk);
  if (!dropped) return;
  lk.unlock();
  destroy_reserved(s, *dropped);
}

// evict_if: every resource is given the predicate (idle ones too: a borrower may claim one
// before the sweep reaches it), then the sweep applies it to those still idle, on this thread;
// the others carry it until their owner applies it, on return or at the next borrow. The flag
// is stored seq_cst before the sweep reads each slot's state, and read seq_cst after the
// claiming or returning CAS: a slot the sweep could not take is owned by someone whose next
// step (return, or borrow check) comes after the flag, so sees it.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::evict_if(const evict_predicate& pred) {
  {
    std::lock_guard lk(mutex_);
    for (std::size_t i = 0; i < table_.size(); ++i) {
      auto& s = table_[i];
      const auto st = slot_table<R>::state_of(s);
      if (st == slot_state::empty) continue;
      evict_checks_[s.index].push_back(pred);
      s.evict_check.store(true, std::memory_order_seq_cst);
    }
  }
  for (std::size_t i = 0; i < table_.size(); ++i) {
    auto& s = table_[i];
    slot_table<R>::await_return(s);
    if (!slot_table<R>::try_reserve(s)) continue;
    // Ours now: apply what waits for it (this predicate, unless a borrower did already).
    if (s.evict_check.load(std::memory_order_seq_cst) && matches_evict_check(s)) {
      destroy_reserved(s, destroy_reason::evicted);
      continue;
    }
    std::unique_lock lk(mutex_);
    const auto dropped = make_available_locked(s, false, lk);
    lk.unlock();
    if (dropped) destroy_reserved(s, *dropped);
  }
}

// The owner of `s` takes the predicates waiting for it and applies them.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::matches_evict_check(slot_type& s) noexcept -> bool {
  std::vector<evict_predicate> preds;
  {
    std::lock_guard lk(mutex_);
    s.evict_check.store(false, std::memory_order_relaxed);
    if (auto it = evict_checks_.find(s.index); it != evict_checks_.end()) {
      preds = std::move(it->second);
      evict_checks_.erase(it);
    }
  }
  return any_matches(preds, s);
}

// The owner of `s` (lock held; released meanwhile) applies every predicate that waits for it,
// until none does: one may be added while the lock is released. The flag is written under the
// lock, so what this reads under it is exact.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::apply_evict_checks_locked(slot_type& s,
                                                          std::unique_lock<std::mutex>& lk) noexcept
    -> bool {
  bool doomed = false;
  while (!doomed && s.evict_check.load(std::memory_order_relaxed)) {
    lk.unlock();
    doomed = matches_evict_check(s);
    lk.lock();
  }
  return doomed;
}

// A predicate that throws counts as a match: a resource we cannot judge is not lent again.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::any_matches(const std::vector<evict_predicate>& preds,
                                            const slot_type& s) noexcept -> bool {
  for (const auto& p : preds) {
    try {
      if ((*p)(*s.resource, s.origin)) return true;
    } catch (...) {
      return true;
    }
  }
  return false;
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::detect_leaks(std::int64_t now, bool here) {
  for (std::size_t i = 0; i < table_.size(); ++i) {
    auto& s = table_[i];
    if (slot_table<R>::state_of(s) != slot_state::in_use) continue;
    const auto seq = s.acquisitions.load(std::memory_order_acquire);
    const auto at = s.acquired_at.load(std::memory_order_acquire);
    if (now - at < cfg_.leak_threshold || s.leak_reported.load(std::memory_order_relaxed) == seq)
      continue;
    const auto site = site_of(s);
    // Still the same lease? (It may have come back and gone out again meanwhile.)
    if (slot_table<R>::state_of(s) != slot_state::in_use ||
        s.acquisitions.load(std::memory_order_acquire) != seq)
      continue;
    s.leak_reported.store(seq, std::memory_order_relaxed);
    if (!opts_.on_event) continue;
    job j = event_job(event_kind::leak_suspected);
    j.where = site;
    j.held = std::chrono::duration_cast<std::chrono::milliseconds>(ns(now - at));
    std::unique_lock lk(mutex_);
    post_or_run_locked(std::move(j), lk, here);
  }
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::report_leak_return(slot_type& s, std::int64_t now) noexcept {
  if (s.leak_reported.load(std::memory_order_relaxed) !=
      s.acquisitions.load(std::memory_order_relaxed))
    return;
  if (!opts_.on_event || (s.state.load(std::memory_order_acquire) & slot_state::orphaned) != 0)
    return;
  pool_event e;
  e.kind = event_kind::leak_returned;
  e.where = site_of(s);
  e.held = std::chrono::duration_cast<std::chrono::milliseconds>(
      ns(now - s.acquired_at.load(std::memory_order_relaxed)));
  emit(e);
}

}  // namespace detail
RESPOOL_NAMESPACE_END
