#pragma once
/**
 * `respool::thread_pool`: an executor for IO-bound work that starts threads before it queues.
 *
 * A task that waits on a database or an HTTP call holds a thread without using a core. A JDK-style
 * executor queues as soon as its core threads are busy, so a burst of 1,000 such 2 ms tasks runs
 * on the core threads one after another; this pool starts threads up to `max_threads` first and
 * queues only when all of them are busy, so the burst finishes in about 1,000 × 2 ms / max_threads.
 *
 * The decision for each task is exact, taken under the pool's mutex:
 *  1. an idle thread takes it (the task is handed to that one thread, so two submitters can never
 *     count on the same idle thread);
 *  2. else a new thread is started for it, if fewer than `max_threads` exist (or are starting);
 *  3. else it is queued, if the queue holds fewer than `queue_capacity` tasks;
 *  4. else the rejection policy decides.
 * `thread_growth::queue_first` swaps 2 and 3 above `core_threads`, as the JDK does.
 *
 * **Example**:
 * ```cpp
 * respool::thread_pool io{{.core_threads = 2, .max_threads = 64, .queue_capacity = 1000,
 *                          .name = "io"}};
 * std::future<std::string> body = io.submit([] { return http_get("https://example.com/"); });
 * io.execute([] { audit_log("fetched"); });  // fire-and-forget: errors go to options.error_sink
 * io.submit([](std::stop_token st) { while (!st.stop_requested()) poll(); });
 * io.shutdown();                             // stops intake, drains the queue, joins
 * ```
 */
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <future>
#include <mutex>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <system_error>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "detail/move_only_task.hpp"
#include "detail/pool_time.hpp"
#include "detail/segmented_queue.hpp"
#include "detail/spin_policy.hpp"
#include "detail/thread_naming.hpp"
#include "detail/thread_placement.hpp"
#include "detail/thread_pool_tasks.hpp"
#include "detail/thread_worker.hpp"
#include "errors.hpp"
#include "thread_pool_options.hpp"
#include "thread_pool_stats.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

/**
 * A thread pool for IO-bound tasks: grows to `max_threads` before it queues, bounded queue,
 * rejection policies, stop tokens, statistics. See the top of this header and `README.md`.
 *
 * Thread safety: every member function may be called from any thread, including the pool's own
 * tasks, except the destructor (never from a pool task) and `wait_idle` (throws
 * `std::logic_error` from a pool task, which would wait for itself).
 *
 * **Example**:
 * ```cpp
 * respool::thread_pool pool{{.max_threads = 32, .queue_capacity = 0,
 *                            .rejection = respool::rejection_policy::caller_runs}};
 * auto n = pool.submit([](int a, int b) { return a + b; }, 2, 3);  // n.get() == 5
 * std::error_code ec;
 * if (!pool.execute([] { refresh_cache(); }, ec)) log(ec.message());
 * ```
 */
class thread_pool {
 public:
  /// A task the pool holds: move-only, call it once. `shutdown_now()` returns the unrun ones.
  /// Destroying an unrun `submit` task gives its future `errc::closed`.
  using task = detail::move_only_task;

  explicit thread_pool(thread_pool_options options = {}) : options_(std::move(options)) {
    options_.validate();
    keep_alive_ns_ = detail::saturating_ns(options_.keep_alive);
    block_timeout_ns_ = detail::saturating_ns(options_.block_timeout);
    if (options_.prestart_core) {
      std::unique_lock lock(mutex_);
      for (std::size_t i = 0; i < options_.core_threads; ++i) {
        task none;
        if (std::exception_ptr failure = start_thread(lock, none)) {
          lock.unlock();
          shutdown();
          std::rethrow_exception(failure);
        }
      }
    }
  }

  thread_pool(const thread_pool&) = delete;
  auto operator=(const thread_pool&) -> thread_pool& = delete;
  thread_pool(thread_pool&&) = delete;
  auto operator=(thread_pool&&) -> thread_pool& = delete;

  /// Drains and joins, as `shutdown()`. Never destroy a pool from one of its own tasks.
  ~thread_pool() { shutdown(); }

  /**
   * Runs `f()` (or `f(stop_token)`) on the pool, fire-and-forget. An exception it throws goes to
   * `options.error_sink`. Throws `respool::error` when the task is refused: `errc::rejected`
   * (`abort`), `errc::timeout` (`block`), `errc::closed` (after shutdown); under `discard` it
   * drops the task silently.
   */
  template <class F>
  void execute(F&& f) {
    static_assert(detail::runnable<F>,
                  "respool::thread_pool::execute: the task must be callable as f() or "
                  "f(std::stop_token) after being moved into the pool");
    if (auto refusal = dispatch(make_call(std::forward<F>(f)), true); refusal.report) {
      std::rethrow_exception(refusal.failure);
    }
  }

