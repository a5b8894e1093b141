// Durations at the end of their range: `block_timeout`, `keep_alive` and `wait_idle` given the
// largest value of their type mean "forever".
//
// Defect covered: the pool added these durations to steady_clock::now() (and wait_idle handed its
// argument to condition_variable::wait_for, which does the same). Converted to nanoseconds,
// milliseconds::max() and hours::max() wrap around to a small negative value (-1 ms, -1 h), and
// now() + nanoseconds::max() overflows too, so the deadline lands in the past:
//  - "block_timeout = milliseconds::max(): a submitter blocks until there is room, never times
//    out": a blocked execute failed at once with errc::timeout instead of waiting for room.
//  - "keep_alive = milliseconds::max(): threads above core never time out": the threads above
//    core left as soon as they went idle.
//  - "keep_alive = milliseconds::max() with core_threads_time_out: core threads stay": the same
//    for core threads allowed to time out.
//  - "wait_idle(milliseconds::max()) / (hours::max()) / (nanoseconds::max()) waits until the
//    running task finished": wait_idle returned false at once.
// All of them fail on the code with the defect. A call that could stay stuck in the pool runs on
// a helper thread with a bounded wait; if it never returns, the pool (and what the call uses) is
// leaked rather than destroyed under it, and the test fails.
#include <respool/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <utility>

#include "bounded_run.hpp"
#include "respool_catch.hpp"
#include "thread_pool_helpers.hpp"

using namespace std::chrono_literals;
using respool::rejection_policy;
using respool::thread_pool;
using respool::thread_pool_options;
using respool_test::background;
using respool_test::counter;
using respool_test::gate;
using respool_test::occupy;

namespace {

// What the tasks and the helper threads share; on the heap, so a test can leak it together with
// the pool if a call stays stuck.
struct shared_state {
  gate g;
  counter started;
  std::atomic<int> queued_ran{0};
  std::atomic<int> third_ran{0};
  std::atomic<bool> finished{false};
};

}  // namespace

TEST_CASE("block_timeout = milliseconds::max(): a submitter blocks until there is room, never "
          "times out",
          "[durations][block]") {
  auto st = std::make_shared<shared_state>();
  auto pool = std::make_unique<thread_pool>(thread_pool_options{
      .core_threads = 1,
      .max_threads = 1,
      .queue_capacity = 1,
      .rejection = rejection_policy::block,
      .block_timeout = std::chrono::milliseconds::max(),
  });
  pool->execute([st] {
    st->started.add();
    st->g.wait();
  });
  REQUIRE(st->started.wait_for_at_least(1));
  pool->execute([st] { ++st->queued_ran; });
  REQUIRE(pool->stats().queued == 1);

  // The third task finds the thread busy and the queue full: it must wait for room.
  thread_pool* p = pool.get();
  background<std::string> third([p, st]() -> std::string {
    try {
      p->execute([st] { ++st->third_ran; });
      return {};
    } catch (const std::exception& e) {
      return e.what();
    }
  });
  const bool returned_early = third.ready_within(150ms);
  const auto blocked = pool->stats().blocked;
  st->g.open();
  if (!third.ready_within(5s)) {
    (void)pool.release();  // the helper is still inside the pool: leak it, never destroy it
    FAIL("the blocked execute did not return within 5 s after room was made");
  }
  const std::string third_error = third.get();
  INFO("third execute: " << (third_error.empty() ? std::string("accepted") : third_error));
  CHECK_FALSE(returned_early);  // it waited instead of timing out at once
  CHECK(blocked == 1);
  CHECK(third_error.empty());
  REQUIRE(pool->wait_idle(5s));
  CHECK(st->queued_ran.load() == 1);
  CHECK(st->third_ran.load() == 1);
  CHECK(pool->stats().rejected.timed_out == 0);
}

TEST_CASE("keep_alive = milliseconds::max(): threads above core never time out",
          "[durations][keep_alive]") {
  gate g;
  counter started;
  thread_pool pool{{.core_threads = 1,
                    .max_threads = 4,
                    .queue_capacity = 10,
                    .keep_alive = std::chrono::milliseconds::max()}};
  REQUIRE(occupy(pool, 4, g, started));
  REQUIRE(pool.stats().threads == 4);
  g.open();
  REQUIRE(pool.wait_idle(5s));
  std::this_thread::sleep_for(400ms);  // far beyond a wrapped-around (past) deadline
  const auto s = pool.stats();
  CHECK(s.threads == 4);
  CHECK(s.largest == 4);
}

TEST_CASE("keep_alive = milliseconds::max() with core_threads_time_out: core threads stay",
          "[durations][keep_alive]") {
  gate g;
  thread_pool pool{{.core_threads = 2,
                    .max_threads = 2,
                    .queue_capacity = 10,
                    .keep_alive = std::chrono::milliseconds::max(),
                    .core_threads_time_out = true}};
  counter started;
  REQUIRE(occupy(pool, 2, g, started));
  g.open();
  REQUIRE(pool.wait_idle(5s));
  std::this_thread::sleep_for(300ms);
  CHECK(pool.stats().threads == 2);
}

namespace {

// wait_idle(forever) while a task runs for ~100 ms: must return true, and only once the task
// finished. Run on a helper thread, so a wait that never returns fails the test instead of
// hanging it.
template <class Duration>
void check_wait_idle_forever(Duration forever) {
  auto st = std::make_shared<shared_state>();
  auto pool = std::make_unique<thread_pool>(
      thread_pool_options{.core_threads = 1, .max_threads = 1, .queue_capacity = 10});
  pool->execute([st] {
    st->started.add();
    std::this_thread::sleep_for(100ms);
    st->finished = true;
  });
  REQUIRE(st->started.wait_for_at_least(1));
  thread_pool* p = pool.get();
  background<std::pair<bool, bool>> waiter([p, st, forever] {
    const bool idle = p->wait_idle(forever);
    return std::pair<bool, bool>{idle, st->finished.load()};
  });
  if (!waiter.ready_within(5s)) {
    (void)pool.release();  // the waiter is still inside the pool: leak it
    FAIL("wait_idle(max) did not return within 5 s of the task finishing");
  }
  const auto [idle, task_finished] = waiter.get();
  CHECK(idle);           // not a time-out
  CHECK(task_finished);  // and not before the task was done
}

}  // namespace

TEST_CASE("wait_idle(milliseconds::max()) waits until the running task finished",
          "[durations][wait_idle]") {
  check_wait_idle_forever(std::chrono::milliseconds::max());
}

TEST_CASE("wait_idle(hours::max()) waits until the running task finished",
          "[durations][wait_idle]") {
  check_wait_idle_forever(std::chrono::hours::max());
}

TEST_CASE("wait_idle(nanoseconds::max()) waits until the running task finished",
          "[durations][wait_idle]") {
  check_wait_idle_forever(std::chrono::nanoseconds::max());
}
