#include <respool/errors.hpp>

#include <set>
#include <stdexcept>
#include <string>

#include "respool_catch.hpp"

namespace {
constexpr respool::errc all_codes[] = {
    respool::errc::timeout,   respool::errc::closed,    respool::errc::create_failed,
    respool::errc::backend_unavailable, respool::errc::exhausted, respool::errc::rejected,
};
}

TEST_CASE("errc converts implicitly to std::error_code in respool's category") {
  const std::error_code ec = respool::errc::timeout;
  CHECK(ec.category().name() == std::string("respool"));
  CHECK(&ec.category() == &respool::error_category());
  CHECK(ec == respool::errc::timeout);
  CHECK(ec != respool::errc::closed);
  CHECK(ec.value() != 0);  // zero would read as "no error"
  CHECK(static_cast<bool>(ec));
}

TEST_CASE("every errc has its own, distinct, non-empty message") {
  std::set<std::string> messages;
  for (auto code : all_codes) {
    const auto message = make_error_code(code).message();
    INFO("errc value " << static_cast<int>(code));
    CHECK_FALSE(message.empty());
    CHECK(message.find("unknown") == std::string::npos);
    messages.insert(message);
  }
  CHECK(messages.size() == std::size(all_codes));
  CHECK(respool::error_category().message(999).find("unknown") != std::string::npos);
}

TEST_CASE("respool codes do not compare equal to generic codes of the same value") {
  const std::error_code ours = respool::errc::timeout;
  const std::error_code generic{static_cast<int>(respool::errc::timeout), std::generic_category()};
  CHECK(ours != generic);
}

TEST_CASE("respool::error is a system_error carrying code, text and cause") {
  auto cause = std::make_exception_ptr(std::runtime_error("connection refused"));
  try {
    throw respool::error(respool::errc::backend_unavailable, "pool 'db': backend down", cause);
  } catch (const std::system_error& e) {
    CHECK(e.code() == respool::errc::backend_unavailable);
    CHECK(std::string(e.what()).find("pool 'db': backend down") != std::string::npos);
    const auto* ours = dynamic_cast<const respool::error*>(&e);
    REQUIRE(ours != nullptr);
    REQUIRE(ours->cause() != nullptr);
    CHECK_THROWS_WITH(std::rethrow_exception(ours->cause()), "connection refused");
  }
  const respool::error no_cause(respool::errc::closed, "closed");
  CHECK(no_cause.cause() == nullptr);
}
