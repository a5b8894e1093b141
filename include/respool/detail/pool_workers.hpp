#pragma once
// The pool's background work: the job queue and the worker threads that run every piece of
// user code the pool starts itself (factory calls, keepalive pings, destructors, events).
// Part of pool_core (its member functions, defined here to be read on their own); invariants
// P1-P5 are at the top of pool_core.hpp.
#include "pool_core.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

// Queues user code for a worker. False if the queue cannot take it (memory): the caller then
// runs it itself.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::post_locked(job&& j) noexcept -> bool {
  try {
    jobs_.push_back(std::move(j));
  } catch (...) {
    return false;
  }
  kick_locked();
  return true;
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::post_event_locked(event_kind kind, const std::string& text) noexcept {
  if (!opts_.on_event) return;
  try {
    job j = event_job(kind);
    j.text = text;
    post_locked(std::move(j));
  } catch (...) {  // no memory for the text: the event is dropped, the pool goes on
  }
}

// Jobs that may run now: at most job_lanes at once, so a burst of retirements does not start
// a thread each, and a few hung destructors or pings cannot stop creation (its own lanes).
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::jobs_runnable_locked() const noexcept -> std::size_t {
  const std::size_t free_lanes = job_lanes > jobs_running_ ? job_lanes - jobs_running_ : 0;
  return std::min(jobs_.size(), free_lanes);
}

// How many creations may begin now (P1, the breaker).
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::creations_due_locked() const noexcept -> std::size_t {
  // Full, or every lane busy: the common case while callers wait, settled without a clock.
  // Paused: nothing new is made (a creation in flight finishes).
  if (stopping_ || paused_ || live_ >= limit_ || creating_ >= create_lanes_) return 0;
  const auto n = creations_to_start(limit_, live_, creating_, stalled_creations_locked(),
                                    create_lanes_, queue_.size(), extra_wanted_);
  return n == 0 ? 0 : breaker_.admit(clock_.now(), n, live_ > creating_);
}

// Creations in flight for much longer than usual: a connect that hangs. The waiters they were
// meant for may have another one started (within create_concurrency).
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::stalled_creations_locked() const noexcept -> std::size_t {
  const auto limit = steady_ns() - stall_after(create_time_avg_, stall_floor);
  return static_cast<std::size_t>(std::count_if(
      creation_starts_.begin(), creation_starts_.end(), [&](std::int64_t t) { return t <= limit; }));
}

// When the next creation in flight will count as stalled (steady time), or never_ns.
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::next_stall_locked() const noexcept -> std::int64_t {
  const auto after = stall_after(create_time_avg_, stall_floor);
  std::int64_t next = never_ns;
  const auto now = steady_ns();
  for (auto t : creation_starts_)
    if (t + after > now) next = std::min(next, t + after);
  return next;
}

// There may be work: wake idle workers, or start new ones, one per piece of work.
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::kick_locked() noexcept {
  const std::size_t work = jobs_runnable_locked() + creations_due_locked();
  if (work == 0) return;
  if (workers_idle_ > 0) workers_cv_.notify_all();
  const std::size_t cap = job_lanes + create_lanes_;
  for (std::size_t have = workers_idle_ + workers_starting_; have < work && workers_alive_ < cap;
       ++have) {
    refs_.fetch_add(1, std::memory_order_relaxed);  // the worker's (P5)
    if (!start_worker()) {  // no thread now; the next kick tries again
      refs_.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    ++workers_alive_;
    ++workers_starting_;
  }
}

// A worker on a thread of its own, or on one shared with other pools, where it does not linger
// (the shared thread does, for any pool's next worker).
template <class F, class V, class S, class Clock>
auto pool_core<F, V, S, Clock>::start_worker() noexcept -> bool {
  if (shared_threads_) return shared_threads_->run(move_only_task([this] { worker_main(); }));
  try {
    std::thread([this] { worker_main(); }).detach();
  } catch (...) {
    return false;
  }
  return true;
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::worker_main() noexcept {
  tls_worker_of = this;
  const void* outer = std::exchange(tls_drain_armed, this);  // a worker delivers what it serves
  std::unique_lock lk(mutex_);
  --workers_starting_;
  for (;;) {
    if (deliveries_waiting_.load(std::memory_order_relaxed) != 0) {
      run_user_code_locked(lk, [&] { deliver_pending(); });
      continue;
    }
    if (jobs_runnable_locked() > 0) {
      job j = std::move(jobs_.front());
      jobs_.pop_front();
      ++jobs_running_;
      run_user_code_locked(lk, [&] { run_job(j); });
      --jobs_running_;
      continue;
    }
    if (creations_due_locked() > 0) {
      create_one_locked(lk);
      continue;
    }
    if (stopping_ || shared_threads_) break;
    ++workers_idle_;
    const auto woke = workers_cv_.wait_for(lk, worker_linger);
    --workers_idle_;
    if (woke == std::cv_status::timeout && jobs_runnable_locked() == 0 &&
        creations_due_locked() == 0)
      break;
  }
  --workers_alive_;
  quiet_cv_.notify_all();
  lk.unlock();
  tls_drain_armed = outer;
  tls_worker_of = nullptr;  // a shared thread serves other pools next
  unref();
}

// Runs `f` (user code) with the lock released, counted so close() does not wait on it.
template <class F, class V, class S, class Clock>
template <class Fn>
void pool_core<F, V, S, Clock>::run_user_code_locked(std::unique_lock<std::mutex>& lk, Fn&& f) {
  ++workers_in_user_code_;
  lk.unlock();
  f();
  lk.lock();
  --workers_in_user_code_;
  if (stopping_) quiet_cv_.notify_all();
}

template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::run_job(job& j) noexcept {
  switch (j.kind) {
    case job::destroy: destroy_reserved(*j.s, j.why); break;
    case job::check: finish_keepalive(*j.s); break;
    case job::deliver: deliver_pending(); break;
    case job::event: {
      pool_event e;
      e.kind = j.what;
      e.where = j.where;
      e.held = j.held;
      e.limit = j.limit;
      e.previous_limit = j.previous_limit;
      e.message = j.text;
      emit(e);
      break;
    }
  }
}

// Runs every queued job on this thread (run_maintenance, close).
template <class F, class V, class S, class Clock>
void pool_core<F, V, S, Clock>::run_pending_jobs() {
  std::unique_lock lk(mutex_);
  while (!jobs_.empty()) {
    job j = std::move(jobs_.front());
    jobs_.pop_front();
    lk.unlock();
    run_job(j);
    lk.lock();
  }
}

}  // namespace detail
RESPOOL_NAMESPACE_END
