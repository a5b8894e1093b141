#pragma once
// Waiting for a resource: admission (shedding, failing fast), the queue's wait with its
// scan, spin and sleep, giving up, and the error messages. Part of pool_core (its member
// functions, defined here to be read on their own); invariants P1-P5 are at the top of
// pool_core.hpp.
#include "pool_core.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

// Nothing idle at the first look, or it failed its check: try again, then wait. The waiter
// record (with its condition variable) exists only here, off the fast path.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::acquire_slow(std::int64_t timeout, std::int64_t deadline, const std::source_location& where, failure_slot* fail, const std::stop_token* stop, bool look) -> lease<R> {
  if (fail == nullptr) {  // a throwing acquire
    failure_slot mine;
    auto l = acquire_slow(timeout, deadline, where, &mine, stop, look);
    if (!l) throw_failure(mine);
    return l;
  }
  blocking_waiter w;
  // Registered before any lock is taken (a stop already requested runs it here and now), and
  // unregistered on the way out with no lock held: it takes mutex_ itself.
  struct on_stop {
    pool_core* core;
    waiter* w;
    void operator()() const noexcept { core->cancel_waiter(*w); }
  };
  std::optional<std::stop_callback<on_stop>> cancel;
  if (stop != nullptr) cancel.emplace(*stop, on_stop{this, &w});
  for (;;) {
    slot_type* s = nullptr;
    bool fresh = false;
    // Once it has waited, a caller takes what comes through the queue (a waiter whose
    // hand-off failed its check is queued again already, Q2, and may be served meanwhile).
    if (look && w.ticket == 0 && (!cfg_.strict_fifo() || table_.control().load().waiters() == 0))
      s = claim();
    look = true;
    if (s == nullptr) {
      if (deadline == 0) deadline = add_sat(clock_.now(), timeout);
      if (timeout == 0) return refuse_at_once(fail);
      s = wait_for_slot(w, deadline, timeout, fail, fresh);
      if (s == nullptr) {
        if (*fail) (*fail)->remaining = std::max<std::int64_t>(0, deadline - clock_.now());
        return {};
      }
    }
    test_hooks::fire(test_hooks::point::before_borrow);
    if (fresh) return grant(*s, where);
    switch (borrow_check(*s, deadline, timeout, &w)) {
      case borrow::ok: return grant(*s, where);
      case borrow::too_late:
        abandon(w);
        return timed_out(fail, timeout, "; no time left to validate");
      case borrow::retired: break;
      case borrow::paused:  // returned; wait (in the queue, at its place if it had one)
        look = false;
        continue;
    }
    // It failed validation (or expired) and is gone. Validators that fail slowly must not
    // stretch the caller's timeout: check it before trying again.
    const auto t = clock_.now();
    if (deadline == 0) deadline = add_sat(t, timeout);
    if (t > deadline) {
      abandon(w);
      return timed_out(fail, timeout, "; idle resources kept failing validation");
    }
  }
}

// Shed, fail fast, or queue until a resource is handed over or found idle, the deadline
// passes, or the pool gives up on us (closed, backend down). `fresh`: no borrow check needed.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::wait_for_slot(blocking_waiter& w, std::int64_t deadline, std::int64_t timeout, failure_slot* fail, bool& fresh) -> slot_type* {
  std::unique_lock lk(mutex_);
  const auto now = clock_.now();
  coarse_now_.store(now, std::memory_order_relaxed);
  if (w.granted != nullptr || w.failure || w.queued) {
    // Queued again by keep_place, and maybe served or failed since: wait on as we are.
  } else if (w.cancelled) {
    ++cancelled_;
    return fail_locked(fail, errc::cancelled, "acquire cancelled: its stop token was triggered");
  } else if (closed()) {
    return fail_locked(fail, errc::closed, "the pool is closed");
  } else {
    if (w.ticket == 0 && !admit_locked(w, now, deadline, fail)) return nullptr;
    join_queue_locked(w, deadline);
  }
  const auto started = now;
  slot_type* s = wait_queued_locked(w, lk);

  const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(
      ns(std::max<std::int64_t>(0, clock_.now() - started)));
  wait_hist_.buckets[wait_histogram::bucket_of(waited)] += 1;
  wait_max_ = std::max(wait_max_, waited);
  if (s != nullptr) {
    ++slow_acquired_;
    fresh = w.fresh;
    w.fresh = false;
    w.failure.reset();  // failed (say, the backend went down) just as it found one: it has one
    return s;
  }
  if (w.failure) {
    // Counted here, not by the stop callback: a waiter it raced may still have been served.
    if (w.failure->code == errc::cancelled) ++cancelled_;
    if (fail != nullptr) *fail = std::move(*w.failure);
    w.failure.reset();
    return nullptr;
  }
  lk.unlock();
  timed_out(fail, timeout, "");
  return nullptr;
}

