// respool::metrics::prometheus: the exact text for known stats, and (where promtool is on PATH,
// as scripts/install-deps.sh test makes it) what Prometheus' own checker says of it.
#include <respool/metrics.hpp>
#include <respool/pool.hpp>
#include <respool/thread_pool.hpp>

#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "respool_catch.hpp"

namespace metrics = respool::metrics;
using namespace std::chrono_literals;

namespace {

auto has_line(const std::string& text, const std::string& line) -> bool {
  return ("\n" + text).find("\n" + line + "\n") != std::string::npos;
}

// The lines of `expected` that `text` lacks (a failed check prints them).
auto missing_lines(const std::string& text, const std::vector<std::string>& expected)
    -> std::vector<std::string> {
  std::vector<std::string> missing;
  for (const auto& l : expected)
    if (!has_line(text, l)) missing.push_back(l);
  return missing;
}

auto occurrences(const std::string& text, std::string_view what) -> std::size_t {
  std::size_t n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

auto lines_of(const std::string& text) -> std::vector<std::string> {
  std::vector<std::string> lines;
  std::stringstream ss(text);
  for (std::string l; std::getline(ss, l);) lines.push_back(l);
  return lines;
}

// The sample lines whose series starts with `prefix` (a metric name and the `{`), in order.
auto samples(const std::string& text, const std::string& prefix) -> std::vector<std::string> {
  std::vector<std::string> out;
  for (const auto& l : lines_of(text))
    if (l.rfind(prefix, 0) == 0) out.push_back(l);
  return out;
}

auto known_pool_stats() -> respool::pool_stats {
  respool::pool_stats s;
  s.max_size = 8;
  s.limit = 6;
  s.min_idle = 2;
  s.total = 8;
  s.idle = 3;
  s.in_use = 4;
  s.creating = 1;
  s.waiters = 5;
  s.acquired = 1000;
  s.created = 9;
  s.destroyed_by[static_cast<std::size_t>(respool::destroy_reason::lifetime)] = 3;
  s.destroyed_by[static_cast<std::size_t>(respool::destroy_reason::failed_validation)] = 1;
  s.timeouts = 7;
  s.create_failures = 2;
  s.fast_failures = 11;
  s.shed = 12;
  s.cancelled = 14;
  s.paused = true;
  s.wait.buckets[0] = 2;   // [0, 1 us)
  s.wait.buckets[1] = 1;   // [1, 2 us)
  s.wait.buckets[3] = 4;   // [4, 8 us)
  s.wait.buckets[31] = 5;  // 2^30 us and more
  s.create_time.buckets[12] = 9;  // [2.048, 4.096 ms)
  return s;
}

auto known_thread_pool_stats() -> respool::thread_pool_stats {
  return {.threads = 6, .idle = 2, .active = 4, .largest = 9, .queued = 17, .largest_queue = 40,
          .blocked = 1, .submitted = 500, .completed = 480, .failed = 3, .cancelled = 0,
          .start_failures = 2,
          .rejected = {.aborted = 10, .caller_ran = 20, .discarded = 30, .discarded_oldest = 40,
                       .timed_out = 50, .closed = 60}};
}

struct shell_result {
  int exit_code = -1;
  std::string output;
};

// Runs `command` through /bin/sh; its exit code and its output (stdout and stderr).
auto shell(const std::string& command) -> shell_result {
  shell_result r;
  FILE* f = ::popen((command + " 2>&1").c_str(), "r");
  if (f == nullptr) return r;
  char buf[4096];
  for (std::size_t n; (n = std::fread(buf, 1, sizeof buf, f)) > 0;) r.output.append(buf, n);
  const int status = ::pclose(f);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

auto promtool_on_path() -> bool { return shell("command -v promtool").exit_code == 0; }

// `promtool check metrics` on `text`: exit 0 and no output when it finds nothing to complain of.
auto promtool_check(const std::string& text) -> shell_result {
  char path[] = "/tmp/respool-metrics-XXXXXX";
  const int fd = ::mkstemp(path);
  REQUIRE(fd >= 0);
  ::close(fd);
  {
    std::ofstream out(path, std::ios::binary);
    out << text;
  }
  auto r = shell(std::string("promtool check metrics < ") + path);
  std::remove(path);
  return r;
}

}  // namespace

TEST_CASE("pool metrics: OpenTelemetry's connection-pool names, one line per value", "[metrics]") {
  const auto text = metrics::prometheus(known_pool_stats(), "db");
  INFO(text);
  CHECK(missing_lines(text, {
                              "# TYPE db_client_connection_count untyped",
                              R"(db_client_connection_count{pool_name="db",state="idle"} 3)",
                              R"(db_client_connection_count{pool_name="db",state="used"} 4)",
                              "# TYPE db_client_connection_max gauge",
                              R"(db_client_connection_max{pool_name="db"} 8)",
                              R"(db_client_connection_idle_min{pool_name="db"} 2)",
                              R"(db_client_connection_pending_requests{pool_name="db"} 5)",
                              "# TYPE db_client_connection_timeouts_total counter",
                              R"(db_client_connection_timeouts_total{pool_name="db"} 7)",
                              R"(respool_connection_creating{pool_name="db"} 1)",
                              R"(respool_connection_paused{pool_name="db"} 1)",
                              "# TYPE respool_connection_limit gauge",
                              R"(respool_connection_limit{pool_name="db"} 6)",
                              R"(respool_connection_acquired_total{pool_name="db"} 1000)",
                              R"(respool_connection_created_total{pool_name="db"} 9)",
                              R"(respool_connection_create_failures_total{pool_name="db"} 2)",
                              R"(respool_connection_fast_failures_total{pool_name="db"} 11)",
                              R"(respool_connection_cancelled_total{pool_name="db"} 14)",
                              R"(respool_connection_shed_total{pool_name="db"} 12)",
                          })
            .empty());
  CHECK(occurrences(text, "# TYPE db_client_connection_count gauge") == 0);
  // Every reason, zero or not, so that a rate() over any of them has data from the start.
  const std::string destroyed = R"(respool_connection_destroyed_total{pool_name="db",reason=")";
  CHECK(samples(text, "respool_connection_destroyed_total{").size() ==
        respool::destroy_reason_count);
  CHECK(missing_lines(text, {
                                "# TYPE respool_connection_destroyed_total counter",
                                destroyed + R"(lifetime"} 3)",
                                destroyed + R"(failed_validation"} 1)",
                                destroyed + R"(closed"} 0)",
                                destroyed + R"(idle_timeout"} 0)",
                            })
            .empty());
  // Each family once, with help text.
  for (const auto& l : lines_of(text)) {
    if (l.rfind("# TYPE ", 0) != 0) continue;
    const auto name = l.substr(7, l.find(' ', 7) - 7);
    INFO(name);
    CHECK(occurrences(text, "# TYPE " + name + " ") == 1);
    CHECK(occurrences(text, "# HELP " + name + " ") == 1);
  }
}