  /// Non-throwing `execute`: returns whether the pool took the task (or ran it inline under
  /// `caller_runs`); otherwise `ec` says why (`rejected` also under `discard`), else it is cleared.
  template <class F>
  auto execute(F&& f, std::error_code& ec) -> bool {
    static_assert(detail::runnable<F>,
                  "respool::thread_pool::execute: the task must be callable as f() or "
                  "f(std::stop_token) after being moved into the pool");
    ec = dispatch(make_call(std::forward<F>(f)), false).code;
    return !ec;
  }

  /**
   * Runs `f(args...)` (or `f(stop_token, args...)`) on the pool; the future receives the result
   * or the exception. Arguments are moved into the task. Throws `respool::error` on refusal, as
   * `execute` does; under `discard` and `discard_oldest` the dropped task's future receives
   * `errc::rejected` at once.
   */
  template <class F, class... Args>
  auto submit(F&& f, Args&&... args) {  // -> std::future<result of f(args...)>
    static_assert(detail::runnable<F, Args...>,
                  "respool::thread_pool::submit: the task must be callable as f(args...) or "
                  "f(std::stop_token, args...), with the arguments moved in");
    auto [t, future] = make_promised(std::forward<F>(f), std::forward<Args>(args)...);
    if (auto refusal = dispatch(std::move(t), true); refusal.report) {
      std::rethrow_exception(refusal.failure);
    }
    return std::move(future);
  }

  /// Non-throwing `submit` (for a callable without arguments: bind them in a lambda). On refusal
  /// `ec` says why and the returned future already holds the `respool::error`; else `ec` is
  /// cleared. A trailing `std::error_code` lvalue always selects this form, never an argument.
  template <class F>
  auto submit(F&& f, std::error_code& ec) -> std::future<detail::task_result_t<F>> {
    static_assert(detail::runnable<F>,
                  "respool::thread_pool::submit: the task must be callable as f() or "
                  "f(std::stop_token) after being moved into the pool");
    auto [t, future] = make_promised(std::forward<F>(f));
    ec = dispatch(std::move(t), false).code;
    return std::move(future);
  }

  /**
   * Stops intake (later submissions fail with `errc::closed`), lets the threads run every queued
   * task, and joins them. Idempotent. Called from one of the pool's own tasks it only stops intake
   * (a thread cannot join itself); the destructor joins.
   */
  void shutdown() {
    if (on_pool_thread()) {
      std::unique_lock lock(mutex_);
      close(lock);
      return;
    }
    std::lock_guard serial(shutdown_mutex_);  // a second caller returns only once all is joined
    std::unique_lock lock(mutex_);
    close(lock);
    ++quiet_waiters_;
    quiet_.wait(lock, [this] { return threads_ == 0 && leaving_ == 0 && !retrier_running_; });
    --quiet_waiters_;
    // Tasks can be left only if no thread could be started for them (every start failed): run
    // them here rather than lose them, as the pool's own (a task that shuts the pool down or
    // waits for it gets the answer a pool thread gets, instead of waiting for itself).
    {
      const detail::as_pool_thread own(this);
      while (!queue_.empty()) {
        task t = take_queued_locked();
        lock.unlock();
        const bool threw = run(t);
        lock.lock();
        finished(threw);
      }
    }
    worker_roster::list exited = roster_.take_exited();
    std::thread retrier = std::move(retrier_);
    lock.unlock();
    worker_roster::join_all(exited);
    if (retrier.joinable()) retrier.join();
    lock.lock();
    roster_.retire_all(exited);
  }

