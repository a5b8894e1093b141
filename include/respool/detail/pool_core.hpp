#pragma once
// The pool's shared state and all its logic. `respool::pool` is a thin handle around it; leases
// point into it, so it lives until the handle and the last outstanding lease are both gone.
//
// Concurrency in one paragraph. Each slot has an atomic state word. The fast path claims an idle
// slot with one CAS (idle -> in_use) and returns it with one CAS (in_use -> idle), touching no
// lock and no shared counter. Callers who find nothing idle take the mutex, announce themselves
// in `waiters_`, rescan, and queue (FIFO). While anyone is queued, every leased slot carries the
// `wanted` flag, so its return CAS fails and the holder hands the resource straight to the oldest
// waiter under the lock. The announcement and the flag close the lost-wake-up window: a waiter
// increments `waiters_` before it scans (and flags what it sees leased), and a fast acquirer
// reads `waiters_` after its claiming CAS and flags its own slot if someone is waiting; with
// sequentially consistent order one of the two must see the other. Creation runs on a background
// creator thread, so a waiter is served by whichever comes first: a return or a new resource.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <source_location>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "../concepts.hpp"
#include "../errors.hpp"
#include "../events.hpp"
#include "../lease.hpp"
#include "../options.hpp"
#include "../stats.hpp"
#include "slot.hpp"
#include "thread_hint.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

// Why an acquire failed: the code, the full message, and the factory's error behind it.
struct acquire_failure {
  errc code{};
  std::string message;
  std::exception_ptr cause;
};

inline auto describe_exception(const std::exception_ptr& e) -> std::string {
  if (!e) return {};
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& ex) {
    return ex.what();
  } catch (...) {
    return "unknown exception";
  }
}

inline auto to_site(const std::source_location& loc) noexcept -> acquire_site {
  return {loc.file_name(), loc.function_name(), loc.line()};
}

template <class F, class V, class S, class Clock>
class pool_core final : public lease_home<resource_t<F>> {
 public:
  using R = resource_t<F>;
  using slot_type = slot<R>;
  using ns = std::chrono::nanoseconds;

  pool_core(F f, pool_options options, V v, S s)
      : factory_(std::move(f)),
        validator_(std::move(v)),
        resetter_(std::move(s)),
        opts_(std::move(options)),
        size_(opts_.max_size),
        slots_(std::make_unique<slot_type[]>(opts_.max_size)),
        rng_(std::random_device{}()) {
    for (std::size_t i = 0; i < size_; ++i) slots_[i].index = static_cast<std::uint32_t>(i);
    coarse_now_.store(now_ns(), std::memory_order_relaxed);
    prewarm();
    creator_ = std::thread([this] { creator_loop(); });
    try {
      if (opts_.housekeeping_interval > ns::zero())
        housekeeper_ = std::thread([this] { housekeeper_loop(); });
    } catch (...) {
      stop_and_join();
      throw;
    }
  }

  pool_core(const pool_core&) = delete;
  auto operator=(const pool_core&) -> pool_core& = delete;

  // ---------------------------------------------------------------- acquire

  auto acquire(ns timeout, const std::source_location& where, acquire_failure* fail)
      -> lease<R> {
    const auto site = to_site(where);
    // The clock is read only once this acquire does something slow (validates or queues), so
    // the uncontended path reads none; the timeout counts from that first reading.
    std::int64_t started = 0;
    for (;;) {
      if (closed()) return failed(fail, errc::closed, "the pool is closed");
      slot_type* s = nullptr;
      if (waiters_.load(std::memory_order_seq_cst) == 0) s = claim_idle(hint());
      if (s == nullptr) {
        if (started == 0) started = now_ns();
        bool fresh = false;
        s = wait_for_slot(saturating_add(started, timeout.count()), timeout, fail, fresh);
        if (s == nullptr) return {};
        if (fresh) return grant(*s, site);
      }
      if (borrow_check(*s, started)) return grant(*s, site);
      // It failed validation (or expired) and is gone. Validators that fail slowly (a server
      // that hangs) must not stretch the caller's timeout: check it before trying again.
      if (started != 0 && now_ns() >= saturating_add(started, timeout.count()))
        return timed_out(fail, timeout, "; idle resources kept failing validation");
    }
  }

  auto try_acquire(const std::source_location& where) -> std::optional<lease<R>> {
    const auto site = to_site(where);
    while (!closed() && waiters_.load(std::memory_order_seq_cst) == 0) {
      slot_type* s = claim_idle(hint());
      if (s == nullptr) break;
      std::int64_t unused_clock = 0;
      if (borrow_check(*s, unused_clock)) return grant(*s, site);
    }
    // Nothing idle: ask the creator for a spare so that a later try can succeed.
    if (!closed()) {
      std::lock_guard lk(mutex_);
      if (spare_requests_ == 0) {
        spare_requests_ = 1;
        creator_cv_.notify_one();
      }
    }
    return std::nullopt;
  }

  // ---------------------------------------------------------------- release (lease_home)

