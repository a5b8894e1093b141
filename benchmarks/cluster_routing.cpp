// cluster_routing: what a cluster_pool costs and what its balancing does, on stub endpoints.
//
// 1. The cost of routing: uncontended acquire+release cycles per second at 1 and 2 threads,
//    a plain `respool::pool` of 32 stubs against a `cluster_pool` with one endpoint (write
//    route; and read route with one replica), default options, runs interleaved (plain,
//    cluster write, cluster read, repeated `--runs` times, `--seconds` each); the figures are
//    medians and the ratio is cluster / plain.
// 2. Balance after a restart: three equal endpoints whose connect takes 20 ms, 64 threads
//    holding a connection 3 ms then pausing 1 ms, 30 connections; one endpoint refuses
//    connections for 1 s (its connections are discarded when used while it is down), then
//    answers again. Reported: how long after it is back it holds 80% of its fair share (8 of
//    10), the moves (destroy_reason::rebalanced), the pool's lowest total meanwhile; and the
//    same load through a plain pool whose factory goes round the three endpoints (skipping one
//    that refuses), max_lifetime 30 min: its share of the restarted endpoint 5 s after.
// One JSON line per figure.
#include <respool/cluster_pool.hpp>
#include <respool/pool.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_util.hpp"

namespace {

using namespace std::chrono_literals;
using respool_bench::steady;
constexpr std::uint64_t batch = 64;

struct stub {
  int value = 1;
};

template <class Acquire>
auto cycles(int threads, double seconds, Acquire acquire) -> double {
  const auto r = respool_bench::run_timed(
      threads, seconds,
      [&](int, const std::atomic<bool>& stop) {
        std::uint64_t n = 0;
        while (!stop.load(std::memory_order_relaxed)) {
          for (std::uint64_t i = 0; i < batch; ++i) {
            auto l = acquire();
            l->value += 1;
          }
          n += batch;
        }
        return n;
      },
      [] {}, [] {});
  return static_cast<double>(r.total()) / r.elapsed;
}

void routing_cost(const respool_bench::settings& s) {
  respool::pool plain{[] { return stub{}; }, respool::pool_options{.max_size = 32}};
  respool::cluster_pool cluster{
      std::vector<respool::endpoint>{{.name = "p"}, {.name = "r", .role = respool::role::replica}},
      [](const respool::endpoint&) { return stub{}; },
      respool::cluster_pool_options<stub>{.write_pool = {.max_size = 32}, .read_pool = {.max_size = 32}}};
  for (int threads : {1, 2}) {
    std::vector<double> p, w, r;
    (void)cycles(threads, 0.2, [&] { return plain.acquire(); });  // warm-up
    (void)cycles(threads, 0.2, [&] { return cluster.acquire(respool::route::write); });
    (void)cycles(threads, 0.2, [&] { return cluster.acquire(respool::route::read); });
    for (int run = 0; run < s.runs; ++run) {
      p.push_back(cycles(threads, s.seconds, [&] { return plain.acquire(); }));
      w.push_back(cycles(threads, s.seconds, [&] { return cluster.acquire(respool::route::write); }));
      r.push_back(cycles(threads, s.seconds, [&] { return cluster.acquire(respool::route::read); }));
    }
    const double pm = respool_bench::median(p);
    const double wm = respool_bench::median(w);
    const double rm = respool_bench::median(r);
    std::printf("{\"bench\":\"cluster_routing\",\"figure\":\"cycle\",\"threads\":%d,"
                "\"plain_per_sec\":%s,\"cluster_write_per_sec\":%s,\"cluster_read_per_sec\":%s,"
                "\"write_ratio\":%s,\"read_ratio\":%s}\n",
                threads, respool_bench::num(pm).c_str(), respool_bench::num(wm).c_str(),
                respool_bench::num(rm).c_str(), respool_bench::num(wm / pm).c_str(),
                respool_bench::num(rm / pm).c_str());
  }
}

// ------------------------------------------------------------------ balance

struct nodes {
  std::mutex m;
  std::array<int, 3> live{};
  std::array<bool, 3> down{};
  std::atomic<int> next{0};  // the plain pool's round robin
};

struct node_conn {
  std::shared_ptr<nodes> n;
  int at = 0;
  node_conn(std::shared_ptr<nodes> ns, int i) : n(std::move(ns)), at(i) {
    std::lock_guard lk(n->m);
    ++n->live[static_cast<std::size_t>(at)];
  }
  node_conn(node_conn&& o) noexcept : n(std::move(o.n)), at(o.at) {}
  node_conn& operator=(node_conn&&) = delete;
  ~node_conn() {
    if (!n) return;
    std::lock_guard lk(n->m);
    --n->live[static_cast<std::size_t>(at)];
  }
  [[nodiscard]] auto broken() const -> bool {
    std::lock_guard lk(n->m);
    return n->down[static_cast<std::size_t>(at)];
  }
};

auto connect(const std::shared_ptr<nodes>& n, int i) -> node_conn {
  std::this_thread::sleep_for(20ms);
  {
    std::lock_guard lk(n->m);
    if (n->down[static_cast<std::size_t>(i)]) throw std::runtime_error("connection refused");
  }
  return node_conn{n, i};
}

struct balance_figures {
  double to_80_ms = -1;     // after the node is back
  std::uint64_t moves = 0;  // rebalanced
  int lowest_total = 1 << 30;
  int share_at_5s = 0;
};

template <class Acquire, class Total, class Moves>
auto run_load(const std::shared_ptr<nodes>& n, Acquire acquire, Total total, Moves moves) -> balance_figures {
  std::atomic<bool> stop{false};
  std::vector<std::thread> threads;
  for (int t = 0; t < 64; ++t)
    threads.emplace_back([&] {
      while (!stop.load()) {
        std::error_code ec;
        auto l = acquire(ec);
        if (!l) continue;
        std::this_thread::sleep_for(3ms);
        if (l->broken()) l.discard();
        l.return_to_pool();
        std::this_thread::sleep_for(1ms);
      }
    });
  std::this_thread::sleep_for(1500ms);
  {
    std::lock_guard lk(n->m);
    n->down[2] = true;
  }
  std::this_thread::sleep_for(1s);
  {
    std::lock_guard lk(n->m);
    n->down[2] = false;
  }
  const auto back = steady::now();
  balance_figures f;
  for (;;) {
    const auto now = steady::now();
    int live2 = 0;
    {
      std::lock_guard lk(n->m);
      live2 = n->live[2];
    }
    f.lowest_total = std::min(f.lowest_total, total());
    if (f.to_80_ms < 0 && live2 >= 8) f.to_80_ms = std::chrono::duration<double, std::milli>(now - back).count();
    if (now - back >= 5s) {
      f.share_at_5s = live2;
      break;
    }
    std::this_thread::sleep_for(1ms);
  }
  f.moves = moves();
  stop = true;
  for (auto& t : threads) t.join();
  return f;
}

void print(const char* which, const balance_figures& f) {
  std::printf("{\"bench\":\"cluster_routing\",\"figure\":\"balance_after_restart\",\"pool\":\"%s\","
              "\"ms_to_80pct_share\":%s,\"share_after_5s\":%d,\"fair_share\":10,\"moves\":%llu,"
              "\"lowest_total_after_back\":%d,\"max_size\":30}\n",
              which, respool_bench::num(f.to_80_ms).c_str(), f.share_at_5s,
              static_cast<unsigned long long>(f.moves), f.lowest_total);
}

void balance() {
  {
    auto n = std::make_shared<nodes>();
    respool::cluster_pool cp{
        std::vector<respool::endpoint>{{.name = "0"}, {.name = "1"}, {.name = "2"}},
        [n](const respool::endpoint& e) { return connect(n, std::stoi(e.name)); },
        respool::cluster_pool_options<node_conn>{.write_pool = {.max_size = 30, .acquire_timeout = 2s}}};
    print("cluster_pool",
          run_load(
              n, [&](std::error_code& ec) { return cp.acquire(respool::route::write, 2s, ec); },
              [&] { return static_cast<int>(cp.stats().writes.total); },
              [&] { return cp.stats().writes.destroyed(respool::destroy_reason::rebalanced); }));
  }
  {
    auto n = std::make_shared<nodes>();
    respool::pool plain{[n] {
                          for (int tries = 0;; ++tries) {
                            const int i = n->next.fetch_add(1) % 3;
                            try {
                              return connect(n, i);
                            } catch (...) {
                              if (tries == 2) throw;
                            }
                          }
                        },
                        respool::pool_options{.max_size = 30, .acquire_timeout = 2s,
                                              .max_lifetime = 30min}};
    print("plain_pool_round_robin",
          run_load(
              n, [&](std::error_code& ec) { return plain.acquire(2s, ec); },
              [&] { return static_cast<int>(plain.stats().total); }, [] { return std::uint64_t{0}; }));
  }
}

}  // namespace

auto main(int argc, char** argv) -> int {
  const auto s = respool_bench::parse_settings(argc, argv);
  routing_cost(s);
  balance();
}
