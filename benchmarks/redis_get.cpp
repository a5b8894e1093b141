// Redis GET through respool, against the server's own benchmark client in the same run:
// `redis-benchmark -t get -c K` (K connections, no pipelining), and against opening a connection
// per request. Prints JSON lines; the last ones carry the ratios.
//
//   respool_bench_redis_get [--host=H --port=P] [--pool=K] [--threads=N,N,...] [--seconds=S]
//                           [--runs=R]
//
// Without --port it starts its own redis-server on 127.0.0.1 (as the integration tests do).
// The key is the one redis-benchmark asks for ("key:__rand_int__", a 3-byte value, set first).
// Every figure is the median of R runs of about S seconds, taken in rotation.
//
// What is compared:
//   redis_benchmark  redis-benchmark -t get -c K -n (S seconds' worth, calibrated first) -P 1.
//   pooled           N threads through respool::pool (max_size = min_idle = K), each request:
//                    acquire, GET, return (the resetter costs nothing: GET leaves the session
//                    clean).
//   per_request      N threads, each request connects, sends GET and disconnects.
#include <respool/pool.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "backend_bench.hpp"
#include "backends/redis.hpp"
#include "servers.hpp"

namespace rd = respool_examples::redis;
namespace bb = respool_backend_bench;
using namespace std::chrono_literals;

namespace {

// The CSV's second field on the "GET" line: "GET","54347.83",...
auto parse_rps(const std::string& out) -> double {
  const auto at = out.find("\"GET\",\"");
  if (at == std::string::npos) return 0.0;
  return std::atof(out.c_str() + at + 7);
}

constexpr const char* key = "key:__rand_int__";

}  // namespace

int main(int argc, char** argv) {
  const bb::args a(argc, argv, {"host", "port", "pool", "threads", "seconds", "runs"},
                   "[--host=H --port=P] [--pool=K] [--threads=N,N] [--seconds=S] [--runs=R]");
  const int k = std::max(1, static_cast<int>(a.number("pool", 4)));
  const auto thread_counts = a.integers("threads", std::to_string(k) + ",16");
  const double seconds = std::max(0.5, a.number("seconds", 5));
  const int runs = std::max(1, static_cast<int>(a.number("runs", 3)));
  const int cores = static_cast<int>(std::max(1U, std::thread::hardware_concurrency()));

  try {
    std::optional<respool_it::redis_server> server;
    rd::options opts;
    if (a.has("port")) {
      opts.host = a.get("host", "127.0.0.1");
      opts.port = std::atoi(a.get("port", "6379").c_str());
    } else {
      server.emplace();
      opts.port = server->port();
    }
    const auto tool = respool_it::need_program("redis-benchmark", "redis-tools");

    std::string version;
    {
      auto c = rd::factory{opts}.create();
      c.command_ok({"SET", key, "xxx"});
      auto info = rd::text_of(c.command_ok({"INFO", "server"}).get());
      const auto at = info.find("redis_version:");
      if (at != std::string::npos) version = info.substr(at + 14, info.find('\r', at) - at - 14);
    }

    auto run_tool = [&](long requests) {
      return parse_rps(respool_it::run_checked(
          {tool.string(), "-h", opts.host, "-p", std::to_string(opts.port), "-c", std::to_string(k),
           "-n", std::to_string(requests), "-t", "get", "-d", "3", "-P", "1", "--csv"},
          std::chrono::seconds(static_cast<int>(seconds) * 10 + 60)));
    };
    // redis-benchmark counts requests, not seconds: calibrate how many make S seconds.
    const double calibration = run_tool(20000);
    const long requests = std::max(20000L, static_cast<long>(calibration * seconds));
    std::fprintf(stderr, "redis_get: Redis %s, %ld requests per redis-benchmark run\n",
                 version.c_str(), requests);

    struct pooled_config {
      int threads;
      std::vector<double> rps;
      std::uint64_t errors = 0;
    };
    std::vector<pooled_config> pooled;
    for (int n : thread_counts) pooled.push_back({n, {}});
    std::vector<double> tool_rps, per_request_rps;
    std::uint64_t per_request_errors = 0;

    for (int r = 0; r < runs; ++r) {
      std::fprintf(stderr, "redis_get: run %d of %d\n", r + 1, runs);
      tool_rps.push_back(run_tool(requests));
      for (auto& cfg : pooled) {
        respool::pool cache{rd::factory{opts},
                            respool::pool_options{.max_size = static_cast<std::size_t>(k),
                                                  .min_idle = static_cast<std::size_t>(k),
                                                  .acquire_timeout = 30s,
                                                  .name = "bench"},
                            rd::validator{}, rd::resetter{}};
        const auto res = bb::run_for(cfg.threads, seconds, [&](int) {
          auto c = cache.acquire();
          auto reply = c->command({"GET", key});
          return reply->type == REDIS_REPLY_STRING;
        });
        cfg.rps.push_back(res.per_second);
        cfg.errors += res.errors;
      }
      const auto res = bb::run_for(thread_counts.front(), seconds, [&](int) {
        try {
          auto c = rd::factory{opts}.create();
          return c.command({"GET", key})->type == REDIS_REPLY_STRING;
        } catch (const rd::error&) {
          return false;  // out of ephemeral ports, say: counted, not fatal
        }
      });
      per_request_rps.push_back(res.per_second);
      per_request_errors += res.errors;
    }

    const double tool_median = bb::median(tool_rps);
    bb::json_line()
        .field("bench", "redis_get").field("what", "redis_benchmark").field("clients", k)
        .field("rps", tool_median).field("requests", static_cast<std::uint64_t>(requests))
        .field("runs", runs).field("server", "Redis " + version).field("cores", cores).print();
    const double per_request = bb::median(per_request_rps);
    bb::json_line()
        .field("bench", "redis_get").field("what", "connect_per_request")
        .field("threads", thread_counts.front()).field("rps", per_request)
        .field("errors", per_request_errors).print();
    for (const auto& cfg : pooled) {
      const double rps = bb::median(cfg.rps);
      bb::json_line()
          .field("bench", "redis_get").field("what", "pooled").field("threads", cfg.threads)
          .field("pool", k).field("rps", rps).field("errors", cfg.errors)
          .field("vs_redis_benchmark", tool_median > 0 ? rps / tool_median : 0.0)
          .field("vs_connect_per_request", per_request > 0 ? rps / per_request : 0.0)
          .print();
    }
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "redis_get: %s\n", e.what());
    return 1;
  }
}
