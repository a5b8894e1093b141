#pragma once
// The lab's results: the table on stdout, the CSV, and the SVG chart (written by hand: no
// plotting dependency).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "format.hpp"
#include "measure.hpp"

namespace lab {

struct report {
  std::string backend;       // "SQLite"
  std::string description;   // the backend's details, for the table's heading
  std::string clients_on;    // "std::thread" or "respool::thread_pool"
  std::size_t clients = 0;
  unsigned write_percent = 0;
  std::int64_t accounts = 0;
  double duration_s = 0;
  std::size_t rounds = 1;
  double warmup_s = 0;
  long long acquire_timeout_ms = 0;
  std::size_t cores = 0;
  std::size_t spindles = 0;
  std::size_t recommended = 0;
  std::vector<step_result> steps;        // pooled, by pool size
  std::optional<step_result> unpooled;

  /// The pooled step with the highest median throughput (the smaller size on a tie), if any
  /// served.
  [[nodiscard]] auto highest() const -> const step_result* {
    const step_result* b = nullptr;
    for (const auto& s : steps) {
      if (s.requests > 0 && (b == nullptr || s.throughput > b->throughput)) b = &s;
    }
    return b;
  }
  /// The best size: the smallest whose throughput is within the measured noise of the highest
  /// median (the two sizes' ranges over the rounds overlap). With one round, the highest.
  [[nodiscard]] auto best() const -> const step_result* {
    const step_result* top = highest();
    if (top == nullptr) return nullptr;
    for (const auto& s : steps) {
      if (s.requests > 0 && s.throughput_max >= top->throughput_min) return &s;
    }
    return top;
  }
};

// ---------------------------------------------------------------------------------------------
// Table

inline void print_table(const report& r) {
  const step_result* best = r.best();
  std::printf("\n%s\n", r.rounds > 1 ? ("medians of " + std::to_string(r.rounds) +
                                          " rounds; spread: half the range of throughput")
                                             .c_str()
                                       : "one round");
  std::printf("%11s %13s %8s %13s %13s %13s %10s %8s\n", "pool size", "throughput", "spread",
              "p50 latency", "p99 latency", "mean wait", "timeouts", "errors");
  auto row = [&](const step_result& s) {
    std::string note;
    if (best == &s) note += "  <- best";
    if (!s.unpooled() && s.pool_size == r.recommended) note += "  <- recommended";
    const std::string size = s.unpooled() ? "unpooled" : std::to_string(s.pool_size);
    std::printf("%11s %11s/s %7s%% %13s %13s %13s %10llu %8llu%s\n", size.c_str(),
                grouped(s.throughput).c_str(), fixed(100.0 * s.spread(), 1).c_str(),
                milliseconds(s.p50_ms).c_str(),
                milliseconds(s.p99_ms).c_str(), milliseconds(s.mean_wait_ms).c_str(),
                static_cast<unsigned long long>(s.timeouts),
                static_cast<unsigned long long>(s.errors), note.c_str());
  };
  for (const auto& s : r.steps) row(s);
  if (r.unpooled) row(*r.unpooled);
  std::printf("\n");
  bool any_error = false;
  for (const auto& s : r.steps) any_error = any_error || !s.first_error.empty();
  if (r.unpooled) any_error = any_error || !r.unpooled->first_error.empty();
  if (any_error) {
    std::printf("first error per step:\n");
    auto err = [](const step_result& s) {
      if (s.first_error.empty()) return;
      const std::string size = s.unpooled() ? "unpooled" : "pool " + std::to_string(s.pool_size);
      std::printf("  %-9s %s\n", size.c_str(), s.first_error.c_str());
    };
    for (const auto& s : r.steps) err(s);
    if (r.unpooled) err(*r.unpooled);
    std::printf("\n");
  }
}

// ---------------------------------------------------------------------------------------------
// CSV

inline void write_csv(const std::filesystem::path& path, const report& r) {
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write " + path.string());
  f << "pool_size,throughput_rps,p50_ms,p99_ms,mean_wait_ms,timeouts,errors,requests,"
       "throughput_min_rps,throughput_max_rps,rounds\n";
  auto row = [&](const step_result& s) {
    f << (s.unpooled() ? std::string("unpooled") : std::to_string(s.pool_size)) << ','
      << fixed(s.throughput, 1) << ',' << fixed(s.p50_ms, 3) << ',' << fixed(s.p99_ms, 3) << ','
      << fixed(s.mean_wait_ms, 3) << ',' << s.timeouts << ',' << s.errors << ',' << s.requests
      << ',' << fixed(s.throughput_min, 1) << ',' << fixed(s.throughput_max, 1) << ',' << s.rounds
      << '\n';
  };
  for (const auto& s : r.steps) row(s);
  if (r.unpooled) row(*r.unpooled);
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

// ---------------------------------------------------------------------------------------------
// SVG

namespace svg {

inline auto escape(const std::string& text) -> std::string {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

inline auto num(double v) -> std::string { return fixed(v, 1); }

/// A round step near range/target: 1, 2, 2.5 or 5 times a power of ten.
inline auto nice_step(double range, int target) -> double {
  const double raw = range / target;
  const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0}) {
    if (m * magnitude >= raw) return m * magnitude;
  }
  return 10.0 * magnitude;
}

/// An axis: maps a value to a pixel coordinate, linear or logarithmic, and lists its ticks.
struct axis {
  double lo = 0, hi = 1;       // in value space (log10 of the value when `log`)
  double from = 0, to = 1;     // pixels
  bool log = false;
  std::vector<double> ticks;   // values

  [[nodiscard]] auto at(double value) const -> double {
    const double v = log ? std::log10(value) : value;
    return from + (v - lo) / (hi - lo) * (to - from);
  }
};

inline auto linear_axis(double max_value, double from, double to) -> axis {
  axis a;
  a.from = from;
  a.to = to;
  const double top = max_value > 0 ? max_value * 1.08 : 1.0;
  const double step = nice_step(top, 5);
  a.lo = 0;
  a.hi = std::ceil(top / step) * step;
  for (double t = 0; t <= a.hi + step / 2; t += step) a.ticks.push_back(t);
  return a;
}

/// Logarithmic when the values span more than a factor of 30 (latency often does: a fraction
/// of a millisecond at the best size, seconds at the worst), else linear from zero.
inline auto latency_axis(double min_value, double max_value, double from, double to) -> axis {
  if (min_value <= 0 || max_value / min_value <= 30.0) return linear_axis(max_value, from, to);
  axis a;
  a.from = from;
  a.to = to;
  a.log = true;
  a.lo = std::floor(std::log10(min_value) * 2.0) / 2.0;  // half decades
  a.hi = std::ceil(std::log10(max_value) * 2.0) / 2.0;
  if (a.hi - a.lo < 1.0) a.hi = a.lo + 1.0;
  for (int e = static_cast<int>(std::floor(a.lo)); e <= static_cast<int>(std::ceil(a.hi)); ++e) {
    for (double m : {1.0, 2.0, 5.0}) {
      const double v = m * std::pow(10.0, e);
      const double lv = std::log10(v);
      if (lv >= a.lo - 1e-9 && lv <= a.hi + 1e-9) a.ticks.push_back(v);
    }
  }
  return a;
}

inline auto latency_label(double ms) -> std::string {
  if (ms <= 0.0) return "0";
  if (ms >= 1000.0) return (std::fabs(ms / 1000.0 - std::round(ms / 1000.0)) < 1e-9
                                ? fixed(ms / 1000.0, 0)
                                : fixed(ms / 1000.0, 1)) + " s";
  if (ms >= 1.0) return fixed(ms, ms == std::round(ms) ? 0 : 1) + " ms";
  if (ms >= 0.1) return fixed(ms, 1) + " ms";
  if (ms >= 0.01) return fixed(ms, 2) + " ms";
  return fixed(ms, 3) + " ms";
}

/// The document's opening tag and its white background.
inline void open_document(std::ostringstream& o, double width, double height) {
  o << R"(<svg xmlns="http://www.w3.org/2000/svg" width=")" << width << R"(" height=")" << height
    << R"(" viewBox="0 0 )" << width << ' ' << height
    << R"(" font-family="Helvetica, Arial, sans-serif" font-size="13">)" << '\n';
  o << R"(<rect width="100%" height="100%" fill="#fff"/>)" << '\n';
}

/// The plot area of a chart on two linear axes: the title and subtitle above it, grid lines and
/// tick labels, the frame, and the axis titles.
struct linear_plot {
  double width, height, left, right, top, bottom;
  std::string title, subtitle, x_title, y_title;

