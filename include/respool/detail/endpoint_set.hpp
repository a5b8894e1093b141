#pragma once
// cluster_pool's endpoints: the ids its pools keep with each connection (the slot's origin),
// how many connections each endpoint has, its health and replication lag, which endpoint gets
// the next connection, and which returning connection moves. Knows nothing of pools, resources
// or threads: cluster_pool.hpp reports what happens, and carries out the actions this asks for
// (take_actions: close an endpoint's connections, end a pool's creation backoff) outside the
// lock.
//
// Invariants (the lock is mutex_; "group" 0 is the primaries, 1 the replicas):
//  E1. live(id) = connections made to the endpoint and not yet destroyed + creations to it in
//      flight: pick() counts one in before the factory is called, creation_failed() or
//      destroyed() counts it out.
//  E2. An id is given to another endpoint only once it has left the set and its live is 0: no
//      connection or creation carries it any more. Its generation changes then, so an action
//      queued for the old endpoint cannot touch the new one.
//  E3. usable(id) = in the set && !down && !lagging. Written under the lock, read without it
//      (relaxed): a stale read at worst sends one creation to an endpoint just taken out, whose
//      eviction, queued in the same critical section, then closes that connection too.
//  E4. (Shares.) Among a group's usable endpoints, fair(i) = L * w(i) / W, L their live total
//      and W their weight total. A connection coming back to endpoint i moves (is closed, so
//      its successor goes to the endpoint with the lowest live / weight) when live(i) >=
//      fair(i) + 1. With one connection closed the live total is below L, so the lowest
//      live / weight is strictly below L / W: the endpoint that gains the successor stays below
//      fair + 1, and connections never bounce back.
//  E5. An endpoint goes down after `failures_to_exclude` failures since its last success
//      (creation failed, validation failed, lease discarded, lag probe failed). A success is a
//      lease returned as usual: a connect that works proves little (a node can accept
//      connections and fail every query), a connection used and given back does. Down, it is
//      probed with a jittered, doubling backoff; the first probe that connects brings it back.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "../endpoint.hpp"
#include "../events.hpp"
#include "../version.hpp"
#include "creation_policy.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

inline constexpr std::uint8_t group_of(role r) noexcept { return r == role::primary ? 0 : 1; }

// What the owner of the pools must do, outside the lock.
struct endpoint_action {
  enum kind_t : std::uint8_t { evict, retry } kind = evict;
  std::uint8_t group = 0;
  std::uint32_t id = 0;          // evict: the endpoint whose connections close
  std::uint32_t generation = 0;  // evict: ... while the id is still that endpoint's (E2)
};

// A probe or lag check to run: the endpoint as it was when asked.
struct endpoint_job {
  std::uint32_t id = 0;
  std::uint32_t generation = 0;
  endpoint ep;
};

struct endpoint_set_config {
  std::uint32_t failures_to_exclude = 3;
  std::int64_t probe_backoff_min_ns = 100'000'000;
  std::int64_t probe_backoff_max_ns = 5'000'000'000;
  std::int64_t max_lag_ms = 10'000;
};

class endpoint_set {
 public:
  /// Most endpoints at once, those still draining after set_endpoints() included.
  static constexpr std::size_t capacity = 256;

  explicit endpoint_set(endpoint_set_config c)
      : cfg_(c), entries_(std::make_unique<entry[]>(capacity)), rng_(std::random_device{}()) {}

  // ------------------------------------------------------------------ membership

