// Creation failures: capacity is never leaked, retries back off, the pool fails fast while the
// backend is known down, waiters learn why, and service resumes when the backend is back.
#include <respool/pool.hpp>

#include <future>
#include <stdexcept>
#include <vector>

#include "pool_test_support.hpp"
#include "error_text.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::cause_text;
using respool_test::eventually;
using respool_test::manual_clock;
using respool_test::resource;
using respool_test::test_factory;

namespace {
using manual_pool = respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock>;
}  // namespace

TEST_CASE("a failing factory never leaks capacity") {
  test_factory f;
  respool::pool p{f, {.max_size = 2, .create_backoff_min = 1ms, .create_backoff_max = 2ms}};
  f.fail->store(true);
  for (int i = 0; i < 20; ++i) {
    std::error_code ec;
    auto l = p.acquire(2s, ec);
    CHECK(ec);
    CHECK((ec == respool::errc::create_failed || ec == respool::errc::backend_unavailable));
  }
  auto s = p.stats();
  CHECK(s.total == 0);
  CHECK(s.creating == 0);
  CHECK(s.create_failures >= 1);
  f.fail->store(false);
  // Both places are still there.
  std::vector<respool::lease<resource>> held;
  REQUIRE(eventually([&] {
    std::error_code ec;
    auto l = p.acquire(1s, ec);
    if (l) held.push_back(std::move(l));
    return held.size() == 2;
  }));
  CHECK(p.stats().total == 2);
}

TEST_CASE("a waiter learns the factory's error at once, with the error as cause") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, {.max_size = 2, .housekeeping_interval = 0ms, .name = "pg"}};
  f.fail->store(true);
  const auto real_start = std::chrono::steady_clock::now();
  try {
    auto l = p.acquire(1h);
    FAIL("acquire should fail");
  } catch (const respool::error& e) {
    CHECK(e.code() == respool::errc::create_failed);
    CHECK(cause_text(e) == "connection refused (test)");
    CHECK(std::string(e.what()).find("connection refused (test)") != std::string::npos);
    CHECK(std::string(e.what()).find("'pg'") != std::string::npos);
  }
  CHECK(std::chrono::steady_clock::now() - real_start < 30s);  // not the hour
}

TEST_CASE("while backing off with nothing idle, acquire fails fast with the last error") {
  manual_clock::reset();
  test_factory f;
  manual_pool p{f, {.max_size = 2, .create_backoff_min = 10s, .create_backoff_max = 60s,
                    .housekeeping_interval = 0ms}};
  f.fail->store(true);
  std::error_code ec;
  auto first = p.acquire(1h, ec);
  CHECK(ec == respool::errc::create_failed);
  const auto made_before = f.c->made.load();
  try {
    auto l = p.acquire(1h);
    FAIL("acquire should fail fast");
  } catch (const respool::error& e) {
    CHECK(e.code() == respool::errc::backend_unavailable);
    CHECK(cause_text(e) == "connection refused (test)");
    CHECK(std::string(e.what()).find("last creation error: connection refused (test)") !=
          std::string::npos);
  }
  CHECK(p.stats().fast_failures == 1);
  CHECK(f.c->made == made_before);  // no creation attempted while backing off
  // After the backoff (at most 10 s, jittered down), the next acquire tries again.
  f.fail->store(false);
  manual_clock::advance(10s);
  auto l = p.acquire(1h, ec);
  CHECK_FALSE(ec);
  CHECK(l);
}

TEST_CASE("the server down at construction: prewarm does not throw, acquire fails fast") {
  manual_clock::reset();
  test_factory f;
  f.fail->store(true);
  manual_pool p{f, {.max_size = 2, .min_idle = 2, .housekeeping_interval = 0ms}};
  CHECK(p.stats().create_failures >= 1);
  // The background retries at once until fail_fast_after (3) failures in a row; then the
  // backend counts as down and, with nothing idle or in use, acquire fails fast.
  REQUIRE(eventually([&] { return p.stats().create_failures >= 3; }));
  std::error_code ec;
  auto l = p.acquire(1h, ec);
  CHECK(ec == respool::errc::backend_unavailable);
}

