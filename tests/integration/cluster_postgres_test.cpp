// respool::cluster_pool against real PostgreSQL servers on 127.0.0.1 (support/servers.hpp):
//  - the replication harness itself: a primary and two streaming replicas (pg_basebackup -R);
//  - routing: writes on the primary, reads on both replicas;
//  - a replica stopped under load, then both, then both back;
//  - replication lag: replay paused on one replica while a writer writes;
//  - balance: three equal nodes, one restarted under 64 threads, against a plain pool.
// Every wait is bounded; every server is stopped and its directory removed even on failure. The
// figures the README quotes (time to exclusion, time to balance, shares) are printed as WARN
// lines.
#include <respool/cluster_pool.hpp>
#include <respool/pool.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <set>
#include <sstream>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "backends/postgres.hpp"
#include "error_text.hpp"
#include "load.hpp"
#include "respool_catch.hpp"
#include "servers.hpp"

using namespace std::chrono_literals;
namespace pg = respool_examples::pg;
using respool::route;
using respool_it::steady;
using std::chrono::duration_cast;
using ms = std::chrono::milliseconds;

namespace {

// The factory: an endpoint's name is a libpq connection string.
struct endpoint_factory {
  auto operator()(const respool::endpoint& e) const -> pg::connection {
    return pg::factory{e.name}.create();
  }
};

using cluster = respool::cluster_pool<endpoint_factory, pg::validator, pg::resetter>;
using cluster_options = respool::cluster_pool_options<pg::connection>;
using pg_lease = respool::lease<pg::connection>;

auto since(steady::time_point from, steady::time_point to) -> long long {
  return duration_cast<ms>(to - from).count();
}

// The endpoint of a server: its connection string, tagged with the test's application name so
// that pg_stat_activity can tell the pool's connections from the test's own.
auto endpoint_name(const respool_it::postgres_server& s, const std::string& app) -> std::string {
  return s.conninfo("application_name=" + app + " connect_timeout=2");
}

auto replication_endpoints(const respool_it::postgres_replication& rep, const std::string& app)
    -> std::vector<respool::endpoint> {
  std::vector<respool::endpoint> eps{{endpoint_name(rep.primary(), app), respool::role::primary}};
  for (std::size_t i = 0; i < rep.replica_count(); ++i)
    eps.push_back({endpoint_name(rep.replica(i), app), respool::role::replica});
  return eps;
}

auto direct(const respool_it::postgres_server& s) -> pg::connection {
  return pg::factory{s.conninfo("application_name=respool_it_admin")}.create();
}

// Where a connection is: the server's port and whether it is a standby.
struct server_side {
  int port = 0;
  bool in_recovery = false;
};
auto where_is(pg::connection& c) -> server_side {
  auto r = c.exec("SELECT inet_server_port(), pg_is_in_recovery()");
  return {std::stoi(PQgetvalue(r.get(), 0, 0)), PQgetvalue(r.get(), 0, 1)[0] == 't'};
}

// The pool's connections on a server, by its own count (client backends with our name).
auto backends(pg::connection& admin, const std::string& app) -> long {
  return std::stol(admin.scalar(
      ("SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client backend' AND "
       "application_name = '" + app + "'").c_str()));
}

// The replica's lag: 0 when it has replayed all it received, else the age of the last
// transaction it replayed. NULLs (nothing received or replayed yet since it started) read as 0,
// and a commit replayed after this statement began as 0 rather than a negative lag.
constexpr const char* lag_sql =
    "SELECT GREATEST(0, COALESCE(CASE WHEN pg_last_wal_receive_lsn() = pg_last_wal_replay_lsn() "
    "THEN 0 ELSE (EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp()) * 1000)::bigint "
    "END, 0))";
auto replay_lag(pg::connection& c) -> ms { return ms(std::stoll(c.scalar(lag_sql))); }

// True if the server refuses a write on this connection as a standby does.
auto write_refused(pg::connection& c) -> bool {
  try {
    c.exec("CREATE TEMP TABLE refused (x int)");
    return false;
  } catch (const pg::error& e) {
    return respool_test::contains(e.what(), "read-only transaction");
  }
}

// ------------------------------------------------------------------ recorded load

// One operation of a worker: acquire on a route, then where_is() on the connection.
struct op {
  enum class outcome { ok, acquire_failed, op_failed };
  steady::time_point start, acquired, end;
  outcome result = outcome::ok;
  std::error_code ec;
  std::string message;
  server_side at;        // ok
  std::string endpoint;  // endpoint_of(lease): ok and op_failed
};

// `threads` workers acquire on `r` (non-throwing, `timeout`) and ask the server where they are,
// until stopped. A query that fails (a dead connection) is discarded, as an application would,
// and the worker goes on; after a failure it pauses 10 ms, after a success `think`.
class cluster_load {
 public:
  cluster_load(cluster& cp, route r, int threads, ms timeout, ms think = 1ms)
      : cp_(cp), route_(r), timeout_(timeout), think_(think), logs_(static_cast<std::size_t>(threads)) {
    for (int t = 0; t < threads; ++t)
      threads_.emplace_back([this, t] { work(logs_[static_cast<std::size_t>(t)]); });
  }
  cluster_load(const cluster_load&) = delete;
  auto operator=(const cluster_load&) -> cluster_load& = delete;
  ~cluster_load() { stop(); }

  void stop() {
    if (stopped_) return;
    stopped_ = true;
    stop_.store(true);
    respool_it::join_or_die(threads_, finished_, 30s, "cluster load");
  }

  // Every operation, by start time (after stop()).
  [[nodiscard]] auto records() const -> std::vector<op> {
    std::vector<op> all;
    for (const auto& l : logs_) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end(), [](const op& a, const op& b) { return a.start < b.start; });
    return all;
  }

