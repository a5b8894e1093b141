#pragma once
/**
 * `respool::metrics::prometheus`: a pool's or a thread pool's `stats()` in the Prometheus text
 * exposition format (version 0.0.4), ready to serve on `/metrics` with
 * `Content-Type: text/plain; version=0.0.4`. Standard library only: bring your own HTTP server.
 *
 * **Example**:
 * ```cpp
 * std::string body = respool::metrics::prometheus(db.stats(), "orders-db") +
 *                    respool::metrics::prometheus(io.stats(), "io");
 * // several pools of one kind: one call, so that each metric family is written once
 * body += respool::metrics::prometheus({{"orders-db", db.stats()}, {"cache", cache.stats()}});
 * ```
 *
 * A resource pool's metrics follow OpenTelemetry's semantic conventions for database client
 * connection pools, translated to Prometheus names (`db.client.connection.wait_time` becomes
 * `db_client_connection_wait_time_seconds`), with the pool's name in the label `pool_name`:
 *
 * | metric                                      | type      | from `pool_stats`               |
 * |---------------------------------------------|-----------|---------------------------------|
 * | `db_client_connection_count{state="idle"}`  | untyped   | `idle`                          |
 * | `db_client_connection_count{state="used"}`  | untyped   | `in_use`                        |
 * | `db_client_connection_max`                  | gauge     | `max_size`                      |
 * | `db_client_connection_idle_min`             | gauge     | `min_idle`                      |
 * | `db_client_connection_pending_requests`     | gauge     | `waiters`                       |
 * | `db_client_connection_timeouts_total`       | counter   | `timeouts`                      |
 * | `db_client_connection_wait_time_seconds`    | histogram | `wait`                          |
 * | `db_client_connection_use_time_seconds`     | histogram | `use_time`                      |
 * | `db_client_connection_create_time_seconds`  | histogram | `create_time`                   |
 * | `respool_connection_creating`               | gauge     | `creating`                      |
 * | `respool_connection_paused`                 | gauge     | `paused` (1 or 0)               |
 * | `respool_connection_limit`                  | gauge     | `limit` (`adaptive`'s, else max)|
 * | `respool_connection_acquired_total`         | counter   | `acquired`                      |
 * | `respool_connection_created_total`          | counter   | `created`                       |
 * | `respool_connection_create_failures_total`  | counter   | `create_failures`               |
 * | `respool_connection_destroyed_total{reason}`| counter   | `destroyed_by` (1)              |
 * | `respool_connection_fast_failures_total`    | counter   | `fast_failures`                 |
 * | `respool_connection_shed_total`             | counter   | `shed`                          |
 * | `respool_connection_cancelled_total`        | counter   | `cancelled`                     |
 *
 * (1) `reason` is `to_string(destroy_reason)`: `idle_timeout`, `lifetime`, ..., `closed`.
 *
 * `db_client_connection_count` is written as `untyped`: Prometheus' linter (`promtool check
 * metrics`) rejects a gauge whose name ends in `_count`, the suffix it keeps for histograms.
 *
 * A thread pool's, with its name in `pool_name`:
 *
 * | metric                                            | type    | from `thread_pool_stats`  |
 * |---------------------------------------------------|---------|---------------------------|
 * | `respool_thread_pool_threads`                     | gauge   | `threads`                 |
 * | `respool_thread_pool_active_threads`              | gauge   | `active`                  |
 * | `respool_thread_pool_idle_threads`                | gauge   | `idle`                    |
 * | `respool_thread_pool_largest_threads`             | gauge   | `largest`                 |
 * | `respool_thread_pool_queued_tasks`                | gauge   | `queued` (queue depth)    |
 * | `respool_thread_pool_largest_queued_tasks`        | gauge   | `largest_queue`           |
 * | `respool_thread_pool_blocked_submitters`          | gauge   | `blocked`                 |
 * | `respool_thread_pool_submitted_tasks_total`       | counter | `submitted`               |
 * | `respool_thread_pool_completed_tasks_total`       | counter | `completed`               |
 * | `respool_thread_pool_failed_tasks_total`          | counter | `failed`                  |
 * | `respool_thread_pool_cancelled_tasks_total`       | counter | `cancelled`               |
 * | `respool_thread_pool_thread_start_failures_total` | counter | `start_failures`          |
 * | `respool_thread_pool_rejected_tasks_total{reason}`| counter | `rejected` (2)            |
 *
 * (2) `reason` names the field of `thread_pool_rejections`: `aborted`, `caller_ran`,
 * `discarded`, `discarded_oldest`, `timed_out`, `closed`.
 *
 * A cluster_pool's: its two pools as resource pools above, named "<cluster>[write]" and
 * "<cluster>[read]", and per endpoint, labelled `pool_name="<cluster>"`, `endpoint`, `role`:
 *
 * | metric                                              | type  | from `endpoint_stats`       |
 * |-----------------------------------------------------|-------|-----------------------------|
 * | `respool_cluster_endpoint_connections`              | gauge | `live`                      |
 * | `respool_cluster_endpoint_up`                       | gauge | `healthy` (1 or 0)          |
 * | `respool_cluster_endpoint_lagging`                  | gauge | `lagging` (1 or 0)          |
 * | `respool_cluster_endpoint_replication_lag_seconds`  | gauge | `replication_lag` (3)       |
 * | `respool_cluster_endpoint_consecutive_failures`     | gauge | `consecutive_failures`      |
 *
 * (3) only for endpoints with a reading (replicas, with a lag probe).
 *
 * Histograms: `wait_histogram`'s power-of-two microsecond buckets become cumulative `_bucket`
 * lines with `le` the bucket's upper bound in seconds (`1e-06`, `2e-06`, `4e-06`, ...,
 * `1073.741824`, then `+Inf` for the last, open bucket), every bucket always, so that the set of
 * `le` values stays the same from one scrape to the next. `_count` is exact. `_sum` is an
 * estimate, since the stats keep counts per bucket and no sum: each sample counts as the middle
 * of its bucket (1.5 × 2^(i-1) us for bucket i), bucket 0 ([0, 1 us): mostly acquires served at
 * once, recorded as exactly zero) as 0, and the open last bucket as its lower bound (2^30 us).
 * Below the last bucket the estimate is between 0.75 and 1.5 times the true sum (less up to 1 us
 * per sample in bucket 0): good for an average, not for accounting. `use_time` is sampled (at most
 * one hold per resource per `housekeeping_interval` is timed), so its `_count` counts the
 * timed holds, not all of them: use `respool_connection_acquired_total` for the rate of
 * acquires, the histogram for their shape.
 *
 * One exposition must write each metric family once, its lines together (promtool rejects a
 * second `# HELP` for a name, and so do other parsers): concatenating the output for a resource
 * pool and the output for a thread pool is fine, but give several pools of one kind to one call,
 * the overloads that take a list of `named` stats. Label values are escaped as the format says
 * (backslash, double quote, newline); numbers are written with `std::to_chars`, whatever the
 * locale.
 */
