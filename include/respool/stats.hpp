#pragma once
/**
 * `pool_stats`: a snapshot of a pool's counts and counters.
 *
 * The counts (total, idle, in use, creating) and the create/destroy counters are read together
 * under the pool's lock, so `created - destroyed() == total - creating` holds in every snapshot.
 *
 * **Example**:
 * ```cpp
 * auto s = db.stats();
 * std::printf("%zu/%zu in use, p99 wait %lld us\n", s.in_use, s.max_size,
 *             static_cast<long long>(s.wait_p99.count()));
 * ```
 */
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <numeric>

#include "events.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

/// Wait times in power-of-two microsecond buckets: bucket 0 is [0, 1 us), bucket i is
/// [2^(i-1), 2^i) us; the last bucket takes everything longer.
struct wait_histogram {
  static constexpr std::size_t bucket_count = 32;
  std::array<std::uint64_t, bucket_count> buckets{};

  static constexpr auto bucket_of(std::chrono::microseconds d) noexcept -> std::size_t {
    auto us = d.count() < 0 ? 0ULL : static_cast<unsigned long long>(d.count());
    std::size_t b = 0;
    while (us != 0 && b + 1 < bucket_count) {
      us >>= 1U;
      ++b;
    }
    return b;
  }
  /// The upper bound of bucket `b` (what a percentile in that bucket reports).
  static constexpr auto upper_bound(std::size_t b) noexcept -> std::chrono::microseconds {
    return std::chrono::microseconds(b == 0 ? 1 : (1LL << b));
  }
  [[nodiscard]] auto count() const noexcept -> std::uint64_t {
    return std::accumulate(buckets.begin(), buckets.end(), std::uint64_t{0});
  }
  /// The upper bound of the bucket holding the `q`-quantile (q in [0, 1]); 0 when empty.
  [[nodiscard]] auto percentile(double q) const noexcept -> std::chrono::microseconds {
    const auto n = count();
    if (n == 0) return std::chrono::microseconds::zero();
    auto rank = static_cast<std::uint64_t>(q * static_cast<double>(n));
    if (rank >= n) rank = n - 1;
    std::uint64_t seen = 0;
    for (std::size_t b = 0; b < bucket_count; ++b) {
      seen += buckets[b];
      if (seen > rank) return upper_bound(b);
    }
    return upper_bound(bucket_count - 1);
  }
};

/// One lease out, as `pool::holders()` reports it: where it was acquired and for how long it
/// has been held (to within the pool's `housekeeping_interval`, the coarse clock's tick).
struct lease_holder {
  acquire_site site;
  std::chrono::milliseconds held{0};
};

struct pool_stats {
  // Counts, at the instant of the snapshot.
  std::size_t max_size = 0;  ///< the most live resources (set_max_size() changes it)
  std::size_t limit = 0;     ///< the most lent at once now: max_size, or below it what
                             ///< `pool_options::adaptive` found
  bool paused = false;       ///< pause() was called and resume() not yet
  std::size_t total = 0;     ///< idle + in_use + creating (+ reserved by housekeeping)
  std::size_t idle = 0;
  std::size_t in_use = 0;
  std::size_t creating = 0;
  std::size_t waiters = 0;   ///< callers queued in acquire

  // Counters, since construction.
  std::uint64_t acquired = 0;          ///< successful acquires
  std::uint64_t created = 0;
  std::array<std::uint64_t, destroy_reason_count> destroyed_by{};  ///< index: destroy_reason
  std::uint64_t timeouts = 0;          ///< acquires that gave up with `errc::timeout`
  std::uint64_t create_failures = 0;
  std::uint64_t fast_failures = 0;     ///< acquires refused with `backend_unavailable`
  std::uint64_t shed = 0;              ///< acquires refused with `exhausted`
  std::uint64_t cancelled = 0;         ///< acquires ended by their stop token (`cancelled`)

  std::size_t min_idle = 0;  ///< the option, for dashboards beside `idle`

  // Time callers waited for a resource (acquires served at once count as zero).
  wait_histogram wait;
  std::chrono::microseconds wait_max{0};
  std::chrono::microseconds wait_p50{0};
  std::chrono::microseconds wait_p99{0};

  /// How long leases were held, from acquire to return, sampled: a resource's first hold after
  /// each tick of the pool's coarse clock (`housekeeping_interval`, 100 ms by default) is timed
  /// (two clock reads each), so the fast path stays as it was. A resource used less often than
  /// once a tick has every hold timed; a busy one, one hold a tick. The shape is that of the
  /// holds, the count that of the samples.
  wait_histogram use_time;
  /// How long successful factory calls took, every one.
  wait_histogram create_time;

  [[nodiscard]] auto destroyed(destroy_reason r) const noexcept -> std::uint64_t {
    return destroyed_by[static_cast<std::size_t>(r)];
  }
  [[nodiscard]] auto destroyed() const noexcept -> std::uint64_t {
    return std::accumulate(destroyed_by.begin(), destroyed_by.end(), std::uint64_t{0});
  }
};

RESPOOL_NAMESPACE_END
