// respool::cluster_pool over stub endpoints (a "farm" whose servers can refuse connects, lag or
// break connections): routing by role, read fallback, balance by weight, rebalancing after a
// recovery without exceeding max_size, endpoints taken out after failures and probed back, lag
// exclusion, set_endpoints() (scale-out, drain, role change), errors naming every endpoint,
// invalid input, close(). The probe thread is off (housekeeping_interval 0): each test drives
// it with run_maintenance().
#include <respool/cluster_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool::endpoint;
using respool::role;
using respool::route;
using respool_test::contains;
using respool_test::eventually;

namespace {

// The servers: which refuse connects, how far each lags, which break their connections.
struct farm {
  std::mutex m;
  std::map<std::string, int> live;  // connections open to each
  std::map<std::string, bool> down;
  std::map<std::string, bool> broken;  // its connections fail validation
  std::map<std::string, std::chrono::milliseconds> lag;
  int total = 0;
  int peak = 0;

  auto live_of(const std::string& n) -> int {
    std::lock_guard lk(m);
    return live[n];
  }
  void set_down(const std::string& n, bool d) {
    std::lock_guard lk(m);
    down[n] = d;
  }
  void set_lag(const std::string& n, std::chrono::milliseconds l) {
    std::lock_guard lk(m);
    lag[n] = l;
  }
  void set_broken(const std::string& n, bool b) {
    std::lock_guard lk(m);
    broken[n] = b;
  }
};

struct conn {
  std::shared_ptr<farm> f;
  std::string at;
  conn(std::shared_ptr<farm> fm, std::string name) : f(std::move(fm)), at(std::move(name)) {
    std::lock_guard lk(f->m);
    ++f->live[at];
    f->peak = std::max(f->peak, ++f->total);
  }
  conn(conn&& o) noexcept : f(std::move(o.f)), at(std::move(o.at)) {}
  conn& operator=(conn&&) = delete;
  ~conn() {
    if (!f) return;
    std::lock_guard lk(f->m);
    --f->live[at];
    --f->total;
  }
};

auto connector(const std::shared_ptr<farm>& f) {
  return [f](const endpoint& e) {
    {
      std::lock_guard lk(f->m);
      if (f->down[e.name]) throw std::runtime_error("connection refused by " + e.name);
    }
    return conn{f, e.name};
  };
}

struct farm_validator {
  auto validate(conn& c) const -> bool {
    std::lock_guard lk(c.f->m);
    return !c.f->broken[c.at];
  }
};

using options = respool::cluster_pool_options<conn>;

auto manual(options o = {}) -> options {
  o.housekeeping_interval = 0ms;  // run_maintenance() drives probes and lag checks
  o.probe_backoff_min = 1ms;
  o.probe_backoff_max = 2ms;
  return o;
}

auto primaries(std::initializer_list<const char*> names) -> std::vector<endpoint> {
  std::vector<endpoint> out;
  for (const char* n : names) out.push_back({.name = n});
  return out;
}

// Probes are due 1-2 ms after a failure: wait that out, then one pass.
template <class P>
void probe_now(P& p) {
  std::this_thread::sleep_for(3ms);
  p.run_maintenance();
}

template <class P>
auto leases(P& p, route r, int n) -> std::deque<respool::lease<conn>> {
  std::deque<respool::lease<conn>> out;
  for (int i = 0; i < n; ++i) out.push_back(p.acquire(r, 1s));
  return out;
}

}  // namespace