// A first arrival: shed beyond max_waiters, or fail fast while the backend is known down and
// nothing alive could serve it. Starts its fairness clock.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::admit_locked(waiter& w, std::int64_t now, std::int64_t deadline, failure_slot* fail) -> bool {
  if (queue_.size() >= cfg_.max_waiters) {
    ++shed_;
    fail_locked(fail, errc::exhausted,
                "load shed: " + std::to_string(queue_.size()) +
                    " callers already wait (max_waiters " + std::to_string(cfg_.max_waiters) +
                    ")");
    return false;
  }
  if (live_ == creating_ && breaker_.fails_fast(now)) {
    ++fast_failures_;
    fail_locked(fail, errc::backend_unavailable,
                "backend unavailable: creating a resource failed " +
                    std::to_string(breaker_.consecutive_failures()) +
                    " times in a row and nothing is idle or in use; failing fast until the "
                    "next attempt");
    return false;
  }
  if (cfg_.shed_hopeless && hopeless_locked(now, deadline, fail)) return false;
  w.since = steady_ns();
  return true;
}

// shed_hopeless: the caller's estimated wait, its place in the queue times the recent mean
// hold over the limit, already exceeds what is left of its timeout. Needs a mean: until a hold
// has been timed, nobody is refused.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::hopeless_locked(std::int64_t now, std::int64_t deadline, failure_slot* fail) -> bool {
  const auto hold = hold_avg_ns_.load(std::memory_order_relaxed);
  if (hold == 0 || deadline == never_ns) return false;
  const auto place = queue_.size() + 1;
  const double estimate = static_cast<double>(hold) * static_cast<double>(place) /
                          static_cast<double>(limit_);
  const auto left = deadline - now;
  if (estimate <= static_cast<double>(left)) return false;
  ++shed_;
  const auto ms = [](double v) { return std::to_string(static_cast<long long>(v / 1e6)); };
  fail_locked(fail, errc::exhausted,
              "shed as hopeless: estimated wait " + ms(estimate) + " ms (place " +
                  std::to_string(place) + " in the queue x mean hold " +
                  ms(static_cast<double>(hold)) +
                  (adaptive_ ? " ms / adaptive limit " : " ms / max_size ") + std::to_string(limit_) +
                  ") exceeds the " + ms(static_cast<double>(left)) + " ms left of its timeout");
  return true;
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::join_queue_locked(waiter& w, std::int64_t deadline) noexcept {
  w.deadline = deadline;
  w.served.store(false, std::memory_order_relaxed);
  w.granted = nullptr;
  w.failure.reset();
  w.notified = false;
  queue_.push(w);
  ++unmet_demand_;
  // Counted before it is announced: a return that sees the waiter sees that it is asynchronous
  // (and owes it a hand-off, handoff_maybe_due).
  if (w.async) async_queued_.fetch_add(1, std::memory_order_seq_cst);
  table_.control().add_waiter();  // announce, then scan (S4)
  if (!w.async) activity_.fetch_add(one_running, std::memory_order_seq_cst);  // it runs (P3)
  if (queue_.front() == &w) update_fair_due_locked();
  kick_locked();
  // An asynchronous waiter's scan: it is announced, so a return from now on sees it.
  if (w.async) serve_async_from_idle_locked(static_cast<async_waiter&>(w));
}

// Q2: back to its place, before the resource it was handed is retired.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::keep_place(waiter& w) {
  std::lock_guard lk(mutex_);
  keep_place_locked(w);
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::keep_place_locked(waiter& w) noexcept {
  if (!w.queued && w.granted == nullptr && !w.failure && !closed()) join_queue_locked(w, w.deadline);
}

// Leaves for good (timed out outside the queue's own wait): out of the queue, passing on a
// notification or a hand-off that reached it meanwhile (P3).
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::abandon(waiter& w) noexcept {
  if (w.ticket == 0) return;  // never queued
  delivery_scope scope(*this);
  std::unique_lock lk(mutex_);
  leave_queue_locked(w);
  if (slot_type* g = std::exchange(w.granted, nullptr)) pass_on_locked(*g, lk);
}

