// pool_options::adaptive: the pool lends at most `limit` resources at once and moves the limit
// between adaptive.min_limit and max_size by what it measures. The backend here is simulated
// on a manual clock: a test thread holds `limit` leases at once, the clock moves by how long a
// backend serving that many at once takes, and run_maintenance() runs the rule. No sleeping.
#include <respool/pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::manual_clock;
using respool_test::test_factory;

namespace {

using adaptive_pool =
    respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock>;

// How long one lease takes when the backend serves `k` at once.
using backend_model = std::function<std::chrono::nanoseconds(std::size_t k)>;

// Throughput (k / hold) rises linearly to a peak at `peak` leases at once, then falls: past it
// every lease waits its turn (hold grows with k) and the backend loses 3% a lease to contention.
auto peaked_backend(std::size_t peak, std::chrono::nanoseconds base) -> backend_model {
  return [peak, base](std::size_t k) {
    const double over = k > peak ? static_cast<double>(k - peak) : 0.0;
    const double queued = std::max(1.0, static_cast<double>(k) / static_cast<double>(peak));
    return std::chrono::nanoseconds(
        static_cast<std::int64_t>(static_cast<double>(base.count()) * queued * (1.0 + 0.03 * over)));
  };
}

struct recorded_events {
  std::mutex m;
  std::vector<respool::pool_event> changes;
  std::vector<std::string> texts;
  std::size_t resized = 0;
  auto handler() {
    return [this](const respool::pool_event& e) {
      std::lock_guard lk(m);
      if (e.kind == respool::event_kind::limit_changed) {
        changes.push_back(e);
        texts.emplace_back(e.message);
      }
      if (e.kind == respool::event_kind::destroyed && e.reason == respool::destroy_reason::resized)
        ++resized;
    };
  }
};

auto options(std::size_t max_size, respool::adaptive_options a, recorded_events* ev = nullptr)
    -> respool::pool_options {
  respool::pool_options o{.max_size = max_size,
                          .idle_timeout = 0ms,
                          .max_lifetime = 0ms,
                          .validate_after_idle = respool::pool_options::never,
                          .housekeeping_interval = 0ms,
                          .adaptive = a,
                          .name = "adaptive"};
  if (ev != nullptr) o.on_event = ev->handler();
  return o;
}

// One pass of the simulation: callers want `demand` leases at once (all they can get, up to
// the limit); they hold them for as long as the backend takes with that many, return them, and
// again, until `span` has passed on the clock; then the pool's housekeeping runs. Returns how
// many leases completed.
auto run_for(adaptive_pool& p, const backend_model& backend, std::chrono::nanoseconds span,
             std::size_t demand) -> std::size_t {
  std::size_t completed = 0;
  std::chrono::nanoseconds elapsed{0};
  while (elapsed < span) {
    const auto limit = p.stats().limit;
    std::vector<adaptive_pool::lease_type> held;
    for (std::size_t i = 0; i < std::min(limit, demand); ++i) held.push_back(p.acquire(5s));
    if (demand > limit) REQUIRE_FALSE(p.try_acquire().has_value());  // lends at most `limit`
    const auto hold = backend(held.size());
    manual_clock::advance(hold);
    elapsed += hold;
    completed += held.size();
  }
  p.run_maintenance();
  return completed;
}

}  // namespace

TEST_CASE("adaptive: invalid options name the field") {
  auto bad = [](respool::adaptive_options a) {
    return respool_test::error_of(respool::pool_options{.max_size = 8, .adaptive = a});
  };
  CHECK_THAT(bad({.min_limit = 0}), Catch::Matchers::Contains("adaptive.min_limit"));
  CHECK_THAT(bad({.min_limit = 9}), Catch::Matchers::Contains("adaptive.min_limit"));
  CHECK_THAT(bad({.min_limit = 4, .initial_limit = 2}),
             Catch::Matchers::Contains("adaptive.initial_limit"));
  CHECK_THAT(bad({.initial_limit = 9}), Catch::Matchers::Contains("adaptive.initial_limit"));
  CHECK_THAT(bad({.window = 0ms}), Catch::Matchers::Contains("adaptive.window"));
  CHECK_THROWS_AS(adaptive_pool(test_factory{}, respool::pool_options{.max_size = 4,
                                                                      .adaptive = respool::adaptive_options{.min_limit = 5}}),
                  std::invalid_argument);
}

TEST_CASE("adaptive: the limit is max_size without it, and with it the start and no more") {
  manual_clock::reset();
  adaptive_pool fixed{test_factory{}, respool::pool_options{.max_size = 6, .housekeeping_interval = 0ms}};
  CHECK(fixed.stats().limit == 6);

  test_factory f;
  adaptive_pool p{f, options(16, {.min_limit = 2, .initial_limit = 3})};
  CHECK(p.stats().limit == 3);
  CHECK(p.stats().max_size == 16);
  auto a = p.acquire(5s);
  auto b = p.acquire(5s);
  auto c = p.acquire(5s);
  CHECK_FALSE(p.try_acquire().has_value());  // max_size 16, but the limit is 3
  CHECK(f.c->made.load() == 3);
  try {
    (void)p.acquire(0ms);
    FAIL("acquire(0ms) past the limit succeeded");
  } catch (const respool::error& e) {
    CHECK_THAT(std::string(e.what()), Catch::Matchers::Contains("adaptive limit 3"));
  }
}