  void release(slot_type& s, bool discard) noexcept override {
#if RESPOOL_DEBUG_CHECKS
    if (s.debug_holders.fetch_sub(1, std::memory_order_relaxed) != 1)
      debug_check_failed("a lease returned a resource it did not hold alone");
#endif
    std::optional<destroy_reason> why;
    if (discard) {
      why = destroy_reason::discarded;
    } else {
      if constexpr (!std::is_same_v<S, no_reset>) {
        try {
          if (!invoke_reset(resetter_, *s.resource)) why = destroy_reason::failed_reset;
        } catch (...) {
          why = destroy_reason::failed_reset;
        }
      }
      if (!why && opts_.max_uses != 0 && ++s.uses >= opts_.max_uses) why = destroy_reason::max_uses;
    }
    const auto now = coarse_now_.load(std::memory_order_relaxed);
    if (!why && now >= s.expires_at.load(std::memory_order_relaxed)) why = destroy_reason::lifetime;
    const auto ep = epoch_.load(std::memory_order_acquire);
    if (!why && (ep & closed_bit) != 0) why = destroy_reason::closed;
    if (!why && s.generation != (ep >> 1U)) why = destroy_reason::evicted;
    if (opts_.leak_threshold > ns::zero()) report_leak_return(s, now);
    s.last_used.store(now, std::memory_order_relaxed);
    tls_hints.remember(id_, s.index);

    if (why) {
      destroy_owned(s, *why);
      return;
    }
    std::uint32_t expected = slot_state::in_use;
    if (s.state.compare_exchange_strong(expected, slot_state::idle, std::memory_order_release,
                                        std::memory_order_relaxed))
      return;  // the fast path: nobody waits
    if ((expected & slot_state::orphaned) != 0) {
      drop_orphan(s);
      return;
    }
    // Wanted (waiters queued, or the pool closed): hand it to the oldest waiter.
    std::unique_lock lk(mutex_);
    if ((s.state.load(std::memory_order_relaxed) & slot_state::orphaned) != 0) {
      lk.unlock();
      drop_orphan(s);
      return;
    }
    if (!make_available(s, lk, false)) {
      lk.unlock();
      destroy_owned(s, destroy_reason::closed);
    }
  }

  // ---------------------------------------------------------------- maintenance

  void run_maintenance() {
    const auto now = now_ns();
    coarse_now_.store(now, std::memory_order_relaxed);
    if (closed()) return;
    if (opts_.leak_threshold > ns::zero()) detect_leaks(now);
    retire_and_check_idle(now);
    std::lock_guard lk(mutex_);
    // Waiters sleep on the pool's clock; a manual clock only moves when told, so wake those whose
    // deadline has passed to let them notice.
    for (waiter* w = queue_head_; w != nullptr; w = w->next)
      if (w->deadline <= now) w->cv.notify_one();
    creator_cv_.notify_one();  // refill min_idle; retry after backoff
  }

  void evict_all() {
    {
      std::lock_guard lk(mutex_);
      epoch_.fetch_add(2, std::memory_order_acq_rel);  // the generation lives above the closed bit
    }
    destroy_idle(destroy_reason::evicted);
    std::lock_guard lk(mutex_);
    creator_cv_.notify_one();
  }

  void close() {
    {
      std::lock_guard lk(mutex_);
      if ((epoch_.load(std::memory_order_relaxed) & closed_bit) != 0) return;
      epoch_.fetch_or(closed_bit, std::memory_order_acq_rel);
      fail_all_waiters(errc::closed, "the pool was closed", nullptr);
      // Leased slots must come back through the slow path, which sees the pool is closed; one
      // returned to idle before this is caught by destroy_idle below.
      for (std::size_t i = 0; i < size_; ++i) flag_if_leased(slots_[i]);
    }
    stop_and_join();
    destroy_idle(destroy_reason::closed);
  }

  // Called by the handle's destructor: close, then let the last outstanding lease free us.
  void destroy_handle() noexcept {
    close();
    stop_and_join();  // again: close() may have run on one of our own threads
    {
      std::lock_guard lk(mutex_);
      for (std::size_t i = 0; i < size_; ++i) {
        auto& s = slots_[i];
        for (;;) {
          auto cur = s.state.load(std::memory_order_acquire);
          const auto st = cur & slot_state::mask;
          if (st == slot_state::in_use) {
            refs_.fetch_add(1, std::memory_order_relaxed);
            if (s.state.compare_exchange_weak(cur, cur | slot_state::orphaned,
                                              std::memory_order_acq_rel))
              break;
            refs_.fetch_sub(1, std::memory_order_relaxed);
            continue;
          }
          if (st == slot_state::idle) {
            if (!s.state.compare_exchange_weak(cur, slot_state::reserved, std::memory_order_acquire))
              continue;
            s.resource.reset();
            s.state.store(slot_state::empty, std::memory_order_release);
          }
          break;
        }
      }
    }
    unref();
  }

  // ---------------------------------------------------------------- stats