#include <array>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "endpoint.hpp"
#include "events.hpp"
#include "stats.hpp"
#include "thread_pool_stats.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

namespace metrics {

/// A pool's stats and the name to label them with, for the overloads that write several pools.
template <class Stats>
struct named {
  std::string_view pool_name;
  Stats stats;
};

namespace detail {

/// A label value or HELP text, escaped: `\` as `\\`, newline as `\n`, and (label values only)
/// `"` as `\"`.
inline void append_escaped(std::string& out, std::string_view text, bool quote) {
  for (const char c : text) {
    switch (c) {
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '"':
        if (quote) {
          out += "\\\"";
        } else {
          out += c;
        }
        break;
      default: out += c;
    }
  }
}

template <class Number>
void append_number(std::string& out, Number value) {
  std::array<char, 32> buf{};  // enough for any 64-bit integer and the shortest double
  const auto r = std::to_chars(buf.data(), buf.data() + buf.size(), value);
  out.append(buf.data(), r.ptr);
}

inline void append_header(std::string& out, std::string_view name, std::string_view type,
                          std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  append_escaped(out, help, false);
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

/// `name{pool_name="pool"[,label="value"]} ` (the value follows).
inline void append_series(std::string& out, std::string_view name, std::string_view pool,
                          std::string_view label = {}, std::string_view value = {}) {
  out += name;
  out += "{pool_name=\"";
  append_escaped(out, pool, true);
  if (!label.empty()) {
    out += "\",";
    out += label;
    out += "=\"";
    append_escaped(out, value, true);
  }
  out += "\"} ";
}

template <class Number>
void append_sample(std::string& out, std::string_view name, std::string_view pool,
                   Number value, std::string_view label = {}, std::string_view label_value = {}) {
  append_series(out, name, pool, label, label_value);
  append_number(out, value);
  out += '\n';
}

/// A gauge or counter family: one sample per pool, `get(stats)` its value.
template <class Stats, class Get>
void append_family(std::string& out, std::span<const named<Stats>> pools, std::string_view name,
                   std::string_view type, std::string_view help, Get get) {
  append_header(out, name, type, help);
  for (const auto& p : pools) append_sample(out, name, p.pool_name, get(p.stats));
}

/// A family with one more label: `count` values per pool, `label_value(i)` and `get(stats, i)`.
template <class Stats, class LabelValue, class Get>
void append_labelled_family(std::string& out, std::span<const named<Stats>> pools,
                            std::string_view name, std::string_view type, std::string_view help,
                            std::string_view label, std::size_t count, LabelValue label_value,
                            Get get) {
  append_header(out, name, type, help);
  for (const auto& p : pools) {
    for (std::size_t i = 0; i < count; ++i)
      append_sample(out, name, p.pool_name, get(p.stats, i), label, label_value(i));
  }
}

/// Bucket `b`'s upper bound in seconds, as `le` writes it.
inline auto bucket_le(std::size_t b) -> std::string {
  std::string s;
  append_number(s, static_cast<double>(wait_histogram::upper_bound(b).count()) / 1e6);
  return s;
}

/// The estimated sum in seconds (see the header's comment): bucket 0 as 0, bucket i as the
/// middle of [2^(i-1), 2^i) us, the open last bucket as its lower bound.
inline auto estimated_sum_seconds(const wait_histogram& h) -> double {
  double us = 0;
  for (std::size_t b = 1; b < wait_histogram::bucket_count; ++b) {
    const auto lower = static_cast<double>(wait_histogram::upper_bound(b - 1).count());
    const double mid = b + 1 == wait_histogram::bucket_count ? lower : lower * 1.5;
    us += static_cast<double>(h.buckets[b]) * mid;
  }
  return us / 1e6;
}

template <class Get>
void append_histogram(std::string& out, std::span<const named<pool_stats>> pools,
                      std::string_view name, std::string_view help, Get get) {
  append_header(out, name, "histogram", help);
  const std::string bucket = std::string(name) + "_bucket";
  const std::string sum = std::string(name) + "_sum";
  const std::string count = std::string(name) + "_count";
  std::array<std::string, wait_histogram::bucket_count> le;
  for (std::size_t b = 0; b + 1 < wait_histogram::bucket_count; ++b) le[b] = bucket_le(b);
  le.back() = "+Inf";
  for (const auto& p : pools) {
    const wait_histogram& h = get(p.stats);
    std::uint64_t cumulative = 0;
    for (std::size_t b = 0; b < wait_histogram::bucket_count; ++b) {
      cumulative += h.buckets[b];
      append_sample(out, bucket, p.pool_name, cumulative, "le", le[b]);
    }
    append_sample(out, sum, p.pool_name, estimated_sum_seconds(h));
    append_sample(out, count, p.pool_name, cumulative);
  }
}

/// `thread_pool_rejections`' fields, in this order, as the `reason` label names them.
inline constexpr std::array<std::string_view, 6> rejection_reasons{
    "aborted", "caller_ran", "discarded", "discarded_oldest", "timed_out", "closed"};

inline auto rejections(const thread_pool_rejections& r, std::size_t i) -> std::uint64_t {
  const std::array<std::uint64_t, rejection_reasons.size()> counts{
      r.aborted, r.caller_ran, r.discarded, r.discarded_oldest, r.timed_out, r.closed};
  return counts[i];
}

}  // namespace detail

/// Several resource pools, each metric family written once with a series per pool.
[[nodiscard]] inline auto prometheus(std::span<const named<pool_stats>> pools) -> std::string {
  std::string out;
  if (pools.empty()) return out;
  out.reserve(pools.size() * 12 * 1024);
  using s = const pool_stats&;
  using detail::append_family;
  using detail::append_histogram;
  using detail::append_labelled_family;
  constexpr std::array<std::string_view, 2> states{"idle", "used"};
  append_labelled_family(
      out, pools, "db_client_connection_count", "untyped",
      "The number of connections that are currently in the state described by the state label.",
      "state", states.size(), [&](std::size_t i) { return states[i]; },
      [](s st, std::size_t i) { return i == 0 ? st.idle : st.in_use; });
  append_family(out, pools, "db_client_connection_idle_min", "gauge",
                "The minimum number of idle open connections allowed.",
                [](s st) { return st.min_idle; });
  append_family(out, pools, "db_client_connection_max", "gauge",
                "The maximum number of open connections allowed.",
                [](s st) { return st.max_size; });
  append_family(out, pools, "db_client_connection_pending_requests", "gauge",
                "The number of current pending requests for an open connection.",
                [](s st) { return st.waiters; });
  append_family(out, pools, "db_client_connection_timeouts_total", "counter",
                "The number of connection timeouts that have occurred trying to obtain a "
                "connection from the pool.",
                [](s st) { return st.timeouts; });
  append_histogram(out, pools, "db_client_connection_wait_time_seconds",
                   "The time it took to obtain an open connection from the pool.",
                   [](s st) -> const wait_histogram& { return st.wait; });
  append_histogram(out, pools, "db_client_connection_use_time_seconds",
                   "The time between borrowing a connection and returning it to the pool "
                   "(sampled: at most one hold per connection per housekeeping interval "
                   "is timed).",
                   [](s st) -> const wait_histogram& { return st.use_time; });
  append_histogram(out, pools, "db_client_connection_create_time_seconds",
                   "The time it took to create a new connection.",
                   [](s st) -> const wait_histogram& { return st.create_time; });
  append_family(out, pools, "respool_connection_creating", "gauge",
                "The number of connections being created.", [](s st) { return st.creating; });
  append_family(out, pools, "respool_connection_paused", "gauge",
                "1 while the pool is paused (pause() until resume()), else 0.",
                [](s st) { return st.paused ? 1 : 0; });
  append_family(out, pools, "respool_connection_limit", "gauge",
                "The most connections lent at once now: the maximum, or below it the limit "
                "the adaptive pool found.",
                [](s st) { return st.limit; });
  append_family(out, pools, "respool_connection_acquired_total", "counter",
                "The number of successful acquires.", [](s st) { return st.acquired; });
  append_family(out, pools, "respool_connection_created_total", "counter",
                "The number of connections created.", [](s st) { return st.created; });
  append_family(out, pools, "respool_connection_create_failures_total", "counter",
                "The number of connection attempts that failed (the factory threw).",
                [](s st) { return st.create_failures; });
  append_labelled_family(
      out, pools, "respool_connection_destroyed_total", "counter",
      "The number of connections closed, by the reason they were closed.", "reason",
      destroy_reason_count,
      [](std::size_t i) { return to_string(static_cast<destroy_reason>(i)); },
      [](s st, std::size_t i) { return st.destroyed_by[i]; });
  append_family(out, pools, "respool_connection_fast_failures_total", "counter",
                "The number of acquires refused at once because the backend is unavailable.",
                [](s st) { return st.fast_failures; });
  append_family(out, pools, "respool_connection_shed_total", "counter",
                "The number of acquires refused at once because the pool was exhausted (shed).",
                [](s st) { return st.shed; });
  append_family(out, pools, "respool_connection_cancelled_total", "counter",
                "The number of acquires ended by their stop token.",
                [](s st) { return st.cancelled; });
  return out;
}

[[nodiscard]] inline auto prometheus(std::initializer_list<named<pool_stats>> pools)
    -> std::string {
  return prometheus(std::span<const named<pool_stats>>(pools.begin(), pools.size()));
}

/// One resource pool's stats, labelled `pool_name="<pool_name>"`.
[[nodiscard]] inline auto prometheus(const pool_stats& stats, std::string_view pool_name)
    -> std::string {
  return prometheus({named<pool_stats>{pool_name, stats}});
}

/// Several thread pools, each metric family written once with a series per pool.
[[nodiscard]] inline auto prometheus(std::span<const named<thread_pool_stats>> pools)
    -> std::string {
  std::string out;
  if (pools.empty()) return out;
  out.reserve(pools.size() * 4 * 1024);
  using s = const thread_pool_stats&;
  using detail::append_family;
  append_family(out, pools, "respool_thread_pool_threads", "gauge",
                "The number of live threads, including threads being started.",
                [](s st) { return st.threads; });
  append_family(out, pools, "respool_thread_pool_active_threads", "gauge",
                "The number of threads running a task or handed one.",
                [](s st) { return st.active; });
  append_family(out, pools, "respool_thread_pool_idle_threads", "gauge",
                "The number of threads waiting for a task.", [](s st) { return st.idle; });
  append_family(out, pools, "respool_thread_pool_largest_threads", "gauge",
                "The most threads the pool ever had at once.", [](s st) { return st.largest; });
  append_family(out, pools, "respool_thread_pool_queued_tasks", "gauge",
                "The number of tasks waiting in the queue for a thread (the queue depth).",
                [](s st) { return st.queued; });
  append_family(out, pools, "respool_thread_pool_largest_queued_tasks", "gauge",
                "The longest the queue ever was.", [](s st) { return st.largest_queue; });
  append_family(out, pools, "respool_thread_pool_blocked_submitters", "gauge",
                "The number of submitters waiting for room in the queue.",
                [](s st) { return st.blocked; });
  append_family(out, pools, "respool_thread_pool_submitted_tasks_total", "counter",
                "The number of tasks accepted: handed to a thread or queued.",
                [](s st) { return st.submitted; });
  append_family(out, pools, "respool_thread_pool_completed_tasks_total", "counter",
                "The number of accepted tasks that ran to the end (or threw).",
                [](s st) { return st.completed; });
  append_family(out, pools, "respool_thread_pool_failed_tasks_total", "counter",
                "The number of fire-and-forget tasks that threw.",
                [](s st) { return st.failed; });
  append_family(out, pools, "respool_thread_pool_cancelled_tasks_total", "counter",
                "The number of queued tasks returned unrun by shutdown_now().",
                [](s st) { return st.cancelled; });
  append_family(out, pools, "respool_thread_pool_thread_start_failures_total", "counter",
                "The number of thread starts that failed.",
                [](s st) { return st.start_failures; });
  detail::append_labelled_family(
      out, pools, "respool_thread_pool_rejected_tasks_total", "counter",
      "The number of tasks the pool refused, by what it did with them.", "reason",
      detail::rejection_reasons.size(),
      [](std::size_t i) { return detail::rejection_reasons[i]; },
      [](s st, std::size_t i) { return detail::rejections(st.rejected, i); });
  return out;
}

[[nodiscard]] inline auto prometheus(std::initializer_list<named<thread_pool_stats>> pools)
    -> std::string {
  return prometheus(std::span<const named<thread_pool_stats>>(pools.begin(), pools.size()));
}

/// One thread pool's stats, labelled `pool_name="<pool_name>"`.
[[nodiscard]] inline auto prometheus(const thread_pool_stats& stats, std::string_view pool_name)
    -> std::string {
  return prometheus({named<thread_pool_stats>{pool_name, stats}});
}

/// A cluster_pool's stats: its two pools, then its endpoints (see the table above).
/// `cluster_name` should be the cluster's `options().name`, so that the pools' series carry
/// the names the cluster gave them.
[[nodiscard]] inline auto prometheus(const cluster_stats& stats, std::string_view cluster_name)
    -> std::string {
  const std::string write = std::string(cluster_name) + "[write]";
  const std::string read = std::string(cluster_name) + "[read]";
  std::string out = prometheus({{write, stats.writes}, {read, stats.reads}});
  const auto family = [&](std::string_view name, std::string_view help, auto get) {
    detail::append_header(out, name, "gauge", help);
    for (const auto& e : stats.endpoints) {
      if (e.removed) continue;  // draining: its connections are counted in the pools
      const std::optional<double> v = get(e);
      if (!v) continue;
      out += name;
      out += "{pool_name=\"";
      detail::append_escaped(out, cluster_name, true);
      out += "\",endpoint=\"";
      detail::append_escaped(out, e.name, true);
      out += "\",role=\"";
      out += to_string(e.role);
      out += "\"} ";
      detail::append_number(out, *v);
      out += '\n';
    }
  };
  using e_t = const endpoint_stats&;
  using opt = std::optional<double>;
  family("respool_cluster_endpoint_connections",
         "The number of connections to the endpoint, open or being opened.",
         [](e_t e) -> opt { return static_cast<double>(e.live); });
  family("respool_cluster_endpoint_up",
         "1 while the endpoint answers, 0 while it is taken out after failures and probed.",
         [](e_t e) -> opt { return e.healthy ? 1.0 : 0.0; });
  family("respool_cluster_endpoint_lagging",
         "1 while the replica is further behind than max_replica_lag (it gets no reads), else 0.",
         [](e_t e) -> opt { return e.lagging ? 1.0 : 0.0; });
  family("respool_cluster_endpoint_replication_lag_seconds",
         "How far behind the primary the replica was at its last lag check.",
         [](e_t e) -> opt {
           if (!e.replication_lag) return std::nullopt;
           return static_cast<double>(e.replication_lag->count()) / 1000.0;
         });
  family("respool_cluster_endpoint_consecutive_failures",
         "Failures of the endpoint since its last success (failures_to_exclude takes it out).",
         [](e_t e) -> opt { return static_cast<double>(e.consecutive_failures); });
  return out;
}

}  // namespace metrics

RESPOOL_NAMESPACE_END
