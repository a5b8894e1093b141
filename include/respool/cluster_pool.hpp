#pragma once
/**
 * `respool::cluster_pool`: connections to several servers of one database: writes to a primary,
 * reads to the replicas, new connections to the endpoint with the fewest for its weight, sick
 * or lagging endpoints taken out and brought back.
 *
 * **Example**:
 * ```cpp
 * respool::cluster_pool db{
 *     std::vector<respool::endpoint>{
 *         {.name = "host=10.0.0.1", .role = respool::role::primary},
 *         {.name = "host=10.0.0.2", .role = respool::role::replica},
 *         {.name = "host=10.0.0.3", .role = respool::role::replica}},
 *     [](const respool::endpoint& e) { return pg_connect(e.name); },
 *     respool::cluster_pool_options<pg_conn>{
 *         .write_pool = {.max_size = 8}, .read_pool = {.max_size = 16},
 *         .replication_lag = [](pg_conn& c) { return replay_lag(c); },  // optional
 *         .max_replica_lag = 2s}};
 * {
 *   respool::lease w = db.acquire(respool::route::write);  // a primary's connection
 *   respool::lease r = db.acquire(respool::route::read);   // a replica's, or the primary's
 * }
 * db.set_endpoints(from_dns());  // scale-out, DNS change: new ones fill, removed ones drain
 * ```
 *
 * How it works (decisions where issue #12 is silent):
 * - Two `respool::pool`s, one per route: `write_pool` over the primaries, `read_pool` over the
 *   replicas, each with its own options, its own FIFO of waiters and fairness. A connection can
 *   serve any caller of its route, whichever endpoint it goes to: a caller never waits for one
 *   endpoint while another's connection is idle. `max_size` bounds each route's connections
 *   across all its endpoints.
 * - Balance (detail/endpoint_set.hpp, E4): each new connection goes to the usable endpoint with
 *   the fewest connections for its weight. A connection returned as usual to an endpoint that
 *   holds at least one more than its share is closed instead (`destroy_reason::rebalanced`),
 *   so that its successor goes where fewer are: after a restart, a node that came back empty
 *   fills as the others' connections come back, with no connection count above `max_size`.
 * - Health (E5): after `failures_to_exclude` failures in a row (a connect that failed, a
 *   connection that failed validation, a lease `discard()`ed, a lag probe that threw; a lease
 *   returned as usual ends a run of failures) an endpoint is taken out: its
 *   connections are evicted (idle ones closed now, leased ones when they come back), new ones
 *   go to the others, and a background probe (a connect through the factory) retries it with a
 *   doubling, jittered backoff from `probe_backoff_min` to `probe_backoff_max`. A creation that
 *   fails tries the next endpoint at once; only when every usable endpoint failed does the
 *   pool see a failure, whose message names every endpoint with its state and last error.
 * - Reads: to a usable replica; with none usable (none configured, all down or lagging), or the
 *   read pool failing to create, to the primaries if `reads_fall_back_to_primary` (within the
 *   same timeout), else `errc::backend_unavailable`.
 * - Lag (`replication_lag` set): every `lag_probe_interval` the background thread runs the probe
 *   on each replica, on a connection of its own (one per replica, made with the factory and
 *   kept); a replica more than `max_replica_lag` behind gets no reads (its read connections are
 *   evicted) until a reading at or below the limit. A probe that throws is a failure of the
 *   replica.
 * - `set_endpoints()`: endpoints are matched by name and role; a new one starts empty, so it
 *   gets the next connections and the rebalancing on returns; one that left is drained (its idle
 *   connections closed at once, leased ones when they come back) and stays in `stats()`, marked
 *   `removed`, until its last connection is closed. A role change (failover) is a removal plus an
 *   addition.
 * - Threads: the two pools' housekeepers, workers they share (connects, destructors, events;
 *   as many as there is work at once, each lingering 2 s), and one for probes and lag checks, which runs the factory and the lag probe: a probe that hangs delays the other probes,
 *   never an acquire. With `housekeeping_interval = 0` there is no such thread: call
 *   `run_maintenance()`.
 *
 * Thread safety: every member may be called from any thread. The factory may run on several
 * threads at once (both pools' workers and the probe thread), as may the validator and resetter.
 */
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <source_location>
#include <stdexcept>
#include <string>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "concepts.hpp"
#include "detail/endpoint_set.hpp"
#include "detail/pool_time.hpp"
#include "endpoint.hpp"
#include "errors.hpp"
#include "lease.hpp"
#include "options.hpp"
#include "pool.hpp"
#include "stats.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

