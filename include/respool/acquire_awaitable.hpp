#pragma once
/**
 * `co_await pool.acquire_async(timeout)`: what `pool::acquire_async` returns, an awaitable for
 * any C++20 coroutine type (it needs nothing from the promise).
 *
 * The waiting coroutine costs its frame and nothing else: the waiter record lives in this
 * awaitable, which lives in the frame; no thread blocks. It resumes on the thread that served
 * it (the one that returned a lease, created a resource, cancelled it, or a pool worker for a
 * timeout), or through an executor given to `acquire_async`: anything with `post(f)`, or
 * callable as `e(f)`. A coroutine served at once (an idle resource, or an immediate failure)
 * does not suspend at all.
 *
 * Destroying a suspended coroutine's frame takes its waiter out of the queue; a resource
 * already handed to it goes on to the next waiter. (Destroying a frame while another thread
 * resumes it is a race in any coroutine library, this one included.)
 *
 * **Example**:
 * ```cpp
 * task<void> handle(request r) {
 *   respool::lease conn = co_await db.acquire_async(500ms);   // throws respool::error
 *   std::error_code ec;
 *   auto maybe = co_await db.acquire_async(50ms, ec);          // or sets ec
 *   auto on_io = co_await db.acquire_async(500ms, io_executor); // resumes through the executor
 * }
 * ```
 */
#include <atomic>
#include <concepts>
#include <coroutine>
#include <cstdint>
#include <optional>
#include <source_location>
#include <stop_token>
#include <system_error>
#include <utility>

#include "detail/pool_core.hpp"
#include "errors.hpp"
#include "lease.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

/// Resumes a coroutine where it was served: the default of `acquire_async`.
struct resume_inline {
  template <class Fn>
  void operator()(Fn&& f) const {
    std::forward<Fn>(f)();
  }
};

namespace detail {
// What an executor is given: resume the coroutine.
struct coroutine_resumer {
  std::coroutine_handle<> h;
  void operator()() const { h.resume(); }
};
}  // namespace detail

/// What `acquire_async` accepts as an executor: a copyable object with `e.post(f)`, or callable
/// as `e(f)`, for a callable `f`.
template <class E>
concept resume_executor =
    std::copy_constructible<E> &&
    (requires(E& e, detail::coroutine_resumer f) { e.post(f); } ||
     std::invocable<E&, detail::coroutine_resumer>);

template <class Core, class Executor = resume_inline>
class acquire_awaitable : private Core::async_waiter {
  using R = typename Core::R;
  using base = typename Core::async_waiter;

 public:
  acquire_awaitable(Core& core, std::int64_t timeout_ns, std::error_code* ec,
                    std::stop_token token, Executor executor,
                    const std::source_location& site)
      : core_(&core), timeout_(timeout_ns), ec_(ec), stop_(std::move(token)), executor_(std::move(executor)) {
    this->where = site;
    this->complete = &finish;
  }
  acquire_awaitable(const acquire_awaitable&) = delete;
  auto operator=(const acquire_awaitable&) -> acquire_awaitable& = delete;

  // Still waiting when destroyed: its frame was destroyed while it was suspended.
  ~acquire_awaitable() {
    const int st = state_.load(std::memory_order_acquire);
    if (st == waiting || st == suspended) core_->abandon_async(*this);
  }

  [[nodiscard]] auto await_ready() const noexcept -> bool { return false; }

  // False (no suspension) when served or failed at once. After the exchange the awaitable may
  // be resumed, and destroyed, by another thread at any moment: nothing touches it after.
  auto await_suspend(std::coroutine_handle<> h) -> bool {
    handle_ = h;
    state_.store(waiting, std::memory_order_relaxed);
    core_->async_acquire(*this, timeout_, stop_.stop_possible() ? &stop_ : nullptr);
    return state_.exchange(suspended, std::memory_order_acq_rel) != completed;
  }

  auto await_resume() -> lease<R> {
    if (failure_) {
      if (ec_ != nullptr) {
        *ec_ = make_error_code(failure_->code);
        return {};
      }
      throw error(failure_->code, std::move(failure_->message), std::move(failure_->cause));
    }
    if (ec_ != nullptr) ec_->clear();
    return std::move(result_);
  }

 private:
  enum : int { idle, waiting, suspended, completed };

  // The pool's completion (no lock held): keep the result, then resume unless await_suspend has
  // not returned yet (it sees `completed` and does not suspend).
  static void finish(base& w, lease<R>&& l, detail::acquire_failure* failure) noexcept {
    auto& self = static_cast<acquire_awaitable&>(w);
    self.stop.reset();
    self.result_ = std::move(l);
    if (failure != nullptr) self.failure_ = std::move(*failure);
    if (self.state_.exchange(completed, std::memory_order_acq_rel) != suspended) return;
    const detail::coroutine_resumer resume{self.handle_};
    // A copy: once posted, the coroutine may run, and free this awaitable, at once elsewhere.
    Executor ex = self.executor_;
    try {
      if constexpr (requires { ex.post(resume); }) {
        ex.post(resume);
      } else {
        ex(resume);
      }
    } catch (...) {  // the executor refused (no memory): resume here rather than never
      resume();
    }
  }

  Core* core_;
  std::int64_t timeout_;
  std::error_code* ec_;
  std::stop_token stop_;  // none: stop_possible() is false
  [[no_unique_address]] Executor executor_;
  std::coroutine_handle<> handle_;
  std::atomic<int> state_{idle};
  lease<R> result_;
  std::optional<detail::acquire_failure> failure_;
};

RESPOOL_NAMESPACE_END
