#pragma once
/**
 * HTTP/1.1 keep-alive connections over plain POSIX sockets, pooled with `respool::pool`: example
 * code to copy, not part of respool's headers. No client library: a connection sends a request
 * and reads one response (Content-Length or chunked), and stays open for the next one unless the
 * server said `Connection: close` or framed the body by closing.
 *
 * - `http::factory` resolves the host (`getaddrinfo`), connects with a deadline, and sets socket
 *   timeouts so no read or write can hang. Errors say what failed: "connect to 127.0.0.1:8080:
 *   Connection refused".
 * - `http::validator` notices a connection the server closed while it sat idle (a server's
 *   `keepalive_timeout`, a restart, a middlebox): `poll` shows it readable and `recv` with
 *   `MSG_PEEK | MSG_DONTWAIT` reads end of file. Unexpected bytes on an idle connection also
 *   fail it. No request is sent: it costs one system call, so validate every borrow
 *   (`validate_after_idle = 0ms`).
 * - `http::resetter` keeps a connection only if it can carry another request (`reusable()`).
 * - `http::pools` keeps one pool per host and port, made on first use with shared options.
 *
 * A server may still close a keep-alive connection at the very moment a request goes out. Such a
 * failure, before any byte of response arrived, throws `http::stale_connection`: an idempotent
 * request can be retried on another connection, which `pools::request` does once.
 *
 * **Example**:
 * ```cpp
 * namespace http = respool_examples::http;
 * http::pools web{respool::pool_options{.max_size = 4, .validate_after_idle = 0ms}};
 * auto r = web.request("127.0.0.1", 8080, "GET", "/");
 * std::printf("%d %zu bytes\n", r.status, r.body.size());
 * ```
 */
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>
#include <fcntl.h>

#include <respool/pool.hpp>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>
#include <vector>

namespace respool_examples::http {

/// A failed connect, send or receive, or a malformed response.
class error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The server closed the connection before any byte of the response arrived: the request may
/// not have been processed, and an idempotent one can be retried on a fresh connection.
class stale_connection : public error {
 public:
  using error::error;
};

struct response {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;

  /// The first header with this (lower-case) name, if any.
  [[nodiscard]] auto header(std::string_view name) const -> std::optional<std::string> {
    for (const auto& [k, v] : headers)
      if (k == name) return v;
    return std::nullopt;
  }
};

/// Where and how to connect.
struct options {
  std::string host = "127.0.0.1";
  std::uint16_t port = 80;
  std::chrono::milliseconds connect_timeout{2000};
  /// Bound on each send and each receive.
  std::chrono::milliseconds io_timeout{5000};
  /// Largest response head and body accepted.
  std::size_t max_response_bytes = 64U * 1024U * 1024U;
};

namespace detail {
inline auto lower(std::string_view s) -> std::string {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
  return out;
}
inline auto trim(std::string_view s) -> std::string_view {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) s.remove_suffix(1);
  return s;
}
inline auto errno_text(int e) -> std::string { return std::generic_category().message(e); }

inline void set_timeouts(int fd, std::chrono::milliseconds d) {
  timeval tv{};
  tv.tv_sec = static_cast<decltype(tv.tv_sec)>(d.count() / 1000);
  tv.tv_usec = static_cast<decltype(tv.tv_usec)>((d.count() % 1000) * 1000);
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

// Connects a non-blocking socket with a deadline, then makes it blocking again.
inline auto connect_with_deadline(const addrinfo* ai, std::chrono::milliseconds timeout, int& err)
    -> int {
  const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                          ai->ai_protocol);
  if (fd < 0) {
    err = errno;
    return -1;
  }
  if (::connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) {
      err = errno;
      ::close(fd);
      return -1;
    }
    pollfd p{fd, POLLOUT, 0};
    const int n = ::poll(&p, 1, static_cast<int>(timeout.count()));
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (n <= 0) {
      err = n == 0 ? ETIMEDOUT : errno;
      ::close(fd);
      return -1;
    }
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) != 0 || so_error != 0) {
      err = so_error != 0 ? so_error : errno;
      ::close(fd);
      return -1;
    }
  }
  const int flags = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
  return fd;
}
}  // namespace detail