  auto stats() const -> pool_stats {
    pool_stats st;
    std::lock_guard lk(mutex_);
    const auto c = counts_locked();
    st.max_size = size_;
    st.total = c.total();
    st.idle = c.idle;
    st.in_use = c.in_use;
    st.creating = c.creating;
    st.waiters = queue_size_;
    for (std::size_t i = 0; i < size_; ++i)
      st.acquired += slots_[i].acquisitions.load(std::memory_order_relaxed);
    st.created = created_;
    st.destroyed_by = destroyed_by_;
    st.timeouts = timeouts_;
    st.create_failures = create_failures_;
    st.fast_failures = fast_failures_;
    st.shed = shed_;
    st.wait = wait_hist_;
    // Acquires that never waited sit in the zero bucket.
    st.wait.buckets[0] += st.acquired - std::min(st.acquired, slow_acquired_);
    st.wait_max = wait_max_;
    st.wait_p50 = st.wait.percentile(0.50);
    st.wait_p99 = st.wait.percentile(0.99);
    return st;
  }

  [[nodiscard]] auto options() const noexcept -> const pool_options& { return opts_; }

 private:
  static constexpr std::uint64_t closed_bit = 1;
  static constexpr int handoff_spins = 50;
  static constexpr std::int64_t never_ns = std::numeric_limits<std::int64_t>::max();

  struct waiter {
    std::condition_variable cv;
    waiter* next = nullptr;
    waiter* prev = nullptr;
    std::int64_t deadline = 0;
    slot_type* granted = nullptr;
    bool granted_fresh = false;  // just created or just validated: no borrow check needed
    bool parked = false;         // asleep on `cv`: whoever serves it must notify
    std::atomic<bool> served{false};  // lets a spinning waiter see its hand-off without the lock
    std::optional<acquire_failure> failure;
  };

  struct counts {
    std::size_t idle = 0, in_use = 0, creating = 0, reserved = 0;
    [[nodiscard]] auto total() const noexcept -> std::size_t {
      return idle + in_use + creating + reserved;
    }
  };

  ~pool_core() = default;

  static auto now_ns() noexcept -> std::int64_t {
    return std::chrono::duration_cast<ns>(Clock::now().time_since_epoch()).count();
  }
  static auto to_time_point(std::int64_t t) -> typename Clock::time_point {
    return typename Clock::time_point(
        std::chrono::duration_cast<typename Clock::duration>(ns(t)));
  }
  static auto saturating_add(std::int64_t a, std::int64_t b) noexcept -> std::int64_t {
    return b > never_ns - a ? never_ns : a + b;
  }
  static auto to_ns(pool_options::duration d) noexcept -> std::int64_t {
    if (d >= std::chrono::duration_cast<pool_options::duration>(ns::max())) return never_ns;
    return std::chrono::duration_cast<ns>(d).count();
  }

  [[nodiscard]] auto closed() const noexcept -> bool {
    return (epoch_.load(std::memory_order_acquire) & closed_bit) != 0;
  }

  [[nodiscard]] auto hint() const noexcept -> std::uint32_t {
    // Threads without a hint start at a place of their own, so they do not all probe slot 0.
    const auto spread = static_cast<std::uint32_t>(
        (reinterpret_cast<std::uintptr_t>(&tls_hints) >> 6U) % size_);
    return tls_hints.find(id_, spread);
  }

