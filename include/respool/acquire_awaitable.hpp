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
#include <type_traits>
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
class acquire_awaitable {
  using R = typename Core::R;
  using waiter = typename Core::async_waiter;

 public:
  acquire_awaitable(Core& core, std::int64_t timeout_ns, std::error_code* ec,
                    std::stop_token token, Executor executor,
                    const std::source_location& site)
      : core_(&core), timeout_(timeout_ns), ec_(ec), stop_(std::move(token)),
        executor_(std::move(executor)), where_(site) {}
  acquire_awaitable(const acquire_awaitable&) = delete;
  auto operator=(const acquire_awaitable&) -> acquire_awaitable& = delete;

  // Still waiting when destroyed: its frame was destroyed while it was suspended.
  ~acquire_awaitable() {
    if (!record_) return;
    const int st = record_->state.load(std::memory_order_acquire);
    if (st != completed) core_->abandon_async(*record_);
  }

  // An idle resource now: no suspension and no waiter record at all.
  [[nodiscard]] auto await_ready() -> bool {
    result_ = core_->acquire_idle_now(where_);
    return static_cast<bool>(result_);
  }

  // False (no suspension) when served or failed at once. After the exchange the awaitable may
  // be resumed, and destroyed, by another thread at any moment: nothing touches it after.
  auto await_suspend(std::coroutine_handle<> h) -> bool {
    record& r = record_.emplace(*this);
    r.handle = h;
    core_->async_acquire(r, timeout_, stop_.stop_possible() ? &stop_ : nullptr);
    return r.state.exchange(suspended, std::memory_order_acq_rel) != completed;
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
  enum : int { waiting, suspended, completed };

  // The waiter in the pool's queue, made only when the coroutine has to wait.
  struct record : waiter {
    acquire_awaitable* owner;
    std::coroutine_handle<> handle;
    std::atomic<int> state{waiting};
    explicit record(acquire_awaitable& a) noexcept : owner(&a) {
      this->where = a.where_;
      this->complete = &finish;
    }
  };

  // The pool's completion (no lock held): keep the result, then resume unless await_suspend has
  // not returned yet (it sees `completed` and does not suspend).
  static void finish(waiter& w, lease<R>&& l, detail::acquire_failure* failure) noexcept {
    auto& r = static_cast<record&>(w);
    acquire_awaitable& self = *r.owner;
    r.stop.reset();
    self.result_ = std::move(l);
    if (failure != nullptr) self.failure_ = std::move(*failure);
    if (r.state.exchange(completed, std::memory_order_acq_rel) != suspended) return;
    const detail::coroutine_resumer resume{r.handle};
    Core* core = self.core_;  // pinned while it delivers (pool_async.hpp, A3)
    if constexpr (!std::is_same_v<Executor, resume_inline>) {
      // A copy: once posted, the coroutine may run, and free this awaitable, at once elsewhere.
      Executor ex = self.executor_;
      try {
        if constexpr (requires { ex.post(resume); }) {
          ex.post(resume);
        } else {
          ex(resume);
        }
        return;
      } catch (...) {  // the executor refused (no memory): resume here rather than never
      }
    }
    // A coroutine type whose unhandled_exception() rethrows lets it out of resume(): it has
    // nowhere to go on the serving thread but the report.
    try {
      resume();
    } catch (...) {
      core->report_handler_threw(std::current_exception());
    }
  }

  Core* core_;
  std::int64_t timeout_;
  std::error_code* ec_;
  std::stop_token stop_;  // none: stop_possible() is false
  [[no_unique_address]] Executor executor_;
  std::source_location where_;
  lease<R> result_;
  std::optional<detail::acquire_failure> failure_;
  std::optional<record> record_;
};

RESPOOL_NAMESPACE_END
