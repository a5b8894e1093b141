#pragma once
// Helpers for the thread pool's tests: hold tasks until the test lets them go, and wait for a
// condition with a generous bound instead of sleeping for a guessed time. Nothing here asserts on
// speed: on a loaded 2-core machine only "eventually, within seconds" is reliable.
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

// ThreadSanitizer cannot see the reference counts libstdc++ keeps on exception objects (they live
// in the uninstrumented libsupc++): when a task's exception travels through a std::future and the
// pool thread happens to drop the last reference to the future's state after the test caught it,
// TSan reports the exception's destruction as racing with the test's reads. That pairing is
// synchronised by the (invisible) atomic count, so it is suppressed here, and only that pairing.
// Each test executable is one translation unit that includes this header once.
#if defined(__SANITIZE_THREAD__)
#define RESPOOL_TEST_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define RESPOOL_TEST_TSAN 1
#endif
#endif
#if defined(RESPOOL_TEST_TSAN)
extern "C" auto __tsan_default_suppressions() -> const
    char*;  // NOLINT(bugprone-reserved-identifier)
extern "C" auto __tsan_default_suppressions() -> const char* {
  return "race:std::__future_base::_Result_base::_Deleter::operator()\n";
}
#endif

namespace respool_test {

using namespace std::chrono_literals;

// Long enough that only a real bug (a hang, a lost wake-up) reaches it.
inline constexpr auto patience = std::chrono::seconds{20};

// A door that tasks wait at until the test opens it. A wait gives up after `patience` so a
// failing test cannot hang the run; it returns whether the door was opened.
class gate {
 public:
  void open() {
    {
      std::lock_guard lock(mutex_);
      open_ = true;
    }
    cv_.notify_all();
  }
  auto wait() -> bool {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, patience, [this] { return open_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Counts events (tasks started, tasks finished) and lets the test wait for a number of them.
class counter {
 public:
  void add(int n = 1) {
    {
      std::lock_guard lock(mutex_);
      value_ += n;
    }
    cv_.notify_all();
  }
  [[nodiscard]] auto value() -> int {
    std::lock_guard lock(mutex_);
    return value_;
  }
  // Waits until at least `n` events; returns whether they happened within `patience`.
  auto wait_for_at_least(int n) -> bool {
    std::unique_lock lock(mutex_);
    return cv_.wait_for(lock, patience, [&] { return value_ >= n; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  int value_ = 0;
};

// Submits `n` tasks that each count themselves in `started` and then wait at `g`, and waits
// until all of them run: the pool then has `n` busy threads. False if they did not start within
// `patience`.
template <class Pool>
auto occupy(Pool& pool, int n, gate& g, counter& started) -> bool {
  const int target = started.value() + n;
  for (int i = 0; i < n; ++i) {
    pool.execute([&g, &started] {
      started.add();
      g.wait();
    });
  }
  return started.wait_for_at_least(target);
}

// Polls `condition` until it holds or `patience` passes; returns whether it held.
template <class Condition>
auto eventually(Condition condition, std::chrono::milliseconds limit = patience) -> bool {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!condition()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace respool_test
