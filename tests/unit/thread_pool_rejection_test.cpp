// Rejection policies, in the throwing and non-throwing forms, and what each does when a task
// submits to its own saturated pool. A saturated pool here is one thread held at a gate plus a
// full queue, so every outcome is decided, not timed.
#include <respool/thread_pool.hpp>

#include <atomic>
#include <future>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

#include "respool_catch.hpp"
#include "thread_pool_helpers.hpp"

using namespace std::chrono_literals;
using respool::errc;
using respool::rejection_policy;
using respool::thread_pool;
using respool_test::counter;
using respool_test::eventually;
using respool_test::gate;
using respool_test::patience;

namespace {

// One thread, held; `queued` tasks in a queue of that capacity: the next task is refused.
struct saturated {
  explicit saturated(rejection_policy policy, std::size_t queue = 1,
                     std::chrono::milliseconds block_timeout = 20s)
      : pool{{.core_threads = 1,
              .max_threads = 1,
              .queue_capacity = queue,
              .rejection = policy,
              .block_timeout = block_timeout,
              .error_sink = [this](std::exception_ptr) { sink.add(); }}} {
    pool.execute([this] {
      started.add();
      g.wait();
    });
    for (std::size_t i = 0; i < queue; ++i) {
      queued.push_back(pool.submit([this] { ++queued_ran; }));
    }
    REQUIRE(started.wait_for_at_least(1));
    REQUIRE(pool.stats().queued == queue);
  }
  ~saturated() { g.open(); }
  saturated(const saturated&) = delete;
  auto operator=(const saturated&) -> saturated& = delete;

  gate g;
  counter started;
  counter sink;
  std::atomic<int> queued_ran{0};
  std::vector<std::future<void>> queued;
  thread_pool pool;  // last: destroyed (drained) first, while the rest is still alive
};

auto error_code_of(const std::exception_ptr& e) -> std::error_code {
  try {
    std::rethrow_exception(e);
  } catch (const respool::error& error) {
    return error.code();
  } catch (...) {
    return {};
  }
}

template <class T>
auto future_error(std::future<T>& f) -> std::error_code {
  REQUIRE(f.wait_for(0s) == std::future_status::ready);  // at once, never a hang
  try {
    f.get();
  } catch (...) {
    return error_code_of(std::current_exception());
  }
  return {};
}

}  // namespace

TEST_CASE("abort: execute and submit throw errc::rejected", "[rejection][abort]") {
  saturated s{rejection_policy::abort};
  std::atomic<int> ran{0};
  try {
    s.pool.execute([&] { ++ran; });
    FAIL("execute did not throw");
  } catch (const respool::error& e) {
    REQUIRE(e.code() == errc::rejected);
    REQUIRE(std::string(e.what()).find("abort") != std::string::npos);
  }
  try {
    s.pool.submit([&] { return ++ran; });
    FAIL("submit did not throw");
  } catch (const respool::error& e) {
    REQUIRE(e.code() == errc::rejected);
  }
  REQUIRE(s.pool.stats().rejected.aborted == 2);
  s.g.open();
  REQUIRE(s.pool.wait_idle(patience));
  REQUIRE(ran.load() == 0);
  REQUIRE(s.queued_ran.load() == 1);
}

TEST_CASE("abort: the non-throwing forms report errc::rejected", "[rejection][abort]") {
  saturated s{rejection_policy::abort};
  std::atomic<int> ran{0};
  std::error_code ec;
  REQUIRE_FALSE(s.pool.execute([&] { ++ran; }, ec));
  REQUIRE(ec == errc::rejected);
  ec.clear();
  auto f = s.pool.submit([&] { return ++ran; }, ec);
  REQUIRE(ec == errc::rejected);
  REQUIRE(future_error(f) == errc::rejected);
  REQUIRE(s.pool.stats().rejected.aborted == 2);
  s.g.open();
  REQUIRE(s.pool.wait_idle(patience));
  REQUIRE(ran.load() == 0);
  // An accepted task clears the code.
  ec = make_error_code(errc::timeout);
  REQUIRE(s.pool.execute([] {}, ec));
  REQUIRE_FALSE(ec);
}

TEST_CASE("discard: silent for the throwing forms, the future gets errc::rejected at once",
          "[rejection][discard]") {
  saturated s{rejection_policy::discard};
  std::atomic<int> ran{0};
  REQUIRE_NOTHROW(s.pool.execute([&] { ++ran; }));
  auto f = s.pool.submit([&] { return ++ran; });
  REQUIRE(future_error(f) == errc::rejected);
  std::error_code ec;
  REQUIRE_FALSE(s.pool.execute([&] { ++ran; }, ec));
  REQUIRE(ec == errc::rejected);
  REQUIRE(s.pool.stats().rejected.discarded == 3);
  s.g.open();
  REQUIRE(s.pool.wait_idle(patience));
  REQUIRE(ran.load() == 0);
}