  // Replaces the set: endpoints not in `eps` (by name and role) leave it and drain; new ones
  // get an id; kept ones take the new weight. Throws std::length_error past `capacity`, with
  // nothing changed.
  void assign(const std::vector<endpoint>& eps) {
    std::lock_guard lk(mutex_);
    std::vector<bool> keep(capacity, false);
    std::vector<const endpoint*> fresh;
    for (const auto& ep : eps) {
      if (auto id = find_locked(ep)) {
        keep[*id] = true;
      } else {
        fresh.push_back(&ep);
      }
    }
    std::size_t free_ids = 0;
    for (std::size_t i = 0; i < capacity; ++i)
      if (reusable_locked(i)) ++free_ids;
    if (fresh.size() > free_ids)
      throw std::length_error("respool cluster: more than 256 endpoints, counting those still "
                              "draining after set_endpoints()");
    for (std::uint32_t i = 0; i < high_water_.load(std::memory_order_relaxed); ++i) {
      auto& e = entries_[i];
      if (!e.in_set || keep[i]) continue;
      e.in_set = false;
      update_usable_locked(e);
      actions_.push_back({endpoint_action::evict, group_of(e.ep.role), i, e.generation});
    }
    for (const auto& ep : eps) {
      if (auto id = find_locked(ep)) {
        entries_[*id].ep.weight = ep.weight;
        entries_[*id].weight.store(ep.weight, std::memory_order_relaxed);
      }
    }
    for (const endpoint* ep : fresh) {
      std::uint32_t id = 0;
      while (!reusable_locked(id)) ++id;
      auto& e = entries_[id];
      e.allocated = true;
      e.in_set = true;
      e.down = false;
      e.lagging = false;
      ++e.generation;
      e.ep = *ep;
      e.last_error.clear();
      e.lag.reset();
      e.next_probe = 0;
      e.probe_failures = 0;
      e.failures.store(0, std::memory_order_relaxed);
      e.group.store(group_of(ep->role), std::memory_order_relaxed);
      e.weight.store(ep->weight, std::memory_order_relaxed);
      update_usable_locked(e);
      if (id >= high_water_.load(std::memory_order_relaxed))
        high_water_.store(id + 1, std::memory_order_release);
    }
  }

  // The endpoint behind a connection's id (none for an id never given out).
  [[nodiscard]] auto endpoint_of(std::uint32_t id) const -> std::optional<endpoint> {
    std::lock_guard lk(mutex_);
    if (id >= capacity || !entries_[id].allocated) return std::nullopt;
    return entries_[id].ep;
  }

  // ------------------------------------------------------------------ connections (E1)

  // The usable endpoint of `group` with the fewest connections for its weight, skipping ids
  // in `tried`; counted in (E1). Ties go round the endpoints, so equal ones fill evenly.
  auto pick(std::uint8_t group, const std::vector<std::uint32_t>& tried) -> std::optional<endpoint_job> {
    std::lock_guard lk(mutex_);
    const auto n = high_water_.load(std::memory_order_relaxed);
    std::optional<std::uint32_t> best;
    for (std::uint32_t k = 0; k < n; ++k) {
      const std::uint32_t i = (k + rotation_) % n;
      const auto& e = entries_[i];
      if (!e.usable.load(std::memory_order_relaxed) || e.ep.role != role_of(group)) continue;
      if (std::find(tried.begin(), tried.end(), i) != tried.end()) continue;
      if (!best || less_loaded(e, entries_[*best])) best = i;
    }
    if (!best) return std::nullopt;
    ++rotation_;
    auto& e = entries_[*best];
    e.live.fetch_add(1, std::memory_order_relaxed);
    return endpoint_job{*best, e.generation, e.ep};
  }

  void creation_failed(std::uint32_t id, std::string_view error, std::int64_t now) {
    std::lock_guard lk(mutex_);
    auto& e = entries_[id];
    e.live.fetch_sub(1, std::memory_order_relaxed);
    failure_locked(e, id, error, now);
  }

