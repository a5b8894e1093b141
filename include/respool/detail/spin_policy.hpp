#pragma once
// How long an idle pool thread polls for a hand-off before it sleeps: a policy with a memory.
//
// A hand-off to a polling thread costs no system call on either side, which is most of the cost
// of a short task; a poll that finds nothing burns a core that the producer (or the task's
// database) could have used. So each thread spins only as long as spinning has recently paid:
// after each idle period it compares how long it waited with what it spun for. A wait short
// enough to have been caught (under `max_spin_ns`, about the cost of sleeping and being woken)
// sets the next spin to twice that wait; a longer one halves it, down to not spinning at all.
// Under a trickle (tasks every few hundred microseconds) the spin dies out after a few tasks;
// under a stream it settles at a few times the gap between tasks.
#include <algorithm>
#include <cstdint>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

class adaptive_spin {
 public:
  /// The longest a thread spins: past this, sleeping and being woken costs less.
  static constexpr std::int64_t max_spin_ns = 20'000;

  /// How long the next idle period spins, in nanoseconds (0: sleep at once).
  [[nodiscard]] auto budget_ns() const noexcept -> std::int64_t { return budget_; }

  /// After an idle period that ended with a task after `waited_ns`.
  void after_wait(std::int64_t waited_ns) noexcept {
    if (waited_ns <= max_spin_ns) {
      budget_ = std::min(max_spin_ns, std::max(budget_, 2 * waited_ns));
    } else {
      budget_ /= 2;
    }
  }

 private:
  std::int64_t budget_ = max_spin_ns;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
