#pragma once
// One pooled resource's place in the pool: a cache line of its own with an atomic state word, so
// claiming and returning it is one CAS that no other slot's traffic disturbs.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstdint>
#include <optional>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

// The state word: a state in the low byte, flags above it.
namespace slot_state {
inline constexpr std::uint32_t empty = 0;     // no resource; counts as free capacity
inline constexpr std::uint32_t creating = 1;  // the creator is making a resource here
inline constexpr std::uint32_t idle = 2;      // ready: claimed by CAS idle -> in_use
inline constexpr std::uint32_t in_use = 3;    // leased
inline constexpr std::uint32_t reserved = 4;  // housekeeping holds it (keepalive, eviction, close)
inline constexpr std::uint32_t mask = 0xffU;
// Flags, only ever on an in_use slot:
// waiters are queued, so the holder must return through the slow path (hand-off) instead of the
// one-CAS fast return. Set and cleared under the pool's lock; see pool_core for the argument.
inline constexpr std::uint32_t wanted = 1U << 8U;
// the pool was destroyed while this slot was leased: the returning holder destroys the resource
// and drops the pool's last references.
inline constexpr std::uint32_t orphaned = 1U << 9U;
}  // namespace slot_state

inline constexpr std::size_t cache_line = 64;

template <class R>
struct alignas(cache_line) slot {
  std::atomic<std::uint32_t> state{slot_state::empty};
  std::uint32_t index = 0;

  // Written by the thread that owns the slot (leased, reserved or creating) only.
  std::uint64_t uses = 0;
  std::uint64_t generation = 0;     // eviction generation it was created in

  // Read by other threads (housekeeper, stats) without owning the slot.
  std::atomic<std::int64_t> expires_at{0};    // pool clock, ns; INT64_MAX: no lifetime limit
  std::atomic<std::int64_t> last_checked{0};  // last keepalive validation or creation, ns
  std::atomic<std::int64_t> last_used{0};          // coarse clock at return or creation
  std::atomic<std::uint64_t> acquisitions{0};      // owner increments with load+store
  std::atomic<std::int64_t> acquired_at{0};        // for leak detection
  std::atomic<const char*> site_file{""};
  std::atomic<const char*> site_function{""};
  std::atomic<std::uint_least32_t> site_line{0};
  std::atomic<std::uint64_t> leak_reported{0};     // the acquisition number reported as leaked

  std::optional<R> resource;

#if RESPOOL_DEBUG_CHECKS
  // How many leases hold this slot: checked to be 0 or 1 at every grant and return.
  std::atomic<int> debug_holders{0};
#endif
};

// With RESPOOL_DEBUG_CHECKS, a broken invariant stops the program with a message instead of
// corrupting a connection's session.
[[noreturn]] inline void debug_check_failed(const char* what) noexcept {
  std::fputs("respool: debug check failed: ", stderr);
  std::fputs(what, stderr);
  std::fputc('\n', stderr);
  std::abort();
}

}  // namespace detail
RESPOOL_NAMESPACE_END
