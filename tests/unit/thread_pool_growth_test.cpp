// The grow-or-queue decision: idle thread, else a new thread below max, else the queue, else the
// rejection policy; keep-alive; failed thread starts. Tasks are held at a gate, so every count
// the tests check is exact and nothing depends on timing.
#include <respool/thread_pool.hpp>

#include <atomic>
#include <cstddef>
#include <latch>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "respool_catch.hpp"
#include "thread_pool_helpers.hpp"

using namespace std::chrono_literals;
using respool::thread_growth;
using respool::thread_pool;
using respool::thread_pool_options;
using respool_test::counter;
using respool_test::eventually;
using respool_test::gate;
using respool_test::occupy;
using respool_test::patience;

TEST_CASE("threads_first starts a thread for each task before it queues any", "[growth]") {
  gate g;
  thread_pool pool{{.core_threads = 1, .max_threads = 4, .queue_capacity = 10}};
  counter started;
  auto hold = [&] {
    started.add();
    g.wait();
  };
  for (std::size_t i = 1; i <= 4; ++i) {
    pool.execute(hold);
    const auto s = pool.stats();
    REQUIRE(s.threads == i);
    REQUIRE(s.queued == 0);
  }
  REQUIRE(started.wait_for_at_least(4));
  pool.execute(hold);
  pool.execute(hold);
  auto s = pool.stats();
  REQUIRE(s.threads == 4);
  REQUIRE(s.queued == 2);
  REQUIRE(s.active == 4);
  g.open();
  REQUIRE(pool.wait_idle(patience));
  s = pool.stats();
  REQUIRE(s.completed == 6);
  REQUIRE(s.largest == 4);
  REQUIRE(s.largest_queue == 2);
  REQUIRE(s.threads == 4);  // keep-alive is 60 s: nobody left yet
}

TEST_CASE("an idle thread takes the task: no new thread while one is idle", "[growth]") {
  thread_pool pool{{.core_threads = 1, .max_threads = 8, .queue_capacity = 10}};
  for (int i = 0; i < 20; ++i) {
    // Between tasks the one thread must be idle before the next submit, else growing is right.
    REQUIRE(eventually([&] { return i == 0 || pool.stats().idle == 1; }));
    auto f = pool.submit([] { return std::this_thread::get_id(); });
    REQUIRE(pool.stats().threads == 1);
    REQUIRE(f.wait_for(patience) == std::future_status::ready);
  }
  REQUIRE(pool.stats().largest == 1);
}

TEST_CASE("concurrent submits never count on the same idle thread", "[growth]") {
  constexpr std::size_t max = 8;
  thread_pool pool{
      {.core_threads = 2, .max_threads = max, .queue_capacity = 10, .prestart_core = true}};
  for (int round = 0; round < 30; ++round) {
    const std::size_t before = pool.stats().threads;
    REQUIRE(eventually([&] { return pool.stats().idle == before; }));
    gate g;  // each round's tasks are done (wait_idle) before it goes
    counter started;
    std::latch go(static_cast<std::ptrdiff_t>(max));
    std::vector<std::thread> producers;
    for (std::size_t p = 0; p < max; ++p) {
      producers.emplace_back([&] {
        go.arrive_and_wait();
        pool.execute([&] {
          started.add();
          g.wait();
        });
      });
    }
    for (auto& t : producers) t.join();
    // Had two submitters counted on one idle thread, one task would be stuck while threads
    // could still start: every task must run at once, each on its own thread.
    REQUIRE(started.wait_for_at_least(static_cast<int>(max)));
    const auto s = pool.stats();
    REQUIRE(s.threads == max);
    REQUIRE(s.queued == 0);
    REQUIRE(s.idle == 0);
    g.open();
    REQUIRE(pool.wait_idle(patience));
  }
  REQUIRE(pool.stats().largest == max);
}