TEST_CASE("writes go to the primary, reads to the replicas, and endpoint_of says which") {
  auto f = std::make_shared<farm>();
  respool::cluster_pool p{std::vector<endpoint>{{.name = "p"},
                                                {.name = "r1", .role = role::replica},
                                                {.name = "r2", .role = role::replica}},
                          connector(f), manual()};
  auto w = p.acquire(route::write);
  CHECK(w->at == "p");
  CHECK(p.endpoint_of(w)->name == "p");
  CHECK(p.endpoint_of(w)->role == role::primary);
  auto reads = leases(p, route::read, 6);
  for (auto& r : reads) {
    CHECK(r->at != "p");
    CHECK(p.endpoint_of(r)->name == r->at);
  }
  CHECK(f->live_of("r1") == 3);  // spread evenly over equal replicas
  CHECK(f->live_of("r2") == 3);
  CHECK_FALSE(p.endpoint_of(respool::lease<conn>{}).has_value());
  const auto s = p.stats();
  CHECK(s.writes.in_use == 1);
  CHECK(s.reads.in_use == 6);
  REQUIRE(s.find("r1").has_value());
  CHECK(s.find("r1")->live == 3);
  CHECK(s.find("r1")->healthy);
}

TEST_CASE("new connections go to the endpoint with the fewest for its weight") {
  auto f = std::make_shared<farm>();
  respool::cluster_pool p{std::vector<endpoint>{{.name = "a", .weight = 1},
                                                {.name = "b", .weight = 2},
                                                {.name = "c", .weight = 3}},
                          connector(f), manual({.write_pool = {.max_size = 30}})};
  auto held = leases(p, route::write, 30);
  CHECK(f->live_of("a") == 5);
  CHECK(f->live_of("b") == 10);
  CHECK(f->live_of("c") == 15);
}

TEST_CASE("reads fall back to the primary when no replica can serve, unless told not to") {
  auto f = std::make_shared<farm>();
  SECTION("no replica configured") {
    respool::cluster_pool p{primaries({"p"}), connector(f), manual()};
    CHECK(p.acquire(route::read)->at == "p");
    CHECK(p.try_acquire(route::read).has_value());
  }
  SECTION("every replica refuses connections") {
    respool::cluster_pool p{std::vector<endpoint>{{.name = "p"}, {.name = "r", .role = role::replica}},
                            connector(f), manual()};
    f->set_down("r", true);
    const auto t0 = std::chrono::steady_clock::now();
    auto l = p.acquire(route::read, 2s);
    CHECK(l->at == "p");
    CHECK(std::chrono::steady_clock::now() - t0 < 1s);  // failed over, did not wait it out
    CHECK_FALSE(p.stats().find("r")->healthy);
    CHECK(p.acquire(route::read, 1s)->at == "p");  // now straight to the primary
  }
  SECTION("reads_fall_back_to_primary = false: an error naming the replicas") {
    options o = manual();
    o.reads_fall_back_to_primary = false;
    respool::cluster_pool p{std::vector<endpoint>{{.name = "p"}, {.name = "r", .role = role::replica}},
                            connector(f), o};
    f->set_down("r", true);
    try {
      (void)p.acquire(route::read, 500ms);
      FAIL("a read was served with every replica down and no fallback");
    } catch (const respool::error& e) {
      CHECK((e.code() == respool::errc::create_failed ||
             e.code() == respool::errc::backend_unavailable));
      CHECK(contains(e.what(), "replicas: r: "));
      CHECK(contains(e.what(), "connection refused by r"));
    }
    std::error_code ec;
    CHECK_FALSE(p.acquire(route::read, 100ms, ec));
    CHECK(ec);
  }
}

TEST_CASE("a connect that fails tries the next endpoint - an endpoint failing in a row is taken out") {
  auto f = std::make_shared<farm>();
  respool::cluster_pool p{primaries({"a", "b"}), connector(f), manual({.write_pool = {.max_size = 8}})};
  f->set_down("a", true);
  auto held = leases(p, route::write, 6);  // every one served, by b
  CHECK(f->live_of("b") == 6);
  const auto a = *p.stats().find("a");
  CHECK_FALSE(a.healthy);
  CHECK(a.consecutive_failures >= 3);
  CHECK(contains(a.last_error, "connection refused by a"));
  CHECK(p.stats().writes.create_failures == 0);  // the pool never saw a failure

  SECTION("probed with backoff until it answers, then it gets the next connections") {
    probe_now(p);
    CHECK_FALSE(p.stats().find("a")->healthy);  // still refusing
    f->set_down("a", false);
    CHECK(eventually([&] {
      probe_now(p);
      return p.stats().find("a")->healthy;
    }, 2s));
    auto more = leases(p, route::write, 2);
    CHECK(f->live_of("a") == 2);
  }
  SECTION("nothing can serve: the error names every endpoint and its last error") {
    f->set_down("b", true);
    held.clear();
    p.evict_all();
    try {
      auto l = leases(p, route::write, 1);
      FAIL("served with every primary down");
    } catch (const respool::error& e) {
      CHECK(contains(e.what(), "primaries: a: down"));
      CHECK(contains(e.what(), "connection refused by a"));
      CHECK(contains(e.what(), "b: "));
      CHECK(contains(e.what(), "connection refused by b"));
    }
  }
}

