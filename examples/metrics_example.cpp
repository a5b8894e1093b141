// Serves a resource pool's and a thread pool's metrics to Prometheus while both do some work.
//
//   respool_example_metrics [PORT] [--seconds=N]
//
// Listens on 127.0.0.1:PORT (0, the default: a free port the kernel picks) and prints
// "metrics: http://127.0.0.1:<port>/metrics" once it does. Runs until SIGINT or SIGTERM, or for
// N seconds. Point a Prometheus scrape job at it:
//
//   scrape_configs:
//     - job_name: respool
//       static_configs: [{targets: ['127.0.0.1:<port>']}]
//
// and ask, for instance, `db_client_connection_count{pool_name="example-db"}` (idle and used),
// `respool_thread_pool_queued_tasks{pool_name="example-io"}` (the queue depth), or
// `histogram_quantile(0.99, rate(db_client_connection_wait_time_seconds_bucket[1m]))`.
//
// The work: a producer hands bursts of tasks to the thread pool "example-io" (4 threads at most,
// a queue of 16, caller_runs when full); each task borrows a connection from the pool
// "example-db" (max_size 4, min_idle 1; a "connection" is a number, created in 2-4 ms and
// retired after 50 uses) and holds it for 1-8 ms. The HTTP server is the smallest that serves
// Prometheus: one connection at a time, one request per connection, POSIX sockets only.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <respool/metrics.hpp>
#include <respool/pool.hpp>
#include <respool/thread_pool.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>
#include <string_view>
#include <thread>

using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

volatile std::sig_atomic_t stop_requested = 0;
extern "C" void on_stop_signal(int /*signal*/) { stop_requested = 1; }

/// SIGINT and SIGTERM end the serve loop (no SA_RESTART: a blocked poll returns EINTR).
void catch_stop_signals() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a scraper that hangs up early must not kill us
}

/// A listening socket on 127.0.0.1:port; its actual port in `port`. -1 on failure (perror'd).
auto listen_loopback(std::uint16_t& port) -> int {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    std::perror("socket");
    return -1;
  }
  const int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 16) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    std::perror("bind/listen on 127.0.0.1");
    ::close(fd);
    return -1;
  }
  port = ntohs(a.sin_port);
  return fd;
}

void send_all(int fd, std::string_view data) {
  while (!data.empty()) {
    const auto n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (n <= 0) return;
    data.remove_prefix(static_cast<std::size_t>(n));
  }
}

/// Reads one request's head (bounded in size and, through SO_RCVTIMEO, in time) and answers it:
/// `GET /metrics` with `metrics_text()`, anything else with 404 or 405. Closes the connection.
template <class MetricsText>
void serve_one(int fd, const MetricsText& metrics_text) {
  timeval tv{};
  tv.tv_sec = 2;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string head;
  char buf[2048];
  while (head.find("\r\n\r\n") == std::string::npos && head.size() < 16 * 1024) {
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    head.append(buf, static_cast<std::size_t>(n));
  }
  const auto line_end = head.find("\r\n");
  const std::string_view line = std::string_view(head).substr(0, line_end);
  const auto sp1 = line.find(' ');
  const auto sp2 = line.find(' ', sp1 == std::string_view::npos ? line.size() : sp1 + 1);
  std::string status = "400 Bad Request";
  std::string type = "text/plain; charset=utf-8";
  std::string body = "bad request\n";
  if (sp1 != std::string_view::npos && sp2 != std::string_view::npos) {
    const auto method = line.substr(0, sp1);
    auto path = line.substr(sp1 + 1, sp2 - sp1 - 1);
    path = path.substr(0, path.find('?'));
    if (path != "/metrics") {
      status = "404 Not Found";
      body = "not found: try /metrics\n";
    } else if (method != "GET" && method != "HEAD") {
      status = "405 Method Not Allowed";
      body = "GET only\n";
    } else {
      status = "200 OK";
      type = "text/plain; version=0.0.4; charset=utf-8";
      body = metrics_text();
      if (method == "HEAD") body.clear();
    }
  }
  send_all(fd, "HTTP/1.1 " + status + "\r\nContent-Type: " + type +
                   "\r\nContent-Length: " + std::to_string(body.size()) +
                   "\r\nConnection: close\r\n\r\n" + body);
  ::close(fd);
}