/// One keep-alive connection. Move-only; closes its socket on destruction.
class connection {
 public:
  connection(int fd, options o) noexcept : fd_(fd), opts_(std::move(o)) {}
  connection(connection&& other) noexcept
      : fd_(std::exchange(other.fd_, -1)),
        opts_(std::move(other.opts_)),
        reusable_(other.reusable_),
        requests_(other.requests_) {}
  auto operator=(connection&& other) noexcept -> connection& {
    if (this != &other) {
      close();
      fd_ = std::exchange(other.fd_, -1);
      opts_ = std::move(other.opts_);
      reusable_ = other.reusable_;
      requests_ = other.requests_;
    }
    return *this;
  }
  connection(const connection&) = delete;
  auto operator=(const connection&) -> connection& = delete;
  ~connection() { close(); }

  [[nodiscard]] auto fd() const noexcept -> int { return fd_; }
  /// Can carry another request (the last response was complete and did not close it).
  [[nodiscard]] auto reusable() const noexcept -> bool { return fd_ >= 0 && reusable_; }
  /// Requests sent on this connection so far.
  [[nodiscard]] auto requests() const noexcept -> std::size_t { return requests_; }

  /// Sends one request and reads the whole response. Throws `stale_connection` if the server
  /// closed the connection before answering, `error` for other failures (the connection is then
  /// not reusable, and the pool destroys it on return).
  auto request(std::string_view method, std::string_view target, std::string_view body = {},
               const std::vector<std::pair<std::string, std::string>>& extra_headers = {})
      -> response {
    if (!reusable()) throw error("http: request on a connection that cannot be reused");
    reusable_ = false;  // until this exchange completes cleanly
    ++requests_;
    std::string req;
    req.reserve(128 + body.size());
    req.append(method).append(" ").append(target).append(" HTTP/1.1\r\nHost: ");
    req.append(opts_.host).append(":").append(std::to_string(opts_.port)).append("\r\n");
    for (const auto& [k, v] : extra_headers) req.append(k).append(": ").append(v).append("\r\n");
    if (!body.empty() || method == "POST" || method == "PUT")
      req.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    req.append("\r\n").append(body);
    send_all(req);

    response res;
    read_head(res);
    const bool head_only = method == "HEAD" || res.status / 100 == 1 || res.status == 204 ||
                           res.status == 304;
    bool keep = true;
    if (auto c = res.header("connection"); c && detail::lower(*c).find("close") != std::string::npos)
      keep = false;
    if (!head_only) {
      auto te = res.header("transfer-encoding");
      auto cl = res.header("content-length");
      if (te && detail::lower(*te).find("chunked") != std::string::npos) {
        read_chunked(res.body);
      } else if (cl) {
        read_exact(res.body, parse_size(*cl, 10));
      } else {
        read_to_close(res.body);  // framed by the close: the connection is done
        keep = false;
      }
    }
    reusable_ = keep && buffer_.empty();  // leftover bytes would belong to no request
    return res;
  }

 private:
  void close() noexcept {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  [[nodiscard]] auto where() const -> std::string {
    return opts_.host + ":" + std::to_string(opts_.port);
  }

  void send_all(std::string_view data) {
    std::size_t sent = 0;
    while (sent < data.size()) {
      const auto n = ::send(fd_, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        const int e = errno;
        if (e == EPIPE || e == ECONNRESET)
          throw stale_connection("http " + where() + ": the server closed the connection (" +
                                 detail::errno_text(e) + ")");
        throw error("http " + where() + ": send: " + detail::errno_text(e));
      }
      sent += static_cast<std::size_t>(n);
    }
  }

  // Reads more into buffer_; false at end of file. Throws on error or timeout.
  auto fill() -> bool {
    char chunk[16384];
    for (int tries = 0; tries < 100; ++tries) {  // EINTR retries, bounded
      const auto n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n > 0) {
        received_any_ = true;
        buffer_.append(chunk, static_cast<std::size_t>(n));
        if (buffer_.size() > opts_.max_response_bytes) throw error("http " + where() + ": response too large");
        return true;
      }
      if (n == 0) return false;
      if (errno == EINTR) continue;
      const int e = errno;
      if (e == EAGAIN || e == EWOULDBLOCK)
        throw error("http " + where() + ": no response within " +
                    std::to_string(opts_.io_timeout.count()) + " ms");
      if (e == ECONNRESET && !received_any_)
        throw stale_connection("http " + where() + ": the server reset the connection");
      throw error("http " + where() + ": recv: " + detail::errno_text(e));
    }
    throw error("http " + where() + ": recv interrupted too often");
  }