TEST_CASE("histograms: cumulative buckets in seconds, all of them, +Inf equal to _count",
          "[metrics]") {
  const auto text = metrics::prometheus(known_pool_stats(), "db");
  INFO(text);
  const std::string w = "db_client_connection_wait_time_seconds";
  CHECK(has_line(text, "# TYPE " + w + " histogram"));
  const auto buckets = samples(text, w + "_bucket{");
  REQUIRE(buckets.size() == respool::wait_histogram::bucket_count);
  CHECK(buckets[0] == w + R"(_bucket{pool_name="db",le="1e-06"} 2)");
  CHECK(buckets[1] == w + R"(_bucket{pool_name="db",le="2e-06"} 3)");
  CHECK(buckets[2] == w + R"(_bucket{pool_name="db",le="4e-06"} 3)");
  CHECK(buckets[3] == w + R"(_bucket{pool_name="db",le="8e-06"} 7)");
  CHECK(buckets[4] == w + R"(_bucket{pool_name="db",le="1.6e-05"} 7)");
  CHECK(buckets[10] == w + R"(_bucket{pool_name="db",le="0.001024"} 7)");
  CHECK(buckets[20] == w + R"(_bucket{pool_name="db",le="1.048576"} 7)");
  CHECK(buckets[30] == w + R"(_bucket{pool_name="db",le="1073.741824"} 7)");
  CHECK(buckets[31] == w + R"(_bucket{pool_name="db",le="+Inf"} 12)");
  CHECK(has_line(text, w + R"(_count{pool_name="db"} 12)"));
  // Estimated: 1 x 1.5 us + 4 x 6 us + 5 x 2^30 us, bucket 0 as zero.
  CHECK(has_line(text, w + R"(_sum{pool_name="db"} 5368.7091455)"));

  const std::string c = "db_client_connection_create_time_seconds";
  const auto created = samples(text, c + "_bucket{");
  REQUIRE(created.size() == respool::wait_histogram::bucket_count);
  CHECK(created[11] == c + R"(_bucket{pool_name="db",le="0.002048"} 0)");
  CHECK(created[12] == c + R"(_bucket{pool_name="db",le="0.004096"} 9)");
  CHECK(created[31] == c + R"(_bucket{pool_name="db",le="+Inf"} 9)");
  CHECK(has_line(text, c + R"(_count{pool_name="db"} 9)"));
  CHECK(has_line(text, c + R"(_sum{pool_name="db"} 0.027648)"));  // 9 x 3.072 ms

  // An empty histogram still writes every bucket: the set of `le` values never changes.
  const std::string u = "db_client_connection_use_time_seconds";
  const auto used = samples(text, u + "_bucket{");
  REQUIRE(used.size() == respool::wait_histogram::bucket_count);
  for (std::size_t b = 0; b < used.size(); ++b) {
    CHECK(used[b].substr(used[b].rfind(' ')) == " 0");
    const auto le_at = used[b].find("le=\"") + 4;
    CHECK(used[b].substr(le_at, used[b].find('"', le_at) - le_at) ==
          (b + 1 == used.size() ? std::string("+Inf") : metrics::detail::bucket_le(b)));
  }
  CHECK(has_line(text, u + R"(_sum{pool_name="db"} 0)"));
  CHECK(has_line(text, u + R"(_count{pool_name="db"} 0)"));
}

