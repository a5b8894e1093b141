#pragma once
// keyed_pool's total budget: how many resources may be alive across all keys (`max_total`),
// and the fair queue of creations waiting for a place. Knows nothing of pools or factories:
// keyed_pool.hpp tells it when a factory call begins (admit) and when a resource is gone
// (release), and supplies the one policy it cannot decide alone (reclaim_idle_elsewhere).
//
// Invariants (the lock is mutex_; `who` is a key's demand record, its identity):
//  K1. used_ = factory calls admitted and not yet failed + resources made and not yet destroyed,
//      across all keys. admit() counts a place before the factory is called; release() gives it
//      back after the factory threw, or after the sub-pool reports the resource destroyed (its
//      `destroyed` event comes after the destructor). So live resources <= used_ <= max_total_.
//  K2. (FIFO across keys.) A creation that cannot be admitted at once queues; places go in
//      queue order, and a creation that finds anyone queued queues behind them, so a quiet
//      key's creation is admitted before every later creation of a busy key.
//  K3. (Room.) The head of the queue, finding no place, closes the oldest idle resource of
//      another key (reclaim_idle_elsewhere). With none idle, it asks for the next return to
//      another key (reclaim_for_): that key's resetter refuses it (give_up_for), the sub-pool
//      destroys it, and its place comes back here. So a busy key whose returns go straight
//      to its own waiters cannot keep the budget from a quiet key's waiter for longer than
//      one hold.
//  K4. A queued creation whose key has no caller left (callers == 0: they timed out) leaves
//      the queue, so nobody's budget is spent or reclaimed for it.
//  K5. Lock order: keyed_pool's map lock, then mutex_. mutex_ is never held while calling out
//      (reclaim_idle_elsewhere closes a resource, whose event calls release()).
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <list>
#include <mutex>
#include <string>

#include "../errors.hpp"
#include "../version.hpp"
#include "pool_time.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

// One key's demand, shared by its sub-pool's factory and resetter and by keyed_pool.
struct key_demand {
  // Callers inside an acquire or try_acquire for this key. Incremented under keyed_pool's
  // shared map lock (so a retirement, under the exclusive lock, sees every one); decremented
  // with release, read with acquire: a caller that leaves holds its lease already.
  std::atomic<std::size_t> callers{0};
  // keyed_pool's coarse time (its Clock, ns) of the last acquire; relaxed: a hint for retiring
  // unused keys, which also checks callers and the sub-pool's counts.
  std::atomic<std::int64_t> last_used{0};
};

class key_budget {
 public:
  key_budget(std::size_t max_total, std::string name) : max_total_(max_total), name_(std::move(name)) {}
  virtual ~key_budget() = default;
  key_budget(const key_budget&) = delete;
  auto operator=(const key_budget&) -> key_budget& = delete;

  // A place for one factory call for `who`, waiting up to `wait_ns` (real time) in the queue
  // (K2-K4). Throws respool::error: `closed`, or `exhausted` when no place came in time or no
  // caller waits any more.
  void admit(const key_demand& who, std::int64_t wait_ns) {
    std::unique_lock lk(mutex_);
    if (closed_) throw closed_error();
    if (queue_.empty() && used_ < max_total_) {
      ++used_;
      return;
    }
    queue_.push_back(&who);
    const auto me = std::prev(queue_.end());
    const auto until = add_sat(steady_now(), wait_ns);
    for (;;) {
      const char* why = nullptr;
      if (closed_) {
        leave_locked(me);
        throw closed_error();
      }
      if (queue_.begin() == me) {
        if (used_ < max_total_) {
          leave_locked(me);
          ++used_;
          return;
        }
        // Head without a place (K3): close an idle resource elsewhere, outside the lock (its
        // destroyed event releases the place, synchronously); else ask for the next return.
        lk.unlock();
        const bool made_room = reclaim_idle_elsewhere(&who);
        lk.lock();
        if (made_room) continue;
        reclaim_for_.store(&who, std::memory_order_release);  // pairs with give_up_for
      }
      const auto now = steady_now();
      if (now >= until) why = "no place became free within the key's acquire_timeout";
      if (who.callers.load(std::memory_order_acquire) == 0) why = "no caller waits for it any more";
      if (why != nullptr) {
        leave_locked(me);
        throw error(errc::exhausted, "respool keyed_pool '" + name_ + "': max_total (" +
                                         std::to_string(max_total_) +
                                         ") resources live across keys; a creation gave up: " + why);
      }
      // Polls: an idle resource may appear elsewhere without a release (a creation nobody
      // waited for), and the callers may leave.
      cv_.wait_for(lk, std::chrono::nanoseconds(std::min<std::int64_t>(until - now, poll_ns)));
    }
  }

  // A place comes back (K1).
  void release() noexcept {
    {
      std::lock_guard lk(mutex_);
      if (used_ > 0) --used_;
    }
    cv_.notify_all();
  }

  // Called by a key's resetter on every return: true when this return should be destroyed to
  // give its place to another key's queued creation (K3). One return per request.
  auto give_up_for(const key_demand* returning) noexcept -> bool {
    // acquire: pairs with the release store in admit().
    auto want = reclaim_for_.load(std::memory_order_acquire);
    if (want == nullptr || want == returning) return false;
    return reclaim_for_.compare_exchange_strong(want, nullptr, std::memory_order_acq_rel);
  }

  // Wakes every queued creation with `closed`; later admits fail at once.
  void close() noexcept {
    {
      std::lock_guard lk(mutex_);
      closed_ = true;
    }
    cv_.notify_all();
  }

  [[nodiscard]] auto used() const -> std::size_t {
    std::lock_guard lk(mutex_);
    return used_;
  }
  [[nodiscard]] auto queued() const -> std::size_t {
    std::lock_guard lk(mutex_);
    return queue_.size();
  }
  [[nodiscard]] auto max_total() const noexcept -> std::size_t { return max_total_; }

 protected:
  // Closes the oldest idle resource of a key other than `owner`; true if one was closed (its
  // place released by then). Called without mutex_ held.
  virtual auto reclaim_idle_elsewhere(const key_demand* owner) noexcept -> bool = 0;

 private:
  static constexpr std::int64_t poll_ns = 5'000'000;  // 5 ms
  using queue_type = std::list<const key_demand*>;     // stable positions: each waiter's own

  static auto steady_now() noexcept -> std::int64_t {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  auto closed_error() const -> error {
    return error(errc::closed, "respool keyed_pool '" + name_ + "': closed");
  }
  // The head's request for a return is its own: withdrawn when it leaves (K3).
  void leave_locked(queue_type::iterator me) noexcept {
    const key_demand* who = *me;
    const bool was_head = me == queue_.begin();
    queue_.erase(me);
    if (was_head) {
      reclaim_for_.compare_exchange_strong(who, nullptr, std::memory_order_acq_rel);
      cv_.notify_all();  // the next head acts
    }
  }

  const std::size_t max_total_;
  const std::string name_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  std::size_t used_ = 0;   // K1; guarded by mutex_
  queue_type queue_;       // K2; guarded by mutex_
  bool closed_ = false;    // guarded by mutex_
  std::atomic<const key_demand*> reclaim_for_{nullptr};  // K3: the head that asks for a return
};

}  // namespace detail
RESPOOL_NAMESPACE_END