  void read_head(response& res) {
    received_any_ = false;
    std::size_t end = 0;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!fill()) {
        if (!received_any_ && buffer_.empty())
          throw stale_connection("http " + where() + ": the server closed the connection");
        throw error("http " + where() + ": connection closed in the middle of a response head");
      }
    }
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    std::size_t line_end = head.find("\r\n");
    const std::string_view status_line = std::string_view(head).substr(0, line_end);
    // "HTTP/1.1 200 OK"
    if (status_line.substr(0, 5) != "HTTP/" || status_line.size() < 12)
      throw error("http " + where() + ": malformed status line: " + std::string(status_line));
    res.status = static_cast<int>(parse_size(status_line.substr(9, 3), 10));
    res.reason = std::string(status_line.size() > 13 ? status_line.substr(13) : "");
    const bool http10 = status_line.substr(0, 8) == "HTTP/1.0";
    while (line_end != std::string::npos) {
      const auto start = line_end + 2;
      line_end = head.find("\r\n", start);
      const auto line = std::string_view(head).substr(
          start, line_end == std::string::npos ? std::string::npos : line_end - start);
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) continue;
      res.headers.emplace_back(detail::lower(detail::trim(line.substr(0, colon))),
                               std::string(detail::trim(line.substr(colon + 1))));
    }
    if (http10) {
      auto c = res.header("connection");
      if (!c || detail::lower(*c) != "keep-alive") res.headers.emplace_back("connection", "close");
    }
  }

  void read_exact(std::string& out, std::size_t n) {
    if (n > opts_.max_response_bytes) throw error("http " + where() + ": response too large");
    while (buffer_.size() < n)
      if (!fill()) throw error("http " + where() + ": connection closed in the middle of a body");
    out.append(buffer_, 0, n);
    buffer_.erase(0, n);
  }

  auto read_line() -> std::string {
    std::size_t at = 0;
    while ((at = buffer_.find("\r\n")) == std::string::npos)
      if (!fill()) throw error("http " + where() + ": connection closed in a chunked body");
    std::string line = buffer_.substr(0, at);
    buffer_.erase(0, at + 2);
    return line;
  }

  void read_chunked(std::string& out) {
    for (;;) {
      const auto line = read_line();
      const auto size = parse_size(line.substr(0, line.find(';')), 16);
      if (size == 0) break;
      read_exact(out, size);
      if (!read_line().empty()) throw error("http " + where() + ": malformed chunk");
    }
    while (!read_line().empty()) {  // trailers, up to the empty line
    }
  }

  void read_to_close(std::string& out) {
    while (fill()) {
    }
    out += buffer_;
    buffer_.clear();
  }

  [[nodiscard]] auto parse_size(std::string_view s, int base) const -> std::size_t {
    s = detail::trim(s);
    if (s.empty()) throw error("http " + where() + ": malformed number in response");
    std::size_t v = 0;
    for (char ch : s) {
      int d = -1;
      if (ch >= '0' && ch <= '9') d = ch - '0';
      if (base == 16 && ch >= 'a' && ch <= 'f') d = ch - 'a' + 10;
      if (base == 16 && ch >= 'A' && ch <= 'F') d = ch - 'A' + 10;
      if (d < 0 || d >= base) throw error("http " + where() + ": malformed number in response");
      if (v > opts_.max_response_bytes) throw error("http " + where() + ": response too large");
      v = v * static_cast<std::size_t>(base) + static_cast<std::size_t>(d);
    }
    return v;
  }

  int fd_ = -1;
  options opts_;
  bool reusable_ = true;
  bool received_any_ = false;
  std::size_t requests_ = 0;
  std::string buffer_;
};

