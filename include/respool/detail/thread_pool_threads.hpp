#pragma once
// The threads: starting one (and retrying after a failed start), a thread's loop, its idle wait
// with the adaptive spin (spin_policy.hpp), and leaving (joining the thread that left before).
// Member functions of thread_pool, defined here to be read on their own; the invariants T1-T6
// are at the top of thread_pool's private part.
#include "../thread_pool.hpp"

RESPOOL_NAMESPACE_BEGIN

inline auto thread_pool::start_thread(std::unique_lock<std::mutex>& lock, task& t)
    -> std::exception_ptr {
  worker& w = roster_.add();
  w.number = ++threads_started_;
  const bool has_first = static_cast<bool>(t);
  if (has_first) {
    w.slot = std::move(t);
    w.has_task.store(true, std::memory_order_relaxed);  // the thread's start publishes it
    ++active_;
    ++submitted_;
    ++pending_;
  } else {
    w.booting = true;
    ++booting_;
    if (detail::unclaimed(placement_locked(true)) > 0) ++claimed_;
  }
  ++threads_;
  ++starting_;
  largest_ = std::max(largest_, threads_);
  worker_roster::list exited = roster_.take_exited();
  lock.unlock();

  worker_roster::join_all(exited);  // threads that left: joining is quick
  std::thread thread;
  std::exception_ptr failure;
  try {
    auto body = [this, pw = &w] { worker_main(*pw); };
    thread = options_.thread_factory ? options_.thread_factory(std::function<void()>(body))
                                     : std::thread(body);
  } catch (...) {
    failure = std::current_exception();
  }

  lock.lock();
  roster_.retire_all(exited);
  --starting_;
  if (failure) {
    --threads_;
    ++start_failures_;
    ++consecutive_start_failures_;
    if (has_first && w.has_task.exchange(false, std::memory_order_acquire)) {
      t = std::move(w.slot);  // not accepted after all: the caller decides again
      --active_;
      --submitted_;
      --pending_;
    }
    end_boot_locked(w);
    roster_.retire(w);
    if (blocked_ > 0) room_.notify_one();
    retry_at_ = detail::add_sat(now_ns(), detail::start_retry_delay(consecutive_start_failures_));
    arm_retry_locked();
  } else {
    consecutive_start_failures_ = 0;
    w.thread = std::move(thread);
    if (w.exited) roster_.file_exited(w);  // it already left: join it with the others
  }
  if (quiet_waiters_ > 0) quiet_.notify_all();
  return failure;
}

inline void thread_pool::end_boot_locked(worker& w) noexcept {
  if (!w.booting) return;
  w.booting = false;
  --booting_;
  claimed_ = std::min(claimed_, booting_);
}

inline void thread_pool::arm_retry_locked() noexcept {
  if (closed_ || !detail::start_owed(placement_locked(true))) return;
  if (retrier_running_) {
    retry_.notify_one();
    return;
  }
  if (retrier_.joinable()) retrier_.join();  // it left its loop under the mutex: returns at once
  try {
    retrier_ = std::thread([this] { retry_main(); });
    retrier_running_ = true;
  } catch (...) {  // no thread for that either: the next submit or shutdown() starts one
  }
}

inline void thread_pool::retry_main() noexcept {
  const detail::as_pool_thread own(this);  // a factory calling back into the pool is its own
  std::unique_lock lock(mutex_);
  while (!closed_ && detail::start_owed(placement_locked(true))) {
    if (now_ns() < retry_at_) {
      static_cast<void>(wait_until(retry_, lock, retry_at_));
      continue;
    }
    task none;
    try {
      static_cast<void>(start_thread(lock, none));  // sets the next retry_at_ if it failed
    } catch (...) {  // std::bad_alloc for the record: try again later
      const auto delay = detail::start_retry_delay(consecutive_start_failures_ + 1);
      retry_at_ = detail::add_sat(now_ns(), delay);
    }
  }
  retrier_running_ = false;
  if (quiet_waiters_ > 0) quiet_.notify_all();
}

inline auto thread_pool::run(task& t) noexcept -> bool {
  bool threw = false;
  try {
    t();
  } catch (...) {
    threw = true;
    report(std::current_exception());
  }
  t.reset();  // release what the task captured now, not when the next one arrives
  return threw;
}

inline void thread_pool::report(const std::exception_ptr& e) noexcept {
  try {
    if (options_.error_sink) {
      options_.error_sink(e);
      return;
    }
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      std::fprintf(stderr, "respool thread pool '%s': a fire-and-forget task threw: %s\n",
                   options_.name.c_str(), ex.what());
    } catch (...) {
      std::fprintf(stderr, "respool thread pool '%s': a fire-and-forget task threw\n",
                   options_.name.c_str());
    }
  } catch (...) {  // the sink threw: nowhere left to report it
  }
}

inline void thread_pool::finished(bool threw) noexcept {
  --active_;
  ++completed_;
  if (threw) ++failed_;
  if (--pending_ == 0 && quiet_waiters_ > 0) quiet_.notify_all();
}

