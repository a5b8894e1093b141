#pragma once
/**
 * `respool::lease<R>`: exclusive use of one pooled resource, returned on destruction.
 *
 * Move-only. `*`, `->` and `get()` reach the resource. `discard()` destroys it instead of
 * returning it (the connection is broken); `return_to_pool()` returns it early. A lease may
 * outlive its pool: returning it then destroys the resource, nothing dangles.
 *
 * A lease destroyed while an exception unwinds the stack (more exceptions in flight on this
 * thread than when it was granted: the code using the resource stopped half-way, perhaps
 * mid-transaction) is not returned as if nothing happened: `pool_options::on_unwind` has it
 * validated before its next borrow (the default), destroyed (`destroy_reason::unwound`), or
 * returned as usual. A lease taken and dropped inside a destructor that runs during unwinding is
 * not unwound, and `discard()` and `return_to_pool()` mean what they say whenever they are called.
 *
 * **Example**:
 * ```cpp
 * {
 *   respool::lease conn = db.acquire();
 *   if (!run_query(*conn)) conn.discard();
 * }  // returned (reset first, then handed to the oldest waiter)
 *
 * {
 *   respool::lease conn = db.acquire();
 *   conn->execute("UPDATE ...");  // throws: the lease is unwound, conn is validated before reuse
 * }
 * ```
 */
#include <cstdint>
#include <utility>

#include "detail/slot.hpp"
#include "detail/uncaught.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

namespace detail {
// How a lease ended: returned (return_to_pool(), or destroyed in the ordinary course), discarded,
// or destroyed by an exception unwinding the stack (what that means is the pool's on_unwind).
enum class lease_end : std::uint8_t { returned, discarded, unwound };

// What a lease returns to: the pool's core, whatever its policies.
template <class R>
class lease_home {
 public:
  virtual void release(slot<R>& s, lease_end how) noexcept = 0;

 protected:
  lease_home() = default;
  ~lease_home() = default;
  lease_home(const lease_home&) = default;
  auto operator=(const lease_home&) -> lease_home& = default;
};
struct lease_access;
}  // namespace detail

template <class R>
class lease {
 public:
  using resource_type = R;

  lease() noexcept = default;
  lease(lease&& other) noexcept
      : home_(std::exchange(other.home_, nullptr)), slot_(std::exchange(other.slot_, nullptr)) {}
  auto operator=(lease&& other) noexcept -> lease& {
    if (this != &other) {
      return_to_pool();
      home_ = std::exchange(other.home_, nullptr);
      slot_ = std::exchange(other.slot_, nullptr);
    }
    return *this;
  }
  lease(const lease&) = delete;
  auto operator=(const lease&) -> lease& = delete;
  // Unwound if more exceptions are in flight than at the grant: the scope that took it is being
  // left by one. A lease taken inside a destructor running during unwinding sees the same count
  // at both ends.
  ~lease() {
    if (slot_ != nullptr)
      home_->release(*slot_, detail::uncaught_exceptions_now() > slot_->uncaught_at_grant
                                 ? detail::lease_end::unwound
                                 : detail::lease_end::returned);
  }

  /// True while this lease holds a resource.
  explicit operator bool() const noexcept { return slot_ != nullptr; }
  [[nodiscard]] auto get() const noexcept -> R& { return *slot_->resource; }
  auto operator*() const noexcept -> R& { return *slot_->resource; }
  auto operator->() const noexcept -> R* { return &*slot_->resource; }

  /// Returns the resource now (reset, then reused); the lease becomes empty.
  void return_to_pool() noexcept {
    if (slot_ != nullptr)
      home_->release(*std::exchange(slot_, nullptr), detail::lease_end::returned);
  }
  /// Destroys the resource instead of returning it, freeing its place for a new one.
  void discard() noexcept {
    if (slot_ != nullptr)
      home_->release(*std::exchange(slot_, nullptr), detail::lease_end::discarded);
  }

 private:
  friend struct detail::lease_access;
  lease(detail::lease_home<R>* home, detail::slot<R>* s) noexcept : home_(home), slot_(s) {
    s->uncaught_at_grant = detail::uncaught_exceptions_now();
  }

  detail::lease_home<R>* home_ = nullptr;
  detail::slot<R>* slot_ = nullptr;
};

namespace detail {
struct lease_access {
  template <class R>
  static auto make(lease_home<R>* home, slot<R>* s) noexcept -> lease<R> {
    return lease<R>(home, s);
  }
  template <class R>
  static auto slot_of(const lease<R>& l) noexcept -> slot<R>* {
    return l.slot_;
  }
};
}  // namespace detail

RESPOOL_NAMESPACE_END
