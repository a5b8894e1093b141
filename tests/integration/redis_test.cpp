// respool against a real Redis: each test case starts its own redis-server on 127.0.0.1 with a
// free port in a temp dir, and kills it even when the test fails.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "backends/redis.hpp"
#include "load.hpp"
#include "pool_checks.hpp"
#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"
#include "servers.hpp"

using namespace std::chrono_literals;
using respool_test::cause_text;
using respool_test::contains;
namespace rd = respool_examples::redis;
using respool_it::steady;

namespace {

using redis_pool = respool::pool<rd::factory, rd::validator, rd::resetter>;

auto options_for(const respool_it::redis_server& s, const std::string& name) -> rd::options {
  rd::options o;
  o.host = "127.0.0.1";
  o.port = s.port();
  o.client_name = name;
  o.connect_timeout = 2s;
  o.command_timeout = 2s;
  return o;
}

auto admin(const respool_it::redis_server& s) -> rd::connection {
  return rd::factory{options_for(s, "respool-it-admin")}.create();
}

// Connections the server has with this client name (its own view, from CLIENT LIST).
auto server_count(rd::connection& a, const std::string& name) -> long {
  auto r = a.command_ok({"CLIENT", "LIST"});
  std::istringstream lines(rd::text_of(r.get()));
  long n = 0;
  for (std::string line; std::getline(lines, line);)
    if (line.find(" name=" + name + " ") != std::string::npos) ++n;
  return n;
}

// A field of CLIENT INFO ("db", "multi", "name", ...).
auto client_info(rd::connection& c, const std::string& field) -> std::string {
  auto r = c.command_ok({"CLIENT", "INFO"});
  const auto text = " " + rd::text_of(r.get());
  const auto at = text.find(" " + field + "=");
  if (at == std::string::npos) return "?";
  const auto start = at + field.size() + 2;
  return text.substr(start, text.find_first_of(" \n", start) - start);
}

}  // namespace

TEST_CASE("64 threads through a pool of 4 run every command - the server never sees more than 4") {
  respool_it::redis_server server;
  const std::string name = "respool-it-load";
  redis_pool cache{rd::factory{options_for(server, name)},
                   {.max_size = 4, .acquire_timeout = 60s, .name = "redis-load"}};
  auto a = admin(server);
  constexpr int per_thread = 100;
  respool_it::check_load(cache, 4, "redis load", per_thread, [&] { return server_count(a, name); },
                         [&](int t, int i) -> bool {
                           const auto key = "respool:it:" + std::to_string(t);
                           auto c = cache.acquire();
                           c->command_ok({"INCR", "respool:it:total"});
                           c->command_ok({"SET", key, std::to_string(i)});
                           auto r = c->command_ok({"GET", key});
                           return rd::text_of(r.get()) == std::to_string(i);
                         });
  auto total = a.command_ok({"GET", "respool:it:total"});
  CHECK(rd::text_of(total.get()) == std::to_string(64 * per_thread));
}

namespace {
void check_idle_connections_killed(rd::validator v) {
  respool_it::redis_server server;
  const std::string name = "respool-it-idle";
  redis_pool cache{rd::factory{options_for(server, name)},
                   {.max_size = 4, .acquire_timeout = 10s, .validate_after_idle = 0ms,
                    .name = "redis-idle"},
                   v};
  {
    std::vector<respool::lease<rd::connection>> warm;
    for (int i = 0; i < 4; ++i) warm.push_back(cache.acquire());
  }
  REQUIRE(cache.stats().idle == 4);
  auto a = admin(server);
  REQUIRE(server_count(a, name) == 4);
  auto killed = a.command_ok({"CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes"});
  CHECK(killed->integer == 4);
  REQUIRE(respool_it::wait_until([&] { return server_count(a, name) == 0; }, 10s));

  const auto [ok, failed, first_failure] = respool_it::run_workers(
      8, 10, 60s, "redis idle-cut", [&](int /*thread*/, int /*iteration*/) -> bool {
        auto c = cache.acquire();
        auto r = c->command_ok({"PING"});
        return true;
      });
  INFO("first failure: " << first_failure);
  CHECK(failed == 0);
  CHECK(ok == 80);
  CHECK(respool_test::eventually([&] { return cache.stats().destroyed(respool::destroy_reason::failed_validation) == 4; }));  // destroyed in the background
}
}  // namespace

TEST_CASE("connections killed while idle (CLIENT KILL) are never handed out") {
  check_idle_connections_killed(rd::validator{});
}

TEST_CASE("the socket check alone notices killed connections, without a PING") {
  check_idle_connections_killed(rd::validator{.round_trip = false});
}

TEST_CASE("the server's own idle timeout: connections it closed are never handed out") {
  respool_it::redis_server server({"--timeout", "1"});
  redis_pool cache{rd::factory{options_for(server, "respool-it-timeout")},
                   {.max_size = 2, .acquire_timeout = 10s, .validate_after_idle = 0ms,
                    .name = "redis-timeout"},
                   rd::validator{.round_trip = false}};
  {
    auto c1 = cache.acquire();
    auto c2 = cache.acquire();
  }
  auto a = admin(server);
  // Redis checks idle clients about ten times a second; give it up to 10 s past the timeout.
  REQUIRE(respool_it::wait_until([&] { return server_count(a, "respool-it-timeout") == 0; }, 12s));
  for (int i = 0; i < 4; ++i) {
    auto c = cache.acquire();
    CHECK(rd::text_of(c->command_ok({"PING"}).get()) == "PONG");
  }
  CHECK(respool_test::eventually([&] { return cache.stats().destroyed(respool::destroy_reason::failed_validation) == 2; }));  // destroyed in the background
}

