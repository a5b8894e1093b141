#pragma once
// The adaptive pool in the lab: one pool with pool_options::adaptive (max_size 128, starting at
// a limit of 1) takes its turn in every round after the fixed sizes, keeping what it learnt
// between its turns. Its limit is sampled every 100 ms while its clients run; the lab compares
// its throughput and p99 with the best fixed size's, says when the limit settled, and draws the
// limit over time (a CSV and a second SVG).
#include <respool/options.hpp>
#include <respool/pool.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "format.hpp"
#include "measure.hpp"
#include "report.hpp"
#include "runner.hpp"

namespace lab {

inline constexpr std::size_t adaptive_max_size = 128;
inline constexpr auto limit_sample_period = std::chrono::milliseconds(100);
// What the adaptive pool is held to, against the best fixed size (the issue's targets).
inline constexpr double adaptive_throughput_target = 0.95;
inline constexpr double adaptive_p99_target = 1.2;
inline constexpr double adaptive_settle_target_s = 10.0;

struct limit_sample {
  double seconds = 0;  // of clients running on the adaptive pool (its turns, end to end)
  std::size_t limit = 0;
};

/// Where the limit settled and when: the median of the last third of the samples, and the
/// first sample after which the limit stays within max(2, a quarter) of it. Dips shorter than
/// half a second do not count: they are the rule's probes of its baseline (a halved limit for a
/// window). `after_s` is negative when the run ended unsettled (out of the band at the end).
struct settling {
  std::size_t limit = 0;
  double after_s = -1;
};

inline auto settled(const std::vector<limit_sample>& t) -> settling {
  if (t.empty()) return {};
  std::vector<std::size_t> tail;
  for (std::size_t i = t.size() - t.size() / 3 - 1; i < t.size(); ++i) tail.push_back(t[i].limit);
  std::nth_element(tail.begin(), tail.begin() + static_cast<std::ptrdiff_t>(tail.size() / 2), tail.end());
  settling s;
  s.limit = tail[tail.size() / 2];
  const double band = std::max(2.0, static_cast<double>(s.limit) / 4.0);
  auto inside = [&](std::size_t l) {
    return std::fabs(static_cast<double>(l) - static_cast<double>(s.limit)) <= band;
  };
  if (!inside(t.back().limit)) return s;
  // Walk back over the samples: the settling point follows the last excursion that lasted.
  std::size_t settled_at = 0;
  std::size_t i = t.size();
  while (i-- > 0) {
    if (inside(t[i].limit)) continue;
    std::size_t first = i;
    while (first > 0 && !inside(t[first - 1].limit)) --first;
    const double lasted = t[std::min(i + 1, t.size() - 1)].seconds - t[first].seconds;
    if (lasted > 0.5 || first == 0) {
      settled_at = i + 1;
      break;
    }
    i = first;
  }
  s.after_s = t[std::min(settled_at, t.size() - 1)].seconds;
  return s;
}

struct adaptive_report {
  step_result result;  // over the rounds, as the fixed sizes
  std::vector<limit_sample> timeline;
  settling settle;
  std::vector<double> turn_starts;  // seconds at which each of its turns began
};

/// The adaptive pool and its limit's timeline, across its turns in the rounds.
template <class Workload>
class adaptive_run {
 public:
  adaptive_run(const options& o, const Workload& w)
      : o_(o),
        pool_{w.make_factory(),
              respool::pool_options{.max_size = adaptive_max_size,
                                    .acquire_timeout = o.acquire_timeout,
                                    .idle_timeout = std::chrono::milliseconds::zero(),
                                    .max_lifetime = std::chrono::milliseconds::zero(),
                                    .adaptive = respool::adaptive_options{},
                                    .name = "lab-adaptive"},
              w.make_validator(), w.make_resetter()} {}

  /// One turn: the clients run as for a fixed size while a sampler records the limit.
  auto run_turn(const std::string& label, client_runner& runner, const progress& out)
      -> step_result {
    report_.turn_starts.push_back(active_s_);
    const auto began = clock::now();
    step_result r;
    {
      // The timeline is the sampler's alone until it is joined (at the end of this scope, also
      // when measure_step throws).
      std::jthread sampler([&](const std::stop_token& stop) {
        while (!stop.stop_requested()) {
          const double at = active_s_ + std::chrono::duration<double>(clock::now() - began).count();
          report_.timeline.push_back({at, pool_.stats().limit});
          std::this_thread::sleep_for(limit_sample_period);
        }
      });
      r = measure_step(o_, adaptive_max_size, label, runner, out, pooled_request<Workload>(pool_, o_));
    }
    active_s_ += std::chrono::duration<double>(clock::now() - began).count();
    runs_.push_back(r);
    return r;
  }

  auto finish() -> adaptive_report {
    report_.result = combine_rounds(runs_);
    report_.settle = settled(report_.timeline);
    return report_;
  }

