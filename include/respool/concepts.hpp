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
#include <cstdint>
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
// A factory that also says where each resource came from (cluster_pool's, over its endpoints):
// `create_from(origin)` writes a small id the pool keeps with the resource, and the pool reports
// each such resource's end to `destroyed(origin, why)` (noexcept). Internal to respool.
template <class F>
concept origin_factory = requires(F& f, std::uint32_t& origin) { f.create_from(origin); };

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
template <class F>
  requires(!member_factory<F> && !callable_factory<F> && origin_factory<F>)
struct factory_result<F> {
  using type = std::remove_cvref_t<decltype(std::declval<F&>().create_from(
      std::declval<std::uint32_t&>()))>;
};
}  // namespace detail

/// A type that makes resources: `f.create()` or `f()`, returning a movable, non-void value.
template <class F>
concept factory = (detail::member_factory<F> || detail::callable_factory<F> ||
                   detail::origin_factory<F>) &&
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
// `origin` is what an origin_factory says the resource came from; 0 for any other factory.
template <class F>
auto invoke_create(F& f, std::uint32_t& origin) -> resource_t<F> {
  if constexpr (member_factory<F>) {
    origin = 0;
    return f.create();
  } else if constexpr (callable_factory<F>) {
    origin = 0;
    return std::invoke(f);
  } else {
    return f.create_from(origin);
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

namespace detail {
template <class F, class K>
concept member_keyed_factory = requires(F& f, const K& k) { f.create(k); };

template <class F, class K>
struct keyed_factory_result {
  using type = void;
};
template <class F, class K>
  requires member_keyed_factory<F, K>
struct keyed_factory_result<F, K> {
  using type = std::remove_cvref_t<decltype(std::declval<F&>().create(std::declval<const K&>()))>;
};
template <class F, class K>
  requires(!member_keyed_factory<F, K> && std::invocable<F&, const K&>)
struct keyed_factory_result<F, K> {
  using type = std::remove_cvref_t<std::invoke_result_t<F&, const K&>>;
};
}  // namespace detail

/// A type that makes resources for a key: `f.create(key)` or `f(key)`, returning a movable,
/// non-void value. (keyed_pool's factory; cluster_pool's, whose key is the endpoint.)
template <class F, class K>
concept keyed_factory = !std::is_void_v<typename detail::keyed_factory_result<F, K>::type> &&
                        std::move_constructible<typename detail::keyed_factory_result<F, K>::type> &&
                        std::destructible<typename detail::keyed_factory_result<F, K>::type>;

/// The resource type a keyed factory makes.
template <class F, class K>
  requires keyed_factory<F, K>
using keyed_resource_t = typename detail::keyed_factory_result<F, K>::type;

namespace detail {
template <class F, class K>
auto invoke_keyed_create(F& f, const K& key) -> keyed_resource_t<F, K> {
  if constexpr (member_keyed_factory<F, K>) {
    return f.create(key);
  } else {
    return std::invoke(f, key);
  }
}
}  // namespace detail

RESPOOL_NAMESPACE_END
