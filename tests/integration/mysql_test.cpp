// respool against a real MariaDB: each test case starts its own server (mariadb-install-db +
// mariadbd) on 127.0.0.1 with a free port in a temp dir, and kills it even when the test fails.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "backends/mysql.hpp"
#include "error_text.hpp"
#include "load.hpp"
#include "pool_checks.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"
#include "servers.hpp"

using namespace std::chrono_literals;
using respool_test::cause_text;
using respool_test::contains;
namespace my = respool_examples::mysql;
using respool_it::steady;

namespace {

using my_pool = respool::pool<my::factory, my::validator, my::resetter>;

auto options_for(const respool_it::mariadb_server& s, const std::string& extra = {}) -> my::options {
  return my::options::parse(s.conninfo(extra));
}

// The test's own observer: a connection outside the pool that the server's wait_timeout spares.
auto admin(const respool_it::mariadb_server& s) -> my::connection {
  auto a = my::factory{options_for(s)}.create();
  a.exec("SET SESSION wait_timeout = 3600");
  return a;
}

// Client connections the server has, its own count (Threads_connected), without the observer.
auto server_count(my::connection& a) -> long {
  return std::stol(a.scalar("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                            "WHERE VARIABLE_NAME = 'THREADS_CONNECTED'")) - 1;
}

// The mysql::error behind a respool::error (its code and SQLSTATE), or 0 / "".
auto cause_code(const respool::error& e) -> unsigned {
  try {
    if (e.cause()) std::rethrow_exception(e.cause());
  } catch (const my::error& inner) {
    return inner.code();
  } catch (...) {
  }
  return 0;
}

// The error code a statement fails with (0 if it succeeds).
auto code_of(my::connection& c, const std::string& sql) -> unsigned {
  try {
    c.exec(sql);
  } catch (const my::error& e) {
    return e.code();
  }
  return 0;
}

}  // namespace

TEST_CASE("64 threads through a pool of 4 run every query - the server never sees more than 4") {
  respool_it::mariadb_server server;
  my_pool db{my::factory{options_for(server)},
             {.max_size = 4, .acquire_timeout = 60s, .name = "mysql-load"}};
  auto a = admin(server);
  REQUIRE(server_count(a) == 0);  // the observer alone: the count is the pool's
  const long peak = respool_it::check_load(
      db, 4, "mysql load", 40, [&] { return server_count(a); }, [&](int t, int i) -> bool {
        auto c = db.acquire();
        const long v = t * 1000 + i;
        return c->scalar("SELECT " + std::to_string(v) + " * 2") == std::to_string(v * 2);
      });
  CHECK(peak == 4);  // all four were needed, and never a fifth
}

namespace {
// The server's wait_timeout (1 s) closes the pool's idle connections. Warms 4, lets them sit
// past it, checks the server really closed them, then 80 queries from 8 threads: returns how
// many failed, and checks that none ran on one of the old connections.
auto after_wait_timeout(respool_it::mariadb_server& server, my_pool& db) -> int {
  std::set<unsigned long> old_ids;
  {
    std::vector<respool::lease<my::connection>> warm;
    for (int i = 0; i < 4; ++i) warm.push_back(db.acquire());
    for (auto& c : warm) old_ids.insert(c->thread_id());
  }
  REQUIRE(old_ids.size() == 4);
  auto a = admin(server);
  REQUIRE(server_count(a) == 4);
  // The server closes each after 1 s without a statement: wait until it has closed them all.
  REQUIRE(respool_it::wait_until([&] { return server_count(a) == 0; }, 10s));
  std::this_thread::sleep_for(200ms);  // and the pool has noticed whatever it will notice

  std::mutex m;
  std::set<unsigned long> new_ids;
  const auto [ok, failed, first_failure] = respool_it::run_workers(
      8, 10, 60s, "mysql wait_timeout", [&](int /*thread*/, int /*iteration*/) -> bool {
        auto c = db.acquire();
        c->exec("DO 1");
        std::lock_guard lk(m);
        new_ids.insert(c->thread_id());
        return true;
      });
  INFO("first failure: " << first_failure);
  CHECK(ok + failed == 80);
  if (failed == 0)
    for (auto id : new_ids) CHECK(old_ids.count(id) == 0);
  return failed;
}
}  // namespace

TEST_CASE("connections the server closes after wait_timeout never reach a caller") {
  respool_it::mariadb_server server({.extra_args = {"--wait-timeout=1"}});

  SECTION("default options: validation after 500 ms idle; the socket check notices the close") {
    my_pool db{my::factory{options_for(server)}, {.max_size = 4, .name = "mysql-wait"}};
    CHECK(after_wait_timeout(server, db) == 0);
    CHECK(respool_test::eventually(
        [&] { return db.stats().destroyed(respool::destroy_reason::failed_validation) == 4; }));
  }
  SECTION("every borrow validated, with mysql_ping after the socket check") {
    my_pool db{my::factory{options_for(server)},
               {.max_size = 4, .validate_after_idle = 0ms, .name = "mysql-wait-ping"},
               my::validator{.ping_after_idle = 0ms}};
    CHECK(after_wait_timeout(server, db) == 0);
    CHECK(respool_test::eventually(
        [&] { return db.stats().destroyed(respool::destroy_reason::failed_validation) == 4; }));
  }
  SECTION("validate_after_idle = never, idle_timeout 500 ms below wait_timeout: retired first") {
    my_pool db{my::factory{options_for(server)},
               {.max_size = 4, .idle_timeout = 500ms,
                .validate_after_idle = respool::pool_options::never, .name = "mysql-idle"}};
    CHECK(after_wait_timeout(server, db) == 0);
    CHECK(db.stats().destroyed(respool::destroy_reason::idle_timeout) >= 4);
    CHECK(db.stats().destroyed(respool::destroy_reason::failed_validation) == 0);
  }
  SECTION("control: neither validation nor idle_timeout, and callers do get dead connections") {
    my_pool db{my::factory{options_for(server)},
               {.max_size = 4, .idle_timeout = 0ms,
                .validate_after_idle = respool::pool_options::never, .name = "mysql-unguarded"}};
    CHECK(after_wait_timeout(server, db) > 0);
  }
}

TEST_CASE("server killed (SIGKILL) and restarted on the same port under load: no hang, errors in time, full service within 2 s") {
  respool_it::mariadb_server server;
  constexpr auto acquire_timeout = 1000ms;
  my_pool db{my::factory{options_for(server, "connect_timeout=2 read_timeout=2 write_timeout=2")},
             {.max_size = 4, .acquire_timeout = acquire_timeout, .validate_after_idle = 0ms,
              .name = "mysql-restart"}};
  respool_it::check_restart_under_load(
      db, {.what = "mysql restart", .acquire_timeout = acquire_timeout},
      [](my::connection& c) { return c.scalar("SELECT 1") == "1"; },
      respool_it::kill_and_restart(server));
  respool_it::check_books_balance(db, 4);
  auto a = admin(server);
  respool_it::check_server_sees_the_pool(db, [&] { return server_count(a); });
}

TEST_CASE("server down when the pool starts: a fast error with the client library's message") {
  const int port = respool_it::free_port();  // nothing listens there
  const auto opts = my::options::parse("host=127.0.0.1 port=" + std::to_string(port) +
                                       " user=respool password=x connect_timeout=2");
  SECTION("no min_idle: the first acquire waits for the factory and gets its error") {
    my_pool db{my::factory{opts}, {.max_size = 4, .acquire_timeout = 10s, .name = "mysql-down"}};
    if (const auto e = respool_it::failed_acquire(db)) {
      CHECK(e->code() == respool::errc::create_failed);
      CHECK(contains(e->what(), "'mysql-down'"));
      CHECK(contains(e->what(), "ERROR 2002 (HY000): Can't connect to server on '127.0.0.1'"));
      CHECK(cause_code(*e) == 2002);
      CHECK(contains(cause_text(*e), "127.0.0.1:" + std::to_string(port)));
    }
  }
  SECTION("min_idle: construction fails quietly, acquire fails fast") {
    my_pool db{my::factory{opts},
               {.max_size = 4, .min_idle = 2, .acquire_timeout = 10s, .name = "mysql-down"}};
    const auto start = steady::now();
    std::error_code ec;
    auto c = db.acquire(10s, ec);
    CHECK(steady::now() - start < 1s);
    CHECK((ec == respool::errc::backend_unavailable || ec == respool::errc::create_failed));
    if (const auto e = respool_it::failed_acquire(db)) CHECK(contains(e->what(), "Can't connect to server"));
  }
}

TEST_CASE("a server that refuses us: the error carries the server's own code and words") {
  respool_it::mariadb_server server;
  auto check_refused = [&](const my::options& o, unsigned code, const std::string& state,
                           const std::string& words) {
    my_pool db{my::factory{o}, {.max_size = 2, .acquire_timeout = 10s, .name = "mysql-refused"}};
    if (const auto e = respool_it::failed_acquire(db)) {
      CHECK(cause_code(*e) == code);
      CHECK(contains(e->what(), words));
      CHECK(contains(cause_text(*e), "ERROR " + std::to_string(code) + " (" + state + "): " + words));
    }
  };
  auto wrong_password = options_for(server);
  wrong_password.password = "wrong";
  check_refused(wrong_password, 1045, "28000", "Access denied for user 'respool'@'127.0.0.1'");
  check_refused(options_for(server, "database=respool_no_such_db"), 1049, "42000",
                "Unknown database 'respool_no_such_db'");
}

TEST_CASE("session state does not leak between users (mysql_reset_connection)") {
  respool_it::mariadb_server server;
  my_pool db{my::factory{options_for(server)}, {.max_size = 1, .name = "mysql-session"}};
  auto a = admin(server);
  a.exec("CREATE TABLE kept (x int) ENGINE=InnoDB");
  unsigned long id = 0;
  {
    auto c = db.acquire();
    id = c->thread_id();
    REQUIRE(c->scalar("SELECT @@character_set_client") == "utf8mb4");
    c->exec("SET @leaked = 42");
    c->exec("CREATE TEMPORARY TABLE leaked_temp (x int)");
    c->exec("PREPARE leaked_stmt FROM 'SELECT 1'");
    c->exec("SET SESSION sql_mode = 'ANSI'");
    CHECK(c->scalar("SELECT GET_LOCK('respool_it_leaked', 0)") == "1");
    c->exec("SET autocommit = 0");
    c->exec("INSERT INTO kept VALUES (1)");  // an open transaction with a write
    c->exec("SET NAMES latin1");
    REQUIRE(c->in_transaction());
    REQUIRE(c->scalar("SELECT @leaked") == "42");
  }
  {
    auto c = db.acquire();
    CHECK(c->thread_id() == id);  // the same connection, cleaned, not a new one
    CHECK(c->scalar("SELECT @leaked IS NULL") == "1");
    CHECK(code_of(*c, "SELECT * FROM leaked_temp") == 1146);  // ER_NO_SUCH_TABLE
    CHECK(code_of(*c, "EXECUTE leaked_stmt") == 1243);        // ER_UNKNOWN_STMT_HANDLER
    CHECK(c->scalar("SELECT @@sql_mode") != "ANSI");
    CHECK(c->scalar("SELECT IS_USED_LOCK('respool_it_leaked') IS NULL") == "1");
    CHECK(c->scalar("SELECT @@autocommit") == "1");
    CHECK(!c->in_transaction());
    CHECK(c->scalar("SELECT @@character_set_client") == "utf8mb4");
    CHECK(c->scalar("SELECT @@character_set_connection") == "utf8mb4");
    CHECK(c->scalar("SELECT @@character_set_results") == "utf8mb4");
    CHECK(std::string(mysql_character_set_name(c->get())) == "utf8mb4");  // the library's too
  }
  // Rolled back: the observer sees no row (it reads committed data).
  CHECK(a.scalar("SELECT COUNT(*) FROM kept") == "0");
  {
    auto c = db.acquire();  // a transaction left open by BEGIN, with a failed statement in it
    c->exec("BEGIN");
    c->exec("INSERT INTO kept VALUES (2)");
    CHECK(code_of(*c, "INSERT INTO no_such_table VALUES (1)") == 1146);
  }
  {
    auto c = db.acquire();
    CHECK(c->thread_id() == id);
    CHECK(c->scalar("SELECT COUNT(*) FROM kept") == "0");
    CHECK(!c->in_transaction());
  }
  CHECK(db.stats().created == 1);
}

TEST_CASE("reset mode rollback_only: the transaction and autocommit are restored, free when clean") {
  respool_it::mariadb_server server;
  my_pool db{my::factory{options_for(server)}, {.max_size = 1, .name = "mysql-rollback"},
             my::validator{}, my::resetter{.mode = my::session_reset::rollback_only}};
  auto a = admin(server);
  a.exec("CREATE TABLE kept (x int) ENGINE=InnoDB");
  auto rollbacks = [&] {
    return std::stol(a.scalar("SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS "
                              "WHERE VARIABLE_NAME = 'COM_ROLLBACK'"));
  };
  {
    auto c = db.acquire();
    c->exec("SET @kept = 7");
    c->exec("SET autocommit = 0");
    c->exec("INSERT INTO kept VALUES (1)");
    c->exec("SET NAMES latin1");
  }
  {
    auto c = db.acquire();
    CHECK(c->scalar("SELECT @@autocommit") == "1");
    CHECK(c->scalar("SELECT COUNT(*) FROM kept") == "0");
    CHECK(c->scalar("SELECT @@character_set_client") == "utf8mb4");
    CHECK(c->scalar("SELECT @kept") == "7");  // what this mode does not clean
  }
  // A connection that comes back clean costs no statement at all.
  const long before = rollbacks();
  for (int i = 0; i < 5; ++i) {
    auto c = db.acquire();
    CHECK(c->scalar("SELECT 1") == "1");
  }
  CHECK(rollbacks() == before);
  {
    auto c = db.acquire();  // a failed statement: rolled back, to be safe
    CHECK(code_of(*c, "SELECT * FROM no_such_table") == 1146);
  }
  CHECK(rollbacks() == before + 1);
  CHECK(db.stats().created == 1);
}