TEST_CASE("discard_oldest: the oldest queued task is dropped, the new one queued",
          "[rejection][discard_oldest]") {
  saturated s{rejection_policy::discard_oldest, 2};
  std::vector<int> order;
  std::mutex order_mutex;
  auto newer = s.pool.submit([&] {
    std::lock_guard lock(order_mutex);
    order.push_back(3);
  });
  // The first queued task lost its place: its future knows at once.
  REQUIRE(future_error(s.queued[0]) == errc::rejected);
  REQUIRE(s.queued[1].wait_for(0s) == std::future_status::timeout);
  const auto stats = s.pool.stats();
  REQUIRE(stats.rejected.discarded_oldest == 1);
  REQUIRE(stats.queued == 2);
  s.g.open();
  REQUIRE(newer.wait_for(patience) == std::future_status::ready);
  REQUIRE(s.pool.wait_idle(patience));
  REQUIRE(s.queued_ran.load() == 1);
  REQUIRE(order == std::vector<int>{3});
  const auto end = s.pool.stats();
  REQUIRE(end.submitted == end.completed + end.rejected.discarded_oldest + end.cancelled);
}

TEST_CASE("discard_oldest with no queue discards the new task", "[rejection][discard_oldest]") {
  saturated s{rejection_policy::discard_oldest, 0};
  std::atomic<int> ran{0};
  REQUIRE_NOTHROW(s.pool.execute([&] { ++ran; }));
  auto f = s.pool.submit([&] { return ++ran; });
  REQUIRE(future_error(f) == errc::rejected);
  REQUIRE(s.pool.stats().rejected.discarded == 2);
  REQUIRE(s.pool.stats().rejected.discarded_oldest == 0);
  s.g.open();
  REQUIRE(s.pool.wait_idle(patience));
  REQUIRE(ran.load() == 0);
}

TEST_CASE("caller_runs: the submitting thread runs the task before returning",
          "[rejection][caller_runs]") {
  saturated s{rejection_policy::caller_runs};
  std::thread::id ran_on;
  s.pool.execute([&] { ran_on = std::this_thread::get_id(); });
  REQUIRE(ran_on == std::this_thread::get_id());
  auto f = s.pool.submit([] { return std::this_thread::get_id(); });
  REQUIRE(f.wait_for(0s) == std::future_status::ready);
  REQUIRE(f.get() == std::this_thread::get_id());
  // A fire-and-forget task that throws on the caller goes to the error sink, not to the caller.
  REQUIRE_NOTHROW(s.pool.execute([] { throw std::runtime_error("boom"); }));
  REQUIRE(s.sink.value() == 1);
  const auto stats = s.pool.stats();
  REQUIRE(stats.rejected.caller_ran == 3);
  REQUIRE(stats.failed == 1);
  REQUIRE(stats.submitted == 2);  // the held task and the queued one only
}

TEST_CASE("block: a submitter waits for room and gets it", "[rejection][block]") {
  saturated s{rejection_policy::block};
  std::atomic<int> ran{0};
  std::error_code producer_ec = make_error_code(errc::timeout);
  std::thread producer([&] { s.pool.execute([&] { ++ran; }, producer_ec); });
  REQUIRE(eventually([&] { return s.pool.stats().blocked == 1; }));
  REQUIRE(ran.load() == 0);
  s.g.open();  // the held task ends, the queue drains: room
  producer.join();
  REQUIRE_FALSE(producer_ec);
  REQUIRE(s.pool.wait_idle(patience));
  REQUIRE(ran.load() == 1);
  const auto stats = s.pool.stats();
  REQUIRE(stats.rejected.total() == 0);
  REQUIRE(stats.blocked == 0);
}

TEST_CASE("block: no room within block_timeout fails with errc::timeout", "[rejection][block]") {
  saturated s{rejection_policy::block, 1, 30ms};
  std::atomic<int> ran{0};
  try {
    s.pool.execute([&] { ++ran; });
    FAIL("execute did not time out");
  } catch (const respool::error& e) {
    REQUIRE(e.code() == errc::timeout);
  }
  std::error_code ec;
  auto f = s.pool.submit([&] { return ++ran; }, ec);
  REQUIRE(ec == errc::timeout);
  REQUIRE(future_error(f) == errc::timeout);
  REQUIRE(s.pool.stats().rejected.timed_out == 2);
  s.g.open();
  REQUIRE(s.pool.wait_idle(patience));
  REQUIRE(ran.load() == 0);
}

TEST_CASE("block: shutting down releases a waiting submitter with errc::closed",
          "[rejection][block]") {
  saturated s{rejection_policy::block};
  std::error_code producer_ec;
  std::thread producer([&] { s.pool.execute([] {}, producer_ec); });
  REQUIRE(eventually([&] { return s.pool.stats().blocked == 1; }));
  std::thread closer([&] { s.pool.shutdown(); });  // waits for the held task
  producer.join();
  REQUIRE(producer_ec == errc::closed);
  s.g.open();
  closer.join();
  REQUIRE(s.pool.stats().rejected.closed == 1);
}

