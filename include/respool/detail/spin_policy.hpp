#pragma once
// How long an idle pool thread polls for a hand-off before it sleeps: a policy with a memory.
//
// A hand-off to a polling thread costs no system call on either side, which is most of the cost
// of a short task; a poll that finds nothing burns a core that the producer (or the task's
// database) could have used. So a thread spins only when its last idle period says spinning
// would have paid: that period's gap (from going idle to being handed a task, as stamped by the
// hand-off) was under `max_spin_ns`, about what sleeping and being woken costs. It then spins a
// few times that gap; after a longer gap it does not spin at all. Under a trickle (a task every
// few hundred microseconds) threads sleep at once, save after the odd short gap; under a stream
// they settle at a few times the gap between tasks.
#include <algorithm>
#include <cstdint>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

class adaptive_spin {
 public:
  /// The longest a thread spins: past this, sleeping and being woken costs less.
  static constexpr std::int64_t max_spin_ns = 20'000;
  /// The shortest spin worth starting: a few clock reads' worth of polls.
  static constexpr std::int64_t min_spin_ns = 2'000;

  /// How long the next idle period spins, in nanoseconds (0: sleep at once).
  [[nodiscard]] auto budget_ns() const noexcept -> std::int64_t { return budget_; }

  /// After an idle period whose task was handed over `gap_ns` after the thread went idle.
  void after_wait(std::int64_t gap_ns) noexcept {
    budget_ = gap_ns <= max_spin_ns ? std::clamp(4 * gap_ns, min_spin_ns, max_spin_ns) : 0;
  }

 private:
  std::int64_t budget_ = max_spin_ns;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
