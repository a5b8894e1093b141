// respool::metrics against a real Prometheus: the example program (examples/metrics_example.cpp)
// serves its pools' /metrics on a free port, a `prometheus` server of our own (support/servers.hpp)
// scrapes it every 200 ms, and the test finds the series through Prometheus' query API.
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <string_view>

#include "backends/http.hpp"
#include "respool_catch.hpp"
#include "servers.hpp"

#ifndef RESPOOL_METRICS_EXAMPLE
#error "RESPOOL_METRICS_EXAMPLE must name the example program (tests/integration/CMakeLists.txt)"
#endif

using namespace std::chrono_literals;
namespace http = respool_examples::http;

namespace {

/// Percent-encodes everything but RFC 3986's unreserved characters (for a query string).
auto url_encode(std::string_view s) -> std::string {
  constexpr std::string_view hex = "0123456789ABCDEF";
  std::string out;
  for (const char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) != 0 || c == '-' || c == '_' || c == '.' || c == '~') {
      out += ch;
    } else {
      out += '%';
      out += hex[c >> 4U];
      out += hex[c & 15U];
    }
  }
  return out;
}

auto seconds_since(respool_it::steady::time_point t) -> double {
  return std::chrono::duration<double>(respool_it::steady::now() - t).count();
}

/// The example's port, from its first line ("metrics: http://127.0.0.1:<port>/metrics").
auto example_port(const respool_it::fs::path& log) -> std::optional<int> {
  return respool_it::port_in_log(log, "metrics: http://127.0.0.1:");
}

class prometheus_api {
 public:
  explicit prometheus_api(int port)
      : port_(static_cast<std::uint16_t>(port)),
        web_{respool::pool_options{.max_size = 1, .acquire_timeout = 5s,
                                   .validate_after_idle = 0ms}} {}

  /// The body of `GET target` (or why there is none, for messages).
  auto get(const std::string& target) -> std::string {
    try {
      return web_.request("127.0.0.1", port_, "GET", target).body;
    } catch (const std::exception& e) {
      return std::string("request failed: ") + e.what();
    }
  }

  /// The value of an instant query's first series, if it has one; `last()` is the raw answer.
  auto value(std::string_view promql) -> std::optional<double> {
    last_ = get("/api/v1/query?query=" + url_encode(promql));
    if (last_.find("\"status\":\"success\"") == std::string::npos) return std::nullopt;
    const auto v = last_.find("\"value\":[");
    if (v == std::string::npos) return std::nullopt;
    const auto open = last_.find(",\"", v);
    if (open == std::string::npos) return std::nullopt;
    return std::strtod(last_.c_str() + open + 2, nullptr);
  }

  /// True if the query has a series and `pred` holds for its value; if not, the next check's
  /// message says what Prometheus answered.
  template <class Pred>
  auto holds(std::string_view promql, Pred pred) -> bool {
    const auto v = value(promql);
    const bool ok = v && pred(*v);
    if (!ok) UNSCOPED_INFO(promql << " -> " << last_);
    return ok;
  }

  [[nodiscard]] auto last() const -> const std::string& { return last_; }

 private:
  std::uint16_t port_;
  http::pools web_;
  std::string last_;
};

auto equals(double expected) {
  return [expected](double v) { return v == expected; };
}
auto positive(double v) -> bool { return v > 0; }

}  // namespace

TEST_CASE("Prometheus scrapes the example's /metrics and answers queries on the pools' series") {
  const auto start = respool_it::steady::now();
  respool_it::temp_dir dir("metrics-example");
  const auto log = dir.path() / "example.log";
  // --seconds bounds it even if this test dies without killing it.
  respool_it::child example({RESPOOL_METRICS_EXAMPLE, "0", "--seconds=300"}, log);
  std::optional<int> port;
  REQUIRE(respool_it::wait_until(
      [&] { return (port = example_port(log)).has_value() || !example.running(); }, 20s));
  INFO("example log:\n" << respool_it::file_tail(log));
  REQUIRE(port);
  REQUIRE(example.running());

  // The endpoint itself, as Prometheus will see it.
  const auto direct = respool_it::tcp_exchange(
      *port, "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n", 1 << 20);
  REQUIRE(direct);
  CHECK(direct->rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(direct->find("\r\nContent-Type: text/plain; version=0.0.4") != std::string::npos);
  CHECK(direct->find("\ndb_client_connection_max{pool_name=\"example-db\"} 4\n") !=
        std::string::npos);

  respool_it::prometheus_server prometheus({"127.0.0.1:" + std::to_string(*port)}, 200ms);
  prometheus_api api(prometheus.port());

  // The first scrapes land within a second or two of the server's start.
  const bool scraped = respool_it::wait_until(
      [&] { return api.value(R"(db_client_connection_max{pool_name="example-db"})") == 4.0; },
      30s, 200ms);
  if (!scraped) {
    FAIL("no db_client_connection_max == 4 within 30 s; last answer: "
         << api.last() << "\ntargets: " << api.get("/api/v1/targets")
         << "\nprometheus log:\n" << prometheus.log_tail());
  }
  WARN("Prometheus had the series " << seconds_since(start) << " s after the start");
  CHECK(api.holds(R"(up{job="respool"})", equals(1)));

  // The other pool metrics: the untyped count family, a gauge from the options, counters and
  // the histograms.
  CHECK(api.holds(R"(count(db_client_connection_count{pool_name="example-db"}))", equals(2)));
  CHECK(api.holds(R"(sum(db_client_connection_count{pool_name="example-db"}))",
                  [](double v) { return v >= 0 && v <= 4; }));
  CHECK(api.holds(R"(db_client_connection_idle_min{pool_name="example-db"})", equals(1)));
  CHECK(api.holds(R"(respool_connection_acquired_total{pool_name="example-db"})", positive));
  CHECK(api.holds(R"(db_client_connection_wait_time_seconds_count{pool_name="example-db"})",
                  positive));
  CHECK(api.holds(R"(count(respool_connection_destroyed_total{pool_name="example-db"}))",
                  equals(static_cast<double>(respool::destroy_reason_count))));
  // The example's factory takes 2-4 ms: the median creation time is in (1.024 ms, 8.192 ms].
  CHECK(api.holds("histogram_quantile(0.5, db_client_connection_create_time_seconds_bucket"
                  R"({pool_name="example-db"}))",
                  [](double v) { return v > 0.001024 && v <= 0.008192; }));

  // The thread pool's.
  CHECK(api.holds(R"(respool_thread_pool_threads{pool_name="example-io"})",
                  [](double v) { return v >= 1 && v <= 4; }));
  CHECK(api.holds(R"(respool_thread_pool_queued_tasks{pool_name="example-io"})",
                  [](double v) { return v >= 0 && v <= 16; }));
  CHECK(api.holds(R"(respool_thread_pool_completed_tasks_total{pool_name="example-io"})",
                  positive));
  CHECK(api.holds(R"(count(respool_thread_pool_rejected_tasks_total{pool_name="example-io"}))",
                  equals(6)));

  example.kill_and_wait(5s);
  CHECK(example.exit_code() == 0);  // SIGTERM ends its serve loop; it shuts its pools down
}
