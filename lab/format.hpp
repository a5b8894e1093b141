#pragma once
// Number formatting for the table, the CSV and the chart, independent of the C locale.
#include <cmath>
#include <cstdio>
#include <string>

namespace lab {

/// 41230.4 -> "41,230".
inline auto grouped(double value) -> std::string {
  if (!std::isfinite(value)) return "-";
  const bool negative = value < 0;
  auto n = static_cast<unsigned long long>(std::llround(std::fabs(value)));
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return negative ? "-" + out : out;
}

/// A value with `decimals` digits after the point ("%.*f", but never "-0.0").
inline auto fixed(double value, int decimals) -> std::string {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value == 0.0 ? 0.0 : value);
  return buf;
}

/// Seconds as given on the command line: "8", "0.5".
inline auto seconds(double s) -> std::string {
  return std::fabs(s - std::round(s)) < 1e-9 ? fixed(s, 0) : fixed(s, 1);
}

/// Milliseconds with about three significant digits: "0.042 ms", "3.10 ms", "41.2 ms", "1,820 ms".
inline auto milliseconds(double ms) -> std::string {
  if (ms < 1.0) return fixed(ms, 3) + " ms";
  if (ms < 10.0) return fixed(ms, 2) + " ms";
  if (ms < 100.0) return fixed(ms, 1) + " ms";
  return grouped(ms) + " ms";
}

/// A "key=value ..." connection string (libpq's, or the MySQL adapter's) or a URL without its
/// password, for messages and the chart.
inline auto masked_conninfo(const std::string& conninfo) -> std::string {
  std::string out = conninfo;
  for (const char* key : {"password=", "password ="}) {
    for (auto at = out.find(key); at != std::string::npos; at = out.find(key, at + 1)) {
      const auto start = at + std::char_traits<char>::length(key);
      auto end = out.find(' ', start);
      if (end == std::string::npos) end = out.size();
      out.replace(start, end - start, "***");
    }
  }
  if (const auto scheme = out.find("://"); scheme != std::string::npos) {
    const auto at = out.find('@', scheme);
    const auto colon = out.find(':', scheme + 3);
    if (at != std::string::npos && colon != std::string::npos && colon < at) {
      out.replace(colon + 1, at - colon - 1, "***");
    }
  }
  return out;
}

/// "41k", "1.5k", "900" for axis labels.
inline auto short_count(double value) -> std::string {
  if (value >= 1e6) return fixed(value / 1e6, value >= 1e7 ? 0 : 1) + "M";
  if (value >= 1e3) {
    const double k = value / 1e3;
    return (std::fabs(k - std::round(k)) < 1e-9 ? fixed(k, 0) : fixed(k, 1)) + "k";
  }
  return fixed(value, 0);
}

}  // namespace lab
