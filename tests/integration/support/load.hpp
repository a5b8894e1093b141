#pragma once
// Load drivers shared by the integration tests: many threads through one pool, a sampler that
// watches a count while they run, and a recorder of every operation's timing and outcome for the
// restart tests. Every loop here is bounded by a stop flag and a hard deadline.
#include <respool/pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <vector>

namespace respool_it {

using steady = std::chrono::steady_clock;
using namespace std::chrono_literals;

/// Runs `count()` every `period` on its own thread until destroyed, keeping the largest value
/// and the number of samples. A throwing `count` is recorded as an error, not fatal.
class max_sampler {
 public:
  max_sampler(std::function<long()> count, std::chrono::milliseconds period)
      : count_(std::move(count)), period_(period), thread_([this] { run(); }) {}
  max_sampler(const max_sampler&) = delete;
  auto operator=(const max_sampler&) -> max_sampler& = delete;
  ~max_sampler() { stop(); }

  void stop() {
    {
      std::lock_guard lk(m_);
      stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  [[nodiscard]] auto max() const noexcept -> long { return max_.load(); }
  [[nodiscard]] auto samples() const noexcept -> long { return samples_.load(); }
  [[nodiscard]] auto errors() const noexcept -> long { return errors_.load(); }
  [[nodiscard]] auto last_error() const -> std::string {
    std::lock_guard lk(m_);
    return last_error_;
  }

 private:
  void run() {
    std::unique_lock lk(m_);
    while (!stop_) {
      lk.unlock();
      try {
        const long v = count_();
        long seen = max_.load();
        while (v > seen && !max_.compare_exchange_weak(seen, v)) {
        }
        ++samples_;
      } catch (const std::exception& e) {
        ++errors_;
        std::lock_guard elk(m_);
        last_error_ = e.what();
      }
      lk.lock();
      cv_.wait_for(lk, period_, [this] { return stop_; });
    }
  }

  std::function<long()> count_;
  std::chrono::milliseconds period_;
  mutable std::mutex m_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::atomic<long> max_{0};
  std::atomic<long> samples_{0};
  std::atomic<long> errors_{0};
  std::string last_error_;
  std::thread thread_;
};

/// Joins `threads`, but gives up after `limit`: a thread still running then is a hang. The
/// process is ended with a message (the servers' reapers clean up), because a hung thread cannot
/// be joined and a test that hangs tells nobody anything.
inline void join_or_die(std::vector<std::thread>& threads, std::atomic<int>& finished,
                        std::chrono::milliseconds limit, const char* what) {
  const auto end = steady::now() + limit;
  while (finished.load() < static_cast<int>(threads.size()) && steady::now() < end)
    std::this_thread::sleep_for(5ms);
  if (finished.load() < static_cast<int>(threads.size())) {
    std::fprintf(stderr, "HANG: %d of %zu %s threads still running after %lld ms\n",
                 static_cast<int>(threads.size()) - finished.load(), threads.size(), what,
                 static_cast<long long>(limit.count()));
    std::fflush(stderr);
    std::_Exit(3);
  }
  for (auto& t : threads) t.join();
}

/// What `run_workers` counted.
struct worker_counts {
  int ok = 0;
  int failed = 0;
  std::string first_failure;  // what the first exception said
};

/// Runs `op(thread, iteration)` `per_thread` times on each of `threads` threads: `true` counts as
/// ok, an exception as failed. Ends the process if a thread still runs after `limit` (see
/// join_or_die).
template <class Op>
auto run_workers(int threads, int per_thread, std::chrono::milliseconds limit, const char* what,
                 Op op) -> worker_counts {
  std::atomic<int> ok{0}, failed{0}, finished{0};
  std::string first_failure;  // written by the first failing thread only, read after the join
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        try {
          if (op(t, i)) ++ok;
        } catch (const std::exception& e) {
          if (failed++ == 0) first_failure = e.what();
        }
      }
      ++finished;
    });
  }
  join_or_die(workers, finished, limit, what);
  return {ok.load(), failed.load(), std::move(first_failure)};
}

/// One operation of a load run: when it started, how long the acquire took, how it ended.
struct op_record {
  enum class outcome { ok, acquire_failed, op_failed };
  steady::time_point start;
  steady::time_point acquired;  // when acquire returned (with a lease or an error)
  steady::time_point end;
  outcome result = outcome::ok;
  std::error_code ec;    // acquire_failed
  std::string message;   // acquire_failed, op_failed
};

/// `threads` workers loop until stopped: acquire (non-throwing, `acquire_timeout`), then
/// `op(resource)`; an op that throws or returns false discards the lease. After a failed
/// acquire a worker pauses `error_pause` (as a real client would) so that fast failures do not
/// turn into a busy loop that starves the server's recovery of CPU.
template <class Pool>
class recorded_load {
 public:
  using resource = typename Pool::resource_type;

  recorded_load(Pool& p, int threads, std::function<bool(resource&)> op,
                std::chrono::milliseconds acquire_timeout,
                std::chrono::milliseconds error_pause = 10ms)
      : pool_(p), op_(std::move(op)), timeout_(acquire_timeout), pause_(error_pause),
        logs_(static_cast<std::size_t>(threads)) {
    for (int t = 0; t < threads; ++t)
      threads_.emplace_back([this, t] { work(logs_[static_cast<std::size_t>(t)]); });
  }
  recorded_load(const recorded_load&) = delete;
  auto operator=(const recorded_load&) -> recorded_load& = delete;
  ~recorded_load() { stop(); }

