#pragma once
/**
 * `detail::move_only_task`: a move-only, type-erased `void()` callable with a small buffer.
 *
 * The thread pool stores one per queued task. `std::function` needs copyable callables (a lambda
 * owning a `std::promise` or a `std::unique_ptr` is not) and `std::move_only_function` is C++23,
 * so respool carries its own. Callables up to `inline_size` bytes that are nothrow-movable live
 * inside the object (no allocation per task, which matters at millions of tasks per second);
 * larger ones go to the heap.
 *
 * A callable may also expose `fail(std::exception_ptr) noexcept`: the pool calls it when it drops
 * the task without running it (discarded), so a waiting `std::future` gets that exception at once
 * instead of hanging.
 *
 * **Example**:
 * ```cpp
 * respool::detail::move_only_task t{[p = std::make_unique<int>(42)] { use(*p); }};
 * auto u = std::move(t);
 * u();
 * ```
 */
#include <cassert>
#include <cstddef>
#include <cstring>
#include <exception>
#include <new>
#include <type_traits>
#include <utility>

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN

namespace detail {

template <class F>
concept task_with_fail_hook = requires(F& f, std::exception_ptr e) {
  { f.fail(e) }
  noexcept;
};

class move_only_task {
 public:
  /// Callables up to this size (and `alignof(std::max_align_t)`) are stored inline. 48 bytes plus
  /// the vtable pointer keep the whole task in one 64-byte cache line, and hold a lambda with a
  /// `std::promise` and a few captures.
  static constexpr std::size_t inline_size = 48;

  move_only_task() noexcept = default;
  move_only_task(std::nullptr_t) noexcept {}

  template <class F>
  requires(!std::is_same_v<std::remove_cvref_t<F>, move_only_task> &&
           std::is_invocable_v<std::decay_t<F>&> && std::is_constructible_v<std::decay_t<F>, F>)
      move_only_task(
          F&& f) {  // NOLINT(google-explicit-constructor): a task is made from a callable
    using fn = std::decay_t<F>;
    if constexpr (stored_inline<fn>) {
      ::new (static_cast<void*>(buffer_)) fn(std::forward<F>(f));
    } else {
      // Heap storage keeps a pointer in the buffer; moving the task then moves only the pointer.
      fn* p = new fn(std::forward<F>(f));
      std::memcpy(buffer_, &p, sizeof p);
    }
    vtable_ = &vtable_for<fn>;
  }

  move_only_task(move_only_task&& other) noexcept { take(other); }
  auto operator=(move_only_task&& other) noexcept -> move_only_task& {
    if (this != &other) {
      reset();
      take(other);
    }
    return *this;
  }
  move_only_task(const move_only_task&) = delete;
  auto operator=(const move_only_task&) -> move_only_task& = delete;
  ~move_only_task() { reset(); }

  /// Runs the callable. Calling an empty task is undefined (checked by an assertion in debug).
  void operator()() {
    assert(vtable_ != nullptr && "respool: calling an empty task");
    vtable_->invoke(buffer_);
  }

  [[nodiscard]] explicit operator bool() const noexcept { return vtable_ != nullptr; }

  /// Whether `fail` tells the callable anything (it has a `fail` hook: a `submit` task's future).
  [[nodiscard]] auto can_fail() const noexcept -> bool {
    return vtable_ != nullptr && vtable_->fail != nullptr;
  }

  /// Tells the callable it will never run (its future, if any, receives `e`), then empties the
  /// task. A callable without a `fail` hook is simply destroyed.
  void fail(const std::exception_ptr& e) noexcept {
    if (vtable_ == nullptr) return;
    if (vtable_->fail != nullptr) vtable_->fail(buffer_, e);
    reset();
  }

  /// Destroys the callable (releasing what it captured) and leaves the task empty.
  void reset() noexcept {
    if (vtable_ != nullptr) {
      if (vtable_->destroy != nullptr) vtable_->destroy(buffer_);
      vtable_ = nullptr;
    }
  }

 private:
  struct vtable {
    void (*invoke)(void*);
    void (*relocate)(void* dst, void* src) noexcept;  // nullptr: a byte copy relocates
    void (*destroy)(void*) noexcept;                  // nullptr: nothing to destroy
    void (*fail)(void*, const std::exception_ptr&) noexcept;
  };

  template <class F>
  static constexpr bool stored_inline =
      sizeof(F) <= inline_size &&
      alignof(F) <= alignof(std::max_align_t) && std::is_nothrow_move_constructible_v<F>;

  // Trivially copyable callables (a lambda capturing pointers and integers) are moved by a byte
  // copy and need no destructor call: the common case costs no indirect call per move.
  template <class F>
  static constexpr bool trivially_relocatable =
      stored_inline<F>&& std::is_trivially_copyable_v<F>&& std::is_trivially_destructible_v<F>;

  template <class F>
  static auto object(void* storage) noexcept -> F* {
    if constexpr (stored_inline<F>) {
      return std::launder(static_cast<F*>(storage));
    } else {
      F* p = nullptr;
      std::memcpy(&p, storage, sizeof p);
      return p;
    }
  }

  template <class F>
  static constexpr vtable vtable_for{
      [](void* s) { static_cast<void>((*object<F>(s))()); },
      trivially_relocatable<F> || !stored_inline<F>
          ? nullptr
          : +[](void* dst, void* src) noexcept {
              F* from = object<F>(src);
              ::new (dst) F(std::move(*from));
              from->~F();
            },
      std::is_trivially_destructible_v<F> && stored_inline<F>
          ? nullptr
          : +[](void* s) noexcept {
              if constexpr (stored_inline<F>) {
                object<F>(s)->~F();
              } else {
                delete object<F>(s);
              }
            },
      task_with_fail_hook<F> ? +[](void* s, const std::exception_ptr& e) noexcept {
        if constexpr (task_with_fail_hook<F>) object<F>(s)->fail(e);
      }
                             : nullptr,
  };

  void take(move_only_task& other) noexcept {
    if (other.vtable_ == nullptr) return;
    if (other.vtable_->relocate != nullptr) {
      other.vtable_->relocate(buffer_, other.buffer_);
    } else {
      std::memcpy(buffer_, other.buffer_, inline_size);
    }
    vtable_ = std::exchange(other.vtable_, nullptr);
  }

  alignas(std::max_align_t) unsigned char buffer_[inline_size];
  const vtable* vtable_ = nullptr;
};

}  // namespace detail

RESPOOL_NAMESPACE_END