TEST_CASE("under many producers: never above max, never a queued task while one could start",
          "[growth]") {
  constexpr std::size_t max = 6;
  thread_pool pool{
      {.core_threads = 1, .max_threads = max, .queue_capacity = 100000, .keep_alive = 5ms}};
  std::atomic<bool> done{false};
  std::atomic<int> violations{0};
  std::thread monitor([&] {
    while (!done.load()) {
      const auto s = pool.stats();
      if (s.threads > max) ++violations;
      // A queued task means no thread is idle and none may start.
      if (s.queued > 0 && (s.idle > 0 || s.threads < max)) ++violations;
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> producers;
  std::atomic<int> ran{0};
  for (int p = 0; p < 4; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < 300; ++i) {
        pool.execute([&ran, i, p] {
          if ((i + p) % 7 == 0) std::this_thread::sleep_for(200us);
          ++ran;
        });
        if (i % 50 == 0) std::this_thread::sleep_for(8ms);  // let threads reach keep-alive
      }
    });
  }
  for (auto& t : producers) t.join();
  REQUIRE(pool.wait_idle(patience));
  done = true;
  monitor.join();
  REQUIRE(violations.load() == 0);
  REQUIRE(ran.load() == 1200);
  REQUIRE(pool.stats().largest <= max);
}

TEST_CASE("queue_first grows like the JDK: core, then queue, then up to max, then reject",
          "[growth]") {
  gate g;
  thread_pool pool{{.core_threads = 1,
                    .max_threads = 3,
                    .queue_capacity = 2,
                    .growth = thread_growth::queue_first}};
  counter started;
  auto hold = [&] {
    started.add();
    g.wait();
  };
  auto check = [&](std::size_t threads, std::size_t queued) {
    const auto s = pool.stats();
    REQUIRE(s.threads == threads);
    REQUIRE(s.queued == queued);
  };
  pool.execute(hold);
  check(1, 0);  // below core: a thread
  pool.execute(hold);
  check(1, 1);  // at core: queue
  pool.execute(hold);
  check(1, 2);
  pool.execute(hold);
  check(2, 2);  // queue full: grow
  pool.execute(hold);
  check(3, 2);
  std::error_code ec;
  REQUIRE_FALSE(pool.execute(hold, ec));  // full everywhere: the policy (abort)
  REQUIRE(ec == respool::errc::rejected);
  REQUIRE(started.wait_for_at_least(3));
  g.open();
  REQUIRE(pool.wait_idle(patience));
  REQUIRE(started.value() == 5);
}

TEST_CASE("queue_first hands a task to an idle thread rather than queueing it", "[growth]") {
  gate g;
  thread_pool pool{{.core_threads = 2,
                    .max_threads = 2,
                    .queue_capacity = 10,
                    .growth = thread_growth::queue_first,
                    .prestart_core = true}};
  REQUIRE(eventually([&] { return pool.stats().idle == 2; }));
  counter started;
  pool.execute([&] {
    started.add();
    g.wait();
  });
  REQUIRE(pool.stats().queued == 0);
  REQUIRE(started.wait_for_at_least(1));
  g.open();
  REQUIRE(pool.wait_idle(patience));
  REQUIRE(pool.stats().largest_queue == 0);
}

TEST_CASE("queue_first with no core threads still starts a thread for a queued task", "[growth]") {
  thread_pool pool{{.core_threads = 0,
                    .max_threads = 2,
                    .queue_capacity = 10,
                    .growth = thread_growth::queue_first}};
  auto f = pool.submit([] { return 7; });
  REQUIRE(f.wait_for(patience) == std::future_status::ready);
  REQUIRE(f.get() == 7);
  REQUIRE(pool.stats().largest == 1);
}

TEST_CASE("queue_capacity 0 is direct hand-off: a thread or the rejection policy", "[growth]") {
  gate g;
  thread_pool pool{{.core_threads = 0, .max_threads = 2, .queue_capacity = 0}};
  auto hold = [&] { g.wait(); };
  pool.execute(hold);
  pool.execute(hold);
  REQUIRE(pool.stats().threads == 2);
  bool rejected = false;
  try {
    pool.execute(hold);
  } catch (const respool::error& e) {
    rejected = e.code() == respool::errc::rejected;
  }
  REQUIRE(rejected);
  REQUIRE(pool.stats().largest_queue == 0);
  g.open();
}

