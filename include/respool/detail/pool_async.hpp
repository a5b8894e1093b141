#pragma once
// Asynchronous waiting: async_acquire() and the coroutine awaitable wait in the same queue as
// blocked threads, under the same admission, order, deadlines and messages, but cost a record,
// not a thread. Part of pool_core (its member functions, defined here to be read on their own);
// invariants P1-P6 are at the top of pool_core.hpp.
//
// How an asynchronous waiter is served:
//  A1. It never scans: every resource it gets is handed to it (P4 counts it as taking
//      hand-offs), when it joins (what is idle then), by a return, by a creation, or by
//      resume(). A lone asynchronous waiter at the front is handed what is idle when P3 would
//      wake a thread.
//  A2. Served, failed (closed, backend down), cancelled (its stop token) or timed out (the
//      timer heap, expired by the housekeeper), it leaves the queue and goes on the delivery
//      list, all under mutex_, so exactly one of them happens, once.
//  A3. Its completion runs with no lock held, on the thread that queued the delivery when that
//      thread has a delivery_scope armed (a return, a worker's creation, a cancel, close()),
//      else on a worker (the housekeeper never runs user code). A completion that returns a
//      lease or asks again queues deliveries that the loop already running on this thread
//      delivers after it: the stack does not grow with the number of waiters served. A loop
//      runs at most delivery_batch completions, then leaves the rest to a worker, so a chain of
//      completions that keep asking again cannot hold a returning thread for good.
//  A4. A resource handed to it is checked (validated if due) by whoever delivers it, as a
//      blocked thread checks its own; one that fails puts the waiter back at its place (Q2).
#include "pool_core.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::async_acquire(async_waiter& w, std::int64_t timeout, const std::stop_token* stop) {
  failure_slot fail;
  if (stop != nullptr && stop->stop_requested()) {
    {
      std::lock_guard lk(mutex_);
      ++cancelled_;
      fail_locked(&fail, errc::cancelled, "acquire cancelled: its stop token was triggered");
    }
    return complete_at_once(w, fail);
  }
  // At once, as acquire() would: an idle resource, checked here.
  std::int64_t deadline = 0;
  bool look = true;
  while (look && (!cfg_.strict_fifo() || table_.control().load().waiters() == 0)) {
    slot_type* s = claim();
    if (s == nullptr) break;
    switch (borrow_check(*s, deadline, timeout, nullptr)) {
      case borrow::ok: return w.complete(w, grant(*s, w.where), nullptr);
      case borrow::too_late:
        timed_out(&fail, timeout, "; no time left to validate");
        return complete_at_once(w, fail);
      case borrow::retired:
        if (deadline != 0 && clock_.now() > deadline) {
          timed_out(&fail, timeout, "; idle resources kept failing validation");
          return complete_at_once(w, fail);
        }
        break;
      case borrow::paused: look = false; break;
    }
  }
  if (timeout == 0) {
    refuse_at_once(&fail);
    return complete_at_once(w, fail);
  }
  const auto now = clock_.now();
  if (deadline == 0) deadline = add_sat(now, timeout);
  w.timeout = timeout;
  // Registered before it is queued: from then on another thread may complete it. A stop
  // requested meanwhile only marks it (it is not queued yet); the check below sees the mark.
  if (stop != nullptr) w.stop.emplace(*stop, async_stop{this, &w});
  {
    delivery_scope scope(*this, true);  // served as it joins: delivered before we return
    std::lock_guard lk(mutex_);
    coarse_now_.store(now, std::memory_order_relaxed);
    if (w.cancelled) {
      ++cancelled_;
      fail_locked(&fail, errc::cancelled, "acquire cancelled: its stop token was triggered");
    } else if (closed()) {
      fail_locked(&fail, errc::closed, "the pool is closed");
    } else if (admit_locked(w, now, deadline, &fail)) {
      w.queued_at = now;
      w.deadline = deadline;
      if (deadline == never_ns || timers_.push(w)) {
        join_queue_locked(w, deadline);
        // The housekeeper sleeps until the earliest deadline: this may be it.
        if (timers_.top() == &w) housekeeper_cv_.notify_all();
        return;
      }
      fail_locked(&fail, errc::exhausted, "no memory to queue the asynchronous acquire");
    }
  }
  complete_at_once(w, fail);
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::complete_at_once(async_waiter& w, failure_slot& failure) noexcept {
  if (!failure) failure = acquire_failure{errc::timeout, "respool: acquire failed", nullptr};
  w.complete(w, lease<R>{}, &*failure);
}

