// The Asio example against nginx: examples/asio/asio_proxy_example.cpp (a coroutine HTTP front
// end with a respool pool of 8 keep-alive upstream connections) gets 10,000 requests at once
// from 10,000 client connections; nginx never sees more than 8 connections from it, and every
// request is answered. Also respool_asio::async_acquire itself: completion tokens
// (use_awaitable, a callback) and Asio's per-operation cancellation.
#include <sys/resource.h>

#include <boost/asio.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "asio/respool_asio.hpp"
#include "load.hpp"
#include "respool_catch.hpp"
#include "servers.hpp"

#ifndef RESPOOL_ASIO_PROXY_EXAMPLE
#error "RESPOOL_ASIO_PROXY_EXAMPLE must name the example program (tests/integration/CMakeLists.txt)"
#endif

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;
using namespace boost::asio::experimental::awaitable_operators;

namespace {

struct conn {
  int id = 0;
};

auto proxy_port(const respool_it::fs::path& log) -> std::optional<int> {
  return respool_it::port_in_log(log, "listening on ");
}

void raise_descriptor_limit() {
  rlimit lim{};
  REQUIRE(::getrlimit(RLIMIT_NOFILE, &lim) == 0);
  lim.rlim_cur = lim.rlim_max;
  REQUIRE(::setrlimit(RLIMIT_NOFILE, &lim) == 0);
}

}  // namespace

TEST_CASE("respool_asio::async_acquire: use_awaitable, callbacks and cancellation") {
  int made = 0;
  respool::pool p{[&] { return conn{++made}; }, respool::pool_options{.max_size = 1}};
  asio::io_context io;
  std::vector<std::string> seen;
  asio::co_spawn(
      io,
      [&]() -> asio::awaitable<void> {
        auto held = co_await respool_asio::async_acquire(p, 1s, asio::use_awaitable);
        seen.push_back("awaitable " + std::to_string(held->id));
        // A second acquire raced against a timer: the timer wins, the acquire is cancelled
        // through its slot and leaves the pool's queue.
        asio::steady_timer t(io, 50ms);
        auto r = co_await (respool_asio::async_acquire(p, 5s, asio::use_awaitable) ||
                           t.async_wait(asio::use_awaitable));
        seen.push_back("race " + std::to_string(r.index()));
        // An explicit slot: cancelled with operation_aborted.
        asio::cancellation_signal signal;
        respool_asio::async_acquire(
            p, 5s,
            asio::bind_cancellation_slot(signal.slot(), [&](boost::system::error_code ec, respool::lease<conn> l) {
              seen.push_back(std::string("callback ") + (ec == asio::error::operation_aborted ? "aborted" : "other") +
                             (l ? " lease" : " none"));
            }));
        asio::post(io, [&] { signal.emit(asio::cancellation_type::terminal); });
        asio::steady_timer settle(io, 50ms);
        co_await settle.async_wait(asio::use_awaitable);
        // A timeout reports respool's code.
        auto [ec, none] = co_await respool_asio::async_acquire(p, 30ms, asio::as_tuple(asio::use_awaitable));
        seen.push_back(std::string("timeout ") + (ec == respool::errc::timeout ? "yes" : ec.message()));
        held.return_to_pool();
        auto again = co_await respool_asio::async_acquire(p, 1s, asio::use_awaitable);
        seen.push_back("again " + std::to_string(again->id));
      },
      asio::detached);
  io.run();
  CHECK(seen == std::vector<std::string>{"awaitable 1", "race 1", "callback aborted none", "timeout yes", "again 1"});
  const auto s = p.stats();
  CHECK(s.cancelled == 2);
  CHECK(s.timeouts == 1);
  CHECK(s.waiters == 0);
  CHECK(s.in_use == 0);
}