// Queued and announced: scan, spin briefly, park; until served, failed or timed out (then
// null with the waiter out of the queue and, on timeout, no failure set). Lock held on entry
// and exit.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::wait_queued_locked(blocking_waiter& w, std::unique_lock<std::mutex>& lk) -> slot_type* {
  bool spin = !cfg_.strict_fifo() && spinners_.load(std::memory_order_relaxed) < cfg_.max_spinners;
  for (;;) {
    if (w.granted != nullptr) return std::exchange(w.granted, nullptr);
    if (w.failure) return nullptr;
    if (clock_.now() >= w.deadline) {
      leave_queue_locked(w);
      return nullptr;
    }
    if (paused_) {  // nothing to look at: sleep until resume() serves us, or the deadline
      w.notified = false;
      activity_.fetch_sub(one_running, std::memory_order_seq_cst);
      sleep_locked(w, lk, sleep_span(clock_.now(), w.deadline));
      continue;
    }
    w.notified = false;
    w.seen = wake_seq_.load(std::memory_order_seq_cst);
    if (spin) {
      w.spinning = true;
      spinners_.fetch_add(1, std::memory_order_relaxed);
    }
    lk.unlock();
    typename slot_table<R>::scan_notes notes;
    slot_type* s = scan_and_spin(w, spin, notes);
    lk.lock();
    if (spin) {
      w.spinning = false;
      spinners_.fetch_sub(1, std::memory_order_relaxed);
      spin = false;  // once per wait: a second spin rarely pays on a busy machine
    }
    if (s != nullptr) {
      if (w.granted != nullptr) {  // a hand-off raced our claim: keep it, pass ours on
        pass_on_locked(*s, lk, true);
        return std::exchange(w.granted, nullptr);
      }
      leave_queue_locked(w);
      return s;
    }
    if (w.granted != nullptr || w.failure || w.notified || notes.saw_returning) continue;
    test_hooks::fire(test_hooks::point::before_park);
    if (w.granted != nullptr || w.failure || w.notified) continue;
    // P3: stop counting as awake, then look whether a slot went idle since the scan began
    // (pairs with a lock-free return's bump of wake_seq_ and its read of activity_).
    activity_.fetch_sub(one_running, std::memory_order_seq_cst);
    if (w.seen != wake_seq_.load(std::memory_order_seq_cst)) {
      activity_.fetch_add(one_running, std::memory_order_seq_cst);
      continue;
    }
    kick_locked();  // a creation meant for us may have stalled meanwhile
    auto span = sleep_span(clock_.now(), w.deadline);
    if (!creation_starts_.empty())  // wake when one stalls, to start another for us
      span = std::min(span, sleep_span(steady_ns(), next_stall_locked()) + ns(1'000'000));
    sleep_locked(w, lk, span);
  }
}

// Parks a waiter that has stopped counting as running (P3), then counts it as running again
// (not at all once out of the queue).
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::sleep_locked(blocking_waiter& w, std::unique_lock<std::mutex>& lk, std::chrono::nanoseconds span) {
  w.parked = true;
  w.cv.wait_for(lk, span);
  w.parked = false;
  if (w.queued)
    activity_.fetch_add(one_running - (w.notified ? one_woken : 0), std::memory_order_seq_cst);
}

// Lock not held. Scans for an idle slot (also after each hand-off check while spinning).
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::scan_and_spin(waiter& w, bool spin, typename slot_table<R>::scan_notes& notes) noexcept -> slot_type* {
  test_hooks::fire(test_hooks::point::before_scan);
  if (w.served.load(std::memory_order_acquire)) return nullptr;
  if (slot_type* s = table_.claim(hint(), notes)) return s;
  test_hooks::fire(test_hooks::point::after_failed_scan);
  if (notes.republished) {
    notes.republished = false;
    wake_if_waiting();
  }
  if (!spin) return nullptr;
  const auto until = steady_ns() + spin_ns;
  for (unsigned i = 1;; ++i) {
    if (w.served.load(std::memory_order_acquire)) return nullptr;
    cpu_relax();
    if ((i & 63U) != 0) continue;
    if (steady_ns() >= until || clock_.now() >= w.deadline) return nullptr;
    if (slot_type* s = table_.claim(hint(), notes)) return s;
  }
}

