// respool against a real PostgreSQL: each test case starts its own cluster (initdb + pg_ctl) on
// 127.0.0.1 with a free port in a temp dir, and stops it even when the test fails.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backends/postgres.hpp"
#include "load.hpp"
#include "pool_checks.hpp"
#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"
#include "servers.hpp"

using namespace std::chrono_literals;
using respool_test::cause_text;
using respool_test::contains;
namespace pg = respool_examples::pg;
using respool_it::steady;

namespace {

using pg_pool = respool::pool<pg::factory, pg::validator, pg::resetter>;

auto admin(const respool_it::postgres_server& s) -> pg::connection {
  return pg::factory{s.conninfo("application_name=respool_it_admin")}.create();
}

// Backends the server has for an application name (its own view, not the pool's).
auto server_count(pg::connection& a, const std::string& app) -> long {
  return std::stol(a.scalar(("SELECT count(*) FROM pg_stat_activity WHERE application_name = '" +
                             app + "'").c_str()));
}

}  // namespace

TEST_CASE("64 threads through a pool of 4 run every query - the server never sees more than 4") {
  respool_it::postgres_server server;
  const std::string app = "respool_it_load";
  pg_pool db{pg::factory{server.conninfo("application_name=" + app)},
             {.max_size = 4, .acquire_timeout = 60s, .name = "pg-load"}};
  auto a = admin(server);
  respool_it::check_load(db, 4, "postgres load", 40, [&] { return server_count(a, app); },
                         [&](int t, int i) -> bool {
                           auto c = db.acquire();
                           const auto v = std::to_string(t * 1000 + i);
                           auto r = c->exec_params("SELECT $1::int * 2", {v.c_str()});
                           return std::stoi(PQgetvalue(r.get(), 0, 0)) == (t * 1000 + i) * 2;
                         });
}