TEST_CASE("after shutdown every form is refused with errc::closed", "[rejection][closed]") {
  thread_pool pool{{.core_threads = 1, .max_threads = 2}};
  pool.shutdown();
  REQUIRE(pool.is_shut_down());
  try {
    pool.execute([] {});
    FAIL("execute after shutdown did not throw");
  } catch (const respool::error& e) {
    REQUIRE(e.code() == errc::closed);
  }
  REQUIRE_THROWS_AS(pool.submit([] { return 1; }), respool::error);
  std::error_code ec;
  REQUIRE_FALSE(pool.execute([] {}, ec));
  REQUIRE(ec == errc::closed);
  auto f = pool.submit([] { return 1; }, ec);
  REQUIRE(ec == errc::closed);
  REQUIRE(future_error(f) == errc::closed);
  REQUIRE(pool.stats().rejected.closed == 4);
}

// --- a task that submits to its own saturated pool (one thread, no queue) -------------------

namespace {

auto own_pool(rejection_policy policy, std::size_t queue = 0) -> respool::thread_pool_options {
  return {.core_threads = 1, .max_threads = 1, .queue_capacity = queue, .rejection = policy};
}

}  // namespace

TEST_CASE("self-submission under caller_runs runs the nested task inline: no deadlock",
          "[rejection][self]") {
  thread_pool pool{own_pool(rejection_policy::caller_runs)};
  auto outer = pool.submit([&pool] {
    auto inner = pool.submit([] { return std::this_thread::get_id(); });
    return inner.get() == std::this_thread::get_id();  // waiting is safe: it already ran
  });
  REQUIRE(outer.wait_for(patience) == std::future_status::ready);
  REQUIRE(outer.get());
  REQUIRE(pool.stats().rejected.caller_ran == 1);
}

TEST_CASE("self-submission under block does not wait for itself: it runs inline",
          "[rejection][self]") {
  thread_pool pool{{.core_threads = 1,
                    .max_threads = 1,
                    .queue_capacity = 0,
                    .rejection = rejection_policy::block,
                    .block_timeout = 20s}};
  auto outer = pool.submit([&pool] {
    auto inner = pool.submit([] { return std::this_thread::get_id(); });
    return inner.get() == std::this_thread::get_id();
  });
  REQUIRE(outer.wait_for(patience) == std::future_status::ready);
  REQUIRE(outer.get());
  REQUIRE(pool.stats().rejected.caller_ran == 1);
  REQUIRE(pool.stats().rejected.timed_out == 0);
}

TEST_CASE("self-submission under abort throws errc::rejected inside the task",
          "[rejection][self]") {
  thread_pool pool{own_pool(rejection_policy::abort)};
  auto outer = pool.submit([&pool] {
    try {
      pool.execute([] {});
    } catch (const respool::error& e) {
      return e.code();
    }
    return std::error_code{};
  });
  REQUIRE(outer.wait_for(patience) == std::future_status::ready);
  REQUIRE(outer.get() == errc::rejected);
}

TEST_CASE("self-submission under discard: the nested future fails at once, never hangs",
          "[rejection][self]") {
  thread_pool pool{own_pool(rejection_policy::discard)};
  auto outer = pool.submit([&pool] {
    auto inner = pool.submit([] { return 1; });
    if (inner.wait_for(0s) != std::future_status::ready) return std::error_code{};
    try {
      inner.get();
    } catch (const respool::error& e) {
      return e.code();
    }
    return std::error_code{};
  });
  REQUIRE(outer.wait_for(patience) == std::future_status::ready);
  REQUIRE(outer.get() == errc::rejected);
}

TEST_CASE("self-submission under discard_oldest drops the oldest queued task for the nested one",
          "[rejection][self]") {
  gate g;
  thread_pool pool{own_pool(rejection_policy::discard_oldest, 1)};
  counter started;
  std::atomic<int> nested_ran{0};
  auto outer = pool.submit([&] {
    started.add();
    g.wait();
    // The queue holds `waiting`: it is dropped, the nested task queued behind this one. (Waiting
    // here for the nested task would deadlock: only this thread could run it.)
    pool.execute([&] { ++nested_ran; });
  });
  REQUIRE(started.wait_for_at_least(1));
  auto waiting = pool.submit([] { return 1; });
  g.open();
  REQUIRE(outer.wait_for(patience) == std::future_status::ready);
  REQUIRE(waiting.wait_for(patience) == std::future_status::ready);
  REQUIRE_THROWS_AS(waiting.get(), respool::error);
  REQUIRE(pool.wait_idle(patience));
  REQUIRE(nested_ran.load() == 1);
  REQUIRE(pool.stats().rejected.discarded_oldest == 1);
}