  // A connection to `id` is gone. A failed validation or a discard counts as a failure (E5).
  void destroyed(std::uint32_t id, destroy_reason why, std::int64_t now) noexcept {
    auto& e = entries_[id];
    if (why != destroy_reason::failed_validation && why != destroy_reason::discarded) {
      e.live.fetch_sub(1, std::memory_order_relaxed);
      return;
    }
    try {
      std::lock_guard lk(mutex_);
      e.live.fetch_sub(1, std::memory_order_relaxed);
      failure_locked(e, id,
                     why == destroy_reason::discarded ? "a lease was discarded (broken connection)"
                                                      : "a connection failed validation",
                     now);
    } catch (...) {  // no memory for the text or the action: the next failure tries again
    }
  }

  // A lease came back as usual: a success (E5). Lock-free: on every return.
  void returned(std::uint32_t id) noexcept {
    auto& f = entries_[id].failures;
    if (f.load(std::memory_order_relaxed) != 0) f.store(0, std::memory_order_relaxed);
  }

  // E4, lock-free (on every return): does a connection of `id` coming back move elsewhere?
  [[nodiscard]] auto over_share(std::uint32_t id) const noexcept -> bool {
    const auto& e = entries_[id];
    if (!e.usable.load(std::memory_order_relaxed)) return false;  // being evicted anyway
    const auto group = e.group.load(std::memory_order_relaxed);
    const auto n = high_water_.load(std::memory_order_acquire);
    std::int64_t weights = 0;
    std::int64_t live = 0;
    for (std::uint32_t i = 0; i < n; ++i) {
      const auto& f = entries_[i];
      if (!f.usable.load(std::memory_order_relaxed) || f.group.load(std::memory_order_relaxed) != group)
        continue;
      weights += f.weight.load(std::memory_order_relaxed);
      live += f.live.load(std::memory_order_relaxed);
    }
    const std::int64_t mine = e.live.load(std::memory_order_relaxed);
    const std::int64_t w = e.weight.load(std::memory_order_relaxed);
    return weights > 0 && mine * weights >= live * w + weights;  // live >= fair + 1
  }

  [[nodiscard]] auto any_usable(std::uint8_t group) const noexcept -> bool {
    const auto n = high_water_.load(std::memory_order_acquire);
    for (std::uint32_t i = 0; i < n; ++i) {
      const auto& e = entries_[i];
      if (e.usable.load(std::memory_order_relaxed) && e.group.load(std::memory_order_relaxed) == group)
        return true;
    }
    return false;
  }

  // ------------------------------------------------------------------ probes and lag (E5)

  // Down endpoints whose probe is due at `now` (each handed out once until its result).
  auto probes_due(std::int64_t now) -> std::vector<endpoint_job> {
    std::vector<endpoint_job> out;
    std::lock_guard lk(mutex_);
    for (std::uint32_t i = 0; i < high_water_.load(std::memory_order_relaxed); ++i) {
      auto& e = entries_[i];
      if (!e.in_set || !e.down || e.next_probe > now) continue;
      e.next_probe = std::numeric_limits<std::int64_t>::max();  // until probe_result()
      out.push_back({i, e.generation, e.ep});
    }
    return out;
  }

  // When the next probe is due (max: none).
  [[nodiscard]] auto next_probe_at() const -> std::int64_t {
    std::lock_guard lk(mutex_);
    std::int64_t at = std::numeric_limits<std::int64_t>::max();
    for (std::uint32_t i = 0; i < high_water_.load(std::memory_order_relaxed); ++i) {
      const auto& e = entries_[i];
      if (e.in_set && e.down) at = std::min(at, e.next_probe);
    }
    return at;
  }

  void probe_result(const endpoint_job& job, bool answered, std::string_view error, std::int64_t now) {
    std::lock_guard lk(mutex_);
    auto& e = entries_[job.id];
    if (e.generation != job.generation || !e.in_set || !e.down) return;
    if (answered) {
      e.down = false;
      e.probe_failures = 0;
      e.failures.store(0, std::memory_order_relaxed);
      update_usable_locked(e);
      actions_.push_back({endpoint_action::retry, group_of(e.ep.role), job.id, e.generation});
      return;
    }
    e.last_error = error;
    ++e.probe_failures;
    schedule_probe_locked(e, now);
  }

