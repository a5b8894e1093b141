#pragma once
// The baseline the pool benchmarks measure respool against: the pool most people would write in
// an afternoon. One mutex, one condition variable, a LIFO stack of idle resources; created
// lazily up to max_size, outside the lock. No validation, no timeouts, no fairness (a returning
// thread can take back what it just returned before a woken waiter runs).
//
// Storage is reserved up front, so a steady acquire/release cycle allocates nothing, as in
// respool; the comparison is about synchronisation, not the allocator.
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace respool_bench {

// `Make` is a callable returning std::unique_ptr<R>.
template <class R, class Make>
class baseline_pool {
 public:
  class handle {
   public:
    handle() = default;
    handle(handle&& o) noexcept
        : pool_(std::exchange(o.pool_, nullptr)), r_(std::exchange(o.r_, nullptr)) {}
    auto operator=(handle&& o) noexcept -> handle& {
      if (this != &o) {
        reset();
        pool_ = std::exchange(o.pool_, nullptr);
        r_ = std::exchange(o.r_, nullptr);
      }
      return *this;
    }
    handle(const handle&) = delete;
    auto operator=(const handle&) -> handle& = delete;
    ~handle() { reset(); }

    auto operator*() const noexcept -> R& { return *r_; }
    auto operator->() const noexcept -> R* { return r_; }
    void reset() noexcept {
      if (r_ != nullptr) pool_->release(std::exchange(r_, nullptr));
    }

   private:
    friend class baseline_pool;
    handle(baseline_pool* p, R* r) noexcept : pool_(p), r_(r) {}
    baseline_pool* pool_ = nullptr;
    R* r_ = nullptr;
  };

  baseline_pool(Make make, std::size_t max_size) : make_(std::move(make)), max_size_(max_size) {
    all_.reserve(max_size);
    idle_.reserve(max_size);
  }

  /// Creates every resource now, as respool's min_idle does for the pool it is compared with,
  /// so that no timed run pays for the connects.
  void prefill() {
    std::vector<handle> held;
    held.reserve(max_size_);
    for (std::size_t i = 0; i < max_size_; ++i) held.push_back(acquire());
  }

  auto acquire() -> handle {
    std::unique_lock lk(mutex_);
    for (;;) {
      if (!idle_.empty()) {
        R* r = idle_.back();
        idle_.pop_back();
        return {this, r};
      }
      if (all_.size() + creating_ < max_size_) {
        ++creating_;
        lk.unlock();
        auto fresh = make_();  // a real baseline would handle a throw here; the stub never throws
        lk.lock();
        --creating_;
        all_.push_back(std::move(fresh));
        return {this, all_.back().get()};
      }
      ++waiting_;
      available_.wait(lk);
      --waiting_;
    }
  }

 private:
  void release(R* r) noexcept {
    bool wake = false;
    {
      std::lock_guard lk(mutex_);
      idle_.push_back(r);  // never reallocates: reserved to max_size
      wake = waiting_ != 0;
    }
    if (wake) available_.notify_one();
  }

  Make make_;
  const std::size_t max_size_;
  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<R>> all_;
  std::vector<R*> idle_;
  std::size_t creating_ = 0;
  std::size_t waiting_ = 0;
};

}  // namespace respool_bench
