#pragma once
// The thread pool's task plumbing: how a callable and its arguments become a `move_only_task`,
// how a `submit` task's result (or the reason it was dropped) reaches its future, and how a
// thread knows it is running one of a pool's tasks.
#include <exception>
#include <future>
#include <stop_token>
#include <tuple>
#include <type_traits>
#include <utility>

#include "../errors.hpp"
#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN

namespace detail {

// The pool whose task the current thread runs, so a task that submits to its own pool, waits on
// it or shuts it down can be recognised (an inline function's static: one per program).
inline auto current_thread_pool() noexcept -> const void*& {
  thread_local const void* pool = nullptr;
  return pool;
}

// Marks the current thread as running `pool`'s tasks for a scope (shutdown() running leftovers on
// its caller): a task then gets the answers a pool thread gets, instead of waiting for itself.
class as_pool_thread {
 public:
  explicit as_pool_thread(const void* pool) noexcept
      : previous_(std::exchange(current_thread_pool(), pool)) {}
  as_pool_thread(const as_pool_thread&) = delete;
  auto operator=(const as_pool_thread&) -> as_pool_thread& = delete;
  ~as_pool_thread() { current_thread_pool() = previous_; }

 private:
  const void* previous_;
};

// std::jthread's rule: a callable that accepts a std::stop_token first gets one.
template <class F, class... Args>
inline constexpr bool takes_stop_token =
    std::is_invocable_v<std::decay_t<F>, std::stop_token, std::decay_t<Args>...>;

template <class F, class... Args>
inline constexpr bool runnable =
    takes_stop_token<F, Args...> || std::is_invocable_v<std::decay_t<F>, std::decay_t<Args>...>;

// SFINAE-friendly (no `type` when not callable), so the non-throwing `submit(f, ec)` overload is
// chosen cleanly and a bad call reaches the static_assert that explains it.
template <class F, class... Args>
struct task_result : std::invoke_result<std::decay_t<F>, std::decay_t<Args>...> {};
template <class F, class... Args>
  requires takes_stop_token<F, Args...>
struct task_result<F, Args...>
    : std::invoke_result<std::decay_t<F>, std::stop_token, std::decay_t<Args>...> {};
template <class F, class... Args>
using task_result_t = typename task_result<F, Args...>::type;

// A callable with its arguments, called once with everything moved in (as std::thread does).
template <class F, class... Args>
struct bound_call {
  [[no_unique_address]] F fn;
  [[no_unique_address]] std::tuple<Args...> args;

  auto operator()() -> decltype(auto) { return std::apply(std::move(fn), std::move(args)); }
};

// A call whose result (or exception) goes to a std::promise. If the pool drops it, `fail` hands
// the future the reason; if it is destroyed unrun (a task returned by shutdown_now() and thrown
// away), the future gets errc::closed rather than a bare broken_promise.
template <class Call, class R>
class promised_call {
 public:
  explicit promised_call(Call call) : call_(std::move(call)) {}
  promised_call(promised_call&& other) noexcept(std::is_nothrow_move_constructible_v<Call>)
      : call_(std::move(other.call_)),
        promise_(std::move(other.promise_)),
        pending_(std::exchange(other.pending_, false)) {}
  promised_call(const promised_call&) = delete;
  auto operator=(const promised_call&) -> promised_call& = delete;
  auto operator=(promised_call&&) -> promised_call& = delete;
  ~promised_call() {
    if (pending_) {
      fail(std::make_exception_ptr(
          error(errc::closed, "respool thread pool: the task was destroyed before it ran")));
    }
  }

  auto get_future() -> std::future<R> { return promise_.get_future(); }

  void operator()() {
    pending_ = false;
    try {
      if constexpr (std::is_void_v<R>) {
        call_();
        promise_.set_value();
      } else {
        promise_.set_value(call_());
      }
    } catch (...) {
      promise_.set_exception(std::current_exception());
    }
  }

  void fail(std::exception_ptr e) noexcept {
    if (!pending_) return;
    pending_ = false;
    try {
      promise_.set_exception(std::move(e));
    } catch (...) {  // no state: nobody can be waiting
    }
  }

 private:
  Call call_;
  std::promise<R> promise_;
  bool pending_ = true;
};

}  // namespace detail

RESPOOL_NAMESPACE_END