/// The pool's factory: a new TCP connection to `opts.host:opts.port`.
struct factory {
  options opts;

  [[nodiscard]] auto create() const -> connection {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    const auto port = std::to_string(opts.port);
    const std::string where = opts.host + ":" + port;
    if (const int rc = ::getaddrinfo(opts.host.c_str(), port.c_str(), &hints, &found); rc != 0)
      throw error("http: resolving " + where + ": " + ::gai_strerror(rc));
    std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> list(found, &::freeaddrinfo);
    int err = 0;
    for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
      const int fd = detail::connect_with_deadline(ai, opts.connect_timeout, err);
      if (fd < 0) continue;
      detail::set_timeouts(fd, opts.io_timeout);
      const int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      return connection(fd, opts);
    }
    throw error("http: connect to " + where + ": " + detail::errno_text(err));
  }
};

/// The pool's validator (see the top of this file).
struct validator {
  auto validate(connection& c) const noexcept -> bool {
    if (!c.reusable()) return false;
    pollfd p{c.fd(), POLLIN, 0};
    const int n = ::poll(&p, 1, 0);
    if (n == 0) return true;  // nothing to read, no hang-up: alive as far as we can tell
    if (n < 0) return false;
    if ((p.revents & (POLLERR | POLLHUP | POLLNVAL)) != 0) return false;
    char byte = 0;
    const auto got = ::recv(c.fd(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (got == 0) return false;  // end of file: the server closed it
    if (got > 0) return false;   // bytes nobody asked for: the stream is out of step
    return errno == EAGAIN || errno == EWOULDBLOCK;
  }
};

/// The pool's resetter: keep the connection only if it can carry another request.
struct resetter {
  auto reset(connection& c) const noexcept -> bool { return c.reusable(); }
};

using pool_type = respool::pool<factory, validator, resetter>;

/// One pool per host and port, created on first use; each pool's options are `base` with the
/// name set to "http host:port". Safe to use from many threads.
class pools {
 public:
  explicit pools(respool::pool_options base = {}, options conn = {})
      : base_(std::move(base)), conn_(std::move(conn)) {}

  /// The pool for host:port (made on first use; lives as long as this object).
  auto for_endpoint(const std::string& host, std::uint16_t port) -> pool_type& {
    const std::string key = host + ":" + std::to_string(port);
    std::lock_guard lk(mutex_);
    auto it = pools_.find(key);
    if (it == pools_.end()) {
      auto opts = base_;
      opts.name = "http " + key;
      options conn = conn_;
      conn.host = host;
      conn.port = port;
      it = pools_.emplace(key, std::make_unique<pool_type>(factory{conn}, std::move(opts)))
               .first;
    }
    return *it->second;
  }

  /// One request through the host's pool. A request that met a connection the server had just
  /// closed is retried once on another connection if the method is idempotent.
  auto request(const std::string& host, std::uint16_t port, std::string_view method,
               std::string_view target, std::string_view body = {}) -> response {
    auto& p = for_endpoint(host, port);
    const bool idempotent = method == "GET" || method == "HEAD" || method == "PUT" ||
                            method == "DELETE" || method == "OPTIONS";
    for (int attempt = 0;; ++attempt) {
      auto conn = p.acquire();
      try {
        return conn->request(method, target, body);
      } catch (const stale_connection&) {
        conn.discard();
        if (!idempotent || attempt >= 1) throw;
      }
    }
  }

  /// How many host:port pools exist.
  [[nodiscard]] auto size() const -> std::size_t {
    std::lock_guard lk(mutex_);
    return pools_.size();
  }

 private:
  respool::pool_options base_;
  options conn_;
  mutable std::mutex mutex_;
  std::map<std::string, std::unique_ptr<pool_type>> pools_;
};

}  // namespace respool_examples::http
