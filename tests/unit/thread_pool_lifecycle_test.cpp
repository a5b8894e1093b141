// Submitting (results, arguments, move-only callables, exceptions, stop tokens), the error sink,
// options validation, statistics, wait_idle, shutdown, shutdown_now and the destructor.
#include <respool/thread_pool.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "respool_catch.hpp"
#include "thread_pool_helpers.hpp"

using namespace std::chrono_literals;
using respool::errc;
using respool::thread_pool;
using respool::thread_pool_options;
using respool_test::counter;
using respool_test::eventually;
using respool_test::gate;
using respool_test::occupy;
using respool_test::patience;

TEST_CASE("submit returns the result - arguments and move-only callables are moved in",
          "[lifecycle][submit]") {
  thread_pool pool{{.core_threads = 1, .max_threads = 2}};
  auto sum = pool.submit([](int a, int b) { return a + b; }, 2, 3);
  auto owned = pool.submit([p = std::make_unique<int>(41)] { return *p + 1; });
  auto moved_arg = pool.submit([](std::unique_ptr<std::string> s) { return *s + "!"; },
                               std::make_unique<std::string>("hi"));
  int target = 0;
  auto by_ref = pool.submit([](int& r) { r = 9; }, std::ref(target));
  auto nothing = pool.submit([] {});
  REQUIRE(sum.get() == 5);
  REQUIRE(owned.get() == 42);
  REQUIRE(moved_arg.get() == "hi!");
  by_ref.get();
  REQUIRE(target == 9);
  REQUIRE_NOTHROW(nothing.get());
  std::atomic<int> ran{0};
  pool.execute([p = std::make_unique<int>(1), &ran] { ran += *p; });
  REQUIRE(pool.wait_idle(patience));
  REQUIRE(ran.load() == 1);
}

TEST_CASE("a task's exception reaches its future", "[lifecycle][submit]") {
  thread_pool pool{{.core_threads = 1, .max_threads = 1}};
  auto f = pool.submit([]() -> int { throw std::runtime_error("db down"); });
  // Idle first: the worker has let go of the task (and its share of the exception), so the
  // exception is read and freed on this thread only. (Freed by the worker after this thread
  // read it, the reference count's ordering lives in the uninstrumented libstdc++, and
  // ThreadSanitizer reports a race that is not there.)
  REQUIRE(f.wait_for(patience) == std::future_status::ready);
  REQUIRE(pool.wait_idle(patience));
  REQUIRE_THROWS_WITH(f.get(), "db down");
  const auto s = pool.stats();
  REQUIRE(s.completed == 1);
  REQUIRE(s.failed == 0);  // it went to the future, not to the sink
}

TEST_CASE("exceptions escaping fire-and-forget tasks go to the error sink",
          "[lifecycle][execute]") {
  std::mutex m;
  std::vector<std::string> seen;
  thread_pool pool{{.core_threads = 1, .max_threads = 2, .error_sink = [&](std::exception_ptr e) {
                      try {
                        std::rethrow_exception(e);
                      } catch (const std::exception& ex) {
                        std::lock_guard lock(m);
                        seen.emplace_back(ex.what());
                      }
                    }}};
  pool.execute([] { throw std::runtime_error("first"); });
  pool.execute([] { throw std::logic_error("second"); });
  pool.execute([] {});
  REQUIRE(pool.wait_idle(patience));
  std::lock_guard lock(m);
  REQUIRE(seen.size() == 2);
  REQUIRE(pool.stats().failed == 2);
  REQUIRE(pool.stats().completed == 3);
}

TEST_CASE("a throwing error sink does not take the thread down", "[lifecycle][execute]") {
  thread_pool pool{{.core_threads = 1, .max_threads = 1, .error_sink = [](std::exception_ptr) {
                      throw std::runtime_error("sink");
                    }}};
  pool.execute([] { throw std::runtime_error("task"); });
  auto f = pool.submit([] { return 5; });
  REQUIRE(f.wait_for(patience) == std::future_status::ready);
  REQUIRE(f.get() == 5);
}

