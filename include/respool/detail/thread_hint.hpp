#pragma once
// A per-thread memory of the slot this thread returned last, per pool. A `thread_local` inside a
// class template would be per type, not per pool object, so the cache is keyed by a process-wide
// unique pool id. Trivially constructible, so access needs no initialisation guard.
#include <atomic>
#include <cstdint>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

struct thread_hints {
  static constexpr std::uint32_t ways = 4;
  static constexpr std::uint32_t none = 0xffffffffU;  // find()'s answer when it has no hint
  std::uint64_t pool_id[ways];
  std::uint32_t slot[ways];
  std::uint32_t next_victim;

  // The hinted slot for `id`, or `fallback` if this thread has none.
  auto find(std::uint64_t id, std::uint32_t fallback) const noexcept -> std::uint32_t {
    for (std::uint32_t i = 0; i < ways; ++i)
      if (pool_id[i] == id) return slot[i];
    return fallback;
  }
  void remember(std::uint64_t id, std::uint32_t index) noexcept {
    for (std::uint32_t i = 0; i < ways; ++i) {
      if (pool_id[i] == id) {
        slot[i] = index;
        return;
      }
    }
    const auto victim = next_victim++ % ways;
    pool_id[victim] = id;
    slot[victim] = index;
  }
};

inline thread_local thread_hints tls_hints{};

// Pool ids start at 1; 0 marks an unused hint way. Never reused, so a stale hint cannot match.
inline auto next_pool_id() noexcept -> std::uint64_t {
  static std::atomic<std::uint64_t> counter{0};
  return counter.fetch_add(1, std::memory_order_relaxed) + 1;
}

}  // namespace detail
RESPOOL_NAMESPACE_END