  // The replicas to check for lag: in the set and up.
  auto lag_targets() const -> std::vector<endpoint_job> {
    std::vector<endpoint_job> out;
    std::lock_guard lk(mutex_);
    for (std::uint32_t i = 0; i < high_water_.load(std::memory_order_relaxed); ++i) {
      const auto& e = entries_[i];
      if (e.in_set && !e.down && e.ep.role == role::replica) out.push_back({i, e.generation, e.ep});
    }
    return out;
  }

  // A lag reading; none when the probe failed (`error` says why, a failure of the endpoint).
  void lag_result(const endpoint_job& job, std::optional<std::chrono::milliseconds> lag,
                  std::string_view error, std::int64_t now) {
    std::lock_guard lk(mutex_);
    auto& e = entries_[job.id];
    if (e.generation != job.generation || !e.in_set) return;
    if (!lag) return failure_locked(e, job.id, error, now);
    e.lag = lag;
    const bool behind = lag->count() > cfg_.max_lag_ms;
    if (behind == e.lagging) return;
    e.lagging = behind;
    update_usable_locked(e);
    if (behind) {
      actions_.push_back({endpoint_action::evict, group_of(e.ep.role), job.id, e.generation});
    } else {
      actions_.push_back({endpoint_action::retry, group_of(e.ep.role), job.id, e.generation});
    }
  }

  // Is `id` still the endpoint of that generation (E2)? Lock-free enough for an eviction's
  // predicate: the generation only changes once no connection carries the id.
  [[nodiscard]] auto is(std::uint32_t id, std::uint32_t generation) const -> bool {
    std::lock_guard lk(mutex_);
    return entries_[id].generation == generation;
  }

  // What the owner must do now, in order.
  auto take_actions() -> std::vector<endpoint_action> {
    std::lock_guard lk(mutex_);
    return std::exchange(actions_, {});
  }
  [[nodiscard]] auto has_actions() const -> bool {
    std::lock_guard lk(mutex_);
    return !actions_.empty();
  }

  // ------------------------------------------------------------------ reports

  [[nodiscard]] auto snapshot() const -> std::vector<endpoint_stats> {
    std::vector<endpoint_stats> out;
    std::lock_guard lk(mutex_);
    for (std::uint32_t i = 0; i < high_water_.load(std::memory_order_relaxed); ++i) {
      const auto& e = entries_[i];
      const auto live = e.live.load(std::memory_order_relaxed);
      if (!e.allocated || (!e.in_set && live == 0)) continue;
      out.push_back({e.ep.name, e.ep.role, e.ep.weight, static_cast<std::size_t>(std::max(live, 0)),
                     !e.down, e.lagging, !e.in_set, e.lag, e.failures.load(std::memory_order_relaxed),
                     e.last_error});
    }
    return out;
  }

  // Every endpoint of a group and its state, for an error message: "db1: down (3 failures in
  // a row; last error: ...), db2: lagging 12,000 ms behind".
  [[nodiscard]] auto describe(std::uint8_t group) const -> std::string {
    std::string out;
    for (const auto& e : snapshot()) {
      if (group_of(e.role) != group || e.removed) continue;
      if (!out.empty()) out += "; ";
      out += e.name;
      out += !e.healthy ? ": down" : e.lagging ? ": lagging" : ": up";
      out += ", " + std::to_string(e.live) + " connections";
      if (e.lagging && e.replication_lag)
        out += ", " + std::to_string(e.replication_lag->count()) + " ms behind";
      if (e.consecutive_failures != 0)
        out += ", " + std::to_string(e.consecutive_failures) + " failures in a row";
      if (!e.last_error.empty()) out += ", last error: " + e.last_error;
    }
    if (out.empty()) out = group == 0 ? "no primary configured" : "no replica configured";
    return out;
  }