 private:
  void work(std::vector<op>& log) {
    log.reserve(50000);
    for (int i = 0; i < 2'000'000 && !stop_.load(); ++i) {
      op o;
      o.start = steady::now();
      std::error_code ec;
      pg_lease l = cp_.acquire(route_, timeout_, ec);
      o.acquired = steady::now();
      if (!l) {
        o.result = op::outcome::acquire_failed;
        o.ec = ec;
        o.message = ec.message();
        o.end = o.acquired;
        log.push_back(std::move(o));
        std::this_thread::sleep_for(10ms);
        continue;
      }
      if (auto e = cp_.endpoint_of(l)) o.endpoint = e->name;
      try {
        o.at = where_is(*l);
      } catch (const std::exception& e) {
        o.result = op::outcome::op_failed;
        o.message = e.what();
        l.discard();
      }
      l = pg_lease{};  // back to the pool (or discarded) before the clock stops
      o.end = steady::now();
      const bool failed = o.result != op::outcome::ok;
      log.push_back(std::move(o));
      std::this_thread::sleep_for(failed ? 10ms : think_);
    }
    ++finished_;
  }

  cluster& cp_;
  route route_;
  ms timeout_;
  ms think_;
  std::vector<std::vector<op>> logs_;
  std::atomic<bool> stop_{false};
  std::atomic<int> finished_{0};
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

// What a window of operations did.
struct window_report {
  std::size_t total = 0, ok = 0, acquire_failed = 0, op_failed = 0;
  std::map<int, std::size_t> ok_by_port;
  std::size_t in_recovery = 0;  // ok ones on a standby
  std::size_t endpoint_mismatch = 0;  // endpoint_of() named another server than the query saw
  ms longest_acquire{0};
  std::string first_acquire_error, first_op_error;

  // Successful reads on the server at `port`.
  [[nodiscard]] auto on(int port) const -> std::size_t {
    const auto it = ok_by_port.find(port);
    return it == ok_by_port.end() ? 0 : it->second;
  }

  [[nodiscard]] auto text() const -> std::string {
    std::ostringstream s;
    s << total << " ops: ok " << ok << " (on a standby " << in_recovery << "), acquire failed "
      << acquire_failed << ", query failed " << op_failed << "; ok by port:";
    for (const auto& [port, n] : ok_by_port) s << " " << port << "=" << n;
    s << "; longest acquire " << longest_acquire.count() << " ms";
    if (!first_acquire_error.empty()) s << "; first acquire error: " << first_acquire_error;
    if (!first_op_error.empty()) s << "; first query error: " << first_op_error;
    return s.str();
  }
};

template <class Pred>
auto report(const std::vector<op>& records, Pred in_window) -> window_report {
  window_report w;
  for (const auto& o : records) {
    if (!in_window(o)) continue;
    ++w.total;
    w.longest_acquire = std::max(w.longest_acquire, duration_cast<ms>(o.acquired - o.start));
    switch (o.result) {
      case op::outcome::ok:
        ++w.ok;
        ++w.ok_by_port[o.at.port];
        if (o.at.in_recovery) ++w.in_recovery;
        if (o.endpoint.find("port=" + std::to_string(o.at.port) + " ") == std::string::npos)
          ++w.endpoint_mismatch;
        break;
      case op::outcome::acquire_failed:
        if (w.acquire_failed++ == 0) w.first_acquire_error = o.message;
        break;
      case op::outcome::op_failed:
        if (w.op_failed++ == 0) w.first_op_error = o.message;
        break;
    }
  }
  return w;
}

auto stats_text(const respool::cluster_stats& s) -> std::string {
  std::ostringstream o;
  o << "writes total " << s.writes.total << " reads total " << s.reads.total << ";";
  for (const auto& e : s.endpoints) {
    o << " [" << (e.role == respool::role::primary ? "primary" : "replica") << " "
      << e.name.substr(0, e.name.find(" user=")) << ": live " << e.live
      << (e.healthy ? "" : ", DOWN") << (e.lagging ? ", LAGGING" : "");
    if (e.replication_lag) o << ", lag " << e.replication_lag->count() << " ms";
    if (e.consecutive_failures != 0) o << ", " << e.consecutive_failures << " failures";
    if (!e.last_error.empty()) o << ", last error: " << e.last_error.substr(0, 120);
    o << "]";
  }
  return o.str();
}

// The endpoint called `name` in a snapshot (the test fails if there is none).
auto of(const respool::cluster_stats& s, const std::string& name) -> respool::endpoint_stats {
  auto e = s.find(name);
  if (!e) throw std::runtime_error("no endpoint " + name + " in the stats");
  return *e;
}
// ... in the stats now.
auto endpoint_stats_of(const cluster& cp, const std::string& name) -> respool::endpoint_stats {
  return of(cp.stats(), name);
}

}  // namespace

// ------------------------------------------------------------------ the harness