TEST_CASE("threads above core exit after keep_alive - core threads stay", "[growth][keep_alive]") {
  gate g;
  thread_pool pool{{.core_threads = 1, .max_threads = 4, .queue_capacity = 10, .keep_alive = 50ms}};
  counter started;
  REQUIRE(occupy(pool, 4, g, started));
  REQUIRE(pool.stats().threads == 4);
  g.open();
  REQUIRE(eventually([&] { return pool.stats().threads == 1; }));
  // Several keep-alive periods later the core thread is still there, and idle.
  std::this_thread::sleep_for(300ms);
  const auto s = pool.stats();
  REQUIRE(s.threads == 1);
  REQUIRE(s.idle == 1);
  REQUIRE(s.largest == 4);
  // And the pool still works (and may grow again).
  auto f = pool.submit([] { return 1; });
  REQUIRE(f.wait_for(patience) == std::future_status::ready);
}

TEST_CASE("under a trickle the surplus threads still reach keep_alive and exit",
          "[growth][keep_alive]") {
  // The next task goes to one of the two most recently idle threads, never round the whole
  // set: with six threads taking turns a task every 10 ms would keep all of them alive.
  gate g;
  thread_pool pool{{.core_threads = 1, .max_threads = 6, .queue_capacity = 10, .keep_alive = 150ms}};
  counter started;
  REQUIRE(occupy(pool, 6, g, started));
  g.open();
  REQUIRE(eventually([&] { return pool.stats().idle == 6; }));
  bool shrank = false;
  for (int i = 0; i < 1000 && !shrank; ++i) {  // at most about 10 s
    auto f = pool.submit([] { return 1; });
    REQUIRE(f.wait_for(patience) == std::future_status::ready);
    std::this_thread::sleep_for(10ms);
    shrank = pool.stats().threads <= 2;
  }
  REQUIRE(shrank);
}

TEST_CASE("core_threads_time_out lets an idle pool drop to zero threads", "[growth][keep_alive]") {
  thread_pool pool{{.core_threads = 2,
                    .max_threads = 2,
                    .queue_capacity = 10,
                    .keep_alive = 30ms,
                    .core_threads_time_out = true,
                    .prestart_core = true}};
  REQUIRE(pool.stats().threads == 2);
  REQUIRE(eventually([&] { return pool.stats().threads == 0; }));
  auto f = pool.submit([] { return 3; });
  REQUIRE(f.wait_for(patience) == std::future_status::ready);
  REQUIRE(f.get() == 3);
}

TEST_CASE("prestart_core starts the core threads idle", "[growth]") {
  gate g;
  thread_pool pool{{.core_threads = 3, .max_threads = 5, .prestart_core = true}};
  REQUIRE(pool.stats().threads == 3);
  REQUIRE(eventually([&] { return pool.stats().idle == 3; }));
  for (int i = 0; i < 3; ++i) pool.execute([&] { g.wait(); });
  REQUIRE(pool.stats().threads == 3);  // handed to the idle ones, none started
  g.open();
}

#if defined(__linux__)
TEST_CASE("threads are named <name>-<n>, cut to Linux's 15 characters", "[growth]") {
  thread_pool pool{{.core_threads = 1, .max_threads = 1, .name = "a-very-long-pool-name"}};
  auto name = pool.submit([] {
    char buffer[32] = {};
    pthread_getname_np(pthread_self(), buffer, sizeof buffer);
    return std::string(buffer);
  });
  REQUIRE(name.wait_for(patience) == std::future_status::ready);
  REQUIRE(name.get() == "a-very-long-p-1");
}
#endif

namespace {

// A thread factory that fails from its `fail_from`-th call on, as std::thread does when the
// system is out of threads.
struct failing_factory {
  std::atomic<int>* calls;
  int fail_from;
  auto operator()(std::function<void()> body) const -> std::thread {
    if (++*calls >= fail_from) {
      throw std::system_error(std::make_error_code(std::errc::resource_unavailable_try_again),
                              "injected thread start failure");
    }
    return std::thread(std::move(body));
  }
};

}  // namespace

