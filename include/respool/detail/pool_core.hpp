#pragma once
// The pool's policies and background work, built on the mechanism in slot_table.hpp (slots,
// their states, the idle index, the control word) and waiter_queue.hpp. `respool::pool` is a
// thin handle around it; leases point into it, so it lives until the handle, the last
// outstanding lease and the last background thread are all gone.
//
// Who runs what:
//  - Callers claim idle slots lock-free, validate on borrow (only before their deadline), and
//    otherwise queue as waiters.
//  - A holder returning a lease resets it, then returns it lock-free, or under the lock hands
//    it to a waiter.
//  - The housekeeper thread ticks the coarse clock and decides what housekeeping is due. It
//    never runs user code, so a hung ping or destructor cannot stop the clock.
//  - Background workers (pool_workers.hpp) run every factory call, keepalive ping and
//    retirement destructor, and the events those raise. A worker stuck in user code holds up
//    only itself.
//
// Invariants (besides S1-S4 in slot_table.hpp and Q1-Q3 in waiter_queue.hpp):
//  P1. live_ counts the slots that are not empty and creating_ the ones creating; both change
//      only under mutex_. The free list holds exactly the empty slots.
//  P2. A waiter is counted in the control word while queued (added and removed under mutex_).
//  P3. (No lost wake-up.) While a slot is idle and waiters are queued, some queued waiter is
//      awake (not parked, or notified) and will scan again. Whoever makes a slot idle while
//      waiters are queued bumps wake_seq_ if a waiter is running (it may be mid-scan), and wakes
//      one if none is running or woken already (activity_ counts both; the wake under mutex_).
//      A running waiter parks only if wake_seq_ has not moved since its last scan began and
//      that scan met no returning slot (it leaves the running count first, then reads
//      wake_seq_; a lock-free return marks its slot, reads the count, bumps wake_seq_, reads the
//      count again: seq_cst, so one of the two sees the other). A woken waiter scans from
//      scratch after the return's mark. One that leaves the queue awake wakes another if none
//      is. So at most one waiter is woken per idle slot, not one per return: waking a thread
//      that a barging one then beats costs more than it gives.
//  P4. (Eventual fairness.) A return goes straight to the oldest waiter once that waiter has
//      waited fairness_window and no such forced hand-off happened in the last window (in
//      strict mode, always), or to a waiter that is spinning; otherwise it goes idle for
//      whoever runs first, and a waiter is woken to try.
//  P5. refs_ = 1 for the handle + 1 per live worker + 1 per orphaned lease + 1 per callback
//      or destruction that runs on a caller's thread; the core deletes itself at 0. The
//      handle's destruction waits for every returning slot, so no return is half-way through
//      the pool's memory when the handle lets go.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <source_location>
#include <stdexcept>
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
#include "creation_policy.hpp"
#include "pool_settings.hpp"
#include "pool_time.hpp"
#include "slot_table.hpp"
#include "test_hooks.hpp"
#include "thread_hint.hpp"
#include "waiter_queue.hpp"

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

