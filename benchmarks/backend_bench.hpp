#pragma once
// Shared by the backend benchmarks (pg_select, redis_get): options, a timed run of N threads,
// medians, and JSON lines. The servers themselves come from tests/integration/support/servers.hpp.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <sys/resource.h>

namespace respool_backend_bench {

using steady = std::chrono::steady_clock;

/// `--name=value` arguments; `known` lists the accepted names (others exit with usage).
class args {
 public:
  args(int argc, char** argv, const std::vector<std::string>& known, std::string usage) {
    for (int i = 1; i < argc; ++i) {
      const std::string a = argv[i];
      const auto eq = a.find('=');
      const auto name = a.substr(0, eq);
      if (a.rfind("--", 0) != 0 || std::find(known.begin(), known.end(), name.substr(2)) == known.end()) {
        std::fprintf(stderr, "unknown argument '%s'\nusage: %s %s\n", a.c_str(), argv[0], usage.c_str());
        std::exit(2);
      }
      values_[name.substr(2)] = eq == std::string::npos ? "1" : a.substr(eq + 1);
    }
  }
  [[nodiscard]] auto get(const std::string& name, const std::string& fallback) const -> std::string {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  [[nodiscard]] auto number(const std::string& name, double fallback) const -> double {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : std::atof(it->second.c_str());
  }
  [[nodiscard]] auto integers(const std::string& name, const std::string& fallback) const
      -> std::vector<int> {
    std::vector<int> out;
    std::stringstream ss(get(name, fallback));
    for (std::string part; std::getline(ss, part, ',');)
      if (const int v = std::atoi(part.c_str()); v > 0) out.push_back(v);
    return out;
  }
  [[nodiscard]] auto has(const std::string& name) const -> bool { return values_.count(name) != 0; }

 private:
  std::map<std::string, std::string> values_;
};

inline auto median(std::vector<double> v) -> double {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  const auto n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2.0;
}

struct rate {
  double per_second = 0.0;
  std::uint64_t ops = 0;
  std::uint64_t errors = 0;
  // Per successful operation, over the running threads: context switches (voluntary or not)
  // and CPU time (user + system).
  double switches_per_op = 0.0;
  double cpu_us_per_op = 0.0;
};

struct usage {
  std::uint64_t switches = 0;
  std::uint64_t cpu_us = 0;
};
/// The calling thread's context switches and CPU time so far.
inline auto thread_usage() -> usage {
  rusage ru{};
  getrusage(RUSAGE_THREAD, &ru);
  auto us = [](const timeval& tv) {
    return static_cast<std::uint64_t>(tv.tv_sec) * 1'000'000U + static_cast<std::uint64_t>(tv.tv_usec);
  };
  return {static_cast<std::uint64_t>(ru.ru_nvcsw + ru.ru_nivcsw), us(ru.ru_utime) + us(ru.ru_stime)};
}

/// Runs `op(thread_index)` in a loop on `threads` threads for `seconds` (all start together) and
/// returns successful operations per second. `op` returns false for a failed operation.
inline auto run_for(int threads, double seconds, const std::function<bool(int)>& op) -> rate {
  std::atomic<bool> go{false}, stop{false};
  std::atomic<int> ready{0};
  std::vector<std::uint64_t> ok(static_cast<std::size_t>(threads), 0);
  std::vector<std::uint64_t> bad(static_cast<std::size_t>(threads), 0);
  std::atomic<std::uint64_t> switches{0}, cpu_us{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      ++ready;
      while (!go.load()) std::this_thread::yield();
      const auto before = thread_usage();
      std::uint64_t n = 0, e = 0;
      while (!stop.load(std::memory_order_relaxed)) (op(t) ? n : e) += 1;
      const auto after = thread_usage();
      switches += after.switches - before.switches;
      cpu_us += after.cpu_us - before.cpu_us;
      ok[static_cast<std::size_t>(t)] = n;
      bad[static_cast<std::size_t>(t)] = e;
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  const auto start = steady::now();
  go.store(true);
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop.store(true);
  for (auto& t : ts) t.join();
  const double elapsed = std::chrono::duration<double>(steady::now() - start).count();
  rate r;
  for (auto n : ok) r.ops += n;
  for (auto n : bad) r.errors += n;
  r.per_second = static_cast<double>(r.ops) / elapsed;
  const double ops = static_cast<double>(std::max<std::uint64_t>(1, r.ops));
  r.switches_per_op = static_cast<double>(switches.load()) / ops;
  r.cpu_us_per_op = static_cast<double>(cpu_us.load()) / ops;
  return r;
}

/// A JSON line builder: `json_line().field("bench", "x").field("tps", 1.5).print()`.
class json_line {
 public:
  auto field(const std::string& k, const std::string& v) -> json_line& {
    std::string esc;
    for (char c : v) {
      if (c == '"' || c == '\\') esc += '\\';
      if (c == '\n') {
        esc += "\\n";
        continue;
      }
      esc += c;
    }
    return raw(k, "\"" + esc + "\"");
  }
  auto field(const std::string& k, const char* v) -> json_line& { return field(k, std::string(v)); }
  auto field(const std::string& k, double v) -> json_line& {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.2f", v);
    return raw(k, buf);
  }
  auto field(const std::string& k, int v) -> json_line& { return raw(k, std::to_string(v)); }
  auto field(const std::string& k, std::uint64_t v) -> json_line& { return raw(k, std::to_string(v)); }
  void print() const {
    std::printf("{%s}\n", body_.c_str());
    std::fflush(stdout);
  }

 private:
  auto raw(const std::string& k, const std::string& v) -> json_line& {
    if (!body_.empty()) body_ += ", ";
    body_ += "\"" + k + "\": " + v;
    return *this;
  }
  std::string body_;
};

}  // namespace respool_backend_bench
