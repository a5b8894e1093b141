// Threads that left after keep_alive are joined promptly, not kept until the next thread start.
//
// Defect covered: a thread leaving after keep_alive put its std::thread on a list that was joined
// only by the next start_thread() or by shutdown(). Until then every exited thread kept its stack
// mapped (glibc frees, or caches, a joinable thread's stack only when it is joined): a pool that
// grew to 32 threads and shrank back to 1 kept 31 stacks (248 MiB of address space with 8 MiB
// stacks) for as long as it was not asked to start a thread again. Expected: an exited thread is
// joined promptly; at rest at most one exited-but-unjoined thread remains.
//
// "threads that left after keep_alive are joined promptly: their stacks are released" (Linux
// only; elsewhere it succeeds without checking):
//  - core 1, max 32, keep_alive 50 ms; 32 tasks held until all have started (32 threads), then
//    released; the pool must shrink to 1 thread within 3 s;
//  - the OS thread count (/proc/self/task) must come back to within baseline + 2 (part of the
//    contract; the kernel reaps an exited thread whether or not it was joined, so this holds on
//    the code with the defect too);
//  - the key check: of the 32 stacks (each task records its own with pthread_getattr_np), at
//    most core + 1 unjoined + what glibc's stack cache keeps (40 MiB by default) may still be
//    mapped (/proc/self/maps), within 2 s. Fails today: all 32 stay mapped.
#include <respool/thread_pool.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <vector>

#include "respool_catch.hpp"
#include "thread_pool_helpers.hpp"

#if defined(__linux__)
#include <pthread.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#endif

using namespace std::chrono_literals;
using respool::thread_pool;
using respool_test::counter;
using respool_test::eventually;
using respool_test::gate;

#if defined(__linux__)

namespace {

struct address_range {
  std::uintptr_t low = 0;
  std::uintptr_t high = 0;  // one past the end
};

// The calling thread's stack: the whole block glibc mapped for it, guard page included.
auto this_thread_stack() -> address_range {
  pthread_attr_t attr;
  if (pthread_getattr_np(pthread_self(), &attr) != 0) return {};
  void* address = nullptr;
  std::size_t size = 0;
  const int rc = pthread_attr_getstack(&attr, &address, &size);
  pthread_attr_destroy(&attr);
  if (rc != 0) return {};
  const auto low = reinterpret_cast<std::uintptr_t>(address);
  return {low, low + size};
}

auto mappings() -> std::vector<address_range> {
  std::vector<address_range> result;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream fields(line);
    address_range r;
    char dash = 0;
    fields >> std::hex >> r.low >> dash >> r.high;
    if (fields && dash == '-') result.push_back(r);
  }
  return result;
}

// How many of the stacks are still mapped: one mapping spans the stack from just above its guard
// (allowing up to 64 KiB of guard) to its top. A small mapping placed later into a freed stack's
// range does not count.
auto still_mapped(const std::vector<address_range>& stacks) -> std::size_t {
  const auto maps = mappings();
  std::size_t n = 0;
  for (const auto& s : stacks) {
    for (const auto& m : maps) {
      if (m.low <= s.low + 64 * 1024 && m.high >= s.high) {
        ++n;
        break;
      }
    }
  }
  return n;
}

// The threads of this process, as the kernel counts them.
auto os_threads() -> std::size_t {
  std::size_t n = 0;
  std::error_code ec;
  for (std::filesystem::directory_iterator it("/proc/self/task", ec), end; !ec && it != end;
       it.increment(ec)) {
    ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("threads that left after keep_alive are joined promptly: their stacks are released",
          "[reaping][keep_alive]") {
  constexpr std::size_t core = 1;
  constexpr std::size_t n = 32;
  const std::size_t baseline = os_threads();
  REQUIRE(baseline >= 1);

  std::mutex stacks_mutex;
  std::vector<address_range> stacks;
  gate g;
  counter started;
  thread_pool pool{{.core_threads = core, .max_threads = n, .queue_capacity = 0,
                    .keep_alive = 50ms}};
  for (std::size_t i = 0; i < n; ++i) {
    pool.execute([&] {
      const auto stack = this_thread_stack();
      {
        std::lock_guard lock(stacks_mutex);
        stacks.push_back(stack);
      }
      started.add();
      g.wait();  // until all of them have started: n threads at once
    });
  }
  REQUIRE(started.wait_for_at_least(static_cast<int>(n)));
  REQUIRE(pool.stats().threads == n);
  g.open();
  REQUIRE(pool.wait_idle(5s));
  REQUIRE(eventually([&] { return pool.stats().threads == core; }, 3s));

  std::vector<address_range> seen;
  {
    std::lock_guard lock(stacks_mutex);
    seen = stacks;
  }
  REQUIRE(seen.size() == n);
  const std::size_t stack_size = seen.front().high - seen.front().low;
  REQUIRE(stack_size > 0);
  // glibc keeps up to 40 MiB of joined threads' stacks for reuse (its default stack cache).
  const std::size_t cached = (std::size_t{40} << 20) / stack_size + 1;
  const std::size_t allowed = core + 1 + cached;
  if (allowed + 4 > n) {
    WARN("stacks of " << stack_size << " bytes: glibc's cache could hold most of them; the "
                      << "stack check is skipped");
    return;
  }

  // Contract (holds with the defect too: the kernel reaps exited threads, joined or not).
  std::size_t threads_now = 0;
  const bool few_threads = eventually(
      [&] {
        threads_now = os_threads();
        return threads_now <= baseline + core + 1;
      },
      2s);
  INFO("OS threads: baseline " << baseline << ", now " << threads_now);
  CHECK(few_threads);

  std::size_t mapped = 0;
  const bool released = eventually(
      [&] {
        mapped = still_mapped(seen);
        return mapped <= allowed;
      },
      2s);
  INFO(mapped << " of " << n << " thread stacks (" << (stack_size >> 10)
              << " KiB each) still mapped; at most " << allowed
              << " allowed (core, one unjoined, glibc's cache)");
  CHECK(released);
}

#else

TEST_CASE("threads that left after keep_alive are joined promptly: their stacks are released",
          "[reaping][keep_alive]") {
  SUCCEED("measured through /proc/self: Linux only");
}

#endif
