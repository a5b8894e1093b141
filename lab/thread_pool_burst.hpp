#pragma once
// respool-lab --thread-pool: the thread pool's IO burst. 1,000 tasks that each wait 2 ms (as a
// query or an HTTP call does) arrive at once at a respool::thread_pool (core 2, max 64, queue
// 1,000), once growing threads first (respool's default) and once queueing first (the JDK's
// order); the lab samples how many have completed every millisecond and draws both curves.
#include <respool/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "format.hpp"
#include "measure.hpp"
#include "report.hpp"

namespace lab {

inline constexpr std::size_t burst_tasks = 1'000;
inline constexpr auto burst_task_wait = std::chrono::milliseconds(2);

struct burst_curve {
  std::string growth;
  std::vector<std::pair<double, std::size_t>> completed;  // (ms since the burst, tasks done)
  double total_ms = 0;
  std::size_t peak_threads = 0;
};

inline auto run_burst(respool::thread_growth growth, const char* name) -> burst_curve {
  respool::thread_pool pool{{.core_threads = 2,
                             .max_threads = 64,
                             .queue_capacity = burst_tasks,
                             .growth = growth,
                             .name = std::string("lab-") + name}};
  std::atomic<std::size_t> done{0};
  burst_curve c;
  c.growth = name;
  const auto start = clock::now();
  auto ms_since = [&] { return std::chrono::duration<double, std::milli>(clock::now() - start).count(); };
  for (std::size_t i = 0; i < burst_tasks; ++i) {
    pool.execute([&done] {
      std::this_thread::sleep_for(burst_task_wait);
      done.fetch_add(1, std::memory_order_relaxed);
    });
  }
  // Sampled every millisecond until all are done (bounded: a lost task must not hang the lab).
  while (ms_since() < 60'000.0) {
    const auto n = done.load(std::memory_order_relaxed);
    c.completed.emplace_back(ms_since(), n);
    if (n == burst_tasks) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  c.total_ms = c.completed.back().first;
  c.peak_threads = pool.stats().largest;
  if (c.completed.back().second != burst_tasks)
    throw std::runtime_error(std::string("the ") + name + " burst did not finish within 60 s");
  return c;
}

inline void write_burst_csv(const std::filesystem::path& path, const std::vector<burst_curve>& cs) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write " + path.string());
  f << "growth,ms,completed\n";
  for (const auto& c : cs)
    for (const auto& [ms, n] : c.completed) f << c.growth << ',' << fixed(ms, 2) << ',' << n << '\n';
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

inline void write_burst_svg(const std::filesystem::path& path, const std::vector<burst_curve>& cs) {
  using svg::escape;
  using svg::num;
  constexpr double width = 920, height = 460;
  constexpr double left = 80, right = width - 40, top = 84, bottom = height - 84;
  const std::string colours[] = {"#1f6fb4", "#d9480f"};
  double max_ms = 0;
  for (const auto& c : cs) max_ms = std::max(max_ms, c.total_ms);
  const svg::axis x = svg::linear_axis(max_ms, left, right);
  const svg::axis y = svg::linear_axis(static_cast<double>(burst_tasks), bottom, top);
  std::ostringstream o;
  svg::open_document(o, width, height);
  svg::linear_plot{width, height, left, right, top, bottom,
                   "An IO burst on respool::thread_pool: grow threads first, or queue first",
                   std::to_string(burst_tasks) + " tasks of " +
                       std::to_string(burst_task_wait.count()) +
                       " ms waiting at once; core 2, max 64, queue 1,000; tasks completed over time",
                   "milliseconds since the burst arrived", "tasks completed"}
      .draw(o, x, y);
  for (std::size_t k = 0; k < cs.size(); ++k) {
    const auto& c = cs[k];
    const auto& colour = colours[k % 2];
    o << R"(<polyline fill="none" stroke=")" << colour << R"(" stroke-width="2.5" points=")";
    for (const auto& [ms, n] : c.completed)
      o << num(x.at(ms)) << ',' << num(y.at(static_cast<double>(n))) << ' ';
    o << R"("/>)" << '\n';
    o << R"(<text x=")" << left + 12 << R"(" y=")" << top + 20 + 18 * static_cast<double>(k)
      << R"(" fill=")" << colour << R"(" font-weight="bold">)"
      << escape(c.growth + ": all done in " + fixed(c.total_ms, 0) + " ms, at most " +
                std::to_string(c.peak_threads) + " threads")
      << "</text>\n";
  }
  svg::save(o, path);
}

/// The whole --thread-pool run: both bursts, the comparison, the CSV and the chart.
inline auto run_thread_pool_lab(const std::filesystem::path& out) -> int {
  std::printf("respool-lab --thread-pool: %zu tasks of %lld ms waiting, arriving at once at a "
              "respool::thread_pool (core 2, max 64, queue 1,000)\n",
              burst_tasks, static_cast<long long>(burst_task_wait.count()));
  std::vector<burst_curve> curves;
  curves.push_back(run_burst(respool::thread_growth::threads_first, "threads_first"));
  curves.push_back(run_burst(respool::thread_growth::queue_first, "queue_first"));
  const double ideal = static_cast<double>(burst_tasks) / 64.0 * 2.0;
  for (const auto& c : curves)
    std::printf("  %-14s all done in %8s ms (%sx the ideal %s ms of 64 threads), at most %zu threads\n",
                c.growth.c_str(), fixed(c.total_ms, 1).c_str(), fixed(c.total_ms / ideal, 2).c_str(),
                fixed(ideal, 2).c_str(), c.peak_threads);
  std::printf("  threads_first finished %sx sooner\n",
              fixed(curves[1].total_ms / curves[0].total_ms, 1).c_str());
  std::filesystem::create_directories(out);
  const auto csv = out / "thread-pool-burst.csv";
  const auto chart = out / "thread-pool-burst.svg";
  write_burst_csv(csv, curves);
  write_burst_svg(chart, curves);
  std::printf("\nCSV:   %s\nchart: %s\n", csv.string().c_str(), chart.string().c_str());
  return 0;
}

}  // namespace lab