 private:
  const options& o_;
  pool_for<Workload> pool_;
  adaptive_report report_;
  std::vector<step_result> runs_;
  double active_s_ = 0;
};

/// The comparison with the best fixed size, and whether it met the targets; printed.
inline void print_adaptive(const adaptive_report& a, const step_result& best,
                           const step_result& highest) {
  const auto& r = a.result;
  const double thr = best.throughput > 0 ? r.throughput / best.throughput : 0.0;
  const double of_highest = highest.throughput > 0 ? r.throughput / highest.throughput : 0.0;
  const double p99 = best.p99_ms > 0 ? r.p99_ms / best.p99_ms : 0.0;
  const bool settled_in_time = a.settle.after_s >= 0 && a.settle.after_s <= adaptive_settle_target_s;
  std::printf("\nadaptive pool (max_size %zu, pool_options::adaptive, starting at 1): median %s req/s "
              "(%s%% of the best fixed size, %zu: %s req/s), p99 %s (%sx its %s), spread %s%%\n",
              adaptive_max_size, grouped(r.throughput).c_str(), fixed(100.0 * thr, 1).c_str(),
              best.pool_size, grouped(best.throughput).c_str(), milliseconds(r.p99_ms).c_str(),
              fixed(p99, 2).c_str(), milliseconds(best.p99_ms).c_str(),
              fixed(100.0 * r.spread(), 1).c_str());
  if (&highest != &best)
    std::printf("  and %s%% of the highest median, size %zu (%s req/s)\n",
                fixed(100.0 * of_highest, 1).c_str(), highest.pool_size,
                grouped(highest.throughput).c_str());
  if (a.settle.after_s >= 0)
    std::printf("  its limit settled at %zu after %s s of load\n", a.settle.limit,
                fixed(a.settle.after_s, 1).c_str());
  else
    std::printf("  its limit had not settled by the end (last at %zu)\n",
                a.timeline.empty() ? std::size_t{0} : a.timeline.back().limit);
  const bool met = thr >= adaptive_throughput_target && p99 <= adaptive_p99_target && settled_in_time;
  std::printf("  target (>= %s%% of its throughput, p99 <= %sx, settled within %s s): %s\n",
              fixed(100.0 * adaptive_throughput_target, 0).c_str(),
              fixed(adaptive_p99_target, 1).c_str(), fixed(adaptive_settle_target_s, 0).c_str(),
              met ? "met" : "NOT met");
}

inline void write_adaptive_csv(const std::filesystem::path& path, const adaptive_report& a) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write " + path.string());
  f << "seconds,limit\n";
  for (const auto& s : a.timeline) f << fixed(s.seconds, 2) << ',' << s.limit << '\n';
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

/// The limit over time, a step line, with the best fixed size as a dashed line and the start
/// of each of the pool's turns marked.
inline void write_adaptive_svg(const std::filesystem::path& path, const adaptive_report& a,
                               const report& r, std::size_t best_size) {
  using svg::escape;
  using svg::num;
  constexpr double width = 920, height = 460;
  constexpr double left = 80, right = width - 40, top = 84, bottom = height - 84;
  const std::string blue = "#1f6fb4", grey = "#555";
  if (a.timeline.empty()) throw std::runtime_error("no limit samples to chart");
  double max_limit = static_cast<double>(best_size);
  for (const auto& s : a.timeline) max_limit = std::max(max_limit, static_cast<double>(s.limit));
  const svg::axis y = svg::linear_axis(max_limit, bottom, top);
  const svg::axis x = svg::linear_axis(a.timeline.back().seconds, left, right);

  std::ostringstream o;
  svg::open_document(o, width, height);
  svg::linear_plot{width, height, left, right, top, bottom,
                   "The pool that finds its own size: " + r.backend + ", " +
                       std::to_string(r.clients) + " client threads",
                   "pool_options::adaptive's limit while its clients ran (max_size " +
                       std::to_string(adaptive_max_size) + ", from 1); dashed: the best fixed size, " +
                       std::to_string(best_size) + "; ticks: the start of each round's turn",
                   "seconds of load on the adaptive pool", "limit (connections lent at most)"}
      .draw(o, x, y);
  for (double t : a.turn_starts) {
    o << R"(<line x1=")" << num(x.at(t)) << R"(" y1=")" << bottom << R"(" x2=")" << num(x.at(t))
      << R"(" y2=")" << bottom - 8 << R"(" stroke=")" << grey << R"("/>)" << '\n';
  }
  const double yb = y.at(static_cast<double>(best_size));
  o << R"(<line x1=")" << left << R"(" y1=")" << num(yb) << R"(" x2=")" << right << R"(" y2=")"
    << num(yb) << R"(" stroke=")" << grey << R"(" stroke-width="1.5" stroke-dasharray="6 4"/>)" << '\n';
  o << R"(<polyline fill="none" stroke=")" << blue << R"(" stroke-width="2" points=")";
  double last_y = y.at(static_cast<double>(a.timeline.front().limit));
  for (const auto& s : a.timeline) {
    const double px = x.at(s.seconds);
    const double py = y.at(static_cast<double>(s.limit));
    o << num(px) << ',' << num(last_y) << ' ' << num(px) << ',' << num(py) << ' ';
    last_y = py;
  }
  o << R"("/>)" << '\n';
  if (a.settle.after_s >= 0) {
    o << R"(<text x=")" << num(std::min(x.at(a.settle.after_s) + 6, right - 200)) << R"(" y=")"
      << num(std::max(y.at(static_cast<double>(a.settle.limit)) - 10, top + 14)) << R"(" fill=")" << blue
      << R"(" font-weight="bold">)"
      << escape("settled at " + std::to_string(a.settle.limit) + " after " +
                fixed(a.settle.after_s, 1) + " s")
      << "</text>\n";
  }
  o << R"(<text x=")" << left << R"(" y=")" << height - 14 << R"(" font-size="11" fill="#666">)"
    << escape("respool-lab: " + r.description + "; median " + grouped(a.result.throughput) +
              " req/s, p99 " + milliseconds(a.result.p99_ms))
    << "</text>\n";
  svg::save(o, path);
}

}  // namespace lab
