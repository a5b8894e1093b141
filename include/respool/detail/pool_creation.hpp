#pragma once
// Creating resources: one factory call into a free slot, what becomes of the result, and the
// breaker's bookkeeping (creation_policy.hpp holds its rules). Part of pool_core (its member
// functions, defined here to be read on their own); invariants P1-P5 are at the top of
// pool_core.hpp.
#include "pool_core.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

// min_idle at construction, made by the background workers, create_concurrency at a time.
// The constructor waits until they exist, one fails (the background then keeps trying, under
// the breaker's rules), or acquire_timeout passes in real time (a connect that hangs does not
// hang the constructor); wait_ready() is the wait with a timeout of the caller's choosing.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::prewarm() {
  if (min_idle_ == 0) return;
  std::unique_lock lk(mutex_);
  extra_wanted_ = min_idle_;
  kick_locked();
  const auto until = add_sat(steady_ns(), cfg_.acquire_timeout);
  for (auto now = steady_ns(); now < until; now = steady_ns()) {
    if (live_ - creating_ >= min_idle_ || create_failures_ != 0) return;
    ready_cv_.wait_for(lk, sleep_span(now, until));
  }
}

// One factory call into a free slot. Lock held on entry and exit; released around the call.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::create_one_locked(std::unique_lock<std::mutex>& lk) -> bool {
  if (free_slots_.empty()) return false;
  slot_type& s = table_[free_slots_.back()];
  free_slots_.pop_back();
  slot_table<R>::begin_create(s);
  ++live_;
  ++creating_;
  const auto started = steady_ns();
  creation_starts_.push_back(started);  // reserved to create_concurrency: no allocation
  const bool probe = breaker_.on_start(live_ > creating_ + 1);  // +1: this one
  const auto generation = table_.control().load().generation();
  std::exception_ptr error;
  run_user_code_locked(lk, [&] {
    try {
      s.resource.emplace(invoke_create(factory_, s.origin));
    } catch (...) {
      error = std::current_exception();
    }
  });
  --creating_;
  creation_starts_.erase(std::find(creation_starts_.begin(), creation_starts_.end(), started));
  ready_cv_.notify_all();  // wait_ready() and the constructor count what exists
  const auto now = clock_.now();
  if (error) {
    drop_evict_check_locked(s);
    slot_table<R>::release_empty(s);
    free_slots_.push_back(s.index);
    --live_;
    on_create_failed_locked(error, now, probe);
    emit_unlocked(lk, [&] {
      pool_event e;
      e.kind = event_kind::create_failed;
      e.error = error;
      const auto text = describe_exception(error);
      e.message = text;
      emit(e);
    });
    return false;
  }
  ++created_;
  // Made: owned by us as reserved, no longer creating, so that a snapshot taken while the lock
  // is released below (evict_if predicates, the event) balances created - destroyed against
  // total - creating.
  s.state.store(slot_state::reserved, std::memory_order_relaxed);
  const auto took = steady_ns() - started;
  create_hist_.buckets[wait_histogram::bucket_of(
      std::chrono::duration_cast<std::chrono::microseconds>(ns(took)))] += 1;
  create_time_avg_ = create_time_avg_ == 0 ? took : (create_time_avg_ * 7 + took) / 8;
  breaker_.on_success();
  last_error_ = nullptr;
  last_error_text_.clear();
  s.uses = 0;
  s.timed_tick = std::numeric_limits<std::int64_t>::min();  // its first hold is timed
  s.generation = generation;
  s.must_validate = false;
  s.last_checked.store(now, std::memory_order_relaxed);
  s.last_used.store(now, std::memory_order_relaxed);
  s.expires_at.store(lifetime_deadline(now), std::memory_order_relaxed);
  const bool went_idle = queue_.empty();
  const auto dropped = make_available_locked(s, true, lk);
  if (!dropped && went_idle && extra_wanted_ > 0) --extra_wanted_;
  emit_unlocked(lk, [&] {
    pool_event e;
    e.kind = event_kind::created;
    emit(e);
  });
  if (dropped) {
    lk.unlock();
    destroy_reserved(s, *dropped);
    lk.lock();
  }
  return true;
}

template <class F, class V, class S, class Clock>
template <class Fn>
void pool_core<F, V, S, Clock>::emit_unlocked(std::unique_lock<std::mutex>& lk, Fn&& f) {
  if (!opts_.on_event) return;
  run_user_code_locked(lk, std::forward<Fn>(f));
}

// A new or checked resource (its slot reserved by the caller) goes to the oldest waiter, or
// idle. If it must be destroyed instead (an evict_if() predicate picks it, stale_reason: the
// pool closed, an eviction, its lifetime; or it is surplus to a lowered max_size), returns
// why, the slot still reserved. May release the lock to run evict_if() predicates.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::make_available_locked(slot_type& s, bool fresh,
                                                      std::unique_lock<std::mutex>& lk) noexcept
    -> std::optional<destroy_reason> {
  if (apply_evict_checks_locked(s, lk)) return destroy_reason::evicted;
  const auto now = coarse_now_.load(std::memory_order_relaxed);
  if (auto why = stale_reason(s, table_.control().load(), now)) return why;
  if (take_surplus_locked()) return destroy_reason::resized;  // the limit was lowered meanwhile
  if (waiter* w = queue_.front(); w != nullptr && !paused_) {
    grant_locked(*w, s, fresh);
    return std::nullopt;
  }
  table_.make_idle(s);  // nobody queued (P2), or paused (waiters do not look): nobody to wake
  return std::nullopt;
}

template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::lifetime_deadline(std::int64_t now) -> std::int64_t {
  if (cfg_.max_lifetime == never_ns) return never_ns;
  const auto life = cfg_.max_lifetime;
  // Up to 2.5% earlier, so resources created together do not all expire together.
  const auto jitter = static_cast<std::int64_t>(
      std::uniform_real_distribution<double>(0.0, 0.025)(rng_) * static_cast<double>(life));
  return add_sat(now, life - jitter);
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::on_create_failed_locked(const std::exception_ptr& error, std::int64_t now, bool probe) {
  ++create_failures_;
  last_error_ = error;
  last_error_text_ = describe_exception(error);
  breaker_.on_failure(now, std::uniform_real_distribution<double>(0.5, 1.0)(rng_), probe);
  // Known down, and nothing alive or on its way could serve the queue: tell the waiters now
  // rather than let them sit out their timeouts.
  if (breaker_.open() && live_ == 0)
    fail_all_waiters_locked(errc::create_failed, "creating a resource failed", error);
  if (breaker_.open()) housekeeper_cv_.notify_all();  // it wakes us when the probe is due
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::request_spare() {
  std::lock_guard lk(mutex_);
  if (stopping_) return;
  ++unmet_demand_;  // a caller was refused (try_acquire, acquire(0)): demand for the limit
  extra_wanted_ = std::max<std::size_t>(extra_wanted_, 1);
  kick_locked();
}

}  // namespace detail
RESPOOL_NAMESPACE_END
