#pragma once
// For detect_nested_acquire: the leases this thread took from such pools, so that its next
// acquire() can tell it is nested. Keyed by pool id, as thread_hint.hpp explains; trivially
// constructible, so access needs no initialisation guard. An entry remembers a grant and nothing
// more: whether that lease is still out is the pool's to say (it may have been moved to another
// thread and returned there, which cannot reach this thread's entries).
#include <cstdint>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

struct held_leases {
  struct entry {
    std::uint64_t pool_id;      // 0: a free entry
    std::uint64_t acquisition;  // the slot's acquisition number at the grant
    std::uint32_t slot;
  };
  // A thread holding more leases than this at once (from all such pools) overwrites entries:
  // a report may then be missed, never made up.
  static constexpr std::uint32_t ways = 8;
  entry held[ways];
  std::uint32_t used;  // entries not free; with none, an acquire need not look
  std::uint32_t next_victim;
  // A report's callback runs on this thread: what it acquires is not reported (a callback that
  // logs through the pool would otherwise report its own acquire, and so on without end).
  bool reporting;

  void note(std::uint64_t pool, std::uint32_t slot, std::uint64_t acquisition) noexcept {
    if (used < ways) {
      for (auto& w : held) {
        if (w.pool_id == 0) {
          w = {pool, acquisition, slot};
          ++used;
          return;
        }
      }
    }
    held[next_victim++ % ways] = {pool, acquisition, slot};
  }

  void forget(std::uint64_t pool, std::uint32_t slot, std::uint64_t acquisition) noexcept {
    for (auto& w : held) {
      if (w.pool_id == pool && w.slot == slot && w.acquisition == acquisition) {
        w.pool_id = 0;
        --used;
        return;
      }
    }
  }

  /// Keeps the entries of `pool` for which `still_held(entry)` is true; frees the others.
  template <class Pred>
  void keep_if(std::uint64_t pool, Pred&& still_held) noexcept {
    for (auto& w : held) {
      if (w.pool_id == pool && !still_held(w)) {
        w.pool_id = 0;
        --used;
      }
    }
  }
};

inline thread_local held_leases tls_held_leases{};

}  // namespace detail
RESPOOL_NAMESPACE_END