TEST_CASE("a task taking a std::stop_token gets one, signalled by shutdown_now",
          "[lifecycle][stop]") {
  thread_pool pool{{.core_threads = 1, .max_threads = 2}};
  counter started;
  auto looping = pool.submit([&](std::stop_token st) {
    started.add();
    const auto give_up = std::chrono::steady_clock::now() + patience;
    while (!st.stop_requested() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(1ms);
    }
    return st.stop_requested();
  });
  auto with_args =
      pool.submit([](std::stop_token st, int x) { return st.stop_possible() ? x : -1; }, 4);
  REQUIRE(with_args.get() == 4);
  REQUIRE(started.wait_for_at_least(1));
  REQUIRE(looping.wait_for(10ms) == std::future_status::timeout);
  auto never_ran = pool.shutdown_now();
  REQUIRE(never_ran.empty());
  REQUIRE(looping.wait_for(patience) == std::future_status::ready);
  REQUIRE(looping.get());  // it stopped because it was asked to
}

TEST_CASE("shutdown drains the queue, joins, and refuses new tasks", "[lifecycle][shutdown]") {
  gate g;
  thread_pool pool{{.core_threads = 1, .max_threads = 2, .queue_capacity = 100}};
  std::atomic<int> ran{0};
  for (int i = 0; i < 2; ++i) pool.execute([&] { g.wait(); });
  for (int i = 0; i < 50; ++i) pool.execute([&] { ++ran; });
  REQUIRE(pool.stats().queued == 50);
  std::thread closer([&] { pool.shutdown(); });
  REQUIRE(eventually([&] { return pool.is_shut_down(); }));
  std::error_code ec;
  REQUIRE_FALSE(pool.execute([] {}, ec));
  REQUIRE(ec == errc::closed);
  g.open();
  closer.join();
  REQUIRE(ran.load() == 50);  // every queued task ran
  const auto s = pool.stats();
  REQUIRE(s.threads == 0);
  REQUIRE(s.completed == 52);
  pool.shutdown();  // idempotent
}

TEST_CASE("shutdown_now returns the tasks that never ran - they can still be run or dropped",
          "[lifecycle][shutdown_now]") {
  gate g;
  thread_pool pool{{.core_threads = 1, .max_threads = 1, .queue_capacity = 10}};
  counter started;
  auto running = pool.submit([&] {
    started.add();
    g.wait();
    return 1;
  });
  REQUIRE(started.wait_for_at_least(1));
  std::atomic<int> ran{0};
  pool.execute([&] { ++ran; });
  auto kept = pool.submit([&] { return ++ran; });
  auto dropped = pool.submit([&] { return ++ran; });

  auto never_ran = pool.shutdown_now();
  REQUIRE(never_ran.size() == 3);
  REQUIRE(pool.stats().cancelled == 3);
  REQUIRE(pool.stats().queued == 0);
  REQUIRE_THROWS_AS(pool.execute([] {}), respool::error);

  never_ran[0]();        // run the fire-and-forget one here
  never_ran[1]();        // and `kept`
  never_ran[2].reset();  // drop `dropped`: its future learns at once
  REQUIRE(kept.get() == 2);
  REQUIRE(dropped.wait_for(0s) == std::future_status::ready);
  try {
    dropped.get();
    FAIL("a dropped task's future did not fail");
  } catch (const respool::error& e) {
    REQUIRE(e.code() == errc::closed);
  }
  REQUIRE(ran.load() == 2);

  g.open();  // the running task was not interrupted: it finishes normally
  REQUIRE(running.get() == 1);
  REQUIRE(pool.wait_idle(patience));
  pool.shutdown();
  const auto s = pool.stats();
  REQUIRE(s.submitted == s.completed + s.rejected.discarded_oldest + s.cancelled);
}

