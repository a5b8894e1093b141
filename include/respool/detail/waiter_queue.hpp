#pragma once
// The queue of callers waiting for a resource: intrusive, FIFO by arrival ticket, and guarded by
// the pool's lock (every member is `_locked` in spirit: the caller holds it). It knows nothing
// of slots, clocks or threads: a waiter is any record deriving from waiter_link, so a blocked
// thread, a callback or a suspended coroutine can wait in the same queue under one fairness
// rule.
//
// Invariants:
//  Q1. The queue is sorted by ticket; tickets are handed out in arrival order and never reused.
//  Q2. A waiter that leaves and rejoins (a hand-off that failed its borrow check) keeps its
//      ticket, so it goes back to its place, ahead of everyone who came after it.
//  Q3. size() is the number of linked waiters; `queued` is true exactly while linked.
//  Q4. A waiter is in at most one of the queue and a delivery_list (an asynchronous waiter
//      served or failed, waiting for someone to run its completion): both use the same links.
#include <cstddef>
#include <cstdint>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

struct waiter_link {
  waiter_link* next = nullptr;
  waiter_link* prev = nullptr;
  std::uint64_t ticket = 0;  // 0: not yet queued
  bool queued = false;
  bool pending = false;  // in a delivery_list (Q4)
};

// Takes `l` out of the doubly linked list from `head` to `tail` (both lists below use it).
inline void unlink(waiter_link& l, waiter_link*& head, waiter_link*& tail) noexcept {
  (l.prev != nullptr ? l.prev->next : head) = l.next;
  (l.next != nullptr ? l.next->prev : tail) = l.prev;
  l.next = l.prev = nullptr;
}

template <class W>
class waiter_queue {
 public:
  [[nodiscard]] auto size() const noexcept -> std::size_t { return size_; }
  [[nodiscard]] auto empty() const noexcept -> bool { return size_ == 0; }
  [[nodiscard]] auto front() const noexcept -> W* { return static_cast<W*>(head_); }

  /// Queues `w` at its ticket's place: at the back on first arrival (Q1), at its old place when
  /// it rejoins (Q2).
  void push(W& w) noexcept {
    if (w.ticket == 0) w.ticket = ++last_ticket_;
    waiter_link* after = tail_;
    while (after != nullptr && after->ticket > w.ticket) after = after->prev;
    w.prev = after;
    w.next = after != nullptr ? after->next : head_;
    (w.next != nullptr ? w.next->prev : tail_) = &w;
    (after != nullptr ? after->next : head_) = &w;
    w.queued = true;
    ++size_;
  }

  void remove(W& w) noexcept {
    if (!w.queued) return;
    unlink(w, head_, tail_);
    w.queued = false;
    --size_;
  }

  /// The oldest waiter for which `pred` holds, or null.
  template <class Pred>
  auto find_first(Pred&& pred) const noexcept -> W* {
    for (waiter_link* l = head_; l != nullptr; l = l->next)
      if (pred(*static_cast<W*>(l))) return static_cast<W*>(l);
    return nullptr;
  }

  template <class F>
  void for_each(F&& f) const noexcept {
    for (waiter_link* l = head_; l != nullptr;) {
      waiter_link* next = l->next;  // f may remove l
      f(*static_cast<W*>(l));
      l = next;
    }
  }

 private:
  waiter_link* head_ = nullptr;
  waiter_link* tail_ = nullptr;
  std::size_t size_ = 0;
  std::uint64_t last_ticket_ = 0;
};

// Waiters served or failed whose completion has not run yet, in the order they were served
// (Q4). Guarded by the pool's lock.
template <class W>
class delivery_list {
 public:
  [[nodiscard]] auto empty() const noexcept -> bool { return head_ == nullptr; }

  void push_back(W& w) noexcept {
    w.next = nullptr;
    w.prev = tail_;
    (tail_ != nullptr ? tail_->next : head_) = &w;
    tail_ = &w;
    w.pending = true;
  }

  auto pop_front() noexcept -> W* {
    waiter_link* l = head_;
    if (l != nullptr) remove(*static_cast<W*>(l));
    return static_cast<W*>(l);
  }

  void remove(W& w) noexcept {
    if (!w.pending) return;
    unlink(w, head_, tail_);
    w.pending = false;
  }

 private:
  waiter_link* head_ = nullptr;
  waiter_link* tail_ = nullptr;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
