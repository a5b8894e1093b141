// Error messages count waiters the same way whatever the error: the count is of the other
// callers queued, never the caller the message is for. A caller alone reads "waiters 0", both
// when it times out and when the factory's failure is reported to it.
#include <respool/pool.hpp>

#include <stdexcept>
#include <string>
#include <vector>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::contains;
using respool_test::test_factory;

TEST_CASE("a timeout message does not count the caller as a waiter") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = p.acquire(1s);
  REQUIRE(held);
  try {
    auto l = p.acquire(20ms);  // alone in the queue
    FAIL("acquire should time out");
  } catch (const respool::error& e) {
    INFO(e.what());
    CHECK(e.code() == respool::errc::timeout);
    CHECK(contains(e.what(), "waiters 0"));
  }
}

TEST_CASE("a creation failure message does not count the caller as a waiter") {
  test_factory f;
  f.fail->store(true);
  respool::pool p{f, {.max_size = 1, .create_backoff_min = 1ms, .create_backoff_max = 1ms}};
  std::vector<std::string> create_failed_messages;
  for (int i = 0; i < 20; ++i) {
    try {
      auto l = p.acquire(500ms);  // alone: nobody else calls this pool
      FAIL("acquire should fail: the factory always throws");
    } catch (const respool::error& e) {
      INFO(e.code().message() << ": " << e.what());
      CHECK(contains(e.what(), "waiters 0"));  // whatever the error, nobody else waits
      if (e.code() == respool::errc::create_failed) create_failed_messages.emplace_back(e.what());
    }
    std::this_thread::sleep_for(3ms);  // let the backoff pass, so the next call tries again
  }
  // The case the contract is about: the factory's failure reported to a caller alone.
  REQUIRE_FALSE(create_failed_messages.empty());
  for (const auto& m : create_failed_messages) {
    INFO(m);
    CHECK(contains(m, "waiters 0"));
    CHECK(contains(m, "connection refused (test)"));
  }
}