/// Usage error or the parsed arguments.
struct arguments {
  std::uint16_t port = 0;
  std::optional<std::chrono::seconds> run_for;
};

auto parse(int argc, char** argv) -> std::optional<arguments> {
  arguments a;
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg = argv[i];
    char* end = nullptr;
    if (arg.rfind("--seconds=", 0) == 0) {
      const long s = std::strtol(argv[i] + 10, &end, 10);
      if (*end != '\0' || s <= 0) return std::nullopt;
      a.run_for = std::chrono::seconds(s);
    } else {
      const long p = std::strtol(argv[i], &end, 10);
      if (*end != '\0' || p < 0 || p > 65535) return std::nullopt;
      a.port = static_cast<std::uint16_t>(p);
    }
  }
  return a;
}

}  // namespace

int main(int argc, char** argv) {
  const auto args = parse(argc, argv);
  if (!args) {
    std::fprintf(stderr, "usage: %s [PORT] [--seconds=N]   (PORT 0: any free port)\n", argv[0]);
    return 2;
  }
  catch_stop_signals();

  // A "connection" that takes 2-4 ms to open, for the create-time histogram.
  std::atomic<int> opened{0};
  respool::pool db{[&opened] {
                     const int n = ++opened;
                     std::this_thread::sleep_for(std::chrono::milliseconds(2 + n % 3));
                     return n;
                   },
                   respool::pool_options{.max_size = 4, .min_idle = 1, .acquire_timeout = 50ms,
                                         .max_uses = 50, .name = "example-db"}};
  respool::thread_pool io{respool::thread_pool_options{
      .core_threads = 2, .max_threads = 4, .queue_capacity = 16,
      .rejection = respool::rejection_policy::caller_runs, .name = "example-io"}};

  // Bursts of 12 tasks every 25 ms: more than 4 threads and 4 connections can take at once, so
  // the queue fills, callers wait for connections, and now and then one times out.
  std::atomic<bool> producing{true};
  std::thread producer([&] {
    unsigned tick = 0;
    while (producing.load()) {
      for (unsigned i = 0; i < 12; ++i) {
        const auto hold = std::chrono::milliseconds(1 + (tick * 7 + i * 3) % 8);
        io.execute([&db, hold] {
          std::error_code ec;
          auto lease = db.acquire(db.options().acquire_timeout, ec);
          if (lease) std::this_thread::sleep_for(hold);
        });
      }
      ++tick;
      std::this_thread::sleep_for(25ms);
    }
  });

  std::uint16_t port = args->port;
  const int listener = listen_loopback(port);
  int rc = 0;
  if (listener < 0) {
    rc = 1;
  } else {
    std::printf("metrics: http://127.0.0.1:%u/metrics\n", static_cast<unsigned>(port));
    std::fflush(stdout);
    const auto metrics_text = [&] {
      return respool::metrics::prometheus(db.stats(), db.options().name) +
             respool::metrics::prometheus(io.stats(), io.options().name);
    };
    const auto deadline = args->run_for ? std::optional(steady::now() + *args->run_for)
                                        : std::nullopt;
    while (stop_requested == 0 && (!deadline || steady::now() < *deadline)) {
      pollfd p{listener, POLLIN, 0};
      const int ready = ::poll(&p, 1, 100);
      if (ready < 0 && errno != EINTR) {
        std::perror("poll");
        rc = 1;
        break;
      }
      if (ready <= 0) continue;
      const int client = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
      if (client >= 0) serve_one(client, metrics_text);
    }
    ::close(listener);
  }

  producing = false;
  producer.join();
  io.shutdown();
  const auto s = db.stats();
  const auto t = io.stats();
  std::printf("served; the pool lent %llu connections (%llu created), the thread pool ran %llu "
              "tasks\n",
              static_cast<unsigned long long>(s.acquired),
              static_cast<unsigned long long>(s.created),
              static_cast<unsigned long long>(t.completed));
  return rc;
}