TEST_CASE("wait_idle times out while work is pending, then succeeds", "[lifecycle][wait_idle]") {
  gate g;
  thread_pool pool{{.core_threads = 1, .max_threads = 1}};
  pool.execute([&] { g.wait(); });
  REQUIRE_FALSE(pool.wait_idle(20ms));
  g.open();
  REQUIRE(pool.wait_idle(patience));
  pool.wait_idle();  // the untimed form returns at once on an idle pool
}

TEST_CASE("wait_idle from one of the pool's tasks throws instead of waiting for itself",
          "[lifecycle][wait_idle]") {
  thread_pool pool{{.core_threads = 1, .max_threads = 1}};
  auto f = pool.submit([&pool] { return pool.wait_idle(1s); });
  REQUIRE(f.wait_for(patience) == std::future_status::ready);
  REQUIRE_THROWS_AS(f.get(), std::logic_error);
}

TEST_CASE("shutdown from one of the pool's tasks stops intake without deadlocking",
          "[lifecycle][shutdown]") {
  thread_pool pool{{.core_threads = 1, .max_threads = 2}};
  auto f = pool.submit([&pool] { pool.shutdown(); });
  REQUIRE(f.wait_for(patience) == std::future_status::ready);
  f.get();
  REQUIRE(pool.is_shut_down());
  std::error_code ec;
  REQUIRE_FALSE(pool.execute([] {}, ec));
  REQUIRE(ec == errc::closed);
}

TEST_CASE("the destructor drains the queue", "[lifecycle][shutdown]") {
  std::atomic<int> ran{0};
  {
    thread_pool pool{{.core_threads = 1, .max_threads = 1, .queue_capacity = 100}};
    for (int i = 0; i < 100; ++i) pool.execute([&] { ++ran; });
  }
  REQUIRE(ran.load() == 100);
}

TEST_CASE("stats add up at rest", "[lifecycle][stats]") {
  gate g;
  thread_pool pool{{.core_threads = 2,
                    .max_threads = 4,
                    .queue_capacity = 8,
                    .error_sink = [](std::exception_ptr) {}}};
  counter started;
  REQUIRE(occupy(pool, 4, g, started));
  for (int i = 0; i < 8; ++i)
    pool.execute([i] {
      if (i % 2 == 0) throw std::runtime_error("x");
    });
  std::error_code ec;
  REQUIRE_FALSE(pool.execute([] {}, ec));
  auto s = pool.stats();
  REQUIRE(s.threads == 4);
  REQUIRE(s.active == 4);
  REQUIRE(s.idle == 0);
  REQUIRE(s.queued == 8);
  REQUIRE(s.submitted == 12);
  REQUIRE(s.rejected.aborted == 1);
  g.open();
  REQUIRE(pool.wait_idle(patience));
  s = pool.stats();
  REQUIRE(s.completed == 12);
  REQUIRE(s.failed == 4);
  REQUIRE(s.active == 0);
  REQUIRE(s.largest == 4);
  REQUIRE(s.largest_queue == 8);
  REQUIRE(s.rejected.total() == 1);
  REQUIRE(eventually([&] { return pool.stats().idle == 4; }));
}

TEST_CASE("validate names the bad field", "[lifecycle][options]") {
  auto message = [](const thread_pool_options& o) -> std::string {
    try {
      o.validate();
    } catch (const std::invalid_argument& e) {
      return e.what();
    }
    return {};
  };
  REQUIRE(message({}).empty());
  REQUIRE(message({.max_threads = 0}).find("max_threads") != std::string::npos);
  REQUIRE(message({.core_threads = 5, .max_threads = 4}).find("core_threads") != std::string::npos);
  REQUIRE(message({.keep_alive = -1ms}).find("keep_alive") != std::string::npos);
  REQUIRE(message({.keep_alive = 0ms, .core_threads_time_out = true}).find("keep_alive") !=
          std::string::npos);
  REQUIRE(message({.block_timeout = -5ms}).find("block_timeout") != std::string::npos);
  REQUIRE_THROWS_AS((thread_pool{{.core_threads = 3, .max_threads = 1}}), std::invalid_argument);
}
