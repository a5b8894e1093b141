// An HTTP/1.1 front end on Boost.Asio coroutines that passes every request to one upstream
// (nginx, say) over a small respool pool of keep-alive connections: thousands of client
// connections in flight, a handful of upstream ones. No thread blocks: a request waiting for an
// upstream connection is a suspended coroutine in the pool's queue (respool_asio.hpp).
//
//   respool_example_asio_proxy <listen-port> <upstream-port> [--pool=8] [--seconds=N]
//
// Listens on 127.0.0.1:<listen-port> (0: any free port), prints "listening on <port>", and
// serves GET requests (keep-alive) until SIGINT/SIGTERM or --seconds pass; then it prints the
// pool's stats. A request that finds no upstream connection within 10 s gets 503.
#include <respool/pool.hpp>

#include <sys/resource.h>
#include <sys/socket.h>

#include <boost/asio.hpp>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>

#include "asio/respool_asio.hpp"

namespace asio = boost::asio;
using asio::ip::tcp;
using namespace std::chrono_literals;

namespace {

// One keep-alive connection to the upstream.
struct upstream {
  tcp::socket socket;
  std::string in;  // read but not yet used
};

// Connects on the pool's worker thread (a blocking connect to a server on this machine); the
// socket belongs to the io_context the coroutines run on.
struct upstream_factory {
  asio::io_context* io;
  tcp::endpoint to;
  auto create() const -> upstream {
    upstream u{tcp::socket(*io), {}};
    u.socket.connect(to);
    u.socket.set_option(tcp::no_delay(true));
    return u;
  }
};

// Still connected: the server has not closed it (a peek that finds end-of-file).
struct upstream_alive {
  auto validate(upstream& u) const -> bool {
    char c = 0;
    const auto n = ::recv(u.socket.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }
};

using upstream_pool = respool::pool<upstream_factory, upstream_alive>;

auto content_length(std::string_view head) -> std::size_t {
  constexpr std::string_view key = "\r\ncontent-length:";
  for (std::size_t i = 0; i + key.size() <= head.size(); ++i) {
    bool match = true;
    for (std::size_t k = 0; k < key.size() && match; ++k)
      match = std::tolower(static_cast<unsigned char>(head[i + k])) == key[k];
    if (!match) continue;
    auto p = head.substr(i + key.size());
    while (!p.empty() && p.front() == ' ') p.remove_prefix(1);
    std::size_t n = 0;
    std::from_chars(p.data(), p.data() + p.size(), n);
    return n;
  }
  return 0;
}

// Reads one HTTP message head (up to the blank line) and its Content-Length body from `s`;
// `in` keeps what was read beyond it.
template <class Stream>
auto read_message(Stream& s, std::string& in) -> asio::awaitable<std::string> {
  const auto n = co_await asio::async_read_until(s, asio::dynamic_buffer(in), "\r\n\r\n", asio::use_awaitable);
  const auto body = content_length(std::string_view(in).substr(0, n));
  if (in.size() < n + body)
    co_await asio::async_read(s, asio::dynamic_buffer(in), asio::transfer_exactly(n + body - in.size()),
                              asio::use_awaitable);
  std::string msg = in.substr(0, n + body);
  in.erase(0, n + body);
  co_return msg;
}

// The upstream's answer to `GET target`, or nothing if the connection failed (it is discarded).
auto forward(upstream_pool& pool, const std::string& target) -> asio::awaitable<std::string> {
  auto [ec, up] = co_await respool_asio::async_acquire(pool, 10s, asio::as_tuple(asio::use_awaitable));
  if (ec) co_return "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
  const std::string request = "GET " + target + " HTTP/1.1\r\nHost: upstream\r\n\r\n";
  try {
    co_await asio::async_write(up->socket, asio::buffer(request), asio::use_awaitable);
    co_return co_await read_message(up->socket, up->in);  // the lease goes back here
  } catch (const std::exception&) {
    up.discard();  // broken mid-exchange: closed, not reused
  }
  co_return "HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n";
}

auto session(tcp::socket client, upstream_pool& pool) -> asio::awaitable<void> {
  std::string in;
  for (;;) {
    std::string request;
    try {
      request = co_await read_message(client, in);
    } catch (const std::exception&) {
      co_return;  // the client closed its connection
    }
    const auto line_end = request.find("\r\n");
    const auto first = request.find(' ');
    const auto second = request.find(' ', first + 1);
    if (first == std::string::npos || second == std::string::npos || second > line_end) co_return;
    const auto reply = co_await forward(pool, request.substr(first + 1, second - first - 1));
    auto [ec, n] = co_await asio::async_write(client, asio::buffer(reply), asio::as_tuple(asio::use_awaitable));
    if (ec) co_return;
  }
}

auto listen(tcp::acceptor& acceptor, upstream_pool& pool) -> asio::awaitable<void> {
  for (;;) {
    auto [ec, client] = co_await acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
    if (ec == asio::error::operation_aborted) co_return;
    if (ec) continue;  // out of descriptors, say: the next one may succeed
    client.set_option(tcp::no_delay(true));
    asio::co_spawn(acceptor.get_executor(), session(std::move(client), pool), asio::detached);
  }
}

// Thousands of client connections need thousands of descriptors: the soft limit up to the hard.
void raise_descriptor_limit() {
  rlimit lim{};
  if (::getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur >= lim.rlim_max) return;
  lim.rlim_cur = lim.rlim_max;
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s <listen-port> <upstream-port> [--pool=8] [--seconds=N]\n", argv[0]);
    return 2;
  }
  std::size_t pool_size = 8;
  double seconds = 0;
  for (int i = 3; i < argc; ++i) {
    if (std::strncmp(argv[i], "--pool=", 7) == 0) pool_size = std::strtoul(argv[i] + 7, nullptr, 10);
    else if (std::strncmp(argv[i], "--seconds=", 10) == 0) seconds = std::atof(argv[i] + 10);
  }
  raise_descriptor_limit();
  const auto loopback = asio::ip::make_address("127.0.0.1");
  asio::io_context io;
  upstream_pool pool{upstream_factory{&io, tcp::endpoint(loopback, static_cast<unsigned short>(std::atoi(argv[2])))},
                     respool::pool_options{.max_size = pool_size, .acquire_timeout = 10s, .name = "upstream"}};
  tcp::acceptor acceptor(io, tcp::endpoint(loopback, static_cast<unsigned short>(std::atoi(argv[1]))));
  acceptor.listen(asio::socket_base::max_listen_connections);
  std::printf("listening on %d\n", static_cast<int>(acceptor.local_endpoint().port()));
  std::fflush(stdout);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::steady_timer deadline(io);
  const auto stop = [&] {
    acceptor.close();
    io.stop();
  };
  signals.async_wait([&](auto, auto) { stop(); });
  if (seconds > 0) {
    deadline.expires_after(std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(seconds)));
    deadline.async_wait([&](boost::system::error_code ec) {
      if (!ec) stop();
    });
  }
  asio::co_spawn(io, listen(acceptor, pool), asio::detached);
  io.run();

  const auto s = pool.stats();
  std::printf("upstream pool: max_size %zu, created %llu, acquired %llu, timeouts %llu, wait p99 %lld us\n",
              s.max_size, static_cast<unsigned long long>(s.created),
              static_cast<unsigned long long>(s.acquired), static_cast<unsigned long long>(s.timeouts),
              static_cast<long long>(s.wait_p99.count()));
  return 0;
}
