#pragma once
/**
 * `respool::pool`: a pool of costly resources (database, Redis or HTTP connections).
 *
 * **Example**:
 * ```cpp
 * respool::pool db{[] { return connect("host=db"); },
 *                  respool::pool_options{.max_size = 8, .min_idle = 2, .name = "db"},
 *                  [](conn& c) { return c.ping(); },        // validator
 *                  [](conn& c) { return c.rollback(); }};   // resetter
 * {
 *   respool::lease c = db.acquire();          // waits up to options.acquire_timeout
 *   c->query("SELECT 1");
 * }                                           // returned: reset, then to the oldest waiter
 * auto maybe = db.try_acquire();              // std::optional<lease>, never waits
 * std::error_code ec;
 * auto l = db.acquire(50ms, ec);              // non-throwing form
 * ```
 *
 * Thread safety: every member may be called from any thread. The factory runs on the pool's
 * background threads (and on the constructing thread for `min_idle`), up to
 * `create_concurrency` calls at once; the validator, resetter and destructor may run
 * concurrently on different resources, so none of them may share unsynchronised state.
 *
 * User code cannot hold the pool hostage: `close()` and `~pool()` return without waiting for a
 * factory call or keepalive ping that hangs (what it eventually returns is destroyed then), so
 * the factory, validator and what they refer to must outlive their last call, not the pool.
 */
#include <chrono>
#include <concepts>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <source_location>
#include <stop_token>
#include <system_error>
#include <utility>
#include <vector>

#include "acquire_awaitable.hpp"
#include "concepts.hpp"
#include "detail/pool_core.hpp"
#include "errors.hpp"
#include "lease.hpp"
#include "options.hpp"
#include "stats.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

namespace detail {
struct not_a_resource {};
template <class F>
struct resource_or_placeholder {
  using type = not_a_resource;
};
template <factory F>
struct resource_or_placeholder<F> {
  using type = resource_t<F>;
};
struct pool_access;
}  // namespace detail

template <class Factory, class Validator = always_valid, class Resetter = no_reset,
          class Clock = std::chrono::steady_clock>
class pool {
  static_assert(factory<Factory>,
                "respool::pool: the factory must have a member `R create()` or be callable as "
                "`R f()`, returning a movable, destructible resource R (for example "
                "`[] { return connect(); }`)");
  using R = typename detail::resource_or_placeholder<Factory>::type;
  static_assert(validator<Validator, R>,
                "respool::pool: the validator must have a member `bool validate(R&)` or be "
                "callable as `bool v(R&)`, where R is what the factory returns; use "
                "respool::always_valid for none");
  static_assert(resetter<Resetter, R>,
                "respool::pool: the resetter must have a member `bool reset(R&)` or be callable "
                "as `bool s(R&)` (false destroys the resource), where R is what the factory "
                "returns; use respool::no_reset for none");
  static_assert(std::chrono::is_clock_v<Clock>, "respool::pool: Clock must be a std::chrono clock");

  using core_type = detail::pool_core<Factory, Validator, Resetter, Clock>;

 public:
  using resource_type = R;
  using lease_type = lease<R>;
  using clock = Clock;

  /// Validates the options (`std::invalid_argument` naming the field), starts the background
  /// threads, and creates `min_idle` resources on them, `create_concurrency` at a time; waits
  /// until they exist, one fails (not thrown: it starts the backoff, and the first acquire or
  /// `wait_ready()` reports it), or `acquire_timeout` passes (a connect that hangs).
  explicit pool(Factory f, pool_options options = {}, Validator v = {}, Resetter s = {})
      : core_(new core_type(std::move(f), checked(std::move(options)), std::move(v),
                            std::move(s))) {}

  pool(const pool&) = delete;
  auto operator=(const pool&) -> pool& = delete;

  /// Closes the pool. Leases still out stay valid; their resources are destroyed on return.
  ~pool() { core_->destroy_handle(); }

