// A page-view counter and a small leaderboard in Redis, updated by many threads through a pool of
// 4 connections.
//
//   respool_example_redis 127.0.0.1:6379 [threads] [requests]
//
// Shows: a hiredis factory with connect and command timeouts, PING validation of connections
// the server may have dropped, and a resetter that undoes what a user changed on the session
// (SELECT, MULTI, WATCH) only when something was changed.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "backends/redis.hpp"

namespace rd = respool_examples::redis;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s HOST:PORT [threads] [requests]\n", argv[0]);
    return 2;
  }
  const std::string endpoint = argv[1];
  const auto colon = endpoint.rfind(':');
  rd::options opts;
  opts.host = colon == std::string::npos ? endpoint : endpoint.substr(0, colon);
  opts.port = colon == std::string::npos ? 6379 : std::atoi(endpoint.c_str() + colon + 1);
  opts.client_name = "respool-example";
  const int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 16;
  const int requests = argc > 3 ? std::max(1, std::atoi(argv[3])) : 5000;

  respool::pool cache{rd::factory{opts},
                      respool::pool_options{.max_size = 4, .acquire_timeout = 2s,
                                            .validate_after_idle = 100ms, .name = "cache"},
                      rd::validator{}, rd::resetter{}};

  try {
    auto c = cache.acquire();
    c->command_ok({"DEL", "respool:example:views", "respool:example:board"});
  } catch (const respool::error& e) {
    std::fprintf(stderr, "cannot reach Redis: %s\n", e.what());
    return 1;
  } catch (const rd::error& e) {
    std::fprintf(stderr, "setting up: %s\n", e.what());
    return 1;
  }

  std::atomic<int> done{0}, failed{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      const std::string player = "player-" + std::to_string(t);
      for (int i = t; i < requests; i += threads) {
        try {
          auto c = cache.acquire();
          c->command_ok({"INCR", "respool:example:views"});
          if (i % 10 == 0) {
            // A transaction: the session is in MULTI until EXEC. Had this thrown half-way, the
            // resetter would DISCARD it before anyone else got the connection.
            c->command_ok({"MULTI"});
            c->command_ok({"ZINCRBY", "respool:example:board", "1", player});
            c->command_ok({"EXPIRE", "respool:example:board", "3600"});
            c->command_ok({"EXEC"});
          }
          ++done;
        } catch (const std::exception& e) {
          if (++failed == 1) std::fprintf(stderr, "request failed: %s\n", e.what());
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  try {
    auto c = cache.acquire();
    const auto views = c->command_ok({"GET", "respool:example:views"});
    const auto top = c->command_ok({"ZREVRANGE", "respool:example:board", "0", "2", "WITHSCORES"});
    std::printf("%d requests in %.2f s (%.0f/s) by %d threads; views = %s\n", done.load(), secs,
                done.load() / secs, threads, rd::text_of(views.get()).c_str());
    std::printf("top players:");
    for (std::size_t i = 0; i + 1 < top->elements; i += 2)
      std::printf(" %s (%s)", rd::text_of(top->element[i]).c_str(), rd::text_of(top->element[i + 1]).c_str());
    const auto s = cache.stats();
    std::printf("\npool: created %llu, acquired %llu, wait p99 %lld us; failed requests: %d\n",
                static_cast<unsigned long long>(s.created), static_cast<unsigned long long>(s.acquired),
                static_cast<long long>(s.wait_p99.count()), failed.load());
    return failed == 0 && rd::text_of(views.get()) == std::to_string(requests) ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "reading results: %s\n", e.what());
    return 1;
  }
}
