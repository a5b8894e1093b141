#pragma once
/**
 * Slow-path events a pool reports through `pool_options::on_event`: for logs and metrics.
 *
 * **Example**:
 * ```cpp
 * opts.on_event = [](const respool::pool_event& e) {
 *   if (e.kind == respool::event_kind::leak_suspected)
 *     log("lease from {}:{} held {} ms", e.where.file_name, e.where.line, e.held.count());
 * };
 * ```
 */
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <string_view>

#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

/// Why a resource was closed.
enum class destroy_reason : std::uint8_t {
  idle_timeout,       ///< idle above `min_idle` for longer than `idle_timeout`
  lifetime,           ///< older than its (jittered) `max_lifetime`
  max_uses,           ///< leased `max_uses` times
  failed_validation,  ///< the validator said no (or threw), on borrow or in keepalive
  failed_reset,       ///< the resetter said no (or threw) on return
  discarded,          ///< the holder called `lease::discard()`
  evicted,            ///< `evict_all()`
  closed,             ///< the pool was closed
  resized,            ///< `set_max_size()` or `pool_options::adaptive` lowered the limit
                      ///< below what was live
  unwound,            ///< its lease was destroyed by an exception unwinding the stack, with
                      ///< `on_unwind = discard` (with `validate`, a failed check after one is
                      ///< `failed_validation`)
  reclaimed,          ///< a `keyed_pool` at `max_total` closed it to give its place to a
                      ///< creation for another key (idle, or on return instead of a reset)
  rebalanced,         ///< a `cluster_pool` closed it on return: its endpoint held more than
                      ///< its share of the connections, so the next one goes to another
};
inline constexpr std::size_t destroy_reason_count = 12;

[[nodiscard]] constexpr auto to_string(destroy_reason r) noexcept -> std::string_view {
  switch (r) {
    case destroy_reason::idle_timeout: return "idle_timeout";
    case destroy_reason::lifetime: return "lifetime";
    case destroy_reason::max_uses: return "max_uses";
    case destroy_reason::failed_validation: return "failed_validation";
    case destroy_reason::failed_reset: return "failed_reset";
    case destroy_reason::discarded: return "discarded";
    case destroy_reason::evicted: return "evicted";
    case destroy_reason::closed: return "closed";
    case destroy_reason::resized: return "resized";
    case destroy_reason::unwound: return "unwound";
    case destroy_reason::reclaimed: return "reclaimed";
    case destroy_reason::rebalanced: return "rebalanced";
  }
  return "unknown";
}

enum class event_kind : std::uint8_t {
  created,          ///< a resource was created
  destroyed,        ///< a resource was closed; `reason` says why
  create_failed,    ///< the factory threw; `error` holds it, `message` its text
  acquire_timeout,  ///< an acquire gave up; `message` is the error text
  leak_suspected,   ///< a lease is held longer than `leak_threshold`; `where`, `held`
  leak_returned,    ///< a lease reported as leaked came back; `where`, `held`
  nested_acquire,   ///< `detect_nested_acquire`: a thread holding a lease acquires again;
                    ///< `where` is the lease it holds, `acquiring` the new call, `message` both
  handler_threw,    ///< an `async_acquire` completion handler threw; `error` holds it (the
                    ///< pool goes on: it runs on whatever thread served it)
  limit_changed,    ///< `pool_options::adaptive` moved the limit from `previous_limit` to
                    ///< `limit`; `message` says what it measured
};

[[nodiscard]] constexpr auto to_string(event_kind k) noexcept -> std::string_view {
  switch (k) {
    case event_kind::created: return "created";
    case event_kind::destroyed: return "destroyed";
    case event_kind::create_failed: return "create_failed";
    case event_kind::acquire_timeout: return "acquire_timeout";
    case event_kind::leak_suspected: return "leak_suspected";
    case event_kind::leak_returned: return "leak_returned";
    case event_kind::nested_acquire: return "nested_acquire";
    case event_kind::handler_threw: return "handler_threw";
    case event_kind::limit_changed: return "limit_changed";
  }
  return "unknown";
}

/// Where a lease was acquired (from `std::source_location` at the call of `acquire`).
struct acquire_site {
  const char* file_name = "";
  const char* function_name = "";
  std::uint_least32_t line = 0;
};

struct pool_event {
  event_kind kind{};
  std::string_view pool_name;
  destroy_reason reason{};               ///< for `destroyed`
  std::string_view message;              ///< error text, for `create_failed` and `acquire_timeout`
  std::exception_ptr error;              ///< for `create_failed`
  std::chrono::milliseconds held{};      ///< for the leak events
  acquire_site where;                    ///< for the leak events and `nested_acquire`: where
                                         ///< the lease was acquired
  acquire_site acquiring;                ///< for `nested_acquire`: the acquire that nests
  std::size_t limit = 0;                 ///< for `limit_changed`: the new limit
  std::size_t previous_limit = 0;        ///< for `limit_changed`: the one before
};

RESPOOL_NAMESPACE_END