  /// Waits up to `options().acquire_timeout`. Throws `respool::error`: `timeout`, `closed`,
  /// `exhausted`, `create_failed` or `backend_unavailable` (with the factory's error as cause).
  /// Any duration type may be given to the overloads below; `acquire(0ms)` never queues or
  /// spins: a resource idle now, or `timeout` at once.
  [[nodiscard]] auto acquire(std::source_location where = std::source_location::current())
      -> lease_type {
    return acquire_or_throw(core_->default_timeout(), where);
  }

  template <class Rep, class Period>
  [[nodiscard]] auto acquire(std::chrono::duration<Rep, Period> timeout,
                             std::source_location where = std::source_location::current())
      -> lease_type {
    return acquire_or_throw(detail::saturating_ns(timeout), where);
  }

  /// Non-throwing form: on failure returns an empty lease and sets `ec` (a `respool::errc`).
  template <class Rep, class Period>
  [[nodiscard]] auto acquire(std::chrono::duration<Rep, Period> timeout, std::error_code& ec,
                             std::source_location where = std::source_location::current())
      -> lease_type {
    detail::failure_slot fail;
    auto l = core_->acquire(detail::saturating_ns(timeout), where, &fail);
    ec = l ? std::error_code{} : code_of(fail);
    return l;
  }

  /// Cancellable: a stop request on `stop` ends the wait at once with `errc::cancelled` (also
  /// if it came before the call), and the caller's place in the queue is freed. A resource that
  /// reached the caller first is kept: the lease is returned as usual.
  ///
  /// **Example**: `auto conn = db.acquire(request.stop_token(), 500ms);`
  template <class Rep, class Period>
  [[nodiscard]] auto acquire(std::stop_token stop, std::chrono::duration<Rep, Period> timeout,
                             std::source_location where = std::source_location::current())
      -> lease_type {
    return core_->acquire(stop, detail::saturating_ns(timeout), where, nullptr);
  }

  template <class Rep, class Period>
  [[nodiscard]] auto acquire(std::stop_token stop, std::chrono::duration<Rep, Period> timeout,
                             std::error_code& ec,
                             std::source_location where = std::source_location::current())
      -> lease_type {
    detail::failure_slot fail;
    auto l = core_->acquire(stop, detail::saturating_ns(timeout), where, &fail);
    ec = l ? std::error_code{} : code_of(fail);
    return l;
  }

  // ---------------------------------------------------------------- asynchronous

  /// Asynchronous acquire: `handler(std::error_code, respool::lease<R>)` is called exactly
  /// once, with a lease or with `timeout`, `closed`, `exhausted`, `cancelled`, `create_failed`
  /// or `backend_unavailable`. Never with the pool's lock held, and before this returns only
  /// when the answer is known at once (a resource idle now, or a failure such as a closed pool
  /// or `timeout` 0); otherwise on the thread that serves it: the one returning a lease or
  /// creating a resource, the one requesting the stop, or a pool worker for a timeout. The
  /// waiter queues with blocking callers (one order, one fairness rule, the same errors and
  /// stats) and costs a small record, not a thread; the pool's housekeeper times it out. A
  /// handler that throws is reported (`event_kind::handler_threw`) and otherwise ignored.
  /// Throws only `std::bad_alloc` (the record), and then the handler is never called.
  ///
  /// **Example**:
  /// ```cpp
  /// db.async_acquire(500ms, [](std::error_code ec, respool::lease<conn> c) {
  ///   if (ec) return reply_busy(ec);
  ///   c->query("SELECT 1");
  /// });  // the lease goes back when the handler lets go of it
  /// ```
  template <class Rep, class Period, class Handler>
    requires std::invocable<Handler&, std::error_code, lease_type>
  void async_acquire(std::chrono::duration<Rep, Period> timeout, Handler&& handler,
                     std::source_location where = std::source_location::current()) {
    start_async(detail::saturating_ns(timeout), nullptr, std::forward<Handler>(handler), where);
  }
  /// Waits up to `options().acquire_timeout`.
  template <class Handler>
    requires std::invocable<Handler&, std::error_code, lease_type>
  void async_acquire(Handler&& handler, std::source_location where = std::source_location::current()) {
    start_async(core_->default_timeout(), nullptr, std::forward<Handler>(handler), where);
  }
  /// Cancellable: a stop request on `stop` completes it with `errc::cancelled`, on the thread
  /// that requested it (at once if it came first); one served already keeps its lease.
  template <class Rep, class Period, class Handler>
    requires std::invocable<Handler&, std::error_code, lease_type>
  void async_acquire(std::chrono::duration<Rep, Period> timeout, Handler&& handler, std::stop_token stop,
                     std::source_location where = std::source_location::current()) {
    start_async(detail::saturating_ns(timeout), &stop, std::forward<Handler>(handler), where);
  }
  template <class Rep, class Period, class Handler>
    requires std::invocable<Handler&, std::error_code, lease_type>
  void async_acquire(std::chrono::duration<Rep, Period> timeout, std::stop_token stop, Handler&& handler,
                     std::source_location where = std::source_location::current()) {
    start_async(detail::saturating_ns(timeout), &stop, std::forward<Handler>(handler), where);
  }
  template <class Rep, class Period, class Handler>
    requires std::invocable<Handler&, std::error_code, lease_type>
  void async_acquire(std::stop_token stop, std::chrono::duration<Rep, Period> timeout, Handler&& handler,
                     std::source_location where = std::source_location::current()) {
    start_async(detail::saturating_ns(timeout), &stop, std::forward<Handler>(handler), where);
  }