/// How a cluster_pool sizes its pools and watches its endpoints. An aggregate for designated
/// initialisers; `validate()` (also called by the constructor) throws `std::invalid_argument`
/// naming the field. `R` is the resource type (what the factory returns).
template <class R>
struct cluster_pool_options {
  using duration = std::chrono::milliseconds;

  /// The pool of `route::write`, over the primaries (and of reads that fall back to them). A
  /// `name` left at "pool" becomes "<name>[write]".
  pool_options write_pool{};
  /// The pool of `route::read`, over the replicas. A `name` left at "pool" becomes
  /// "<name>[read]".
  pool_options read_pool{};
  /// Reads go to the primaries when no replica can serve (none configured, all down or
  /// lagging, or the read pool failing to connect); false fails them instead.
  bool reads_fall_back_to_primary = true;
  /// Failures in a row (since the last success) that take an endpoint out.
  std::uint32_t failures_to_exclude = 3;
  /// An endpoint taken out is probed after this long, doubling per failed probe up to the
  /// max, each jittered down by up to half.
  duration probe_backoff_min = std::chrono::milliseconds(100);
  duration probe_backoff_max = std::chrono::seconds(5);
  /// How far behind a replica is (for PostgreSQL, `now() - pg_last_xact_replay_timestamp()`,
  /// or the replay's byte lag turned into time); empty: lag is not watched.
  std::function<std::chrono::milliseconds(R&)> replication_lag{};
  /// A replica further behind than this gets no reads until it catches up.
  duration max_replica_lag = std::chrono::seconds(10);
  /// How often each replica's lag is measured.
  duration lag_probe_interval = std::chrono::seconds(1);
  /// The probe thread's period (it also wakes at once when an endpoint goes down). 0 runs no
  /// thread: call `cluster_pool::run_maintenance()` yourself.
  duration housekeeping_interval = std::chrono::milliseconds(100);
  /// Names the cluster in errors.
  std::string name = "cluster";

  /// Throws `std::invalid_argument` naming the first bad field.
  void validate() const {
    auto fail = [this](const std::string& field, const char* why) {
      throw std::invalid_argument("respool cluster_pool_options for '" + name + "': " + field +
                                  " " + why);
    };
    if (name.empty()) fail("name", "must not be empty");
    if (failures_to_exclude == 0) fail("failures_to_exclude", "must be at least 1");
    if (probe_backoff_min <= duration::zero()) fail("probe_backoff_min", "must be positive");
    if (probe_backoff_max < probe_backoff_min)
      fail("probe_backoff_max", "must not be below probe_backoff_min");
    if (max_replica_lag < duration::zero()) fail("max_replica_lag", "must not be negative");
    if (lag_probe_interval <= duration::zero()) fail("lag_probe_interval", "must be positive");
    if (housekeeping_interval < duration::zero())
      fail("housekeeping_interval", "must not be negative (0: no background thread)");
    if (housekeeping_interval > pool_options::max_housekeeping_interval)
      fail("housekeeping_interval", "must be at most 1 hour (0: no background thread)");
    for (auto [field, o] : {std::pair{"write_pool", &write_pool}, std::pair{"read_pool", &read_pool}}) {
      try {
        o->validate();
      } catch (const std::invalid_argument& e) {
        throw std::invalid_argument("respool cluster_pool_options for '" + name + "': " + field +
                                    ": " + e.what());
      }
    }
  }
};

