#pragma once
/**
 * Error codes and the exception respool throws.
 *
 * Every failure has an `errc`; the throwing API raises `respool::error` (a `std::system_error`
 * whose `what()` says why, naming the pool and its counts), the non-throwing API fills a
 * `std::error_code`. Both compare equal to the enum:
 *
 * **Example**:
 * ```cpp
 * try { auto c = db.acquire(); }
 * catch (const respool::error& e) {
 *   if (e.code() == respool::errc::timeout) log(e.what());
 * }
 * std::error_code ec;
 * auto c = db.acquire(50ms, ec);
 * if (ec == respool::errc::backend_unavailable) ...
 * ```
 */
#include <exception>
#include <string>
#include <system_error>
#include <type_traits>

#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

enum class errc : int {
  timeout = 1,          ///< no resource (or no thread) became available in time
  closed,               ///< the pool or thread pool was closed or shut down
  create_failed,        ///< the factory threw; the cause is attached
  backend_unavailable,  ///< creation keeps failing and nothing is idle: failing fast
  exhausted,            ///< too many callers already wait (`max_waiters`)
  rejected,             ///< the thread pool's rejection policy refused the task
  cancelled,            ///< the caller's `std::stop_token` asked to stop while it waited
};

namespace detail {
class error_category_impl final : public std::error_category {
 public:
  [[nodiscard]] auto name() const noexcept -> const char* override { return "respool"; }
  [[nodiscard]] auto message(int value) const -> std::string override {
    switch (static_cast<errc>(value)) {
      case errc::timeout: return "timed out waiting for a resource";
      case errc::closed: return "closed";
      case errc::create_failed: return "creating a resource failed";
      case errc::backend_unavailable: return "backend unavailable: creating resources keeps failing";
      case errc::exhausted: return "too many waiters: load shed";
      case errc::rejected: return "task rejected";
      case errc::cancelled: return "cancelled by a stop request";
    }
    return "unknown respool error " + std::to_string(value);
  }
};
}  // namespace detail

/// The category of `respool::errc`; one object per program (an inline function's static).
[[nodiscard]] inline auto error_category() noexcept -> const std::error_category& {
  static const detail::error_category_impl instance;
  return instance;
}

[[nodiscard]] inline auto make_error_code(errc e) noexcept -> std::error_code {
  return {static_cast<int>(e), error_category()};
}

/**
 * The exception respool throws. `code()` is a `respool::errc`; `cause()` holds the exception that
 * led to it where there is one (the factory's last error behind `create_failed` or
 * `backend_unavailable`), so callers can rethrow or inspect it.
 */
class error : public std::system_error {
 public:
  error(std::error_code code, const std::string& what, std::exception_ptr cause = nullptr)
      : std::system_error(code, what), cause_(std::move(cause)) {}
  error(errc code, const std::string& what, std::exception_ptr cause = nullptr)
      : error(make_error_code(code), what, std::move(cause)) {}

  [[nodiscard]] auto cause() const noexcept -> const std::exception_ptr& { return cause_; }

 private:
  std::exception_ptr cause_;
};

RESPOOL_NAMESPACE_END

template <>
struct std::is_error_code_enum<respool::errc> : std::true_type {};
