#pragma once
// Where the thread pool puts a task, as pure functions of its counts: the four-step grow-or-queue
// rule (`place`), whether queued tasks are owed a thread start after one failed (`start_owed`),
// and how long to wait before retrying (`start_retry_delay`). thread_pool applies them under its
// mutex; tests/unit/thread_placement_test.cpp tabulates them.
#include <cstddef>
#include <cstdint>

#include "../thread_pool_options.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

// The counts the rule reads. Invariants the pool keeps (see thread_pool): idle > 0 only with an
// empty queue; claimed <= booting and claimed <= queued.
struct placement_state {
  std::size_t idle = 0;      // threads waiting for a task
  std::size_t booting = 0;   // threads started without a task that have not looked at the queue
  std::size_t threads = 0;   // live threads, counting those being started
  std::size_t queued = 0;    // tasks in the queue
  std::size_t claimed = 0;   // queued tasks a booting thread will take when it starts
  std::size_t core = 0;
  std::size_t max = 1;
  std::size_t capacity = 0;  // queue_capacity: for tasks no booting thread has claimed
  thread_growth growth = thread_growth::threads_first;
  bool may_start = true;     // false once a start failed while placing this task
};

enum class placement {
  run_on_idle,       // 1. hand it to an idle thread
  wait_for_booting,  //    queue it for a thread that is starting with nothing to do (it claims it)
  start_for_queue,   // 2. start a thread for the oldest queued task first, then decide again
  start_thread,      // 2. start a thread for it
  enqueue,           // 3. queue it
  reject,            // 4. the rejection policy decides
};

[[nodiscard]] constexpr auto unclaimed(const placement_state& s) noexcept -> std::size_t {
  return s.queued - s.claimed;
}

[[nodiscard]] constexpr auto has_room(const placement_state& s) noexcept -> bool {
  return unclaimed(s) < s.capacity;
}

[[nodiscard]] constexpr auto can_start(const placement_state& s) noexcept -> bool {
  return s.may_start && s.threads < s.max;
}

// Whether a new task makes the pool start a thread (given no thread is free for it).
// threads_first: whenever one may be started. queue_first (the JDK's rule): below core, when
// the queue is full, or when there is no thread at all to run the queue.
[[nodiscard]] constexpr auto wants_thread(const placement_state& s) noexcept -> bool {
  if (!can_start(s)) return false;
  if (s.growth == thread_growth::threads_first) return true;
  return s.threads < s.core || s.threads == 0 || !has_room(s);
}

/// The decision for one task. A thread that is starting with no task counts as free: the task
/// waits for it rather than being refused or starting another. A new thread takes the oldest
/// queued task before a newer one, so a task queued after a failed start is never overtaken.
[[nodiscard]] constexpr auto place(const placement_state& s) noexcept -> placement {
  if (s.idle > 0) return placement::run_on_idle;
  if (s.booting > s.claimed) return placement::wait_for_booting;
  if (wants_thread(s)) {
    return unclaimed(s) > 0 ? placement::start_for_queue : placement::start_thread;
  }
  if (has_room(s)) return placement::enqueue;
  return placement::reject;
}

/// Whether queued tasks wait for a thread the rule would start: true only after a start failed
/// (while starts succeed the rule never leaves them so). The pool then retries on a timer.
[[nodiscard]] constexpr auto start_owed(const placement_state& s) noexcept -> bool {
  if (unclaimed(s) == 0 || s.idle > 0 || s.booting > s.claimed) return false;
  if (!can_start(s)) return false;
  if (s.growth == thread_growth::threads_first) return true;
  return s.threads < s.core || s.threads == 0;
}

/// Nanoseconds to wait before retrying after `failures` consecutive failed starts: 1 ms,
/// doubling, at most 250 ms (a thread start fails for a resource limit, which clears in time).
[[nodiscard]] constexpr auto start_retry_delay(std::uint32_t failures) noexcept -> std::int64_t {
  constexpr std::int64_t first = 1'000'000;
  constexpr std::int64_t cap = 250'000'000;
  std::int64_t d = first;
  for (std::uint32_t i = 1; i < failures && d < cap; ++i) d *= 2;
  return d < cap ? d : cap;
}

}  // namespace detail
RESPOOL_NAMESPACE_END
