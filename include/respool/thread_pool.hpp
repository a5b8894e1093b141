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
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <functional>
#include <future>
#include <iterator>
#include <list>
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

#if defined(__linux__)
#include <pthread.h>
#endif

#include "detail/move_only_task.hpp"
#include "detail/segmented_queue.hpp"
#include "errors.hpp"
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
  /// A thread above `core_threads` exits after idling this long.
  std::chrono::milliseconds keep_alive = std::chrono::seconds{60};
  /// Let core threads time out too, so an idle pool holds no threads at all.
  bool core_threads_time_out = false;
  thread_growth growth = thread_growth::threads_first;
  rejection_policy rejection = rejection_policy::abort;
  /// How long `rejection_policy::block` waits for room before failing with `errc::timeout`.
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
  /// rejected, as if the pool were at `max_threads`). For stack sizes, affinity, or tests.
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
  std::size_t active = 0;            ///< threads running a task (or handed one)
  std::size_t largest = 0;           ///< most threads there ever were at once
  std::size_t queued = 0;            ///< tasks waiting in the queue
  std::size_t largest_queue = 0;     ///< longest the queue ever was
  std::size_t blocked = 0;           ///< submitters waiting for room (`rejection_policy::block`)
  std::uint64_t submitted = 0;       ///< tasks accepted: handed to a thread or queued
  std::uint64_t completed = 0;       ///< accepted tasks that ran to the end (or threw)
  std::uint64_t failed = 0;          ///< fire-and-forget tasks whose exception went to `error_sink`
  std::uint64_t cancelled = 0;       ///< tasks returned unrun by `shutdown_now()`
  std::uint64_t start_failures = 0;  ///< thread starts that threw (the task was queued or rejected)
  thread_pool_rejections rejected;
};

namespace detail {

// The pool whose task the current thread runs, so a task that submits to its own pool, waits on
// it or shuts it down can be recognised (an inline function's static: one per program).
inline auto current_thread_pool() noexcept -> const void*& {
  thread_local const void* pool = nullptr;
  return pool;
}

// std::jthread's rule: a callable that accepts a std::stop_token first gets one.
template <class F, class... Args>
inline constexpr bool takes_stop_token =
    std::is_invocable_v<std::decay_t<F>, std::stop_token, std::decay_t<Args>...>;

template <class F, class... Args>
inline constexpr bool runnable =
    takes_stop_token<F, Args...> || std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>;

// SFINAE-friendly (no `type` when not callable), so the non-throwing `submit(f, ec)` overload is
// chosen cleanly and a bad call reaches the static_assert that explains it.
template <class F, class... Args>
struct task_result : std::invoke_result<std::decay_t<F>, std::decay_t<Args>...> {};
template <class F, class... Args>
  requires takes_stop_token<F, Args...>
struct task_result<F, Args...>
    : std::invoke_result<std::decay_t<F>, std::stop_token, std::decay_t<Args>...> {};
template <class F, class... Args>
using task_result_t = typename task_result<F, Args...>::type;

// A callable with its arguments, called once with everything moved in (as std::thread does).
template <class F, class... Args>
struct bound_call {
  [[no_unique_address]] F fn;
  [[no_unique_address]] std::tuple<Args...> args;

  auto operator()() -> decltype(auto) { return std::apply(std::move(fn), std::move(args)); }
};

// A call whose result (or exception) goes to a std::promise. If the pool drops it, `fail` hands
// the future the reason; if it is destroyed unrun (a task returned by shutdown_now() and thrown
// away), the future gets errc::closed rather than a bare broken_promise.
template <class Call, class R>
class promised_call {
 public:
  explicit promised_call(Call call) : call_(std::move(call)) {}
  promised_call(promised_call&& other) noexcept(std::is_nothrow_move_constructible_v<Call>)
      : call_(std::move(other.call_)),
        promise_(std::move(other.promise_)),
        pending_(std::exchange(other.pending_, false)) {}
  promised_call(const promised_call&) = delete;
  auto operator=(const promised_call&) -> promised_call& = delete;
  auto operator=(promised_call&&) -> promised_call& = delete;
  ~promised_call() {
    if (pending_) {
      fail(std::make_exception_ptr(
          error(errc::closed, "respool thread pool: the task was destroyed before it ran")));
    }
  }