TEST_CASE("an endpoint whose connections fail validation or are discarded is taken out, its idle connections closed") {
  auto f = std::make_shared<farm>();
  options o = manual({.write_pool = {.max_size = 8, .validate_after_idle = 0ms}});
  // a's connects work: a probe due during the test's run_maintenance() calls would bring it
  // back (as it should) before the last check, which a slow build (ASan) made happen.
  o.probe_backoff_min = 60s;
  o.probe_backoff_max = 60s;
  respool::cluster_pool p{primaries({"a", "b"}), connector(f), o, farm_validator{}};
  { auto held = leases(p, route::write, 8); }  // 4 + 4, all idle now
  REQUIRE(f->live_of("a") == 4);
  SECTION("validation") {
    f->set_broken("a", true);
    // Borrowing meets a's broken connections (a fresh successor is lent unvalidated, and
    // validated at its next borrow); the third failure in a row takes a out, and from then
    // on the successors go to b.
    CHECK(eventually([&] {
      auto held = leases(p, route::write, 8);
      p.run_maintenance();  // carries out the eviction
      return !p.stats().find("a")->healthy &&
             std::all_of(held.begin(), held.end(), [](auto& l) { return l->at == "b"; });
    }, 2s));
    CHECK(eventually([&] { return f->live_of("a") == 0; }, 2s));
    CHECK(p.stats().find("a")->consecutive_failures >= 3);
    CHECK(contains(p.stats().find("a")->last_error, "failed validation"));
  }
  SECTION("discard") {
    auto held = leases(p, route::write, 8);
    int discarded = 0;
    for (auto& l : held)
      if (l->at == "a" && discarded < 3) {
        l.discard();
        ++discarded;
      }
    // The discarded are destroyed in the background, each counting as a failure then (a
    // lease returned as usual meanwhile would end the run: wait for them first).
    CHECK(eventually([&] { return !p.stats().find("a")->healthy; }, 2s));
    held.clear();
    CHECK(eventually([&] {
      p.run_maintenance();
      return f->live_of("a") == 0;
    }, 2s));  // the fourth, returned as usual, closed by the eviction
    CHECK(p.stats().find("b")->healthy);
    for (auto& l : leases(p, route::write, 8)) CHECK(l->at == "b");
  }
}

TEST_CASE("after a node comes back empty, returns move connections to it until the shares are even, never above max_size") {
  auto f = std::make_shared<farm>();
  respool::cluster_pool p{primaries({"a", "b", "c"}), connector(f),
                          manual({.write_pool = {.max_size = 30}})};
  f->set_down("c", true);
  auto held = leases(p, route::write, 30);
  CHECK(f->live_of("a") == 15);
  CHECK(f->live_of("b") == 15);
  f->set_down("c", false);
  probe_now(p);
  REQUIRE(p.stats().find("c")->healthy);
  {
    std::lock_guard lk(f->m);
    f->peak = f->total;  // the probe's own connection came and went: from here on
  }
  // The load goes on: each caller returns its lease and takes another.
  for (int i = 0; i < 120; ++i) {
    held.pop_front();
    held.push_back(p.acquire(route::write, 1s));
  }
  CHECK(f->live_of("a") == 10);
  CHECK(f->live_of("b") == 10);
  CHECK(f->live_of("c") == 10);
  CHECK(f->peak <= 30);
  const auto moved = p.stats().writes.destroyed(respool::destroy_reason::rebalanced);
  CHECK(moved == 10);  // 5 from a and 5 from b, and then no more
  for (int i = 0; i < 60; ++i) {
    held.pop_front();
    held.push_back(p.acquire(route::write, 1s));
  }
  CHECK(p.stats().writes.destroyed(respool::destroy_reason::rebalanced) == moved);  // settled
}