TEST_CASE("replication harness: a primary and two streaming replicas on ports of their own") {
  const auto t0 = steady::now();
  respool_it::postgres_replication rep;
  const auto started = since(t0, steady::now());
  auto& primary = rep.primary();
  REQUIRE(rep.replica_count() == 2);
  std::set<int> ports{primary.port(), rep.replica(0).port(), rep.replica(1).port()};
  CHECK(ports.size() == 3);

  CHECK(primary.query("SELECT pg_is_in_recovery()") == "f");
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(rep.replica(i).is_replica());
    CHECK(rep.replica(i).query("SELECT pg_is_in_recovery()") == "t");
    CHECK(rep.replica(i).query("SHOW port") == std::to_string(rep.replica(i).port()));
  }
  // Both stream from the primary.
  CHECK(respool_it::wait_until(
      [&] {
        return primary.query("SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'") ==
               "2";
      },
      10s, 50ms));

  primary.query("CREATE TABLE harness (id int PRIMARY KEY, v text)");
  primary.query("INSERT INTO harness SELECT g, 'row ' || g FROM generate_series(1, 100) g");
  const auto wrote = steady::now();
  REQUIRE(rep.wait_replicas_caught_up(10s));
  const auto replayed = since(wrote, steady::now());
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(rep.replica(i).query("SELECT count(*) FROM harness") == "100");
    // A standby refuses writes.
    try {
      (void)rep.replica(i).query("INSERT INTO harness VALUES (0, 'no')");
      FAIL_CHECK("a standby took a write");
    } catch (const std::exception& e) {
      CHECK(respool_test::contains(e.what(), "read-only transaction"));
    }
  }

  // A replica stopped, the primary written meanwhile, the replica started again on its own
  // port: it catches up.
  auto& r0 = rep.replica(0);
  const int r0_port = r0.port();
  r0.stop();
  CHECK_FALSE(r0.running());
  CHECK_FALSE(respool_it::port_accepts(r0_port));
  primary.query("INSERT INTO harness SELECT g, 'more' FROM generate_series(101, 150) g");
  r0.stop_fast();  // stopping a stopped server does nothing
  const auto restart = steady::now();
  r0.start();
  CHECK(r0.port() == r0_port);
  REQUIRE(r0.wait_replayed(primary, 10s));
  const auto caught_up = since(restart, steady::now());
  CHECK(r0.query("SELECT count(*) FROM harness") == "150");
  CHECK(r0.query("SELECT pg_is_in_recovery()") == "t");
  REQUIRE(rep.replica(1).wait_replayed(primary, 10s));
  CHECK(rep.replica(1).query("SELECT count(*) FROM harness") == "150");

  // A clean stop and start of the other.
  rep.replica(1).stop_fast();
  CHECK_FALSE(rep.replica(1).running());
  rep.replica(1).start();
  CHECK(rep.replica(1).query("SELECT count(*) FROM harness") == "150");

  WARN("replication harness: primary + 2 replicas up in " << started << " ms; 100 rows on both "
       "replicas " << replayed << " ms after the commit; a replica restarted and caught up in "
       << caught_up << " ms");
}

// ------------------------------------------------------------------ routing

TEST_CASE("cluster: writes land on the primary, reads on both replicas") {
  respool_it::postgres_replication rep;
  const std::string app = "respool_it_cluster_routes";
  const auto eps = replication_endpoints(rep, app);
  const int primary_port = rep.primary().port();
  const std::set<int> replica_ports{rep.replica(0).port(), rep.replica(1).port()};
  cluster cp{eps, endpoint_factory{},
             cluster_options{.write_pool = {.max_size = 4, .acquire_timeout = 5s},
                             .read_pool = {.max_size = 4, .acquire_timeout = 5s},
                             .name = "pg-routes"},
             pg::validator{}, pg::resetter{}};

  {  // Four writers at once: all on the primary.
    std::vector<pg_lease> writes;
    for (int i = 0; i < 4; ++i) writes.push_back(cp.acquire(route::write));
    for (auto& w : writes) {
      const auto at = where_is(*w);
      CHECK_FALSE(at.in_recovery);
      CHECK(at.port == primary_port);
      const auto e = cp.endpoint_of(w);
      REQUIRE(e.has_value());
      CHECK(e->role == respool::role::primary);
      CHECK(e->name == eps[0].name);
    }
    writes[0]->exec("CREATE TABLE routed (id int PRIMARY KEY)");
    writes[1]->exec("INSERT INTO routed SELECT generate_series(1, 3)");
  }
  {  // Four readers at once: all on standbys, two on each (new connections go where fewest are).
    std::vector<pg_lease> reads;
    for (int i = 0; i < 4; ++i) reads.push_back(cp.acquire(route::read));
    std::map<int, int> per_port;
    for (auto& r : reads) {
      const auto at = where_is(*r);
      CHECK(at.in_recovery);
      CHECK(replica_ports.count(at.port) == 1);
      ++per_port[at.port];
      const auto e = cp.endpoint_of(r);
      REQUIRE(e.has_value());
      CHECK(e->role == respool::role::replica);
      CHECK(e->name.find("port=" + std::to_string(at.port) + " ") != std::string::npos);
    }
    CHECK(per_port.size() == 2);
    for (const auto& [port, n] : per_port) CHECK(n == 2);
  }
  // What the writers committed, the readers see once the replicas replayed it.
  REQUIRE(rep.wait_replicas_caught_up(10s));
  // (One reader at a time reuses the connection it returned, on one replica: the spread is over
  // connections, made where fewest are, not over requests.)
  for (int i = 0; i < 20; ++i) {
    auto r = cp.acquire(route::read);
    CHECK(r->scalar("SELECT count(*) FROM routed") == "3");
    const auto at = where_is(*r);
    CHECK(at.in_recovery);
    CHECK(replica_ports.count(at.port) == 1);
  }
  {  // The other forms of acquire route the same way.
    auto idle_read = cp.try_acquire(route::read);
    REQUIRE(idle_read.has_value());
    CHECK(where_is(**idle_read).in_recovery);
    std::error_code ec;
    auto w = cp.acquire(route::write, 2s, ec);
    REQUIRE(w);
    CHECK_FALSE(ec);
    CHECK_FALSE(where_is(*w).in_recovery);
    CHECK_NOTHROW(w->exec("INSERT INTO routed VALUES (4)"));
    CHECK(write_refused(**idle_read));  // and a read lease cannot write
  }

  const auto s = cp.stats();
  INFO(stats_text(s));
  REQUIRE(s.endpoints.size() == 3);
  for (const auto& e : s.endpoints) {
    CHECK(e.healthy);
    CHECK_FALSE(e.lagging);
    CHECK(e.consecutive_failures == 0);
  }
  CHECK(of(s, eps[0].name).live == 4);
  CHECK(of(s, eps[1].name).live == 2);
  CHECK(of(s, eps[2].name).live == 2);
  CHECK(s.writes.total == 4);
  CHECK(s.reads.total == 4);

  // Closed: the servers see none of the pool's connections.
  cp.close();
  auto a0 = direct(rep.primary());
  auto a1 = direct(rep.replica(0));
  auto a2 = direct(rep.replica(1));
  CHECK(respool_it::wait_until([&] { return backends(a0, app) + backends(a1, app) + backends(a2, app) == 0; }, 5s));
}

