// Fail fast only when the backend is known down: callers are not refused with
// errc::backend_unavailable before `fail_fast_after` (default 3) consecutive creation failures;
// once it is down, acquire fails at once (well under 1 ms, the factory's error as cause) and
// calls no factory; when the backoff is due, the next acquire makes exactly one probe, and a
// probe that succeeds ends the fast failing.
#include <respool/pool.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <vector>

#include "bounded_run.hpp"
#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::background;
using respool_test::counters;
using respool_test::manual_clock;
using respool_test::resource;

namespace {
// Counts every call, failed or not.
struct counted_factory {
  std::shared_ptr<counters> c = std::make_shared<counters>();
  std::shared_ptr<std::atomic<bool>> fail = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);
  auto create() -> resource {
    ++*calls;
    if (fail->load()) throw std::runtime_error("connection refused (test)");
    return resource(c, ++c->made);
  }
};
using manual_pool =
    respool::pool<counted_factory, respool::always_valid, respool::no_reset, manual_clock>;

struct call_result {
  std::error_code ec;
  double took_ms = 0;
};

// Runs acquire(timeout) on a thread; if it is still waiting after a second of real time, moves
// the manual clock past every deadline and backoff (and runs maintenance) so that it returns.
auto acquire_nudged(std::unique_ptr<manual_pool>& p, std::chrono::nanoseconds timeout, bool& nudged)
    -> std::optional<std::error_code> {
  manual_pool* raw = p.get();
  background<std::error_code> call([raw, timeout] {
    std::error_code ec;
    auto l = raw->acquire(timeout, ec);
    return ec;
  });
  nudged = false;
  if (!call.ready_within(1s)) {
    nudged = true;
    manual_clock::advance(timeout + 61s);
    p->run_maintenance();
  }
  if (!call.ready_within(5s)) {
    respool_test::unstick(p, call);
    return std::nullopt;
  }
  return call.get();
}
}  // namespace

TEST_CASE("acquire fails fast only after fail_fast_after consecutive failures then probes once") {
  manual_clock::reset();
  counted_factory f;
  f.fail->store(true);
  auto p = std::make_unique<manual_pool>(f, respool::pool_options{.max_size = 2,
                                                                  .create_backoff_min = 10s,
                                                                  .create_backoff_max = 60s,
                                                                  .housekeeping_interval = 0ms});
  REQUIRE(p->options().max_size == 2);

  // 1. Until 3 consecutive failures have happened, nobody is told the backend is down.
  for (int i = 0; i < 10 && p->stats().create_failures < 3; ++i) {
    const auto failures_before = p->stats().create_failures;
    bool nudged = false;
    const auto ec = acquire_nudged(p, 5s, nudged);
    if (!ec) FAIL("an acquire(5s) did not return even after the clock passed its deadline");
    const auto failures = p->stats().create_failures;
    INFO("call " << i << ": " << ec->message() << " after " << failures << " creation failure(s)"
                 << (nudged ? " (clock moved)" : ""));
    CHECK(*ec);  // the factory always fails: nothing to lend
    if (*ec == respool::errc::backend_unavailable) CHECK(failures >= 3);
    // No new attempt this time (the retry was not due): make it due for the next call.
    if (failures == failures_before && !nudged) manual_clock::advance(61s);
  }
  REQUIRE(p->stats().create_failures >= 3);

  // 2. Known down, retry not due (the clock stands still): fail fast, at once, with the cause.
  manual_pool* raw = p.get();
  const int calls_when_down = f.calls->load();
  // Shared with the loops below, which a failing run may leave stuck (detached) in the pool.
  auto abort_loop = std::make_shared<std::atomic<bool>>(false);
  background<std::vector<call_result>> fast([raw, abort_loop] {
    std::vector<call_result> out;
    for (int i = 0; i < 100 && !*abort_loop; ++i) {
      const auto start = std::chrono::steady_clock::now();
      std::error_code ec;
      auto l = raw->acquire(1h, ec);
      out.push_back({ec, respool_test::ms_since(start)});
    }
    return out;
  });
  if (!fast.ready_within(5s)) {
    *abort_loop = true;
    manual_clock::advance(2h);
    p->run_maintenance();
    respool_test::unstick(p, fast);
    FAIL("acquire(1h) waited while the backend was known down");
  }
  const auto results = fast.get();
  std::vector<double> took;
  int unavailable = 0;
  for (const auto& r : results) {
    took.push_back(r.took_ms);
    unavailable += r.ec == respool::errc::backend_unavailable ? 1 : 0;
  }
  INFO("median " << respool_test::median(took) << " ms, max " << respool_test::maximum(took)
                 << " ms");
  CHECK(unavailable == 100);
  CHECK(respool_test::median(took) < 1.0);
  CHECK(f.calls->load() == calls_when_down);  // no creation attempted while known down
  background<std::pair<int, std::string>> thrown([raw] {
    try {
      auto l = raw->acquire(1h);
      return std::pair{0, std::string()};
    } catch (const respool::error& e) {
      return std::pair{e.code().value(), respool_test::cause_text(e)};
    }
  });
  if (!thrown.ready_within(5s)) {
    manual_clock::advance(2h);
    p->run_maintenance();
    respool_test::unstick(p, thrown);
    FAIL("acquire(1h) waited while the backend was known down");
  }
  const auto [code, cause] = thrown.get();
  CHECK(code == static_cast<int>(respool::errc::backend_unavailable));
  CHECK(cause == "connection refused (test)");

  // 3. The backoff is due: the next acquire makes one probe (it fails: still down), no more.
  manual_clock::advance(61s);
  const int calls_before_probe = f.calls->load();
  *abort_loop = false;
  background<std::vector<call_result>> probing([raw, abort_loop] {
    std::vector<call_result> out;
    for (int i = 0; i < 5 && !*abort_loop; ++i) {
      std::error_code ec;
      auto l = raw->acquire(1h, ec);
      out.push_back({ec, 0});
    }
    return out;
  });
  if (!probing.ready_within(5s)) {
    *abort_loop = true;
    manual_clock::advance(2h);
    p->run_maintenance();
    respool_test::unstick(p, probing);
    FAIL("acquire(1h) waited for a probe of a backend known down");
  }
  for (const auto& r : probing.get()) CHECK(r.ec);
  CHECK(respool_test::eventually([&] { return f.calls->load() == calls_before_probe + 1; }, 2s));
  std::this_thread::sleep_for(50ms);  // give a second (wrong) probe the chance to show
  CHECK(f.calls->load() == calls_before_probe + 1);

  // 4. The backend is back: once the backoff is due, one probe succeeds and acquires work again.
  f.fail->store(false);
  manual_clock::advance(61s);
  const int calls_before_recovery = f.calls->load();
  background<respool::lease<resource>> recovered([raw] {
    std::error_code ec;
    return raw->acquire(1h, ec);
  });
  if (!recovered.ready_within(5s)) {
    manual_clock::advance(2h);
    p->run_maintenance();
    respool_test::unstick(p, recovered);
    FAIL("acquire(1h) did not return once the backoff was due");
  }
  auto first = recovered.get();
  CHECK(first);
  CHECK(f.calls->load() == calls_before_recovery + 1);
  background<respool::lease<resource>> second([raw] {
    std::error_code ec;
    return raw->acquire(1h, ec);
  });
  if (!second.ready_within(5s)) {
    manual_clock::advance(2h);
    p->run_maintenance();
    respool_test::unstick(p, second);
    FAIL("a second acquire after recovery did not return");
  }
  auto also = second.get();
  CHECK(also);  // not failed fast: the breaker is closed again
  CHECK(f.c->made == 2);
}
