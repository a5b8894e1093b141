#include <respool/version.hpp>

#include <string>

#include "respool_catch.hpp"

TEST_CASE("version macros agree with the version string") {
  const std::string expected = std::to_string(RESPOOL_VERSION_MAJOR) + "." +
                               std::to_string(RESPOOL_VERSION_MINOR) + "." +
                               std::to_string(RESPOOL_VERSION_PATCH);
  CHECK(expected == RESPOOL_VERSION_STRING);
  CHECK(std::string(respool::version_string) == expected);
  CHECK(RESPOOL_VERSION == respool::version_major * 10000 + respool::version_minor * 100 +
                               respool::version_patch);
}

TEST_CASE("public names live in the versioned inline namespace") {
  // Reachable both ways: unqualified through the inline namespace, and by the versioned name.
  CHECK(&respool::version_major == &respool::RESPOOL_ABI_NAMESPACE::version_major);
  CHECK(std::string(RESPOOL_DETAIL_STR(RESPOOL_ABI_NAMESPACE)).rfind("v1_", 0) == 0);
}