/// Throws `std::invalid_argument` naming the first bad endpoint: a name empty or used twice, a
/// weight of 0, none at all, more than 256.
inline void validate_endpoints(const std::vector<endpoint>& eps, const std::string& cluster) {
  auto fail = [&](std::size_t i, const std::string& why) {
    throw std::invalid_argument("respool cluster '" + cluster + "': endpoints[" +
                                std::to_string(i) + "]" + why);
  };
  if (eps.empty())
    throw std::invalid_argument("respool cluster '" + cluster + "': endpoints must not be empty");
  if (eps.size() > detail::endpoint_set::capacity)
    throw std::invalid_argument("respool cluster '" + cluster + "': at most 256 endpoints");
  std::unordered_set<std::string> names;
  for (std::size_t i = 0; i < eps.size(); ++i) {
    if (eps[i].name.empty()) fail(i, ".name must not be empty");
    if (eps[i].weight == 0) fail(i, ".weight must be at least 1 ('" + eps[i].name + "')");
    if (!names.insert(eps[i].name).second) fail(i, ".name '" + eps[i].name + "' is used twice");
  }
}

namespace detail {
// What the cluster's pools, their factories and resetters, and its probe thread share. Lives
// as long as the longest of them (a lease out keeps its pool's core, whose factory keeps this).
template <class Factory, class R>
struct cluster_state {
  cluster_state(Factory f, cluster_pool_options<R> o)
      : make(std::move(f)),
        opts(std::move(o)),
        endpoints(endpoint_set_config{
            opts.failures_to_exclude,
            {static_cast<std::int64_t>(opts.write_pool.create_concurrency),
             static_cast<std::int64_t>(opts.read_pool.create_concurrency)},
            saturating_ns(opts.probe_backoff_min), saturating_ns(opts.probe_backoff_max),
            opts.max_replica_lag.count()}) {}

  auto create(const endpoint& ep) -> R { return invoke_keyed_create(make, ep); }

  // Something for the probe thread to do (an endpoint went down).
  void wake() noexcept {
    {
      std::lock_guard lk(mutex);
      woken = true;
    }
    cv.notify_all();
  }

  Factory make;
  const cluster_pool_options<R> opts;
  endpoint_set endpoints;
  std::shared_ptr<worker_threads> threads = std::make_shared<worker_threads>();  // both pools'

  std::mutex mutex;  // guards woken, stopping, prober_exited
  std::condition_variable cv;
  bool woken = false;
  bool stopping = false;
  bool prober_exited = false;
};

// A route's factory: the least loaded usable endpoint of its group, the next one if that
// fails, and an error naming them all when none can be reached (E1, E5).
template <class Factory, class R>
struct cluster_factory {
  std::shared_ptr<cluster_state<Factory, R>> st;
  std::uint8_t group = 0;

  [[nodiscard]] auto worker_threads() const -> std::shared_ptr<detail::worker_threads> {
    return st->threads;
  }

  auto create_from(std::uint32_t& origin) -> R {
    std::vector<std::uint32_t> tried;
    std::exception_ptr last;
    for (;;) {
      auto job = st->endpoints.pick(group, tried);
      if (!job) break;
      try {
        R r = st->create(job->ep);
        origin = job->id;
        return r;
      } catch (...) {
        last = std::current_exception();
        st->endpoints.creation_failed(job->id, describe_exception(last), steady_ns());
        if (st->endpoints.has_actions()) st->wake();
        tried.push_back(job->id);
      }
    }
    const char* what = group == 0 ? "primary" : "replica";
    throw error(tried.empty() ? errc::backend_unavailable : errc::create_failed,
                "respool cluster '" + st->opts.name + "': no " + what +
                    (tried.empty() ? " can take a connection now (every one is down, lagging or removed)"
                                   : " could be connected") +
                    ": " + st->endpoints.describe(group),
                last);
  }