// A1: what is idle now, for a waiter that cannot look. A scan that restored a mark another
// scanner may have missed (slot_table S4) looks once more, then does the returner's half of P3
// for the blocked threads.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::serve_async_from_idle_locked(async_waiter& w) noexcept {
  if (paused_ || closed()) return;
  typename slot_table<R>::scan_notes notes;
  for (int look = 0; look < 2; ++look) {
    if (slot_type* s = table_.claim(hint(), notes)) return grant_locked(w, *s, false);
    if (!notes.republished) return;
    notes.republished = false;
  }
  wake_seq_.fetch_add(1, std::memory_order_seq_cst);
  if (activity_.load(std::memory_order_relaxed) != 0) return;
  if (waiter* b = queue_.find_first([](const waiter& x) { return !x.async; })) {
    b->notified = true;
    activity_.fetch_add(one_woken, std::memory_order_seq_cst);
    b->wake(*b);
  }
}

// A2, A3: on the delivery list; run by this thread's armed scope or delivery loop, else by a
// worker.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::push_delivery_locked(async_waiter& w) noexcept {
  deliveries_.push_back(w);
  const bool first = deliveries_waiting_.fetch_add(1, std::memory_order_relaxed) == 0;
  if (first && tls_drain_armed != this && tls_delivering_for != this) post_locked(deliver_job());
}

// Runs every queued completion (A3). A completion may destroy the pool's handle: the core is
// pinned until the loop ends (P5).
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::deliver_pending() noexcept {
  if (deliveries_waiting_.load(std::memory_order_relaxed) == 0 || tls_delivering_for == this) return;
  const void* outer = std::exchange(tls_delivering_for, this);
  refs_.fetch_add(1, std::memory_order_relaxed);
  for (std::size_t delivered = 0;; ++delivered) {
    test_hooks::fire(test_hooks::point::before_delivery);
    std::unique_lock lk(mutex_);
    // A thread that only returned a lease must not be kept: completions that keep asking again
    // (each served by the one before) would hold it for as long as they go on. After a batch the
    // rest go to a worker, which does the same.
    if (delivered == delivery_batch) {
      if (!deliveries_.empty()) post_locked(deliver_job());
      break;
    }
    async_waiter* w = deliveries_.pop_front();
    if (w == nullptr) break;
    deliveries_waiting_.fetch_sub(1, std::memory_order_relaxed);
    slot_type* s = std::exchange(w->granted, nullptr);
    const bool fresh = std::exchange(w->fresh, false);
    failure_slot failure = std::move(w->failure);
    w->failure.reset();
    const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(
        ns(std::max<std::int64_t>(0, clock_.now() - w->queued_at)));
    wait_hist_.buckets[wait_histogram::bucket_of(waited)] += 1;
    wait_max_ = std::max(wait_max_, waited);
    if (s != nullptr) {
      ++slow_acquired_;
      failure.reset();  // failed just as it was served: it has one
    } else if (failure && failure->code == errc::cancelled) {
      ++cancelled_;
    }
    lk.unlock();
    deliver_one(*w, s, fresh, failure);
  }
  tls_delivering_for = outer;
  unref();
}

// A4: check what it was handed, then complete it (or put it back at its place).
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::deliver_one(async_waiter& w, slot_type* s, bool fresh, failure_slot& failure) noexcept {
  if (s != nullptr) {
    std::int64_t deadline = w.deadline;
    switch (fresh ? borrow::ok : borrow_check(*s, deadline, w.timeout, nullptr)) {
      case borrow::ok: return w.complete(w, grant(*s, w.where), nullptr);
      case borrow::too_late: timed_out(&failure, w.timeout, "; no time left to validate"); break;
      case borrow::retired:
      case borrow::paused: return requeue_async(w);
    }
  }
  complete_at_once(w, failure);
}