TEST_CASE("asio proxy: 10,000 requests in flight over 8 upstream connections to nginx") {
  if (!respool_it::find_program("nginx")) {
    WARN("nginx is not installed (bash scripts/install-deps.sh test): not run");
    return;
  }
  raise_descriptor_limit();
  respool_it::nginx_server nginx(60s);
  respool_it::temp_dir dir("asio-proxy");
  const auto log = dir.path() / "proxy.log";
  // --seconds bounds it even if this test dies without killing it.
  respool_it::child proxy({RESPOOL_ASIO_PROXY_EXAMPLE, "0", std::to_string(nginx.port()), "--pool=8", "--seconds=240"},
                          log);
  std::optional<int> port;
  REQUIRE(respool_it::wait_until([&] { return (port = proxy_port(log)).has_value() || !proxy.running(); }, 20s));
  INFO("proxy log:\n" << respool_it::file_tail(log));
  REQUIRE(port);

  // nginx's own count of its client connections, less the one asking.
  respool_it::max_sampler upstream([&] { return static_cast<long>(nginx.active_connections().value_or(1) - 1); }, 10ms);

  constexpr int clients = 10'000;
  asio::io_context io;
  const tcp::endpoint to(asio::ip::make_address("127.0.0.1"), static_cast<unsigned short>(*port));
  std::vector<tcp::socket> sockets;
  sockets.reserve(clients);
  // Connected first, in batches the listen backlog takes, so that the requests go out together.
  int connect_failures = 0;
  for (int done = 0; done < clients;) {
    const int batch = std::min(500, clients - done);
    for (int i = 0; i < batch; ++i) {
      sockets.emplace_back(io);
      sockets.back().async_connect(to, [&](boost::system::error_code ec) {
        if (ec) ++connect_failures;
      });
    }
    io.run();
    io.restart();
    done += batch;
  }
  REQUIRE(connect_failures == 0);

  std::vector<double> latency_ms;
  latency_ms.reserve(clients);
  int answered = 0;
  int wrong = 0;
  int in_flight = 0;
  int peak_in_flight = 0;
  for (auto& s : sockets) {
    asio::co_spawn(
        io,
        [&, sock = &s]() -> asio::awaitable<void> {
          const auto start = respool_it::steady::now();
          static const std::string request = "GET / HTTP/1.1\r\nHost: proxy\r\n\r\n";
          ++in_flight;
          peak_in_flight = std::max(peak_in_flight, in_flight);
          auto [wec, wn] = co_await asio::async_write(*sock, asio::buffer(request), asio::as_tuple(asio::use_awaitable));
          std::string in;
          auto [rec, rn] = co_await asio::async_read_until(*sock, asio::dynamic_buffer(in), "hello\n",
                                                           asio::as_tuple(asio::use_awaitable));
          --in_flight;
          if (wec || rec || in.rfind("HTTP/1.1 200", 0) != 0) {
            ++wrong;
            co_return;
          }
          ++answered;
          latency_ms.push_back(std::chrono::duration<double, std::milli>(respool_it::steady::now() - start).count());
        },
        asio::detached);
  }
  const auto t0 = respool_it::steady::now();
  io.run();
  const double took = std::chrono::duration<double>(respool_it::steady::now() - t0).count();
  upstream.stop();
  sockets.clear();

  CHECK(answered == clients);
  CHECK(wrong == 0);
  CHECK(peak_in_flight == clients);  // every request was sent before the first answer was read
  CHECK(upstream.errors() == 0);
  CHECK(upstream.samples() > 10);
  CHECK(upstream.max() <= 8);
  CHECK(upstream.max() >= 1);
  std::sort(latency_ms.begin(), latency_ms.end());
  const auto pct = [&](double q) {
    return latency_ms.empty() ? 0.0 : latency_ms[static_cast<std::size_t>(q * static_cast<double>(latency_ms.size() - 1))];
  };
  ::kill(proxy.pid(), SIGTERM);
  const auto code = proxy.wait_for(10s);
  CHECK(code == 0);
  const auto text = respool_it::file_tail(log);
  INFO("proxy log:\n" << text);
  CHECK(text.find("max_size 8,") != std::string::npos);
  CHECK(text.find("timeouts 0,") != std::string::npos);
  WARN("asio proxy: " << clients << " requests in flight at once through a pool of 8 upstream connections: " << answered
                      << " answered in " << took << " s, p50 " << pct(0.50) << " ms, p99 " << pct(0.99)
                      << " ms, max " << pct(1.0) << " ms; nginx saw at most " << upstream.max()
                      << " connections from the proxy");
}