TEST_CASE("failures below fail_fast_after retry at once - then backoff doubles, capped, jittered") {
  manual_clock::reset();
  test_factory f;
  f.fail->store(true);
  // min_idle keeps the background retrying on its own.
  manual_pool p{f, {.max_size = 1, .min_idle = 1, .fail_fast_after = 3, .create_backoff_min = 100ms,
                    .create_backoff_max = 400ms, .housekeeping_interval = 0ms}};
  // A flaky backend is not a down one: the first failures are retried without waiting (the
  // manual clock does not move here).
  REQUIRE(eventually([&] { return p.stats().create_failures == 3; }));
  std::this_thread::sleep_for(20ms);  // give the background a chance to (wrongly) retry
  CHECK(p.stats().create_failures == 3);
  // Down: the n-th attempt after that waits between half and all of min(100ms * 2^(n-1), 400ms).
  const std::chrono::milliseconds full[] = {100ms, 200ms, 400ms, 400ms};
  std::uint64_t failures = 3;
  for (auto d : full) {
    manual_clock::advance(d / 2 - 1ms);
    p.run_maintenance();
    std::this_thread::sleep_for(20ms);
    CHECK(p.stats().create_failures == failures);
    manual_clock::advance(d / 2 + 1ms);
    p.run_maintenance();
    REQUIRE(eventually([&] { return p.stats().create_failures == failures + 1; }));
    ++failures;
  }
}

TEST_CASE("waiters keep waiting for a return while resources are leased and creation fails") {
  test_factory f;
  respool::pool p{f, {.max_size = 2, .create_backoff_min = 1ms, .create_backoff_max = 5ms}};
  auto held = p.acquire();
  f.fail->store(true);
  std::promise<std::error_code> result;
  std::thread waiter([&] {
    std::error_code ec;
    auto l = p.acquire(30s, ec);
    result.set_value(ec);
  });
  REQUIRE(eventually([&] { return p.stats().create_failures >= 2; }));
  auto fut = result.get_future();
  CHECK(fut.wait_for(0ms) == std::future_status::timeout);  // still waiting: a return may come
  // A newcomer is not failed fast either while something in use may come back: it waits.
  std::error_code newcomer;
  auto l = p.acquire(20ms, newcomer);
  CHECK(newcomer == respool::errc::timeout);
  CHECK(p.stats().fast_failures == 0);
  held.return_to_pool();
  REQUIRE(fut.wait_for(10s) == std::future_status::ready);
  CHECK_FALSE(fut.get());
  waiter.join();
}

TEST_CASE("a timeout message carries the last creation error") {
  test_factory f;
  respool::pool p{f, {.max_size = 2, .create_backoff_min = 1ms, .create_backoff_max = 2ms}};
  auto held = p.acquire();
  f.fail->store(true);
  try {
    auto l = p.acquire(100ms);
    FAIL("should time out");
  } catch (const respool::error& e) {
    CHECK(e.code() == respool::errc::timeout);
    CHECK(std::string(e.what()).find("connection refused (test)") != std::string::npos);
  }
}

TEST_CASE("a validator or resetter that throws counts as a failure and leaks nothing") {
  test_factory f;
  auto bad_validator = [](resource&) -> bool { throw std::runtime_error("ping failed"); };
  respool::pool p{f, respool::pool_options{.max_size = 1, .validate_after_idle = 0ms},
                  bad_validator};
  { auto l = p.acquire(); }  // fresh: not validated
  auto l = p.acquire(5s);    // idle one fails validation: replaced
  CHECK(l->id == 2);
  CHECK(p.stats().destroyed(respool::destroy_reason::failed_validation) == 1);
  CHECK(f.c->live == 1);
}

TEST_CASE("validators that keep failing slowly do not stretch the acquire timeout") {
  test_factory f;
  auto slow_failing = [](resource&) {
    std::this_thread::sleep_for(50ms);  // a server that hangs before the ping fails
    return false;
  };
  respool::pool p{f, respool::pool_options{.max_size = 4, .min_idle = 4, .validate_after_idle = 0ms},
                  slow_failing};
  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  auto l = p.acquire(120ms, ec);
  const auto took = std::chrono::steady_clock::now() - start;
  CHECK(ec == respool::errc::timeout);
  CHECK(took >= 120ms);
  CHECK(took < 2s);  // the timeout plus at most one more validation, with slack for a slow CI
  // Each failed one is destroyed in the background.
  CHECK(eventually([&] { return p.stats().destroyed(respool::destroy_reason::failed_validation) >= 3; }));
}