  void destroyed(std::uint32_t origin, destroy_reason why) noexcept {
    st->endpoints.destroyed(origin, why, steady_ns());
    if (why == destroy_reason::failed_validation || why == destroy_reason::discarded) {
      bool act = false;
      try {
        act = st->endpoints.has_actions();
      } catch (...) {
      }
      if (act) st->wake();
    }
  }
};

// A route's resetter: a return as usual is a success of its endpoint, and moves elsewhere when
// its endpoint holds more than its share (E4); else the user's reset.
template <class Factory, class R, class Resetter>
struct cluster_resetter {
  [[no_unique_address]] Resetter inner;
  std::shared_ptr<cluster_state<Factory, R>> st;

  auto reclaim(std::uint32_t origin) noexcept -> std::optional<destroy_reason> {
    if (st->endpoints.move_on_return(origin)) return destroy_reason::rebalanced;
    return std::nullopt;
  }
  auto reset(R& r) -> bool { return invoke_reset(inner, r); }  // no_reset's is `true`, inlined
};
template <class Factory, class R, class Resetter>
struct resetter_reclaims<cluster_resetter<Factory, R, Resetter>> : std::true_type {};
}  // namespace detail

template <class Factory, class Validator = always_valid, class Resetter = no_reset,
          class Clock = std::chrono::steady_clock>
class cluster_pool {
  static_assert(keyed_factory<Factory, endpoint>,
                "respool::cluster_pool: the factory must have a member `R create(const "
                "respool::endpoint&)` or be callable as `R f(const respool::endpoint&)`, returning "
                "a movable, destructible resource R (for example "
                "`[](const respool::endpoint& e) { return connect(e.name); }`)");

 public:
  using resource_type = keyed_resource_t<Factory, endpoint>;
  using lease_type = lease<resource_type>;
  using options_type = cluster_pool_options<resource_type>;
  using clock = Clock;

 private:
  using R = resource_type;
  using state = detail::cluster_state<Factory, R>;
  using group_pool = pool<detail::cluster_factory<Factory, R>, Validator,
                          detail::cluster_resetter<Factory, R, Resetter>, Clock>;
  // The two pools, shared with the probe thread: a probe that hangs past close() keeps them
  // (closed) until it returns.
  struct pools {
    using F = detail::cluster_factory<Factory, R>;
    using S = detail::cluster_resetter<Factory, R, Resetter>;
    pools(const std::shared_ptr<state>& st, const Validator& v, const Resetter& s)
        : writes(F{st, 0}, st->opts.write_pool, v, S{s, st}),
          reads(F{st, 1}, st->opts.read_pool, v, S{s, st}) {}
    group_pool writes;
    group_pool reads;
    auto of(std::uint8_t group) -> group_pool& { return group == 0 ? writes : reads; }
  };

 public:
  /// Validates the options and endpoints (`std::invalid_argument` naming the field), builds the
  /// two pools (each makes its `min_idle` connections as `pool`'s constructor does) and starts
  /// the probe thread.
  cluster_pool(std::vector<endpoint> endpoints, Factory f, options_type options = {},
               Validator v = {}, Resetter s = {})
      : st_(make_state(endpoints, std::move(f), std::move(options))),
        pools_(std::make_shared<pools>(st_, v, s)) {
    if (st_->opts.housekeeping_interval > options_type::duration::zero())
      prober_ = std::thread([st = st_, p = pools_] { probe_loop(*st, *p); });
  }

  cluster_pool(const cluster_pool&) = delete;
  auto operator=(const cluster_pool&) -> cluster_pool& = delete;

  /// Closes both pools. Leases still out stay valid; their connections close on return.
  ~cluster_pool() { close(); }

  /// Waits up to the route's pool's `acquire_timeout`. Throws `respool::error` as
  /// `pool::acquire` does, its message followed by every endpoint of the route and its state.
  [[nodiscard]] auto acquire(route r = route::write,
                             std::source_location where = std::source_location::current())
      -> lease_type {
    return acquire_or_throw(r, default_timeout(r), where);
  }

