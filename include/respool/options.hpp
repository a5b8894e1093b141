#pragma once
/**
 * `pool_options`: how a pool sizes itself, how long it waits, and when it retires resources.
 *
 * An aggregate for designated initialisers; `validate()` (also called by the pool's constructor)
 * throws `std::invalid_argument` naming the bad field.
 *
 * **Example**:
 * ```cpp
 * respool::pool_options opts{.max_size = 8, .min_idle = 2, .acquire_timeout = 2s,
 *                            .idle_timeout = 5min, .max_lifetime = 30min, .name = "orders-db"};
 * ```
 */
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <optional>
#include <stdexcept>
#include <string>

#include "events.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

/// What becomes of a resource whose lease is destroyed while an exception unwinds the stack
/// (it may be mid-transaction or broken): `pool_options::on_unwind`.
enum class unwind_policy : std::uint8_t {
  validate,        ///< reset as usual, then validated before anyone else borrows it
  discard,         ///< destroyed (`destroy_reason::unwound`)
  return_to_pool,  ///< returned as if nothing happened
};

/// A pool that finds its own size (`pool_options::adaptive`): it lends at most `limit`
/// resources at once (`pool_stats::limit`), and moves `limit` between `min_limit` and
/// `max_size` as the backend answers. When callers want more than the limit and leases take
/// no longer than the backend's unloaded pace, it grows; when leases take longer because the
/// backend queues them (past its cores, its locks, its disk), it shrinks to what the backend
/// serves at a time plus a small queue. The rule is TCP Vegas's, read from counts the pool
/// keeps anyway (leases completed per window, by Little's law): see detail/adaptive_limit.hpp.
/// Each change raises event `limit_changed`.
struct adaptive_options {
  /// The lowest limit.
  std::size_t min_limit = 1;
  /// The first limit; 0 starts at `min_limit`. From there it doubles until the backend
  /// starts to queue (slow start), then moves by steps.
  std::size_t initial_limit = 0;
  /// The shortest measuring window (it also spans enough leases to judge: at least 16 and
  /// two per resource). Judged at housekeeping passes, so at least `housekeeping_interval`.
  std::chrono::milliseconds window = std::chrono::milliseconds(100);
};

struct pool_options {
  using duration = std::chrono::milliseconds;
  /// Sentinel for "never" (`validate_after_idle`): the pool never validates on borrow.
  static constexpr duration never = duration::max();

  /// Most live resources (idle + in use + being created), at any instant.
  std::size_t max_size = 8;
  /// Idle resources created at construction and kept up in the background.
  std::size_t min_idle = 0;
  /// How long `acquire()` waits when nothing is idle.
  duration acquire_timeout = std::chrono::seconds(30);
  /// Idle resources above `min_idle` are closed after this long unused; 0 disables.
  duration idle_timeout = std::chrono::minutes(10);
  /// A resource is closed after this long (jittered down by up to 2.5% each); 0 disables.
  duration max_lifetime = std::chrono::minutes(30);
  /// A resource is closed after this many leases; 0 disables.
  std::size_t max_uses = 0;
  /// Validate on borrow only if the resource sat idle longer than this; 0 validates on every
  /// borrow, `never` never does.
  duration validate_after_idle = std::chrono::milliseconds(500);
  /// Background validation of idle resources this often; 0 disables.
  duration keepalive_interval = duration::zero();
  /// More waiters than this are refused at once with `errc::exhausted` (load shedding). At
  /// least 1: `acquire(0ms)` and `try_acquire()` are the calls that never wait.
  std::size_t max_waiters = std::numeric_limits<std::size_t>::max();
  /// How many factory calls may be in flight at once (on the pool's background threads), so
  /// one connect that hangs does not stop the others.
  std::size_t create_concurrency = 2;
  /// After this many creation failures in a row the backend counts as down: with nothing idle
  /// or in use, callers fail fast with `errc::backend_unavailable` until the next attempt is
  /// due, and that attempt is a single probe whose success ends it. Below it, a failed creation
  /// is retried at once and callers keep waiting (a flaky backend is not a down one).
  std::uint32_t fail_fast_after = 3;
  /// Once the backend counts as down, attempts back off: from here, doubling per failure,
  /// capped at the max, jittered down by up to half.
  duration create_backoff_min = std::chrono::milliseconds(50);
  duration create_backoff_max = std::chrono::seconds(1);
  /// Eventual fairness: a running thread may take a returned resource ahead of a queued
  /// waiter (barging, which keeps the CPU busy with a thread that is already running) while
  /// the oldest waiter has waited less than this; after that, the next return goes straight
  /// to it. 0 is strict FIFO: every return goes to the oldest waiter.
  std::chrono::microseconds fairness_window = std::chrono::milliseconds(2);
  /// A lease held longer than this is reported once (event `leak_suspected`); 0 disables.
  duration leak_threshold = duration::zero();
  /// The background housekeeper's period: idle timeout, lifetime, keepalive and leak checks
  /// run this often, and the pool's coarse clock (used on the fast path) ticks at this
  /// resolution. 0 runs no housekeeping thread: call `pool::run_maintenance()` yourself.
  /// At most `max_housekeeping_interval`.
  duration housekeeping_interval = std::chrono::milliseconds(100);
  /// A lease destroyed while an exception unwinds the stack: more exceptions in flight on its
  /// thread than when it was granted (so not one taken and dropped inside a destructor during
  /// unwinding, nor an explicit `discard()` or `return_to_pool()`). `validate` resets it, then
  /// validates it before its next borrow whatever `validate_after_idle` says (a failure destroys
  /// it, `failed_validation`; with `always_valid` it is simply returned); `discard` destroys it
  /// without a reset (`unwound`); `return_to_pool` returns it as if nothing happened.
  unwind_policy on_unwind = unwind_policy::validate;
  /// A thread that holds a lease from this pool and calls `acquire()` again raises event
  /// `nested_acquire` naming both call sites, at the call, before it waits: T threads each
  /// holding n leases at once deadlock a pool smaller than T * (n - 1) + 1. `try_acquire()`,
  /// which never waits, raises none (what it takes counts as held). A thread's last 8 leases are
  /// tracked; one moved to another thread counts as held by the thread that took it until it is
  /// returned. Off, or without `on_event`: a branch per acquire and return.
  bool detect_nested_acquire = false;
  /// Refuse at once (`errc::exhausted`, the estimate in the message) a caller whose estimated
  /// wait, its place in the queue times the recent mean hold time over `max_size`, already
  /// exceeds its timeout, instead of letting it wait out a timeout it cannot beat.
  bool shed_hopeless = false;
  /// Set: the pool finds its own size between `adaptive->min_limit` and `max_size`
  /// (`adaptive_options`). Unset: it lends up to `max_size`.
  std::optional<adaptive_options> adaptive{};
  /// Names the pool in errors and events.
  std::string name = "pool";
  /// Slow-path events (created, destroyed, creation failed, timeout, leak, nested acquire).
  /// Called without the pool's lock held, possibly from several threads at once; must not throw.
  std::function<void(const pool_event&)> on_event{};

