#pragma once
/**
 * `respool::lease<R>`: exclusive use of one pooled resource, returned on destruction.
 *
 * Move-only. `*`, `->` and `get()` reach the resource. `discard()` destroys it instead of
 * returning it (the connection is broken); `return_to_pool()` returns it early. A lease may
 * outlive its pool: returning it then destroys the resource, nothing dangles.
 *
 * **Example**:
 * ```cpp
 * {
 *   respool::lease conn = db.acquire();
 *   if (!run_query(*conn)) conn.discard();
 * }  // returned (reset first, then handed to the oldest waiter)
 * ```
 */
#include <utility>

#include "detail/slot.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

namespace detail {
// What a lease returns to: the pool's core, whatever its policies.
template <class R>
class lease_home {
 public:
  virtual void release(slot<R>& s, bool discard) noexcept = 0;

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
  ~lease() { return_to_pool(); }

  /// True while this lease holds a resource.
  explicit operator bool() const noexcept { return slot_ != nullptr; }
  [[nodiscard]] auto get() const noexcept -> R& { return *slot_->resource; }
  auto operator*() const noexcept -> R& { return *slot_->resource; }
  auto operator->() const noexcept -> R* { return &*slot_->resource; }

  /// Returns the resource now (reset, then reused); the lease becomes empty.
  void return_to_pool() noexcept {
    if (slot_ != nullptr) home_->release(*std::exchange(slot_, nullptr), false);
  }
  /// Destroys the resource instead of returning it, freeing its place for a new one.
  void discard() noexcept {
    if (slot_ != nullptr) home_->release(*std::exchange(slot_, nullptr), true);
  }

 private:
  friend struct detail::lease_access;
  lease(detail::lease_home<R>* home, detail::slot<R>* s) noexcept : home_(home), slot_(s) {}

  detail::lease_home<R>* home_ = nullptr;
  detail::slot<R>* slot_ = nullptr;
};

namespace detail {
struct lease_access {
  template <class R>
  static auto make(lease_home<R>* home, slot<R>* s) noexcept -> lease<R> {
    return lease<R>(home, s);
  }
};
}  // namespace detail

RESPOOL_NAMESPACE_END
