#pragma once
/**
 * The three policies a pool is built from, as concepts, and their defaults.
 *
 * - **Factory**: `f.create()` (or `f()`) returns a resource. It may throw: the pool reports the
 *   error to waiters, backs off and retries.
 * - **Validator**: `v.validate(r)` (or `v(r)`) -> `bool`: is the resource still alive?
 * - **Resetter**: `s.reset(r)` (or `s(r)`) -> `bool`: clean session state before reuse; `false`
 *   (or an exception) destroys the resource.
 *
 * A resource is closed by its destructor; wrap C handles in `std::unique_ptr` with a deleter.
 *
 * **Example**:
 * ```cpp
 * struct pg_ping { bool validate(pg_conn& c) const { return PQstatus(c.get()) == CONNECTION_OK; } };
 * respool::pool db{[] { return pg_conn(PQconnectdb("...")); }, {.max_size = 8}, pg_ping{}};
 * ```
 */
#include <concepts>
#include <functional>
#include <type_traits>
#include <utility>

#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

namespace detail {
template <class F>
concept member_factory = requires(F& f) { f.create(); };
template <class F>
concept callable_factory = std::invocable<F&>;

template <class F>
struct factory_result;
template <member_factory F>
struct factory_result<F> {
  using type = std::remove_cvref_t<decltype(std::declval<F&>().create())>;
};
template <class F>
  requires(!member_factory<F> && callable_factory<F>)
struct factory_result<F> {
  using type = std::remove_cvref_t<std::invoke_result_t<F&>>;
};
}  // namespace detail

/// A type that makes resources: `f.create()` or `f()`, returning a movable, non-void value.
template <class F>
concept factory = (detail::member_factory<F> || detail::callable_factory<F>) &&
                  std::move_constructible<typename detail::factory_result<F>::type> &&
                  std::destructible<typename detail::factory_result<F>::type> &&
                  !std::is_void_v<typename detail::factory_result<F>::type>;

/// The resource type a factory makes.
template <factory F>
using resource_t = typename detail::factory_result<F>::type;

/// Checks a resource is alive: `v.validate(r)` or `v(r)`, returning something convertible to bool.
template <class V, class R>
concept validator = requires(V& v, R& r) {
  { v.validate(r) } -> std::convertible_to<bool>;
} || std::is_invocable_r_v<bool, V&, R&>;

/// Cleans a resource before reuse: `s.reset(r)` or `s(r)`; `false` means "destroy it".
template <class S, class R>
concept resetter = requires(S& s, R& r) {
  { s.reset(r) } -> std::convertible_to<bool>;
} || std::is_invocable_r_v<bool, S&, R&>;

/// The default validator: every resource is alive. Costs nothing: the pool skips the call.
struct always_valid {
  template <class R>
  constexpr auto validate(R&) const noexcept -> bool { return true; }
};

/// The default resetter: no session state to clean. Costs nothing: the pool skips the call.
struct no_reset {
  template <class R>
  constexpr auto reset(R&) const noexcept -> bool { return true; }
};

namespace detail {
template <class F>
auto invoke_create(F& f) -> resource_t<F> {
  if constexpr (member_factory<F>) {
    return f.create();
  } else {
    return std::invoke(f);
  }
}
template <class V, class R>
auto invoke_validate(V& v, R& r) -> bool {
  if constexpr (requires { v.validate(r); }) {
    return static_cast<bool>(v.validate(r));
  } else {
    return static_cast<bool>(std::invoke(v, r));
  }
}
template <class S, class R>
auto invoke_reset(S& s, R& r) -> bool {
  if constexpr (requires { s.reset(r); }) {
    return static_cast<bool>(s.reset(r));
  } else {
    return static_cast<bool>(std::invoke(s, r));
  }
}
}  // namespace detail

RESPOOL_NAMESPACE_END