// ------------------------------------------------------------------ replicas stopped

TEST_CASE("cluster: replicas stopped under load - reads move to the other, then to the primary, then back") {
  respool_it::postgres_replication rep;
  const std::string app = "respool_it_cluster_stop";
  const auto eps = replication_endpoints(rep, app);
  const int primary_port = rep.primary().port();
  const int r0_port = rep.replica(0).port();
  const int r1_port = rep.replica(1).port();
  constexpr auto acquire_timeout = 1000ms;
  cluster cp{eps, endpoint_factory{},
             cluster_options{.write_pool = {.max_size = 6, .acquire_timeout = acquire_timeout,
                                            .validate_after_idle = 0ms},
                             .read_pool = {.max_size = 4, .acquire_timeout = acquire_timeout,
                                           .validate_after_idle = 0ms},
                             .probe_backoff_min = 100ms,
                             .probe_backoff_max = 1s,
                             .name = "pg-stop"},
             pg::validator{.timeout = 1s}, pg::resetter{.timeout = 1s}};

  cluster_load load(cp, route::read, 8, acquire_timeout);
  std::this_thread::sleep_for(1s);

  // One replica stopped (-m immediate: its backends die at once, the clients' queries fail).
  const auto stop1 = steady::now();
  rep.replica(0).stop();
  const auto stop1_done = steady::now();
  const bool r0_down = respool_it::wait_until([&] { return !endpoint_stats_of(cp, eps[1].name).healthy; }, 5s);
  const auto r0_down_at = steady::now();
  const auto after_stop1 = cp.stats();
  std::this_thread::sleep_until(stop1 + 2500ms);

  // The other one too: reads go to the primary.
  const auto stop2 = steady::now();
  rep.replica(1).stop();
  const auto stop2_done = steady::now();
  const bool r1_down = respool_it::wait_until([&] { return !endpoint_stats_of(cp, eps[2].name).healthy; }, 5s);
  const auto after_stop2 = cp.stats();
  std::this_thread::sleep_until(stop2 + 2500ms);

  // Both back, on their ports.
  const auto restart = steady::now();
  rep.replica(0).start();
  rep.replica(1).start();
  const auto back = steady::now();
  const bool healthy_again = respool_it::wait_until(
      [&] {
        return endpoint_stats_of(cp, eps[1].name).healthy && endpoint_stats_of(cp, eps[2].name).healthy;
      },
      10s);
  const auto healthy_at = steady::now();
  std::this_thread::sleep_for(1500ms);
  load.stop();
  const auto end = steady::now();
  const auto final_stats = cp.stats();
  const auto records = load.records();

  INFO("after the first stop: " << stats_text(after_stop1));
  INFO("after the second stop: " << stats_text(after_stop2));
  INFO("at the end: " << stats_text(final_stats));
  INFO("ports: primary " << primary_port << ", replicas " << r0_port << " " << r1_port);

  // Before any stop: every read on a standby, both used.
  const auto before = report(records, [&](const op& o) { return o.end < stop1; });
  INFO("before: " << before.text());
  CHECK(before.ok == before.total);
  CHECK(before.ok > 100);
  CHECK(before.in_recovery == before.ok);
  CHECK(before.on(r0_port) > 0);
  CHECK(before.on(r1_port) > 0);
  CHECK(before.endpoint_mismatch == 0);

  // One replica stopped: no acquire fails at all; queries on its dead connections fail (and are
  // discarded); from acquire_timeout after the stop every read succeeds on the other replica.
  const auto one_down = report(records, [&](const op& o) { return o.start >= stop1 && o.end < stop2; });
  const auto one_down_settled = report(
      records, [&](const op& o) { return o.start >= stop1 + acquire_timeout && o.end < stop2; });
  INFO("one replica down: " << one_down.text());
  INFO("one replica down, settled: " << one_down_settled.text());
  CHECK(one_down.acquire_failed == 0);
  CHECK(one_down_settled.ok == one_down_settled.total);
  CHECK(one_down_settled.ok > 100);
  CHECK(one_down_settled.on(r1_port) == one_down_settled.ok);
  CHECK(one_down_settled.endpoint_mismatch == 0);
  CHECK(r0_down);
  const auto r0_after = of(after_stop1, eps[1].name);
  CHECK_FALSE(r0_after.healthy);
  CHECK(r0_after.consecutive_failures >= 3);
  CHECK_FALSE(r0_after.last_error.empty());
  CHECK(of(after_stop1, eps[2].name).healthy);

  // Both stopped: from acquire_timeout after the second stop no acquire fails and every read
  // is on the primary.
  const auto both_down = report(records, [&](const op& o) { return o.start >= stop2 && o.end < restart; });
  const auto both_down_settled = report(
      records, [&](const op& o) { return o.start >= stop2 + acquire_timeout && o.end < restart; });
  INFO("both replicas down: " << both_down.text());
  INFO("both replicas down, settled: " << both_down_settled.text());
  CHECK(both_down_settled.acquire_failed == 0);
  CHECK(both_down_settled.ok == both_down_settled.total);
  CHECK(both_down_settled.ok > 100);
  CHECK(both_down_settled.in_recovery == 0);
  CHECK(both_down_settled.on(primary_port) == both_down_settled.ok);
  CHECK(r1_down);
  CHECK_FALSE(of(after_stop2, eps[2].name).healthy);
  CHECK(of(after_stop2, eps[0].name).healthy);

  // Back: reads return to the replicas, both of them. `returned`: from then on every read is
  // on a standby.
  CHECK(healthy_again);
  steady::time_point returned = back;
  steady::time_point last_off_standby = restart;  // the first replica is up before `back`
  for (const auto& o : records) {
    const bool on_standby = o.result == op::outcome::ok && o.at.in_recovery;
    if (o.start >= back && !on_standby) returned = std::max(returned, o.end);
    if (o.start >= restart && !on_standby) last_off_standby = std::max(last_off_standby, o.end);
  }
  const auto after_back = report(records, [&](const op& o) { return o.start >= back; });
  const auto returned_report = report(records, [&](const op& o) { return o.start > returned; });
  INFO("after the restart: " << after_back.text());
  INFO("after the reads returned: " << returned_report.text());
  CHECK(after_back.acquire_failed == 0);
  CHECK(after_back.op_failed == 0);
  CHECK(since(back, returned) <= 4000);
  CHECK(returned_report.ok > 100);
  CHECK(returned_report.on(r0_port) > 0);
  CHECK(returned_report.on(r1_port) > 0);
  CHECK(of(final_stats, eps[1].name).healthy);
  CHECK(of(final_stats, eps[2].name).healthy);

  // Through it all, no acquire waited much past its timeout.
  const auto all = report(records, [](const op&) { return true; });
  INFO("all: " << all.text());
  CHECK(all.longest_acquire <= acquire_timeout + 500ms);

  WARN("replica stopped under load (8 readers, read pool 4, acquire_timeout 1 s): stop took "
       << since(stop1, stop1_done) << " ms, replica marked down " << since(stop1, r0_down_at)
       << " ms after the stop; with one down: " << one_down.text()
       << "\nboth stopped (stop took " << since(stop2, stop2_done) << " ms): " << both_down.text()
       << "\nrestart took " << since(restart, back) << " ms; both healthy "
       << since(back, healthy_at) << " ms after, every read on a standby " << since(back, returned)
       << " ms after (" << since(restart, last_off_standby)
       << " ms after the first start began); then " << returned_report.text() << "; run " << since(stop1, end)
       << " ms from the first stop");
}