inline void thread_pool::worker_main(worker& w) noexcept {
  detail::current_thread_pool() = this;
  detail::name_current_thread(options_.name, w.number);
  task t;
  if (w.has_task.exchange(false, std::memory_order_acquire)) t = std::move(w.slot);
  detail::adaptive_spin spin;
  std::unique_lock lock(mutex_, std::defer_lock);
  for (;;) {
    if (t) {
      const bool threw = run(t);
      lock.lock();
      finished(threw);
    } else if (!lock.owns_lock()) {
      lock.lock();
    }
    end_boot_locked(w);
    if (!queue_.empty()) {
      t = take_queued_locked();
      lock.unlock();
      continue;
    }
    if (closed_) {
      begin_leaving_locked();
      break;
    }
    if (!wait_for_task(lock, w, t, spin)) break;  // keep-alive expired: already leaving
    if (t && lock.owns_lock()) lock.unlock();
  }
  leave_locked(lock, w);
  detail::current_thread_pool() = nullptr;
}

inline void thread_pool::begin_leaving_locked() noexcept {
  --threads_;
  ++leaving_;
}

inline void thread_pool::leave_locked(std::unique_lock<std::mutex>& lock, worker& w) noexcept {
  // Until none is left: threads leaving at the same moment file themselves meanwhile.
  for (worker_roster::list exited = roster_.take_exited(); !exited.empty();
       exited = roster_.take_exited()) {
    lock.unlock();
    worker_roster::join_all(exited);
    lock.lock();
    roster_.retire_all(exited);
  }
  --leaving_;
  if (blocked_ > 0) room_.notify_one();  // a thread may be started in its place
  if (w.thread.joinable()) {
    roster_.file_exited(w);
  } else {
    w.exited = true;  // the creator has not stored the handle yet: it files it
  }
  if (quiet_waiters_ > 0) quiet_.notify_all();
}

inline auto thread_pool::wait_for_task(std::unique_lock<std::mutex>& lock, worker& w, task& t,
                                       detail::adaptive_spin& spin) -> bool {
  idle_.push(w);
  if (blocked_ > 0) room_.notify_one();
  const std::int64_t idle_since = now_ns();
  lock.unlock();

  if (spin_for_task(w, spin.budget_ns(), idle_since)) {
    t = std::move(w.slot);
    spin.after_wait(now_ns() - idle_since);
    return true;
  }

  lock.lock();
  auto deadline = detail::add_sat(idle_since, keep_alive_ns_);
  while (!w.has_task.load(std::memory_order_relaxed) && !closed_) {
    w.sleeping = true;
    if (may_time_out()) {
      const bool timed_out = wait_until(w.wake, lock, deadline);
      w.sleeping = false;
      if (timed_out) {
        if (!w.has_task.load(std::memory_order_relaxed) && !closed_ && may_time_out()) {
          idle_.remove(w);
          begin_leaving_locked();
          return false;
        }
        deadline = detail::add_sat(now_ns(), keep_alive_ns_);
      }
    } else {
      // At or below core: nothing to time out for. Threads started later idle after this one
      // and time out themselves, so the pool still shrinks back to core.
      w.wake.wait(lock);
      w.sleeping = false;
      deadline = detail::add_sat(now_ns(), keep_alive_ns_);
    }
  }
  if (w.has_task.exchange(false, std::memory_order_acquire)) {
    t = std::move(w.slot);
    // Handed over while it slept: the gap is up to the hand-over, not up to waking.
    spin.after_wait((w.handed_at > idle_since ? w.handed_at : now_ns()) - idle_since);
  } else if (w.idle) {
    idle_.remove(w);  // closing
  }
  return true;
}

inline auto thread_pool::spin_for_task(worker& w, std::int64_t budget, std::int64_t since) noexcept
    -> bool {
  if (budget <= 0) return false;
  if (spinners_.fetch_add(1, std::memory_order_relaxed) >= max_spinners_) {
    spinners_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  const std::int64_t until = since + budget;
  bool caught = false;
  for (unsigned i = 1;; ++i) {
    if (w.has_task.load(std::memory_order_relaxed) &&
        w.has_task.exchange(false, std::memory_order_acquire)) {
      caught = true;
      break;
    }
    if (closed_flag_.load(std::memory_order_relaxed)) break;
    if (i % 32 == 0 && now_ns() >= until) break;
    cpu_relax();
  }
  spinners_.fetch_sub(1, std::memory_order_relaxed);
  return caught;
}

inline void thread_pool::close(std::unique_lock<std::mutex>&) {
  if (closed_) return;
  closed_ = true;
  closed_flag_.store(true, std::memory_order_relaxed);
  roster_.for_each_live([](worker& w) {
    if (w.sleeping) w.wake.notify_one();
  });
  room_.notify_all();
  retry_.notify_all();
}

RESPOOL_NAMESPACE_END