  /**
   * Stops intake, requests stop on every `std::stop_token` handed to tasks, and returns the tasks
   * that never started (handed-over ones first, then the queue in order). Does not wait for the
   * running tasks: follow with `wait_idle` or `shutdown()` (or the destructor) for that. Run a
   * returned task to run it now, or destroy it (its future then gets `errc::closed`).
   */
  auto shutdown_now() -> std::vector<task> {
    std::vector<task> never_ran;
    {
      std::unique_lock lock(mutex_);
      never_ran.reserve(threads_ + queue_.size());  // may throw: before anything changes
      close(lock);
      roster_.for_each_live([&](worker& w) {
        // A task handed to a thread that has not picked it up yet has not started: take it back.
        if (w.has_task.exchange(false, std::memory_order_acquire)) {
          never_ran.push_back(std::move(w.slot));
          --active_;
        }
      });
      while (!queue_.empty()) never_ran.push_back(queue_.pop_front());
      claimed_ = 0;
      pending_ -= never_ran.size();
      cancelled_ += never_ran.size();
      if (pending_ == 0 && quiet_waiters_ > 0) quiet_.notify_all();
    }
    // Outside the mutex: stop callbacks run here, and may call into the pool.
    stop_source_.request_stop();
    return never_ran;
  }

  /// Waits until no task is queued or running (tasks run inline by `caller_runs` are not the
  /// pool's). Returns `false` on timeout. Throws `std::logic_error` from one of the pool's tasks.
  template <class Rep, class Period>
  auto wait_idle(std::chrono::duration<Rep, Period> timeout) -> bool {
    refuse_on_pool_thread("wait_idle");
    const auto deadline = detail::add_sat(now_ns(), detail::saturating_ns(timeout));
    std::unique_lock lock(mutex_);
    ++quiet_waiters_;
    while (pending_ != 0 && !wait_until(quiet_, lock, deadline)) {
    }
    --quiet_waiters_;
    return pending_ == 0;
  }

  /// `wait_idle` without a time limit.
  void wait_idle() { static_cast<void>(wait_idle(std::chrono::nanoseconds::max())); }

  [[nodiscard]] auto stats() const -> thread_pool_stats {
    std::lock_guard lock(mutex_);
    return thread_pool_stats{
        .threads = threads_,
        .idle = idle_.size(),
        .active = active_ + claimed_,
        .largest = largest_,
        .queued = queue_.size() - claimed_,
        .largest_queue = largest_queue_,
        .blocked = blocked_,
        .submitted = submitted_,
        .completed = completed_,
        .failed = failed_,
        .cancelled = cancelled_,
        .start_failures = start_failures_,
        .rejected = rejected_,
    };
  }

  [[nodiscard]] auto options() const noexcept -> const thread_pool_options& { return options_; }

  /// Whether `shutdown()` or `shutdown_now()` was called.
  [[nodiscard]] auto is_shut_down() const -> bool {
    std::lock_guard lock(mutex_);
    return closed_;
  }

 private:
  using worker = detail::worker;
  using worker_roster = detail::worker_roster;

  // Invariants (mutex_ held):
  //  T1. threads_ counts live threads and starts in progress; a thread that decided to leave is
  //      out of threads_ and in leaving_ until it stops touching the pool.
  //  T2. idle_ holds threads only while the queue is empty: a thread idles only after finding
  //      the queue empty, and a task is queued only while no thread idles.
  //  T3. claimed_ <= booting_ and claimed_ <= queue_.size(): each claimed task is one a thread
  //      that is starting with no task will take, so it was queued without starting another.
  //  T4. pending_ = queued + handed over + running, and submitted_ = completed_ +
  //      rejected_.discarded_oldest + cancelled_ + pending_.
  //  T5. Queued tasks wait for a thread the placement rule would start (start_owed) only after
  //      a start failed, and then the retrier is armed (or the pool is closing).
  //  T6. No user code, string building or allocation for a refusal runs under the mutex.

  // What became of a task the pool did not take. `failure` is what the task (its future) got,
  // built only when someone will see it.
  struct outcome {
    std::error_code code;
    std::exception_ptr failure;
    bool report = false;  // a throwing form must throw `failure`
  };

  // The counts a refusal message shows, copied under the mutex and formatted outside it.
  struct refusal_counts {
    std::size_t threads, idle, queued;
  };

  static auto now_ns() noexcept -> std::int64_t {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  // Waits on `cv` until `deadline` (steady nanoseconds; never_ns waits without a timeout, so no
  // duration reaches the standard library that it could overflow). True on timeout.
  static auto wait_until(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         std::int64_t deadline) -> bool {
    if (deadline == detail::never_ns) {
      cv.wait(lock);
      return false;
    }
    const std::chrono::steady_clock::time_point at{std::chrono::nanoseconds(deadline)};
    return cv.wait_until(lock, at) == std::cv_status::timeout;
  }

  // Tells the CPU this is a spin-wait (saves power, and frees the core's other hyper-thread).
  static void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    asm volatile("yield");
#endif
  }