TEST_CASE("adaptive: a backend whose throughput peaks at 8 gets a limit of 8 to 10") {
  manual_clock::reset();
  recorded_events ev;
  adaptive_pool p{test_factory{}, options(128, {}, &ev)};
  const auto backend = peaked_backend(8, 1ms);
  CHECK(p.stats().limit == 1);
  std::vector<std::size_t> limits;
  for (int pass = 0; pass < 300; ++pass) {  // 30 s of the pool's clock, 100 ms a pass
    run_for(p, backend, 100ms, 1'000);
    limits.push_back(p.stats().limit);
  }
  std::string trace;
  for (auto l : limits) trace += std::to_string(l) + " ";
  INFO("limit after each pass: " << trace);
  // Settled within 2 s: from then on one limit near the peak, left only for a probe of the
  // baseline (half of it, for two passes: the probe's window and the one after a change).
  const auto last = limits.back();
  CHECK(last >= 8);
  CHECK(last <= 10);
  std::size_t probes = 0;
  for (std::size_t i = 20; i < limits.size(); ++i) {
    if (limits[i] == last / 2 && limits[i - 1] == last) ++probes;
    CHECK((limits[i] == last || limits[i] == last / 2));
  }
  CHECK(probes >= 1);
  CHECK(probes <= 3);
  // Within 10% of the peak's throughput there.
  const double at_peak = 8.0 / static_cast<double>(backend(8).count());
  const double there = static_cast<double>(last) / static_cast<double>(backend(last).count());
  CHECK(there >= 0.90 * at_peak);
  // Every change was reported, in order, each from the limit before it.
  std::lock_guard lk(ev.m);
  REQUIRE_FALSE(ev.changes.empty());
  std::size_t before = 1;
  for (const auto& e : ev.changes) {
    CHECK(e.previous_limit == before);
    CHECK(e.limit != e.previous_limit);
    before = e.limit;
  }
  CHECK(before == last);
  CHECK_THAT(ev.texts.front(), Catch::Matchers::Contains("adaptive limit 1 -> 2"));
}

TEST_CASE("adaptive: a backend that starts to queue earlier brings the limit down, surplus closed") {
  manual_clock::reset();
  recorded_events ev;
  test_factory f;
  adaptive_pool p{f, options(64, {}, &ev)};
  for (int pass = 0; pass < 60; ++pass) run_for(p, peaked_backend(16, 1ms), 100ms, 1'000);
  const auto high = p.stats().limit;
  REQUIRE(high >= 16);
  for (int pass = 0; pass < 60; ++pass) run_for(p, peaked_backend(4, 1ms), 100ms, 1'000);
  const auto low = p.stats().limit;
  CHECK(low >= 4);
  CHECK(low <= 8);
  const auto st = p.stats();
  CHECK(st.total <= low);  // what is over the limit is retired, not kept idle
  CHECK(st.destroyed_by[static_cast<std::size_t>(respool::destroy_reason::resized)] >= high - low);
  CHECK(f.c->live.load() == static_cast<int>(st.total));
}

TEST_CASE("adaptive: callers that never want more than the limit do not raise it") {
  manual_clock::reset();
  adaptive_pool p{test_factory{}, options(64, {.initial_limit = 4})};
  for (int pass = 0; pass < 50; ++pass) run_for(p, peaked_backend(32, 1ms), 100ms, 3);
  CHECK(p.stats().limit == 4);
}

TEST_CASE("adaptive: the limit stays between min_limit and max_size, also after set_max_size") {
  manual_clock::reset();
  adaptive_pool p{test_factory{}, options(12, {.min_limit = 3})};
  CHECK(p.stats().limit == 3);
  for (int pass = 0; pass < 40; ++pass) run_for(p, peaked_backend(100, 1ms), 100ms, 1'000);
  CHECK(p.stats().limit == 12);  // the backend has room: up to max_size, no further
  p.set_max_size(5);
  CHECK(p.stats().limit == 5);
  for (int pass = 0; pass < 40; ++pass) run_for(p, peaked_backend(1, 1ms), 100ms, 1'000);
  CHECK(p.stats().limit == 3);  // a backend serving one at a time: down to min_limit, no further
}

TEST_CASE("adaptive: threads racing the limit's changes never share a resource or leak one") {
  // A backend whose leases take longer the more run at once, on the real clock: 8 threads, the
  // rule judging every 10 ms, so the limit moves (and the gate retires surplus) while they run.
  test_factory f;
  recorded_events ev;
  respool::pool_options o{.max_size = 16,
                          .acquire_timeout = 5s,
                          .housekeeping_interval = 5ms,
                          .adaptive = respool::adaptive_options{.window = 10ms},
                          .name = "adaptive-race",
                          .on_event = ev.handler()};
  respool::pool<test_factory> p{f, o};
  std::atomic<int> at_once{0};
  std::atomic<int> most{0};
  std::atomic<bool> shared{false};
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      while (!stop.load()) {
        auto l = p.acquire();
        // A resource lent twice would see its session marked by the other holder.
        if (l->session_state != 0) shared.store(true);
        l->session_state = 1;
        const int n = ++at_once;
        int seen = most.load();
        while (n > seen && !most.compare_exchange_weak(seen, n)) {
        }
        std::this_thread::sleep_for(std::chrono::microseconds(100 * std::max(1, n - 2)));
        --at_once;
        l->session_state = 0;
      }
    });
  }
  std::this_thread::sleep_for(1s);
  stop.store(true);
  for (auto& t : threads) t.join();
  CHECK_FALSE(shared.load());
  CHECK(most.load() <= 16);
  {
    std::lock_guard lk(ev.m);
    CHECK_FALSE(ev.changes.empty());
  }
  // At rest, what is over the limit is retired, and every resource is accounted for.
  CHECK(respool_test::eventually([&] {
    const auto st = p.stats();
    return st.total <= st.limit && f.c->live.load() == static_cast<int>(st.total);
  }));
}