  void draw(std::ostringstream& o, const axis& x, const axis& y) const {
    o << R"(<text x=")" << width / 2
      << R"(" y="32" text-anchor="middle" font-size="19" font-weight="bold">)" << escape(title)
      << "</text>\n";
    o << R"(<text x=")" << width / 2 << R"(" y="56" text-anchor="middle" fill="#444">)"
      << escape(subtitle) << "</text>\n";
    for (double t : y.ticks) {
      o << R"(<line x1=")" << left << R"(" y1=")" << num(y.at(t)) << R"(" x2=")" << right
        << R"(" y2=")" << num(y.at(t)) << R"(" stroke="#e6e6e6"/>)";
      o << R"(<text x=")" << left - 8 << R"(" y=")" << num(y.at(t) + 4)
        << R"(" text-anchor="end">)" << fixed(t, 0) << "</text>\n";
    }
    for (double t : x.ticks)
      o << R"(<text x=")" << num(x.at(t)) << R"(" y=")" << bottom + 20
        << R"(" text-anchor="middle">)" << fixed(t, 0) << "</text>\n";
    o << R"(<rect x=")" << left << R"(" y=")" << top << R"(" width=")" << right - left
      << R"(" height=")" << bottom - top << R"(" fill="none" stroke="#999"/>)" << '\n';
    o << R"(<text x=")" << (left + right) / 2 << R"(" y=")" << bottom + 44
      << R"(" text-anchor="middle">)" << escape(x_title) << "</text>\n";
    o << "<text transform=\"translate(24 " << (top + bottom) / 2
      << ") rotate(-90)\" text-anchor=\"middle\">" << escape(y_title) << "</text>\n";
  }
};

