// Stress test for respool::cluster_pool: 6 threads reading and writing through a cluster of 2
// primaries and 3 replicas while a chaos thread takes endpoints down and up (connects refused),
// makes a replica lag, discards and evicts, and swaps the endpoint list (scale-out, removal, a
// role change). The probe thread runs every 2 ms. It checks:
//
// - never more live connections of a route than its max_size, plus one per endpoint for the
//   probe thread's own (a probe, or a replica's lag connection), counted by the connection's
//   constructor and destructor;
// - no connection held by two leases at once; a write lease is to an endpoint that was a
//   primary when its connection was made;
// - every acquire ends with a connection or an acceptable error in bounded time;
// - after close() and the leases' return, nothing is live but what a probe still holds, and
//   once the cluster is destroyed, nothing.
//
// Worker threads never call Catch2's assertion macros (Catch2 2 is not thread-safe): they count
// violations; the test thread checks them after joining. Size: RESPOOL_STRESS_CYCLES (acquire
// attempts over all threads), 200,000 by default (about a second under TSan on 2 cores).
#include <respool/cluster_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool::endpoint;
using respool::role;
using respool::route;

namespace {

constexpr int write_max = 4;
constexpr int read_max = 5;
constexpr int endpoints_max = 6;  // probe connections: at most one per endpoint at a time

struct world {
  std::atomic<int> live_primary{0};
  std::atomic<int> live_replica{0};
  std::atomic<int> over{0};
  std::mutex m;
  std::set<std::string> down;
  std::atomic<int> lag_ms{0};
};

struct conn {
  std::shared_ptr<world> w;
  role made_as;
  std::unique_ptr<std::atomic<bool>> held = std::make_unique<std::atomic<bool>>(false);
  conn(std::shared_ptr<world> wd, role r) : w(std::move(wd)), made_as(r) {
    auto& n = r == role::primary ? w->live_primary : w->live_replica;
    const int limit = (r == role::primary ? write_max : read_max) + endpoints_max;
    if (++n > limit) ++w->over;
  }
  conn(conn&& o) noexcept = default;
  conn& operator=(conn&&) = delete;
  ~conn() {
    if (!w) return;
    --(made_as == role::primary ? w->live_primary : w->live_replica);
  }
};

auto cycles() -> int {
  if (const char* s = std::getenv("RESPOOL_STRESS_CYCLES")) return std::max(1000, std::atoi(s));
  return 200'000;
}

}  // namespace

TEST_CASE("cluster_pool under load and chaos: limits kept, leases exclusive, routes right, nothing left") {
  auto w = std::make_shared<world>();
  auto factory = [w](const endpoint& e) {
    {
      std::lock_guard lk(w->m);
      if (w->down.count(e.name) != 0) throw std::runtime_error("refused by " + e.name);
    }
    return conn{w, e.role};
  };
  respool::cluster_pool_options<conn> o;
  o.write_pool = {.max_size = write_max, .acquire_timeout = 200ms, .validate_after_idle = 0ms,
                  .housekeeping_interval = 5ms};
  o.read_pool = {.max_size = read_max, .acquire_timeout = 200ms, .housekeeping_interval = 5ms};
  o.probe_backoff_min = 1ms;
  o.probe_backoff_max = 5ms;
  o.housekeeping_interval = 2ms;
  o.lag_probe_interval = 2ms;
  o.max_replica_lag = 50ms;
  o.replication_lag = [w](conn&) { return std::chrono::milliseconds(w->lag_ms.load()); };
  const std::vector<endpoint> first{{.name = "p1"},
                                    {.name = "p2"},
                                    {.name = "r1", .role = role::replica},
                                    {.name = "r2", .role = role::replica, .weight = 2},
                                    {.name = "r3", .role = role::replica}};
  std::atomic<int> shared_use{0}, wrong_route{0}, bad_errors{0}, slow{0}, served{0};
  {
    respool::cluster_pool cp{first, factory, o};
    std::atomic<int> left{cycles()};
    std::atomic<bool> done{false};
    std::vector<std::thread> workers;
    for (int t = 0; t < 6; ++t) {
      workers.emplace_back([&, t] {
        std::mt19937 rng(static_cast<unsigned>(t));
        while (left.fetch_sub(1) > 0) {
          const route r = rng() % 2 == 0 ? route::read : route::write;
          std::error_code ec;
          const auto t0 = std::chrono::steady_clock::now();
          auto l = cp.acquire(r, 100ms, ec);
          if (std::chrono::steady_clock::now() - t0 > 2s) ++slow;
          if (!l) {
            if (ec != respool::errc::timeout && ec != respool::errc::create_failed &&
                ec != respool::errc::backend_unavailable)
              ++bad_errors;
            continue;
          }
          ++served;
          if (l->held->exchange(true)) ++shared_use;
          if (r == route::write && l->made_as != role::primary) ++wrong_route;
          if (rng() % 8 == 0) std::this_thread::yield();
          l->held->store(false);
          if (rng() % 50 == 0) l.discard();
        }
      });
    }
    std::thread chaos([&] {
      std::mt19937 rng(99);
      const std::vector<std::string> names{"p1", "p2", "r1", "r2", "r3", "r4"};
      while (!done.load()) {
        switch (rng() % 6) {
          case 0: {
            std::lock_guard lk(w->m);
            w->down.insert(names[rng() % names.size()]);
            break;
          }
          case 1: {
            std::lock_guard lk(w->m);
            w->down.clear();
            break;
          }
          case 2: w->lag_ms.store(rng() % 2 == 0 ? 0 : 100); break;
          case 3: cp.evict_all(); break;
          case 4:
            cp.set_endpoints({{.name = "p1"},
                              {.name = "r1", .role = role::primary},  // promoted
                              {.name = "r2", .role = role::replica},
                              {.name = "r4", .role = role::replica, .weight = 3}});
            break;
          default: cp.set_endpoints(first); break;
        }
        (void)cp.stats();
        std::this_thread::sleep_for(1ms);
      }
    });
    for (auto& t : workers) t.join();
    done = true;
    chaos.join();
    {
      std::lock_guard lk(w->m);
      w->down.clear();
    }
    cp.close();
    CHECK(w->live_primary.load() + w->live_replica.load() <= endpoints_max);  // probe-held only
  }
  CHECK(w->over.load() == 0);
  CHECK(shared_use.load() == 0);
  CHECK(wrong_route.load() == 0);
  CHECK(bad_errors.load() == 0);
  CHECK(slow.load() == 0);
  CHECK(served.load() > cycles() / 4);
  // The probe thread may still hold a connection for a moment after the cluster is gone.
  CHECK(respool_test::eventually(
      [&] { return w->live_primary.load() == 0 && w->live_replica.load() == 0; }, 5s));
}
