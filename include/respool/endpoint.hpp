#pragma once
/**
 * The servers a `respool::cluster_pool` spreads its connections over, and what it reports about
 * each of them.
 *
 * **Example**:
 * ```cpp
 * std::vector<respool::endpoint> nodes{
 *     {.name = "host=db1 port=5432", .role = respool::role::primary},
 *     {.name = "host=db2 port=5432", .role = respool::role::replica},
 *     {.name = "host=db3 port=5432", .role = respool::role::replica, .weight = 2}};
 * ```
 */
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "stats.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

/// What an endpoint takes: writes (a primary; several primaries are equal nodes) or reads.
enum class role : std::uint8_t { primary, replica };

/// What a caller asks a cluster for: `write` goes to a primary, `read` to a replica.
enum class route : std::uint8_t { write, read };

[[nodiscard]] constexpr auto to_string(role r) noexcept -> std::string_view {
  return r == role::primary ? "primary" : "replica";
}
[[nodiscard]] constexpr auto to_string(route r) noexcept -> std::string_view {
  return r == route::write ? "write" : "read";
}

/// One server. `name` is what the factory is given to connect to (a connection string, a
/// host:port) and identifies the endpoint in `set_endpoints()`, stats and errors; unique within
/// a cluster. `weight` (at least 1): its share of its role's connections relative to the others.
struct endpoint {
  std::string name;
  respool::role role = role::primary;
  unsigned weight = 1;

  friend auto operator==(const endpoint&, const endpoint&) -> bool = default;
};

/// One endpoint as `cluster_pool::stats()` saw it.
struct endpoint_stats {
  std::string name;
  respool::role role = role::primary;
  unsigned weight = 1;
  /// Connections to it, open or being opened, in use or idle.
  std::size_t live = 0;
  /// Answers: not taken out after `failures_to_exclude` failures in a row (it is probed with
  /// backoff meanwhile).
  bool healthy = true;
  /// A replica behind by more than `max_replica_lag`: it gets no reads until it catches up.
  bool lagging = false;
  /// Removed by `set_endpoints()`, its connections still draining (closed as they come back).
  bool removed = false;
  /// The last lag the probe measured (replicas, with `replication_lag` set), else nothing.
  std::optional<std::chrono::milliseconds> replication_lag;
  /// Failures since its last success (a lease returned as usual, or the probe that brought it
  /// back).
  std::uint32_t consecutive_failures = 0;
  /// The last error its connections, or its probe, met; empty if none.
  std::string last_error;
};

/// A snapshot of a cluster: its two pools and every endpoint.
struct cluster_stats {
  pool_stats writes;  ///< the pool of `route::write`, over the primaries
  pool_stats reads;   ///< the pool of `route::read`, over the replicas
  std::vector<endpoint_stats> endpoints;

  /// The endpoint called `name` (a copy: safe to keep past this snapshot), or nothing. One in
  /// the set comes before one of the same name still draining.
  [[nodiscard]] auto find(std::string_view name) const -> std::optional<endpoint_stats> {
    for (const auto& e : endpoints)
      if (e.name == name && !e.removed) return e;
    for (const auto& e : endpoints)
      if (e.name == name) return e;
    return std::nullopt;
  }
};

RESPOOL_NAMESPACE_END