TEST_CASE("pool names are escaped in label values, and HELP text too", "[metrics]") {
  const std::string name = "a\"b\\c\nd";
  const auto text = metrics::prometheus(known_pool_stats(), name);
  INFO(text);
  CHECK(has_line(text, R"(db_client_connection_max{pool_name="a\"b\\c\nd"} 8)"));
  CHECK(occurrences(text, "\nd\"") == 0);  // no raw newline inside a label value
  // Every line is a comment or a sample of this pool, so none was broken by the newline.
  for (const auto& l : lines_of(text)) {
    INFO(l);
    CHECK((l.rfind("# ", 0) == 0 || l.find(R"({pool_name="a\"b\\c\nd")") != std::string::npos));
  }
  const auto thread_text = metrics::prometheus(known_thread_pool_stats(), name);
  CHECK(has_line(thread_text, R"(respool_thread_pool_threads{pool_name="a\"b\\c\nd"} 6)"));

  std::string help;
  metrics::detail::append_escaped(help, "say \"x\\y\"\nnow", false);
  CHECK(help == R"(say "x\\y"\nnow)");  // HELP escapes backslash and newline, not quotes
  std::string label;
  metrics::detail::append_escaped(label, "say \"x\\y\"\nnow", true);
  CHECK(label == R"(say \"x\\y\"\nnow)");
}

TEST_CASE("thread pool metrics: threads, queue depth, tasks, rejections by reason", "[metrics]") {
  const auto text = metrics::prometheus(known_thread_pool_stats(), "io");
  INFO(text);
  CHECK(missing_lines(
            text,
            {
                "# TYPE respool_thread_pool_threads gauge",
                R"(respool_thread_pool_threads{pool_name="io"} 6)",
                R"(respool_thread_pool_active_threads{pool_name="io"} 4)",
                R"(respool_thread_pool_idle_threads{pool_name="io"} 2)",
                R"(respool_thread_pool_largest_threads{pool_name="io"} 9)",
                "# TYPE respool_thread_pool_queued_tasks gauge",
                R"(respool_thread_pool_queued_tasks{pool_name="io"} 17)",
                R"(respool_thread_pool_largest_queued_tasks{pool_name="io"} 40)",
                R"(respool_thread_pool_blocked_submitters{pool_name="io"} 1)",
                "# TYPE respool_thread_pool_completed_tasks_total counter",
                R"(respool_thread_pool_submitted_tasks_total{pool_name="io"} 500)",
                R"(respool_thread_pool_completed_tasks_total{pool_name="io"} 480)",
                R"(respool_thread_pool_failed_tasks_total{pool_name="io"} 3)",
                R"(respool_thread_pool_cancelled_tasks_total{pool_name="io"} 0)",
                R"(respool_thread_pool_thread_start_failures_total{pool_name="io"} 2)",
                "# TYPE respool_thread_pool_rejected_tasks_total counter",
            })
            .empty());
  const auto rejected = samples(text, "respool_thread_pool_rejected_tasks_total{");
  const std::vector<std::string> reasons{"aborted",          "caller_ran", "discarded",
                                         "discarded_oldest", "timed_out",  "closed"};
  REQUIRE(rejected.size() == reasons.size());
  for (std::size_t i = 0; i < reasons.size(); ++i) {
    CHECK(rejected[i] == R"(respool_thread_pool_rejected_tasks_total{pool_name="io",reason=")" +
                             reasons[i] + "\"} " + std::to_string((i + 1) * 10));
  }
}

TEST_CASE("several pools of one kind in one call: each family once, a series per pool",
          "[metrics]") {
  auto other = known_pool_stats();
  other.max_size = 32;
  const auto text = metrics::prometheus({{"orders", known_pool_stats()}, {"cache", other}});
  INFO(text);
  CHECK(occurrences(text, "# HELP db_client_connection_max ") == 1);
  CHECK(occurrences(text, "# TYPE db_client_connection_wait_time_seconds histogram") == 1);
  CHECK(samples(text, "db_client_connection_max{") ==
        std::vector<std::string>{R"(db_client_connection_max{pool_name="orders"} 8)",
                                 R"(db_client_connection_max{pool_name="cache"} 32)"});
  CHECK(samples(text, "db_client_connection_wait_time_seconds_bucket{").size() ==
        2 * respool::wait_histogram::bucket_count);

  // A vector (any contiguous range) works as well as a braced list; the one-pool form is the
  // same text as a list of one.
  std::vector<metrics::named<respool::thread_pool_stats>> pools{
      {"a", known_thread_pool_stats()}, {"b", known_thread_pool_stats()}};
  const auto threads = metrics::prometheus(pools);
  CHECK(samples(threads, "respool_thread_pool_queued_tasks{").size() == 2);
  CHECK(occurrences(threads, "# HELP respool_thread_pool_queued_tasks ") == 1);
  CHECK(metrics::prometheus(known_pool_stats(), "x") ==
        metrics::prometheus({{"x", known_pool_stats()}}));
  CHECK(metrics::prometheus(std::span<const metrics::named<respool::pool_stats>>{}).empty());
}

TEST_CASE("a live pool and thread pool: the text says what stats() says", "[metrics]") {
  respool::pool db{[] { return 42; }, respool::pool_options{.max_size = 3, .min_idle = 1,
                                                             .name = "live"}};
  respool::thread_pool io{respool::thread_pool_options{.core_threads = 2, .max_threads = 2,
                                                       .name = "live-io"}};
  for (int i = 0; i < 20; ++i) {
    io.submit([&db] {
        auto l = db.acquire(5s);
        return *l;
      }).get();
  }
  io.wait_idle();
  const auto s = db.stats();
  const auto t = io.stats();
  const auto text = metrics::prometheus(s, "live") + metrics::prometheus(t, "live-io");
  INFO(text);
  CHECK(has_line(text, R"(respool_connection_acquired_total{pool_name="live"} 20)"));
  CHECK(has_line(text, R"(db_client_connection_max{pool_name="live"} 3)"));
  CHECK(has_line(text, R"(db_client_connection_idle_min{pool_name="live"} 1)"));
  CHECK(has_line(text, R"(db_client_connection_wait_time_seconds_count{pool_name="live"} )" +
                           std::to_string(s.wait.count())));
  CHECK(has_line(text, R"(db_client_connection_create_time_seconds_count{pool_name="live"} )" +
                           std::to_string(s.created)));
  CHECK(has_line(text, R"(respool_thread_pool_completed_tasks_total{pool_name="live-io"} 20)"));
  CHECK(has_line(text, R"(respool_thread_pool_threads{pool_name="live-io"} )" +
                           std::to_string(t.threads)));
}

namespace {
auto known_cluster_stats() -> respool::cluster_stats {
  respool::cluster_stats c;
  c.writes = known_pool_stats();
  respool::endpoint_stats p;
  p.name = "db1";
  p.live = 4;
  c.endpoints.push_back(p);
  respool::endpoint_stats r;
  r.name = "db2";
  r.role = respool::role::replica;
  r.live = 2;
  r.lagging = true;
  r.replication_lag = std::chrono::milliseconds(1500);
  r.consecutive_failures = 1;
  c.endpoints.push_back(r);
  respool::endpoint_stats gone;
  gone.name = "db0";
  gone.live = 1;
  gone.removed = true;
  c.endpoints.push_back(gone);
  return c;
}
}  // namespace

TEST_CASE("cluster metrics: both pools, then per endpoint connections, health and lag", "[metrics]") {
  const auto text = metrics::prometheus(known_cluster_stats(), "db");
  CHECK(has_line(text, "db_client_connection_max{pool_name=\"db[write]\"} 8"));
  CHECK(has_line(text, "respool_connection_acquired_total{pool_name=\"db[read]\"} 0"));
  CHECK(has_line(text, "respool_cluster_endpoint_connections{pool_name=\"db\",endpoint=\"db1\",role=\"primary\"} 4"));
  CHECK(has_line(text, "respool_cluster_endpoint_up{pool_name=\"db\",endpoint=\"db2\",role=\"replica\"} 1"));
  CHECK(has_line(text, "respool_cluster_endpoint_lagging{pool_name=\"db\",endpoint=\"db2\",role=\"replica\"} 1"));
  CHECK(has_line(text, "respool_cluster_endpoint_replication_lag_seconds{pool_name=\"db\",endpoint=\"db2\",role=\"replica\"} 1.5"));
  CHECK(has_line(text, "respool_cluster_endpoint_consecutive_failures{pool_name=\"db\",endpoint=\"db2\",role=\"replica\"} 1"));
  // No lag reading for the primary; a removed endpoint is not listed.
  CHECK(text.find("replication_lag_seconds{pool_name=\"db\",endpoint=\"db1\"") == std::string::npos);
  CHECK(text.find("endpoint=\"db0\"") == std::string::npos);
}

TEST_CASE("promtool check metrics accepts both outputs", "[metrics][promtool]") {
  if (!promtool_on_path()) {
    WARN("promtool is not on PATH (Debian package prometheus; bash scripts/install-deps.sh test): "
         "not checked");
    return;
  }
  // The checker is live: it refuses what its lint refuses (why the count family is untyped).
  const auto refused = promtool_check("# HELP x_count h\n# TYPE x_count gauge\nx_count 1\n");
  INFO("promtool on a gauge named x_count: exit " << refused.exit_code << "\n" << refused.output);
  REQUIRE(refused.exit_code != 0);

  auto other = known_pool_stats();
  other.wait.buckets[17] = 1000;
  other.use_time.buckets[9] = 3;
  const std::string text =
      metrics::prometheus({{"orders", known_pool_stats()}, {"we\"ird\\name\n", other}}) +
      metrics::prometheus({{"io", known_thread_pool_stats()}, {"cpu", {}}});
  const auto r = promtool_check(text);
  const auto rc = promtool_check(metrics::prometheus(known_cluster_stats(), "db"));
  INFO("promtool on the cluster's: exit " << rc.exit_code << "\n" << rc.output);
  CHECK(rc.exit_code == 0);
  CHECK(rc.output.empty());
  INFO("promtool check metrics: exit " << r.exit_code << "\n" << r.output << "\non:\n" << text);
  CHECK(r.exit_code == 0);
  CHECK(r.output.empty());
}