 private:
  struct entry {
    // Read without the lock (E3, E4).
    std::atomic<std::int32_t> live{0};
    std::atomic<std::uint32_t> weight{0};
    std::atomic<std::uint32_t> failures{0};  // since the last success (E5)
    std::atomic<bool> usable{false};
    std::atomic<std::uint8_t> group{0};
    // Guarded by mutex_.
    endpoint ep;
    bool allocated = false;  // given out once: its id may be on connections
    bool in_set = false;     // false: removed (draining) or free
    bool down = false;
    bool lagging = false;
    std::uint32_t generation = 0;
    std::string last_error;
    std::optional<std::chrono::milliseconds> lag;
    std::int64_t next_probe = 0;  // steady ns
    std::uint32_t probe_failures = 0;
  };

  static constexpr auto role_of(std::uint8_t group) noexcept -> role {
    return group == 0 ? role::primary : role::replica;
  }
  // Fewer connections for its weight: live / weight, compared without dividing; at equal
  // loads the heavier endpoint first (it fills proportionally sooner). The least loaded is
  // strictly below its share whenever another is above it, which E4 relies on.
  static auto less_loaded(const entry& a, const entry& b) noexcept -> bool {
    const auto la = static_cast<std::int64_t>(a.live.load(std::memory_order_relaxed));
    const auto lb = static_cast<std::int64_t>(b.live.load(std::memory_order_relaxed));
    const auto wa = static_cast<std::int64_t>(a.ep.weight);
    const auto wb = static_cast<std::int64_t>(b.ep.weight);
    return la * wb < lb * wa || (la * wb == lb * wa && wa > wb);
  }

  auto find_locked(const endpoint& ep) const -> std::optional<std::uint32_t> {
    for (std::uint32_t i = 0; i < high_water_.load(std::memory_order_relaxed); ++i) {
      const auto& e = entries_[i];
      if (e.in_set && e.ep.name == ep.name && e.ep.role == ep.role) return i;
    }
    return std::nullopt;
  }
  auto reusable_locked(std::size_t i) const -> bool {
    const auto& e = entries_[i];
    return !e.allocated || (!e.in_set && e.live.load(std::memory_order_relaxed) == 0);
  }
  static void update_usable_locked(entry& e) noexcept {
    e.usable.store(e.in_set && !e.down && !e.lagging, std::memory_order_relaxed);
  }

  void failure_locked(entry& e, std::uint32_t id, std::string_view error, std::int64_t now) {
    e.last_error = error;
    const auto n = e.failures.load(std::memory_order_relaxed) + 1;
    e.failures.store(n, std::memory_order_relaxed);
    if (n < cfg_.failures_to_exclude || e.down || !e.in_set) return;
    e.down = true;
    e.probe_failures = 0;
    update_usable_locked(e);
    schedule_probe_locked(e, now);
    actions_.push_back({endpoint_action::evict, group_of(e.ep.role), id, e.generation});
  }

  void schedule_probe_locked(entry& e, std::int64_t now) {
    const auto d = backoff_delay(cfg_.probe_backoff_min_ns, cfg_.probe_backoff_max_ns, e.probe_failures + 1);
    const double jitter = std::uniform_real_distribution<double>(0.5, 1.0)(rng_);
    e.next_probe = add_sat(now, static_cast<std::int64_t>(static_cast<double>(d) * jitter));
  }

  const endpoint_set_config cfg_;
  mutable std::mutex mutex_;
  std::unique_ptr<entry[]> entries_;
  std::atomic<std::uint32_t> high_water_{0};  // ids below it may be in use; only grows
  std::uint32_t rotation_ = 0;                // guarded by mutex_
  std::vector<endpoint_action> actions_;      // guarded by mutex_
  std::mt19937_64 rng_;                       // guarded by mutex_
};

}  // namespace detail
RESPOOL_NAMESPACE_END