  /// `co_await pool.acquire_async(timeout)`: the lease, or throws `respool::error` as
  /// `acquire()` does; with an `std::error_code&` it sets that instead. Usable from any C++20
  /// coroutine. Resumes on the thread that served it, or through `executor` (anything with
  /// `post(f)` or callable as `e(f)`); does not suspend when served at once. A `stop_token`
  /// cancels it; destroying the suspended coroutine takes its waiter out of the queue (see
  /// acquire_awaitable.hpp).
  ///
  /// **Example**: `respool::lease c = co_await db.acquire_async(500ms);`
  template <class Rep, class Period>
  [[nodiscard]] auto acquire_async(std::chrono::duration<Rep, Period> timeout,
                                   std::source_location where = std::source_location::current()) {
    return awaitable<resume_inline>(detail::saturating_ns(timeout), nullptr, {}, {}, where);
  }
  [[nodiscard]] auto acquire_async(std::source_location where = std::source_location::current()) {
    return awaitable<resume_inline>(core_->default_timeout(), nullptr, {}, {}, where);
  }
  template <class Rep, class Period>
  [[nodiscard]] auto acquire_async(std::chrono::duration<Rep, Period> timeout, std::error_code& ec,
                                   std::source_location where = std::source_location::current()) {
    return awaitable<resume_inline>(detail::saturating_ns(timeout), &ec, {}, {}, where);
  }
  template <class Rep, class Period, resume_executor Executor>
  [[nodiscard]] auto acquire_async(std::chrono::duration<Rep, Period> timeout, Executor executor,
                                   std::source_location where = std::source_location::current()) {
    return awaitable<Executor>(detail::saturating_ns(timeout), nullptr, {}, std::move(executor), where);
  }
  template <class Rep, class Period, resume_executor Executor>
  [[nodiscard]] auto acquire_async(std::chrono::duration<Rep, Period> timeout, std::error_code& ec,
                                   Executor executor,
                                   std::source_location where = std::source_location::current()) {
    return awaitable<Executor>(detail::saturating_ns(timeout), &ec, {}, std::move(executor), where);
  }
  template <class Rep, class Period>
  [[nodiscard]] auto acquire_async(std::chrono::duration<Rep, Period> timeout, std::stop_token stop,
                                   std::source_location where = std::source_location::current()) {
    return awaitable<resume_inline>(detail::saturating_ns(timeout), nullptr, std::move(stop), {}, where);
  }
  template <class Rep, class Period>
  [[nodiscard]] auto acquire_async(std::chrono::duration<Rep, Period> timeout, std::stop_token stop,
                                   std::error_code& ec,
                                   std::source_location where = std::source_location::current()) {
    return awaitable<resume_inline>(detail::saturating_ns(timeout), &ec, std::move(stop), {}, where);
  }
  template <class Rep, class Period, resume_executor Executor>
  [[nodiscard]] auto acquire_async(std::chrono::duration<Rep, Period> timeout, std::stop_token stop,
                                   Executor executor,
                                   std::source_location where = std::source_location::current()) {
    return awaitable<Executor>(detail::saturating_ns(timeout), nullptr, std::move(stop),
                               std::move(executor), where);
  }
  template <class Rep, class Period, resume_executor Executor>
  [[nodiscard]] auto acquire_async(std::chrono::duration<Rep, Period> timeout, std::stop_token stop,
                                   std::error_code& ec, Executor executor,
                                   std::source_location where = std::source_location::current()) {
    return awaitable<Executor>(detail::saturating_ns(timeout), &ec, std::move(stop),
                               std::move(executor), where);
  }

