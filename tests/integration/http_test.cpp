// respool against a real HTTP server: each test case starts its own nginx on 127.0.0.1 with a
// free port and `keepalive_timeout 1s`, in a temp dir, and stops it even when the test fails.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "backends/http.hpp"
#include "load.hpp"
#include "pool_checks.hpp"
#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"
#include "servers.hpp"

using namespace std::chrono_literals;
using respool_test::cause_text;
namespace http = respool_examples::http;
using respool_it::steady;

namespace {

auto port_of(const respool_it::nginx_server& s) -> std::uint16_t {
  return static_cast<std::uint16_t>(s.port());
}

}  // namespace

TEST_CASE("64 threads through pools of 4 per host:port - the server never sees more than 4 each") {
  respool_it::nginx_server one;
  respool_it::nginx_server two;
  http::pools web{{.max_size = 4, .acquire_timeout = 60s, .validate_after_idle = 0ms}};
  // stub_status counts the asking connection too: the pool's share is one less.
  respool_it::max_sampler on_one([&] { return one.active_connections().value_or(-100) - 1; }, 2ms);
  respool_it::max_sampler on_two([&] { return two.active_connections().value_or(-100) - 1; }, 2ms);

  constexpr int threads = 64;
  constexpr int per_thread = 50;
  const auto [ok, failed, first_failure] = respool_it::run_workers(
      threads, per_thread, 120s, "http load", [&](int t, int /*iteration*/) -> bool {
        const auto& server = t % 2 == 0 ? one : two;
        auto r = web.request("127.0.0.1", port_of(server), "GET", "/");
        return r.status == 200 && r.body == "hello\n";
      });
  INFO("first failure: " << first_failure);
  on_one.stop();
  on_two.stop();

  CHECK(failed == 0);
  CHECK(ok == threads * per_thread);
  CHECK(web.size() == 2);
  CHECK(on_one.samples() > 2);
  CHECK(on_one.max() >= 1);
  CHECK(on_one.max() <= 4);
  CHECK(on_two.max() >= 1);
  CHECK(on_two.max() <= 4);
  for (const auto* server : {&one, &two}) {
    const auto s = web.for_endpoint("127.0.0.1", port_of(*server)).stats();
    CHECK(s.total <= 4);
    CHECK(s.created <= 4);
    CHECK(s.acquired >= static_cast<std::uint64_t>(threads / 2 * per_thread));
  }
}

TEST_CASE("connections nginx closed after keepalive_timeout are never handed out") {
  respool_it::nginx_server server(1s);
  http::pool_type pool{http::factory{{.host = "127.0.0.1", .port = port_of(server)}},
                       {.max_size = 4, .acquire_timeout = 10s, .validate_after_idle = 0ms,
                        .name = "http-idle"}};
  {
    std::vector<respool::lease<http::connection>> warm;
    for (int i = 0; i < 4; ++i) {
      warm.push_back(pool.acquire());
      CHECK(warm.back()->request("GET", "/").status == 200);
    }
  }
  REQUIRE(pool.stats().idle == 4);
  REQUIRE(server.active_connections() == 5);  // ours and the one asking
  // nginx closes them after 1 s of quiet; wait until it says it has.
  REQUIRE(respool_it::wait_until([&] { return server.active_connections() == 1; }, 10s, 100ms));

  // Straight on the connection (no retry wrapper): validation alone must keep dead ones away.
  const auto [ok, failed, first_failure] = respool_it::run_workers(
      8, 10, 60s, "http idle-cut", [&](int /*thread*/, int /*iteration*/) -> bool {
        auto c = pool.acquire();
        return c->request("GET", "/").status == 200;
      });
  INFO("first failure: " << first_failure);
  CHECK(failed == 0);
  CHECK(ok == 80);
  CHECK(respool_test::eventually([&] { return pool.stats().destroyed(respool::destroy_reason::failed_validation) == 4; }));  // destroyed in the background
}

TEST_CASE("server down when the pool starts: a fast error naming the endpoint") {
  const auto port = static_cast<std::uint16_t>(respool_it::free_port());
  http::pool_type pool{http::factory{{.host = "127.0.0.1", .port = port}},
                       {.max_size = 4, .acquire_timeout = 10s, .name = "http-down"}};
  const auto start = steady::now();
  try {
    auto c = pool.acquire();
    FAIL("acquire should fail");
  } catch (const respool::error& e) {
    CHECK(steady::now() - start < 1s);
    CHECK(e.code() == respool::errc::create_failed);
    CHECK(std::string(e.what()).find("Connection refused") != std::string::npos);
    CHECK(cause_text(e) == "http: connect to 127.0.0.1:" + std::to_string(port) +
                               ": Connection refused");
  }
}

TEST_CASE("a response with Connection: close retires its connection - the next caller gets a fresh one") {
  respool_it::nginx_server server(10s);
  http::pool_type pool{http::factory{{.host = "127.0.0.1", .port = port_of(server)}},
                       {.max_size = 1, .acquire_timeout = 10s, .validate_after_idle = 0ms,
                        .name = "http-close"}};
  {
    auto c = pool.acquire();
    auto r = c->request("GET", "/close");
    CHECK(r.status == 200);
    CHECK(r.header("connection") == "close");
    CHECK(!c->reusable());
  }
  CHECK(respool_test::eventually([&] { return pool.stats().destroyed(respool::destroy_reason::failed_reset) == 1; }));  // destroyed in the background
  for (int i = 0; i < 3; ++i) {
    auto c = pool.acquire();
    CHECK(c->request("GET", "/").body == "hello\n");
  }
  const auto s = pool.stats();
  CHECK(s.created == 2);  // one for /close, one kept alive for the three after it
}

TEST_CASE("server restarted under load: no hang, errors in time, full service within 2 s") {
  respool_it::nginx_server server(10s);
  constexpr auto acquire_timeout = 1000ms;
  http::pool_type pool{http::factory{{.host = "127.0.0.1", .port = port_of(server)}},
                       {.max_size = 4, .acquire_timeout = acquire_timeout,
                        .validate_after_idle = 0ms, .name = "http-restart"}};
  respool_it::check_restart_under_load(
      pool, {.what = "nginx restart", .acquire_timeout = acquire_timeout, .fault_must_show = false},
      [](http::connection& c) { return c.request("GET", "/").status == 200; },
      respool_it::kill_and_restart(server));
  respool_it::check_books_balance(pool, 4);
}