  /// The largest `max_size`: slot indices are 32-bit and each slot takes two cache lines.
  static constexpr std::size_t max_size_limit = std::size_t{1} << 20U;
  /// The longest housekeeping period: the coarse clock used on the fast path (lifetimes,
  /// validate-after-idle) is at most this stale.
  static constexpr duration max_housekeeping_interval = std::chrono::hours(1);

  /// Throws `std::invalid_argument` naming the first bad field.
  void validate() const {
    auto fail = [this](const char* field, const char* why) {
      throw std::invalid_argument("respool pool_options for '" + name + "': " + field + " " + why);
    };
    if (max_size == 0) fail("max_size", "must be at least 1");
    if (max_size > max_size_limit) fail("max_size", "must be at most 1,048,576");
    if (min_idle > max_size) fail("min_idle", "must not exceed max_size");
    if (acquire_timeout < duration::zero()) fail("acquire_timeout", "must not be negative");
    if (idle_timeout < duration::zero()) fail("idle_timeout", "must not be negative (0 disables)");
    if (max_lifetime < duration::zero()) fail("max_lifetime", "must not be negative (0 disables)");
    if (validate_after_idle < duration::zero())
      fail("validate_after_idle", "must not be negative (0 validates every borrow)");
    if (keepalive_interval < duration::zero())
      fail("keepalive_interval", "must not be negative (0 disables)");
    if (max_waiters == 0)
      fail("max_waiters", "must be at least 1 (acquire(0ms) and try_acquire() never wait)");
    if (create_concurrency == 0) fail("create_concurrency", "must be at least 1");
    if (fail_fast_after == 0) fail("fail_fast_after", "must be at least 1");
    if (fairness_window < std::chrono::microseconds::zero())
      fail("fairness_window", "must not be negative (0 is strict FIFO)");
    if (fairness_window > std::chrono::seconds(10))
      fail("fairness_window", "must be at most 10 s");
    if (create_backoff_min <= duration::zero()) fail("create_backoff_min", "must be positive");
    if (create_backoff_max < create_backoff_min)
      fail("create_backoff_max", "must not be below create_backoff_min");
    if (leak_threshold < duration::zero()) fail("leak_threshold", "must not be negative (0 disables)");
    if (housekeeping_interval < duration::zero())
      fail("housekeeping_interval", "must not be negative (0: no background housekeeping)");
    if (housekeeping_interval > max_housekeeping_interval)
      fail("housekeeping_interval", "must be at most 1 hour (0: no background housekeeping)");
    if (adaptive) {
      if (adaptive->min_limit == 0) fail("adaptive.min_limit", "must be at least 1");
      if (adaptive->min_limit > max_size) fail("adaptive.min_limit", "must not exceed max_size");
      if (adaptive->initial_limit != 0 && adaptive->initial_limit < adaptive->min_limit)
        fail("adaptive.initial_limit", "must not be below adaptive.min_limit (0: min_limit)");
      if (adaptive->initial_limit > max_size)
        fail("adaptive.initial_limit", "must not exceed max_size");
      if (adaptive->window <= duration::zero()) fail("adaptive.window", "must be positive");
    }
    if (name.empty()) fail("name", "must not be empty");
  }
};

RESPOOL_NAMESPACE_END
