#pragma once
// One pooled resource's place in the pool: a cache line of its own with an atomic state word, so
// claiming and returning it is one CAS that no other slot's traffic disturbs. The states and who
// may move a slot between them are in slot_table.hpp.
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <source_location>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

inline constexpr std::size_t cache_line = 64;

template <class R>
struct alignas(cache_line) slot {
  std::atomic<std::uint32_t> state{0};  // slot_state: 0 is empty
  std::uint32_t index = 0;

  // Written only by the slot's owner (the holder of its lease, or the pool's thread that has it
  // creating or reserved); the state CAS that hands ownership over orders them.
  std::uint64_t uses = 0;
  std::uint32_t generation = 0;  // eviction generation it was created in
  unsigned int uncaught_at_grant = 0;  // the granting thread's uncaught exceptions (lease.hpp)
  std::int64_t use_timed_from = 0;  // steady ns at grant when this hold is timed, else 0
  std::int64_t timed_tick = 0;      // the coarse clock at its last timed hold (pool_core::grant)

  // Read by other threads (housekeeping, stats, leak reports) without owning the slot.
  std::atomic<std::int64_t> expires_at{0};    // pool time, ns; never_ns: no lifetime limit
  std::atomic<std::int64_t> last_checked{0};  // last keepalive validation or creation
  std::atomic<std::int64_t> last_used{0};     // coarse clock at return or creation
  std::atomic<std::uint64_t> acquisitions{0};  // owner increments with load+store
  std::atomic<std::int64_t> acquired_at{0};    // for leak detection
  // Where the lease out was acquired: the call's source_location whole (one pointer in
  // libstdc++ and libc++), so a grant stores one word and only a reader unpacks it.
  std::atomic<std::source_location> site{};
  std::atomic<std::uint64_t> leak_reported{0};  // the acquisition number reported as leaked
  // evict_if() predicates wait for this resource (pool_core::evict_checks_): its owner applies
  // them on return or at its next borrow. seq_cst on both sides (see pool_core::evict_if).
  std::atomic<bool> evict_check{false};
  // detect_nested_acquire: leased, under acquisition number `acquisitions` (pool_core::still_held).
  std::atomic<bool> held{false};
  // Owner-written like the fields at the top, kept here where a byte was free: its last lease was
  // unwound (on_unwind = validate), so it is validated before it is lent again.
  bool must_validate = false;
  // Where the resource came from, as its factory said (concepts.hpp, origin_factory): a
  // cluster_pool's endpoint id; 0 otherwise. Owner-written at creation, read by its owners.
  std::uint32_t origin = 0;

  std::optional<R> resource;

#if RESPOOL_DEBUG_CHECKS
  // How many leases hold this slot: checked to be 0 or 1 at every grant and return.
  std::atomic<int> debug_holders{0};
#endif
};

// Two cache lines for a pointer-sized resource (a connection handle): a field added where no gap
// is left would make every slot three. (Debug checks' holder count makes them three anyway.)
#if !RESPOOL_DEBUG_CHECKS
static_assert(sizeof(std::source_location) > sizeof(void*) ||
              sizeof(slot<void*>) == 2 * cache_line);
#endif

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