// ------------------------------------------------------------------ replication lag

TEST_CASE("cluster: a replica whose replay is paused is excluded once it lags past the limit, and comes back") {
  respool_it::postgres_replication rep;
  const std::string app = "respool_it_cluster_lag";
  const auto eps = replication_endpoints(rep, app);
  const int r0_port = rep.replica(0).port();
  const int r1_port = rep.replica(1).port();
  constexpr auto max_lag = 500ms;
  rep.primary().query("CREATE TABLE lagged (id bigserial PRIMARY KEY, at timestamptz)");
  REQUIRE(rep.wait_replicas_caught_up(10s));

  cluster cp{eps, endpoint_factory{},
             cluster_options{.write_pool = {.max_size = 4, .acquire_timeout = 2s},
                             .read_pool = {.max_size = 4, .acquire_timeout = 2s},
                             .replication_lag = replay_lag,
                             .max_replica_lag = max_lag,
                             .lag_probe_interval = 100ms,
                             .name = "pg-lag"},
             pg::validator{}, pg::resetter{}};

  // A writer on the primary, through the cluster, every 10 ms.
  std::atomic<bool> stop_writing{false};
  std::atomic<int> written{0}, write_errors{0}, writes_on_standby{0};
  std::atomic<int> writer_done{0};
  std::string first_write_error;
  std::vector<std::thread> writer;
  writer.emplace_back([&] {
    for (int i = 0; i < 100'000 && !stop_writing.load(); ++i) {
      try {
        auto w = cp.acquire(route::write, 2s);
        if (where_is(*w).in_recovery) ++writes_on_standby;
        w->exec("INSERT INTO lagged (at) VALUES (clock_timestamp())");
        ++written;
      } catch (const std::exception& e) {
        if (write_errors++ == 0) first_write_error = e.what();
      }
      std::this_thread::sleep_for(10ms);
    }
    ++writer_done;
  });
  cluster_load load(cp, route::read, 4, 2s, 2ms);

  // Both replicas measured and in use.
  const bool measured = respool_it::wait_until(
      [&] {
        return endpoint_stats_of(cp, eps[1].name).replication_lag.has_value() &&
               endpoint_stats_of(cp, eps[2].name).replication_lag.has_value();
      },
      5s);
  std::this_thread::sleep_for(1s);
  const auto before_pause = cp.stats();

  auto r0 = direct(rep.replica(0));
  const auto pause = steady::now();
  r0.exec("SELECT pg_wal_replay_pause()");
  const bool excluded = respool_it::wait_until([&] { return endpoint_stats_of(cp, eps[1].name).lagging; }, 5s);
  const auto excluded_seen = steady::now();
  const auto at_exclusion = cp.stats();
  const auto paused_state = r0.scalar("SELECT pg_get_wal_replay_pause_state()");
  std::this_thread::sleep_for(1500ms);
  const auto while_excluded = cp.stats();

  const auto resume = steady::now();
  r0.exec("SELECT pg_wal_replay_resume()");
  const bool caught_up = respool_it::wait_until([&] { return !endpoint_stats_of(cp, eps[1].name).lagging; }, 5s);
  const auto caught_up_seen = steady::now();
  std::this_thread::sleep_for(1500ms);
  load.stop();
  stop_writing.store(true);
  respool_it::join_or_die(writer, writer_done, 10s, "writer");
  const auto end_stats = cp.stats();
  const auto records = load.records();

  INFO("before the pause: " << stats_text(before_pause));
  INFO("at the exclusion: " << stats_text(at_exclusion));
  INFO("while excluded: " << stats_text(while_excluded));
  INFO("at the end: " << stats_text(end_stats));
  INFO("first write error: " << first_write_error);
  CHECK(measured);
  CHECK(write_errors.load() == 0);
  CHECK(writes_on_standby.load() == 0);
  CHECK(written.load() > 100);

  // Before the pause: both replicas read from, neither lagging.
  const auto before = report(records, [&](const op& o) { return o.end < pause; });
  INFO("before the pause: " << before.text());
  CHECK(before.ok == before.total);
  CHECK(before.on(r0_port) > 0);
  CHECK(before.on(r1_port) > 0);
  for (const auto* name : {&eps[1].name, &eps[2].name}) {
    const auto e = of(before_pause, *name);
    CHECK_FALSE(e.lagging);
    REQUIRE(e.replication_lag.has_value());
    CHECK(*e.replication_lag < max_lag);
  }

  // Paused: excluded within a bounded time, with its lag past the limit in the stats.
  CHECK(paused_state == "paused");
  REQUIRE(excluded);
  CHECK(since(pause, excluded_seen) <= 3000);
  const auto lagging = of(at_exclusion, eps[1].name);
  CHECK(lagging.lagging);
  REQUIRE(lagging.replication_lag.has_value());
  CHECK(*lagging.replication_lag > max_lag);
  CHECK(lagging.healthy);  // lagging, not down
  CHECK(of(while_excluded, eps[1].name).lagging);
  CHECK(*of(while_excluded, eps[1].name).replication_lag > *lagging.replication_lag);
  CHECK_FALSE(of(while_excluded, eps[2].name).lagging);

  // No read acquired once it is excluded lands on it (100 ms for the eviction of its idle
  // connections, which follows the lag reading on the probe thread).
  const auto excluded_window = report(records, [&](const op& o) {
    return o.acquired >= excluded_seen + 100ms && o.acquired < resume;
  });
  INFO("while excluded: " << excluded_window.text());
  CHECK(excluded_window.ok > 100);
  CHECK(excluded_window.ok == excluded_window.total);
  CHECK(excluded_window.on(r0_port) == 0);
  CHECK(excluded_window.on(r1_port) == excluded_window.ok);
  CHECK(excluded_window.endpoint_mismatch == 0);

  // Resumed: it catches up, is taken back, and gets reads again.
  REQUIRE(caught_up);
  CHECK(since(resume, caught_up_seen) <= 3000);
  steady::time_point first_read_back{};
  for (const auto& o : records)
    if (o.acquired >= resume && o.result == op::outcome::ok && o.at.port == r0_port) {
      first_read_back = o.acquired;
      break;
    }
  const bool reads_back = first_read_back != steady::time_point{};
  CHECK(reads_back);
  if (reads_back) CHECK(since(resume, first_read_back) <= 3000);
  const auto after_resume = report(records, [&](const op& o) { return o.acquired >= caught_up_seen + 500ms; });
  INFO("after the resume: " << after_resume.text());
  CHECK(after_resume.ok == after_resume.total);
  CHECK(after_resume.on(r0_port) > 0);
  CHECK(after_resume.on(r1_port) > 0);
  CHECK_FALSE(of(end_stats, eps[1].name).lagging);

  const auto all = report(records, [](const op&) { return true; });
  INFO("all: " << all.text());
  CHECK(all.acquire_failed == 0);
  CHECK(all.op_failed == 0);
  CHECK(all.in_recovery == all.ok);  // no read needed the primary

  // Everything written reached the paused replica once resumed.
  REQUIRE(rep.replica(0).wait_replayed(rep.primary(), 10s));
  CHECK(rep.replica(0).query("SELECT count(*) FROM lagged") == rep.primary().query("SELECT count(*) FROM lagged"));

  WARN("replication lag (limit " << max_lag.count() << " ms, probe every 100 ms, a write every 10 ms): "
       "replica excluded " << since(pause, excluded_seen) << " ms after pg_wal_replay_pause() with "
       << lagging.replication_lag->count() << " ms lag; while excluded " << excluded_window.text()
       << "; taken back " << since(resume, caught_up_seen) << " ms after pg_wal_replay_resume(), first read on it "
       << (reads_back ? since(resume, first_read_back) : -1) << " ms after; " << written.load() << " rows written");
}

