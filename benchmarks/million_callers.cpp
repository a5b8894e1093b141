// million_callers: a million concurrent coroutine acquires on one small pool.
//
// 1. --callers (10^6) coroutines, started one after another on one thread, each doing
//    `co_await pool.acquire_async(60s)`, then holding its lease for one tick of a
//    single-threaded scheduler (it yields to the next tick, then lets go). A tick lasts
//    --tick-us, or longer when its work takes longer. Pools of 1,000 stubs (tick 1 ms) and of 8
//    (tick 20 us), each filled before the callers start (min_idle). Reported per pool:
//    - all served, none failed, none lost (the pool empty of waiters and leases at the end);
//    - the order: how far any caller was served ahead of one that came before it (0 is FIFO);
//    - memory per waiting caller beyond its coroutine frame: bytes allocated while the callers
//      start, minus their frames (the promise's operator new counts those), over the callers
//      that had to wait; and the frame's size, which holds the awaitable and its waiter record;
//    - the time from the last start to the last lease returned against the ideal, callers x
//      tick / pool size (and the start, a million frames allocated and queued, apart).
// 2. The cost of an uncontended `co_await acquire_async` (served at once: no suspension)
//    against `acquire()`, one thread, pool of 32, interleaved --runs times of --seconds.
// One JSON line per figure.
#include <respool/pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include "bench_util.hpp"

namespace {

// Heap bytes allocated while `counting` is set (the global operator new below).
std::atomic<bool> counting{false};
std::atomic<std::uint64_t> heap_bytes{0};
std::atomic<std::uint64_t> frame_bytes{0};

}  // namespace

