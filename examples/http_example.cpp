// Fetches a URL many times, from many threads, over a few keep-alive connections per server.
//
//   respool_example_http HOST:PORT [PATH] [threads] [requests]      e.g. 127.0.0.1:8080 /
//
// Shows: HTTP/1.1 keep-alive over plain sockets, one pool per host and port, validation that
// notices connections the server closed while idle, and a retry of idempotent requests that met
// a connection closed at the very moment they were sent.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "backends/http.hpp"

namespace http = respool_examples::http;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s HOST:PORT [PATH] [threads] [requests]\n", argv[0]);
    return 2;
  }
  const std::string endpoint = argv[1];
  const auto colon = endpoint.rfind(':');
  const std::string host = colon == std::string::npos ? endpoint : endpoint.substr(0, colon);
  const int port_arg = colon == std::string::npos ? 80 : std::atoi(endpoint.c_str() + colon + 1);
  if (port_arg <= 0 || port_arg > 65535) {
    std::fprintf(stderr, "bad port in %s\n", endpoint.c_str());
    return 2;
  }
  const auto port = static_cast<std::uint16_t>(port_arg);
  const std::string path = argc > 2 ? argv[2] : "/";
  const int threads = argc > 3 ? std::max(1, std::atoi(argv[3])) : 16;
  const int requests = argc > 4 ? std::max(1, std::atoi(argv[4])) : 2000;

  // Every borrow is validated: for HTTP the check is one poll(), no request.
  http::pools web{respool::pool_options{.max_size = 4, .acquire_timeout = 5s, .idle_timeout = 30s,
                                        .validate_after_idle = 0ms}};

  std::mutex m;
  std::map<int, int> statuses;
  std::size_t bytes = 0;
  std::atomic<int> failed{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = t; i < requests; i += threads) {
        try {
          auto r = web.request(host, port, "GET", path);
          std::lock_guard lk(m);
          ++statuses[r.status];
          bytes += r.body.size();
        } catch (const std::exception& e) {
          if (++failed == 1) std::fprintf(stderr, "request failed: %s\n", e.what());
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto s = web.for_endpoint(host, port).stats();
  std::printf("%d requests in %.2f s (%.0f/s), %zu body bytes; status:", requests, secs,
              requests / secs, bytes);
  for (const auto& [code, n] : statuses) std::printf(" %d x%d", code, n);
  std::printf("\nconnections opened: %llu for %llu requests; failed: %d\n",
              static_cast<unsigned long long>(s.created), static_cast<unsigned long long>(s.acquired),
              failed.load());
  return failed == 0 ? 0 : 1;
}