  template <class Rep, class Period>
  [[nodiscard]] auto acquire(route r, std::chrono::duration<Rep, Period> timeout,
                             std::source_location where = std::source_location::current())
      -> lease_type {
    return acquire_or_throw(r, detail::saturating_ns(timeout), where);
  }

  /// Non-throwing form: on failure an empty lease, `ec` set (a `respool::errc`).
  template <class Rep, class Period>
  [[nodiscard]] auto acquire(route r, std::chrono::duration<Rep, Period> timeout,
                             std::error_code& ec,
                             std::source_location where = std::source_location::current())
      -> lease_type {
    detail::failure_slot fail;
    auto l = acquire_routed(r, detail::saturating_ns(timeout), where, fail);
    ec = l ? std::error_code{} : make_error_code(fail ? fail->code : errc::timeout);
    return l;
  }

  /// An idle connection of the route now, or nothing; never waits. Reads fall back as
  /// `acquire` does.
  [[nodiscard]] auto try_acquire(route r = route::write,
                                 std::source_location where = std::source_location::current())
      -> std::optional<lease_type> {
    if (r == route::read && (st_->endpoints.any_usable(1) || !st_->opts.reads_fall_back_to_primary)) {
      auto l = pools_->reads.try_acquire(where);
      if (l || !st_->opts.reads_fall_back_to_primary) return l;
    }
    return pools_->writes.try_acquire(where);
  }

  /// The endpoint a lease's connection goes to (nothing for an empty lease).
  [[nodiscard]] auto endpoint_of(const lease_type& l) const -> std::optional<endpoint> {
    if (!l) return std::nullopt;
    return st_->endpoints.endpoint_of(detail::lease_access::slot_of(l)->origin);
  }

  /// Both pools and every endpoint (those removed and still draining too).
  [[nodiscard]] auto stats() const -> cluster_stats {
    return {pools_->writes.stats(), pools_->reads.stats(), st_->endpoints.snapshot()};
  }

  /// Replaces the endpoints at runtime (validated as the constructor's). New ones get the next
  /// connections; removed ones are drained: idle connections closed now, on this thread, leased
  /// ones when they come back.
  void set_endpoints(std::vector<endpoint> endpoints) {
    validate_endpoints(endpoints, st_->opts.name);
    st_->endpoints.assign(endpoints);
    carry_out(*st_, *pools_);
  }

  /// The endpoints now (as last given, removed ones not included).
  [[nodiscard]] auto endpoints() const -> std::vector<endpoint> {
    std::vector<endpoint> out;
    for (const auto& e : st_->endpoints.snapshot())
      if (!e.removed) out.push_back({e.name, e.role, e.weight});
    return out;
  }

  /// Failover for all: both pools' `evict_all()`.
  void evict_all() {
    pools_->writes.evict_all();
    pools_->reads.evict_all();
  }

  /// Refuses new acquires (`errc::closed`), closes both pools, stops the probe thread (a probe
  /// still running is not waited for beyond a moment). Idempotent.
  void close() {
    {
      std::lock_guard lk(st_->mutex);
      st_->stopping = true;
    }
    st_->cv.notify_all();
    pools_->writes.close();
    pools_->reads.close();
    if (!prober_.joinable()) return;
    if (prober_.get_id() == std::this_thread::get_id()) {
      prober_.detach();
      return;
    }
    std::unique_lock lk(st_->mutex);
    const bool done = st_->cv.wait_for(lk, close_grace, [this] { return prober_done_(); });
    lk.unlock();
    if (done) {
      prober_.join();
    } else {
      prober_.detach();  // it holds the state and the pools until its probe returns
    }
  }

  /// One pass of the probe thread's work on this thread: evictions and backoff ends due to
  /// endpoint changes, probes due, lag checks due. With `housekeeping_interval = 0`, call it
  /// yourself.
  void run_maintenance() { maintain(*st_, *pools_, manual_lag_); }