  // Keeps data written by different threads on different cache lines: 64 bytes on the platforms
  // respool targets (std::hardware_destructive_interference_size is not stable across compilers).
  static constexpr std::size_t cache_line = 64;

  template <class F, class... Args>
  auto make_call(F&& f, Args&&... args) {
    if constexpr (detail::takes_stop_token<F, Args...>) {
      return detail::bound_call<std::decay_t<F>, std::stop_token, std::decay_t<Args>...>{
          std::forward<F>(f), std::tuple<std::stop_token, std::decay_t<Args>...>(
                                  stop_source_.get_token(), std::forward<Args>(args)...)};
    } else {
      return detail::bound_call<std::decay_t<F>, std::decay_t<Args>...>{
          std::forward<F>(f), std::tuple<std::decay_t<Args>...>(std::forward<Args>(args)...)};
    }
  }

  template <class F, class... Args>
  auto make_promised(F&& f, Args&&... args) {
    using call = decltype(make_call(std::forward<F>(f), std::forward<Args>(args)...));
    using result = detail::task_result_t<F, Args...>;
    detail::promised_call<call, result> p{
        make_call(std::forward<F>(f), std::forward<Args>(args)...)};
    std::future<result> future = p.get_future();
    return std::pair<task, std::future<result>>{task{std::move(p)}, std::move(future)};
  }

  [[nodiscard]] auto on_pool_thread() const noexcept -> bool {
    return detail::current_thread_pool() == this;
  }

  void refuse_on_pool_thread(const char* what) const {
    if (on_pool_thread()) {
      throw std::logic_error(std::string("respool::thread_pool::") + what +
                             " called from one of the pool's own tasks would wait for itself");
    }
  }

  // --- placing a task ---------------------------------------------------------------------------

  [[nodiscard]] auto placement_locked(bool may_start) const noexcept -> detail::placement_state {
    return {.idle = idle_.size(),
            .booting = booting_,
            .threads = threads_,
            .queued = queue_.size(),
            .claimed = claimed_,
            .core = options_.core_threads,
            .max = options_.max_threads,
            .capacity = options_.queue_capacity,
            .growth = options_.growth,
            .may_start = may_start};
  }

  // Places the task (detail::place, see the top of this header) or applies the rejection policy.
  // `throwing`: the caller throws a refusal, so it needs the exception even without a future.
  auto dispatch(task t, bool throwing) -> outcome;

  // Gives the task to the most recently idle thread; returns it if it must be woken.
  auto hand_to_idle(task&& t) -> worker*;

  // Queues the task; `claim`: for a booting thread (T3), so it does not count toward the
  // queue's bound or its reported length (it is as good as handed over).
  void enqueue(task&& t, bool claim);

  auto take_queued_locked() noexcept -> task;

  // Fails the task with the reason (its future, if any, gets it at once). The counts are copied
  // here; the message is built after unlocking, and only if a future or a throw will show it.
  auto refuse(std::unique_lock<std::mutex>& lock, task& t, errc code, const char* why,
              const std::exception_ptr& cause, bool throwing) -> outcome;

  auto refusal_message(const char* why, errc code, const refusal_counts& c,
                       const std::exception_ptr& cause) const -> std::string;

  void run_in_caller(std::unique_lock<std::mutex>& lock, task& t);

  // --- starting threads -------------------------------------------------------------------------

  // Starts a thread whose first task is `t`; with `t` empty the thread boots free and takes the
  // oldest queued task (claiming it now if one is unclaimed, T3) or idles. Called and returns
  // with the mutex held, but releases it while the thread starts. On failure returns the
  // exception, gives the task back in `t` (left empty if shutdown_now took it meanwhile) and
  // schedules the retry (T5). May throw std::bad_alloc before anything changed.
  auto start_thread(std::unique_lock<std::mutex>& lock, task& t) -> std::exception_ptr;

  // A booting thread looked at the queue (or never started): its claim, if any, lapses (T3).
  void end_boot_locked(worker& w) noexcept;

  // T5: makes sure queued tasks owed a thread get a retry, on the retrier thread (std::thread,
  // not thread_factory: it must run while the factory fails; it only calls the factory).
  void arm_retry_locked() noexcept;

  void retry_main() noexcept;

  // --- the threads ------------------------------------------------------------------------------

  // Runs a task; an exception escaping it (only fire-and-forget tasks let one out) goes to the
  // error sink. Returns whether it threw.
  auto run(task& t) noexcept -> bool;

