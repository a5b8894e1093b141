#pragma once
// Reading respool errors in tests: the text of the exception behind `respool::error::cause()`.
#include <respool/errors.hpp>
#include <respool/options.hpp>

#include <exception>
#include <stdexcept>
#include <string>

namespace respool_test {

inline auto cause_text(const respool::error& e) -> std::string {
  try {
    if (e.cause()) std::rethrow_exception(e.cause());
  } catch (const std::exception& inner) {
    return inner.what();
  }
  return {};
}

// The message of the std::invalid_argument validate() throws; "" if it accepts the options.
inline auto error_of(const respool::pool_options& o) -> std::string {
  try {
    o.validate();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

inline auto contains(const std::string& hay, const std::string& needle) -> bool {
  return hay.find(needle) != std::string::npos;
}

}  // namespace respool_test
