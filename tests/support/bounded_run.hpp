#pragma once
// For tests of code that may hang: run a call on its own thread and wait for it with a bound, so
// that a hang becomes a failed check instead of a hung test. Also a median helper for timings.
//
// Catch2 2 is not thread-safe: the call must not use CHECK/REQUIRE; it returns its result, and
// the test checks it on its own thread.
#include <algorithm>
#include <chrono>
#include <exception>
#include <future>
#include <memory>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

namespace respool_test {

template <class T>
class background {
 public:
  template <class F>
  explicit background(F f) : promise_(std::make_shared<std::promise<T>>()) {
    future_ = promise_->get_future();
    thread_ = std::thread([p = promise_, f = std::move(f)]() mutable {
      try {
        if constexpr (std::is_void_v<T>) {
          f();
          p->set_value();
        } else {
          p->set_value(f());
        }
      } catch (...) {
        p->set_exception(std::current_exception());
      }
    });
  }
  background(const background&) = delete;
  auto operator=(const background&) -> background& = delete;

  /// True once the call has returned (within `limit` of real time from now).
  auto ready_within(std::chrono::milliseconds limit) -> bool {
    if (!future_.valid()) return true;
    return future_.wait_for(limit) == std::future_status::ready;
  }
  /// The call's result; only after ready_within() said true.
  auto get() -> T { return future_.get(); }

  /// Joins a call that returned; detaches one that did not (it may be stuck for good in the code
  /// under test). A test whose call did not return must keep alive (leak) what the call uses.
  ~background() {
    if (ready_within(std::chrono::milliseconds(0))) {
      thread_.join();
    } else {
      thread_.detach();
    }
  }

 private:
  std::shared_ptr<std::promise<T>> promise_;
  std::future<T> future_;
  std::thread thread_;
};

template <class D>
auto median(std::vector<D> v) -> D {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <class D>
auto maximum(const std::vector<D>& v) -> D {
  return *std::max_element(v.begin(), v.end());
}

// Real time since `t`, in milliseconds (double), for readable failure messages.
inline auto ms_since(std::chrono::steady_clock::time_point t) -> double {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace respool_test

namespace respool_test {

// If a call is still stuck in the pool, closes the pool (which must wake every waiter) and waits
// for the calls again. Returns false if one is still stuck: then the pool is leaked (released
// from `p`), since destroying it under a thread still inside it would be undefined behaviour.
template <class Pool, class... Calls>
auto unstick(std::unique_ptr<Pool>& p, Calls&... calls) -> bool {
  if ((calls.ready_within(std::chrono::milliseconds(0)) && ...)) return true;
  p->close();
  if ((calls.ready_within(std::chrono::seconds(5)) && ...)) return true;
  (void)p.release();
  return false;
}

}  // namespace respool_test