TEST_CASE("a failed thread start queues the task if there is room, else rejects it",
          "[growth][start_failure]") {
  std::atomic<int> calls{0};
  gate g;
  thread_pool pool{{.core_threads = 0,
                    .max_threads = 4,
                    .queue_capacity = 1,
                    .thread_factory = failing_factory{&calls, 2}}};
  std::atomic<int> ran_a{0}, ran_b{0}, ran_c{0};
  pool.execute([&] {
    ++ran_a;
    g.wait();
  });
  REQUIRE(pool.stats().threads == 1);

  pool.execute([&] { ++ran_b; });  // the start fails: queued instead
  auto s = pool.stats();
  REQUIRE(s.start_failures == 1);
  REQUIRE(s.threads == 1);
  REQUIRE(s.queued == 1);
  REQUIRE(s.submitted == 2);

  bool rejected_with_cause = false;
  try {
    pool.execute([&] { ++ran_c; });  // the start fails and the queue is full: rejected
  } catch (const respool::error& e) {
    REQUIRE(e.code() == respool::errc::rejected);
    REQUIRE(e.cause() != nullptr);
    try {
      std::rethrow_exception(e.cause());
    } catch (const std::system_error& cause) {
      rejected_with_cause = cause.code() == std::errc::resource_unavailable_try_again;
    }
  }
  REQUIRE(rejected_with_cause);
  s = pool.stats();
  REQUIRE(s.start_failures == 2);
  REQUIRE(s.submitted == 2);  // the rejected task was never counted as accepted
  REQUIRE(s.rejected.aborted == 1);

  g.open();
  REQUIRE(pool.wait_idle(patience));
  pool.shutdown();
  REQUIRE(ran_a.load() == 1);
  REQUIRE(ran_b.load() == 1);  // queued, then run once by the surviving thread
  REQUIRE(ran_c.load() == 0);
  REQUIRE(pool.stats().completed == 2);
}

TEST_CASE("a failed start with no queue rejects at once: the future holds the error",
          "[growth][start_failure]") {
  std::atomic<int> calls{0};
  thread_pool pool{{.core_threads = 0,
                    .max_threads = 2,
                    .queue_capacity = 0,
                    .thread_factory = failing_factory{&calls, 1}}};
  std::atomic<int> ran{0};
  std::error_code ec;
  auto f = pool.submit([&] { return ++ran; }, ec);
  REQUIRE(ec == respool::errc::rejected);
  REQUIRE(f.wait_for(0s) == std::future_status::ready);
  REQUIRE_THROWS_AS(f.get(), respool::error);
  const auto s = pool.stats();
  REQUIRE(s.threads == 0);
  REQUIRE(s.submitted == 0);
  REQUIRE(s.start_failures == 1);
  REQUIRE(ran.load() == 0);
}

TEST_CASE("tasks queued when no thread could start are run by shutdown, never lost",
          "[growth][start_failure]") {
  std::atomic<int> calls{0};
  thread_pool pool{{.core_threads = 0,
                    .max_threads = 2,
                    .queue_capacity = 5,
                    .thread_factory = failing_factory{&calls, 1}}};
  std::atomic<int> ran{0};
  for (int i = 0; i < 3; ++i) pool.execute([&] { ++ran; });
  // The retrier tries a start every few ms; while one is in flight its thread counts and claims
  // a queued task (so `queued` shows 2). Either way all three wait, none ran.
  const auto s = pool.stats();
  REQUIRE(s.queued + s.threads == 3);
  REQUIRE(s.threads <= 1);
  REQUIRE(ran.load() == 0);
  pool.shutdown();
  REQUIRE(ran.load() == 3);
  REQUIRE(pool.stats().completed == 3);
}

TEST_CASE("a failed prestart makes the constructor throw, with no thread left behind",
          "[growth][start_failure]") {
  std::atomic<int> calls{0};
  REQUIRE_THROWS_AS((thread_pool{{.core_threads = 3,
                                  .max_threads = 3,
                                  .prestart_core = true,
                                  .thread_factory = failing_factory{&calls, 2}}}),
                    std::system_error);
  REQUIRE(calls.load() == 2);
}