// Slow paths out of line, so the fast path stays a few cache lines of straight code.
#if defined(__GNUC__) || defined(__clang__)
#define RESPOOL_DETAIL_COLD [[gnu::cold, gnu::noinline]]
#else
#define RESPOOL_DETAIL_COLD
#endif

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Real time for spinning and the fairness window: scheduling is about real time, whatever
// clock the pool's deadlines and lifetimes use.
inline auto steady_ns() noexcept -> std::int64_t {
  return std::chrono::duration_cast<ns>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

template <class F, class V, class S, class Clock>
class pool_core final : public lease_home<resource_t<F>> {
 public:
  using R = resource_t<F>;
  using slot_type = slot<R>;

  pool_core(F f, pool_options options, V v, S s)
      : factory_(std::move(f)),
        validator_(std::move(v)),
        resetter_(std::move(s)),
        opts_(std::move(options)),
        cfg_(pool_settings::from(opts_)),
        table_(make_table(opts_.max_size)),
        breaker_(cfg_.fail_fast_after, cfg_.backoff_min, cfg_.backoff_max),
        rng_(std::random_device{}()) {
    free_slots_.reserve(cfg_.max_size);
    creation_starts_.reserve(cfg_.create_concurrency + 1);
    for (std::size_t i = cfg_.max_size; i-- > 0;) free_slots_.push_back(static_cast<std::uint32_t>(i));
    coarse_now_.store(clock_.now(), std::memory_order_relaxed);
    // The housekeeper first: if it cannot start, nothing else has (a worker would outlive the
    // memory a throwing constructor frees).
    if (cfg_.housekeeping > 0) housekeeper_ = std::thread([this] { housekeeper_loop(); });
    prewarm();
  }

  pool_core(const pool_core&) = delete;
  auto operator=(const pool_core&) -> pool_core& = delete;

  // ---------------------------------------------------------------- acquire

  auto acquire(std::int64_t timeout, const std::source_location& where, acquire_failure* fail)
      -> lease<R> {
    // Pool time is read only once this acquire does something slow (validates or queues), so
    // the uncontended path reads no clock; the deadline counts from that first reading.
    std::int64_t deadline = 0;
    if (!cfg_.strict_fifo() || table_.control().load().waiters() == 0) {
      if (slot_type* s = claim()) {
        switch (borrow_check(*s, deadline, timeout, nullptr)) {
          case borrow::ok: return grant(*s, to_site(where));
          case borrow::too_late: return timed_out(fail, timeout, "; no time left to validate");
          case borrow::retired: break;
        }
      }
    }
    return acquire_slow(timeout, deadline, where, fail);
  }

  [[nodiscard]] auto default_timeout() const noexcept -> std::int64_t { return cfg_.acquire_timeout; }

  auto try_acquire(const std::source_location& where) -> std::optional<lease<R>> {
    const auto site = to_site(where);
    std::int64_t deadline = 0;
    while (!cfg_.strict_fifo() || table_.control().load().waiters() == 0) {
      slot_type* s = claim();
      if (s == nullptr) break;
      if (borrow_check(*s, deadline, 0, nullptr) == borrow::ok) return grant(*s, site);
      if (deadline != 0 && clock_.now() > deadline) return std::nullopt;
    }
    request_spare();
    return std::nullopt;
  }

  // ---------------------------------------------------------------- release (lease_home)

  void release(slot_type& s, bool discard) noexcept override {
#if RESPOOL_DEBUG_CHECKS
    if (s.debug_holders.fetch_sub(1, std::memory_order_relaxed) != 1)
      debug_check_failed("a lease returned a resource it did not hold alone");
#endif
    const auto now = coarse_now_.load(std::memory_order_relaxed);
    if (cfg_.leak_threshold != never_ns) report_leak_return(s, now);
    // Decide before resetting: a resource about to be destroyed is not reset.
    auto why = retire_reason(s, discard, now);
    if (!why && !invoke_resetter(s)) why = destroy_reason::failed_reset;
    s.last_used.store(now, std::memory_order_relaxed);
    tls_hints.remember(id_, s.index);
    if (why) {
      retire(s, *why);
      return;
    }
    return_slot(s);
  }

  // ---------------------------------------------------------------- maintenance

  /// One housekeeping pass on the calling thread, including the user code it leads to
  /// (keepalive pings, destructors, events), which the background pass leaves to workers.
  void run_maintenance() {
    plan_maintenance(clock_.now(), true);
    run_pending_jobs();
  }

  void evict_all() {
    {
      std::lock_guard lk(mutex_);
      table_.control().next_generation();
    }
    // Idle ones now, on this thread ("failover: close the old connections"); leased ones on
    // return; ones being created or checked when that ends (every hand-off checks the
    // generation).
    for (std::size_t i = 0; i < table_.size(); ++i) {
      auto& s = table_[i];
      if (slot_table<R>::try_reserve(s)) destroy_reserved(s, destroy_reason::evicted);
    }
    std::lock_guard lk(mutex_);
    kick_locked();
  }

  void close() {
    {
      std::lock_guard lk(mutex_);
      if (table_.control().load().closed()) return;
      table_.control().close();
      stopping_ = true;
      fail_all_waiters_locked(errc::closed, "the pool was closed", nullptr);
      workers_cv_.notify_all();
      housekeeper_cv_.notify_all();
    }
    if (housekeeper_.joinable() && housekeeper_.get_id() != std::this_thread::get_id())
      housekeeper_.join();
    // Idle resources now. A slot being returned is waited out: its holder either sees the pool
    // closed (and destroys its resource) or leaves it idle for this sweep.
    for (std::size_t i = 0; i < table_.size(); ++i) {
      auto& s = table_[i];
      slot_table<R>::await_return(s);
      if (slot_table<R>::try_reserve(s)) destroy_reserved(s, destroy_reason::closed);
    }
    run_pending_jobs();
    // Give a connect, ping or destructor in flight a moment to end, so that a pool closed in
    // normal times is empty when close() returns; one that hangs is not waited for: its worker
    // destroys what it was working on when it returns.
    std::unique_lock lk(mutex_);
    const std::size_t self = tls_worker_of == this ? 1 : 0;  // close() from an event callback
    quiet_cv_.wait_for(lk, close_grace, [&] { return workers_alive_ == self; });
    quiet_cv_.wait(lk, [this] { return workers_alive_ == workers_in_user_code_; });
  }

  // Called by the handle's destructor: close, then let the last reference free us.
  void destroy_handle() noexcept {
    close();
    for (std::size_t i = 0; i < table_.size(); ++i) {
      auto& s = table_[i];
      // A lease still out keeps the core alive (P5); one returned meanwhile is destroyed here.
      refs_.fetch_add(1, std::memory_order_relaxed);
      if (!slot_table<R>::try_orphan(s)) refs_.fetch_sub(1, std::memory_order_relaxed);
      slot_table<R>::await_return(s);
      if (slot_table<R>::try_reserve(s)) destroy_reserved(s, destroy_reason::closed);
    }
    unref();
  }

  // ---------------------------------------------------------------- stats

  auto stats() const -> pool_stats {
    pool_stats st;
    std::lock_guard lk(mutex_);
    const auto c = counts_locked();
    st.max_size = cfg_.max_size;
    st.total = c.total();
    st.idle = c.idle;
    st.in_use = c.in_use;
    st.creating = c.creating;
    st.waiters = queue_.size();
    for (std::size_t i = 0; i < table_.size(); ++i)
      st.acquired += table_[i].acquisitions.load(std::memory_order_relaxed);
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
  static constexpr std::int64_t spin_ns = 4'000;  // a hand-off usually comes within this
  static constexpr std::int64_t overdue_windows = 8;  // see handoff_target_locked
  static constexpr auto worker_linger = std::chrono::seconds(2);
  static constexpr std::size_t job_lanes = 4;  // workers running pings, destructors, events
  static constexpr auto close_grace = std::chrono::milliseconds(100);
  static constexpr std::int64_t stall_floor = 20'000'000;  // 20 ms: see stall_after
  static inline thread_local const void* tls_worker_of = nullptr;  // the pool a worker serves

  struct waiter : waiter_link {
    std::int64_t deadline = 0;   // pool time
    std::int64_t since = 0;      // steady time it first queued (fairness window)
    slot_type* granted = nullptr;
    bool fresh = false;          // just created or checked: no borrow check needed
    bool notified = false;       // woken to scan (P3)
    std::uint64_t seen = 0;      // wake_seq_ when its last scan began (P3)
    bool spinning = false;       // awake and polling: a hand-off reaches it at once (P4)
    bool parked = false;         // asleep on cv: whoever serves it must notify
    std::atomic<bool> served{false};  // lets a spinning waiter see its hand-off without the lock
    std::optional<acquire_failure> failure;
    std::condition_variable cv;
    // How to wake it (P3). A blocked thread notifies its condition variable; a waiter that is a
    // callback or a coroutine would schedule itself instead.
    void (*wake)(waiter&) noexcept = [](waiter& self) noexcept {
      if (self.parked) self.cv.notify_one();
    };
  };

  struct counts {
    std::size_t idle = 0, in_use = 0, creating = 0, reserved = 0;
    [[nodiscard]] auto total() const noexcept -> std::size_t {
      return idle + in_use + creating + reserved;
    }
  };

  enum class borrow : std::uint8_t { ok, retired, too_late };

  // User code queued for a worker: a retirement, a keepalive check, or an event (the events
  // raised where no user code may run: on the housekeeper, or a caller past its deadline).
  struct job {
    enum kind_t : std::uint8_t { destroy, check, event };
    kind_t kind = destroy;
    slot_type* s = nullptr;
    destroy_reason why{};
    event_kind what{};
    acquire_site where{};
    std::chrono::milliseconds held{};
    std::string text;
  };
  static auto destroy_job(slot_type& s, destroy_reason why) noexcept -> job {
    job j;
    j.s = &s;
    j.why = why;
    return j;
  }
  static auto check_job(slot_type& s) noexcept -> job {
    job j;
    j.kind = job::check;
    j.s = &s;
    return j;
  }
  static auto event_job(event_kind kind) noexcept -> job {
    job j;
    j.kind = job::event;
    j.what = kind;
    return j;
  }

  ~pool_core() = default;

  static auto make_table(std::size_t n) -> slot_table<R> {
    try {
      return slot_table<R>(n);
    } catch (const std::bad_alloc&) {
      throw std::invalid_argument("respool pool_options: max_size " + std::to_string(n) +
                                  " cannot be allocated");
    }
  }

  [[nodiscard]] auto closed() const noexcept -> bool { return table_.control().load().closed(); }

  [[nodiscard]] auto hint() const noexcept -> std::uint32_t {
    const auto h = tls_hints.find(id_, thread_hints::none);
    if (h != thread_hints::none) return h;
    // Threads without a hint start at a place of their own, so they do not all probe slot 0
    // (a division: only here, not on every acquire).
    return static_cast<std::uint32_t>((reinterpret_cast<std::uintptr_t>(&tls_hints) >> 6U) %
                                      cfg_.max_size);
  }

  auto claim() noexcept -> slot_type* {
    typename slot_table<R>::scan_notes notes;
    slot_type* s = table_.claim(hint(), notes);
    if (notes.republished) wake_if_waiting();
    return s;
  }

  // ---- borrowing

  // Checks a claimed resource before lending it: closed, lifetime, eviction, validate after
  // idle. Validates only before the caller's deadline (reading the clock for it if not yet).
  // A caller that came through the queue rejoins it at its place before its resource is
  // retired, so the replacement is still its (Q2).
  auto borrow_check(slot_type& s, std::int64_t& deadline, std::int64_t timeout, waiter* w)
      -> borrow {
    const auto failed = [&](destroy_reason why) {
      if (w != nullptr && w->ticket != 0) keep_place(*w);
      retire(s, why);
      return borrow::retired;
    };
    // seq_cst after the claiming CAS: either close() sees this slot leased, or we see it closed.
    const auto c = table_.control().load();
    const auto now = coarse_now_.load(std::memory_order_relaxed);
    if (c.closed()) return failed(destroy_reason::closed);
    if (now >= s.expires_at.load(std::memory_order_relaxed)) return failed(destroy_reason::lifetime);
    if (s.generation != c.generation()) return failed(destroy_reason::evicted);
    if constexpr (!std::is_same_v<V, always_valid>) {
      const auto after = cfg_.validate_after_idle;
      // 0 validates every borrow, even one the coarse clock places "before" the last return.
      if (after == 0 ||
          (after != never_ns && now - s.last_used.load(std::memory_order_relaxed) >= after)) {
        const auto t = clock_.now();
        if (deadline == 0) deadline = add_sat(t, timeout);
        if (t > deadline) {
          return_slot(s);
          return borrow::too_late;
        }
        if (!invoke_validator(s)) return failed(destroy_reason::failed_validation);
      }
    }
    return borrow::ok;
  }

  auto grant(slot_type& s, const acquire_site& site) noexcept -> lease<R> {
#if RESPOOL_DEBUG_CHECKS
    if (s.debug_holders.fetch_add(1, std::memory_order_relaxed) != 0)
      debug_check_failed("a resource was lent to a second holder");
#endif
    const auto n = s.acquisitions.load(std::memory_order_relaxed) + 1;
    s.acquisitions.store(n, std::memory_order_relaxed);  // only the holder writes it
    if (cfg_.leak_threshold != never_ns) {
      s.site_file.store(site.file_name, std::memory_order_relaxed);
      s.site_function.store(site.function_name, std::memory_order_relaxed);
      s.site_line.store(site.line, std::memory_order_relaxed);
      s.acquired_at.store(coarse_now_.load(std::memory_order_relaxed), std::memory_order_release);
    }
    return lease_access::make<R>(this, &s);
  }

  auto invoke_validator(slot_type& s) noexcept -> bool {
    try {
      return invoke_validate(validator_, *s.resource);
    } catch (...) {
      return false;
    }
  }

  auto invoke_resetter(slot_type& s) noexcept -> bool {
    if constexpr (std::is_same_v<S, no_reset>) {
      (void)s;
      return true;
    } else {
      try {
        return invoke_reset(resetter_, *s.resource);
      } catch (...) {
        return false;
      }
    }
  }

  // ---- returning

  auto retire_reason(slot_type& s, bool discard, std::int64_t now) noexcept
      -> std::optional<destroy_reason> {
    const auto c = table_.control().load();
    if (discard) return destroy_reason::discarded;
    if (c.closed()) return destroy_reason::closed;
    if (s.generation != c.generation()) return destroy_reason::evicted;
    if (now >= s.expires_at.load(std::memory_order_relaxed)) return destroy_reason::lifetime;
    if (cfg_.max_uses != 0 && ++s.uses >= cfg_.max_uses) return destroy_reason::max_uses;
    return std::nullopt;
  }

  // Puts a slot its holder owns back into circulation: idle (lock-free) when nobody waits, else
  // under the lock, to a waiter or idle with a waiter woken.
  //
  // With waiters queued, the lock is needed only for a hand-off (P4) or to wake one (P3): a
  // return that neither owes a hand-off nor finds every waiter asleep announces itself in
  // wake_seq_ and leaves. (Taking the lock on every return while anyone waits made returns
  // queue behind one another on the lock: 0.85x the mutex pool under contention.)
  void return_slot(slot_type& s) noexcept {
    auto c = table_.control().load();
    if (c.waiters() == 0 || !handoff_maybe_due()) {
      if (!table_.begin_return(s)) return drop_orphan(s);
      c = table_.control().load();  // S4: after the mark
      if (!c.closed()) {
        if (c.waiters() == 0) return slot_table<R>::finish_return(s);
        // P3 without the lock. A running waiter may be mid-scan: announce, so it looks again
        // before it parks (pairs with its decrement of the running count and its read of
        // wake_seq_). One woken already scans after our mark. If none is either, one must be
        // woken under the lock.
        auto a = activity_.load(std::memory_order_seq_cst);
        if (running_of(a) != 0) {
          wake_seq_.fetch_add(1, std::memory_order_seq_cst);
          a = activity_.load(std::memory_order_seq_cst);
        }
        if (a != 0) return slot_table<R>::finish_return(s);
      }
    }
    return_slot_locked(s);
  }

  // A hand-off may be owed, every waiter sleeps, or the pool closed meanwhile: the slot is
  // still ours (in use or returning).
  RESPOOL_DETAIL_COLD void return_slot_locked(slot_type& s) noexcept {
    std::unique_lock lk(mutex_);
    if ((s.state.load(std::memory_order_relaxed) & slot_state::orphaned) != 0) {
      lk.unlock();
      return drop_orphan(s);
    }
    if (!give_locked(s, false)) retire_locked(s, destroy_reason::closed, lk);
  }

  // A slot this thread owns goes to a waiter (P4) or idle (with one woken, P3). False if the
  // pool is closed: the caller must retire it.
  auto give_locked(slot_type& s, bool fresh) noexcept -> bool {
    if (table_.control().load().closed()) return false;
    if (waiter* w = handoff_target_locked()) {
      grant_locked(*w, s, fresh);
      return true;
    }
    table_.make_idle(s);
    announce_idle_locked();
    return true;
  }

  // P4: who a return goes to directly, if anyone. A hand-off to a waiter that is not running
  // leaves the running threads with nothing, so, as in parking_lot's eventual fairness, one is
  // forced at most once per window (the first return after the window), not on every return
  // while the head is overdue: a waiter at the head is served within a window or two, and
  // everyone else keeps running meanwhile.
  auto handoff_target_locked() noexcept -> waiter* {
    waiter* head = queue_.front();
    if (head == nullptr || cfg_.strict_fifo() || head->spinning) return head;
    const auto now = steady_ns();
    const auto waited = now - head->since;
    // Overdue by far (a long queue, each served one window after the other): every return.
    if ((now >= next_fair_at_ && waited >= cfg_.fairness_window) ||
        waited >= overdue_windows * cfg_.fairness_window) {
      next_fair_at_ = now + cfg_.fairness_window;
      update_fair_due_locked();
      return head;
    }
    return queue_.find_first([](const waiter& w) { return w.spinning; });
  }

  // Whether a return may owe a hand-off (P4), read without the lock: strict mode, a waiter
  // spinning, or the head's turn come. A stale answer delays one hand-off or costs one lock.
  [[nodiscard]] auto handoff_maybe_due() const noexcept -> bool {
    return cfg_.strict_fifo() || spinners_.load(std::memory_order_relaxed) != 0 ||
           steady_ns() >= fair_due_at_.load(std::memory_order_relaxed);
  }

  // When the head's next forced hand-off is due (see handoff_target_locked), for returns to
  // read without the lock.
  void update_fair_due_locked() noexcept {
    const waiter* head = queue_.front();
    std::int64_t due = never_ns;
    if (head != nullptr) {
      const auto w = cfg_.fairness_window;
      due = std::min(std::max(next_fair_at_, head->since + w), head->since + overdue_windows * w);
    }
    fair_due_at_.store(due, std::memory_order_relaxed);
  }

  void grant_locked(waiter& w, slot_type& s, bool fresh) noexcept {
    leave_queue_locked(w);
    slot_table<R>::hand_over(s);
    w.granted = &s;
    w.fresh = fresh;
    w.served.store(true, std::memory_order_release);  // pairs with the spinning waiter's acquire
    w.wake(w);
  }

  static auto awake(const waiter& w) noexcept -> bool { return !w.parked || w.notified; }

  // activity_: queued waiters running (low half) and parked but woken (high half).
  static constexpr std::uint64_t one_running = 1;
  static constexpr std::uint64_t one_woken = std::uint64_t{1} << 32U;
  static constexpr auto running_of(std::uint64_t a) noexcept -> std::uint32_t {
    return static_cast<std::uint32_t>(a);
  }

  // P3: a slot went idle; make sure a queued waiter will look.
  void announce_idle_locked() noexcept {
    wake_seq_.fetch_add(1, std::memory_order_seq_cst);
    wake_one_if_none_awake_locked();
  }

  void wake_one_if_none_awake_locked() noexcept {
    if (queue_.empty() || activity_.load(std::memory_order_relaxed) != 0) return;
    waiter* w = queue_.front();  // all parked and none woken: the oldest
    w->notified = true;
    activity_.fetch_add(one_woken, std::memory_order_seq_cst);
    w->wake(*w);
  }

  // The returner's half of S4 for a thread that restored a mark another scanner may have missed.
  void wake_if_waiting() noexcept {
    if (table_.control().load().waiters() == 0) return;
    std::lock_guard lk(mutex_);
    announce_idle_locked();
  }

  void leave_queue_locked(waiter& w) noexcept {
    if (!w.queued) return;
    const bool was_awake = awake(w);
    const bool was_head = queue_.front() == &w;
    queue_.remove(w);
    table_.control().remove_waiter();
    if (was_awake)
      activity_.fetch_sub(w.parked ? one_woken : one_running, std::memory_order_seq_cst);
    if (was_head) update_fair_due_locked();
    if (was_awake) wake_one_if_none_awake_locked();  // P3: the look it was to take
  }

  // ---- waiting

  // Nothing idle at the first look, or it failed its check: try again, then wait. The waiter
  // record (with its condition variable) exists only here, off the fast path.
  RESPOOL_DETAIL_COLD auto acquire_slow(std::int64_t timeout, std::int64_t deadline,
                                        const std::source_location& where, acquire_failure* fail)
      -> lease<R> {
    waiter w;
    for (;;) {
      slot_type* s = nullptr;
      bool fresh = false;
      // Once it has waited, a caller takes what comes through the queue (a waiter whose
      // hand-off failed its check is queued again already, Q2, and may be served meanwhile).
      if (w.ticket == 0 && (!cfg_.strict_fifo() || table_.control().load().waiters() == 0))
        s = claim();
      if (s == nullptr) {
        if (deadline == 0) deadline = add_sat(clock_.now(), timeout);
        if (timeout == 0) return refuse_at_once(fail);
        s = wait_for_slot(w, deadline, timeout, fail, fresh);
        if (s == nullptr) return {};
      }
      if (fresh) return grant(*s, to_site(where));
      switch (borrow_check(*s, deadline, timeout, &w)) {
        case borrow::ok: return grant(*s, to_site(where));
        case borrow::too_late:
          abandon(w);
          return timed_out(fail, timeout, "; no time left to validate");
        case borrow::retired: break;
      }
      // It failed validation (or expired) and is gone. Validators that fail slowly must not
      // stretch the caller's timeout: check it before trying again.
      const auto t = clock_.now();
      if (deadline == 0) deadline = add_sat(t, timeout);
      if (t > deadline) {
        abandon(w);
        return timed_out(fail, timeout, "; idle resources kept failing validation");
      }
    }
  }

  // Shed, fail fast, or queue until a resource is handed over or found idle, the deadline
  // passes, or the pool gives up on us (closed, backend down). `fresh`: no borrow check needed.
  auto wait_for_slot(waiter& w, std::int64_t deadline, std::int64_t timeout,
                     acquire_failure* fail, bool& fresh) -> slot_type* {
    std::unique_lock lk(mutex_);
    const auto now = clock_.now();
    coarse_now_.store(now, std::memory_order_relaxed);
    if (w.granted != nullptr || w.failure || w.queued) {
      // Queued again by keep_place, and maybe served or failed since: wait on as we are.
    } else if (closed()) {
      return fail_locked(fail, errc::closed, "the pool is closed");
    } else {
      if (w.ticket == 0 && !admit_locked(w, now, fail)) return nullptr;
      join_queue_locked(w, deadline);
    }
    const auto started = now;
    slot_type* s = wait_queued_locked(w, lk);

    const auto waited = std::chrono::duration_cast<std::chrono::microseconds>(
        ns(std::max<std::int64_t>(0, clock_.now() - started)));
    wait_hist_.buckets[wait_histogram::bucket_of(waited)] += 1;
    wait_max_ = std::max(wait_max_, waited);
    if (s != nullptr) {
      ++slow_acquired_;
      fresh = w.fresh;
      w.fresh = false;
      w.failure.reset();  // failed (say, the backend went down) just as it found one: it has one
      return s;
    }
    if (w.failure) {
      if (fail != nullptr) *fail = std::move(*w.failure);
      w.failure.reset();
      return nullptr;
    }
    lk.unlock();
    timed_out(fail, timeout, "");
    return nullptr;
  }

  // A first arrival: shed beyond max_waiters, or fail fast while the backend is known down and
  // nothing alive could serve it. Starts its fairness clock.
  auto admit_locked(waiter& w, std::int64_t now, acquire_failure* fail) -> bool {
    if (queue_.size() >= cfg_.max_waiters) {
      ++shed_;
      fail_locked(fail, errc::exhausted,
                  "load shed: " + std::to_string(queue_.size()) +
                      " callers already wait (max_waiters " + std::to_string(cfg_.max_waiters) +
                      ")");
      return false;
    }
    if (live_ == creating_ && breaker_.fails_fast(now)) {
      ++fast_failures_;
      fail_locked(fail, errc::backend_unavailable,
                  "backend unavailable: creating a resource failed " +
                      std::to_string(breaker_.consecutive_failures()) +
                      " times in a row and nothing is idle or in use; failing fast until the "
                      "next attempt");
      return false;
    }
    w.since = steady_ns();
    return true;
  }

  void join_queue_locked(waiter& w, std::int64_t deadline) noexcept {
    w.deadline = deadline;
    w.served.store(false, std::memory_order_relaxed);
    w.granted = nullptr;
    w.failure.reset();
    w.notified = false;
    queue_.push(w);
    table_.control().add_waiter();  // announce, then scan (S4)
    activity_.fetch_add(one_running, std::memory_order_seq_cst);  // it runs (P3)
    if (queue_.front() == &w) update_fair_due_locked();
    kick_locked();
  }

  // Q2: back to its place, before the resource it was handed is retired.
  void keep_place(waiter& w) {
    std::lock_guard lk(mutex_);
    if (!w.queued && w.granted == nullptr && !w.failure && !closed()) join_queue_locked(w, w.deadline);
  }

  // Leaves for good (timed out outside the queue's own wait): out of the queue, passing on a
  // notification or a hand-off that reached it meanwhile (P3).
  void abandon(waiter& w) noexcept {
    if (w.ticket == 0) return;  // never queued
    std::unique_lock lk(mutex_);
    leave_queue_locked(w);
    if (slot_type* g = std::exchange(w.granted, nullptr))
      if (!give_locked(*g, false)) retire_locked(*g, destroy_reason::closed, lk);
  }

  // Queued and announced: scan, spin briefly, park; until served, failed or timed out (then
  // null with the waiter out of the queue and, on timeout, no failure set). Lock held on entry
  // and exit.
  auto wait_queued_locked(waiter& w, std::unique_lock<std::mutex>& lk) -> slot_type* {
    bool spin = !cfg_.strict_fifo() && spinners_.load(std::memory_order_relaxed) < cfg_.max_spinners;
    for (;;) {
      if (w.granted != nullptr) return std::exchange(w.granted, nullptr);
      if (w.failure) return nullptr;
      if (clock_.now() >= w.deadline) {
        leave_queue_locked(w);
        return nullptr;
      }
      w.notified = false;
      w.seen = wake_seq_.load(std::memory_order_seq_cst);
      if (spin) {
        w.spinning = true;
        spinners_.fetch_add(1, std::memory_order_relaxed);
      }
      lk.unlock();
      typename slot_table<R>::scan_notes notes;
      slot_type* s = scan_and_spin(w, spin, notes);
      lk.lock();
      if (spin) {
        w.spinning = false;
        spinners_.fetch_sub(1, std::memory_order_relaxed);
        spin = false;  // once per wait: a second spin rarely pays on a busy machine
      }
      if (s != nullptr) {
        if (w.granted != nullptr) {  // a hand-off raced our claim: keep it, pass ours on
          if (!give_locked(*s, false)) retire_locked(*s, destroy_reason::closed, lk, true);
          return std::exchange(w.granted, nullptr);
        }
        leave_queue_locked(w);
        return s;
      }
      if (w.granted != nullptr || w.failure || w.notified || notes.saw_returning) continue;
      test_hooks::fire(test_hooks::point::before_park);
      if (w.granted != nullptr || w.failure || w.notified) continue;
      // P3: stop counting as awake, then look whether a slot went idle since the scan began
      // (pairs with a lock-free return's bump of wake_seq_ and its read of activity_).
      activity_.fetch_sub(one_running, std::memory_order_seq_cst);
      if (w.seen != wake_seq_.load(std::memory_order_seq_cst)) {
        activity_.fetch_add(one_running, std::memory_order_seq_cst);
        continue;
      }
      kick_locked();  // a creation meant for us may have stalled meanwhile
      auto span = sleep_span(clock_.now(), w.deadline);
      if (!creation_starts_.empty())  // wake when one stalls, to start another for us
        span = std::min(span, sleep_span(steady_ns(), next_stall_locked()) + ns(1'000'000));
      w.parked = true;
      w.cv.wait_for(lk, span);
      w.parked = false;
      // Running again (not counted at all once out of the queue).
      if (w.queued)
        activity_.fetch_add(one_running - (w.notified ? one_woken : 0), std::memory_order_seq_cst);
    }
  }

  // Lock not held. Scans for an idle slot (also after each hand-off check while spinning).
  auto scan_and_spin(waiter& w, bool spin, typename slot_table<R>::scan_notes& notes) noexcept
      -> slot_type* {
    test_hooks::fire(test_hooks::point::before_scan);
    if (w.served.load(std::memory_order_acquire)) return nullptr;
    if (slot_type* s = table_.claim(hint(), notes)) return s;
    test_hooks::fire(test_hooks::point::after_failed_scan);
    if (notes.republished) {
      notes.republished = false;
      wake_if_waiting();
    }
    if (!spin) return nullptr;
    const auto until = steady_ns() + spin_ns;
    for (unsigned i = 1;; ++i) {
      if (w.served.load(std::memory_order_acquire)) return nullptr;
      cpu_relax();
      if ((i & 63U) != 0) continue;
      if (steady_ns() >= until || clock_.now() >= w.deadline) return nullptr;
      if (slot_type* s = table_.claim(hint(), notes)) return s;
    }
  }

  auto refuse_at_once(acquire_failure* fail) -> lease<R> {
    request_spare();
    return timed_out(fail, 0, "; acquire(0) does not wait");
  }

  RESPOOL_DETAIL_COLD auto timed_out(acquire_failure* fail, std::int64_t timeout,
                                     const char* detail) -> lease<R> {
    const auto ms = timeout / 1'000'000;
    std::unique_lock lk(mutex_);
    ++timeouts_;
    auto f = make_failure_locked(
        errc::timeout,
        "timed out after " + std::to_string(ms) + " ms waiting for a resource" + detail, nullptr);
    post_event_locked(event_kind::acquire_timeout, f.message);
    if (fail != nullptr) *fail = std::move(f);
    return {};
  }

  auto fail_locked(acquire_failure* fail, errc code, const std::string& why) -> slot_type* {
    if (fail != nullptr) *fail = make_failure_locked(code, why, nullptr);
    return nullptr;
  }

  // The counts name the pool's state as the caller leaves it: a waiter failing or timing out
  // has left the queue already, so `waiters` never counts the caller itself.
  auto make_failure_locked(errc code, const std::string& why, std::exception_ptr cause,
                           std::size_t waiters_shown) const -> acquire_failure {
    const auto c = counts_locked();
    std::string msg = "respool pool '" + opts_.name + "': " + why + " (total " +
                      std::to_string(c.total()) + ", idle " + std::to_string(c.idle) +
                      ", in use " + std::to_string(c.in_use) + ", waiters " +
                      std::to_string(waiters_shown) + ", creating " + std::to_string(c.creating) +
                      ", max " + std::to_string(cfg_.max_size);
    if (!last_error_text_.empty()) msg += "; last creation error: " + last_error_text_;
    msg += ")";
    if (!cause && (code == errc::timeout || code == errc::backend_unavailable)) cause = last_error_;
    return {code, std::move(msg), std::move(cause)};
  }
  auto make_failure_locked(errc code, const std::string& why, std::exception_ptr cause) const
      -> acquire_failure {
    return make_failure_locked(code, why, std::move(cause), queue_.size());
  }

  void fail_all_waiters_locked(errc code, const std::string& why, const std::exception_ptr& cause) {
    if (queue_.empty()) return;
    const auto f = make_failure_locked(code, why, cause, 0);  // as each will leave: none waits
    while (waiter* w = queue_.front()) {
      leave_queue_locked(*w);
      w->failure = f;
      w->served.store(true, std::memory_order_release);
      w->wake(*w);
    }
  }

  [[nodiscard]] auto counts_locked() const noexcept -> counts {
    counts c;
    for (std::size_t i = 0; i < table_.size(); ++i) {
      switch (slot_table<R>::state_of(table_[i])) {
        case slot_state::idle: ++c.idle; break;
        case slot_state::in_use: ++c.in_use; break;
        case slot_state::creating: ++c.creating; break;
        case slot_state::reserved: ++c.reserved; break;
        default: break;
      }
    }
    return c;
  }

  // ---- retiring and destroying

  // A slot its holder owns is done: destroyed in the background while the pool is open (no
  // caller waits on a destructor), on this thread once it is closed.
  RESPOOL_DETAIL_COLD void retire(slot_type& s, destroy_reason why) noexcept {
    std::unique_lock lk(mutex_);
    retire_locked(s, why, lk);
  }

  // Lock held on entry; released on return if `keep_lock` is false.
  void retire_locked(slot_type& s, destroy_reason why, std::unique_lock<std::mutex>& lk,
                     bool keep_lock = false) noexcept {
    // A reference first (P5): once the pool is closed, destroy_handle may let the core go as
    // soon as it sees this slot leave its holder, before we would destroy it here.
    refs_.fetch_add(1, std::memory_order_relaxed);
    if (!slot_table<R>::reserve_owned(s)) {  // orphaned: the pool's handle is gone
      refs_.fetch_sub(1, std::memory_order_relaxed);  // the orphan's reference remains
      lk.unlock();
      drop_orphan(s);
      if (keep_lock) lk.lock();
      return;
    }
    if (!stopping_ && post_locked(destroy_job(s, why))) {
      refs_.fetch_sub(1, std::memory_order_relaxed);  // open, lock held: the handle's remains
      if (!keep_lock) lk.unlock();
      return;
    }
    lk.unlock();  // closed: destroy it here
    destroy_reserved(s, why);
    unref();
    if (keep_lock) lk.lock();
  }

  // Destroys the resource of a reserved slot this thread owns and frees the place.
  void destroy_reserved(slot_type& s, destroy_reason why) noexcept {
    s.resource.reset();  // may be slow (closing a socket): outside the lock
    std::unique_lock lk(mutex_);
    slot_table<R>::release_empty(s);
    free_slots_.push_back(s.index);
    --live_;
    ++destroyed_by_[static_cast<std::size_t>(why)];
    if (cfg_.min_idle > 0) want_min_idle_locked();
    kick_locked();  // capacity freed: waiters or min_idle may need a new one
    if (!opts_.on_event) return;
    pool_event e;
    e.kind = event_kind::destroyed;
    e.reason = why;
    lk.unlock();
    emit(e);
  }

  void drop_orphan(slot_type& s) noexcept {
    s.resource.reset();
    unref();
  }

  void unref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // ---- background jobs and workers

  // Queues user code for a worker. False if the queue cannot take it (memory): the caller then
  // runs it itself.
  auto post_locked(job&& j) noexcept -> bool {
    try {
      jobs_.push_back(std::move(j));
    } catch (...) {
      return false;
    }
    kick_locked();
    return true;
  }

  void post_event_locked(event_kind kind, const std::string& text) noexcept {
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
  [[nodiscard]] auto jobs_runnable_locked() const noexcept -> std::size_t {
    const std::size_t free_lanes = job_lanes > jobs_running_ ? job_lanes - jobs_running_ : 0;
    return std::min(jobs_.size(), free_lanes);
  }

  // How many creations may begin now (P1, the breaker).
  [[nodiscard]] auto creations_due_locked() const noexcept -> std::size_t {
    if (stopping_) return 0;
    const auto n = creations_to_start(cfg_.max_size, live_, creating_, stalled_creations_locked(),
                                      cfg_.create_concurrency, queue_.size(), extra_wanted_);
    return n == 0 ? 0 : breaker_.admit(clock_.now(), n, live_ > creating_);
  }

  // Creations in flight for much longer than usual: a connect that hangs. The waiters they were
  // meant for may have another one started (within create_concurrency).
  [[nodiscard]] auto stalled_creations_locked() const noexcept -> std::size_t {
    const auto limit = steady_ns() - stall_after(create_time_avg_, stall_floor);
    return static_cast<std::size_t>(std::count_if(
        creation_starts_.begin(), creation_starts_.end(), [&](std::int64_t t) { return t <= limit; }));
  }

  // When the next creation in flight will count as stalled (steady time), or never_ns.
  [[nodiscard]] auto next_stall_locked() const noexcept -> std::int64_t {
    const auto after = stall_after(create_time_avg_, stall_floor);
    std::int64_t next = never_ns;
    const auto now = steady_ns();
    for (auto t : creation_starts_)
      if (t + after > now) next = std::min(next, t + after);
    return next;
  }

  // There may be work: wake idle workers, or start new ones, one per piece of work.
  void kick_locked() noexcept {
    const std::size_t work = jobs_runnable_locked() + creations_due_locked();
    if (work == 0) return;
    if (workers_idle_ > 0) workers_cv_.notify_all();
    const std::size_t cap = job_lanes + cfg_.create_concurrency;
    for (std::size_t have = workers_idle_ + workers_starting_; have < work && workers_alive_ < cap;
         ++have) {
      refs_.fetch_add(1, std::memory_order_relaxed);  // the worker's (P5)
      try {
        std::thread([this] { worker_main(); }).detach();
      } catch (...) {  // no thread now; the next kick tries again
        refs_.fetch_sub(1, std::memory_order_relaxed);
        return;
      }
      ++workers_alive_;
      ++workers_starting_;
    }
  }

  void worker_main() noexcept {
    tls_worker_of = this;
    std::unique_lock lk(mutex_);
    --workers_starting_;
    for (;;) {
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
      if (stopping_) break;
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
    unref();
  }

  // Runs `f` (user code) with the lock released, counted so close() does not wait on it.
  template <class Fn>
  void run_user_code_locked(std::unique_lock<std::mutex>& lk, Fn&& f) {
    ++workers_in_user_code_;
    lk.unlock();
    f();
    lk.lock();
    --workers_in_user_code_;
    if (stopping_) quiet_cv_.notify_all();
  }

  void run_job(job& j) noexcept {
    switch (j.kind) {
      case job::destroy: destroy_reserved(*j.s, j.why); break;
      case job::check: finish_keepalive(*j.s); break;
      case job::event: {
        pool_event e;
        e.kind = j.what;
        e.where = j.where;
        e.held = j.held;
        e.message = j.text;
        emit(e);
        break;
      }
    }
  }

  // Runs every queued job on this thread (run_maintenance, close).
  void run_pending_jobs() {
    std::unique_lock lk(mutex_);
    while (!jobs_.empty()) {
      job j = std::move(jobs_.front());
      jobs_.pop_front();
      lk.unlock();
      run_job(j);
      lk.lock();
    }
  }

  // ---- creation

  // min_idle at construction, on the constructing thread; stops at the first failure (the
  // background then keeps trying, under the breaker's rules).
  void prewarm() {
    std::unique_lock lk(mutex_);
    for (std::size_t i = 0; i < cfg_.min_idle; ++i)
      if (!create_one_locked(lk)) break;
    extra_wanted_ = cfg_.min_idle - std::min(cfg_.min_idle, idle_count_locked());
    kick_locked();
  }

  // One factory call into a free slot. Lock held on entry and exit; released around the call.
  auto create_one_locked(std::unique_lock<std::mutex>& lk) -> bool {
    if (free_slots_.empty()) return false;
    slot_type& s = table_[free_slots_.back()];
    free_slots_.pop_back();
    slot_table<R>::begin_create(s);
    ++live_;
    ++creating_;
    const auto started = steady_ns();
    creation_starts_.push_back(started);  // reserved to create_concurrency: no allocation
    const bool probe = breaker_.on_start(live_ > creating_ + 1);  // +1: this one
    const auto generation = table_.control().load().generation();
    std::exception_ptr error;
    run_user_code_locked(lk, [&] {
      try {
        s.resource.emplace(invoke_create(factory_));
      } catch (...) {
        error = std::current_exception();
      }
    });
    --creating_;
    creation_starts_.erase(std::find(creation_starts_.begin(), creation_starts_.end(), started));
    const auto now = clock_.now();
    if (error) {
      slot_table<R>::release_empty(s);
      free_slots_.push_back(s.index);
      --live_;
      on_create_failed_locked(error, now, probe);
      emit_unlocked(lk, [&] {
        pool_event e;
        e.kind = event_kind::create_failed;
        e.error = error;
        const auto text = describe_exception(error);
        e.message = text;
        emit(e);
      });
      return false;
    }
    ++created_;
    const auto took = steady_ns() - started;
    create_time_avg_ = create_time_avg_ == 0 ? took : (create_time_avg_ * 7 + took) / 8;
    breaker_.on_success();
    last_error_ = nullptr;
    last_error_text_.clear();
    s.uses = 0;
    s.generation = generation;
    s.last_checked.store(now, std::memory_order_relaxed);
    s.last_used.store(now, std::memory_order_relaxed);
    s.expires_at.store(lifetime_deadline(now), std::memory_order_relaxed);
    const bool went_idle = queue_.empty();
    const bool kept = make_available_locked(s, true);
    if (kept && went_idle && extra_wanted_ > 0) --extra_wanted_;
    emit_unlocked(lk, [&] {
      pool_event e;
      e.kind = event_kind::created;
      emit(e);
    });
    if (!kept) {
      const auto why = closed() ? destroy_reason::closed : destroy_reason::evicted;
      lk.unlock();
      destroy_reserved(s, why);
      lk.lock();
    }
    return true;
  }

  template <class Fn>
  void emit_unlocked(std::unique_lock<std::mutex>& lk, Fn&& f) {
    if (!opts_.on_event) return;
    run_user_code_locked(lk, std::forward<Fn>(f));
  }

  // A new or checked resource (owned: creating or reserved) goes to the oldest waiter, or idle.
  // False (and the slot reserved) if it must be destroyed instead: the pool closed, or the
  // resource is from before an eviction, or past its lifetime.
  auto make_available_locked(slot_type& s, bool fresh) noexcept -> bool {
    const auto c = table_.control().load();
    if (c.closed() || s.generation != c.generation() ||
        coarse_now_.load(std::memory_order_relaxed) >= s.expires_at.load(std::memory_order_relaxed)) {
      s.state.store(slot_state::reserved, std::memory_order_relaxed);
      return false;
    }
    if (waiter* w = queue_.front()) {
      grant_locked(*w, s, fresh);
      return true;
    }
    table_.make_idle(s);  // nobody queued (P2): nobody to wake
    return true;
  }

  auto lifetime_deadline(std::int64_t now) -> std::int64_t {
    if (cfg_.max_lifetime == never_ns) return never_ns;
    const auto life = cfg_.max_lifetime;
    // Up to 2.5% earlier, so resources created together do not all expire together.
    const auto jitter = static_cast<std::int64_t>(
        std::uniform_real_distribution<double>(0.0, 0.025)(rng_) * static_cast<double>(life));
    return add_sat(now, life - jitter);
  }

  void on_create_failed_locked(const std::exception_ptr& error, std::int64_t now, bool probe) {
    ++create_failures_;
    last_error_ = error;
    last_error_text_ = describe_exception(error);
    breaker_.on_failure(now, std::uniform_real_distribution<double>(0.5, 1.0)(rng_), probe);
    // Known down, and nothing alive or on its way could serve the queue: tell the waiters now
    // rather than let them sit out their timeouts.
    if (breaker_.open() && live_ == 0)
      fail_all_waiters_locked(errc::create_failed, "creating a resource failed", error);
    if (breaker_.open()) housekeeper_cv_.notify_all();  // it wakes us when the probe is due
  }

  void request_spare() {
    std::lock_guard lk(mutex_);
    if (stopping_) return;
    extra_wanted_ = std::max<std::size_t>(extra_wanted_, 1);
    kick_locked();
  }

  // ---- housekeeping

  // The housekeeper thread: ticks the coarse clock and plans; never runs user code.
  void housekeeper_loop() {
    std::unique_lock lk(mutex_);
    while (!stopping_) {
      auto span = ns(cfg_.housekeeping);
      if (breaker_.open())  // wake for the probe, not a tick later
        span = std::min(span, sleep_span(clock_.now(), breaker_.next_attempt_at(), cfg_.housekeeping));
      housekeeper_cv_.wait_for(lk, std::max(span, ns(1'000'000)));
      if (stopping_) break;
      lk.unlock();
      plan_maintenance(clock_.now(), false);
      lk.lock();
    }
  }

  // Decides what housekeeping is due at `now`. The user code it needs (pings, destructors,
  // events) is queued for workers, or with `here` run at once on this thread, one at a time, so
  // only one resource at a time is out of circulation for a check.
  void plan_maintenance(std::int64_t now, bool here) {
    coarse_now_.store(now, std::memory_order_relaxed);
    if (closed()) return;
    if (cfg_.leak_threshold != never_ns) detect_leaks(now, here);
    std::size_t idle_now = 0;
    for (std::size_t i = 0; i < table_.size(); ++i)
      if (slot_table<R>::state_of(table_[i]) == slot_state::idle) ++idle_now;
    for (std::size_t i = 0; i < table_.size(); ++i) {
      auto& s = table_[i];
      const auto last_used = s.last_used.load(std::memory_order_relaxed);
      const bool expired = now >= s.expires_at.load(std::memory_order_relaxed);
      const bool idle_expired = cfg_.idle_timeout != never_ns &&
                                now - last_used >= cfg_.idle_timeout && idle_now > cfg_.min_idle;
      const bool check_due =
          cfg_.keepalive != never_ns &&
          now - std::max(s.last_checked.load(std::memory_order_relaxed), last_used) >= cfg_.keepalive;
      if (!expired && !idle_expired && !check_due) continue;
      if (!slot_table<R>::try_reserve(s)) continue;
      // Reserved: borrowers skip it. The readings above may be stale (it was lent and returned
      // meanwhile): read them again.
      std::unique_lock lk(mutex_);
      if (now >= s.expires_at.load(std::memory_order_relaxed)) {
        --idle_now;
        post_or_run_locked(destroy_job(s, destroy_reason::lifetime), lk, here);
      } else if (idle_expired && s.last_used.load(std::memory_order_relaxed) == last_used) {
        --idle_now;
        post_or_run_locked(destroy_job(s, destroy_reason::idle_timeout), lk, here);
      } else if (check_due) {
        s.last_checked.store(now, std::memory_order_relaxed);
        post_or_run_locked(check_job(s), lk, here);
      } else if (!give_locked(s, false)) {
        post_or_run_locked(destroy_job(s, destroy_reason::closed), lk, here);
      }
    }
    std::lock_guard lk(mutex_);
    want_min_idle_locked();
    // Waiters sleep on the pool's clock; a manual clock only moves when told, so wake those whose
    // deadline has passed to let them notice.
    queue_.for_each([&](waiter& w) {
      if (w.deadline <= now) w.wake(w);
    });
    kick_locked();
  }

  void post_or_run_locked(job&& j, std::unique_lock<std::mutex>& lk, bool here = false) {
    if (!here && post_locked(std::move(j))) return;
    lk.unlock();
    run_job(j);
    lk.lock();
  }

  // min_idle: what is idle or being made counts; the background makes the rest.
  void want_min_idle_locked() noexcept {
    const auto have = idle_count_locked() + creating_;
    extra_wanted_ = std::max(extra_wanted_, cfg_.min_idle > have ? cfg_.min_idle - have : 0);
  }

  [[nodiscard]] auto idle_count_locked() const noexcept -> std::size_t {
    std::size_t n = 0;
    for (std::size_t i = 0; i < table_.size(); ++i)
      if (slot_table<R>::state_of(table_[i]) == slot_state::idle) ++n;
    return n;
  }

  // A worker's half of a keepalive check: the ping, then back into circulation through the same
  // checks as any hand-off (an eviction or close during the ping wins).
  void finish_keepalive(slot_type& s) noexcept {
    bool ok = true;
    if constexpr (!std::is_same_v<V, always_valid>) ok = invoke_validator(s);
    if (!ok) return destroy_reserved(s, destroy_reason::failed_validation);
    std::unique_lock lk(mutex_);
    if (make_available_locked(s, true)) return;
    const auto why = closed() ? destroy_reason::closed : destroy_reason::evicted;
    lk.unlock();
    destroy_reserved(s, why);
  }

  void detect_leaks(std::int64_t now, bool here) {
    for (std::size_t i = 0; i < table_.size(); ++i) {
      auto& s = table_[i];
      if (slot_table<R>::state_of(s) != slot_state::in_use) continue;
      const auto seq = s.acquisitions.load(std::memory_order_acquire);
      const auto at = s.acquired_at.load(std::memory_order_acquire);
      if (now - at < cfg_.leak_threshold || s.leak_reported.load(std::memory_order_relaxed) == seq)
        continue;
      const acquire_site site{s.site_file.load(std::memory_order_relaxed),
                              s.site_function.load(std::memory_order_relaxed),
                              s.site_line.load(std::memory_order_relaxed)};
      // Still the same lease? (It may have come back and gone out again meanwhile.)
      if (slot_table<R>::state_of(s) != slot_state::in_use ||
          s.acquisitions.load(std::memory_order_acquire) != seq)
        continue;
      s.leak_reported.store(seq, std::memory_order_relaxed);
      if (!opts_.on_event) continue;
      job j = event_job(event_kind::leak_suspected);
      j.where = site;
      j.held = std::chrono::duration_cast<std::chrono::milliseconds>(ns(now - at));
      std::unique_lock lk(mutex_);
      post_or_run_locked(std::move(j), lk, here);
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

  // Holds a reference while the callback runs, so a callback that destroys the pool's handle
  // does not free the core under its caller (P5).
  void emit(pool_event& e) noexcept {
    e.pool_name = opts_.name;
    refs_.fetch_add(1, std::memory_order_relaxed);
    try {
      opts_.on_event(e);
    } catch (...) {  // a throwing callback must not break the pool
    }
    unref();
  }

  // ---------------------------------------------------------------- data

  [[no_unique_address]] F factory_;
  [[no_unique_address]] V validator_;
  [[no_unique_address]] S resetter_;
  const pool_options opts_;
  const pool_settings cfg_;
  const pool_clock<Clock> clock_;
  const std::uint64_t id_ = next_pool_id();
  slot_table<R> table_;
  // The clock at the last housekeeping tick or slow-path reading: the fast path's time.
  alignas(cache_line) std::atomic<std::int64_t> coarse_now_{0};

  // Guarded by mutex_: everything below, up to refs_.
  alignas(cache_line) mutable std::mutex mutex_;
  waiter_queue<waiter> queue_;
  std::vector<std::uint32_t> free_slots_;  // P1
  std::size_t live_ = 0;                   // P1
  std::size_t creating_ = 0;               // P1
  std::size_t extra_wanted_ = 0;           // creations wanted beyond the waiters
  std::vector<std::int64_t> creation_starts_;  // steady time each creation in flight began
  std::int64_t create_time_avg_ = 0;       // moving average of successful creations, ns
  std::int64_t next_fair_at_ = 0;          // steady time the next forced hand-off may happen
  // Written under mutex_ (wake_seq_ also by lock-free returns), read by returns without it.
  // Each on its own line: wake_seq_ is bumped while a waiter scans; the others change only
  // when a waiter comes, goes, parks or wakes, so returns reading them mostly hit the cache.
  alignas(cache_line) std::atomic<std::uint64_t> wake_seq_{0};  // idle slots announced (P3)
  alignas(cache_line) std::atomic<std::uint64_t> activity_{0};  // see running_of (P3)
  alignas(cache_line) std::atomic<std::size_t> spinners_{0};
  std::atomic<std::int64_t> fair_due_at_{never_ns};  // steady time a hand-off may be owed (P4)
  creation_breaker breaker_;
  std::deque<job> jobs_;
  std::condition_variable workers_cv_;     // idle workers wait here
  std::condition_variable quiet_cv_;       // close() waits here for workers to leave
  std::condition_variable housekeeper_cv_;
  std::size_t workers_alive_ = 0;
  std::size_t workers_idle_ = 0;
  std::size_t workers_starting_ = 0;
  std::size_t workers_in_user_code_ = 0;
  std::size_t jobs_running_ = 0;
  bool stopping_ = false;
  std::uint64_t created_ = 0;
  std::array<std::uint64_t, destroy_reason_count> destroyed_by_{};
  std::uint64_t timeouts_ = 0;
  std::uint64_t create_failures_ = 0;
  std::uint64_t fast_failures_ = 0;
  std::uint64_t shed_ = 0;
  std::uint64_t slow_acquired_ = 0;
  wait_histogram wait_hist_;
  std::chrono::microseconds wait_max_{0};
  std::exception_ptr last_error_;
  std::string last_error_text_;
  std::mt19937_64 rng_;

  std::atomic<int> refs_{1};  // P5
  std::thread housekeeper_;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
