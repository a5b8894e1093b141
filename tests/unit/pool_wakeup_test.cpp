// No lost wake-up: a resource returned in the window between a waiter's failed scan and its
// sleep reaches that waiter. The window is forced with the pool's test hook (detail/
// test_hooks.hpp), so each case hits it every run instead of once in a million cycles.
//
// On the old design (a waiter's failed claim and the flag that makes the next return hand off
// were two steps), a return in that window left the slot idle and unflagged while the waiter
// slept beside it: with max_size 1 it timed out reporting "idle 1".
#include <respool/pool.hpp>

#include <atomic>
#include <future>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::resource;
using respool_test::test_factory;

namespace {
namespace hooks = respool::detail::test_hooks;

// What the hook does: at the `fire_at`-th failed scan, return the lease the test holds.
std::atomic<respool::lease<resource>*> g_held{nullptr};
std::atomic<int> g_failed_scans{0};
std::atomic<int> g_fire_at{1};

void return_in_window(hooks::point p) noexcept {
  if (p != hooks::point::after_failed_scan) return;
  if (g_failed_scans.fetch_add(1) + 1 != g_fire_at.load()) return;
  if (auto* l = g_held.exchange(nullptr)) l->return_to_pool();
}

struct hook_guard {
  explicit hook_guard(int fire_at) {
    g_failed_scans = 0;
    g_fire_at = fire_at;
    hooks::set(&return_in_window);
  }
  ~hook_guard() { hooks::set(nullptr); }
  hook_guard(const hook_guard&) = delete;
  auto operator=(const hook_guard&) -> hook_guard& = delete;
};

// Holds the pool's only resource, lets one waiter queue, and returns the resource from inside
// the waiter's window. Returns how the waiter fared.
auto waiter_served_after_return_in_window(respool::pool<test_factory>& p, int fire_at)
    -> std::error_code {
  auto held = p.acquire();
  g_held = &held;
  hook_guard guard(fire_at);
  auto result = std::async(std::launch::async, [&] {
    std::error_code ec;
    auto l = p.acquire(5s, ec);
    return ec;
  });
  const bool in_time = result.wait_for(4s) == std::future_status::ready;
  CHECK(in_time);  // served at once, not after its timeout
  const auto ec = result.get();
  CHECK(g_held.load() == nullptr);  // the hook did run in the window
  return ec;
}
}  // namespace

TEST_CASE("a return between a spinning waiter's failed scan and its sleep is handed to it") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  CHECK_FALSE(waiter_served_after_return_in_window(p, 1));
  CHECK(p.stats().timeouts == 0);
}

TEST_CASE("strict FIFO: a return in the window is handed to the waiter") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .fairness_window = 0us}};
  CHECK_FALSE(waiter_served_after_return_in_window(p, 1));
  CHECK(p.stats().timeouts == 0);
}

TEST_CASE("a return in the window of a parked waiter that is not yet due goes idle and wakes it") {
  test_factory f;
  // A long fairness window: the return is not handed over but made idle, and the waiter must
  // be woken to take it. The second failed scan comes after the waiter has slept once (it
  // re-reads its clock at least every second), when it no longer spins.
  respool::pool p{f, {.max_size = 1, .fairness_window = 10s}};
  CHECK_FALSE(waiter_served_after_return_in_window(p, 2));
  CHECK(p.stats().timeouts == 0);
  CHECK(p.stats().idle == 1);
}
