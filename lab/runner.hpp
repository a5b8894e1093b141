#pragma once
// Runs one step of the sweep: CLIENTS threads hammer one pool size (or the unpooled baseline)
// through a warm-up and a measured window, with a live progress line.
#include <respool/errors.hpp>
#include <respool/options.hpp>
#include <respool/pool.hpp>
#include <respool/thread_pool.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "cli.hpp"
#include "format.hpp"
#include "measure.hpp"

namespace lab {

/// Starts the client loops on plain std::threads, or on a respool::thread_pool that keeps its
/// threads from one step to the next.
class client_runner {
 public:
  client_runner(bool use_thread_pool, std::size_t clients) {
    if (use_thread_pool) {
      // Every client is a long loop, so every client needs its own thread: core = max = clients.
      // The queue only covers a thread still finishing the previous step's loop.
      threads_ = std::make_unique<respool::thread_pool>(respool::thread_pool_options{
          .core_threads = clients,
          .max_threads = clients,
          .queue_capacity = clients,
          .prestart_core = true,
          .name = "lab-client"});
    }
  }

  template <class F>
  void start(std::size_t n, F body) {
    for (std::size_t i = 0; i < n; ++i) {
      if (threads_) {
        futures_.push_back(threads_->submit([body, i] { body(i); }));
      } else {
        plain_.emplace_back([this, body, i] {
          try {
            body(i);
          } catch (...) {
            errors_[i] = std::current_exception();
          }
        });
      }
    }
  }

  void prepare(std::size_t n) { errors_.assign(n, nullptr); }

  /// Waits for every client; rethrows the first exception one of them let escape.
  void join() {
    std::exception_ptr first;
    for (auto& f : futures_) {
      try {
        f.get();
      } catch (...) {
        if (!first) first = std::current_exception();
      }
    }
    futures_.clear();
    for (auto& t : plain_) t.join();
    plain_.clear();
    for (auto& e : errors_) {
      if (e && !first) first = e;
    }
    errors_.clear();
    if (first) std::rethrow_exception(first);
  }

  [[nodiscard]] auto describe() const -> std::string {
    return threads_ ? "respool::thread_pool" : "std::thread";
  }

 private:
  std::unique_ptr<respool::thread_pool> threads_;
  std::vector<std::future<void>> futures_;
  std::vector<std::thread> plain_;
  std::vector<std::exception_ptr> errors_;
};

/// A small, fast generator per client (splitmix64): no shared state between clients.
class rng {
 public:
  explicit rng(std::uint64_t seed) : state_(seed) {}
  auto next() -> std::uint64_t {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30U)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27U)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31U);
  }
  /// Uniform enough in [1, n] for a workload (n is far below 2^64).
  auto between_1_and(std::int64_t n) -> std::int64_t {
    return static_cast<std::int64_t>(next() % static_cast<std::uint64_t>(n)) + 1;
  }

 private:
  std::uint64_t state_;
};

