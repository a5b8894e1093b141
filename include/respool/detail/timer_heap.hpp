#pragma once
// The deadlines of asynchronous waiters, earliest first: an intrusive binary min-heap, so the
// pool's housekeeper sleeps until the next one instead of a thread per waiter. Guarded by the
// pool's lock, like the waiter queue. A record takes part through two members:
// `std::int64_t deadline` (its key) and `std::size_t timer_index` (its place, `npos` while out).
//
// Invariants:
//  H1. heap_[0] has the earliest deadline; each entry's deadline is no earlier than its parent's.
//  H2. w.timer_index == i exactly while heap_[i] == &w; npos while w is not in the heap.
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

template <class W>
class timer_heap {
 public:
  static constexpr std::size_t npos = static_cast<std::size_t>(-1);

  [[nodiscard]] auto empty() const noexcept -> bool { return heap_.empty(); }
  [[nodiscard]] auto size() const noexcept -> std::size_t { return heap_.size(); }
  /// The earliest, or null.
  [[nodiscard]] auto top() const noexcept -> W* { return heap_.empty() ? nullptr : heap_.front(); }

  /// Adds `w` by its deadline. False (and nothing changed) if there is no memory for it.
  [[nodiscard]] auto push(W& w) noexcept -> bool {
    try {
      heap_.push_back(&w);
    } catch (...) {
      return false;
    }
    w.timer_index = heap_.size() - 1;
    sift_up(w.timer_index);
    return true;
  }

  /// Takes `w` out, wherever it is; nothing if it is not in.
  void remove(W& w) noexcept {
    const auto i = w.timer_index;
    if (i == npos) return;
    w.timer_index = npos;
    W* last = heap_.back();
    heap_.pop_back();
    if (i == heap_.size()) return;  // it was the last
    place(i, last);
    sift_up(i);
    sift_down(last->timer_index);
  }

 private:
  void place(std::size_t i, W* w) noexcept {
    heap_[i] = w;
    w->timer_index = i;
  }
  void sift_up(std::size_t i) noexcept {
    W* w = heap_[i];
    while (i > 0) {
      const auto parent = (i - 1) / 2;
      if (heap_[parent]->deadline <= w->deadline) break;
      place(i, heap_[parent]);
      i = parent;
    }
    place(i, w);
  }
  void sift_down(std::size_t i) noexcept {
    W* w = heap_[i];
    const auto n = heap_.size();
    for (;;) {
      auto child = 2 * i + 1;
      if (child >= n) break;
      if (child + 1 < n && heap_[child + 1]->deadline < heap_[child]->deadline) ++child;
      if (w->deadline <= heap_[child]->deadline) break;
      place(i, heap_[child]);
      i = child;
    }
    place(i, w);
  }

  std::vector<W*> heap_;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