// ------------------------------------------------------------------ balance

namespace {

// A plain pool's factory over the same servers: round-robin, trying the next server when one
// does not answer (as a client library's host list does).
struct round_robin_factory {
  std::vector<std::string> conninfos;
  std::shared_ptr<std::atomic<unsigned>> next = std::make_shared<std::atomic<unsigned>>(0);

  [[nodiscard]] auto create() const -> pg::connection {
    const auto n = static_cast<unsigned>(conninfos.size());
    const unsigned first = next->fetch_add(1);
    std::string errors;
    for (unsigned k = 0; k < n; ++k) {
      try {
        return pg::factory{conninfos[(first + k) % n]}.create();
      } catch (const pg::error& e) {
        errors += std::string(errors.empty() ? "" : "; ") + e.what();
      }
    }
    throw pg::error(errors);
  }
};
using plain_pool = respool::pool<round_robin_factory, pg::validator, pg::resetter>;

// 64 threads of short queries (3 ms each, 1 ms apart: more demand than 30 connections serve)
// through `acquire`, a broken connection discarded; the third server restarted under them
// (stop -m immediate, 1 s down, start on its port); the servers' own counts of the pool's
// connections sampled every 20 ms from the stop until `enough(run)` or `observe` after the
// server is back, and the pool's own count (`pool_total`, idle + in use + being made) every
// millisecond from the restart on, for its lowest point.
struct balance_run {
  std::array<long, 3> before{};  // just before the restart
  struct sample {
    long long after_ms;  // since the restarted server was back (negative: while it was down)
    std::array<long, 3> counts;
  };
  std::vector<sample> samples;
  long long restart_ms = 0;   // stop, 1 s down, start
  long lowest_pool_total = 0;  // after the server was back
  long highest_pool_total = 0;  // the pool's own count (idle + in use + creating), from the restart
  int ok = 0, acquire_failed = 0, query_failed = 0;

