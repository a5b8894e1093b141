// wait_ready(timeout): waits until min_idle resources exist; on timeout the error carries the
// last creation error as its cause. The initial resources are made create_concurrency at a time.
#include <respool/pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <thread>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::cause_text;
using respool_test::contains;
using respool_test::counters;
using respool_test::resource;
using respool_test::test_factory;

namespace {
// Each call takes `delay` and counts how many run at once; the first `failures` calls throw.
struct slow_factory {
  struct state {
    std::shared_ptr<counters> c = std::make_shared<counters>();
    std::atomic<int> running{0};
    std::atomic<int> peak{0};
    std::atomic<int> failures{0};
  };
  std::shared_ptr<state> st = std::make_shared<state>();
  std::chrono::milliseconds delay{30};

  auto create() -> resource {
    const int now = ++st->running;
    int seen = st->peak.load();
    while (now > seen && !st->peak.compare_exchange_weak(seen, now)) {
    }
    std::this_thread::sleep_for(delay);
    --st->running;
    if (st->failures.fetch_sub(1) > 0) throw std::runtime_error("db starting up (test)");
    return resource(st->c, ++st->c->made);
  }
};
}  // namespace

TEST_CASE("the initial resources are made create_concurrency at a time", "[ready]") {
  slow_factory f;
  respool::pool p{f, {.max_size = 8, .min_idle = 4, .create_concurrency = 4}};
  p.wait_ready(10s);
  const auto s = p.stats();
  CHECK(s.total - s.creating >= 4);
  CHECK(f.st->peak == 4);  // not one after another
}

TEST_CASE("wait_ready returns at once when min_idle resources exist, or min_idle is 0",
          "[ready]") {
  test_factory f;
  respool::pool none{f, {.max_size = 2}};
  none.wait_ready(0ms);
  respool::pool two{f, {.max_size = 2, .min_idle = 2}};
  std::error_code ec;
  CHECK(two.wait_ready(0ms, ec));
  CHECK_FALSE(ec);
  auto a = two.acquire(1s);  // in use still counts as existing
  CHECK(two.wait_ready(0ms, ec));
}

TEST_CASE("wait_ready times out with the last creation error as its cause", "[ready]") {
  test_factory f;
  f.fail->store(true);
  respool::pool p{f, {.max_size = 2, .min_idle = 2}};
  try {
    p.wait_ready(100ms);
    FAIL("wait_ready succeeded with a failing factory");
  } catch (const respool::error& e) {
    CHECK(e.code() == respool::errc::timeout);
    CHECK(contains(e.what(), "0 of min_idle 2"));
    CHECK(cause_text(e) == "connection refused (test)");
  }
  std::error_code ec;
  CHECK_FALSE(p.wait_ready(20ms, ec));
  CHECK(ec == respool::errc::timeout);
  // The backend comes up: the background keeps trying, and the pool gets ready.
  f.fail->store(false);
  CHECK(p.wait_ready(10s, ec));
  CHECK(p.stats().total >= 2);
}

TEST_CASE("wait_ready rides out a backend that fails a few times first", "[ready]") {
  slow_factory f;
  f.delay = 5ms;
  f.st->failures = 2;
  respool::pool p{f, {.max_size = 4, .min_idle = 3, .create_concurrency = 1}};
  p.wait_ready(10s);
  CHECK(p.stats().total >= 3);
  CHECK(p.stats().create_failures == 2);
}

TEST_CASE("wait_ready on a closed pool fails with closed", "[ready]") {
  test_factory f;
  f.fail->store(true);
  respool::pool p{f, {.max_size = 1, .min_idle = 1}};
  p.close();
  std::error_code ec;
  CHECK_FALSE(p.wait_ready(1s, ec));
  CHECK(ec == respool::errc::closed);
}

TEST_CASE("a connect that hangs does not hang the constructor", "[ready]") {
  respool_test::first_call_hangs f;
  const auto t0 = std::chrono::steady_clock::now();
  respool::pool p{f, {.max_size = 2, .min_idle = 1, .acquire_timeout = 20s}};
  // The hung call stalls; a second lane makes the resource, and the constructor returns.
  CHECK(std::chrono::steady_clock::now() - t0 < 10s);
  CHECK(p.stats().idle == 1);
  p.wait_ready(1s);
  f.st->open = true;
}