// What it was handed failed its check (or the pool is paused): back in the queue at its place
// (Q2) until its deadline.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::requeue_async(async_waiter& w) noexcept {
  failure_slot fail;
  bool late = false;
  {
    std::lock_guard lk(mutex_);
    if (closed()) {
      fail_locked(&fail, errc::closed, "the pool is closed");
    } else if (clock_.now() >= w.deadline) {
      late = true;
    } else if (w.deadline == never_ns || timers_.push(w)) {
      join_queue_locked(w, w.deadline);  // delivered by the loop running on this thread (A3)
      return;
    } else {
      fail_locked(&fail, errc::exhausted, "no memory to queue the asynchronous acquire");
    }
  }
  if (late) timed_out(&fail, w.timeout, "; idle resources kept failing validation");
  complete_at_once(w, fail);
}

// The stop callback (any thread): a waiter still queued leaves it, cancelled, and is delivered
// here; one served already keeps what it got.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::cancel_async(async_waiter& w) noexcept {
  delivery_scope scope(*this, true);
  std::lock_guard lk(mutex_);
  w.cancelled = true;
  if (!w.queued) return;  // not queued yet (async_acquire checks the mark) or served already
  leave_queue_locked(w);
  w.failure = make_failure_locked(errc::cancelled,
                                  "acquire cancelled: its stop token was triggered", nullptr);
  push_delivery_locked(w);
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::abandon_async(async_waiter& w) noexcept {
  {
    delivery_scope scope(*this, true);  // the resource passed on may serve another
    std::unique_lock lk(mutex_);
    if (w.queued) {
      leave_queue_locked(w);
    } else if (w.pending) {
      deliveries_.remove(w);
      deliveries_waiting_.fetch_sub(1, std::memory_order_relaxed);
      w.failure.reset();
      if (slot_type* s = std::exchange(w.granted, nullptr)) pass_on_locked(*s, lk);
    }
  }
  w.stop.reset();  // no lock held: it may wait for a stop callback running elsewhere
}

// The housekeeper (or run_maintenance) at `now`: every asynchronous waiter past its deadline
// times out, in deadline order, with the message a blocked thread would get.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::expire_async_locked(std::int64_t now) noexcept {
  while (async_waiter* w = timers_.top()) {
    if (w->deadline > now) return;
    leave_queue_locked(*w);
    ++timeouts_;
    try {
      w->failure = make_failure_locked(errc::timeout,
                                       "timed out after " + std::to_string(w->timeout / 1'000'000) +
                                           " ms waiting for a resource",
                                       nullptr);
      post_event_locked(event_kind::acquire_timeout, w->failure->message);
    } catch (...) {  // no memory for the text: the code alone
      w->failure.emplace();
      w->failure->code = errc::timeout;
    }
    push_delivery_locked(*w);
  }
}

template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::next_async_deadline_locked() const noexcept -> std::int64_t {
  const async_waiter* w = timers_.top();
  return w == nullptr ? never_ns : w->deadline;
}

// A callback's record: async_acquire(timeout, handler) allocates one, its completion frees it
// after calling the handler. A handler that throws is reported (event_kind::handler_threw) and
// otherwise ignored: it runs on whatever thread served it, which has no one to throw to.
template <class Core, class Handler>
struct callback_request final : Core::async_waiter {
  using R = typename Core::R;
  Core* core;
  Handler handler;

  callback_request(Core* c, Handler h, const std::source_location& site)
      : core(c), handler(std::move(h)) {
    this->where = site;
    this->complete = &finish;
  }

  static void finish(typename Core::async_waiter& w, lease<R>&& l, acquire_failure* failure) noexcept {
    std::unique_ptr<callback_request> self(static_cast<callback_request*>(&w));
    self->stop.reset();
    const std::error_code ec = failure != nullptr ? make_error_code(failure->code) : std::error_code{};
    try {
      self->handler(ec, std::move(l));
    } catch (...) {
      self->core->report_handler_threw(std::current_exception());
    }
  }
};

}  // namespace detail
RESPOOL_NAMESPACE_END
