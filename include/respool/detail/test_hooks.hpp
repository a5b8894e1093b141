#pragma once
// Test-only hooks at the pool's slow-path steps, so a test can force an interleaving that the
// stress test cannot hit reliably (a return landing between a waiter's failed scan and its
// sleep). Unset, a hook costs one load on a path that is about to take a lock or sleep;
// the fast path has none.
#include <atomic>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail::test_hooks {

enum class point : unsigned char {
  before_scan,        // a queued waiter is about to scan for an idle slot
  after_failed_scan,  // its scan found nothing; it has not spun or slept yet
  before_park,        // it is about to sleep (pool lock held)
  before_borrow,      // a caller on the slow path has a slot (claimed or handed over) it has
                      // neither checked nor taken yet
  before_delivery,    // an asynchronous waiter's completion is queued; the thread that will
                      // run it is about to take it off the list (no lock held)
};

using hook_fn = void (*)(point) noexcept;
inline std::atomic<hook_fn> current{nullptr};

inline void fire(point p) noexcept {
  if (hook_fn h = current.load(std::memory_order_acquire)) h(p);  // pairs with set()
}

/// Installs `h` for every pool in the program (null removes it). Tests only.
inline void set(hook_fn h) noexcept { current.store(h, std::memory_order_release); }

}  // namespace detail::test_hooks
RESPOOL_NAMESPACE_END
