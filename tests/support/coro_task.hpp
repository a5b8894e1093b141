#pragma once
// A minimal eager coroutine type for the tests and benchmarks of co_await acquire_async: it
// starts at once, keeps its frame after the end (so its owner can see and destroy it), and
// owns the frame (destroying the task destroys the frame, suspended or not).
#include <coroutine>
#include <exception>
#include <utility>

namespace respool_test {

struct task {
  struct promise_type {
    std::exception_ptr error;
    auto get_return_object() noexcept -> task {
      return task{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    auto initial_suspend() noexcept -> std::suspend_never { return {}; }
    auto final_suspend() noexcept -> std::suspend_always { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { error = std::current_exception(); }
  };

  task() = default;
  explicit task(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  task(task&& o) noexcept : h_(std::exchange(o.h_, {})) {}
  auto operator=(task&& o) noexcept -> task& {
    if (this != &o) {
      reset();
      h_ = std::exchange(o.h_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  auto operator=(const task&) -> task& = delete;
  ~task() { reset(); }

  /// Destroys the frame now (suspended or finished).
  void reset() noexcept {
    if (h_) std::exchange(h_, {}).destroy();
  }

 private:
  std::coroutine_handle<promise_type> h_;
};

}  // namespace respool_test