  /// An idle resource now, or nothing; never waits. If nothing is idle and there is room, the
  /// creator is asked for one so that a later try can succeed.
  [[nodiscard]] auto try_acquire(std::source_location where = std::source_location::current())
      -> std::optional<lease_type> {
    return core_->try_acquire(where);
  }

  /// A snapshot: counts, counters and wait times. Takes the pool's lock briefly.
  [[nodiscard]] auto stats() const -> pool_stats { return core_->stats(); }

  /// Every lease out, longest held first: where it was acquired (`acquire()`'s call site) and
  /// for how long. Timeout and `exhausted` errors name the first three the same way, e.g.
  /// "held longest by orders.cpp:88 (load_order) for 2,340 ms, ...".
  [[nodiscard]] auto holders() const -> std::vector<lease_holder> { return core_->holders(); }

  /// Failover: idle resources are closed now (on this thread), leased ones when they come
  /// back, and ones being created or under a keepalive check when that ends; none of them is
  /// lent again.
  void evict_all() { core_->evict_all(); }

  /// Closes the resources `pred(const R&)` picks: idle ones now (on this thread, which also
  /// runs `pred` on them), leased ones when they return, and ones being created or under a
  /// keepalive check at their next borrow; none that matches is lent again. `pred` runs on the
  /// thread that owns the resource at that moment, so it may read it freely (several such
  /// threads may call the same `pred` at once); a `pred` that throws counts as a match. (deadpool's `retain`, HikariCP's `softEvictConnections`.)
  ///
  /// **Example**: `db.evict_if([](const conn& c) { return c.host() == "10.0.0.5"; });`
  template <class Pred>
    requires std::predicate<const Pred&, const R&>
  void evict_if(Pred pred) {
    core_->evict_if(std::make_shared<const std::function<bool(const R&, std::uint32_t)>>(
        [p = std::move(pred)](const R& r, std::uint32_t) -> bool { return static_cast<bool>(p(r)); }));
  }

  /// How long the idle resource returned longest ago has sat idle (to within the coarse
  /// clock's tick, `housekeeping_interval`), or nothing when none is idle. A reading: it may be
  /// lent a moment later. (keyed_pool uses it to pick which key gives up an idle resource.)
  [[nodiscard]] auto oldest_idle_age() const noexcept -> std::optional<std::chrono::nanoseconds> {
    return core_->oldest_idle_age();
  }

  /// Closes the idle resource returned longest ago now, on this thread (counted as
  /// `destroy_reason::reclaimed`); false if none was idle. Frees its place for a new creation.
  auto retire_oldest_idle() noexcept -> bool { return core_->retire_oldest_idle(); }

  /// Refuses new acquires, wakes waiters with `errc::closed`, closes idle resources, stops the
  /// background threads. Leased resources are closed when they come back; a factory call or
  /// ping still running is not waited for (its resource is closed when it returns). Idempotent.
  void close() { core_->close(); }

  /// One housekeeping pass now, on this thread, with the user code it leads to (the background
  /// housekeeper plans the same pass every `housekeeping_interval` and leaves the user code to
  /// background workers): ticks the coarse clock, retires idle and expired resources, runs
  /// keepalive validation, reports leaks, wakes waiters whose deadline passed, refills min_idle.
  /// With a manual test clock, advance the clock and call this.
  void run_maintenance() { core_->run_maintenance(); }