TEST_CASE("server killed (SIGKILL) and restarted on the same port under load: no hang, errors in time, full service within 2 s") {
  respool_it::redis_server server;
  const std::string name = "respool-it-restart";
  constexpr auto acquire_timeout = 1000ms;
  redis_pool cache{rd::factory{options_for(server, name)},
                   {.max_size = 4, .acquire_timeout = acquire_timeout, .validate_after_idle = 0ms,
                    .name = "redis-restart"}};
  respool_it::check_restart_under_load(
      cache, {.what = "redis restart", .acquire_timeout = acquire_timeout},
      [](rd::connection& c) {
        auto r = c.command({"INCR", "respool:it:n"});
        return r->type == REDIS_REPLY_INTEGER;
      },
      respool_it::kill_and_restart(server));
  respool_it::check_books_balance(cache, 4);
  auto a = admin(server);
  respool_it::check_server_sees_the_pool(cache, [&] { return server_count(a, name); });
}

TEST_CASE("server down when the pool starts: a fast error with hiredis's message") {
  const int port = respool_it::free_port();
  rd::options o;
  o.port = port;
  redis_pool cache{rd::factory{o}, {.max_size = 4, .acquire_timeout = 10s, .name = "redis-down"}};
  const auto start = steady::now();
  try {
    auto c = cache.acquire();
    FAIL("acquire should fail");
  } catch (const respool::error& e) {
    CHECK(steady::now() - start < 1s);
    CHECK(e.code() == respool::errc::create_failed);
    CHECK(contains(e.what(), "Connection refused"));
    CHECK(contains(e.what(), "'redis-down'"));
    CHECK(contains(cause_text(e), "127.0.0.1:" + std::to_string(port)));
  }
}

TEST_CASE("a server that refuses us: the error carries the server's own words") {
  respool_it::redis_server server({"--requirepass", "right-password"});
  auto o = options_for(server, "respool-it-auth");
  o.password = "wrong-password";
  redis_pool cache{rd::factory{o}, {.max_size = 2, .acquire_timeout = 10s, .name = "redis-auth"}};
  const auto start = steady::now();
  try {
    auto c = cache.acquire();
    FAIL("acquire should fail");
  } catch (const respool::error& e) {
    CHECK(steady::now() - start < 1s);
    CHECK(contains(e.what(), "WRONGPASS"));
    CHECK(contains(cause_text(e), "AUTH"));
  }
  // With the right password, and a session reset that must re-authenticate after RESET.
  o.password = "right-password";
  redis_pool good{rd::factory{o}, {.max_size = 1, .name = "redis-auth-ok"}};
  {
    auto c = good.acquire();
    c->command_ok({"SELECT", "3"});
  }
  auto c = good.acquire();
  CHECK(rd::text_of(c->command_ok({"PING"}).get()) == "PONG");
  CHECK(client_info(*c, "db") == "0");
  CHECK(good.stats().created == 1);
}

TEST_CASE("session state does not leak between users (SELECT, MULTI, WATCH, raw access)") {
  respool_it::redis_server server;
  const std::string name = "respool-it-session";
  redis_pool cache{rd::factory{options_for(server, name)}, {.max_size = 1, .name = "redis-session"}};
  auto a = admin(server);
  std::string id;
  {
    auto c = cache.acquire();
    id = client_info(*c, "id");
    c->command_ok({"SELECT", "5"});
    c->command_ok({"SET", "only-in-5", "x"});
    c->command_ok({"MULTI"});
    c->command_ok({"SET", "queued", "never"});  // left in a transaction nobody will EXEC
  }
  {
    auto c = cache.acquire();
    CHECK(client_info(*c, "id") == id);  // the same connection, cleaned, not a new one
    CHECK(client_info(*c, "db") == "0");
    CHECK(client_info(*c, "multi") == "-1");
    CHECK(client_info(*c, "name") == name);  // RESET dropped it; the resetter set it again
    CHECK(c->command_ok({"GET", "only-in-5"})->type == REDIS_REPLY_NIL);
    CHECK(c->command_ok({"GET", "queued"})->type == REDIS_REPLY_NIL);
    c->command_ok({"WATCH", "watched"});  // left watching
  }
  a.command_ok({"SET", "watched", "changed by someone else"});
  {
    auto c = cache.acquire();
    c->command_ok({"MULTI"});
    c->command_ok({"SET", "watched", "mine"});
    auto r = c->command_ok({"EXEC"});
    CHECK(r->type == REDIS_REPLY_ARRAY);  // nil would mean the stale WATCH aborted it
  }
  {
    auto c = cache.acquire();
    redisReply* raw = static_cast<redisReply*>(redisCommand(c->get(), "SELECT 7"));
    REQUIRE(raw != nullptr);
    freeReplyObject(raw);
  }
  {
    auto c = cache.acquire();
    CHECK(client_info(*c, "db") == "0");
    CHECK(!c->dirty());
  }
  CHECK(cache.stats().created == 1);
}
