// Availability under a flaky backend: occasional creation, validation and reset failures do not
// make the pool fail callers who could be served a little later. A single creation failure is
// not "the backend is down": callers keep waiting (within their timeout) for the retry, none is
// refused with errc::backend_unavailable.
#include <respool/pool.hpp>

#include <array>
#include <atomic>
#include <latch>
#include <map>
#include <mutex>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::counters;
using respool_test::resource;

namespace {
// A reproducible "random" draw per call, safe from any thread: splitmix64 of a shared counter.
class dice {
 public:
  explicit dice(std::uint64_t seed) : next_(seed) {}
  // True with probability percent / 100.
  auto roll(unsigned percent) -> bool {
    std::uint64_t z = next_.fetch_add(0x9e3779b97f4a7c15ULL, std::memory_order_relaxed);
    z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
    z ^= z >> 31U;
    return z % 100U < percent;
  }

 private:
  std::atomic<std::uint64_t> next_;
};

struct flaky_backend {
  std::shared_ptr<counters> c = std::make_shared<counters>();
  std::shared_ptr<dice> d = std::make_shared<dice>(20240601);
  std::shared_ptr<std::atomic<int>> create_calls = std::make_shared<std::atomic<int>>(0);
};

struct flaky_factory {
  flaky_backend b;
  auto create() -> resource {
    ++*b.create_calls;
    if (b.d->roll(10)) throw std::runtime_error("connection reset (flaky test backend)");
    return resource(b.c, ++b.c->made);
  }
};
struct flaky_validator {
  flaky_backend b;
  auto validate(resource&) const -> bool { return !b.d->roll(5); }
};
struct flaky_resetter {
  flaky_backend b;
  auto reset(resource&) const -> bool { return !b.d->roll(2); }
};

// Fails its first call only.
struct fails_once_factory {
  std::shared_ptr<counters> c = std::make_shared<counters>();
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  auto create() -> resource {
    if (++*calls == 1) throw std::runtime_error("connection refused (first try)");
    return resource(c, ++c->made);
  }
};

auto describe(const std::map<int, int>& codes) -> std::string {
  std::ostringstream out;
  for (const auto& [code, n] : codes)
    out << (code == 0 ? std::string("ok")
                      : make_error_code(static_cast<respool::errc>(code)).message())
        << ": " << n << "; ";
  return out.str();
}
}  // namespace

TEST_CASE("a flaky backend still serves at least 90% of acquires") {
  flaky_backend b;
  respool::pool<flaky_factory, flaky_validator, flaky_resetter> p{
      flaky_factory{b},
      {.max_size = 4, .validate_after_idle = 0ms},
      flaky_validator{b},
      flaky_resetter{b}};
  constexpr int threads = 8;
  std::mutex m;
  std::map<int, int> codes;  // errc value (0: success) -> count
  std::vector<std::thread> workers;
  const auto until = std::chrono::steady_clock::now() + 2s;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&] {
      std::map<int, int> mine;
      while (std::chrono::steady_clock::now() < until) {
        std::error_code ec;
        auto l = p.acquire(200ms, ec);  // bounded: at most 200 ms per call
        ++mine[ec ? ec.value() : 0];
        // A caller that got an error answers its request with it (1 ms) before the next one, so
        // that a brief spell of fast failures (allowed after fail_fast_after failures in a row)
        // does not flood the count with failures a hot loop repeats in microseconds.
        if (ec) std::this_thread::sleep_for(1ms);
        if (l) {
          l->session_state++;
          std::this_thread::sleep_for(100us);  // a short query
        }
      }
      std::lock_guard lk(m);
      for (const auto& [code, n] : mine) codes[code] += n;
    });
  }
  for (auto& w : workers) w.join();
  int total = 0;
  for (const auto& [code, n] : codes) total += n;
  const int ok = codes[0];
  const auto s = p.stats();
  INFO("acquires: " << total << "; " << describe(codes) << " creation failures "
                    << s.create_failures << " of " << b.create_calls->load()
                    << " factory calls, failed validation "
                    << s.destroyed(respool::destroy_reason::failed_validation) << ", failed reset "
                    << s.destroyed(respool::destroy_reason::failed_reset));
  REQUIRE(total > 0);
  CHECK(static_cast<double>(ok) >= 0.9 * static_cast<double>(total));
}

TEST_CASE("one creation failure does not fail a burst of callers on a cold pool") {
  fails_once_factory f;
  respool::pool p{f, respool::pool_options{.max_size = 4}};
  constexpr int callers = 8;
  std::latch start(callers);
  std::array<std::error_code, callers> results{};
  std::vector<std::thread> threads;
  for (int i = 0; i < callers; ++i) {
    threads.emplace_back([&, i] {
      start.arrive_and_wait();
      std::error_code ec;
      auto l = p.acquire(2s, ec);  // bounded by its own timeout
      results[static_cast<std::size_t>(i)] = ec;
      if (l) std::this_thread::sleep_for(5ms);
    });
  }
  for (auto& t : threads) t.join();
  std::map<int, int> codes;
  for (const auto& ec : results) ++codes[ec ? ec.value() : 0];
  INFO(describe(codes) << "factory calls " << f.calls->load());
  CHECK(f.calls->load() >= 2);  // the failure happened, and the pool tried again
  CHECK(codes[0] == callers);   // every caller was served
  CHECK(codes[static_cast<int>(respool::errc::backend_unavailable)] == 0);
}
