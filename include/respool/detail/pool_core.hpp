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
// Where things are: this file has the class with its data, acquiring, returning, hand-offs,
// retiring and closing; pool_control.hpp resizing, pausing and readiness; pool_waiting.hpp the
// blocked waiters' side; pool_async.hpp the asynchronous waiters' (deliveries, their timer);
// pool_creation.hpp the factory calls; pool_housekeeping.hpp the clock thread and its pass;
// pool_workers.hpp the job queue and the background threads. The rules they apply are pure
// functions elsewhere: creation_policy.hpp (how many creations, the breaker), pool_settings.hpp
// (the options, in pool units), pool_time.hpp (saturating time on any clock).
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
//      strict mode, always), or to a waiter that is spinning or asynchronous (pool_async.hpp,
//      A1); otherwise it goes idle for whoever runs first, and a waiter is woken to try.
//  P5. refs_ = 1 for the handle + 1 per live worker + 1 per orphaned lease + 1 per callback,
//      destruction, armed delivery_scope or delivery loop that runs on a caller's thread; the
//      core deletes itself at 0. The
//      handle's destruction waits for every returning slot, so no return is half-way through
//      the pool's memory when the handle lets go.
//  P6. (Gate.) While paused_ or live_ > limit_, the control word's gate is up, and every
//      lend (borrow_check) and return (return_slot) takes the lock, where a paused pool keeps
//      its slots idle and its waiters asleep, and a pool over its limit retires the surplus:
//      doomed_ counts what take_surplus_locked chose and is not destroyed yet, so the racing
//      returns, borrows and creations retire live_ - limit_ resources, no more. Once the
//      gate is down, in_use <= live_ - doomed_ <= limit_ holds for every lend.
//  P7. (Limit.) limit_ <= max_size_ is the most live resources now: max_size_ itself, or what
//      pool_options::adaptive's rule (adaptive_limit.hpp) chose at the last housekeeping pass.
//      Creation, the gate (P6, with limit_ for max_size_) and min_idle follow limit_; the
//      slot table is sized for max_size_.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <random>
#include <source_location>
#include <stop_token>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../concepts.hpp"
#include "../errors.hpp"
#include "../events.hpp"
#include "../lease.hpp"
#include "../options.hpp"
#include "../stats.hpp"
#include "adaptive_limit.hpp"
#include "creation_policy.hpp"
#include "held_leases.hpp"
#include "holder_text.hpp"
#include "pool_settings.hpp"
#include "pool_time.hpp"
#include "slot_table.hpp"
#include "test_hooks.hpp"
#include "thread_hint.hpp"
#include "timer_heap.hpp"
#include "waiter_queue.hpp"
#include "worker_threads.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

// Why an acquire failed: the code, the full message, and the factory's error behind it.
struct acquire_failure {
  errc code{};
  std::string message;
  std::exception_ptr cause;
  std::int64_t remaining = -1;  // ns of the caller's timeout left when it failed; -1: all of it
};
// Where the slow path writes why an acquire failed. The throwing acquires pass none (null): their
// slow path builds one of its own and throws it, so an acquire that succeeds sets up nothing.
using failure_slot = std::optional<acquire_failure>;

// What the slow path wrote (every failure writes it; a timeout if one ever did not).
[[noreturn]] inline void throw_failure(failure_slot& f) {
  if (!f) throw error(errc::timeout, "respool: acquire failed");
  throw error(f->code, std::move(f->message), std::move(f->cause));
}

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

// A resetter that may also give a returning resource up instead of resetting it, by a
// `std::optional<destroy_reason> reclaim(std::uint32_t origin)` saying why: keyed_pool's
// (keyed_pool.hpp), for another key's creation under max_total; cluster_pool's, to move
// connections off an endpoint that holds more than its share.
template <class S>
struct resetter_reclaims : std::false_type {};