TEST_CASE("the share rule never moves a connection onto an endpoint above its share") {
  // detail::endpoint_set alone: random weights, random returns; every move lands below
  // fair + 1, and with no change from outside the moves stop.
  std::mt19937 rng(7);
  for (int round = 0; round < 20; ++round) {
    std::vector<endpoint> eps;
    const int n = 2 + round % 4;
    for (int i = 0; i < n; ++i) {
      // Not "e" + to_string(i): GCC 12 at -O3 warns on it (stringop-overflow, a false positive).
      std::string name = "e";
      name += std::to_string(i);
      eps.push_back({.name = name, .weight = 1 + static_cast<unsigned>(rng() % 4)});
    }
    const int total = 5 + static_cast<int>(rng() % 40);
    respool::detail::endpoint_set skewed({});
    skewed.assign(eps);
    std::vector<std::uint32_t> layout;
    for (int i = 0; i < total; ++i) {
      std::vector<std::uint32_t> others;
      for (std::uint32_t id = 1; id < static_cast<std::uint32_t>(n); ++id) others.push_back(id);
      layout.push_back(skewed.pick(0, others)->id);  // all on endpoint 0
    }
    int moves = 0;
    int quiet = 0;
    for (int step = 0; step < 2000 && quiet < 4 * total; ++step) {
      const auto k = rng() % layout.size();
      const auto id = layout[k];
      if (!skewed.move_on_return(id)) {
        ++quiet;
        continue;
      }
      quiet = 0;
      ++moves;
      skewed.destroyed(id, respool::destroy_reason::rebalanced, 0);
      const auto to = skewed.pick(0, {})->id;
      layout[k] = to;
      CHECK_FALSE(skewed.over_share(to));
    }
    CHECK(quiet >= 4 * total);  // converged
    // Even: every endpoint within one connection of its weighted share.
    unsigned weights = 0;
    for (const auto& e : eps) weights += e.weight;
    for (std::uint32_t id = 0; id < static_cast<std::uint32_t>(n); ++id) {
      const double fair = static_cast<double>(total) * eps[id].weight / weights;
      const auto mine = static_cast<double>(std::count(layout.begin(), layout.end(), id));
      CHECK(mine < fair + 1.0);
    }
    if (n > 1 && total > 4) CHECK(moves > 0);
  }
}

TEST_CASE("a replica that lags past max_replica_lag gets no reads until it catches up") {
  auto f = std::make_shared<farm>();
  options o = manual({.read_pool = {.max_size = 4}});
  o.lag_probe_interval = 1ms;  // each pass below checks (after a 2 ms sleep)
  o.replication_lag = [](conn& c) {
    std::lock_guard lk(c.f->m);
    return c.f->lag[c.at];
  };
  o.max_replica_lag = 100ms;
  respool::cluster_pool p{std::vector<endpoint>{{.name = "p"},
                                                {.name = "r1", .role = role::replica},
                                                {.name = "r2", .role = role::replica}},
                          connector(f), o};
  p.run_maintenance();  // first lag check: a probe connection to each replica
  CHECK(f->live_of("r1") == 1);
  { auto reads = leases(p, route::read, 4); }  // two each, idle now
  REQUIRE(f->live_of("r1") == 3);
  REQUIRE(p.stats().find("r1")->replication_lag == 0ms);

  f->set_lag("r1", 500ms);
  std::this_thread::sleep_for(2ms);
  p.run_maintenance();
  auto r1 = *p.stats().find("r1");
  CHECK(r1.lagging);
  CHECK(r1.replication_lag == 500ms);
  CHECK(f->live_of("r1") == 1);  // its idle read connections closed; the probe's stays
  auto reads = leases(p, route::read, 4);
  for (auto& r : reads) CHECK(r->at == "r2");

  f->set_lag("r1", 20ms);
  std::this_thread::sleep_for(2ms);
  p.run_maintenance();
  CHECK_FALSE(p.stats().find("r1")->lagging);
  reads.clear();
  auto again = leases(p, route::read, 4);
  CHECK(std::any_of(again.begin(), again.end(), [](auto& l) { return l->at == "r1"; }));
}

