#pragma once
// Shared by the pool's unit tests: a manual clock, a resource that counts its live instances, a
// counting validator and resetter, and a bounded wait for effects of the pool's background threads.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <thread>

namespace respool_test {

// A std::chrono clock that moves only when told. Static, as chrono clocks are; each test calls
// reset() first (ctest runs every test case in its own process, Meson runs them in sequence).
struct manual_clock {
  using rep = std::int64_t;
  using period = std::nano;
  using duration = std::chrono::nanoseconds;
  using time_point = std::chrono::time_point<manual_clock>;
  static constexpr bool is_steady = true;

  static inline std::atomic<rep> ticks{0};
  static auto now() noexcept -> time_point { return time_point(duration(ticks.load())); }
  static void advance(duration d) noexcept { ticks.fetch_add(d.count()); }
  static void reset() noexcept { ticks.store(1'000'000'000); }
};

// Counts live instances; moved-from objects do not count.
struct counters {
  std::atomic<int> live{0};
  std::atomic<int> made{0};
};

struct resource {
  std::shared_ptr<counters> c;
  int id = 0;
  bool alive = true;       // what a validator looks at
  int session_state = 0;   // what a resetter cleans

  resource(std::shared_ptr<counters> cs, int i) : c(std::move(cs)), id(i) { ++c->live; }
  resource(resource&& o) noexcept
      : c(std::move(o.c)), id(o.id), alive(o.alive), session_state(o.session_state) {}
  resource& operator=(resource&&) = delete;
  ~resource() {
    if (c) --c->live;
  }
};

// A validator that counts its calls and passes the resources still `alive`.
struct flag_validator {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  auto validate(resource& r) const -> bool {
    ++*calls;
    return r.alive;
  }
};

// A resetter that counts its calls and cleans the session.
struct counting_reset {
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  auto reset(resource& r) const -> bool {
    ++*calls;
    r.session_state = 0;
    return true;
  }
};

// A factory whose behaviour a test can change between calls.
struct test_factory {
  std::shared_ptr<counters> c = std::make_shared<counters>();
  std::shared_ptr<std::atomic<bool>> fail = std::make_shared<std::atomic<bool>>(false);

  auto create() -> resource {
    if (fail->load()) throw std::runtime_error("connection refused (test)");
    return resource(c, ++c->made);
  }
};

// A factory whose first call hangs until the test opens the gate; later calls return at once
// (a connect that hangs, among ones that do not).
struct first_call_hangs {
  struct state {
    std::shared_ptr<counters> c = std::make_shared<counters>();
    std::atomic<int> calls{0};
    std::atomic<bool> first_entered{false};
    std::atomic<bool> open{false};
  };
  std::shared_ptr<state> st = std::make_shared<state>();
  auto create() -> resource {
    if (++st->calls == 1) {
      st->first_entered = true;
      while (!st->open) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return resource(st->c, ++st->c->made);
  }
};

// Polls `done` for up to `limit` of real time; for effects of the pool's own threads.
inline auto eventually(const std::function<bool()>& done,
                       std::chrono::milliseconds limit = std::chrono::seconds(10)) -> bool {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < end) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return done();
}

}  // namespace respool_test