  /// The options as given (the pools' names completed).
  [[nodiscard]] auto options() const -> const options_type& { return st_->opts; }

 private:
  static constexpr auto close_grace = std::chrono::milliseconds(200);

  // The lag connections the probe thread keeps, one per replica id (E2: with its generation).
  struct lag_connections {
    struct one {
      std::uint32_t generation = 0;
      std::optional<R> conn;
    };
    std::vector<one> by_id = std::vector<one>(detail::endpoint_set::capacity);
    std::int64_t next_check = 0;
  };

  static auto make_state(const std::vector<endpoint>& eps, Factory f, options_type o)
      -> std::shared_ptr<state> {
    o.validate();
    validate_endpoints(eps, o.name);
    if (o.write_pool.name == pool_options{}.name) o.write_pool.name = o.name + "[write]";
    if (o.read_pool.name == pool_options{}.name) o.read_pool.name = o.name + "[read]";
    auto st = std::make_shared<state>(std::move(f), std::move(o));
    st->endpoints.assign(eps);
    return st;
  }

  // The acquire_timeout of the pool a route's acquire goes to first.
  auto default_timeout(route r) const -> std::int64_t {
    const bool replicas = r == route::read && (st_->endpoints.any_usable(1) ||
                                               !st_->opts.reads_fall_back_to_primary);
    return detail::pool_access::core(replicas ? pools_->reads : pools_->writes).default_timeout();
  }

  auto acquire_or_throw(route r, std::int64_t timeout, const std::source_location& where)
      -> lease_type {
    detail::failure_slot fail;
    auto l = acquire_routed(r, timeout, where, fail);
    if (!l) detail::throw_failure(fail);
    return l;
  }

  auto acquire_routed(route r, std::int64_t timeout, const std::source_location& where,
                      detail::failure_slot& fail) -> lease_type {
    auto& writes = detail::pool_access::core(pools_->writes);
    const bool fallback = st_->opts.reads_fall_back_to_primary;
    if (r == route::read) {
      const bool replicas = st_->endpoints.any_usable(1);
      if (replicas || !fallback) {
        auto l = detail::pool_access::core(pools_->reads).acquire(timeout, where, &fail);
        if (l) return l;
        const bool connect_failed =
            fail && (fail->code == errc::create_failed || fail->code == errc::backend_unavailable);
        if (!fallback || !connect_failed) return failed(fail, 1);
        if (fail->remaining >= 0) timeout = fail->remaining;  // the same timeout, not a new one
        fail.reset();
      }
    }
    auto l = writes.acquire(timeout, where, &fail);
    if (!l) return failed(fail, 0);
    return l;
  }

  // The pool's message, then every endpoint of the route and its state.
  auto failed(detail::failure_slot& fail, std::uint8_t group) -> lease_type {
    if (fail && fail->code != errc::closed) {
      try {
        fail->message += "; " + std::string(group == 0 ? "primaries" : "replicas") + ": " +
                         st_->endpoints.describe(group);
      } catch (...) {  // the pool's message alone
      }
    }
    return {};
  }

  // Evictions and backoff ends the endpoints asked for (endpoint_set.hpp).
  static void carry_out(state& st, pools& p) {
    for (const auto& a : st.endpoints.take_actions()) {
      auto& core = detail::pool_access::core(p.of(a.group));
      if (a.kind == detail::endpoint_action::retry) {
        core.retry_creation_now();
        continue;
      }
      auto* es = &st.endpoints;
      core.evict_if(std::make_shared<const std::function<bool(const R&, std::uint32_t)>>(
          [es, id = a.id, gen = a.generation](const R&, std::uint32_t origin) {
            return origin == id && es->is(id, gen);
          }));
    }
  }