TEST_CASE("a lag probe that throws counts as a failure of the replica") {
  auto f = std::make_shared<farm>();
  options o = manual();
  o.failures_to_exclude = 2;
  o.lag_probe_interval = 1ms;
  o.replication_lag = [](conn& c) -> std::chrono::milliseconds {
    throw std::runtime_error("lag query failed on " + c.at);
  };
  respool::cluster_pool p{std::vector<endpoint>{{.name = "p"}, {.name = "r", .role = role::replica}},
                          connector(f), o};
  p.run_maintenance();
  CHECK(p.stats().find("r")->healthy);  // one failure
  std::this_thread::sleep_for(2ms);      // lag_probe_interval
  p.run_maintenance();
  const auto r = *p.stats().find("r");
  CHECK_FALSE(r.healthy);
  CHECK(contains(r.last_error, "lag query failed on r"));
  CHECK(p.acquire(route::read)->at == "p");
}

TEST_CASE("set_endpoints: a new endpoint gets the next connections, a removed one drains") {
  auto f = std::make_shared<farm>();
  respool::cluster_pool p{primaries({"a", "b"}), connector(f), manual({.write_pool = {.max_size = 8}})};
  auto held = leases(p, route::write, 4);  // 2 + 2
  { auto idle = leases(p, route::write, 2); }  // 1 + 1 idle
  REQUIRE(f->live_of("b") == 3);

  p.set_endpoints(primaries({"a", "c"}));
  CHECK(f->live_of("b") == 2);  // the idle one closed at once, the leased ones still valid
  auto b = p.stats().find("b");
  REQUIRE(b.has_value());
  CHECK(b->removed);
  CHECK(b->live == 2);
  for (auto& l : held) CHECK_FALSE(l->at.empty());
  held.clear();  // b's come back and are closed (in the background)
  CHECK(eventually([&] { return f->live_of("b") == 0 && !p.stats().find("b").has_value(); }, 2s));
  CHECK(p.endpoints() == primaries({"a", "c"}));
  auto more = leases(p, route::write, 6);
  CHECK(f->live_of("c") >= 3);
  for (auto& l : more) CHECK(l->at != "b");

  SECTION("a role change is a removal plus an addition") {
    more.clear();
    p.set_endpoints({{.name = "a"}, {.name = "c", .role = role::replica}});
    CHECK(p.acquire(route::read)->at == "c");
    CHECK(p.acquire(route::write)->at == "a");
    CHECK(p.stats().find("c")->role == role::replica);
  }
  SECTION("invalid lists are refused and change nothing") {
    auto refused = [&](std::vector<endpoint> eps) -> std::string {
      try {
        p.set_endpoints(std::move(eps));
      } catch (const std::invalid_argument& e) {
        return e.what();
      }
      return "";
    };
    CHECK(contains(refused({}), "must not be empty"));
    CHECK(contains(refused(primaries({"a", "a"})), "endpoints[1].name 'a' is used twice"));
    CHECK(contains(refused({{.name = "a", .weight = 0}}), "endpoints[0].weight"));
    CHECK(p.endpoints() == primaries({"a", "c"}));
  }
}

