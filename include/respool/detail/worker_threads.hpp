#pragma once
// Threads that several pools share for their background work: keyed_pool's sub-pools (and
// cluster_pool's two) hand their workers' loops here instead of each starting and keeping
// threads of its own. A task runs on an idle thread, or on a new one when none is idle; a thread
// with nothing to do lingers (2 s) for the next task of any pool, then exits.
//
// Invariants (the lock is shared::mutex):
//  T1. Every task run() accepted runs exactly once: a thread takes it, or it was started for it.
//      run() starts a thread unless more threads are idle than tasks queued, so no task waits
//      for a busy thread.
//  T2. Threads hold the shared state, not the handle: destroying the handle lets idle threads
//      exit at once; a running task finishes first (a pool's close() does not wait on user code
//      that hangs, and neither does this).
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <utility>

#include "../version.hpp"
#include "move_only_task.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

class worker_threads {
 public:
  static constexpr auto linger = std::chrono::seconds(2);

  worker_threads() : st_(std::make_shared<shared>()) {}
  worker_threads(const worker_threads&) = delete;
  auto operator=(const worker_threads&) -> worker_threads& = delete;
  ~worker_threads() {
    {
      std::lock_guard lk(st_->mutex);
      st_->stopping = true;
    }
    st_->cv.notify_all();
  }

  // Runs `task` on a thread of the set (T1). False, with nothing kept, when no thread or queue
  // entry can be had (memory, thread limits): the caller tries again later, as it would after
  // a failed std::thread.
  auto run(move_only_task task) noexcept -> bool {
    std::unique_lock lk(st_->mutex);
    try {
      st_->tasks.push_back(std::move(task));
    } catch (...) {
      return false;
    }
    if (st_->idle >= st_->tasks.size()) {
      st_->cv.notify_one();
      return true;
    }
    try {
      std::thread([st = st_] { loop(*st); }).detach();
    } catch (...) {
      st_->tasks.pop_back();
      return false;
    }
    return true;
  }

  // Threads alive now (for tests).
  [[nodiscard]] auto threads() const -> std::size_t {
    std::lock_guard lk(st_->mutex);
    return st_->threads;
  }

 private:
  struct shared {
    std::mutex mutex;
    std::condition_variable cv;
    std::deque<move_only_task> tasks;
    std::size_t idle = 0;
    std::size_t threads = 0;
    bool stopping = false;
  };

  static void loop(shared& st) noexcept {
    std::unique_lock lk(st.mutex);
    ++st.threads;
    for (;;) {
      if (!st.tasks.empty()) {
        move_only_task t = std::move(st.tasks.front());
        st.tasks.pop_front();
        lk.unlock();
        t();  // a pool's worker loop: noexcept, returns when its pool has nothing left
        lk.lock();
        continue;
      }
      if (st.stopping) break;
      ++st.idle;
      const bool woke = st.cv.wait_for(lk, linger, [&] { return st.stopping || !st.tasks.empty(); });
      --st.idle;
      if (!woke) break;
    }
    --st.threads;
  }

  std::shared_ptr<shared> st_;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