  // Claims an idle slot by CAS, starting at `start`. The fast path; lock not held.
  auto claim_idle(std::uint32_t start) noexcept -> slot_type* {
    const auto n = static_cast<std::uint32_t>(size_);
    std::uint32_t j = start < n ? start : 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      auto& s = slots_[j];
      std::uint32_t expected = slot_state::idle;
      if (s.state.load(std::memory_order_relaxed) == slot_state::idle &&
          s.state.compare_exchange_strong(expected, slot_state::in_use, std::memory_order_seq_cst,
                                          std::memory_order_relaxed)) {
        // Someone queued meanwhile: make sure this slot's return hands off (see the top).
        if (waiters_.load(std::memory_order_seq_cst) != 0)
          s.state.fetch_or(slot_state::wanted, std::memory_order_relaxed);
        return &s;
      }
      if (++j == n) j = 0;
    }
    return nullptr;
  }

  // Checks a claimed idle resource before lending it: lifetime, eviction, validate-after-idle.
  // Reads the clock into `started` (if not yet read) before a validation.
  auto borrow_check(slot_type& s, std::int64_t& started) -> bool {
    const auto now = coarse_now_.load(std::memory_order_relaxed);
    // seq_cst after the claiming CAS: either close() sees this slot leased and flags it, or we
    // see the pool closed here.
    const auto ep = epoch_.load(std::memory_order_seq_cst);
    if ((ep & closed_bit) != 0) {
      destroy_owned(s, destroy_reason::closed);
      return false;
    }
    if (now >= s.expires_at.load(std::memory_order_relaxed)) {
      destroy_owned(s, destroy_reason::lifetime);
      return false;
    }
    if (s.generation != (ep >> 1U)) {
      destroy_owned(s, destroy_reason::evicted);
      return false;
    }
    if constexpr (!std::is_same_v<V, always_valid>) {
      // 0 validates every borrow, even one the coarse clock places "before" the last return.
      if (validate_after_idle_ns_ == 0 ||
          (validate_after_idle_ns_ != never_ns &&
           now - s.last_used.load(std::memory_order_relaxed) >= validate_after_idle_ns_)) {
        if (started == 0) started = now_ns();
        bool ok = false;
        try {
          ok = invoke_validate(validator_, *s.resource);
        } catch (...) {
          ok = false;
        }
        if (!ok) {
          destroy_owned(s, destroy_reason::failed_validation);
          return false;
        }
      }
    }
    return true;
  }

  auto grant(slot_type& s, const acquire_site& site) noexcept -> lease<R> {
#if RESPOOL_DEBUG_CHECKS
    if (s.debug_holders.fetch_add(1, std::memory_order_relaxed) != 0)
      debug_check_failed("a resource was lent to a second holder");
#endif
    const auto n = s.acquisitions.load(std::memory_order_relaxed) + 1;
    s.acquisitions.store(n, std::memory_order_relaxed);  // only the holder writes it
    if (opts_.leak_threshold > ns::zero()) {
      s.site_file.store(site.file_name, std::memory_order_relaxed);
      s.site_function.store(site.function_name, std::memory_order_relaxed);
      s.site_line.store(site.line, std::memory_order_relaxed);
      s.acquired_at.store(coarse_now_.load(std::memory_order_relaxed), std::memory_order_release);
    }
    return lease_access::make<R>(this, &s);
  }

  auto failed(acquire_failure* fail, errc code, const std::string& why,
              std::exception_ptr cause = nullptr) -> lease<R> {
    if (fail != nullptr) {
      std::lock_guard lk(mutex_);
      *fail = make_failure_locked(code, why, std::move(cause));
    }
    return {};
  }

  auto make_failure_locked(errc code, const std::string& why, std::exception_ptr cause) const
      -> acquire_failure {
    const auto c = counts_locked();
    std::string msg = "respool pool '" + opts_.name + "': " + why + " (total " +
                      std::to_string(c.total()) + ", idle " + std::to_string(c.idle) +
                      ", in use " + std::to_string(c.in_use) + ", waiters " +
                      std::to_string(queue_size_) + ", creating " + std::to_string(c.creating) +
                      ", max " + std::to_string(size_);
    if (!last_error_text_.empty()) msg += "; last creation error: " + last_error_text_;
    msg += ")";
    if (!cause && (code == errc::timeout || code == errc::backend_unavailable)) cause = last_error_;
    return {code, std::move(msg), std::move(cause)};
  }

  // The slow path: queue FIFO until a resource is handed over, the deadline passes, or the pool
  // gives up on us (closed, backend down). `fresh` says the resource needs no borrow check.
  auto wait_for_slot(std::int64_t deadline, ns timeout, acquire_failure* fail, bool& fresh)
      -> slot_type* {
    const auto start = now_ns();
    std::unique_lock lk(mutex_);
    coarse_now_.store(start, std::memory_order_relaxed);
    if (closed()) return fail_locked(fail, errc::closed, "the pool is closed");
    if (queue_size_ >= opts_.max_waiters) {
      ++shed_;
      return fail_locked(fail, errc::exhausted,
                         "load shed: " + std::to_string(queue_size_) +
                             " callers already wait (max_waiters " +
                             std::to_string(opts_.max_waiters) + ")");
    }
    waiters_.fetch_add(1, std::memory_order_seq_cst);  // announce, then rescan (see the top)
    struct announce_guard {
      std::atomic<std::size_t>& w;
      ~announce_guard() { w.fetch_sub(1, std::memory_order_seq_cst); }
    } guard{waiters_};
    if (slot_type* s = claim_or_flag_locked()) {
      fresh = false;
      return s;
    }
    // Fail fast only if nothing could serve us soon: no resource idle, in use (a return) or under
    // a keepalive check, the last creation failed, and its retry is not due yet.
    const auto c = counts_locked();
    if (c.total() == c.creating && c.total() < size_ && last_error_ && start < next_retry_at_) {
      ++fast_failures_;
      return fail_locked(fail, errc::backend_unavailable,
                         "backend unavailable: creating a resource failed " +
                             std::to_string(consecutive_failures_) +
                             " time(s) in a row and nothing is idle or in use; failing fast until the retry");
    }
    waiter w;
    w.deadline = deadline;
    enqueue(w);
    if (c.total() < size_) creator_cv_.notify_one();
    // A hand-off usually comes within microseconds: spin (yielding the core, which the holder
    // may need) before sleeping, so neither side pays for a futex wake and a reschedule.
    lk.unlock();
    for (int i = 0; i < handoff_spins && !w.served.load(std::memory_order_acquire); ++i)
      std::this_thread::yield();
    lk.lock();
    const auto tp = to_time_point(deadline);
    while (w.granted == nullptr && !w.failure) {
      w.parked = true;
      if (deadline == never_ns) {
        w.cv.wait(lk);
      } else if (w.cv.wait_until(lk, tp) == std::cv_status::timeout && now_ns() >= deadline) {
        w.parked = false;
        break;
      }
      w.parked = false;
    }
    const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(ns(now_ns() - start));
    wait_hist_.buckets[wait_histogram::bucket_of(waited)] += 1;
    wait_max_ = std::max(wait_max_, waited);
    if (w.granted != nullptr) {
      ++slow_acquired_;
      fresh = w.granted_fresh;
      return w.granted;
    }
    if (w.failure) {
      if (fail != nullptr) *fail = std::move(*w.failure);
      return nullptr;
    }
    dequeue(w);
    lk.unlock();
    timed_out(fail, timeout, "");
    return nullptr;
  }

  auto timed_out(acquire_failure* fail, ns timeout, const char* detail) -> lease<R> {
    const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count();
    std::unique_lock lk(mutex_);
    ++timeouts_;
    auto f = make_failure_locked(
        errc::timeout,
        "timed out after " + std::to_string(ms) + " ms waiting for a resource" + detail, nullptr);
    lk.unlock();
    emit_message(event_kind::acquire_timeout, f.message);
    if (fail != nullptr) *fail = std::move(f);
    return {};
  }

  auto fail_locked(acquire_failure* fail, errc code, const std::string& why) -> slot_type* {
    if (fail != nullptr) *fail = make_failure_locked(code, why, nullptr);
    return nullptr;
  }

  // ---- the waiter queue (mutex held)

  // One pass under the lock, after announcing in `waiters_`: claims an idle slot, and flags
  // every leased one `wanted` so that its return hands off instead of going idle unseen. A slot
  // returned after our visit was flagged (its fast return fails); one returned before is idle
  // when we visit; one claimed after our visit is flagged by its claimer, who sees `waiters_`.
  auto claim_or_flag_locked() noexcept -> slot_type* {
    for (std::size_t i = 0; i < size_; ++i) {
      auto& s = slots_[i];
      std::uint32_t expected = slot_state::idle;
      if (s.state.compare_exchange_strong(expected, slot_state::in_use, std::memory_order_seq_cst)) {
        if (queue_head_ == nullptr) clear_wanted();  // nobody will queue after all
        return &s;
      }
      flag_if_leased(s);
    }
    return nullptr;
  }

  static void flag_if_leased(slot_type& s) noexcept {
    auto cur = s.state.load(std::memory_order_seq_cst);
    while ((cur & slot_state::mask) == slot_state::in_use && (cur & slot_state::wanted) == 0 &&
           !s.state.compare_exchange_weak(cur, cur | slot_state::wanted, std::memory_order_seq_cst)) {
    }
  }

  void enqueue(waiter& w) {
    w.prev = queue_tail_;
    (queue_tail_ != nullptr ? queue_tail_->next : queue_head_) = &w;
    queue_tail_ = &w;
    ++queue_size_;
  }

  void dequeue(waiter& w) {
    (w.prev != nullptr ? w.prev->next : queue_head_) = w.next;
    (w.next != nullptr ? w.next->prev : queue_tail_) = w.prev;
    w.next = w.prev = nullptr;
    if (--queue_size_ == 0) clear_wanted();
  }

  void clear_wanted() noexcept {
    if (closed()) return;  // after close every leased slot stays flagged
    for (std::size_t i = 0; i < size_; ++i)
      slots_[i].state.fetch_and(~slot_state::wanted, std::memory_order_relaxed);
  }

  // Gives a slot this thread owns (in use, reserved or just created) to the oldest waiter, or
  // makes it idle if nobody waits. Mutex held. False if the pool is closed: the caller must
  // destroy the resource (after unlocking). `fresh`: just created or validated, so the waiter
  // skips the borrow check; a resource handed from one holder to the next gets the check like
  // any borrow (with validate_after_idle = 0 it is validated).
  [[nodiscard]] auto make_available(slot_type& s, std::unique_lock<std::mutex>& lk, bool fresh)
      -> bool {
    (void)lk;
    if (closed()) return false;
    if (waiter* w = queue_head_) {
      dequeue(*w);
      s.state.store(slot_state::in_use | (queue_head_ != nullptr ? slot_state::wanted : 0U),
                    std::memory_order_release);
      w->granted = &s;
      w->granted_fresh = fresh;
      w->served.store(true, std::memory_order_release);
      if (w->parked) w->cv.notify_one();
      return true;
    }
    s.state.store(slot_state::idle, std::memory_order_release);
    return true;
  }

  void fail_all_waiters(errc code, const std::string& why, const std::exception_ptr& cause) {
    if (queue_head_ == nullptr) return;
    const auto f = make_failure_locked(code, why, cause);
    while (waiter* w = queue_head_) {
      dequeue(*w);
      w->failure = f;
      w->served.store(true, std::memory_order_release);
      if (w->parked) w->cv.notify_one();
    }
  }

  [[nodiscard]] auto counts_locked() const noexcept -> counts {
    counts c;
    for (std::size_t i = 0; i < size_; ++i) {
      switch (slots_[i].state.load(std::memory_order_acquire) & slot_state::mask) {
        case slot_state::idle: ++c.idle; break;
        case slot_state::in_use: ++c.in_use; break;
        case slot_state::creating: ++c.creating; break;
        case slot_state::reserved: ++c.reserved; break;
        default: break;
      }
    }
    return c;
  }

  // ---- destruction

  // Destroys the resource of a slot this thread owns and frees the place. If the pool's handle
  // is gone (orphaned), drops our reference instead of touching the pool's books.
  void destroy_owned(slot_type& s, destroy_reason why) noexcept {
    s.resource.reset();  // may be slow (closing a socket): outside the lock
    std::unique_lock lk(mutex_);
    if ((s.state.load(std::memory_order_relaxed) & slot_state::orphaned) != 0) {
      lk.unlock();
      unref();
      return;
    }
    s.state.store(slot_state::empty, std::memory_order_release);
    ++destroyed_by_[static_cast<std::size_t>(why)];
    creator_cv_.notify_one();  // capacity freed: waiters or min_idle may need a new one
    // Once the slot is empty, nothing keeps this core alive for a returning lease: the handle's
    // destructor may free it as soon as we unlock. Decide under the lock, and hold a reference
    // while the callback runs.
    const bool notify = static_cast<bool>(opts_.on_event);
    if (notify) refs_.fetch_add(1, std::memory_order_relaxed);
    lk.unlock();
    if (notify) {
      pool_event e;
      e.kind = event_kind::destroyed;
      e.reason = why;
      emit(e);
      unref();
    }
  }

  void drop_orphan(slot_type& s) noexcept {
    s.resource.reset();
    unref();
  }

  void unref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  void destroy_idle(destroy_reason why) {
    for (std::size_t i = 0; i < size_; ++i) {
      auto& s = slots_[i];
      std::uint32_t expected = slot_state::idle;
      if (s.state.compare_exchange_strong(expected, slot_state::reserved, std::memory_order_acquire))
        destroy_owned(s, why);
    }
  }

  // ---- creation

  // min_idle at construction, in the constructing thread; stops at the first failure (which
  // starts the backoff, so the first acquire fails fast with the factory's message).
  void prewarm() {
    for (std::size_t i = 0; i < opts_.min_idle; ++i) {
      std::unique_lock lk(mutex_);
      slot_type& s = slots_[i];
      s.state.store(slot_state::creating, std::memory_order_relaxed);
      if (!create_into(s, lk)) break;
    }
  }

  void creator_loop() {
    std::unique_lock lk(mutex_);
    while (!stop_threads_) {
      const auto c = counts_locked();
      const bool demand = queue_size_ > 0 || c.idle + c.reserved < opts_.min_idle || spare_requests_ > 0;
      if (!demand || c.total() >= size_) {
        creator_cv_.wait(lk);
        continue;
      }
      if (now_ns() < next_retry_at_) {
        creator_cv_.wait_until(lk, to_time_point(next_retry_at_));
        continue;
      }
      slot_type* s = nullptr;
      for (std::size_t i = 0; i < size_ && s == nullptr; ++i)
        if (slots_[i].state.load(std::memory_order_relaxed) == slot_state::empty) s = &slots_[i];
      if (s == nullptr) {  // cannot happen while total < size; never spin on it
        creator_cv_.wait(lk);
        continue;
      }
      spare_requests_ = 0;
      s->state.store(slot_state::creating, std::memory_order_relaxed);
      create_into(*s, lk);
    }
  }

  // Creates a resource into `s` (state `creating`, owned by this thread). Mutex held on entry
  // and exit, released around the factory call. Returns false if the factory failed.
  auto create_into(slot_type& s, std::unique_lock<std::mutex>& lk) -> bool {
    const auto generation = epoch_.load(std::memory_order_relaxed) >> 1U;
    lk.unlock();
    std::exception_ptr error;
    try {
      s.resource.emplace(invoke_create(factory_));
    } catch (...) {
      error = std::current_exception();
    }
    const auto now = now_ns();
    lk.lock();
    if (error) {
      s.state.store(slot_state::empty, std::memory_order_release);
      on_create_failed(error, now);
      lk.unlock();
      if (opts_.on_event) {
        pool_event e;
        e.kind = event_kind::create_failed;
        e.error = error;
        const auto text = describe_exception(error);
        e.message = text;
        emit(e);
      }
      lk.lock();
      return false;
    }
    ++created_;
    consecutive_failures_ = 0;
    next_retry_at_ = 0;
    last_error_ = nullptr;
    last_error_text_.clear();
    s.uses = 0;
    s.generation = generation;
    s.last_checked.store(now, std::memory_order_relaxed);
    s.last_used.store(now, std::memory_order_relaxed);
    s.expires_at.store(lifetime_deadline(now), std::memory_order_relaxed);
    // Evicted while it was being made (say, a failover began): it points at the old backend.
    const bool evicted = generation != (epoch_.load(std::memory_order_relaxed) >> 1U);
    const bool kept = !evicted && make_available(s, lk, true);
    // Not kept: hold it reserved (still counted live, as `created` already says) until
    // destroy_owned frees it, so stats() snapshots stay consistent.
    if (!kept) s.state.store(slot_state::reserved, std::memory_order_relaxed);
    lk.unlock();
    if (opts_.on_event) {
      pool_event e;
      e.kind = event_kind::created;
      emit(e);
    }
    if (!kept) destroy_owned(s, evicted ? destroy_reason::evicted : destroy_reason::closed);
    lk.lock();
    return true;
  }

  auto lifetime_deadline(std::int64_t now) -> std::int64_t {
    if (opts_.max_lifetime == pool_options::duration::zero()) return never_ns;
    const auto life = to_ns(opts_.max_lifetime);
    // Up to 2.5% earlier, so resources created together do not all expire together.
    const auto jitter = static_cast<std::int64_t>(
        std::uniform_real_distribution<double>(0.0, 0.025)(rng_) * static_cast<double>(life));
    return saturating_add(now, life - jitter);
  }

  void on_create_failed(const std::exception_ptr& error, std::int64_t now) {
    ++create_failures_;
    ++consecutive_failures_;
    last_error_ = error;
    last_error_text_ = describe_exception(error);
    // Exponential backoff from create_backoff_min to create_backoff_max, jittered down by up to
    // half so that many pools do not retry in lockstep.
    const auto lo = to_ns(opts_.create_backoff_min);
    const auto hi = to_ns(opts_.create_backoff_max);
    auto d = lo;
    for (std::uint32_t i = 1; i < consecutive_failures_ && d < hi; ++i) d = d > hi / 2 ? hi : d * 2;
    d = std::min(d, hi);
    const auto jittered = static_cast<std::int64_t>(
        static_cast<double>(d) * std::uniform_real_distribution<double>(0.5, 1.0)(rng_));
    next_retry_at_ = saturating_add(now, jittered);
    // Nothing leased, idle or being checked could serve the queue: tell the waiters now rather
    // than letting them sit out their timeouts.
    const auto c = counts_locked();
    if (c.in_use + c.idle + c.reserved == 0)
      fail_all_waiters(errc::create_failed, "creating a resource failed", error);
  }

  // ---- housekeeping

  void housekeeper_loop() {
    std::unique_lock lk(mutex_);
    while (!stop_threads_) {
      housekeeper_cv_.wait_for(lk, opts_.housekeeping_interval);
      if (stop_threads_) break;
      lk.unlock();
      run_maintenance();
      lk.lock();
    }
  }

  void retire_and_check_idle(std::int64_t now) {
    const auto idle_timeout = opts_.idle_timeout > ns::zero() ? to_ns(opts_.idle_timeout) : never_ns;
    const auto keepalive =
        opts_.keepalive_interval > ns::zero() ? to_ns(opts_.keepalive_interval) : never_ns;
    std::size_t idle_now = 0;
    for (std::size_t i = 0; i < size_; ++i)
      if (slots_[i].state.load(std::memory_order_relaxed) == slot_state::idle) ++idle_now;
    for (std::size_t i = 0; i < size_; ++i) {
      auto& s = slots_[i];
      const auto last_used = s.last_used.load(std::memory_order_relaxed);
      const bool expired = now >= s.expires_at.load(std::memory_order_relaxed);
      const bool idle_expired = idle_timeout != never_ns && now - last_used >= idle_timeout &&
                                idle_now > opts_.min_idle;
      const bool check_due =
          keepalive != never_ns &&
          now - std::max(s.last_checked.load(std::memory_order_relaxed), last_used) >= keepalive;
      if (!expired && !idle_expired && !check_due) continue;
      std::uint32_t expected = slot_state::idle;
      if (!s.state.compare_exchange_strong(expected, slot_state::reserved,
                                           std::memory_order_acquire))
        continue;
      // Reserved: borrowers skip it (they take another or wait); nothing blocks on us. The
      // readings above may be stale (it was lent and returned meanwhile): read them again.
      std::optional<destroy_reason> why;
      if (now >= s.expires_at.load(std::memory_order_relaxed)) {
        why = destroy_reason::lifetime;
      } else if (idle_expired && s.last_used.load(std::memory_order_relaxed) == last_used) {
        why = destroy_reason::idle_timeout;
      } else if (check_due) {
        s.last_checked.store(now, std::memory_order_relaxed);
        if (!keepalive_check(s)) why = destroy_reason::failed_validation;
      }
      if (why) {
        --idle_now;
        destroy_owned(s, *why);
        continue;
      }
      std::unique_lock lk(mutex_);
      if (!make_available(s, lk, check_due)) {
        lk.unlock();
        destroy_owned(s, destroy_reason::closed);
      }
    }
  }

  auto keepalive_check(slot_type& s) -> bool {
    if constexpr (std::is_same_v<V, always_valid>) {
      (void)s;
      return true;
    } else {
      try {
        return invoke_validate(validator_, *s.resource);
      } catch (...) {
        return false;
      }
    }
  }

  void detect_leaks(std::int64_t now) {
    const auto threshold = to_ns(opts_.leak_threshold);
    for (std::size_t i = 0; i < size_; ++i) {
      auto& s = slots_[i];
      if ((s.state.load(std::memory_order_acquire) & slot_state::mask) != slot_state::in_use)
        continue;
      const auto seq = s.acquisitions.load(std::memory_order_acquire);
      const auto at = s.acquired_at.load(std::memory_order_acquire);
      if (now - at < threshold || s.leak_reported.load(std::memory_order_relaxed) == seq) continue;
      const acquire_site site{s.site_file.load(std::memory_order_relaxed),
                              s.site_function.load(std::memory_order_relaxed),
                              s.site_line.load(std::memory_order_relaxed)};
      // Still the same lease? (It may have come back and gone out again meanwhile.)
      if ((s.state.load(std::memory_order_acquire) & slot_state::mask) != slot_state::in_use ||
          s.acquisitions.load(std::memory_order_acquire) != seq)
        continue;
      s.leak_reported.store(seq, std::memory_order_relaxed);
      if (opts_.on_event) {
        pool_event e;
        e.kind = event_kind::leak_suspected;
        e.where = site;
        e.held = std::chrono::duration_cast<std::chrono::milliseconds>(ns(now - at));
        emit(e);
      }
    }
  }

  void report_leak_return(slot_type& s, std::int64_t now) noexcept {
    if (s.leak_reported.load(std::memory_order_relaxed) !=
        s.acquisitions.load(std::memory_order_relaxed))
      return;
    if (!opts_.on_event || (s.state.load(std::memory_order_acquire) & slot_state::orphaned) != 0)
      return;
    pool_event e;
    e.kind = event_kind::leak_returned;
    e.where = {s.site_file.load(std::memory_order_relaxed),
               s.site_function.load(std::memory_order_relaxed),
               s.site_line.load(std::memory_order_relaxed)};
    e.held = std::chrono::duration_cast<std::chrono::milliseconds>(
        ns(now - s.acquired_at.load(std::memory_order_relaxed)));
    emit(e);
  }

  // ---- events

  void emit(pool_event& e) noexcept {
    e.pool_name = opts_.name;
    try {
      opts_.on_event(e);
    } catch (...) {  // a throwing callback must not break the pool
    }
  }
  void emit_message(event_kind kind, const std::string& message) noexcept {
    if (!opts_.on_event) return;
    pool_event e;
    e.kind = kind;
    e.message = message;
    emit(e);
  }

  void stop_and_join() noexcept {
    {
      std::lock_guard lk(mutex_);
      stop_threads_ = true;
      creator_cv_.notify_all();
      housekeeper_cv_.notify_all();
    }
    // An event callback that closes the pool runs on one of these threads: it cannot join
    // itself; the handle's destructor (on another thread) joins it later.
    const auto self = std::this_thread::get_id();
    for (std::thread* t : {&creator_, &housekeeper_})
      if (t->joinable() && t->get_id() != self) t->join();
  }

  // ---------------------------------------------------------------- data

  [[no_unique_address]] F factory_;
  [[no_unique_address]] V validator_;
  [[no_unique_address]] S resetter_;
  const pool_options opts_;
  const std::size_t size_;
  const std::uint64_t id_ = next_pool_id();
  const std::int64_t validate_after_idle_ns_ = to_ns(opts_.validate_after_idle);
  std::unique_ptr<slot_type[]> slots_;

  // Read on the fast path, written rarely: their own cache lines.
  alignas(cache_line) std::atomic<std::uint64_t> epoch_{0};  // closed bit | generation << 1
  std::atomic<std::int64_t> coarse_now_{0};                  // the clock at housekeeping tick
  alignas(cache_line) std::atomic<std::size_t> waiters_{0};  // callers in the slow path

  // The slow path, under the mutex.
  alignas(cache_line) mutable std::mutex mutex_;
  std::condition_variable creator_cv_;
  std::condition_variable housekeeper_cv_;
  waiter* queue_head_ = nullptr;
  waiter* queue_tail_ = nullptr;
  std::size_t queue_size_ = 0;
  std::size_t spare_requests_ = 0;
  bool stop_threads_ = false;
  std::uint64_t created_ = 0;
  std::array<std::uint64_t, destroy_reason_count> destroyed_by_{};
  std::uint64_t timeouts_ = 0;
  std::uint64_t create_failures_ = 0;
  std::uint64_t fast_failures_ = 0;
  std::uint64_t shed_ = 0;
  std::uint64_t slow_acquired_ = 0;
  wait_histogram wait_hist_;
  std::chrono::microseconds wait_max_{0};
  std::uint32_t consecutive_failures_ = 0;
  std::int64_t next_retry_at_ = 0;
  std::exception_ptr last_error_;
  std::string last_error_text_;
  std::mt19937_64 rng_;

  std::atomic<int> refs_{1};  // the handle, plus one per lease orphaned by its destruction
  std::thread creator_;
  std::thread housekeeper_;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
