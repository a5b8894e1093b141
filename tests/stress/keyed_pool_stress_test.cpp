// Stress test for respool::keyed_pool: 6 threads over 5 keys under max_total 4 (each key's own
// limit 3), with short timeouts, discarded leases, evict(key) and evict_all() under load, and a
// 2 ms housekeeper retiring keys unused for 10 ms while callers come back to them. It checks:
//
// - never more than max_total live resources across keys (counted by the resource's own
//   constructor and destructor, so one inside the factory counts too);
// - no resource held by two leases at once, and every lease is of the key asked for;
// - every acquire ends with a resource or an acceptable error (timeout, exhausted) in bounded time;
// - after close() nothing is live.
// (stats() is not checked against max_total: it sums the keys' snapshots, taken one after
// another, so a resource closed in one key and made in another may be counted twice.)
//
// Worker threads never call Catch2's assertion macros (Catch2 2 is not thread-safe): they count
// violations, and the test thread checks them after joining. Size: RESPOOL_STRESS_CYCLES
// (acquire attempts over all threads), 30,000 by default (a few seconds under TSan on 2 cores).
#include <respool/keyed_pool.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "respool_catch.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int max_total = 4;

struct tally {
  std::atomic<int> live{0};
  std::atomic<int> peak{0};
  std::atomic<int> over{0};  // times live went above max_total
};

struct conn {
  std::shared_ptr<tally> t;
  int key = 0;
  std::unique_ptr<std::atomic<bool>> held = std::make_unique<std::atomic<bool>>(false);
  conn(std::shared_ptr<tally> tl, int k) : t(std::move(tl)), key(k) {
    const int now = ++t->live;
    if (now > max_total) ++t->over;
    int p = t->peak.load();
    while (now > p && !t->peak.compare_exchange_weak(p, now)) {
    }
  }
  conn(conn&& o) noexcept = default;
  conn& operator=(conn&&) = delete;
  ~conn() {
    if (t) --t->live;
  }
};

auto cycles() -> std::uint64_t {
  if (const char* v = std::getenv("RESPOOL_STRESS_CYCLES")) return std::strtoull(v, nullptr, 10);
  return 30'000;
}

}  // namespace

TEST_CASE("keyed_pool under load: max_total never exceeded, leases exclusive, empty after close",
          "[keyed][stress]") {
  auto t = std::make_shared<tally>();
  respool::keyed_pool p{[t](const int& k) { return conn(t, k); },
                        respool::keyed_pool_options<int>{
                            .key_options = {.max_size = 3, .acquire_timeout = 50ms,
                                            .fairness_window = 200us},
                            .max_total = max_total,
                            .key_idle_timeout = 10ms,
                            .housekeeping_interval = 2ms}};
  constexpr int threads = 6;
  const std::uint64_t per_thread = cycles() / threads;
  std::atomic<int> double_held{0};
  std::atomic<int> wrong_key{0};
  std::atomic<int> bad_error{0};
  std::atomic<int> too_slow{0};
  std::atomic<std::uint64_t> served{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < threads; ++w)
    workers.emplace_back([&, w] {
      std::mt19937 rng(static_cast<std::uint32_t>(w * 7919 + 1));
      for (std::uint64_t i = 0; i < per_thread; ++i) {
        const int key = static_cast<int>(rng() % 5U);
        const auto r = rng() % 100U;
        const auto start = std::chrono::steady_clock::now();
        std::error_code ec;
        auto l = r < 10 ? respool::lease<conn>{} : p.acquire(key, 20ms, ec);
        if (r < 10) {
          auto got = p.try_acquire(key);
          if (got) l = std::move(*got);
        }
        if (std::chrono::steady_clock::now() - start > 2s) ++too_slow;
        if (!l) {
          if (ec && ec != respool::errc::timeout && ec != respool::errc::exhausted &&
              ec != respool::errc::create_failed && ec != respool::errc::backend_unavailable)
            ++bad_error;
          continue;
        }
        ++served;
        if (l->key != key) ++wrong_key;
        if (l->held->exchange(true)) ++double_held;
        if (r % 3 == 0) std::this_thread::yield();
        l->held->store(false);
        if (r < 15) l.discard();
        if (r == 42) p.evict(key);
        if (r == 43 && w == 0) p.evict_all();
      }
    });
  for (auto& th : workers) th.join();
  CHECK(t->over.load() == 0);
  CHECK(t->peak.load() <= max_total);
  CHECK(double_held.load() == 0);
  CHECK(wrong_key.load() == 0);
  CHECK(bad_error.load() == 0);
  CHECK(too_slow.load() == 0);
  CHECK(served.load() > per_thread);  // most attempts are served
  p.close();
  CHECK(t->live.load() == 0);
}