  auto get_future() -> std::future<R> { return promise_.get_future(); }

  void operator()() {
    pending_ = false;
    try {
      if constexpr (std::is_void_v<R>) {
        call_();
        promise_.set_value();
      } else {
        promise_.set_value(call_());
      }
    } catch (...) {
      promise_.set_exception(std::current_exception());
    }
  }

  void fail(std::exception_ptr e) noexcept {
    if (!pending_) return;
    pending_ = false;
    try {
      promise_.set_exception(std::move(e));
    } catch (...) {  // no state: nobody can be waiting
    }
  }

 private:
  Call call_;
  std::promise<R> promise_;
  bool pending_ = true;
};

}  // namespace detail

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
    if (auto refusal = dispatch(make_call(std::forward<F>(f))); refusal.failure && refusal.report) {
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
    ec = dispatch(make_call(std::forward<F>(f))).code;
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
    if (auto refusal = dispatch(std::move(t)); refusal.failure && refusal.report) {
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
    ec = dispatch(std::move(t)).code;
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
    quiet_.wait(lock, [this] { return threads_ == 0 && starting_ == 0; });
    --quiet_waiters_;
    // Tasks can be left only if no thread could be started for them (every start failed): run
    // them here rather than lose them.
    while (!queue_.empty()) {
      task t = queue_.pop_front();
      ++active_;
      lock.unlock();
      const bool threw = run(t);
      lock.lock();
      finished(threw);
    }
    std::vector<std::thread> exited = std::exchange(exited_, {});
    lock.unlock();
    for (std::thread& t : exited) t.join();
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
      never_ran.reserve(workers_.size() + queue_.size());  // may throw: before anything changes
      close(lock);
      for (worker& w : workers_) {
        // A task handed to a thread that has not picked it up yet has not started: take it back.
        if (w.has_task.exchange(false, std::memory_order_acquire)) {
          never_ran.push_back(std::move(w.slot));
          --active_;
        }
      }
      while (!queue_.empty()) never_ran.push_back(queue_.pop_front());
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
    std::unique_lock lock(mutex_);
    ++quiet_waiters_;
    const bool quiet = quiet_.wait_for(lock, timeout, [this] { return pending_ == 0; });
    --quiet_waiters_;
    return quiet;
  }

  /// `wait_idle` without a time limit.
  void wait_idle() {
    refuse_on_pool_thread("wait_idle");
    std::unique_lock lock(mutex_);
    ++quiet_waiters_;
    quiet_.wait(lock, [this] { return pending_ == 0; });
    --quiet_waiters_;
  }

  [[nodiscard]] auto stats() const -> thread_pool_stats {
    std::lock_guard lock(mutex_);
    return thread_pool_stats{
        .threads = threads_,
        .idle = idle_count_,
        .active = active_,
        .largest = largest_,
        .queued = queue_.size(),
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
  struct worker {
    std::thread thread;  // stored by its creator once started (under the mutex)
    std::condition_variable wake;
    task slot;  // a task handed to this thread, valid while has_task
    std::atomic<bool> has_task{false};
    bool sleeping = false;  // blocked on `wake`: a hand-over must notify it
    bool idle = false;      // in the idle list
    bool exited = false;    // left before its creator stored `thread`: the creator cleans up
    worker* idle_prev = nullptr;
    worker* idle_next = nullptr;
    std::list<worker>::iterator self;
    std::size_t number = 0;
  };

  // What became of a task the pool did not take. `failure` is what the task (its future) got.
  struct outcome {
    std::error_code code;
    std::exception_ptr failure;
    bool report = true;  // false under `discard`: the throwing forms stay silent
  };

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

  // Idle threads spin this many rounds before sleeping: a hand-over to a spinning thread costs no
  // system call, which is most of the cost of a short task. Bounded, so idle threads go quiet.
  static constexpr int spin_rounds = 2000;  // tens of microseconds, depending on the CPU

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

  // --- the decision -----------------------------------------------------------------------------

  // Places the task (see the top of this header) or applies the rejection policy.
  auto dispatch(task t) -> outcome {
    std::unique_lock lock(mutex_);
    bool may_grow = true;  // false once a start failed for this task: queue or reject it
    std::exception_ptr start_error;
    std::chrono::steady_clock::time_point deadline{};
    bool waited = false;
    for (;;) {
      if (closed_) {
        ++rejected_.closed;
        return refuse(lock, t, errc::closed, "task refused: the pool is shut down", start_error);
      }
      if (idle_head_ != nullptr) {
        worker* sleeper = hand_to_idle(std::move(t));
        lock.unlock();
        // Woken outside the mutex, so it does not wake only to block on it. The record outlives
        // its thread (workers are recycled, never freed before the pool), so a late notify is at
        // worst a spurious wake-up for a later thread.
        if (sleeper != nullptr) sleeper->wake.notify_one();
        return {};
      }
      const bool can_grow = may_grow && threads_ < options_.max_threads;
      const bool has_room = queue_.size() < options_.queue_capacity;
      const bool grow_now = options_.growth == thread_growth::threads_first
                                ? can_grow
                                : can_grow && (threads_ < options_.core_threads || !has_room);
      if (grow_now) {
        if (std::exception_ptr failure = start_thread(lock, t)) {
          may_grow = false;
          start_error = std::move(failure);
        }
        if (!t) return {};  // running (or, after a failed start, taken by shutdown_now)
        continue;           // the mutex was released: decide again, without growing
      }
      if (has_room) {
        enqueue(std::move(t));
        // queue_first with no core threads: like the JDK, make sure some thread will run it.
        // If that start fails the task stays queued (counted in start_failures) for a later thread.
        if (threads_ == 0 && may_grow) {
          task none;
          static_cast<void>(start_thread(lock, none));
        }
        return {};
      }

      switch (options_.rejection) {
        case rejection_policy::abort:
          ++rejected_.aborted;
          return refuse(lock, t, errc::rejected,
                        "task rejected: every thread busy, none may be started, queue full (abort)",
                        start_error);
        case rejection_policy::discard:
          ++rejected_.discarded;
          return refuse(
              lock, t, errc::rejected,
              "task discarded: every thread busy, none may be started, queue full (discard)",
              start_error, false);
        case rejection_policy::discard_oldest:
          if (!queue_.empty()) {
            task oldest = queue_.pop_front();
            ++rejected_.discarded_oldest;
            --pending_;
            enqueue(std::move(t));
            refuse(lock, oldest, errc::rejected,
                   "queued task discarded for a newer one (discard_oldest)", start_error);
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
            deadline = std::chrono::steady_clock::now() + options_.block_timeout;
          }
          ++blocked_;
          const auto status = room_.wait_until(lock, deadline);
          --blocked_;
          if (status == std::cv_status::timeout && !closed_ && idle_head_ == nullptr &&
              queue_.size() >= options_.queue_capacity &&
              !(may_grow && threads_ < options_.max_threads)) {
            ++rejected_.timed_out;
            return refuse(lock, t, errc::timeout,
                          "task rejected: no room within block_timeout (" +
                              std::to_string(options_.block_timeout.count()) + " ms)",
                          start_error);
          }
          continue;
      }
    }
  }

  // Gives the task to the most recently idle thread; returns it if it must be woken.
  auto hand_to_idle(task&& t) -> worker* {
    worker* w = idle_head_;
    unlink_idle(*w);
    w->slot = std::move(t);
    w->has_task.store(true, std::memory_order_release);
    ++active_;
    ++submitted_;
    ++pending_;
    return w->sleeping ? w : nullptr;
  }

  void enqueue(task&& t) {
    queue_.push_back(std::move(t));
    ++submitted_;
    ++pending_;
    if (queue_.size() > largest_queue_) largest_queue_ = queue_.size();  // read-mostly line
  }

  // Starts a thread whose first task is `t` (which may be empty). Called and returns with the
  // mutex held, but releases it while the thread starts. On failure returns the exception and
  // gives the task back in `t` (left empty if shutdown_now took it meanwhile).
  auto start_thread(std::unique_lock<std::mutex>& lock, task& t) -> std::exception_ptr {
    worker& w = new_worker();
    w.number = ++threads_started_;
    const bool has_first = static_cast<bool>(t);
    if (has_first) {
      w.slot = std::move(t);
      w.has_task.store(true, std::memory_order_relaxed);  // the thread's start publishes it
      ++active_;
      ++submitted_;
      ++pending_;
    }
    ++threads_;
    ++starting_;
    largest_ = std::max(largest_, threads_);
    std::vector<std::thread> exited = std::exchange(exited_, {});
    lock.unlock();

    for (std::thread& old : exited) old.join();  // finished threads: joining is quick
    std::thread thread;
    std::exception_ptr failure;
    try {
      auto body = [this, pw = &w] { worker_main(*pw); };
      thread = options_.thread_factory ? options_.thread_factory(std::function<void()>(body))
                                       : std::thread(body);
    } catch (...) {
      failure = std::current_exception();
    }

    lock.lock();
    --starting_;
    if (failure) {
      --threads_;
      ++start_failures_;
      if (has_first && w.has_task.exchange(false, std::memory_order_acquire)) {
        t = std::move(w.slot);  // not accepted after all: the caller decides again
        --active_;
        --submitted_;
        --pending_;
      }
      retire(w);
      if (blocked_ > 0) room_.notify_one();
    } else if (w.exited) {
      exited_.push_back(std::move(thread));
      retire(w);
    } else {
      w.thread = std::move(thread);
    }
    if (quiet_waiters_ > 0) quiet_.notify_all();
    return failure;
  }

  // Fails the task with the reason (its future, if any, gets it at once), outside the mutex.
  auto refuse(std::unique_lock<std::mutex>& lock, task& t, errc code, const std::string& why,
              const std::exception_ptr& cause, bool report = true) -> outcome {
    std::string what = "respool thread pool '" + options_.name + "': " + why + " (threads " +
                       std::to_string(threads_) + "/" + std::to_string(options_.max_threads) +
                       ", " + std::to_string(idle_count_) + " idle, queue " +
                       std::to_string(queue_.size()) + "/" +
                       std::to_string(options_.queue_capacity) + ")";
    lock.unlock();
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
    std::exception_ptr failure = std::make_exception_ptr(error(code, what, cause));
    t.fail(failure);
    return {make_error_code(code), failure, report};
  }

  void run_in_caller(std::unique_lock<std::mutex>& lock, task& t) {
    lock.unlock();
    if (run(t)) {
      lock.lock();
      ++failed_;
    }
  }

  // --- the threads ------------------------------------------------------------------------------

  // Runs a task; an exception escaping it (only fire-and-forget tasks let one out) goes to the
  // error sink. Returns whether it threw.
  auto run(task& t) noexcept -> bool {
    bool threw = false;
    try {
      t();
    } catch (...) {
      threw = true;
      report(std::current_exception());
    }
    t.reset();  // release what the task captured now, not when the next one arrives
    return threw;
  }

  void report(const std::exception_ptr& e) noexcept {
    try {
      if (options_.error_sink) {
        options_.error_sink(e);
        return;
      }
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& ex) {
        std::fprintf(stderr, "respool thread pool '%s': a fire-and-forget task threw: %s\n",
                     options_.name.c_str(), ex.what());
      } catch (...) {
        std::fprintf(stderr, "respool thread pool '%s': a fire-and-forget task threw\n",
                     options_.name.c_str());
      }
    } catch (...) {  // the sink threw: nowhere left to report it
    }
  }

  // Book-keeping after a pool task ran (mutex held).
  void finished(bool threw) {
    --active_;
    ++completed_;
    if (threw) ++failed_;
    if (--pending_ == 0 && quiet_waiters_ > 0) quiet_.notify_all();
  }

  void name_this_thread([[maybe_unused]] std::size_t number) const {
#if defined(__linux__)
    // Linux keeps 15 characters: shorten the name, never the number.
    char suffix[24] = {'-'};
    const auto end = std::to_chars(suffix + 1, suffix + sizeof suffix, number).ptr;
    const auto suffix_length = std::min<std::size_t>(static_cast<std::size_t>(end - suffix), 15);
    const std::size_t keep = std::min(options_.name.size(), 15 - suffix_length);
    char name[16] = {};
    std::memcpy(name, options_.name.data(), keep);
    std::memcpy(name + keep, suffix, suffix_length);
    pthread_setname_np(pthread_self(), name);
#endif
  }

  void worker_main(worker& w) {
    detail::current_thread_pool() = this;
    name_this_thread(w.number);
    task t;
    if (w.has_task.exchange(false, std::memory_order_acquire)) t = std::move(w.slot);
    std::unique_lock lock(mutex_, std::defer_lock);
    for (;;) {
      if (t) {
        const bool threw = run(t);
        lock.lock();
        finished(threw);
      } else if (!lock.owns_lock()) {
        lock.lock();
      }
      if (!queue_.empty()) {
        t = queue_.pop_front();
        ++active_;
        if (blocked_ > 0) room_.notify_one();
        lock.unlock();
        continue;
      }
      if (closed_) break;
      if (wait_for_task(lock, w, t)) {
        if (t && lock.owns_lock()) lock.unlock();
        continue;
      }
      break;  // timed out above core
    }
    // Leaving, with the mutex held.
    --threads_;
    if (blocked_ > 0) room_.notify_one();  // a thread may be started in its place
    if (w.thread.joinable()) {
      exited_.push_back(std::move(w.thread));
      retire(w);  // `w` may serve another thread from here on
    } else {
      w.exited = true;  // the creator has not stored the handle yet: it will clean up
    }
    if (quiet_waiters_ > 0) quiet_.notify_all();
    detail::current_thread_pool() = nullptr;
  }

  // Idles until a task is handed over (returned in `t`), the pool closes (returns true with `t`
  // empty) or keep-alive expires for a thread above core (returns false). Mutex held on entry and
  // on return, except when a task arrived while spinning: then it is not retaken, because the
  // task was already counted as active by whoever handed it over.
  auto wait_for_task(std::unique_lock<std::mutex>& lock, worker& w, task& t) -> bool {
    link_idle(w);
    if (blocked_ > 0) room_.notify_one();
    auto deadline = std::chrono::steady_clock::now() + options_.keep_alive;
    lock.unlock();

    for (int i = 0; i < spin_rounds; ++i) {
      if (w.has_task.load(std::memory_order_relaxed) &&
          w.has_task.exchange(false, std::memory_order_acquire)) {
        t = std::move(w.slot);
        return true;
      }
      if (closed_flag_.load(std::memory_order_relaxed)) break;
      cpu_relax();
    }

    lock.lock();
    while (!w.has_task.load(std::memory_order_relaxed) && !closed_) {
      w.sleeping = true;
      if (threads_ > options_.core_threads || options_.core_threads_time_out) {
        const auto status = w.wake.wait_until(lock, deadline);
        w.sleeping = false;
        if (status == std::cv_status::timeout) {
          if (!w.has_task.load(std::memory_order_relaxed) && !closed_ &&
              (threads_ > options_.core_threads || options_.core_threads_time_out)) {
            unlink_idle(w);
            return false;
          }
          deadline = std::chrono::steady_clock::now() + options_.keep_alive;
        }
      } else {
        // At or below core: nothing to time out for. Threads started later idle after this one
        // and time out themselves, so the pool still shrinks back to core.
        w.wake.wait(lock);
        w.sleeping = false;
        deadline = std::chrono::steady_clock::now() + options_.keep_alive;
      }
    }
    if (w.has_task.exchange(false, std::memory_order_acquire)) {
      t = std::move(w.slot);
    } else if (w.idle) {
      unlink_idle(w);  // closing
    }
    return true;
  }

  // A record for a new thread: a retired one if there is one. Records are kept until the pool is
  // destroyed, so code that still holds a pointer to one (a late notify) never touches freed memory.
  auto new_worker() -> worker& {
    if (retired_.empty()) {
      workers_.emplace_back();
    } else {
      workers_.splice(workers_.end(), retired_, retired_.begin());
    }
    worker& w = workers_.back();
    w.self = std::prev(workers_.end());
    w.sleeping = false;
    w.idle = false;
    w.exited = false;
    w.idle_prev = w.idle_next = nullptr;
    return w;
  }

  void retire(worker& w) noexcept { retired_.splice(retired_.end(), workers_, w.self); }

  // Idle threads form a LIFO list: the most recently busy thread (warm caches) takes the next
  // task, and the ones at the bottom stay idle long enough to reach keep-alive and exit.
  void link_idle(worker& w) noexcept {
    w.idle = true;
    w.idle_prev = nullptr;
    w.idle_next = idle_head_;
    if (idle_head_ != nullptr) idle_head_->idle_prev = &w;
    idle_head_ = &w;
    ++idle_count_;
  }

  void unlink_idle(worker& w) noexcept {
    if (w.idle_prev != nullptr) {
      w.idle_prev->idle_next = w.idle_next;
    } else {
      idle_head_ = w.idle_next;
    }
    if (w.idle_next != nullptr) w.idle_next->idle_prev = w.idle_prev;
    w.idle_prev = w.idle_next = nullptr;
    w.idle = false;
    --idle_count_;
  }

  // Stops intake and wakes everything that waits (mutex held).
  void close(std::unique_lock<std::mutex>&) {
    if (closed_) return;
    closed_ = true;
    closed_flag_.store(true, std::memory_order_relaxed);
    for (worker& w : workers_) {
      if (w.sleeping) w.wake.notify_one();
    }
    room_.notify_all();
  }

  // Read-only after construction.
  thread_pool_options options_;

  // What every submit and every finished task writes, packed onto two cache lines of their own:
  // the lock hand-over between the producer and the threads then moves as little as possible.
  alignas(cache_line) mutable std::mutex mutex_;
  worker* idle_head_ = nullptr;
  std::size_t threads_ = 0;  // live threads, including those being started
  bool closed_ = false;
  alignas(cache_line) detail::segmented_queue<task> queue_;
  std::size_t pending_ = 0;  // accepted, not finished: queued + handed over + running
  std::size_t active_ = 0;
  std::uint64_t submitted_ = 0;
  std::uint64_t completed_ = 0;
  // Read on every task but rarely written, so their line stays shared between the cores.
  alignas(cache_line) std::size_t blocked_ = 0;
  std::size_t quiet_waiters_ = 0;
  std::size_t largest_queue_ = 0;
  std::size_t idle_count_ = 0;

  // Read by idle threads while they spin: kept off the lines above, which change all the time.
  alignas(cache_line) std::atomic<bool> closed_flag_{false};

  // The slow paths.
  alignas(cache_line) std::mutex shutdown_mutex_;
  std::condition_variable room_;     // `block` submitters wait for room here
  std::condition_variable quiet_;    // wait_idle and shutdown wait here
  std::list<worker> workers_;        // a list: workers never move, and leave in any order
  std::list<worker> retired_;        // records of threads that left, reused by new ones
  std::vector<std::thread> exited_;  // threads that left, to be joined
  std::size_t starting_ = 0;         // starts in progress (the mutex is released meanwhile)
  std::size_t largest_ = 0;
  std::size_t threads_started_ = 0;
  std::uint64_t failed_ = 0;
  std::uint64_t cancelled_ = 0;
  std::uint64_t start_failures_ = 0;
  thread_pool_rejections rejected_;
  std::stop_source stop_source_;
};

RESPOOL_NAMESPACE_END