  /// Stops the workers; a worker that does not finish within `limit` is a hang (see above).
  void stop(std::chrono::milliseconds limit = 30s) {
    if (stopped_) return;
    stopped_ = true;
    stop_.store(true);
    join_or_die(threads_, finished_, limit, "load");
  }

  /// Every operation of every worker, by start time (after `stop`).
  [[nodiscard]] auto records() const -> std::vector<op_record> {
    std::vector<op_record> all;
    for (const auto& log : logs_) all.insert(all.end(), log.begin(), log.end());
    std::sort(all.begin(), all.end(),
              [](const op_record& a, const op_record& b) { return a.start < b.start; });
    return all;
  }

 private:
  void work(std::vector<op_record>& log) {
    log.reserve(20000);
    for (int i = 0; i < 1'000'000 && !stop_.load(); ++i) {  // bounded
      op_record r;
      r.start = steady::now();
      std::error_code ec;
      auto lease = pool_.acquire(timeout_, ec);
      r.acquired = steady::now();
      if (!lease) {
        r.result = op_record::outcome::acquire_failed;
        r.ec = ec;
        r.end = r.acquired;
        log.push_back(std::move(r));
        std::this_thread::sleep_for(pause_);
        continue;
      }
      bool ok = false;
      try {
        ok = op_(*lease);
        if (!ok) r.message = "the operation returned false";
      } catch (const std::exception& e) {
        r.message = e.what();
      }
      if (!ok) {
        lease.discard();
        r.result = op_record::outcome::op_failed;
      }
      r.end = steady::now();
      log.push_back(std::move(r));
      if (!ok) std::this_thread::sleep_for(pause_);
    }
    ++finished_;
  }

  Pool& pool_;
  std::function<bool(resource&)> op_;
  std::chrono::milliseconds timeout_;
  std::chrono::milliseconds pause_;
  std::vector<std::vector<op_record>> logs_;
  std::atomic<bool> stop_{false};
  std::atomic<int> finished_{0};
  bool stopped_ = false;
  std::vector<std::thread> threads_;
};

/// What a restart did to a recorded load: the facts the restart tests check.
struct restart_report {
  std::size_t total = 0, ok = 0, acquire_failed = 0, op_failed = 0;
  std::size_t before_ok = 0, before_failed = 0;    // started before the fault
  std::size_t settled_ok = 0, settled_failed = 0;  // started `settle` after the server was back
  /// Operations that failed on a connection acquired after the server was back: a dead
  /// connection handed out. Must be zero.
  std::size_t dead_handed_out = 0;
  std::chrono::milliseconds longest_acquire{0};
  /// From the server being back to the end of the last failed operation (0 if none failed
  /// after it was back).
  std::chrono::milliseconds resumed_after{0};
  std::string first_settled_failure;
  std::vector<std::string> error_kinds;  // the distinct acquire errors seen (their codes' text)

  [[nodiscard]] auto kinds() const -> std::string {
    std::string k;
    for (const auto& e : error_kinds) k += (k.empty() ? "" : " | ") + e;
    return k.empty() ? "none" : k;
  }
  [[nodiscard]] auto summary() const -> std::string {
    return "ops " + std::to_string(total) + " (ok " + std::to_string(ok) + ", acquire failed " +
           std::to_string(acquire_failed) + ", op failed " + std::to_string(op_failed) +
           "); before the fault ok " + std::to_string(before_ok) + " failed " +
           std::to_string(before_failed) + "; after settling ok " + std::to_string(settled_ok) +
           " failed " + std::to_string(settled_failed) +
           "; dead connections handed out after the restart " + std::to_string(dead_handed_out) +
           "; longest acquire " +
           std::to_string(longest_acquire.count()) + " ms; full service " +
           std::to_string(resumed_after.count()) + " ms after the server was back; acquire errors: " +
           kinds();
  }
};

inline auto analyse_restart(const std::vector<op_record>& records, steady::time_point fault,
                            steady::time_point back, std::chrono::milliseconds settle)
    -> restart_report {
  using std::chrono::duration_cast;
  using ms = std::chrono::milliseconds;
  restart_report rep;
  for (const auto& r : records) {
    ++rep.total;
    const bool ok = r.result == op_record::outcome::ok;
    if (ok) {
      ++rep.ok;
    } else if (r.result == op_record::outcome::acquire_failed) {
      ++rep.acquire_failed;
      const auto code = r.ec.message();
      if (std::find(rep.error_kinds.begin(), rep.error_kinds.end(), code) == rep.error_kinds.end())
        rep.error_kinds.push_back(code);
    } else {
      ++rep.op_failed;
      if (r.acquired >= back) ++rep.dead_handed_out;
    }
    rep.longest_acquire = std::max(rep.longest_acquire, duration_cast<ms>(r.acquired - r.start));
    if (r.end < fault) {
      ok ? ++rep.before_ok : ++rep.before_failed;
    }
    if (r.start >= back + settle) {
      if (ok) {
        ++rep.settled_ok;
      } else {
        if (rep.settled_failed++ == 0)
          rep.first_settled_failure = r.ec ? r.ec.message() : r.message;
      }
    }
    if (!ok && r.end > back)
      rep.resumed_after = std::max(rep.resumed_after, duration_cast<ms>(r.end - back));
  }
  return rep;
}

}  // namespace respool_it