  // The restarted server's count at `t` ms after it was back (the last sample at or before).
  [[nodiscard]] auto restarted_at(long long t) const -> long {
    long v = 0;
    for (const auto& s : samples)
      if (s.after_ms >= 0 && s.after_ms <= t) v = s.counts[2];
    return v;
  }
  // When the restarted server first held `n` connections (-1: never).
  [[nodiscard]] auto first_reaching(long n) const -> long long {
    for (const auto& s : samples)
      if (s.after_ms >= 0 && s.counts[2] >= n) return s.after_ms;
    return -1;
  }
  [[nodiscard]] auto text() const -> std::string {
    std::ostringstream o;
    o << "before the restart " << before[0] << "/" << before[1] << "/" << before[2] << "; restart "
      << restart_ms << " ms; servers' counts (ms after it was back: a/b/restarted):";
    std::size_t shown = 0;
    std::array<long, 3> last{-1, -1, -1};
    for (const auto& s : samples) {  // the changes, the first 16
      if (s.counts == last || shown == 16) continue;
      last = s.counts;
      ++shown;
      o << " " << s.after_ms << ":" << s.counts[0] << "/" << s.counts[1] << "/" << s.counts[2];
    }
    if (!samples.empty())
      o << " ... " << samples.back().after_ms << ":" << samples.back().counts[0] << "/"
        << samples.back().counts[1] << "/" << samples.back().counts[2];
    o << "; lowest pool total after it was back " << lowest_pool_total << ", highest "
      << highest_pool_total << "; ops ok " << ok
      << ", acquire failed " << acquire_failed << ", query failed " << query_failed;
    return o.str();
  }
};

template <class Acquire, class Enough, class PoolTotal>
auto run_balance(std::array<respool_it::postgres_server*, 3> servers, const std::string& app,
                 std::size_t max_size, Acquire acquire, ms observe, Enough enough,
                 PoolTotal pool_total) -> balance_run {
  balance_run run;
  std::array<std::optional<pg::connection>, 3> admin;
  for (std::size_t i = 0; i < 3; ++i) admin[i].emplace(direct(*servers[i]));
  auto counts = [&](bool third_up) {
    return std::array<long, 3>{backends(*admin[0], app), backends(*admin[1], app),
                               third_up ? backends(*admin[2], app) : 0};
  };

  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, acquire_failed{0}, query_failed{0}, finished{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 64; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 1'000'000 && !stop.load(); ++i) {
        std::error_code ec;
        pg_lease l = acquire(ec);
        if (!l) {
          ++acquire_failed;
          std::this_thread::sleep_for(10ms);
          continue;
        }
        try {
          l->exec("SELECT pg_sleep(0.003)");
          ++ok;
        } catch (const std::exception&) {
          ++query_failed;
          l.discard();
        }
        l = pg_lease{};
        std::this_thread::sleep_for(1ms);
      }
      ++finished;
    });
  }
  // Filled and settled.
  respool_it::wait_until(
      [&] {
        const auto c = counts(true);
        return c[0] + c[1] + c[2] >= static_cast<long>(max_size);
      },
      10s, 50ms);
  std::this_thread::sleep_for(500ms);
  run.before = counts(true);

  const auto restart = steady::now();
  servers[2]->stop();
  std::vector<std::pair<steady::time_point, std::array<long, 3>>> down;
  while (steady::now() - restart < 1s) {
    down.emplace_back(steady::now(), counts(false));
    std::this_thread::sleep_for(20ms);
  }
  std::optional<respool_it::max_sampler> shortfall;
  respool_it::max_sampler highest([&] { return static_cast<long>(pool_total()); }, 1ms);
  servers[2]->start();
  const auto back = steady::now();
  shortfall.emplace([&] { return static_cast<long>(max_size) - static_cast<long>(pool_total()); }, 1ms);
  run.restart_ms = since(restart, back);
  for (const auto& [t, c] : down) run.samples.push_back({-since(t, back), c});
  admin[2].emplace(direct(*servers[2]));
  for (;;) {
    const auto now = steady::now();
    run.samples.push_back({since(back, now), counts(true)});
    if (now - back >= observe || enough(run)) break;
    std::this_thread::sleep_for(20ms);
  }
  shortfall->stop();
  highest.stop();
  run.lowest_pool_total = static_cast<long>(max_size) - shortfall->max();
  run.highest_pool_total = highest.max();
  stop.store(true);
  respool_it::join_or_die(threads, finished, 30s, "balance");
  run.ok = ok.load();
  run.acquire_failed = acquire_failed.load();
  run.query_failed = query_failed.load();
  return run;
}

}  // namespace

