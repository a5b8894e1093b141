// Stress for asynchronous acquire beside blocking callers, under faults: a pool of 4 whose
// factory fails 10% of connects, whose validator (run on every borrow, hand-offs included)
// fails 5%, and whose resetter fails 2%; two blocking threads; a thread keeping up to 64
// async_acquire calls outstanding, a third of them with a stop token it cancels at random, all
// with short timeouts; and close() at the end with waiters still queued. Checks, after joining
// (worker threads never call Catch2's macros):
// - every async request completed exactly once, with a lease or an acceptable error;
// - no resource lent to two holders at once (a flag per resource), never more than 4 alive;
// - after close() nothing is alive, nobody waits, nothing is in use.
// Size: RESPOOL_STRESS_CYCLES async requests if set, else 200,000 (optimised, no sanitizer) or
// 30,000.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
[[maybe_unused]] constexpr bool sanitized = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
[[maybe_unused]] constexpr bool sanitized = true;
#else
[[maybe_unused]] constexpr bool sanitized = false;
#endif
#else
[[maybe_unused]] constexpr bool sanitized = false;
#endif

auto cycles() -> std::uint64_t {
  if (const char* v = std::getenv("RESPOOL_STRESS_CYCLES")) return std::strtoull(v, nullptr, 10);
#ifdef NDEBUG
  return sanitized ? 30'000 : 200'000;
#else
  return 30'000;
#endif
}

struct shared_state {
  std::atomic<int> alive{0};
  std::atomic<int> most_alive{0};
  std::atomic<int> double_lends{0};
  std::atomic<std::uint64_t> calls{0};
};

struct conn {
  std::shared_ptr<shared_state> st;
  std::unique_ptr<std::atomic<bool>> held = std::make_unique<std::atomic<bool>>(false);
  explicit conn(std::shared_ptr<shared_state> s) : st(std::move(s)) {
    const int n = ++st->alive;
    int m = st->most_alive.load();
    while (n > m && !st->most_alive.compare_exchange_weak(m, n)) {
    }
  }
  conn(conn&&) noexcept = default;
  auto operator=(conn&&) -> conn& = delete;
  ~conn() {
    if (st) --st->alive;
  }
};

// 1 in `n`, thread-safely.
auto one_in(unsigned n) -> bool {
  thread_local std::mt19937 rng(std::random_device{}());
  return rng() % n == 0;
}

// Marks the resource held for the lease's life: a second holder at once is a double lend.
void use(respool::lease<conn>& l, shared_state& st) {
  if (l->held->exchange(true)) ++st.double_lends;
  if (one_in(8)) std::this_thread::yield();
  l->held->store(false);
}

}  // namespace

TEST_CASE("async and blocking callers under faults: exactly once, exclusive, empty after close") {
  auto st = std::make_shared<shared_state>();
  respool::pool p{
      [st] {
        if (one_in(10)) throw std::runtime_error("connect failed (injected)");
        return conn(st);
      },
      respool::pool_options{.max_size = 4, .acquire_timeout = 20ms, .validate_after_idle = 0ms,
                            .fail_fast_after = 1000, .create_backoff_min = 1ms,
                            .create_backoff_max = 5ms, .housekeeping_interval = 1ms},
      [](conn&) { return !one_in(20); },   // validator: 5% fail
      [](conn&) { return !one_in(50); }};  // resetter: 2% fail

  const std::uint64_t total = cycles();
  std::vector<std::atomic<int>> completions(total);
  std::atomic<int> bad_errors{0};
  std::atomic<std::uint64_t> outstanding{0};
  std::atomic<bool> stop_blocking{false};

  std::vector<std::thread> blocking;
  for (int t = 0; t < 2; ++t)
    blocking.emplace_back([&] {
      while (!stop_blocking) {
        std::error_code ec;
        auto l = p.acquire(5ms, ec);
        if (!l) continue;
        use(l, *st);
        if (one_in(20)) l.discard();
      }
    });

  std::thread driver([&] {
    std::vector<std::stop_source> stops;
    for (std::uint64_t i = 0; i < total; ++i) {
      while (outstanding.load() >= 64) std::this_thread::yield();
      ++outstanding;
      auto handler = [&, i](std::error_code ec, respool::lease<conn> l) {
        completions[i].fetch_add(1);
        if (l) {
          use(l, *st);
        } else if (ec != respool::errc::timeout && ec != respool::errc::cancelled &&
                   ec != respool::errc::create_failed && ec != respool::errc::closed &&
                   ec != respool::errc::backend_unavailable) {
          ++bad_errors;
        }
        --outstanding;
      };
      const auto timeout = std::chrono::microseconds(500 + (i % 7) * 1000);
      if (i % 3 == 0) {
        if (stops.size() >= 16) stops.erase(stops.begin());
        stops.emplace_back();
        p.async_acquire(timeout, handler, stops.back().get_token());
      } else {
        p.async_acquire(timeout, handler);
      }
      if (!stops.empty() && one_in(4)) stops[static_cast<std::size_t>(i) % stops.size()].request_stop();
    }
  });
  driver.join();
  stop_blocking = true;
  for (auto& t : blocking) t.join();
  p.close();  // the last waiters complete with closed
  const bool all_done = respool_test::eventually([&] { return outstanding.load() == 0; }, 30s);

  CHECK(all_done);
  std::uint64_t wrong = 0;
  for (auto& c : completions)
    if (c.load() != 1) ++wrong;
  CHECK(wrong == 0);
  CHECK(bad_errors == 0);
  CHECK(st->double_lends == 0);
  CHECK(st->most_alive <= 4);
  const auto s = p.stats();
  CHECK(s.waiters == 0);
  CHECK(s.in_use == 0);
  CHECK(respool_test::eventually([&] { return st->alive.load() == 0; }, 10s));
  INFO("async requests " << total << ", acquired " << s.acquired << ", timeouts " << s.timeouts
                         << ", cancelled " << s.cancelled);
  CHECK(s.acquired > total / 20);  // a real share was served, not all refused
}
