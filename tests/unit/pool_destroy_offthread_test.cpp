// Resources found unfit on the way to a caller (evicted, expired, invalid) are destroyed off the
// caller's thread: closing a connection can be slow, and the caller's timeout must not pay for
// it. Tested with resources that fail validation on borrow (the one case a test can set up
// without the pool's own housekeeping retiring them first).
#include <respool/pool.hpp>

#include <atomic>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "bounded_run.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::eventually;

namespace {
struct close_log {
  std::atomic<std::thread::id> caller{};
  std::atomic<bool> caller_in_acquire{false};
  std::atomic<int> closed{0};
  std::atomic<int> closed_on_caller{0};  // while the caller was inside acquire()
};

// Closing it takes 40 ms (a TLS goodbye to a slow server).
struct slow_to_close {
  std::shared_ptr<close_log> log;
  bool owner = true;
  explicit slow_to_close(std::shared_ptr<close_log> l) : log(std::move(l)) {}
  slow_to_close(slow_to_close&& o) noexcept
      : log(std::move(o.log)), owner(std::exchange(o.owner, false)) {}
  slow_to_close& operator=(slow_to_close&&) = delete;
  ~slow_to_close() {
    if (!owner || !log) return;
    if (log->caller_in_acquire && std::this_thread::get_id() == log->caller.load())
      ++log->closed_on_caller;
    std::this_thread::sleep_for(40ms);
    ++log->closed;
  }
};

struct slow_factory {
  std::shared_ptr<close_log> log = std::make_shared<close_log>();
  auto create() -> slow_to_close { return slow_to_close(log); }
};
struct never_valid {
  auto validate(slow_to_close&) const -> bool { return false; }
};
}  // namespace

TEST_CASE("resources failing validation are destroyed off the caller's thread") {
  slow_factory f;
  respool::pool<slow_factory, never_valid> p{
      f, {.max_size = 4, .min_idle = 4, .validate_after_idle = 0ms}};
  REQUIRE(eventually([&] { return p.stats().idle == 4; }, 5s));
  f.log->caller = std::this_thread::get_id();
  f.log->caller_in_acquire = true;
  const auto start = std::chrono::steady_clock::now();
  std::error_code ec;
  auto l = p.acquire(10ms, ec);  // every idle one fails validation; bounded by its own timeout
  const auto took_ms = respool_test::ms_since(start);
  f.log->caller_in_acquire = false;
  INFO("acquire(10ms) took " << took_ms << " ms (" << ec.message() << "); "
                             << f.log->closed_on_caller.load() << " closed on the caller's thread");
  CHECK(took_ms < 10.0 + 60.0);
  CHECK(f.log->closed_on_caller == 0);
  // They were destroyed, somewhere else.
  CHECK(eventually(
      [&] { return p.stats().destroyed(respool::destroy_reason::failed_validation) >= 1; }, 5s));
  CHECK(eventually([&] { return f.log->closed >= 1; }, 5s));
}
