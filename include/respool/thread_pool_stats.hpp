#pragma once
/**
 * `respool::thread_pool_stats`: a consistent snapshot of a `respool::thread_pool`, and the count
 * of tasks it refused, by reason.
 */
#include <cstddef>
#include <cstdint>

#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

/// Tasks the pool refused, by reason. Each refused call counts once.
struct thread_pool_rejections {
  std::uint64_t aborted = 0;     ///< `abort`: reported to the submitter
  std::uint64_t caller_ran = 0;  ///< `caller_runs` (and `block` from a pool thread): ran inline
  std::uint64_t discarded = 0;   ///< `discard`, and `discard_oldest` with no queue
  std::uint64_t discarded_oldest = 0;  ///< queued tasks dropped to make room for newer ones
  std::uint64_t timed_out = 0;         ///< `block`: no room within `block_timeout`
  std::uint64_t closed = 0;            ///< submitted after `shutdown()` or `shutdown_now()`

  [[nodiscard]] auto total() const noexcept -> std::uint64_t {
    return aborted + caller_ran + discarded + discarded_oldest + timed_out + closed;
  }
};

/**
 * A consistent snapshot (taken under the pool's mutex). At rest (after `wait_idle` or shutdown):
 * `submitted == completed + rejected.discarded_oldest + cancelled`, and every `execute`/`submit`
 * call is counted once in `submitted` or in one of `rejected`'s other fields.
 */
struct thread_pool_stats {
  std::size_t threads = 0;           ///< live threads, including threads being started
  std::size_t idle = 0;              ///< threads waiting for a task
  std::size_t active = 0;            ///< threads running or handed a task (or starting for one)
  std::size_t largest = 0;           ///< most threads there ever were at once
  std::size_t queued = 0;            ///< tasks waiting in the queue for a thread
  std::size_t largest_queue = 0;     ///< longest the queue ever was
  std::size_t blocked = 0;           ///< submitters waiting for room (`rejection_policy::block`)
  std::uint64_t submitted = 0;       ///< tasks accepted: handed to a thread or queued
  std::uint64_t completed = 0;       ///< accepted tasks that ran to the end (or threw)
  std::uint64_t failed = 0;          ///< fire-and-forget tasks whose exception went to `error_sink`
  std::uint64_t cancelled = 0;       ///< tasks returned unrun by `shutdown_now()`
  std::uint64_t start_failures = 0;  ///< thread starts that threw (the task was queued or rejected)
  thread_pool_rejections rejected;
};

RESPOOL_NAMESPACE_END
