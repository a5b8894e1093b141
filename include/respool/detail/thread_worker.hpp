#pragma once
// The thread pool's per-thread records and where they live: `worker` (what a hand-off writes and
// a thread sleeps on), `idle_stack` (the idle threads, most recent first) and `worker_roster`
// (live, exited-but-not-joined and retired records). All of it is guarded by the pool's mutex
// except `worker::has_task`, the hand-off flag a spinning thread polls.
#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <list>
#include <thread>

#include "../version.hpp"
#include "move_only_task.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

struct worker {
  std::thread thread;  // stored by its creator once started
  std::condition_variable wake;
  move_only_task slot;  // a task handed to this thread, valid while has_task
  // Set (release) by whoever hands a task over, under the mutex; taken (acquire exchange) by
  // the thread, which may poll it without the mutex while it spins, or by shutdown_now().
  std::atomic<bool> has_task{false};
  bool sleeping = false;  // blocked on `wake`: a hand-over must notify it
  std::int64_t handed_at = 0;  // steady ns of the last hand-over while it slept (adaptive spin)
  bool idle = false;      // in the idle stack
  bool booting = false;   // started without a task, has not looked at the queue yet
  bool exited = false;    // left before its creator stored `thread`: the creator files it
  worker* idle_prev = nullptr;
  worker* idle_next = nullptr;
  std::list<worker>::iterator self;
  std::size_t number = 0;
};

// Idle threads, most recently idle on top: the next task goes to one of the top two, so the
// ones at the bottom stay idle long enough to reach keep-alive and exit.
class idle_stack {
 public:
  [[nodiscard]] auto size() const noexcept -> std::size_t { return size_; }

  /// Who takes the next task (null if none is idle): the top thread while it is still awake
  /// (spinning: the hand-off costs no system call), else the one below it if there is one.
  /// The thread that went to sleep last usually last ran on the CPU the submitter runs on now
  /// (the submitter's timer or socket wake-up lands on the CPU that just went idle), so the
  /// kernel wakes it there and it preempts the submitter: half an extra context switch per task
  /// under a trickle, 1.7x the CPU of a plain pool (benchmarks/thread_pool_idle_cost.cpp). The
  /// one below is as warm, and its CPU is likely idle.
  [[nodiscard]] auto pick() const noexcept -> worker* {
    if (top_ == nullptr || !top_->sleeping || top_->idle_next == nullptr) return top_;
    return top_->idle_next;
  }

  void push(worker& w) noexcept {
    w.idle = true;
    w.idle_prev = nullptr;
    w.idle_next = top_;
    if (top_ != nullptr) top_->idle_prev = &w;
    top_ = &w;
    ++size_;
  }

  void remove(worker& w) noexcept {
    if (w.idle_prev != nullptr) {
      w.idle_prev->idle_next = w.idle_next;
    } else {
      top_ = w.idle_next;
    }
    if (w.idle_next != nullptr) w.idle_next->idle_prev = w.idle_prev;
    w.idle_prev = w.idle_next = nullptr;
    w.idle = false;
    --size_;
  }

 private:
  worker* top_ = nullptr;
  std::size_t size_ = 0;
};

// Every record the pool ever made, in one of three lists. A record is freed only with the pool,
// so a late notify (a hand-over racing a thread's exit) reaches a record, never freed memory.
// Moving between lists is a splice: it cannot fail, so a thread on its way out never allocates.
//  - live: threads running or being started;
//  - exited: threads that left, with their handles, to be joined (by the next thread to leave,
//    the next start, or shutdown) and then retired;
//  - retired: joined records, reused by the next thread.
class worker_roster {
 public:
  using list = std::list<worker>;

  /// A record for a new thread (a retired one if there is one). May throw std::bad_alloc.
  auto add() -> worker& {
    if (retired_.empty()) {
      live_.emplace_back();
    } else {
      live_.splice(live_.end(), retired_, retired_.begin());
    }
    worker& w = live_.back();
    w.self = std::prev(live_.end());
    w.sleeping = w.idle = w.booting = w.exited = false;
    w.idle_prev = w.idle_next = nullptr;
    return w;
  }

  template <class F>
  void for_each_live(F&& f) {
    for (worker& w : live_) f(w);
  }

  void retire(worker& w) noexcept { retired_.splice(retired_.end(), live_, w.self); }
  void file_exited(worker& w) noexcept { exited_.splice(exited_.end(), live_, w.self); }

  /// The exited records, for the caller to join outside the mutex and then `retire_all`.
  auto take_exited() noexcept -> list {
    list out;
    out.splice(out.end(), exited_);
    return out;
  }
  void retire_all(list& joined) noexcept { retired_.splice(retired_.end(), joined); }

  static void join_all(list& exited) noexcept {
    for (worker& w : exited) {
      if (w.thread.joinable()) w.thread.join();
    }
  }

 private:
  list live_;
  list exited_;
  list retired_;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
