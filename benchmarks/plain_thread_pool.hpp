#pragma once
// The thread pool the thread-pool benchmarks measure respool against: the one most people would
// write in an afternoon. A fixed set of threads, one mutex, a condition variable for the workers
// and one for producers waiting for room, a std::deque. With `capacity` 0 the queue is unbounded;
// otherwise `post` waits while it is full (the same back-pressure as respool's `block`).
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

namespace respool_bench {

class plain_thread_pool {
 public:
  explicit plain_thread_pool(std::size_t threads, std::size_t capacity = 0) : capacity_(capacity) {
    for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { work(); });
  }
  plain_thread_pool(const plain_thread_pool&) = delete;
  auto operator=(const plain_thread_pool&) -> plain_thread_pool& = delete;
  ~plain_thread_pool() { join(); }

  void post(std::function<void()> task) {
    {
      std::unique_lock lock(mutex_);
      room_.wait(lock, [this] { return capacity_ == 0 || queue_.size() < capacity_; });
      queue_.push_back(std::move(task));
    }
    ready_.notify_one();
  }

  // Runs what is queued, then joins.
  void join() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock lock(mutex_);
        ready_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      if (capacity_ != 0) room_.notify_one();
      task();
    }
  }

  std::size_t capacity_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable room_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace respool_bench