TEST_CASE("cluster balance: three equal nodes, one restarted under 64 threads, gets its share back - a plain pool leaves it empty") {
  const respool_it::postgres_server::options small{.shared_buffers = "16MB"};
  respool_it::postgres_server a{small}, b{small}, c{small};
  const std::array<respool_it::postgres_server*, 3> servers{&a, &b, &c};
  constexpr std::size_t total = 30;
  constexpr long fair = total / 3;
  constexpr long wanted = fair * 8 / 10;  // 80% of the fair share
  constexpr auto bound = 10s;
  const respool::pool_options sizing{.max_size = total, .acquire_timeout = 2s,
                                     .max_lifetime = 30min, .validate_after_idle = 0ms};
  const pg::validator socket_check{.round_trip = false, .timeout = 1s};
  const pg::resetter rollback{.mode = pg::session_reset::rollback_only, .timeout = 1s};

  // The cluster: three primaries of equal weight, probes at their default backoff.
  const std::string app = "respool_it_balance";
  std::vector<respool::endpoint> eps;
  for (auto* s : servers) eps.push_back({endpoint_name(*s, app), respool::role::primary, 1});
  balance_run clustered;
  respool::cluster_stats cluster_end;
  {
    auto o = sizing;
    o.name = "pg-balance[write]";
    cluster cp{eps, endpoint_factory{}, cluster_options{.write_pool = o, .name = "pg-balance"},
               socket_check, rollback};
    clustered = run_balance(
        servers, app, total, [&](std::error_code& ec) { return cp.acquire(route::write, 2s, ec); },
        bound,
        [&](const balance_run& r) {  // 500 ms past the first sample at 80%: whether it stays
          const auto t = r.first_reaching(wanted);
          return t >= 0 && r.samples.back().after_ms >= t + 500;
        },
        [&] { return cp.stats().writes.total; });
    cluster_end = cp.stats();
  }
  const auto balanced_after = clustered.first_reaching(wanted);
  INFO("cluster: " << clustered.text());
  INFO("cluster stats at the end: " << stats_text(cluster_end));
  for (long n : clustered.before) CHECK(n >= wanted);  // balanced before the restart too
  REQUIRE(balanced_after >= 0);  // within `bound` of the server being back
  CHECK(balanced_after <= duration_cast<ms>(bound).count());
  CHECK(clustered.samples.back().counts[2] >= wanted);  // and it stays
  // Never more than the total (+1: a probe's connection): the pool's own count throughout, and
  // the servers' except in the first 500 ms after the restart, while the backends of the
  // connections moved off the other two are still exiting (seen once under CI load: 39 on the
  // servers 198 ms after, the pool at 30).
  CHECK(clustered.highest_pool_total <= static_cast<long>(total) + 1);
  for (const auto& s : clustered.samples)
    if (s.after_ms < 0 || s.after_ms >= 500)
      CHECK(s.counts[0] + s.counts[1] + s.counts[2] <= static_cast<long>(total) + 1);
  CHECK(cluster_end.writes.destroyed(respool::destroy_reason::rebalanced) > 0);
  // Targeted: about the surplus moves (10; a few more as the load shifts), and at most
  // create_concurrency (2) wait for a successor at a time, so the pool stays nearly full.
  CHECK(cluster_end.writes.destroyed(respool::destroy_reason::rebalanced) <= 16);
  CHECK(clustered.lowest_pool_total >= static_cast<long>(total) - 4);
  CHECK(clustered.ok > 1000);

  // The plain pool, same servers, same load: a round-robin factory and lifetime recycling.
  const std::string plain_app = "respool_it_balance_plain";
  std::vector<std::string> conninfos;
  for (auto* s : servers) conninfos.push_back(endpoint_name(*s, plain_app));
  balance_run plain;
  {
    auto o = sizing;
    o.name = "pg-balance-plain";
    plain_pool p{round_robin_factory{conninfos}, o, socket_check, rollback};
    plain = run_balance(
        servers, plain_app, total, [&](std::error_code& ec) { return p.acquire(2s, ec); },
        ms(std::max<long long>(balanced_after + 500, 3000)), [](const balance_run&) { return false; },
        [&] { return p.stats().total; });
  }
  const long plain_share = plain.restarted_at(balanced_after);
  const long cluster_share = clustered.restarted_at(balanced_after);
  INFO("plain pool: " << plain.text());
  CHECK(cluster_share >= wanted);
  CHECK(cluster_share > plain_share);
  CHECK(plain.ok > 1000);

  WARN("balance (3 equal nodes, 64 threads, 30 connections, fair share 10): the cluster_pool's "
       "restarted node held " << cluster_share << " connections " << balanced_after
       << " ms after it was back (the first sample at >= " << wanted << "), "
       << clustered.samples.back().counts[2] << " at " << clustered.samples.back().after_ms
       << " ms; " << cluster_end.writes.destroyed(respool::destroy_reason::rebalanced)
       << " connections moved (destroy_reason::rebalanced); the pool's total fell to "
       << clustered.lowest_pool_total << " of 30 meanwhile. A plain pool (round-robin factory, "
          "max_lifetime 30 min) held "
       << plain_share << " there at the same point and " << plain.samples.back().counts[2]
       << " after " << plain.samples.back().after_ms << " ms\ncluster: " << clustered.text()
       << "\nplain pool: " << plain.text());
}