// A factory whose pool runs its background work on threads it shares with other pools
// (keyed_pool's sub-pools, cluster_pool's two): `worker_threads()` gives them.
template <class F>
concept shares_worker_threads = requires(const F& f) {
  { f.worker_threads() } -> std::convertible_to<std::shared_ptr<worker_threads>>;
};

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
    if constexpr (shares_worker_threads<F>) shared_threads_ = factory_.worker_threads();
    if (opts_.adaptive) adaptive_.emplace(*opts_.adaptive, opts_.max_size);
    free_slots_.reserve(opts_.max_size);
    for (std::size_t i = opts_.max_size; i-- > 0;) free_slots_.push_back(static_cast<std::uint32_t>(i));
    set_limits_locked(opts_.max_size);  // nothing else can see us yet
    coarse_now_.store(clock_.now(), std::memory_order_relaxed);
    // The housekeeper first: if it cannot start, nothing else has (a worker would outlive the
    // memory a throwing constructor frees).
    if (cfg_.housekeeping > 0) housekeeper_ = std::thread([this] { housekeeper_loop(); });
    prewarm();
  }

  pool_core(const pool_core&) = delete;
  auto operator=(const pool_core&) -> pool_core& = delete;

  // ---------------------------------------------------------------- acquire

  // `fail`: where a failure is written (an empty lease is returned); null: it is thrown.
  auto acquire(std::int64_t timeout, const std::source_location& where, failure_slot* fail)
      -> lease<R> {
    return acquire_from(timeout, where, fail, nullptr);
  }

  // The same, cancellable: a stop request makes it fail with errc::cancelled, at once if it
  // came first, else as soon as it comes while the caller waits (its place in the queue goes).
  auto acquire(const std::stop_token& stop, std::int64_t timeout, const std::source_location& where,
               failure_slot* fail) -> lease<R> {
    if (stop.stop_requested()) return cancelled(fail);
    return acquire_from(timeout, where, fail, &stop);
  }

  [[nodiscard]] auto default_timeout() const noexcept -> std::int64_t { return cfg_.acquire_timeout; }

  auto try_acquire(const std::source_location& where) -> std::optional<lease<R>> {
    std::int64_t deadline = 0;
    while (!cfg_.strict_fifo() || table_.control().load().waiters() == 0) {
      slot_type* s = claim();
      if (s == nullptr) break;
      const auto b = borrow_check(*s, deadline, 0, nullptr);
      if (b == borrow::ok) {
        auto l = grant(*s, where);
        if (cfg_.detect_nested_acquire) note_held(*s);
        return l;
      }
      if (b == borrow::paused || (deadline != 0 && clock_.now() > deadline)) return std::nullopt;
    }
    request_spare();
    return std::nullopt;
  }

  // ---------------------------------------------------------------- release (lease_home)

  // The usual return is kept small, so that the compiler inlines it into ~lease() (through
  // speculative devirtualization); a return with more to do takes release_unusual(). (When a
  // larger release stopped being inlined, the uncontended cycle ran 0.87x as fast.)
  void release(slot_type& s, lease_end how) noexcept override {
#if RESPOOL_DEBUG_CHECKS
    if (s.debug_holders.fetch_sub(1, std::memory_order_relaxed) != 1)
      debug_check_failed("a lease returned a resource it did not hold alone");
#endif
    const auto now = coarse_now_.load(std::memory_order_relaxed);
    if (how != lease_end::returned || cfg_.unusual_returns || s.use_timed_from != 0) [[unlikely]]
      return release_unusual(s, how, now);
    finish_release(s, stale_reason(s, table_.control().load(), now), now);
  }

  // A lease discarded or unwound, a hold being timed, a diagnosis watching returns, or a use
  // limit to count.
  RESPOOL_DETAIL_COLD void release_unusual(slot_type& s, lease_end how, std::int64_t now) noexcept {
    if (cfg_.detect_nested_acquire) forget_held(s);
    if (cfg_.leak_threshold != never_ns) report_leak_return(s, now);
    if (s.use_timed_from != 0) record_use_time(s);
    // Unwound (on_unwind = validate): it may be broken, whatever the reset says; the next
    // borrower validates it first. Without a validator there is nothing to ask.
    if constexpr (!std::is_same_v<V, always_valid>)
      if (how == lease_end::unwound && cfg_.on_unwind == unwind_policy::validate)
        s.must_validate = true;
    finish_release(s, retire_reason(s, how, now), now);
  }

  // Decided before resetting whether it is retired: a resource about to be destroyed is not
  // reset (a reset may hang on a connection to a server that failed over).
  void finish_release(slot_type& s, std::optional<destroy_reason> why, std::int64_t now) noexcept {
    if (!why && s.evict_check.load(std::memory_order_seq_cst) && matches_evict_check(s))
      why = destroy_reason::evicted;
    if constexpr (resetter_reclaims<S>::value)
      if (!why) why = resetter_.reclaim(s.origin);
    if (!why && !invoke_resetter(s)) why = destroy_reason::failed_reset;
    s.last_used.store(now, std::memory_order_relaxed);
    tls_hints.remember(id_, s.index);
    if (why) return retire(s, *why);
    return_slot(s);
  }

  RESPOOL_DETAIL_COLD void record_use_time(slot_type& s) noexcept {
    const auto held_ns = std::max<std::int64_t>(0, steady_ns() - s.use_timed_from);
    const auto held = std::chrono::duration_cast<std::chrono::microseconds>(ns(held_ns));
    s.use_timed_from = 0;
    const auto avg = hold_avg_ns_.load(std::memory_order_relaxed);
    hold_avg_ns_.store(avg == 0 ? std::max<std::int64_t>(held_ns, 1) : avg + (held_ns - avg) / 8,
                       std::memory_order_relaxed);
    use_hist_[s.index % use_hist_shards].buckets[wait_histogram::bucket_of(held)].fetch_add(
        1, std::memory_order_relaxed);
  }

  // ---------------------------------------------------------------- maintenance

  /// One housekeeping pass on the calling thread, including the user code it leads to
  /// (keepalive pings, destructors, events), which the background pass leaves to workers.
  void run_maintenance() {
    delivery_scope scope(*this);
    plan_maintenance(clock_.now(), true);
    run_pending_jobs();
  }

  // Given the resource and its origin (concepts.hpp, origin_factory).
  using evict_predicate = std::shared_ptr<const std::function<bool(const R&, std::uint32_t)>>;
  void evict_if(const evict_predicate& pred);

  void evict_all() {
    {
      std::lock_guard lk(mutex_);
      table_.control().next_generation();
    }
    // Idle ones now, on this thread ("failover: close the old connections"); leased ones on
    // return; ones being created or checked when that ends (every hand-off checks the
    // generation). A slot being returned either sees the new generation (and is retired by its
    // holder) or is idle for this sweep.
    destroy_idle(destroy_reason::evicted);
    std::lock_guard lk(mutex_);
    kick_locked();
  }

  // The backend answers again (cluster_pool probed it): a backoff in progress ends now.
  void retry_creation_now() {
    std::lock_guard lk(mutex_);
    breaker_.clear_backoff();
    kick_locked();
  }

  // How long the idle resource returned longest ago has been idle (by the coarse clock its
  // return read), or nullopt with nothing idle. A reading, not a claim: it may be lent meanwhile.
  // keyed_pool compares these across its sub-pools (their pool times have different origins,
  // ages do not) to pick the idle resource to close for another key.
  [[nodiscard]] auto oldest_idle_age() const noexcept -> std::optional<std::chrono::nanoseconds> {
    const auto oldest = find_oldest_idle();
    if (!oldest) return std::nullopt;
    return ns(std::max<std::int64_t>(0, clock_.now() - oldest->returned_at));
  }

  // Closes the idle resource returned longest ago, on this thread (destroy_reason::reclaimed);
  // false if nothing was idle. A slot claimed between the scan and the reservation is skipped
  // and the scan repeated, at most once per slot, so this ends.
  auto retire_oldest_idle() noexcept -> bool {
    for (std::size_t attempt = 0; attempt < table_.size(); ++attempt) {
      const auto oldest = find_oldest_idle();
      if (!oldest) return false;
      // Reserved: no borrower can take it, and it is ours to destroy (as housekeeping does).
      auto& s = table_[oldest->index];
      if (slot_table<R>::try_reserve(s)) {
        destroy_reserved(s, destroy_reason::reclaimed);
        return true;
      }
    }
    return false;
  }

  void close() {
    {
      delivery_scope scope(*this);  // the asynchronous waiters learn it here
      std::lock_guard lk(mutex_);
      if (table_.control().load().closed()) return;
      table_.control().close();
      stopping_ = true;
      fail_all_waiters_locked(errc::closed, "the pool was closed", nullptr);
      ready_cv_.notify_all();
      workers_cv_.notify_all();
      housekeeper_cv_.notify_all();
    }
    if (housekeeper_.joinable() && housekeeper_.get_id() != std::this_thread::get_id())
      housekeeper_.join();
    // Idle resources now. A slot being returned either sees the pool closed (and is destroyed
    // by its holder) or is idle for this sweep.
    destroy_idle(destroy_reason::closed);
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
    // A lease still out keeps the core alive (P5); one returned meanwhile is destroyed here.
    for (std::size_t i = 0; i < table_.size(); ++i) {
      refs_.fetch_add(1, std::memory_order_relaxed);
      if (!slot_table<R>::try_orphan(table_[i])) refs_.fetch_sub(1, std::memory_order_relaxed);
    }
    destroy_idle(destroy_reason::closed);
    unref();
  }

  // A completion handler threw (pool_async.hpp): reported, the pool goes on.
  void report_handler_threw(const std::exception_ptr& e) noexcept {
    if (!opts_.on_event) return;
    try {
      pool_event ev;
      ev.kind = event_kind::handler_threw;
      ev.error = e;
      const std::string text = "an async_acquire completion handler threw: " + describe_exception(e);
      ev.message = text;
      emit(ev);
    } catch (...) {
    }
  }

  // ---------------------------------------------------------------- stats

  auto stats() const -> pool_stats {
    pool_stats st;
    std::lock_guard lk(mutex_);
    const auto c = counts_locked();
    st.max_size = max_size_;
    st.limit = limit_;
    st.paused = paused_;
    st.total = c.total();
    st.idle = c.idle;
    st.in_use = c.in_use;
    st.creating = c.creating;
    st.waiters = queue_.size();
    st.acquired = granted_total();
    st.created = created_;
    st.destroyed_by = destroyed_by_;
    st.timeouts = timeouts_;
    st.create_failures = create_failures_;
    st.fast_failures = fast_failures_;
    st.shed = shed_;
    st.cancelled = cancelled_;
    st.wait = wait_hist_;
    // Acquires that never waited sit in the zero bucket.
    st.wait.buckets[0] += st.acquired - std::min(st.acquired, slow_acquired_);
    st.wait_max = wait_max_;
    st.wait_p50 = st.wait.percentile(0.50);
    st.wait_p99 = st.wait.percentile(0.99);
    st.min_idle = min_idle_;
    for (const auto& shard : use_hist_)
      for (std::size_t b = 0; b < wait_histogram::bucket_count; ++b)
        st.use_time.buckets[b] += shard.buckets[b].load(std::memory_order_relaxed);
    st.create_time = create_hist_;
    return st;
  }

  // Every lease out, longest held first. Read without owning the slots: a lease returned and
  // lent again meanwhile may show its new site with the old time (it is diagnostics).
  auto holders() const -> std::vector<lease_holder> {
    std::vector<lease_holder> out;
    const auto now = clock_.now();
    for (std::size_t i = 0; i < table_.size(); ++i) {
      const auto& s = table_[i];
      if (slot_table<R>::state_of(s) != slot_state::in_use) continue;
      const auto at = s.acquired_at.load(std::memory_order_acquire);  // pairs with grant()
      out.push_back({site_of(s), std::chrono::duration_cast<std::chrono::milliseconds>(
                                     ns(std::max<std::int64_t>(0, now - at)))});
    }
    std::stable_sort(out.begin(), out.end(),
                     [](const lease_holder& a, const lease_holder& b) { return a.held > b.held; });
    return out;
  }

  // The options as they are now: max_size (and min_idle and create_concurrency with it) as
  // set_max_size() left them.
  [[nodiscard]] auto options() const -> pool_options {
    pool_options o = opts_;
    std::lock_guard lk(mutex_);
    o.max_size = max_size_;
    o.min_idle = min_idle_;
    return o;
  }

  // ---------------------------------------------------------------- control (pool_control.hpp)

  void set_max_size(std::size_t n);
  void pause();
  void resume();
  auto wait_ready(std::int64_t timeout, failure_slot* fail) -> bool;

 private:
  static constexpr std::int64_t spin_ns = 4'000;  // a hand-off usually comes within this
  static constexpr auto worker_linger = std::chrono::seconds(2);
  static constexpr std::size_t job_lanes = 4;  // workers running pings, destructors, events
  static constexpr auto close_grace = std::chrono::milliseconds(100);
  static constexpr std::int64_t stall_floor = 20'000'000;  // 20 ms: see stall_after
  static inline thread_local const void* tls_worker_of = nullptr;  // the pool a worker serves
  auto start_worker() noexcept -> bool;

  // A caller waiting for a resource, in the queue (waiter_queue.hpp). A blocked thread
  // (blocking_waiter) scans, spins and sleeps for itself; an asynchronous one (async_waiter,
  // pool_async.hpp) is passive: whatever serves it, fails it or cancels it puts it on the
  // delivery list, and a thread with no lock held runs its completion.
  struct waiter : waiter_link {
    std::int64_t deadline = 0;   // pool time
    std::int64_t since = 0;      // steady time it first queued (fairness window)
    slot_type* granted = nullptr;
    bool fresh = false;          // just created or checked: no borrow check needed
    bool notified = false;       // woken to scan (P3)
    bool spinning = false;       // awake and polling: a hand-off reaches it at once (P4)
    bool parked = false;         // asleep on cv: whoever serves it must notify
    bool cancelled = false;      // its stop token asked to stop (guarded by mutex_)
    bool async = false;          // an async_waiter: never scans, every resource is handed to it
    std::atomic<bool> served{false};  // lets a spinning waiter see its hand-off without the lock
    std::uint64_t seen = 0;      // wake_seq_ when its last scan began (P3)
    std::optional<acquire_failure> failure;
    // How to wake a blocked thread (P3); nothing for an asynchronous waiter, which is served by
    // hand-off only.
    void (*wake)(waiter&) noexcept = [](waiter&) noexcept {};
  };

  struct blocking_waiter : waiter {
    std::condition_variable cv;
    blocking_waiter() noexcept {
      this->wake = [](waiter& self) noexcept {
        if (self.parked) static_cast<blocking_waiter&>(self).cv.notify_one();
      };
    }
  };

 public:
  // The stop callback of an asynchronous acquire.
  struct async_waiter;
  struct async_stop {
    pool_core* core;
    async_waiter* w;
    void operator()() const noexcept { core->cancel_async(*w); }
  };
  // An asynchronous acquire (async_acquire, the coroutine awaitable): served only by hand-off
  // (P4), its deadline in the timer heap, its completion run once, with no lock held, by
  // whoever delivers it (pool_async.hpp).
  struct async_waiter : waiter {
    std::size_t timer_index = timer_heap<async_waiter>::npos;
    std::int64_t timeout = 0;    // as asked, for the timeout message
    std::int64_t queued_at = 0;  // pool time it joined the queue (stats: its wait)
    std::source_location where;
    std::optional<std::stop_callback<async_stop>> stop;
    // Runs once, no lock held, with a lease or a failure. May free the record; must first
    // destroy `stop` (it may wait for a stop callback running on another thread).
    void (*complete)(async_waiter& self, lease<R>&& l, acquire_failure* failure) noexcept = nullptr;
    async_waiter() noexcept { this->async = true; this->parked = true; }
    async_waiter(const async_waiter&) = delete;
    auto operator=(const async_waiter&) -> async_waiter& = delete;
  };

  // The fast path alone: an idle resource that passes its check now, else an empty lease (the
  // caller then starts an asynchronous acquire). No waiter, no clock read when none is due.
  auto acquire_idle_now(const std::source_location& where) -> lease<R> {
    if (cfg_.strict_fifo() && table_.control().load().waiters() != 0) return {};
    slot_type* s = claim();
    if (s == nullptr) return {};
    std::int64_t deadline = 0;
    if (borrow_check(*s, deadline, cfg_.acquire_timeout, nullptr) == borrow::ok) return grant(*s, where);
    return {};  // retired, returned (too late, paused): the slow path decides
  }

  // Starts an asynchronous acquire for `w` (its `complete` and `where` set). Served or failed
  // at once, it completes before this returns; otherwise `w` waits, and must stay put until
  // it completes or abandon_async() takes it back.
  void async_acquire(async_waiter& w, std::int64_t timeout, const std::stop_token* stop);
  // The owner of a waiting `w` gives up on it (a coroutine frame destroyed while suspended):
  // out of the queue, and a resource handed to it but not yet delivered goes on to the next.
  void abandon_async(async_waiter& w) noexcept;

 private:
  struct counts {
    std::size_t idle = 0, in_use = 0, creating = 0, reserved = 0;
    [[nodiscard]] auto total() const noexcept -> std::size_t {
      return idle + in_use + creating + reserved;
    }
  };

  // ok: lend it; retired: gone, try again; too_late: past the deadline (returned); paused:
  // returned, and the caller must wait without looking at idle slots.
  enum class borrow : std::uint8_t { ok, retired, too_late, paused };

  // User code queued for a worker: a retirement, a keepalive check, or an event (the events
  // raised where no user code may run: on the housekeeper, or a caller past its deadline).
  struct job {
    enum kind_t : std::uint8_t { destroy, check, event, deliver };
    kind_t kind = destroy;
    slot_type* s = nullptr;
    destroy_reason why{};
    event_kind what{};
    acquire_site where{};
    std::chrono::milliseconds held{};
    std::size_t limit = 0, previous_limit = 0;
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
  static auto deliver_job() noexcept -> job {
    job j;
    j.kind = job::deliver;
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
                                      table_.first_size());
  }

  // The hinted slot, else a scan (out of line: only a scan can restore an index mark).
  auto claim() noexcept -> slot_type* {
    const auto h = hint();
    if (slot_type* s = table_.claim_hinted(h)) return s;
    return claim_scan(h);
  }
  RESPOOL_DETAIL_OUT_OF_LINE auto claim_scan(std::uint32_t h) noexcept -> slot_type* {
    typename slot_table<R>::scan_notes notes;
    slot_type* s = table_.claim_scan(h, notes);
    if (notes.republished) wake_if_waiting();
    return s;
  }

  // The idle slot returned longest ago (by last_used), if any: a reading, it may be lent meanwhile.
  struct idle_slot {
    std::size_t index;
    std::int64_t returned_at;
  };
  [[nodiscard]] auto find_oldest_idle() const noexcept -> std::optional<idle_slot> {
    std::optional<idle_slot> oldest;
    for (std::size_t i = 0; i < table_.size(); ++i) {
      const auto& s = table_[i];
      if (slot_table<R>::state_of(s) != slot_state::idle) continue;
      const auto at = s.last_used.load(std::memory_order_relaxed);
      if (!oldest || at < oldest->returned_at) oldest = idle_slot{i, at};
    }
    return oldest;
  }

  // ---- borrowing

  // Checks a claimed resource before lending it: closed, lifetime, eviction, validate after
  // idle or after an unwound lease. Validates only before the caller's deadline (reading the
  // clock for it if not yet).
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
    const auto now = coarse_now_.load(std::memory_order_relaxed);
    const auto c = table_.control().load();
    if (c.closed_or_gated()) {
      if (c.closed()) return failed(destroy_reason::closed);
      if (const auto b = gated_borrow(s, w); b != borrow::ok) return b;
    }
    if (auto why = stale_reason_when_open(s, c, now)) return failed(*why);
    if constexpr (!std::is_same_v<V, always_valid>) {
      const auto after = cfg_.validate_after_idle;
      // 0 validates every borrow, even one the coarse clock places "before" the last return.
      // An unwound lease's resource is validated whatever `after` says (`never` included).
      if (after == 0 || s.must_validate ||
          (after != never_ns && now - s.last_used.load(std::memory_order_relaxed) >= after)) {
        const auto t = clock_.now();
        if (deadline == 0) deadline = add_sat(t, timeout);
        if (t > deadline) {
          return_slot(s);  // still marked: the next borrower validates it
          return borrow::too_late;
        }
        if (!invoke_validator(s)) return failed(destroy_reason::failed_validation);
        s.must_validate = false;
      }
    }
    return borrow::ok;
  }

  auto grant(slot_type& s, const std::source_location& where) noexcept -> lease<R> {
#if RESPOOL_DEBUG_CHECKS
    if (s.debug_holders.fetch_add(1, std::memory_order_relaxed) != 0)
      debug_check_failed("a resource was lent to a second holder");
#endif
    const auto n = s.acquisitions.load(std::memory_order_relaxed) + 1;
    s.acquisitions.store(n, std::memory_order_relaxed);  // only the holder writes it
    // For holders(), error messages and leak reports: two stores to the slot's own line.
    const auto tick = coarse_now_.load(std::memory_order_relaxed);
    s.site.store(where, std::memory_order_relaxed);
    s.acquired_at.store(tick, std::memory_order_release);
    // use_time: the first hold of a resource after each tick of the coarse clock is timed (two
    // clock reads), so a busy resource costs a few reads a second and a quiet one has every
    // hold timed. (One hold in 64 made the uncontended cycle 4-13% slower.)
    if (tick != s.timed_tick) [[unlikely]] {
      s.timed_tick = tick;
      s.use_timed_from = steady_ns();
    }
    return lease_access::make<R>(this, &s);
  }

  // Where the lease out on `s` was acquired (grant() stores it). Read by others than the holder
  // without owning the slot, it may mix a lease returned meanwhile with the next (diagnostics).
  static auto site_of(const slot_type& s) noexcept -> acquire_site {
    return to_site(s.site.load(std::memory_order_relaxed));
  }

  // ---- nested acquires (detect_nested_acquire): the leases a thread holds, in held_leases.hpp

  // A grant: remembered by this thread, and marked on the slot. release: after the acquisition
  // number, so a thread that sees the mark sees that number (pairs with still_held's acquire).
  RESPOOL_DETAIL_COLD void note_held(slot_type& s) noexcept {
    s.held.store(true, std::memory_order_release);
    tls_held_leases.note(id_, s.index, s.acquisitions.load(std::memory_order_relaxed));
  }

  // A return, on whatever thread. Relaxed: a thread that looks at the slot after this return
  // happened-before its look sees the mark gone; one that does not cannot know of the return.
  RESPOOL_DETAIL_COLD void forget_held(slot_type& s) noexcept {
    s.held.store(false, std::memory_order_relaxed);
    tls_held_leases.forget(id_, s.index, s.acquisitions.load(std::memory_order_relaxed));
  }

  // Whether the lease an entry remembers is still out: the slot is marked under the same
  // acquisition number. A mark of a later grant comes with its higher number (note_held); between
  // a return and the next grant (a hand-off to a waiter) the slot is unmarked.
  auto still_held(const held_leases::entry& e) const noexcept -> bool {
    const auto& s = table_[e.slot];
    return s.held.load(std::memory_order_acquire) &&
           s.acquisitions.load(std::memory_order_relaxed) == e.acquisition;
  }

  // An acquire() by a thread that holds a lease from this pool: the event, as it is called (it
  // may be about to wait for good). Entries of leases returned meanwhile, here or elsewhere, go.
  RESPOOL_DETAIL_COLD void report_nested_acquire(const std::source_location& where) noexcept {
    if (tls_held_leases.reporting) return;
    std::size_t held = 0;
    acquire_site first{};
    tls_held_leases.keep_if(id_, [&](const held_leases::entry& e) {
      if (!still_held(e)) return false;
      if (held++ == 0) first = site_of(table_[e.slot]);
      return true;
    });
    if (held == 0) return;
    try {
      const auto acquiring = to_site(where);
      const auto size = [this] {
        std::lock_guard lk(mutex_);
        return max_size_;  // set_max_size() may change it
      }();
      const auto text = describe_nested_acquire(opts_.name, first, acquiring, held, size);
      pool_event e;
      e.kind = event_kind::nested_acquire;
      e.where = first;
      e.acquiring = acquiring;
      e.message = text;
      tls_held_leases.reporting = true;
      emit(e);
      tls_held_leases.reporting = false;
    } catch (...) {  // no memory for the text: no report, the acquire goes on
    }
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

  // Why a resource its owner holds must not be lent (again): the pool closed, an eviction
  // since it was made, or past its lifetime (`now`: the coarse clock). Every lend, return and
  // hand-off asks this one question.
  [[nodiscard]] static auto stale_reason(const slot_type& s, control_word::view c,
                                         std::int64_t now) noexcept
      -> std::optional<destroy_reason> {
    if (c.closed()) return destroy_reason::closed;
    return stale_reason_when_open(s, c, now);
  }
  [[nodiscard]] static auto stale_reason_when_open(const slot_type& s, control_word::view c,
                                                   std::int64_t now) noexcept
      -> std::optional<destroy_reason> {
    if (s.generation != c.generation()) return destroy_reason::evicted;
    if (now >= s.expires_at.load(std::memory_order_relaxed)) return destroy_reason::lifetime;
    return std::nullopt;
  }

  auto retire_reason(slot_type& s, lease_end how, std::int64_t now) noexcept
      -> std::optional<destroy_reason> {
    if (how != lease_end::returned) [[unlikely]] {
      if (how == lease_end::discarded) return destroy_reason::discarded;
      if (cfg_.on_unwind == unwind_policy::discard) return destroy_reason::unwound;
    }
    if (auto why = stale_reason(s, table_.control().load(), now)) return why;
    if (cfg_.max_uses != 0 && ++s.uses >= cfg_.max_uses) return destroy_reason::max_uses;
    return std::nullopt;
  }

  // Destroys every idle resource on this thread (close, evict_all), waiting out slots being
  // returned.
  void destroy_idle(destroy_reason why) noexcept {
    for (std::size_t i = 0; i < table_.size(); ++i) {
      auto& s = table_[i];
      slot_table<R>::await_return(s);
      if (slot_table<R>::try_reserve(s)) destroy_reserved(s, why);
    }
  }

  // Puts a slot its holder owns back into circulation: idle (lock-free) when nobody waits, else
  // to a waiter or idle with a waiter woken (return_to_waiters).
  void return_slot(slot_type& s) noexcept {
    if (!table_.begin_return(s)) return drop_orphan(s);
    const auto c = table_.control().load();  // S4: after the mark
    // An eviction since the check in release(): its sweep may have passed this slot while it
    // was leased, so retire it here (under the lock, where the generation is settled). And an
    // evict_if() since that check: its sweep may have passed this slot too (the flag is read
    // after the mark, as the generation is). The gate likewise (paused, or over a lowered
    // max_size: the lock decides).
    if (c.closed_or_gated() || c.generation() != s.generation ||
        s.evict_check.load(std::memory_order_seq_cst)) [[unlikely]]
      return return_slot_locked(s);
    if (c.waiters() == 0) return slot_table<R>::finish_return(s);
    return_to_waiters(s);
  }

  // With waiters queued, the lock is needed only for a hand-off (P4) or to wake one (P3): a
  // return that neither owes a hand-off nor finds every waiter asleep announces itself in
  // wake_seq_ and leaves. (Taking the lock on every return while anyone waits made returns
  // queue behind one another on the lock: 0.85x the mutex pool under contention.)
  RESPOOL_DETAIL_COLD void return_to_waiters(slot_type& s) noexcept {
    if (handoff_maybe_due()) return return_slot_locked(s);
    // P3 without the lock. A running waiter may be mid-scan: announce, so it looks again before
    // it parks (pairs with its decrement of the running count and its read of wake_seq_). One
    // woken already scans after our mark. If none is either, one must be woken under the lock.
    auto a = activity_.load(std::memory_order_seq_cst);
    if (running_of(a) != 0) {
      wake_seq_.fetch_add(1, std::memory_order_seq_cst);
      a = activity_.load(std::memory_order_seq_cst);
    }
    if (a != 0) return slot_table<R>::finish_return(s);
    return_slot_locked(s);
  }

  // A hand-off may be owed, every waiter sleeps, the pool is gated, or it closed meanwhile: the
  // slot is still ours (in use or returning).
  RESPOOL_DETAIL_COLD void return_slot_locked(slot_type& s) noexcept {
    delivery_scope scope(*this);  // a hand-off to an asynchronous waiter completes it here (A3)
    std::unique_lock lk(mutex_);
    if (apply_evict_checks_locked(s, lk)) return retire_locked(s, destroy_reason::evicted, lk);
    if ((s.state.load(std::memory_order_relaxed) & slot_state::orphaned) != 0) {
      lk.unlock();
      return drop_orphan(s);
    }
    if (s.generation != table_.control().load().generation())
      return retire_locked(s, destroy_reason::evicted, lk);
    if (auto why = give_locked(s, false)) retire_locked(s, *why, lk);
  }

  // A slot this thread owns but does not keep (a waiter that gave up, or was handed one while
  // it claimed another) goes on: through the evict_if() predicates waiting for it first (the
  // lock is released while they run), then to a waiter or idle, else retired.
  void pass_on_locked(slot_type& s, std::unique_lock<std::mutex>& lk,
                      bool keep_lock = false) noexcept {
    if (apply_evict_checks_locked(s, lk))
      return retire_locked(s, destroy_reason::evicted, lk, keep_lock);
    if (auto why = give_locked(s, false)) retire_locked(s, *why, lk, keep_lock);
  }

  // A slot this thread owns goes to a waiter (P4) or idle (with one woken, P3); while paused,
  // idle with nobody woken (waiters do not look until resume()). Returns why it must be
  // retired instead, if it must: the pool closed, or it is surplus to a lowered max_size.
  auto give_locked(slot_type& s, bool fresh) noexcept -> std::optional<destroy_reason> {
    if (table_.control().load().closed()) return destroy_reason::closed;
    if (take_surplus_locked()) return destroy_reason::resized;
    if (!paused_) {
      if (waiter* w = handoff_target_locked()) {
        grant_locked(*w, s, fresh);
        return std::nullopt;
      }
    }
    table_.make_idle(s);
    if (!paused_) announce_idle_locked();
    return std::nullopt;
  }

  // Whether one more resource may be retired as surplus to a lowered max_size (then it is
  // counted as going: doomed_), so that returns, borrows and creations racing a shrink retire
  // exactly the surplus.
  auto take_surplus_locked() noexcept -> bool {
    if (live_ <= limit_ + doomed_) return false;
    ++doomed_;
    return true;
  }

  // The control word's gate (every lend and return under the lock) is up while paused or over
  // the limit.
  void update_gate_locked() noexcept {
    const bool gated = paused_ || live_ > limit_;
    if (gated != table_.control().load().gated()) table_.control().set_gate(gated);
  }

  // What set_max_size() changes, in one place; the rest follow the limit (P7).
  void set_limits_locked(std::size_t n) {
    creation_starts_.reserve(std::min(opts_.create_concurrency, n) + 1);  // may throw: first
    max_size_ = n;
    if (adaptive_) adaptive_->set_ceiling(n);
    apply_limit_locked(adaptive_ ? adaptive_->limit() : n);
  }
  void apply_limit_locked(std::size_t n) noexcept {
    limit_ = n;
    min_idle_ = std::min(opts_.min_idle, n);
    create_lanes_ = std::min(opts_.create_concurrency, n);
  }
  // After the limit moved: the gate (P6) follows it, and creations start for a higher one
  // (waiters, min_idle).
  void limit_moved_locked() noexcept {
    update_gate_locked();
    want_min_idle_locked();
    kick_locked();
  }
  // Leases ever granted: each slot counts its own (its holder writes it), summed on reading.
  [[nodiscard]] auto granted_total() const noexcept -> std::uint64_t {
    std::uint64_t n = 0;
    for (std::size_t i = 0; i < table_.size(); ++i)
      n += table_[i].acquisitions.load(std::memory_order_relaxed);
    return n;
  }
  void adapt_limit(std::int64_t now, bool here);

  RESPOOL_DETAIL_COLD auto gated_borrow(slot_type& s, waiter* w) noexcept -> borrow;
  void retire_idle_surplus() noexcept;

  // P4: who a return goes to directly, if anyone. A hand-off to a waiter that is not running
  // leaves the running threads with nothing until it is scheduled, so, as in parking_lot's
  // eventual fairness, one is forced at most once per window (the first return after the
  // window), not on every return while the head is overdue: a waiter at the head is served
  // within a window or two, and everyone else keeps running meanwhile. (Forcing every return
  // to an overdue head instead made 64 threads on 4 connections 0.85x the mutex pool: each
  // hand-off waits for a thread to be scheduled.)
  auto handoff_target_locked() noexcept -> waiter* {
    waiter* head = queue_.front();
    if (head == nullptr || cfg_.strict_fifo() || takes_handoff(*head)) return head;
    const auto now = steady_ns();
    const auto waited = now - head->since;
    if (now >= next_fair_at_ && waited >= cfg_.fairness_window) {
      next_fair_at_ = now + cfg_.fairness_window;
      update_fair_due_locked();
      return head;
    }
    return queue_.find_first([](const waiter& w) { return takes_handoff(w); });
  }

  // A spinning waiter sees a hand-off at once; an asynchronous one gets nothing any other way
  // (it never scans), and a hand-off costs it nothing: neither waits to be scheduled.
  static auto takes_handoff(const waiter& w) noexcept -> bool { return w.spinning || w.async; }

  // Whether a return may owe a hand-off (P4), read without the lock: strict mode, a waiter
  // spinning or asynchronous, or the head's turn come. A stale answer delays one hand-off or
  // costs one lock.
  [[nodiscard]] auto handoff_maybe_due() const noexcept -> bool {
    return cfg_.strict_fifo() || spinners_.load(std::memory_order_relaxed) != 0 ||
           async_queued_.load(std::memory_order_relaxed) != 0 ||
           steady_ns() >= fair_due_at_.load(std::memory_order_relaxed);
  }

  // When the head's next forced hand-off is due (see handoff_target_locked), for returns to
  // read without the lock.
  void update_fair_due_locked() noexcept {
    const waiter* head = queue_.front();
    std::int64_t due = never_ns;
    if (head != nullptr) {
      const auto w = cfg_.fairness_window;
      due = std::max(next_fair_at_, head->since + w);
    }
    fair_due_at_.store(due, std::memory_order_relaxed);
  }

  void grant_locked(waiter& w, slot_type& s, bool fresh) noexcept {
    leave_queue_locked(w);
    slot_table<R>::hand_over(s);
    w.granted = &s;
    w.fresh = fresh;
    w.served.store(true, std::memory_order_release);  // pairs with the spinning waiter's acquire
    served_locked(w);
  }

  // `w` has left the queue, served or failed: wake it, or queue its completion (pool_async.hpp).
  void served_locked(waiter& w) noexcept {
    if (w.async) return push_delivery_locked(static_cast<async_waiter&>(w));
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
    // One that cannot look for itself is handed what is idle.
    if (w->async) return serve_async_from_idle_locked(static_cast<async_waiter&>(*w));
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
    if (w.async) {
      timers_.remove(static_cast<async_waiter&>(w));
      async_queued_.fetch_sub(1, std::memory_order_relaxed);
    }
    table_.control().remove_waiter();
    if (was_awake)
      activity_.fetch_sub(w.parked ? one_woken : one_running, std::memory_order_seq_cst);
    if (was_head) update_fair_due_locked();
    if (was_awake) wake_one_if_none_awake_locked();  // P3: the look it was to take
  }

  // ---- eviction by predicate (defined in pool_housekeeping.hpp)
  RESPOOL_DETAIL_COLD auto matches_evict_check(slot_type& s) noexcept -> bool;
  auto apply_evict_checks_locked(slot_type& s, std::unique_lock<std::mutex>& lk) noexcept -> bool;
  auto any_matches(const std::vector<evict_predicate>& preds, const slot_type& s) noexcept -> bool;

  // ---- waiting (defined in pool_waiting.hpp)
  // Both acquires: an idle resource at once, else the slow path (which looks at idle slots
  // again unless the pool turned out to be paused).
  auto acquire_from(std::int64_t timeout, const std::source_location& where, failure_slot* fail,
                    const std::stop_token* stop) -> lease<R> {
    if (cfg_.detect_nested_acquire) [[unlikely]]
      return acquire_watched(timeout, where, fail, stop);
    return acquire_now_or_wait(timeout, where, fail, stop);
  }
  // detect_nested_acquire: reported before it may wait, remembered once granted.
  RESPOOL_DETAIL_COLD auto acquire_watched(std::int64_t timeout, const std::source_location& where,
                                           failure_slot* fail, const std::stop_token* stop)
      -> lease<R> {
    if (tls_held_leases.used != 0) report_nested_acquire(where);
    auto l = acquire_now_or_wait(timeout, where, fail, stop);
    if (l) note_held(*lease_access::slot_of(l));
    return l;
  }
  auto acquire_now_or_wait(std::int64_t timeout, const std::source_location& where,
                           failure_slot* fail, const std::stop_token* stop) -> lease<R> {
    // Pool time is read only once this acquire does something slow (validates or queues), so
    // the uncontended path reads no clock; the deadline counts from that first reading.
    std::int64_t deadline = 0;
    bool look = true;  // the slow path looks at idle slots again, unless the pool is paused
    if (!cfg_.strict_fifo() || table_.control().load().waiters() == 0) {
      if (slot_type* s = claim()) {
        switch (borrow_check(*s, deadline, timeout, nullptr)) {
          case borrow::ok: return grant(*s, where);
          case borrow::too_late: return timed_out(fail, timeout, "; no time left to validate");
          case borrow::retired: break;
          case borrow::paused: look = false; break;
        }
      }
    }
    return acquire_slow(timeout, deadline, where, fail, stop, look);
  }
  RESPOOL_DETAIL_COLD auto acquire_slow(std::int64_t timeout, std::int64_t deadline, const std::source_location& where, failure_slot* fail, const std::stop_token* stop, bool look) -> lease<R>;
  void cancel_waiter(waiter& w) noexcept;

  // ---- asynchronous waiters (defined in pool_async.hpp)
  void cancel_async(async_waiter& w) noexcept;
  void serve_async_from_idle_locked(async_waiter& w) noexcept;
  void push_delivery_locked(async_waiter& w) noexcept;
  void deliver_pending() noexcept;
  void deliver_one(async_waiter& w, slot_type* s, bool fresh, failure_slot& failure) noexcept;
  void complete_at_once(async_waiter& w, failure_slot& failure) noexcept;
  void requeue_async(async_waiter& w) noexcept;
  void expire_async_locked(std::int64_t now) noexcept;
  [[nodiscard]] auto next_async_deadline_locked() const noexcept -> std::int64_t;
  // While alive on a thread, deliveries this thread queues are run by it when the scope ends,
  // with no lock held, the core pinned (P5) until then. Armed only while asynchronous waiters
  // are queued (a blocking-only pool pays one load); a delivery queued where no scope is armed
  // is run by a worker instead.
  class delivery_scope {
   public:
    // `always`: armed whatever is queued (the asynchronous side's own entry points).
    explicit delivery_scope(pool_core& c, bool always = false) noexcept
        : core_(c), armed_(always || c.async_queued_.load(std::memory_order_relaxed) != 0) {
      if (!armed_) return;
      c.refs_.fetch_add(1, std::memory_order_relaxed);
      prev_ = std::exchange(tls_drain_armed, &c);
    }
    delivery_scope(const delivery_scope&) = delete;
    auto operator=(const delivery_scope&) -> delivery_scope& = delete;
    ~delivery_scope() {
      if (!armed_) return;
      tls_drain_armed = prev_;
      core_.deliver_pending();
      core_.unref();
    }

   private:
    pool_core& core_;
    bool armed_;
    const void* prev_ = nullptr;
  };
  static constexpr std::size_t delivery_batch = 64;  // completions per delivery loop (A3)
  static inline thread_local const void* tls_drain_armed = nullptr;     // delivery_scope
  static inline thread_local const void* tls_delivering_for = nullptr;  // deliver_pending()
  RESPOOL_DETAIL_COLD auto cancelled(failure_slot* fail) -> lease<R>;
  auto wait_for_slot(blocking_waiter& w, std::int64_t deadline, std::int64_t timeout, failure_slot* fail, bool& fresh) -> slot_type*;
  auto admit_locked(waiter& w, std::int64_t now, std::int64_t deadline, failure_slot* fail) -> bool;
  auto hopeless_locked(std::int64_t now, std::int64_t deadline, failure_slot* fail) -> bool;
  void join_queue_locked(waiter& w, std::int64_t deadline) noexcept;
  void keep_place(waiter& w);
  void keep_place_locked(waiter& w) noexcept;
  void sleep_locked(blocking_waiter& w, std::unique_lock<std::mutex>& lk, std::chrono::nanoseconds span);
  void abandon(waiter& w) noexcept;
  auto wait_queued_locked(blocking_waiter& w, std::unique_lock<std::mutex>& lk) -> slot_type*;
  auto scan_and_spin(waiter& w, bool spin, typename slot_table<R>::scan_notes& notes) noexcept -> slot_type*;
  auto refuse_at_once(failure_slot* fail) -> lease<R>;
  RESPOOL_DETAIL_COLD auto timed_out(failure_slot* fail, std::int64_t timeout, const char* detail) -> lease<R>;
  auto fail_locked(failure_slot* fail, errc code, const std::string& why) -> slot_type*;
  auto make_failure_locked(errc code, const std::string& why, std::exception_ptr cause, std::size_t waiters_shown) const -> acquire_failure;
  auto make_failure_locked(errc code, const std::string& why, std::exception_ptr cause) const -> acquire_failure;
  void fail_all_waiters_locked(errc code, const std::string& why, const std::exception_ptr& cause);
  [[nodiscard]] auto counts_locked() const noexcept -> counts;

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
      drop_orphan(s, why);
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
    if constexpr (origin_factory<F>) factory_.destroyed(s.origin, why);
    std::unique_lock lk(mutex_);
    drop_evict_check_locked(s);
    slot_table<R>::release_empty(s);
    free_slots_.push_back(s.index);
    --live_;
    if (why == destroy_reason::resized) --doomed_;
    if (table_.control().load().gated()) update_gate_locked();
    ++destroyed_by_[static_cast<std::size_t>(why)];
    if (min_idle_ > 0) want_min_idle_locked();
    kick_locked();  // capacity freed: waiters or min_idle may need a new one
    if (!opts_.on_event) return;
    pool_event e;
    e.kind = event_kind::destroyed;
    e.reason = why;
    lk.unlock();
    emit(e);
  }

  // The slot's resource is gone: predicates waiting for it must not meet its successor.
  void drop_evict_check_locked(slot_type& s) noexcept {
    if (s.evict_check.exchange(false, std::memory_order_relaxed)) evict_checks_.erase(s.index);
  }

  void drop_orphan(slot_type& s, destroy_reason why = destroy_reason::closed) noexcept {
    s.resource.reset();
    if constexpr (origin_factory<F>) factory_.destroyed(s.origin, why);
    unref();
  }

  void unref() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  // ---- background jobs and workers (defined in pool_workers.hpp)
  auto post_locked(job&& j) noexcept -> bool;
  void post_event_locked(event_kind kind, const std::string& text) noexcept;
  [[nodiscard]] auto jobs_runnable_locked() const noexcept -> std::size_t;
  [[nodiscard]] auto creations_due_locked() const noexcept -> std::size_t;
  [[nodiscard]] auto stalled_creations_locked() const noexcept -> std::size_t;
  [[nodiscard]] auto next_stall_locked() const noexcept -> std::int64_t;
  void kick_locked() noexcept;
  void worker_main() noexcept;
  template <class Fn>
  void run_user_code_locked(std::unique_lock<std::mutex>& lk, Fn&& f);
  void run_job(job& j) noexcept;
  void run_pending_jobs();

  // ---- creation (defined in pool_creation.hpp)
  void prewarm();
  auto create_one_locked(std::unique_lock<std::mutex>& lk) -> bool;
  template <class Fn>
  void emit_unlocked(std::unique_lock<std::mutex>& lk, Fn&& f);
  auto make_available_locked(slot_type& s, bool fresh, std::unique_lock<std::mutex>& lk) noexcept -> std::optional<destroy_reason>;
  auto lifetime_deadline(std::int64_t now) -> std::int64_t;
  void on_create_failed_locked(const std::exception_ptr& error, std::int64_t now, bool probe);
  void request_spare();

  // ---- housekeeping (defined in pool_housekeeping.hpp)
  void housekeeper_loop();
  void plan_maintenance(std::int64_t now, bool here);
  void post_or_run_locked(job&& j, std::unique_lock<std::mutex>& lk, bool here = false);
  void want_min_idle_locked() noexcept;
  [[nodiscard]] auto idle_count_locked() const noexcept -> std::size_t;
  void finish_keepalive(slot_type& s) noexcept;
  void detect_leaks(std::int64_t now, bool here);
  void report_leak_return(slot_type& s, std::int64_t now) noexcept;

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
  timer_heap<async_waiter> timers_;         // deadlines of the queued asynchronous waiters
  delivery_list<async_waiter> deliveries_;  // served or failed, completion not yet run
  std::vector<std::uint32_t> free_slots_;  // P1
  std::size_t live_ = 0;                   // P1
  std::size_t creating_ = 0;               // P1
  // The limits set_max_size() changes (set_limits_locked), and the adaptive rule (P7).
  std::size_t max_size_ = 0;
  std::size_t limit_ = 0;
  std::optional<adaptive_limit> adaptive_;
  std::uint64_t unmet_demand_ = 0;  // acquires that found nothing to take (queued or refused)
  std::size_t min_idle_ = 0;
  std::size_t create_lanes_ = 0;           // creations in flight at most: create_concurrency
  std::size_t doomed_ = 0;                 // surplus to the limit, retired but not yet destroyed
  bool paused_ = false;
  std::condition_variable ready_cv_;       // wait_ready() and the constructor wait here
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
  std::atomic<std::size_t> async_queued_{0};  // asynchronous waiters queued (written under mutex_)
  // Completions waiting on deliveries_ (written under mutex_; read by the thread that queued
  // them, or by a worker a job was posted to, before it takes the lock).
  std::atomic<std::size_t> deliveries_waiting_{0};
  creation_breaker breaker_;
  std::deque<job> jobs_;
  std::condition_variable workers_cv_;     // idle workers wait here
  std::condition_variable quiet_cv_;       // close() waits here for workers to leave
  std::condition_variable housekeeper_cv_;
  // Where workers run (shares_worker_threads): null, threads of their own that linger.
  std::shared_ptr<worker_threads> shared_threads_;
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
  std::uint64_t cancelled_ = 0;
  // evict_if() predicates waiting for leased (or creating, or reserved) resources, by slot
  // index; the slot's evict_check flag says an entry may be here.
  std::unordered_map<std::uint32_t, std::vector<evict_predicate>> evict_checks_;
  std::uint64_t slow_acquired_ = 0;
  wait_histogram wait_hist_;
  std::chrono::microseconds wait_max_{0};
  wait_histogram create_hist_;
  // Timed holds (pool_stats::use_time), counted by returning holders without the lock, in
  // shards by slot so that threads on different slots do not share a counter's cache line (one
  // shared histogram made two threads' cycles 8-10% slower). Relaxed: counters, read as a
  // snapshot by stats().
  struct alignas(cache_line) use_histogram_shard {
    std::array<std::atomic<std::uint64_t>, wait_histogram::bucket_count> buckets{};
  };
  static constexpr std::size_t use_hist_shards = 8;
  std::array<use_histogram_shard, use_hist_shards> use_hist_{};
  std::exception_ptr last_error_;
  std::string last_error_text_;
  std::mt19937_64 rng_;

  // Mean of the timed holds (use_time's samples), ns, for shed_hopeless: updated by returning
  // holders without the lock, so an update may be lost (it is an estimate).
  std::atomic<std::int64_t> hold_avg_ns_{0};

  std::atomic<int> refs_{1};  // P5
  std::thread housekeeper_;
};

}  // namespace detail
RESPOOL_NAMESPACE_END

// The rest of pool_core's member functions, an area to a header.
#include "pool_control.hpp"
#include "pool_async.hpp"
#include "pool_creation.hpp"
#include "pool_housekeeping.hpp"
#include "pool_waiting.hpp"
#include "pool_workers.hpp"