// Replacing the global pair with malloc/free is what GCC's mismatched-new-delete check
// misreads once they are inlined into each other.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
#endif
auto operator new(std::size_t n) -> void* {
  if (counting.load(std::memory_order_relaxed)) heap_bytes.fetch_add(n, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using namespace std::chrono_literals;
using respool_bench::steady;

struct stub {
  int value = 0;
};
struct stub_factory {
  auto create() const -> stub { return {}; }
};

// An eager coroutine that frees its own frame at the end; its frames are counted.
struct detached {
  struct promise_type {
    static auto operator new(std::size_t n) -> void* {
      if (counting.load(std::memory_order_relaxed)) frame_bytes.fetch_add(n, std::memory_order_relaxed);
      return ::operator new(n);
    }
    static void operator delete(void* p) noexcept { ::operator delete(p); }
    auto get_return_object() noexcept -> detached { return {}; }
    auto initial_suspend() noexcept -> std::suspend_never { return {}; }
    auto final_suspend() noexcept -> std::suspend_never { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

// One thread's scheduler in ticks: what yields now runs in the next tick.
class ticker {
 public:
  struct yield_awaiter {
    ticker* t;
    [[nodiscard]] auto await_ready() const noexcept -> bool { return false; }
    void await_suspend(std::coroutine_handle<> h) const { t->next_.push_back(h); }
    void await_resume() const noexcept {}
  };
  auto next_tick() noexcept -> yield_awaiter { return {this}; }

  // Runs ticks until nothing is left; returns how many.
  auto run(std::chrono::nanoseconds tick) -> std::uint64_t {
    std::uint64_t ticks = 0;
    auto boundary = steady::now();
    while (!next_.empty()) {
      boundary += tick;
      while (steady::now() < boundary) {
      }
      now_.swap(next_);
      next_.clear();
      for (auto h : now_) h.resume();
      ++ticks;
    }
    return ticks;
  }

 private:
  std::vector<std::coroutine_handle<>> now_;
  std::vector<std::coroutine_handle<>> next_;
};

template <class Pool>
struct run_state {
  Pool* pool;
  ticker* sched;
  std::uint64_t arrived = 0;      // callers started so far
  std::uint64_t served = 0;       // leases received so far
  std::uint64_t failed = 0;
  std::int64_t max_ahead = 0;     // served before an earlier arrival, at most by this many
  std::uint64_t max_arrival_served = 0;
  bool any_served = false;
};

template <class Pool>
auto caller(run_state<Pool>& st) -> detached {
  const std::uint64_t me = st.arrived++;
  std::error_code ec;
  auto l = co_await st.pool->acquire_async(60s, ec);
  if (ec || !l) {
    ++st.failed;
    co_return;
  }
  // FIFO means arrivals are served in increasing order: how far one jumps ahead of the highest
  // earlier-arrived caller still waiting is measured as the gap to the last served arrival.
  if (st.any_served && me < st.max_arrival_served)
    st.max_ahead = std::max<std::int64_t>(st.max_ahead,
                                          static_cast<std::int64_t>(st.max_arrival_served - me));
  st.max_arrival_served = std::max(st.max_arrival_served, me);
  st.any_served = true;
  ++st.served;
  l->value += 1;
  co_await st.sched->next_tick();  // held for one tick
}

void million(std::size_t pool_size, std::uint64_t callers, std::chrono::nanoseconds tick) {
  using pool_t = respool::pool<stub_factory>;
  pool_t p{{}, respool::pool_options{.max_size = pool_size, .min_idle = pool_size,
                                     .create_concurrency = 8, .name = "million"}};
  p.wait_ready(10s);
  ticker sched;
  run_state<pool_t> st{&p, &sched};
  const auto t0 = steady::now();
  heap_bytes = 0;
  frame_bytes = 0;
  counting = true;
  for (std::uint64_t i = 0; i < callers; ++i) caller(st);
  counting = false;
  const auto started = steady::now();
  const auto waiting = p.stats().waiters;
  const auto heap = heap_bytes.load();
  const auto frames = frame_bytes.load();
  const auto ticks = sched.run(tick);
  const auto t1 = steady::now();
  const auto s = p.stats();
  const double total_s = std::chrono::duration<double>(t1 - t0).count();
  const double run_s = std::chrono::duration<double>(t1 - started).count();
  std::error_code probe;
  const std::size_t awaitable_bytes = sizeof(decltype(p.acquire_async(1s, probe)));
  const double ideal_s = static_cast<double>(callers) * std::chrono::duration<double>(tick).count() /
                         static_cast<double>(pool_size);
  const double beyond = waiting == 0 ? 0.0
                                     : static_cast<double>(heap - frames) / static_cast<double>(waiting);
  std::printf(
      "{\"bench\":\"million_callers\",\"pool\":%zu,\"callers\":%llu,\"tick_us\":%.1f,"
      "\"served\":%llu,\"failed\":%llu,\"waiters_at_end\":%zu,\"in_use_at_end\":%zu,"
      "\"waiting_at_peak\":%zu,\"max_served_ahead\":%lld,\"frame_bytes\":%.0f,"
      "\"awaitable_bytes\":%zu,\"bytes_beyond_frame_per_waiter\":%.1f,\"start_s\":%.3f,"
      "\"ticks\":%llu,\"ideal_ticks\":%llu,\"run_s\":%.3f,\"ideal_s\":%.3f,\"ratio\":%.3f,"
      "\"total_s\":%.3f}\n",
      pool_size, static_cast<unsigned long long>(callers),
      std::chrono::duration<double, std::micro>(tick).count(),
      static_cast<unsigned long long>(st.served), static_cast<unsigned long long>(st.failed),
      s.waiters, s.in_use, waiting, static_cast<long long>(st.max_ahead),
      static_cast<double>(frames) / static_cast<double>(callers), awaitable_bytes, beyond,
      std::chrono::duration<double>(started - t0).count(), static_cast<unsigned long long>(ticks),
      static_cast<unsigned long long>(callers / pool_size), run_s, ideal_s, run_s / ideal_s, total_s);
  std::fflush(stdout);
}

// Uncontended cycles per second: co_await acquire_async (served at once) or acquire().
template <class Pool>
auto coro_cycles(Pool& p, double seconds) -> double {
  std::uint64_t n = 0;
  bool stop = false;
  const auto until = steady::now() + std::chrono::duration<double>(seconds);
  auto body = [&]() -> detached {
    while (!stop) {
      for (int i = 0; i < 64; ++i) {
        auto l = co_await p.acquire_async(1s);
        l->value += 1;
      }
      n += 64;
      if (steady::now() >= until) stop = true;
    }
  };
  const auto t0 = steady::now();
  body();
  return static_cast<double>(n) / std::chrono::duration<double>(steady::now() - t0).count();
}

template <class Pool>
auto blocking_cycles(Pool& p, double seconds) -> double {
  std::uint64_t n = 0;
  const auto until = steady::now() + std::chrono::duration<double>(seconds);
  const auto t0 = steady::now();
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      auto l = p.acquire();
      l->value += 1;
    }
    n += 64;
    if (steady::now() >= until) break;
  }
  return static_cast<double>(n) / std::chrono::duration<double>(steady::now() - t0).count();
}

void uncontended(const respool_bench::settings& cfg) {
  respool::pool p{stub_factory{}, respool::pool_options{.max_size = 32, .min_idle = 32}};
  p.wait_ready(10s);
  std::vector<double> coro;
  std::vector<double> block;
  for (int r = 0; r < cfg.runs; ++r) {
    block.push_back(blocking_cycles(p, cfg.seconds));
    coro.push_back(coro_cycles(p, cfg.seconds));
  }
  const double b = respool_bench::median(block);
  const double c = respool_bench::median(coro);
  std::printf(
      "{\"bench\":\"million_callers_uncontended\",\"pool\":32,\"threads\":1,\"runs\":%d,"
      "\"seconds\":%.2f,\"acquire_per_s\":%.0f,\"co_await_acquire_async_per_s\":%.0f,"
      "\"ratio\":%.3f}\n",
      cfg.runs, cfg.seconds, b, c, c / b);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::uint64_t callers = 1'000'000;
  std::vector<char*> rest{argv[0]};  // --seconds and --runs go to parse_settings
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--callers=", 10) == 0) {
      callers = std::strtoull(argv[i] + 10, nullptr, 10);
    } else {
      rest.push_back(argv[i]);
    }
  }
  const auto cfg = respool_bench::parse_settings(static_cast<int>(rest.size()), rest.data());
  million(1000, callers, 1ms);
  million(8, callers, 20us);
  uncontended(cfg);
  return 0;
}
