#pragma once
// Placing a task: thread_pool::dispatch applies detail::place (thread_placement.hpp) under the
// mutex, hands the task over, queues it or applies the rejection policy, and builds refusals
// outside the mutex. Member functions of thread_pool, defined here to be read on their own; the
// invariants T1-T6 are at the top of thread_pool's private part.
#include "../thread_pool.hpp"

RESPOOL_NAMESPACE_BEGIN

inline auto thread_pool::dispatch(task t, bool throwing) -> outcome {
  std::unique_lock lock(mutex_);
  bool may_start = true;  // false once a start failed for this task
  std::exception_ptr start_error;
  std::int64_t deadline = 0;
  bool waited = false;
  for (;;) {
    if (closed_) {
      ++rejected_.closed;
      return refuse(lock, t, errc::closed, "task refused: the pool is shut down", start_error,
                    throwing);
    }
    const detail::placement decision = detail::place(placement_locked(may_start));
    switch (decision) {
      case detail::placement::run_on_idle: {
        worker* sleeper = hand_to_idle(std::move(t));
        lock.unlock();
        // Woken outside the mutex, so it does not wake only to block on it. Records outlive
        // their threads (worker_roster), so a late notify is at worst spurious.
        if (sleeper != nullptr) sleeper->wake.notify_one();
        return {};
      }
      case detail::placement::wait_for_booting:
        enqueue(std::move(t), true);
        return {};
      case detail::placement::start_for_queue:
      case detail::placement::start_thread: {
        task none;  // start_for_queue: the new thread takes the oldest queued task (T3)
        task& first = decision == detail::placement::start_thread ? t : none;
        if (std::exception_ptr failure = start_thread(lock, first)) {
          may_start = false;
          start_error = std::move(failure);
        }
        if (!t) return {};  // running (or, after a failed start, taken by shutdown_now)
        continue;           // the mutex was released: decide again
      }
      case detail::placement::enqueue:
        enqueue(std::move(t), false);
        if (!may_start) arm_retry_locked();
        return {};
      case detail::placement::reject:
        break;
    }

    switch (options_.rejection) {
      case rejection_policy::abort:
        ++rejected_.aborted;
        return refuse(lock, t, errc::rejected,
                      "task rejected: every thread busy, none may be started, queue full (abort)",
                      start_error, throwing);
      case rejection_policy::discard:
        ++rejected_.discarded;
        return refuse(
            lock, t, errc::rejected,
            "task discarded: every thread busy, none may be started, queue full (discard)",
            start_error, false);
      case rejection_policy::discard_oldest:
        if (detail::unclaimed(placement_locked(may_start)) > 0) {
          task oldest = queue_.pop_front();
          ++rejected_.discarded_oldest;
          --pending_;
          enqueue(std::move(t), false);
          // The oldest task's own start did not fail here: no cause for it.
          refuse(lock, oldest, errc::rejected,
                 "queued task discarded for a newer one (discard_oldest)", nullptr, false);
          return {};
        }
        ++rejected_.discarded;
        return refuse(lock, t, errc::rejected,
                      "task discarded: every thread busy and no queue (discard_oldest)",
                      start_error, false);
      case rejection_policy::caller_runs:
        ++rejected_.caller_ran;
        run_in_caller(lock, t);
        return {};
      case rejection_policy::block:
        if (on_pool_thread()) {  // waiting here could deadlock the pool: run it inline
          ++rejected_.caller_ran;
          run_in_caller(lock, t);
          return {};
        }
        if (!waited) {
          waited = true;
          deadline = detail::add_sat(now_ns(), block_timeout_ns_);
        }
        ++blocked_;
        const bool timed_out = wait_until(room_, lock, deadline);
        --blocked_;
        if (timed_out && !closed_ &&
            detail::place(placement_locked(may_start)) == detail::placement::reject) {
          ++rejected_.timed_out;
          return refuse(lock, t, errc::timeout, "task rejected: no room within block_timeout",
                        start_error, throwing);
        }
        continue;
    }
  }
}

inline auto thread_pool::hand_to_idle(task&& t) -> worker* {
  worker* w = idle_.pick();
  idle_.remove(*w);
  w->slot = std::move(t);
  w->has_task.store(true, std::memory_order_release);  // pairs with the thread's acquire
  ++active_;
  ++submitted_;
  ++pending_;
  if (!w->sleeping) return nullptr;
  w->handed_at = now_ns();  // what a spin would have had to wait (detail::adaptive_spin)
  return w;
}

inline void thread_pool::enqueue(task&& t, bool claim) {
  queue_.push_back(std::move(t));  // may throw std::bad_alloc, leaving `t` untouched
  ++submitted_;
  ++pending_;
  if (claim) ++claimed_;
  const std::size_t waiting = queue_.size() - claimed_;
  if (waiting > largest_queue_) largest_queue_ = waiting;  // read-mostly line
}

inline auto thread_pool::take_queued_locked() noexcept -> task {
  task t = queue_.pop_front();
  ++active_;
  claimed_ = std::min(claimed_, queue_.size());  // T3: a thread took a claimed one
  if (blocked_ > 0) room_.notify_one();
  return t;
}

inline auto thread_pool::refuse(std::unique_lock<std::mutex>& lock, task& t, errc code,
                                const char* why, const std::exception_ptr& cause, bool throwing)
    -> outcome {
  const refusal_counts counts{threads_, idle_.size(), queue_.size() - claimed_};
  lock.unlock();
  outcome out{make_error_code(code), nullptr, throwing};
  if (throwing || t.can_fail()) {
    const std::string what = refusal_message(why, code, counts, cause);
    out.failure = std::make_exception_ptr(error(code, what, cause));
    t.fail(out.failure);
  }
  return out;
}

inline auto thread_pool::refusal_message(const char* why, errc code, const refusal_counts& c,
                                         const std::exception_ptr& cause) const -> std::string {
  std::string what = "respool thread pool '" + options_.name + "': " + why;
  if (code == errc::timeout) what += " (" + std::to_string(options_.block_timeout.count()) + " ms)";
  what += " (threads " + std::to_string(c.threads) + "/" + std::to_string(options_.max_threads) +
          ", " + std::to_string(c.idle) + " idle, queue " + std::to_string(c.queued) + "/" +
          std::to_string(options_.queue_capacity) + ")";
  if (cause) {
    try {
      std::rethrow_exception(cause);
    } catch (const std::exception& e) {
      what += "; starting a thread failed: ";
      what += e.what();
    } catch (...) {
      what += "; starting a thread failed";
    }
  }
  return what;
}

inline void thread_pool::run_in_caller(std::unique_lock<std::mutex>& lock, task& t) {
  lock.unlock();
  if (run(t)) {
    lock.lock();
    ++failed_;
  }
}

RESPOOL_NAMESPACE_END
