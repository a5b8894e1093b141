// pool_options validation, the policy concepts, and how a pool is spelled (CTAD).
#include <respool/pool.hpp>

#include <memory>
#include <stdexcept>
#include <string>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::error_of;


TEST_CASE("default options are valid") { CHECK_NOTHROW(respool::pool_options{}.validate()); }

TEST_CASE("validate() names the bad field") {
  using o = respool::pool_options;
  CHECK(error_of(o{.max_size = 0}).find("max_size") != std::string::npos);
  CHECK(error_of(o{.max_size = 2, .min_idle = 3}).find("min_idle") != std::string::npos);
  CHECK(error_of(o{.acquire_timeout = -1ms}).find("acquire_timeout") != std::string::npos);
  CHECK(error_of(o{.idle_timeout = -1ms}).find("idle_timeout") != std::string::npos);
  CHECK(error_of(o{.max_lifetime = -5s}).find("max_lifetime") != std::string::npos);
  CHECK(error_of(o{.validate_after_idle = -1ms}).find("validate_after_idle") != std::string::npos);
  CHECK(error_of(o{.keepalive_interval = -1ms}).find("keepalive_interval") != std::string::npos);
  CHECK(error_of(o{.create_backoff_min = 0ms}).find("create_backoff_min") != std::string::npos);
  CHECK(error_of(o{.create_backoff_min = 2s, .create_backoff_max = 1s}).find("create_backoff_max") !=
        std::string::npos);
  CHECK(error_of(o{.leak_threshold = -1ms}).find("leak_threshold") != std::string::npos);
  CHECK(error_of(o{.housekeeping_interval = -1ms}).find("housekeeping_interval") !=
        std::string::npos);
  CHECK(error_of(o{.name = ""}).find("name") != std::string::npos);
  // The pool's name is in the message, so a service with many pools knows which one.
  CHECK(error_of(o{.max_size = 0, .name = "orders-db"}).find("orders-db") != std::string::npos);
}

TEST_CASE("the pool constructor rejects bad options and creates nothing") {
  respool_test::test_factory f;
  CHECK_THROWS_AS((respool::pool{f, respool::pool_options{.max_size = 2, .min_idle = 5}}),
                  std::invalid_argument);
  CHECK(f.c->made == 0);
}

namespace {
struct member_factory {
  auto create() -> int { return 1; }
};
struct member_validator {
  auto validate(int&) const -> bool { return true; }
};
struct member_resetter {
  auto reset(int&) const -> bool { return true; }
};
struct not_a_factory {};
struct returns_void {
  void create() {}
};
}  // namespace

TEST_CASE("the concepts accept member and callable forms and refuse the rest") {
  STATIC_REQUIRE(respool::factory<member_factory>);
  STATIC_REQUIRE(respool::factory<decltype([] { return std::make_unique<int>(1); })>);
  STATIC_REQUIRE_FALSE(respool::factory<not_a_factory>);
  STATIC_REQUIRE_FALSE(respool::factory<returns_void>);
  STATIC_REQUIRE(std::is_same_v<respool::resource_t<member_factory>, int>);

  STATIC_REQUIRE(respool::validator<member_validator, int>);
  STATIC_REQUIRE(respool::validator<decltype([](int&) { return true; }), int>);
  STATIC_REQUIRE(respool::validator<respool::always_valid, int>);
  STATIC_REQUIRE_FALSE(respool::validator<member_resetter, int>);
  STATIC_REQUIRE_FALSE(respool::validator<decltype([](std::string&) { return true; }), int>);

  STATIC_REQUIRE(respool::resetter<member_resetter, int>);
  STATIC_REQUIRE(respool::resetter<decltype([](int&) { return false; }), int>);
  STATIC_REQUIRE(respool::resetter<respool::no_reset, int>);
  STATIC_REQUIRE_FALSE(respool::resetter<member_validator, int>);
}

TEST_CASE("class template argument deduction: a lambda alone makes a pool") {
  respool::pool p{[] { return std::make_unique<int>(42); }};
  STATIC_REQUIRE(std::is_same_v<decltype(p)::resource_type, std::unique_ptr<int>>);
  respool::lease l = p.acquire();
  CHECK(**l == 42);
  STATIC_REQUIRE(std::is_same_v<decltype(l), respool::lease<std::unique_ptr<int>>>);
}

TEST_CASE("CTAD with options, a validator and a resetter in callable form") {
  int validated = 0;
  int resets = 0;
  respool::pool p{member_factory{},
                  respool::pool_options{.max_size = 1, .validate_after_idle = 0ms},
                  [&](int&) { return ++validated > 0; }, [&](int&) { return ++resets > 0; }};
  { auto l = p.acquire(); }
  { auto l = p.acquire(); }
  CHECK(resets == 2);
  CHECK(validated >= 1);  // the second borrow validates (the first may be a fresh resource)
}

TEST_CASE("unused policies cost no space") {
  STATIC_REQUIRE(std::is_empty_v<respool::always_valid>);
  STATIC_REQUIRE(std::is_empty_v<respool::no_reset>);
}
