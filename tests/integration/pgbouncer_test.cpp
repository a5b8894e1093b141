// Many application instances through PgBouncer (Debian's pgbouncer, transaction pooling) to one
// PostgreSQL: four processes with a respool pool of 16 each never make the server see more than
// PgBouncer's default_pool_size (8) backends, and every request succeeds; and why a resetter
// must not rely on session state there (it crosses to other clients).
#include <respool/pool.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "backends/postgres.hpp"
#include "load.hpp"
#include "respool_catch.hpp"
#include "servers.hpp"

using namespace std::chrono_literals;
namespace pg = respool_examples::pg;
using respool_it::steady;

namespace {

constexpr int instances = 4;
constexpr int pool_size = 16;
constexpr int bouncer_pool = 8;

// One application instance: a pool of 16 through PgBouncer, 16 threads of point queries for
// `run_for`; writes "<ok> <failed>" to `out`. Runs in a forked child: no Catch2 here.
[[noreturn]] void instance_main(const std::string& conninfo, int out, std::chrono::milliseconds run_for) {
  long ok = 0;
  long failed = 0;
  try {
    // Transaction pooling: no session state survives a transaction, so the reset is a
    // ROLLBACK of whatever was left open, nothing more.
    respool::pool<pg::factory, pg::validator, pg::resetter> db{
        pg::factory{conninfo}, respool::pool_options{.max_size = pool_size, .acquire_timeout = 5s},
        pg::validator{}, pg::resetter{.mode = pg::session_reset::rollback_only}};
    std::atomic<long> oks{0};
    std::atomic<long> fails{0};
    const auto until = steady::now() + run_for;
    std::vector<std::thread> threads;
    for (int t = 0; t < pool_size; ++t)
      threads.emplace_back([&] {
        while (steady::now() < until) {
          try {
            auto c = db.acquire();
            if (c->scalar("SELECT count(*) FROM pg_class WHERE relkind = 'r'").empty()) {
              ++fails;
            } else {
              ++oks;
            }
          } catch (...) {
            ++fails;
          }
        }
      });
    for (auto& t : threads) t.join();
    ok = oks.load();
    failed = fails.load();
  } catch (...) {
    failed = -1;
  }
  const std::string line = std::to_string(ok) + " " + std::to_string(failed) + "\n";
  const auto written = ::write(out, line.data(), line.size());
  ::_exit(written == static_cast<ssize_t>(line.size()) ? 0 : 3);
}

auto read_all(int fd) -> std::string {
  std::string s;
  char buf[256];
  for (ssize_t n; (n = ::read(fd, buf, sizeof buf)) > 0;) s.append(buf, static_cast<std::size_t>(n));
  return s;
}

}  // namespace

TEST_CASE("PgBouncer caps four instances of 16 at its pool of 8") {
  if (!respool_it::find_program("pgbouncer")) {
    WARN("pgbouncer is not installed (bash scripts/install-deps.sh test): not run");
    return;
  }
  respool_it::postgres_server server;
  respool_it::pgbouncer_server bouncer(server, "transaction", bouncer_pool);
  auto admin = pg::factory{server.conninfo("application_name=respool_it_admin")}.create();
  const std::string count_sql =
      "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' "
      "AND pid <> pg_backend_pid()";

  // Forked before this process has any thread of its own (the sampler starts after).
  struct child_proc {
    pid_t pid;
    int out;
  };
  std::vector<child_proc> children;
  for (int i = 0; i < instances; ++i) {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::close(fds[0]);
      instance_main(bouncer.conninfo("application_name=respool_it_instance"), fds[1], 3s);
    }
    ::close(fds[1]);
    children.push_back({pid, fds[0]});
  }
  respool_it::max_sampler backends([&] { return std::stol(admin.scalar(count_sql.c_str())); }, 10ms);

  long total_ok = 0;
  for (auto& c : children) {
    const auto text = read_all(c.out);  // until the child exits (bounded by its 3 s run)
    ::close(c.out);
    int status = 0;
    REQUIRE(::waitpid(c.pid, &status, 0) == c.pid);
    INFO("instance " << c.pid << " reported '" << text << "'");
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 0);
    long ok = -1;
    long failed = -1;
    REQUIRE(std::sscanf(text.c_str(), "%ld %ld", &ok, &failed) == 2);
    CHECK(failed == 0);
    CHECK(ok > 100);
    total_ok += ok;
  }
  backends.stop();
  INFO("sampler errors " << backends.errors() << ": " << backends.last_error());
  CHECK(backends.errors() == 0);
  CHECK(backends.samples() > 50);
  CHECK(backends.max() <= bouncer_pool);
  CHECK(backends.max() > 1);  // the load did reach the server through several connections
  WARN("PgBouncer, transaction pooling: " << instances << " instances x pool of " << pool_size
       << " = " << instances * pool_size << " client connections; the server saw at most "
       << backends.max() << " backends (default_pool_size " << bouncer_pool << "); "
       << total_ok << " queries in 3 s, none failed");
}

TEST_CASE("PgBouncer transaction pooling passes session state on") {
  if (!respool_it::find_program("pgbouncer")) {
    WARN("pgbouncer is not installed (bash scripts/install-deps.sh test): not run");
    return;
  }
  respool_it::postgres_server server;
  respool_it::pgbouncer_server bouncer(server, "transaction", 1);  // one server connection
  auto a = pg::factory{bouncer.conninfo()}.create();
  auto b = pg::factory{bouncer.conninfo()}.create();
  // A session-level setting on client a, outside a transaction...
  a.exec("SET respool.tenant = 'tenant-a'");
  // ...is on the one server connection, which client b gets for its next transaction.
  CHECK(b.scalar("SELECT current_setting('respool.tenant', true)") == "tenant-a");
  // Inside a transaction (SET LOCAL), it ends with the transaction: what a pool may rely on.
  b.exec("BEGIN");
  b.exec("SET LOCAL respool.tenant = 'tenant-b'");
  CHECK(b.scalar("SELECT current_setting('respool.tenant', true)") == "tenant-b");
  b.exec("COMMIT");
  CHECK(a.scalar("SELECT current_setting('respool.tenant', true)") == "tenant-a");
}