  static void maintain(state& st, pools& p, lag_connections& lags) {
    carry_out(st, p);
    // E6: moves with no caller waiting for their successor are done: the pool shrank.
    for (std::uint8_t g = 0; g < 2; ++g) {
      const auto s = p.of(g).stats();
      if (s.waiters == 0 && s.creating == 0) st.endpoints.settle_moves(g);
    }
    const auto now = detail::steady_ns();
    for (const auto& job : st.endpoints.probes_due(now)) {
      if (stopping(st)) return;
      probe(st, job, lags);
    }
    carry_out(st, p);
    if (st.opts.replication_lag && now >= lags.next_check) {
      lags.next_check = detail::add_sat(now, detail::saturating_ns(st.opts.lag_probe_interval));
      std::vector<bool> checked(detail::endpoint_set::capacity, false);
      for (const auto& job : st.endpoints.lag_targets()) {
        if (stopping(st)) return;
        check_lag(st, job, lags);
        checked[job.id] = true;
      }
      // Down, removed or no longer a replica: its lag connection goes (a new one comes with
      // the probe that brings it back).
      for (std::size_t id = 0; id < checked.size(); ++id)
        if (!checked[id]) lags.by_id[id].conn.reset();
      carry_out(st, p);
    }
  }

  // A down endpoint: connect; a replica's connection is kept for its lag checks.
  static void probe(state& st, const detail::endpoint_job& job, lag_connections& lags) {
    try {
      R conn = st.create(job.ep);
      st.endpoints.probe_result(job, true, {}, detail::steady_ns());
      if (st.opts.replication_lag && job.ep.role == role::replica) {
        auto& one = lags.by_id[job.id];
        one.generation = job.generation;
        one.conn.emplace(std::move(conn));
      }
    } catch (...) {
      st.endpoints.probe_result(job, false, detail::describe_exception(std::current_exception()),
                                detail::steady_ns());
    }
  }

  static void check_lag(state& st, const detail::endpoint_job& job, lag_connections& lags) {
    auto& one = lags.by_id[job.id];
    if (one.generation != job.generation) one.conn.reset();  // the id's previous endpoint
    one.generation = job.generation;
    try {
      if (!one.conn) one.conn.emplace(st.create(job.ep));
      const auto lag = st.opts.replication_lag(*one.conn);
      st.endpoints.lag_result(job, lag, {}, detail::steady_ns());
    } catch (...) {
      one.conn.reset();
      st.endpoints.lag_result(job, std::nullopt,
                              "lag probe: " + detail::describe_exception(std::current_exception()),
                              detail::steady_ns());
    }
  }

  static auto stopping(state& st) -> bool {
    std::lock_guard lk(st.mutex);
    return st.stopping;
  }

  static void probe_loop(state& st, pools& p) {
    lag_connections lags;
    const auto period = st.opts.housekeeping_interval;
    std::unique_lock lk(st.mutex);
    while (!st.stopping) {
      st.cv.wait_for(lk, period, [&] { return st.stopping || st.woken; });
      if (st.stopping) break;
      st.woken = false;
      lk.unlock();
      try {
        maintain(st, p, lags);
      } catch (...) {  // no memory for a list: the next pass tries again
      }
      lk.lock();
    }
    st.prober_exited = true;
    lk.unlock();
    st.cv.notify_all();
  }

  auto prober_done_() const -> bool { return st_->prober_exited; }

  std::shared_ptr<state> st_;
  std::shared_ptr<pools> pools_;
  lag_connections manual_lag_;  // run_maintenance()'s, when there is no probe thread
  std::thread prober_;
};

template <class F, class R>
cluster_pool(std::vector<endpoint>, F, cluster_pool_options<R>) -> cluster_pool<F>;
template <class F, class R, class V>
cluster_pool(std::vector<endpoint>, F, cluster_pool_options<R>, V) -> cluster_pool<F, V>;
template <class F, class R, class V, class S>
cluster_pool(std::vector<endpoint>, F, cluster_pool_options<R>, V, S) -> cluster_pool<F, V, S>;
template <class F>
cluster_pool(std::vector<endpoint>, F) -> cluster_pool<F>;

RESPOOL_NAMESPACE_END
