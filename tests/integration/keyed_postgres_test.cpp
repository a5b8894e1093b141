// Lanes over one PostgreSQL: a respool::keyed_pool with a long lane (max_size 4) and a short
// lane (max_size 8, acquire_timeout 500 ms) under max_total 10. A flood of long transactions
// never pushes the short lane's p99 past its own timeout, and the server never sees more than 4
// long or 10 in all. One shared pool of 10 under the same load is shown for contrast.
#include <respool/keyed_pool.hpp>
#include <respool/pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
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

struct latencies {
  std::mutex m;
  std::vector<double> ms;
  void add(double v) {
    std::lock_guard lk(m);
    ms.push_back(v);
  }
  auto p99() -> double {
    std::lock_guard lk(m);
    if (ms.empty()) return 0;
    std::sort(ms.begin(), ms.end());
    return ms[std::min(ms.size() - 1, static_cast<std::size_t>(0.99 * static_cast<double>(ms.size())))];
  }
};

struct load_result {
  double short_p99_ms = 0;
  long short_ok = 0;
  long short_failed = 0;
  long long_ok = 0;
};

// 16 threads of long transactions and 4 of short queries for 3 s; `take(lane)` acquires.
template <class Take>
auto run_lanes(Take take) -> load_result {
  latencies lat;
  std::atomic<long> short_ok{0}, short_failed{0}, long_ok{0};
  const auto until = steady::now() + 3s;
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; ++t)
    threads.emplace_back([&] {
      while (steady::now() < until) {
        try {
          auto c = take("long", 5s);
          c->exec("BEGIN");
          c->exec("SELECT pg_sleep(0.2)");
          c->exec("COMMIT");
          ++long_ok;
        } catch (...) {  // the long lane may time out under its own flood: not measured
        }
      }
    });
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&] {
      while (steady::now() < until) {
        const auto t0 = steady::now();
        try {
          auto c = take("short", 500ms);
          (void)c->scalar("SELECT 1");
          ++short_ok;
        } catch (...) {
          ++short_failed;
        }
        lat.add(std::chrono::duration<double, std::milli>(steady::now() - t0).count());
        std::this_thread::sleep_for(2ms);
      }
    });
  for (auto& t : threads) t.join();
  return {lat.p99(), short_ok.load(), short_failed.load(), long_ok.load()};
}

}  // namespace

TEST_CASE("keyed lanes keep short p99 under its timeout") {
  respool_it::postgres_server server;
  // One admin connection per sampler thread (a libpq connection is not for two threads).
  auto admin_long = pg::factory{server.conninfo("application_name=respool_it_admin")}.create();
  auto admin_all = pg::factory{server.conninfo("application_name=respool_it_admin")}.create();
  auto count = [](pg::connection& admin, const std::string& where) {
    return std::stol(admin.scalar(("SELECT count(*) FROM pg_stat_activity WHERE " + where).c_str()));
  };
  load_result lanes;
  long peak_long = 0;
  long peak_all = 0;
  {
    respool::keyed_pool db{
        [&](const std::string& lane) {  // each lane's connections named after it on the server
          return pg::factory{server.conninfo("application_name=respool_it_lane_" + lane)}.create();
        },
        respool::keyed_pool_options<std::string>{
            .options_for =
                [](const std::string& lane) {
                  return lane == "long" ? respool::pool_options{.max_size = 4, .acquire_timeout = 5s}
                                        : respool::pool_options{.max_size = 8,
                                                                .acquire_timeout = 500ms};
                },
            .max_total = 10},
        pg::validator{}, pg::resetter{.mode = pg::session_reset::rollback_only}};
    respool_it::max_sampler longs(
        [&] { return count(admin_long, "application_name = 'respool_it_lane_long'"); }, 10ms);
    respool_it::max_sampler all(
        [&] { return count(admin_all, "application_name LIKE 'respool_it_lane_%'"); }, 10ms);
    lanes = run_lanes([&](const std::string& lane, auto timeout) { return db.acquire(lane, timeout); });
    longs.stop();
    all.stop();
    peak_long = longs.max();
    peak_all = all.max();
    CHECK(longs.errors() == 0);
    CHECK(all.errors() == 0);
  }
  INFO("short p99 " << lanes.short_p99_ms << " ms, short ok " << lanes.short_ok << ", failed "
                    << lanes.short_failed << ", long ok " << lanes.long_ok);
  CHECK(lanes.short_failed == 0);
  CHECK(lanes.short_ok > 100);
  CHECK(lanes.long_ok > 20);  // the flood was real: 4 connections x 0.2 s x 3 s is at most 60
  CHECK(lanes.short_p99_ms < 500.0);
  CHECK(peak_long <= 4);
  CHECK(peak_long >= 3);
  CHECK(peak_all <= 10);

  // Contrast (reported, not asserted): one pool of 10 for both kinds of work.
  load_result shared;
  {
    respool::pool<pg::factory, pg::validator, pg::resetter> one{
        pg::factory{server.conninfo("application_name=respool_it_shared")},
        respool::pool_options{.max_size = 10, .acquire_timeout = 5s}, pg::validator{},
        pg::resetter{.mode = pg::session_reset::rollback_only}};
    shared = run_lanes([&](const std::string&, auto timeout) { return one.acquire(timeout); });
  }
  WARN("lanes over one PostgreSQL (16 threads of 0.2 s transactions, 4 of short queries, 3 s): "
       "keyed_pool with a long lane of 4 and a short lane of 8 under max_total 10: short p99 "
       << lanes.short_p99_ms << " ms, " << lanes.short_failed << " short failures, the server saw "
       << peak_long << " long and " << peak_all << " in all at most; one shared pool of 10: short p99 "
       << shared.short_p99_ms << " ms, " << shared.short_failed << " short failures (timeout 500 ms)");
}
