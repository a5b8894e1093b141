#pragma once
/**
 * `respool::thread_pool_options`: how a `respool::thread_pool` sizes itself, when it grows and
 * what it does when full. Validated once, by the pool's constructor.
 */
#include <chrono>
#include <cstddef>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <thread>

#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

/// When the pool starts threads beyond `core_threads`.
enum class thread_growth {
  /// Start threads up to `max_threads` before queueing (Tomcat's executor, made exact). For tasks
  /// that mostly wait: a burst runs on many threads at once instead of waiting in line.
  threads_first,
  /// The JDK's `ThreadPoolExecutor`: below `core_threads` start a thread; else queue; only when
  /// the queue is full start threads up to `max_threads`. An idle thread still takes a task
  /// first. For CPU-bound work, where more threads than cores only add switching.
  queue_first,
};

/// What happens to a task when no thread is idle, no thread may be started and the queue is full
/// (or when `queue_capacity` is 0 and no thread is free).
enum class rejection_policy {
  /// Refuse: `execute`/`submit` throw `respool::error` with `errc::rejected` (the non-throwing
  /// forms return it in the `std::error_code`).
  abort,
  /// Run the task on the submitting thread, which slows the producer down to the pool's pace.
  /// From one of the pool's own tasks this runs the nested task inline: no deadlock.
  caller_runs,
  /// Drop the task without telling the caller of the throwing forms; a future from `submit` gets
  /// `errc::rejected` at once. The non-throwing forms still report `errc::rejected`.
  discard,
  /// Drop the oldest queued task (its future gets `errc::rejected`) and queue the new one. With no
  /// queue (`queue_capacity == 0`) there is nothing older to drop, and the new task is discarded.
  discard_oldest,
  /// Wait up to `block_timeout` for room, then fail with `errc::timeout`. From one of the pool's
  /// own tasks it does not wait (every thread could end up waiting for a slot only a thread can
  /// free) and runs the task inline, as `caller_runs` does.
  block,
};

/**
 * How a `thread_pool` sizes itself and what it does when full. An aggregate: name the fields you
 * change. `validate()` (called by the pool's constructor) throws `std::invalid_argument` naming a
 * bad field.
 *
 * **Example**:
 * ```cpp
 * respool::thread_pool_options o{.core_threads = 4, .max_threads = 200, .queue_capacity = 10'000,
 *                                .rejection = respool::rejection_policy::caller_runs,
 *                                .name = "db-io"};
 * ```
 */
struct thread_pool_options {
  /// Threads kept while idle (unless `core_threads_time_out`). Started on demand, or at once with
  /// `prestart_core`.
  std::size_t core_threads = 2;
  /// Never more threads than this, counting threads being started.
  std::size_t max_threads = 64;
  /// Bound of the queue of tasks waiting for a thread; 0 means direct hand-off only (a task runs
  /// at once on an idle or new thread, or is rejected).
  std::size_t queue_capacity = 1024;
  /// A thread above `core_threads` exits after idling this long. `max()` (or anything beyond
  /// about 292 years) means never.
  std::chrono::milliseconds keep_alive = std::chrono::seconds{60};
  /// Let core threads time out too, so an idle pool holds no threads at all.
  bool core_threads_time_out = false;
  thread_growth growth = thread_growth::threads_first;
  rejection_policy rejection = rejection_policy::abort;
  /// How long `rejection_policy::block` waits for room before failing with `errc::timeout`.
  /// `max()` means forever.
  std::chrono::milliseconds block_timeout = std::chrono::seconds{30};
  /// Start `core_threads` threads in the constructor (which throws if that fails).
  bool prestart_core = false;
  /// Names the pool in errors and its threads as `<name>-<n>` (cut to 15 characters on Linux).
  std::string name = "respool";
  /// Receives exceptions escaping fire-and-forget tasks (`execute`), on the thread that ran the
  /// task. Empty: they are written to stderr. Exceptions from `submit` tasks go to their futures.
  std::function<void(std::exception_ptr)> error_sink{};
  /// Starts a thread running `body`. Empty: `std::thread(body)`. It must return the joinable
  /// thread running `body`, or throw without having started anything (then the task is queued or
  /// rejected, as if the pool were at `max_threads`, and the start is retried with a backoff
  /// while tasks wait for a thread). For stack sizes, affinity, or tests.
  std::function<std::thread(std::function<void()> body)> thread_factory{};

  void validate() const {
    using namespace std::string_literals;
    if (max_threads == 0) {
      throw std::invalid_argument("thread_pool_options.max_threads must be at least 1");
    }
    if (core_threads > max_threads) {
      throw std::invalid_argument("thread_pool_options.core_threads ("s +
                                  std::to_string(core_threads) + ") must not exceed max_threads (" +
                                  std::to_string(max_threads) + ")");
    }
    if (keep_alive < std::chrono::milliseconds::zero()) {
      throw std::invalid_argument("thread_pool_options.keep_alive must not be negative");
    }
    if (core_threads_time_out && keep_alive == std::chrono::milliseconds::zero()) {
      throw std::invalid_argument(
          "thread_pool_options.keep_alive must be positive when core_threads_time_out is set");
    }
    if (block_timeout < std::chrono::milliseconds::zero()) {
      throw std::invalid_argument("thread_pool_options.block_timeout must not be negative");
    }
  }
};

RESPOOL_NAMESPACE_END