// The stop callback of a cancellable acquire (any thread). A waiter that was served already
// keeps what it got; one in the queue leaves it, failed, and is woken.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::cancel_waiter(waiter& w) noexcept {
  std::lock_guard lk(mutex_);
  w.cancelled = true;
  if (!w.queued) return;  // not queued yet (it checks the flag first) or served already
  leave_queue_locked(w);
  w.failure = make_failure_locked(errc::cancelled,
                                  "acquire cancelled: its stop token was triggered", nullptr);
  w.served.store(true, std::memory_order_release);  // a spinning waiter stops spinning
  w.wake(w);
}

template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::cancelled(failure_slot* fail) -> lease<R> {
  failure_slot mine;
  {
    std::lock_guard lk(mutex_);
    ++cancelled_;
    fail_locked(fail != nullptr ? fail : &mine, errc::cancelled,
                "acquire cancelled: its stop token was triggered");
  }
  if (fail == nullptr) throw_failure(mine);
  return {};
}

template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::refuse_at_once(failure_slot* fail) -> lease<R> {
  request_spare();
  return timed_out(fail, 0, "; acquire(0) does not wait");
}

template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::timed_out(failure_slot* fail, std::int64_t timeout, const char* detail) -> lease<R> {
  const auto ms = timeout / 1'000'000;
  std::unique_lock lk(mutex_);
  ++timeouts_;
  auto f = make_failure_locked(
      errc::timeout,
      "timed out after " + std::to_string(ms) + " ms waiting for a resource" + detail, nullptr);
  post_event_locked(event_kind::acquire_timeout, f.message);
  if (fail != nullptr) {
    *fail = std::move(f);
    return {};
  }
  lk.unlock();
  failure_slot thrown{std::move(f)};
  throw_failure(thrown);
}

template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::fail_locked(failure_slot* fail, errc code, const std::string& why) -> slot_type* {
  if (fail != nullptr) *fail = make_failure_locked(code, why, nullptr);
  return nullptr;
}

// The counts name the pool's state as the caller leaves it: a waiter failing or timing out
// has left the queue already, so `waiters` never counts the caller itself.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::make_failure_locked(errc code, const std::string& why, std::exception_ptr cause, std::size_t waiters_shown) const -> acquire_failure {
  const auto c = counts_locked();
  std::string msg = "respool pool '" + opts_.name + "': " + why + " (total " +
                    std::to_string(c.total()) + ", idle " + std::to_string(c.idle) +
                    ", in use " + std::to_string(c.in_use) + ", waiters " +
                    std::to_string(waiters_shown) + ", creating " + std::to_string(c.creating) +
                    ", max " + std::to_string(max_size_);
  if (limit_ != max_size_) msg += ", adaptive limit " + std::to_string(limit_);
  if (paused_) msg += "; the pool is paused: pause() was called, resume() serves the waiters";
  // Who holds them, for the errors that mean "all of them are out".
  if ((code == errc::timeout || code == errc::exhausted) && c.in_use > 0)
    if (auto who = describe_longest_holders(holders()); !who.empty()) msg += "; " + who;
  if (!last_error_text_.empty()) msg += "; last creation error: " + last_error_text_;
  msg += ")";
  if (!cause && (code == errc::timeout || code == errc::backend_unavailable)) cause = last_error_;
  return {code, std::move(msg), std::move(cause)};
}

template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::make_failure_locked(errc code, const std::string& why, std::exception_ptr cause) const -> acquire_failure {
  return make_failure_locked(code, why, std::move(cause), queue_.size());
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::fail_all_waiters_locked(errc code, const std::string& why, const std::exception_ptr& cause) {
  if (queue_.empty()) return;
  const auto f = make_failure_locked(code, why, cause, 0);  // as each will leave: none waits
  while (waiter* w = queue_.front()) {
    leave_queue_locked(*w);
    w->failure = f;
    w->served.store(true, std::memory_order_release);
    served_locked(*w);
  }
}

template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::counts_locked() const noexcept -> counts {
  counts c;
  for (std::size_t i = 0; i < table_.size(); ++i) {
    switch (slot_table<R>::state_of(table_[i])) {
      case slot_state::idle: ++c.idle; break;
      case slot_state::in_use: ++c.in_use; break;
      case slot_state::creating: ++c.creating; break;
      case slot_state::reserved: ++c.reserved; break;
      default: break;
    }
  }
  return c;
}

}  // namespace detail
RESPOOL_NAMESPACE_END