  void report(const std::exception_ptr& e) noexcept;

  // Book-keeping after a pool task ran (mutex held).
  void finished(bool threw) noexcept;

  // A thread's whole life. Nothing in it throws: every step is a splice, a counter, a wait or a
  // task run through run().
  void worker_main(worker& w) noexcept;

  // T1: out of threads_ as soon as it decides, so a second idle thread deciding at the same
  // moment sees it gone (the pool never shrinks below core).
  void begin_leaving_locked() noexcept;

  // Leaving, with the mutex held: join the threads that left before this one (so at most one
  // exited thread is ever left unjoined, holding its stack), then file this one for the next.
  void leave_locked(std::unique_lock<std::mutex>& lock, worker& w) noexcept;

  [[nodiscard]] auto may_time_out() const noexcept -> bool {
    return threads_ > options_.core_threads || options_.core_threads_time_out;
  }

  // Idles until a task is handed over (returned in `t`), the pool closes (returns true with `t`
  // empty) or keep-alive expires for a thread that may time out (returns false, leaving).
  // Mutex held on entry and on return, except when a task arrived while spinning: then it is not
  // retaken, because the task was already counted as active by whoever handed it over.
  auto wait_for_task(std::unique_lock<std::mutex>& lock, worker& w, task& t,
                     detail::adaptive_spin& spin) -> bool;

  // Polls for a hand-off for up to `budget` ns (detail::adaptive_spin), with at most
  // max_spinners_ threads polling at once: more would only take cores from the producers.
  auto spin_for_task(worker& w, std::int64_t budget, std::int64_t since) noexcept -> bool;

  // Stops intake and wakes everything that waits (mutex held).
  void close(std::unique_lock<std::mutex>&);

  // Read-only after construction.
  thread_pool_options options_;
  std::int64_t keep_alive_ns_ = 0;     // options_.keep_alive, saturated (never_ns: forever)
  std::int64_t block_timeout_ns_ = 0;  // options_.block_timeout, likewise
  int max_spinners_ = static_cast<int>(std::max(1U, std::thread::hardware_concurrency() / 2));

  // What every submit and every finished task writes, packed onto two cache lines of their own:
  // the lock hand-over between the producer and the threads then moves as little as possible.
  alignas(cache_line) mutable std::mutex mutex_;
  detail::idle_stack idle_;
  std::size_t threads_ = 0;  // T1
  bool closed_ = false;
  alignas(cache_line) detail::segmented_queue<task> queue_;
  std::size_t pending_ = 0;  // T4
  std::size_t active_ = 0;
  std::uint64_t submitted_ = 0;
  std::uint64_t completed_ = 0;
  // Read on every task but rarely written, so their line stays shared between the cores.
  alignas(cache_line) std::size_t blocked_ = 0;
  std::size_t quiet_waiters_ = 0;
  std::size_t largest_queue_ = 0;
  std::size_t booting_ = 0;  // T3
  std::size_t claimed_ = 0;  // T3

  // Polled by spinning threads: kept off the lines above, which change all the time. Relaxed:
  // closed_flag_ is a hint (the mutex-held closed_ decides); spinners_ is a cap, not a handshake.
  alignas(cache_line) std::atomic<bool> closed_flag_{false};
  std::atomic<int> spinners_{0};

  // The slow paths.
  alignas(cache_line) std::mutex shutdown_mutex_;
  std::condition_variable room_;   // `block` submitters wait for room here
  std::condition_variable quiet_;  // wait_idle and shutdown wait here
  std::condition_variable retry_;  // the retrier waits for its next attempt here
  worker_roster roster_;
  std::size_t starting_ = 0;  // starts in progress (the mutex is released meanwhile)
  std::size_t leaving_ = 0;   // T1
  std::size_t largest_ = 0;
  std::size_t threads_started_ = 0;
  std::uint32_t consecutive_start_failures_ = 0;
  std::int64_t retry_at_ = 0;  // steady ns: the retrier's next attempt (T5)
  std::thread retrier_;
  bool retrier_running_ = false;
  std::uint64_t failed_ = 0;
  std::uint64_t cancelled_ = 0;
  std::uint64_t start_failures_ = 0;
  thread_pool_rejections rejected_;
  std::stop_source stop_source_;
};

RESPOOL_NAMESPACE_END

// thread_pool's remaining member functions, an area to a header.
#include "detail/thread_pool_dispatch.hpp"
#include "detail/thread_pool_threads.hpp"
