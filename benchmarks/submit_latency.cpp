// submit_latency: on an idle pool, the time from `execute` returning control to the pool to the
// task's first instruction, p50 and p99 over many samples. Two figures: back to back (the idle
// thread is still spinning for work) and after a 2 ms pause (it has gone to sleep on its
// condition variable, so the hand-over includes a wake-up). A third figure is the floor for the
// second: a bare std::condition_variable waking a bare std::thread after the same pause, no pool.
//
//   respool_bench_submit_latency [samples=20000]
#include <respool/thread_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

auto percentile(std::vector<double>& v, double p) -> double {
  std::sort(v.begin(), v.end());
  const auto index = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  return v[index];
}

void report(const char* mode, int samples, std::chrono::microseconds pause,
            std::vector<double>& micros);

void measure(const char* mode, int samples, std::chrono::microseconds pause) {
  // One thread, like the bare floor below.
  respool::thread_pool pool{{.core_threads = 1,
                             .max_threads = 1,
                             .queue_capacity = 16,
                             .prestart_core = true,
                             .name = "latency"}};
  while (pool.stats().idle < 1) std::this_thread::sleep_for(1ms);
  std::vector<double> micros;
  micros.reserve(static_cast<std::size_t>(samples));
  std::atomic<clock_type::rep> started{0};
  for (int i = 0; i < samples; ++i) {
    if (pause.count() > 0) std::this_thread::sleep_for(pause);
    started.store(0, std::memory_order_relaxed);
    const auto submitted = clock_type::now();
    pool.execute([&started] {
      started.store(clock_type::now().time_since_epoch().count(), std::memory_order_release);
      started.notify_one();
    });
    // Block, as a caller waiting on a future would: a producer spinning here would hold one of
    // the two cores, and the thread woken for the task could be queued behind it.
    started.wait(0, std::memory_order_acquire);
    const clock_type::rep at = started.load(std::memory_order_acquire);
    const clock_type::duration waited{at - submitted.time_since_epoch().count()};
    micros.push_back(std::chrono::duration<double, std::micro>(waited).count());
    // Let the worker finish its bookkeeping and become idle again before the next sample.
    while (pool.stats().idle < 1) std::this_thread::yield();
  }
  report(mode, samples, pause, micros);
}

void report(const char* mode, int samples, std::chrono::microseconds pause,
            std::vector<double>& micros) {
  const double p50 = percentile(micros, 0.50);
  const double p99 = percentile(micros, 0.99);
  std::printf(
      "{\"bench\":\"submit_latency\",\"mode\":\"%s\",\"samples\":%d,\"pause_us\":%lld,"
      "\"p50_us\":%.2f,\"p99_us\":%.2f,\"max_us\":%.2f}\n",
      mode, samples, static_cast<long long>(pause.count()), p50, p99, micros.back());
  std::fflush(stdout);
}

// The floor: how long this machine takes to wake a thread sleeping on a condition variable.
void measure_bare_wakeup(int samples, std::chrono::microseconds pause) {
  std::mutex m;
  std::condition_variable cv;
  bool go = false;
  bool stop = false;
  clock_type::time_point notified{};
  std::atomic<clock_type::rep> woke{0};
  std::thread sleeper([&] {
    std::unique_lock lock(m);
    for (;;) {
      cv.wait(lock, [&] { return go || stop; });
      if (stop) return;
      go = false;
      woke.store(clock_type::now().time_since_epoch().count(), std::memory_order_release);
      woke.notify_one();
    }
  });
  std::vector<double> micros;
  for (int i = 0; i < samples; ++i) {
    std::this_thread::sleep_for(pause);
    woke.store(0, std::memory_order_relaxed);
    {
      std::lock_guard lock(m);
      go = true;
      notified = clock_type::now();
    }
    cv.notify_one();
    woke.wait(0, std::memory_order_acquire);
    const clock_type::rep at = woke.load(std::memory_order_acquire);
    const clock_type::duration waited{at - notified.time_since_epoch().count()};
    micros.push_back(std::chrono::duration<double, std::micro>(waited).count());
  }
  {
    std::lock_guard lock(m);
    stop = true;
  }
  cv.notify_one();
  sleeper.join();
  report("bare_condvar_after_pause", samples, pause, micros);
}

}  // namespace

int main(int argc, char** argv) {
  const int samples = argc > 1 ? std::max(10, std::atoi(argv[1])) : 20000;
  measure("back_to_back", samples, 0us);
  measure("after_pause", std::max(10, samples / 10), 2000us);
  measure_bare_wakeup(std::max(10, samples / 10), 2000us);
  return 0;
}
