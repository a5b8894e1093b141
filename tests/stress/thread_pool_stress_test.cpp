// Many producers, random task durations, random exceptions, every rejection policy, both growth
// modes, all four submission forms. Checks that every task ran exactly once or was refused
// exactly once, that the statistics add up, and that shutdown finishes. Meant for the TSan and
// ASan+UBSan builds too: the work is scaled down there (and by RESPOOL_STRESS_SCALE, a factor).
#include <respool/thread_pool.hpp>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "respool_catch.hpp"
#include "thread_pool_helpers.hpp"

using namespace std::chrono_literals;
using respool::errc;
using respool::rejection_policy;
using respool::thread_growth;
using respool::thread_pool;

namespace {

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
constexpr int sanitized = 1;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
constexpr int sanitized = 1;
#else
constexpr int sanitized = 0;
#endif
#else
constexpr int sanitized = 0;
#endif

auto tasks_per_producer() -> int {
  double scale = 1.0;
  if (const char* env = std::getenv("RESPOOL_STRESS_SCALE")) scale = std::atof(env);
  const int base = sanitized ? 3000 : 5000;
  return std::max(10, static_cast<int>(base * scale));
}

// Per task: how often it ran and whether its submission was refused (or its future failed with
// a respool error). Exactly one of the two must be 1.
struct ledger {
  explicit ledger(std::size_t n) : ran(n), refused(n), code(n), forms(n) {}
  std::vector<std::atomic<int>> ran;
  std::vector<std::atomic<int>> refused;
  std::vector<std::atomic<int>> code;   // the respool::errc of the refusal
  std::vector<std::atomic<int>> forms;  // 0 execute, 1 execute(ec), 2 submit, 3 submit(ec)
};

struct scenario {
  const char* name;
  rejection_policy policy;
  thread_growth growth;
  std::size_t core, max, queue;
  std::chrono::milliseconds block_timeout;
  bool shutdown_now_midway;
};

void run_scenario(const scenario& sc) {
  INFO("scenario " << sc.name);
  constexpr int producers = 4;
  const int per_producer = tasks_per_producer();
  const auto total = static_cast<std::size_t>(producers * per_producer);
  ledger book(total);
  std::atomic<std::uint64_t> sink_calls{0};
  std::atomic<std::uint64_t> thrown_by_execute_tasks{0};

  auto pool = std::make_unique<thread_pool>(respool::thread_pool_options{
      .core_threads = sc.core,
      .max_threads = sc.max,
      .queue_capacity = sc.queue,
      .keep_alive = 2ms,  // threads come and go during the run
      .growth = sc.growth,
      .rejection = sc.policy,
      .block_timeout = sc.block_timeout,
      .name = "stress",
      .error_sink = [&](std::exception_ptr) { ++sink_calls; },
  });

  std::mutex futures_mutex;
  std::vector<std::pair<std::size_t, std::future<int>>> futures;
  std::atomic<int> submitted_calls{0};

  auto body = [&book, &thrown_by_execute_tasks](std::size_t id, unsigned seed) {
    book.ran[id].fetch_add(1);
    std::minstd_rand rng(seed);
    const auto kind = rng() % 100;
    if (kind < 10) {
      std::this_thread::sleep_for(std::chrono::microseconds(50 + rng() % 400));
    } else if (kind < 30) {
      const auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(rng() % 30);
      while (std::chrono::steady_clock::now() < until) {
      }
    }
    if (rng() % 100 < 8) {
      if (book.forms[id].load() < 2) ++thrown_by_execute_tasks;
      throw std::runtime_error("task failure");
    }
    return static_cast<int>(id);
  };

  auto refuse = [&book](std::size_t id, std::error_code ec) {
    book.refused[id].fetch_add(1);
    book.code[id].store(ec.value());
  };

  auto producer = [&](int p) {
    std::minstd_rand rng(static_cast<unsigned>(p * 7919 + 17));
    for (int i = 0; i < per_producer; ++i) {
      const auto id = static_cast<std::size_t>(p * per_producer + i);
      const unsigned seed = static_cast<unsigned>(rng());
      const int form = static_cast<int>(rng() % 4);
      book.forms[id].store(form);
      ++submitted_calls;
      auto task = [body, id, seed] { return body(id, seed); };
      switch (form) {
        case 0:
          try {
            pool->execute(task);
          } catch (const respool::error& e) {
            refuse(id, e.code());
          }
          break;
        case 1: {
          std::error_code ec;
          if (!pool->execute(task, ec)) refuse(id, ec);
          break;
        }
        case 2:
          try {
            auto f = pool->submit(task);
            std::lock_guard lock(futures_mutex);
            futures.emplace_back(id, std::move(f));
          } catch (const respool::error& e) {
            refuse(id, e.code());
          }
          break;
        default: {
          std::error_code ec;
          auto f = pool->submit(task, ec);
          // A refusal shows in `ec` and in the future: count it once, from the future.
          std::lock_guard lock(futures_mutex);
          futures.emplace_back(id, std::move(f));
          break;
        }
      }
      if (rng() % 64 == 0) std::this_thread::sleep_for(std::chrono::microseconds(rng() % 3000));
    }
  };

  // A watchdog: if shutdown (or anything) hangs, fail loudly instead of waiting for ctest.
  std::atomic<bool> finished{false};
  std::thread watchdog([&] {
    const auto deadline = std::chrono::steady_clock::now() + 120s;
    while (!finished.load()) {
      if (std::chrono::steady_clock::now() > deadline) {
        std::fprintf(stderr, "thread_pool stress: scenario %s hung\n", sc.name);
        std::abort();
      }
      std::this_thread::sleep_for(10ms);
    }
  });

  std::vector<std::thread> threads;
  for (int p = 0; p < producers; ++p) threads.emplace_back(producer, p);

  std::uint64_t ran_by_test = 0;
  std::uint64_t thrown_in_test = 0;
  if (sc.shutdown_now_midway) {
    // Stop in the middle: the producers' later calls are refused with errc::closed, and the
    // returned tasks are run here, so each still runs exactly once.
    while (submitted_calls.load() < static_cast<int>(total / 2)) std::this_thread::yield();
    auto never_ran = pool->shutdown_now();
    for (auto& t : never_ran) {
      try {
        t();
      } catch (const std::exception&) {  // a fire-and-forget task's random failure
        ++thrown_in_test;
      }
      ++ran_by_test;
    }
  }
  for (auto& t : threads) t.join();
  pool->shutdown();
  finished = true;
  watchdog.join();

  // Futures: a value or the task's own exception means it ran; a respool::error means refused.
  for (auto& [id, f] : futures) {
    REQUIRE(f.wait_for(0s) == std::future_status::ready);
    try {
      const int value = f.get();
      REQUIRE(value == static_cast<int>(id));
    } catch (const respool::error& e) {
      REQUIRE(
          (e.code() == errc::rejected || e.code() == errc::timeout || e.code() == errc::closed));
      refuse(id, e.code());
    } catch (const std::runtime_error&) {
      // the task ran and threw
    }
  }

  const auto s = pool->stats();
  // Fire-and-forget tasks dropped silently (the throwing `execute` under discard, and any
  // fire-and-forget victim of discard_oldest) leave no trace at their submitter: they are
  // accounted in bulk against the pool's counters. Every other task ran exactly once or was
  // refused exactly once, and the refusals by reason match the counters exactly.
  const bool silent_policy =
      sc.policy == rejection_policy::discard || sc.policy == rejection_policy::discard_oldest;
  std::uint64_t silent_drops = 0;
  std::uint64_t seen_rejected = 0, seen_timeout = 0, seen_closed = 0;
  for (std::size_t id = 0; id < total; ++id) {
    const int ran = book.ran[id].load();
    const int refused = book.refused[id].load();
    const bool fire_and_forget = book.forms[id].load() < 2;
    if (ran + refused > 1) {
      FAIL("task " << id << " ran " << ran << " times and was refused " << refused << " times");
    }
    if (ran + refused == 0) {
      if (!fire_and_forget || !silent_policy) {
        FAIL("task " << id << " was lost: never ran, never refused");
      }
      ++silent_drops;
    }
    if (refused == 1) {
      const auto code = static_cast<errc>(book.code[id].load());
      if (code == errc::rejected)
        ++seen_rejected;
      else if (code == errc::timeout)
        ++seen_timeout;
      else if (code == errc::closed)
        ++seen_closed;
      else
        FAIL("task " << id << " refused with an unexpected code");
    }
  }
  INFO("stats: submitted " << s.submitted << ", completed " << s.completed << ", cancelled "
                           << s.cancelled << ", refused " << s.rejected.total() << ", silent drops "
                           << silent_drops);
  REQUIRE(seen_rejected + silent_drops ==
          s.rejected.aborted + s.rejected.discarded + s.rejected.discarded_oldest);
  REQUIRE(seen_timeout == s.rejected.timed_out);
  REQUIRE(seen_closed == s.rejected.closed);

  if (std::getenv("RESPOOL_STRESS_VERBOSE") != nullptr) {
    std::printf(
        "%-28s submitted %llu completed %llu cancelled %llu largest %zu/%zu queue %zu | "
        "aborted %llu caller_ran %llu discarded %llu oldest %llu timed_out %llu closed "
        "%llu | failed %llu silent %llu\n",
        sc.name, static_cast<unsigned long long>(s.submitted),
        static_cast<unsigned long long>(s.completed), static_cast<unsigned long long>(s.cancelled),
        s.largest, sc.max, s.largest_queue, static_cast<unsigned long long>(s.rejected.aborted),
        static_cast<unsigned long long>(s.rejected.caller_ran),
        static_cast<unsigned long long>(s.rejected.discarded),
        static_cast<unsigned long long>(s.rejected.discarded_oldest),
        static_cast<unsigned long long>(s.rejected.timed_out),
        static_cast<unsigned long long>(s.rejected.closed),
        static_cast<unsigned long long>(s.failed), static_cast<unsigned long long>(silent_drops));
  }

  // The counters add up.
  REQUIRE(s.submitted == s.completed + s.rejected.discarded_oldest + s.cancelled);
  REQUIRE(static_cast<std::uint64_t>(submitted_calls.load()) ==
          s.submitted + s.rejected.aborted + s.rejected.caller_ran + s.rejected.discarded +
              s.rejected.timed_out + s.rejected.closed);
  REQUIRE(s.cancelled == ran_by_test);
  REQUIRE(sink_calls.load() == s.failed);
  REQUIRE(s.threads == 0);
  REQUIRE(s.queued == 0);
  REQUIRE(s.active == 0);
  REQUIRE(s.largest <= sc.max);
  REQUIRE(s.largest_queue <= sc.queue);
  // Fire-and-forget tasks that threw on a pool thread (or inline under caller_runs) reached the
  // sink, once each; the ones run here by the test threw at the test instead.
  REQUIRE(s.failed == thrown_by_execute_tasks.load() - thrown_in_test);
  std::uint64_t ran_total = 0;
  for (std::size_t id = 0; id < total; ++id)
    ran_total += static_cast<std::uint64_t>(book.ran[id].load());
  REQUIRE(ran_total == s.completed + s.rejected.caller_ran + ran_by_test);
}

}  // namespace