TEST_CASE("invalid cluster options name the field") {
  auto f = std::make_shared<farm>();
  auto error_of = [&](options o) -> std::string {
    try {
      respool::cluster_pool p{primaries({"a"}), connector(f), o};
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return "";
  };
  CHECK(contains(error_of({.failures_to_exclude = 0}), "failures_to_exclude"));
  CHECK(contains(error_of({.probe_backoff_min = 0ms}), "probe_backoff_min"));
  CHECK(contains(error_of({.probe_backoff_min = 50ms, .probe_backoff_max = 10ms}), "probe_backoff_max"));
  CHECK(contains(error_of({.lag_probe_interval = 0ms}), "lag_probe_interval"));
  CHECK(contains(error_of({.read_pool = {.max_size = 0}}), "read_pool: respool pool_options"));
  CHECK(contains(error_of({.read_pool = {.max_size = 0}}), "max_size"));
  CHECK(contains(error_of({.name = ""}), "name"));
  CHECK(error_of({}).empty());
}

TEST_CASE("close(): acquires fail with closed, a lease out stays valid, and the probe thread stops") {
  auto f = std::make_shared<farm>();
  options o;  // with the probe thread
  o.probe_backoff_min = 1ms;
  respool::cluster_pool p{std::vector<endpoint>{{.name = "p"}, {.name = "r", .role = role::replica}},
                          connector(f), o};
  auto l = p.acquire(route::read);
  f->set_down("p", true);
  std::error_code down_ec;
  (void)p.acquire(route::write, 100ms, down_ec);
  CHECK(down_ec);
  p.close();
  CHECK(l->at == "r");
  std::error_code ec;
  CHECK_FALSE(p.acquire(route::write, 10ms, ec));
  CHECK(ec == respool::errc::closed);
  CHECK_THROWS_AS(p.acquire(route::read), respool::error);
  l.return_to_pool();
  CHECK(f->live_of("r") == 0);
  p.close();  // idempotent
}

TEST_CASE("the probe thread takes an endpoint out and brings it back on its own") {
  auto f = std::make_shared<farm>();
  options o{.write_pool = {.max_size = 4}};
  o.probe_backoff_min = 5ms;
  o.probe_backoff_max = 20ms;
  o.housekeeping_interval = 5ms;
  respool::cluster_pool p{primaries({"a", "b"}), connector(f), o};
  f->set_down("a", true);
  auto held = leases(p, route::write, 4);
  CHECK(f->live_of("b") == 4);
  CHECK_FALSE(p.stats().find("a")->healthy);
  f->set_down("a", false);
  CHECK(eventually([&] { return p.stats().find("a")->healthy; }, 5s));
}

TEST_CASE("returns faster than successors: at most move_limit moves in flight, and no more moves than the surplus") {
  // The dip a restart caused when the share was taken of the shrinking live total: 64 threads
  // returning while successors were still connecting closed 22-30 connections of 30 for a
  // surplus of 10. Moves are counted at once, and at most move_limit wait for a successor.
  respool::detail::endpoint_set set({.move_limit = {2, 2}});
  set.assign(primaries({"a", "b", "c"}));
  std::vector<std::uint32_t> layout;
  for (int i = 0; i < 30; ++i) layout.push_back(set.pick(0, {2})->id);  // 15 / 15, c empty
  int moves = 0;
  for (int i = 0; i < 30; ++i) moves += set.move_on_return(layout[static_cast<std::size_t>(i)]) ? 1 : 0;
  CHECK(moves == 2);  // no successor picked yet: the rest wait
  // Successors come (each a pick), returns go on: 10 moves in all, then none.
  for (int i = 0; i < moves; ++i) CHECK(set.pick(0, {})->id == 2);
  for (int round = 0; round < 20; ++round)
    for (auto id : layout)
      if (set.move_on_return(id)) {
        ++moves;
        CHECK(set.pick(0, {})->id == 2);
      }
  CHECK(moves == 10);
  const auto snap = set.snapshot();
  for (const auto& e : snap) CHECK(e.live == 10);
  SECTION("moves no caller needed a successor for are settled, and rebalancing goes on") {
    respool::detail::endpoint_set s2({.move_limit = {1, 1}});
    s2.assign(primaries({"a", "b"}));
    for (int i = 0; i < 4; ++i) (void)s2.pick(0, {1});  // 4 on a
    CHECK(s2.move_on_return(0));
    CHECK_FALSE(s2.move_on_return(0));  // the limit
    s2.settle_moves(0);
    CHECK(s2.move_on_return(0));
  }
}