  /// The options as they are now: `max_size` as `set_max_size()` left it (and `min_idle`, at
  /// most that).
  [[nodiscard]] auto options() const -> pool_options { return core_->options(); }

  /// Changes the limit at runtime (1 to `pool_options::max_size_limit`, else
  /// `std::invalid_argument`). Growing lets waiters be served by new creations at once.
  /// Shrinking closes idle surplus now (on this thread) and leased surplus as it comes back;
  /// from the return of this call on, no lend takes the pool above the new limit. `min_idle`
  /// is capped at the limit. (HikariCP's `setMaximumPoolSize`, database/sql `SetMaxOpenConns`.)
  ///
  /// **Example**: `db.set_max_size(32);  // the replica is bigger now`
  void set_max_size(std::size_t n) { core_->set_max_size(n); }

  /// Planned failover or maintenance: until `resume()`, acquires wait (and time out with a
  /// message that says the pool is paused), nothing idle is lent and nothing new is created.
  /// Leases out stay valid and come back as usual. (HikariCP's `suspendPool`.)
  void pause() { core_->pause(); }
  /// Ends a pause: the waiters are served in the order they came, the oldest first.
  void resume() { core_->resume(); }

  /// Waits until `min_idle` resources exist (idle or in use). Throws `respool::error`:
  /// `timeout`, with the last creation error as its cause, or `closed`.
  ///
  /// **Example**: `db.wait_ready(5s);  // at start-up: fail loudly if the database is not there`
  template <class Rep, class Period>
  void wait_ready(std::chrono::duration<Rep, Period> timeout) {
    detail::failure_slot fail;
    if (!core_->wait_ready(detail::saturating_ns(timeout), &fail))
      detail::throw_failure(fail);
  }
  /// Non-throwing form: true when ready, else false with `ec` set.
  template <class Rep, class Period>
  auto wait_ready(std::chrono::duration<Rep, Period> timeout, std::error_code& ec) -> bool {
    detail::failure_slot fail;
    const bool ready = core_->wait_ready(detail::saturating_ns(timeout), &fail);
    ec = ready ? std::error_code{} : code_of(fail);
    return ready;
  }

 private:
  friend struct detail::pool_access;
  static auto checked(pool_options o) -> pool_options {
    o.validate();
    return o;
  }
  static auto code_of(const detail::failure_slot& f) noexcept -> std::error_code {
    return make_error_code(f ? f->code : errc::timeout);
  }
  template <class Executor>
  using awaitable_type = acquire_awaitable<core_type, Executor>;
  template <class Executor>
  auto awaitable(std::int64_t timeout, std::error_code* ec, std::stop_token stop,
                 Executor executor, const std::source_location& where) -> awaitable_type<Executor> {
    return awaitable_type<Executor>(*core_, timeout, ec, std::move(stop), std::move(executor), where);
  }
  template <class Handler>
  void start_async(std::int64_t timeout, const std::stop_token* stop, Handler&& handler,
                   const std::source_location& where) {
    using request = detail::callback_request<core_type, std::decay_t<Handler>>;
    core_->async_acquire(*new request(core_, std::forward<Handler>(handler), where), timeout, stop);
  }

  // `timeout` in pool units (detail::saturating_ns: any duration type, negative is 0, huge is
  // forever).
  auto acquire_or_throw(std::int64_t timeout, const std::source_location& where) -> lease_type {
    return core_->acquire(timeout, where, nullptr);  // throws what fails
  }

  core_type* core_;
};

namespace detail {
// The core behind a pool, for respool's own compositions (cluster_pool).
struct pool_access {
  template <class P>
  static auto core(P& p) noexcept -> auto& {
    return *p.core_;
  }
};
}  // namespace detail

template <class F>
pool(F) -> pool<F>;
template <class F>
pool(F, pool_options) -> pool<F>;
template <class F, class V>
pool(F, pool_options, V) -> pool<F, V>;
template <class F, class V, class S>
pool(F, pool_options, V, S) -> pool<F, V, S>;

RESPOOL_NAMESPACE_END