namespace {
// Idle connections killed on the server side: no caller may get one.
void check_idle_connections_cut(pg::validator v) {
  respool_it::postgres_server server;
  const std::string app = "respool_it_idle";
  pg_pool db{pg::factory{server.conninfo("application_name=" + app)},
             {.max_size = 4, .acquire_timeout = 10s, .validate_after_idle = 0ms, .name = "pg-idle"},
             v};
  std::set<int> old_pids;
  {
    std::vector<respool::lease<pg::connection>> warm;
    for (int i = 0; i < 4; ++i) warm.push_back(db.acquire());
    for (auto& c : warm) old_pids.insert(c->backend_pid());
  }
  REQUIRE(old_pids.size() == 4);
  REQUIRE(db.stats().idle == 4);

  auto a = admin(server);
  CHECK(a.scalar(("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                  "application_name = '" + app + "'").c_str()) == "4");
  REQUIRE(respool_it::wait_until([&] { return server_count(a, app) == 0; }, 10s));

  // Every caller gets a working connection: no query fails.
  std::mutex m;
  std::set<int> new_pids;
  const auto [ok, failed, first_failure] = respool_it::run_workers(
      8, 10, 60s, "postgres idle-cut", [&](int /*thread*/, int /*iteration*/) -> bool {
        auto c = db.acquire();
        c->exec("SELECT 1");
        std::lock_guard lk(m);
        new_pids.insert(c->backend_pid());
        return true;
      });
  INFO("first failure: " << first_failure);
  CHECK(failed == 0);
  CHECK(ok == 80);
  for (int pid : new_pids) CHECK(old_pids.count(pid) == 0);
  CHECK(respool_test::eventually(  // destroyed in the background
      [&] { return db.stats().destroyed(respool::destroy_reason::failed_validation) == 4; }));
  CHECK(db.stats().total <= 4);
}
}  // namespace

TEST_CASE("connections terminated while idle (pg_terminate_backend) are never handed out") {
  check_idle_connections_cut(pg::validator{});
}

TEST_CASE("the socket check alone notices terminated connections, without a round trip") {
  check_idle_connections_cut(pg::validator{.round_trip = false});
}

TEST_CASE("keepalive notices terminated idle connections in the background") {
  respool_it::postgres_server server;
  const std::string app = "respool_it_keepalive";
  pg_pool db{pg::factory{server.conninfo("application_name=" + app)},
             {.max_size = 4, .min_idle = 2, .validate_after_idle = respool::pool_options::never,
              .keepalive_interval = 200ms, .name = "pg-keepalive"}};
  REQUIRE(respool_it::wait_until([&] { return db.stats().idle == 2; }, 10s));
  auto a = admin(server);
  a.exec(("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = '" +
          app + "'").c_str());
  // Nobody borrows: the housekeeper finds both dead and min_idle brings two fresh ones.
  REQUIRE(respool_it::wait_until(
      [&] { return db.stats().destroyed(respool::destroy_reason::failed_validation) == 2; }, 10s));
  REQUIRE(respool_it::wait_until([&] { return db.stats().idle == 2; }, 10s));
  auto c = db.acquire(5s);
  CHECK(c->scalar("SELECT 41 + 1") == "42");
  CHECK(server_count(a, app) == 2);
}

TEST_CASE("restart under load (pg_ctl restart -m immediate): no hang, errors in time, full service within 2 s") {
  respool_it::postgres_server server;
  const std::string app = "respool_it_restart";
  constexpr auto acquire_timeout = 1000ms;
  pg_pool db{pg::factory{server.conninfo("application_name=" + app + " connect_timeout=2")},
             {.max_size = 4, .acquire_timeout = acquire_timeout, .validate_after_idle = 0ms,
              .name = "pg-restart"}};
  respool_it::check_restart_under_load(
      db, {.what = "postgres restart", .acquire_timeout = acquire_timeout, .fault_must_show = false},
      [](pg::connection& c) {
        auto r = c.exec("SELECT 1");
        return PQntuples(r.get()) == 1;
      },
      [&] { server.restart_immediate(); });
  respool_it::check_books_balance(db, 4);
  auto a = admin(server);
  respool_it::check_server_sees_the_pool(db, [&] { return server_count(a, app); });
}

TEST_CASE("server down when the pool starts: a fast error with libpq's own message") {
  const int port = respool_it::free_port();  // nothing listens there
  const auto conninfo = "host=127.0.0.1 port=" + std::to_string(port) +
                        " user=postgres dbname=postgres connect_timeout=2";
  SECTION("no min_idle: the first acquire waits for the factory and gets its error") {
    pg_pool db{pg::factory{conninfo}, {.max_size = 4, .acquire_timeout = 10s, .name = "pg-down"}};
    const auto start = steady::now();
    try {
      auto c = db.acquire();
      FAIL("acquire should fail");
    } catch (const respool::error& e) {
      CHECK(steady::now() - start < 1s);
      CHECK(e.code() == respool::errc::create_failed);
      CHECK(contains(e.what(), "Connection refused"));
      CHECK(contains(e.what(), "'pg-down'"));
      CHECK(contains(cause_text(e), "Connection refused"));
      CHECK(contains(cause_text(e), std::to_string(port)));
    }
  }
  SECTION("min_idle: construction fails quietly, acquire fails fast") {
    pg_pool db{pg::factory{conninfo},
               {.max_size = 4, .min_idle = 2, .acquire_timeout = 10s, .name = "pg-down"}};
    const auto start = steady::now();
    std::error_code ec;
    auto c = db.acquire(10s, ec);
    CHECK(steady::now() - start < 1s);
    CHECK((ec == respool::errc::backend_unavailable || ec == respool::errc::create_failed));
    try {
      auto again = db.acquire();
      FAIL("acquire should fail");
    } catch (const respool::error& e) {
      CHECK(contains(e.what(), "Connection refused"));
    }
  }
}

TEST_CASE("a server that refuses us: the error carries the server's own words") {
  respool_it::postgres_server server;
  pg_pool db{pg::factory{server.conninfo() + " dbname=respool_no_such_db"},
             {.max_size = 2, .acquire_timeout = 10s, .name = "pg-refused"}};
  const auto start = steady::now();
  try {
    auto c = db.acquire();
    FAIL("acquire should fail");
  } catch (const respool::error& e) {
    CHECK(steady::now() - start < 1s);
    CHECK(contains(e.what(), "database \"respool_no_such_db\" does not exist"));
    CHECK(contains(cause_text(e), "FATAL"));
  }
}

TEST_CASE("session state does not leak between users (DISCARD ALL, ROLLBACK)") {
  respool_it::postgres_server server;
  pg_pool db{pg::factory{server.conninfo()}, {.max_size = 1, .name = "pg-session"}};
  int pid = 0;
  {
    auto c = db.acquire();
    pid = c->backend_pid();
    c->exec("SET statement_timeout = '4321ms'");
    c->exec("SET search_path = leaked, public");
    c->exec("CREATE TEMP TABLE leaked_temp (x int)");
    c->exec("PREPARE leaked_stmt AS SELECT 1");
    c->exec("SELECT pg_advisory_lock(42)");
    c->exec("LISTEN leaked_channel");
  }
  {
    auto c = db.acquire();
    CHECK(c->backend_pid() == pid);  // the same connection, cleaned, not a new one
    CHECK(c->scalar("SHOW statement_timeout") == "0");
    CHECK(c->scalar("SHOW search_path") == "\"$user\", public");
    CHECK(c->scalar("SELECT count(*) FROM pg_prepared_statements") == "0");
    CHECK(c->scalar("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()") == "0");
    CHECK(c->scalar("SELECT count(*) FROM pg_listening_channels()") == "0");
    CHECK(c->scalar("SELECT to_regclass('leaked_temp') IS NULL") == "t");
    c->exec("CREATE TABLE kept (x int)");
  }
  {
    auto c = db.acquire();  // a transaction left open, with a write and a SET LOCAL
    c->exec("BEGIN");
    c->exec("INSERT INTO kept VALUES (1)");
    c->exec("SET LOCAL work_mem = '77MB'");
  }
  {
    auto c = db.acquire();
    CHECK(c->backend_pid() == pid);
    CHECK(PQtransactionStatus(c->get()) == PQTRANS_IDLE);
    CHECK(c->scalar("SELECT count(*) FROM kept") == "0");  // rolled back
    c->exec("BEGIN");
    CHECK_THROWS_AS(c->exec("SELECT 1 / 0"), pg::error);  // an aborted transaction left behind
  }
  {
    auto c = db.acquire();
    CHECK(c->backend_pid() == pid);
    CHECK(c->scalar("SELECT 1") == "1");
  }
  CHECK(db.stats().created == 1);
}

TEST_CASE("reset mode reset_all: parameters reset, prepared statements kept") {
  respool_it::postgres_server server;
  pg_pool db{pg::factory{server.conninfo()}, {.max_size = 1, .name = "pg-modes"},
             pg::validator{}, pg::resetter{.mode = pg::session_reset::reset_all}};
  {
    auto c = db.acquire();
    c->exec("SET statement_timeout = '4321ms'");
    c->exec("PREPARE kept_stmt AS SELECT 7");
  }
  {
    auto c = db.acquire();
    CHECK(c->scalar("SHOW statement_timeout") == "0");
    CHECK(c->scalar("EXECUTE kept_stmt") == "7");
  }
}