/// One request of the workload on a connection: a read or a transfer between two accounts.
template <class Workload>
void run_request(typename Workload::connection_type& c, rng& r, const options& o) {
  const bool write = r.next() % 100 < o.write_percent;
  std::int64_t a = r.between_1_and(o.accounts);
  if (!write) {
    Workload::read(c, a);
    return;
  }
  std::int64_t b = r.between_1_and(o.accounts - 1);
  if (b >= a) ++b;  // two distinct accounts
  auto amount = static_cast<std::int64_t>(r.next() % 100) + 1;
  // Rows are always updated in id order, so two transfers between the same accounts in
  // opposite directions cannot deadlock on a server with row locks.
  if (b < a) {
    std::swap(a, b);
    amount = -amount;
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  Workload::write(c, a, b, amount, static_cast<std::int64_t>(now));
}

/// The progress line: rewritten in place on a terminal, one final line per step otherwise.
class progress {
 public:
  explicit progress(bool tty) : tty_(tty) {}
  void update(const std::string& label, const char* stage, double elapsed, double total,
              double rps) const {
    if (!tty_) return;
    std::printf("\r  %s  %-8s %5.1f / %.1f s  %12s %s   ", label.c_str(), stage, elapsed, total,
                rps < 0 ? "" : grouped(rps).c_str(), rps < 0 ? "     " : "req/s");
    std::fflush(stdout);
  }
  void done(const std::string& label, const step_result& r, double total_s) const {
    std::printf("%s  %s  done     %5.1f s  %12s req/s   p99 %s   timeouts %llu  errors %llu\n",
                tty_ ? "\r" : "", label.c_str(), total_s, grouped(r.throughput).c_str(),
                milliseconds(r.p99_ms).c_str(), static_cast<unsigned long long>(r.timeouts),
                static_cast<unsigned long long>(r.errors));
    std::fflush(stdout);
  }

 private:
  bool tty_;
};

/// Runs the clients through the warm-up and the measured window and summarizes them.
/// `request(record, rng, measuring)` runs one request for a client; it returns false when the
/// client should pause briefly (a fast failure: the backend is down), true otherwise.
template <class Request>
auto measure_step(const options& o, std::size_t pool_size, const std::string& label,
                  client_runner& runner, const progress& out, Request request) -> step_result {
  std::vector<client_record> records(o.clients);
  std::atomic<phase> now{phase::warmup};
  const auto started = clock::now();

  runner.prepare(o.clients);
  try {
    runner.start(o.clients, [&records, &now, &request, pool_size](std::size_t i) {
      client_record& rec = records[i];
      rng random(0x5eed0000ULL + pool_size * 100'003ULL + i);
      while (true) {
        const phase p = now.load(std::memory_order_acquire);
        if (p == phase::stop) return;
        if (!request(rec, random, p == phase::measure)) {
          std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
      }
    });
  } catch (...) {
    // Some clients may run already (a thread could not be started for the others): stop and
    // join them before `records` and `now` go away.
    now.store(phase::stop, std::memory_order_release);
    try {
      runner.join();
    } catch (...) {
    }
    throw;
  }

  auto measured = [&records] {
    std::uint64_t n = 0;
    for (const auto& r : records) n += r.measured.load(std::memory_order_relaxed);
    return n;
  };
  const auto tick = std::chrono::milliseconds(250);
  const auto warmup = std::chrono::duration<double>(o.warmup_s);
  const auto window = std::chrono::duration<double>(o.duration_s);
  while (clock::now() - started < warmup) {
    out.update(label, "warm-up",
               std::chrono::duration<double>(clock::now() - started).count(), o.warmup_s, -1.0);
    std::this_thread::sleep_for(std::min<clock::duration>(
        tick, std::chrono::duration_cast<clock::duration>(warmup - (clock::now() - started))));
  }
  now.store(phase::measure, std::memory_order_release);
  const auto window_start = clock::now();
  while (true) {
    const auto elapsed = clock::now() - window_start;
    if (elapsed >= window) break;
    const double s = std::chrono::duration<double>(elapsed).count();
    out.update(label, "measure", s, o.duration_s,
               s > 0 ? static_cast<double>(measured()) / s : 0.0);
    std::this_thread::sleep_for(std::min<clock::duration>(
        tick, std::chrono::duration_cast<clock::duration>(window - elapsed)));
  }
  now.store(phase::stop, std::memory_order_release);
  const double seconds = std::chrono::duration<double>(clock::now() - window_start).count();
  runner.join();
  // A request counts if it started inside the window. Each client may finish one just after the
  // window closed, and as many that started in the warm-up finished inside it uncounted: the
  // two balance, within one request per client.
  step_result r = summarize(pool_size, records, seconds);
  out.done(label, r, std::chrono::duration<double>(clock::now() - started).count());
  return r;
}

/// One request through `pool`, for measure_step: acquire, run the workload's request, return.
template <class Workload, class Pool>
auto pooled_request(Pool& pool, const options& o) {
  return [&pool, &o](client_record& rec, rng& random, bool measuring) -> bool {
    const auto t0 = clock::now();
    typename Pool::lease_type conn;
    try {
      conn = pool.acquire();
    } catch (const respool::error& e) {
      if (!measuring) return e.code() == respool::errc::timeout;
      if (e.code() == respool::errc::timeout) {
        ++rec.timeouts;
        return true;
      }
      rec.error(e.what());
      return false;
    }
    const auto t1 = clock::now();
    try {
      run_request<Workload>(*conn, random, o);
    } catch (const std::exception& e) {
      conn.return_to_pool();  // the resetter rolls back what the request left open
      if (measuring) rec.error(e.what());
      return true;
    }
    conn.return_to_pool();
    const auto t2 = clock::now();
    if (measuring) rec.record(t1 - t0, t2 - t0);
    return true;
  };
}

template <class Workload>
using pool_for = respool::pool<typename Workload::factory_type, typename Workload::validator_type,
                               typename Workload::resetter_type>;

/// One pool size: a fixed-size pool (min_idle = max_size, all connections opened before the
/// warm-up), shared by every client.
template <class Workload>
auto run_pooled(const options& o, const Workload& w, std::size_t size, const std::string& label,
                client_runner& runner, const progress& out) -> step_result {
  pool_for<Workload> pool{w.make_factory(),
                          respool::pool_options{.max_size = size,
                                                .min_idle = size,
                                                .acquire_timeout = o.acquire_timeout,
                                                .idle_timeout = std::chrono::milliseconds::zero(),
                                                .max_lifetime = std::chrono::milliseconds::zero(),
                                                .name = "lab-" + std::to_string(size)},
                          w.make_validator(), w.make_resetter()};
  return measure_step(o, size, label, runner, out, pooled_request<Workload>(pool, o));
}

/// The baseline without a pool: every request opens its own connection and closes it after.
template <class Workload>
auto run_unpooled(const options& o, const Workload& w, const std::string& label,
                  client_runner& runner, const progress& out) -> step_result {
  const auto factory = w.make_factory();
  return measure_step(
      o, 0, label, runner, out,
      [&factory, &o](client_record& rec, rng& random, bool measuring) -> bool {
        const auto t0 = clock::now();
        std::optional<typename Workload::connection_type> conn;
        try {
          conn.emplace(factory.create());
        } catch (const std::exception& e) {
          if (measuring) rec.error(e.what());
          return false;
        }
        const auto t1 = clock::now();
        try {
          run_request<Workload>(*conn, random, o);
        } catch (const std::exception& e) {
          if (measuring) rec.error(e.what());
          return true;
        }
        conn.reset();
        const auto t2 = clock::now();
        if (measuring) rec.record(t1 - t0, t2 - t0);
        return true;
      });
}

}  // namespace lab