/// Closes the document and writes it to `path`.
inline void save(std::ostringstream& o, const std::filesystem::path& path) {
  o << "</svg>\n";
  std::ofstream f(path);
  if (!f) throw std::runtime_error("cannot write " + path.string());
  f << o.str();
  f.close();
  if (!f) throw std::runtime_error("cannot write " + path.string());
}

}  // namespace svg

inline void write_svg(const std::filesystem::path& path, const report& r) {
  using svg::escape;
  using svg::num;
  constexpr double width = 920, height = 560;
  constexpr double left = 96, right = width - 96, top = 104, bottom = height - 104;
  const std::string blue = "#1f6fb4", red = "#d9480f", grey = "#555";
  // Labels inside the plot get a white outline, so a curve running behind them stays readable.
  const std::string halo = R"(stroke="#fff" stroke-width="4" stroke-linejoin="round" paint-order="stroke")";

  std::vector<const step_result*> points;
  for (const auto& s : r.steps) points.push_back(&s);
  if (points.empty()) throw std::runtime_error("no pool sizes to chart");
  const step_result* best = r.best();

  // x: pool size, log2, with half a step of margin; the recommended size always in view.
  double min_size = static_cast<double>(points.front()->pool_size);
  double max_size = static_cast<double>(points.back()->pool_size);
  if (r.recommended > 0) {
    min_size = std::min(min_size, static_cast<double>(r.recommended));
    max_size = std::max(max_size, static_cast<double>(r.recommended));
  }
  const double x_lo = std::log2(min_size) - 0.4;
  const double x_hi = std::log2(max_size) + 0.4 + (min_size == max_size ? 0.6 : 0.0);
  auto x_at = [&](double size) {
    return left + (std::log2(size) - x_lo) / (x_hi - x_lo) * (right - left);
  };

  double max_rps = 0, min_p99 = 0, max_p99 = 0;
  for (const auto* p : points) {
    max_rps = std::max({max_rps, p->throughput, p->throughput_max});
    if (p->p99_ms > 0) {
      min_p99 = min_p99 == 0 ? p->p99_ms : std::min(min_p99, p->p99_ms);
      max_p99 = std::max(max_p99, p->p99_ms);
    }
  }
  if (r.unpooled) max_rps = std::max(max_rps, r.unpooled->throughput);
  const svg::axis y_rps = svg::linear_axis(max_rps, bottom, top);
  const svg::axis y_p99 = svg::latency_axis(min_p99, max_p99, bottom, top);

  std::ostringstream o;
  svg::open_document(o, width, height);

  // Title and subtitle.
  o << R"(<text x=")" << width / 2 << R"(" y="34" text-anchor="middle" font-size="20" font-weight="bold">)"
    << escape("How big should the pool be? " + r.backend + ", " + std::to_string(r.clients) +
              " client threads")
    << "</text>\n";
  o << R"(<text x=")" << width / 2 << R"(" y="58" text-anchor="middle" fill="#444">)"
    << escape("throughput and p99 latency against pool size; " +
              std::to_string(100 - r.write_percent) + "% reads / " +
              std::to_string(r.write_percent) + "% writes; " +
              (r.rounds > 1 ? "medians of " + std::to_string(r.rounds) +
                                  " rounds (band: their range), "
                            : std::string()) +
              seconds(r.duration_s) + " s per size and round; " + std::to_string(r.cores) +
              " cores")
    << "</text>\n";

  // Legend.
  {
    const double y = 84;
    double x = left;
    o << R"(<line x1=")" << x << R"(" y1=")" << y - 4 << R"(" x2=")" << x + 28 << R"(" y2=")"
      << y - 4 << R"(" stroke=")" << blue << R"(" stroke-width="2.5"/>)";
    o << R"(<text x=")" << x + 34 << R"(" y=")" << y << R"(">throughput (left axis)</text>)" << '\n';
    x += 210;
    o << R"(<line x1=")" << x << R"(" y1=")" << y - 4 << R"(" x2=")" << x + 28 << R"(" y2=")"
      << y - 4 << R"(" stroke=")" << red << R"(" stroke-width="2.5" stroke-dasharray="7 4"/>)";
    o << R"(<text x=")" << x + 34 << R"(" y=")" << y << R"(">p99 latency (right axis)</text>)" << '\n';
    x += 220;
    o << R"(<line x1=")" << x << R"(" y1=")" << y - 4 << R"(" x2=")" << x + 28 << R"(" y2=")"
      << y - 4 << R"(" stroke=")" << grey << R"(" stroke-width="1.5" stroke-dasharray="3 3"/>)";
    o << R"(<text x=")" << x + 34 << R"(" y=")" << y << R"(">respool::sizing recommendation</text>)"
      << '\n';
  }

  // Grid and left axis (throughput).
  for (double t : y_rps.ticks) {
    const double y = y_rps.at(t);
    o << R"(<line x1=")" << left << R"(" y1=")" << num(y) << R"(" x2=")" << right << R"(" y2=")"
      << num(y) << R"(" stroke="#e6e6e6"/>)";
    o << R"(<text x=")" << left - 8 << R"(" y=")" << num(y + 4) << R"(" text-anchor="end" fill=")"
      << blue << R"(">)" << short_count(t) << "</text>\n";
  }
  // Right axis (p99 latency).
  for (double t : y_p99.ticks) {
    const double y = y_p99.at(t);
    o << R"(<line x1=")" << right << R"(" y1=")" << num(y) << R"(" x2=")" << right + 5
      << R"(" y2=")" << num(y) << R"(" stroke=")" << red << R"("/>)";
    o << R"(<text x=")" << right + 8 << R"(" y=")" << num(y + 4) << R"(" fill=")" << red << R"(">)"
      << escape(svg::latency_label(t)) << "</text>\n";
  }
  // Frame and x axis.
  o << R"(<rect x=")" << left << R"(" y=")" << top << R"(" width=")" << right - left
    << R"(" height=")" << bottom - top << R"(" fill="none" stroke="#999"/>)" << '\n';
  for (const auto* p : points) {
    const double x = x_at(static_cast<double>(p->pool_size));
    o << R"(<line x1=")" << num(x) << R"(" y1=")" << bottom << R"(" x2=")" << num(x)
      << R"(" y2=")" << bottom + 5 << R"(" stroke="#999"/>)";
    o << R"(<text x=")" << num(x) << R"(" y=")" << bottom + 20 << R"(" text-anchor="middle">)"
      << p->pool_size << "</text>\n";
  }
  o << R"(<text x=")" << (left + right) / 2 << R"(" y=")" << bottom + 46
    << R"(" text-anchor="middle">pool size (connections, log scale)</text>)" << '\n';
  o << "<text transform=\"translate(26 " << (top + bottom) / 2
    << ") rotate(-90)\" text-anchor=\"middle\" fill=\"" << blue
    << "\">throughput (requests/s)</text>\n";
  o << "<text transform=\"translate(" << width - 22 << ' ' << (top + bottom) / 2
    << ") rotate(90)\" text-anchor=\"middle\" fill=\"" << red << "\">p99 latency"
    << (y_p99.log ? " (log scale)" : "") << "</text>\n";

  // Labels inside the plot, drawn after the curves so that they stay on top.
  std::ostringstream labels;

  // Unpooled baseline: a horizontal line at its throughput.
  if (r.unpooled && r.unpooled->throughput > 0) {
    const double y = y_rps.at(r.unpooled->throughput);
    o << R"(<line x1=")" << left << R"(" y1=")" << num(y) << R"(" x2=")" << right << R"(" y2=")"
      << num(y) << R"(" stroke=")" << blue << R"(" stroke-opacity="0.6" stroke-dasharray="2 4"/>)";
    labels << R"(<text x=")" << left + 8 << R"(" y=")" << num(y - 6) << R"(" fill=")" << blue
      << R"(" )" << halo << ">"
      << escape("no pool (connection per request): " + grouped(r.unpooled->throughput) + " req/s")
      << "</text>\n";
  }

  // The recommended size.
  if (r.recommended > 0) {
    const double x = x_at(static_cast<double>(r.recommended));
    o << R"(<line x1=")" << num(x) << R"(" y1=")" << top << R"(" x2=")" << num(x) << R"(" y2=")"
      << bottom << R"(" stroke=")" << grey << R"(" stroke-width="1.5" stroke-dasharray="3 3"/>)"
      << '\n';
    const bool label_left = x > (left + right) / 2;
    labels << R"(<text x=")" << num(label_left ? x - 6 : x + 6) << R"(" y=")" << bottom - 30
      << R"(" text-anchor=")" << (label_left ? "end" : "start") << R"(" fill=")" << grey << R"(" )"
      << halo << ">" << escape("recommended: " + std::to_string(r.recommended)) << "</text>\n";
    labels << R"(<text x=")" << num(label_left ? x - 6 : x + 6) << R"(" y=")" << bottom - 14
      << R"(" text-anchor=")" << (label_left ? "end" : "start") << R"(" fill=")" << grey
      << R"(" font-size="11" )" << halo << ">"
      << escape(std::to_string(r.cores) + " cores × 2 + " + std::to_string(r.spindles) +
                (r.spindles == 1 ? " spindle" : " spindles"))
      << "</text>\n";
  }

  // The rounds' range of throughput, behind the median curve.
  if (r.rounds > 1) {
    o << R"(<polygon fill=")" << blue << R"(" fill-opacity="0.15" stroke="none" points=")";
    for (const auto* p : points)
      o << num(x_at(static_cast<double>(p->pool_size))) << ',' << num(y_rps.at(p->throughput_max)) << ' ';
    for (auto it = points.rbegin(); it != points.rend(); ++it)
      o << num(x_at(static_cast<double>((*it)->pool_size))) << ',' << num(y_rps.at((*it)->throughput_min)) << ' ';
    o << R"("/>)" << '\n';
  }

  // The two curves.
  auto polyline = [&](const std::string& colour, const char* dash, auto y_of, auto keep) {
    o << R"(<polyline fill="none" stroke=")" << colour << R"(" stroke-width="2.5")";
    if (dash != nullptr) o << R"( stroke-dasharray=")" << dash << '"';
    o << R"( points=")";
    for (const auto* p : points) {
      if (!keep(*p)) continue;
      o << num(x_at(static_cast<double>(p->pool_size))) << ',' << num(y_of(*p)) << ' ';
    }
    o << R"("/>)" << '\n';
  };
  polyline(blue, nullptr, [&](const step_result& s) { return y_rps.at(s.throughput); },
           [](const step_result&) { return true; });
  polyline(red, "7 4", [&](const step_result& s) { return y_p99.at(s.p99_ms); },
           [](const step_result& s) { return s.p99_ms > 0; });
  for (const auto* p : points) {
    const double x = x_at(static_cast<double>(p->pool_size));
    o << R"(<circle cx=")" << num(x) << R"(" cy=")" << num(y_rps.at(p->throughput))
      << R"(" r="4" fill=")" << blue << R"("><title>)"
      << escape("pool " + std::to_string(p->pool_size) + ": " + grouped(p->throughput) + " req/s")
      << "</title></circle>\n";
    if (p->p99_ms > 0) {
      const double y = y_p99.at(p->p99_ms);
      o << R"(<rect x=")" << num(x - 3.5) << R"(" y=")" << num(y - 3.5)
        << R"(" width="7" height="7" fill=")" << red << R"("><title>)"
        << escape("pool " + std::to_string(p->pool_size) + ": p99 " + milliseconds(p->p99_ms))
        << "</title></rect>\n";
    }
  }

  // The best measured size.
  if (best != nullptr) {
    const double x = x_at(static_cast<double>(best->pool_size));
    const double y = y_rps.at(best->throughput);
    o << R"(<circle cx=")" << num(x) << R"(" cy=")" << num(y) << R"(" r="9" fill="none" stroke=")"
      << blue << R"(" stroke-width="2"/>)" << '\n';
    const std::string anchor = x < left + 120 ? "start" : x > right - 120 ? "end" : "middle";
    o << R"(<text x=")" << num(x) << R"(" y=")" << num(std::max(y - 16, top + 14))
      << R"(" text-anchor=")" << anchor << R"(" font-weight="bold" fill=")" << blue << R"(" )"
      << halo << ">"
      << escape("best: " + std::to_string(best->pool_size) + " (" + grouped(best->throughput) +
                " req/s)")
      << "</text>\n";
  }

  o << labels.str();

  // Footnote: how it was measured.
  o << R"(<text x=")" << left << R"(" y=")" << height - 22 << R"(" font-size="11" fill="#666">)"
    << escape("respool-lab: " + r.description) << "</text>\n";
  o << R"(<text x=")" << left << R"(" y=")" << height - 8 << R"(" font-size="11" fill="#666">)"
    << escape(std::to_string(r.clients) + " clients on " + r.clients_on + ", " +
              grouped(static_cast<double>(r.accounts)) + " accounts, fixed-size pools, " +
              seconds(r.warmup_s) + " s warm-up + " + seconds(r.duration_s) +
              " s measured per size and round, " + std::to_string(r.rounds) +
              (r.rounds == 1 ? " round" : " rounds (sizes rotated)") + ", acquire timeout " +
              std::to_string(r.acquire_timeout_ms) + " ms")
    << "</text>\n";
  svg::save(o, path);
}

}  // namespace lab