// One test case per scenario, so a failure names it and ctest can run them side by side.
TEST_CASE("stress: abort, threads_first", "[stress]") {
  run_scenario({"abort/threads_first", rejection_policy::abort, thread_growth::threads_first, 1, 4,
                8, 0ms, false});
}
TEST_CASE("stress: caller_runs, threads_first", "[stress]") {
  run_scenario({"caller_runs/threads_first", rejection_policy::caller_runs,
                thread_growth::threads_first, 2, 4, 4, 0ms, false});
}
TEST_CASE("stress: discard, queue_first", "[stress]") {
  run_scenario({"discard/queue_first", rejection_policy::discard, thread_growth::queue_first, 1, 3,
                6, 0ms, false});
}
TEST_CASE("stress: discard_oldest, threads_first", "[stress]") {
  run_scenario({"discard_oldest/threads_first", rejection_policy::discard_oldest,
                thread_growth::threads_first, 0, 3, 5, 0ms, false});
}
TEST_CASE("stress: discard_oldest, no queue", "[stress]") {
  run_scenario({"discard_oldest/no queue", rejection_policy::discard_oldest,
                thread_growth::threads_first, 1, 3, 0, 0ms, false});
}
TEST_CASE("stress: block with a short timeout, queue_first", "[stress]") {
  run_scenario({"block/queue_first", rejection_policy::block, thread_growth::queue_first, 1, 4, 4,
                1ms, false});
}
TEST_CASE("stress: block with a long timeout, threads_first", "[stress]") {
  run_scenario({"block/threads_first", rejection_policy::block, thread_growth::threads_first, 2, 3,
                16, 2000ms, false});
}
TEST_CASE("stress: abort, shutdown_now midway", "[stress]") {
  run_scenario({"abort/shutdown_now", rejection_policy::abort, thread_growth::threads_first, 1, 4,
                64, 0ms, true});
}
TEST_CASE("stress: caller_runs, queue_first, shutdown_now midway", "[stress]") {
  run_scenario({"caller_runs/shutdown_now", rejection_policy::caller_runs,
                thread_growth::queue_first, 1, 4, 8, 0ms, true});
}
