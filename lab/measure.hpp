#pragma once
// What one step of the sweep measures: per-client recorders (written by one client thread each,
// read by the main thread after the clients are joined) and the step's summary.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lab {

using clock = std::chrono::steady_clock;

/// What the clients are doing: warming up (not recorded), measuring, or told to stop.
enum class phase : int { warmup, measure, stop };

/// One client's measurements. Only `measured` is read while the client runs (for the progress
/// line); the rest is read after the client has finished.
struct alignas(64) client_record {
  std::atomic<std::uint64_t> measured{0};  // successful requests inside the measured window
  std::vector<std::uint32_t> latency_us;   // total latency of each, microseconds (saturated)
  std::uint64_t wait_ns = 0;               // summed wait for a connection
  std::uint64_t hold_ns = 0;               // summed time holding it (query + return)
  std::uint64_t timeouts = 0;
  std::uint64_t errors = 0;
  std::string first_error;

  void record(clock::duration wait, clock::duration total) {
    const auto us = std::chrono::duration_cast<std::chrono::microseconds>(total).count();
    latency_us.push_back(us < 0 ? 0U
                         : us > 0xffffffffLL ? 0xffffffffU
                                             : static_cast<std::uint32_t>(us));
    wait_ns += static_cast<std::uint64_t>(std::chrono::nanoseconds(wait).count());
    hold_ns += static_cast<std::uint64_t>(std::chrono::nanoseconds(total - wait).count());
    measured.fetch_add(1, std::memory_order_relaxed);
  }
  void error(const std::string& what) {
    ++errors;
    if (first_error.empty()) first_error = what;
  }
};

/// One row of the results: one pool size (or the unpooled baseline, `pool_size == 0`).
struct step_result {
  std::size_t pool_size = 0;  // 0: unpooled
  double seconds = 0;         // the measured window
  std::uint64_t requests = 0;
  double throughput = 0;      // successful requests per second
  double p50_ms = 0;
  double p99_ms = 0;
  double mean_wait_ms = 0;
  double mean_hold_ms = 0;    // how long a request held its connection, on average
  std::uint64_t timeouts = 0;
  std::uint64_t errors = 0;
  std::string first_error;
  // Over the rounds (combine_rounds): the figures above are medians, requests, timeouts and
  // errors sums; these are the lowest and highest throughput of one round.
  std::size_t rounds = 1;
  double throughput_min = 0;
  double throughput_max = 0;

  [[nodiscard]] auto unpooled() const noexcept -> bool { return pool_size == 0; }
  /// Half the range of the rounds' throughput over the median (0 for one round).
  [[nodiscard]] auto spread() const noexcept -> double {
    return throughput > 0 ? (throughput_max - throughput_min) / 2.0 / throughput : 0.0;
  }
};

/// One size measured in several rounds: medians of each figure, sums of the counts, the range
/// of throughput.
inline auto combine_rounds(const std::vector<step_result>& runs) -> step_result {
  if (runs.empty()) return {};
  const auto median = [&](auto field) {
    std::vector<double> v;
    for (const auto& r : runs) v.push_back(field(r));
    std::sort(v.begin(), v.end());
    const auto n = v.size();
    return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
  };
  step_result c;
  c.pool_size = runs.front().pool_size;
  c.rounds = runs.size();
  c.throughput = median([](const step_result& r) { return r.throughput; });
  c.p50_ms = median([](const step_result& r) { return r.p50_ms; });
  c.p99_ms = median([](const step_result& r) { return r.p99_ms; });
  c.mean_wait_ms = median([](const step_result& r) { return r.mean_wait_ms; });
  c.mean_hold_ms = median([](const step_result& r) { return r.mean_hold_ms; });
  c.throughput_min = runs.front().throughput;
  c.throughput_max = runs.front().throughput;
  for (const auto& r : runs) {
    c.seconds += r.seconds;
    c.requests += r.requests;
    c.timeouts += r.timeouts;
    c.errors += r.errors;
    if (c.first_error.empty()) c.first_error = r.first_error;
    c.throughput_min = std::min(c.throughput_min, r.throughput);
    c.throughput_max = std::max(c.throughput_max, r.throughput);
  }
  return c;
}

/// The q-quantile (nearest rank) of `v`, reordering it.
inline auto quantile_ms(std::vector<std::uint32_t>& v, double q) -> double {
  if (v.empty()) return 0.0;
  auto rank = static_cast<std::size_t>(q * static_cast<double>(v.size()));
  if (rank >= v.size()) rank = v.size() - 1;
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(rank), v.end());
  return static_cast<double>(v[rank]) / 1000.0;
}

inline auto summarize(std::size_t pool_size, std::vector<client_record>& clients, double seconds)
    -> step_result {
  step_result r;
  r.pool_size = pool_size;
  r.seconds = seconds;
  std::vector<std::uint32_t> all;
  std::size_t n = 0;
  for (const auto& c : clients) n += c.latency_us.size();
  all.reserve(n);
  std::uint64_t wait_ns = 0;
  std::uint64_t hold_ns = 0;
  for (auto& c : clients) {
    all.insert(all.end(), c.latency_us.begin(), c.latency_us.end());
    wait_ns += c.wait_ns;
    hold_ns += c.hold_ns;
    r.timeouts += c.timeouts;
    r.errors += c.errors;
    if (r.first_error.empty()) r.first_error = c.first_error;
  }
  r.requests = all.size();
  r.throughput = seconds > 0 ? static_cast<double>(r.requests) / seconds : 0.0;
  if (r.requests > 0) {
    const auto count = static_cast<double>(r.requests);
    r.mean_wait_ms = static_cast<double>(wait_ns) / count / 1e6;
    r.mean_hold_ms = static_cast<double>(hold_ns) / count / 1e6;
  }
  r.p50_ms = quantile_ms(all, 0.50);
  r.p99_ms = quantile_ms(all, 0.99);
  return r;
}

}  // namespace lab
