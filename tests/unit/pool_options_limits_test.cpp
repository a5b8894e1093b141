// pool_options limits on existing fields: validate() (and so the pool's constructor) rejects with
// std::invalid_argument naming the field a housekeeping_interval above 1 hour (`never` included:
// the housekeeper would never tick the pool's clock), max_waiters = 0, and a max_size that cannot
// be allocated (above 1 << 20); the constructor must not let bad_alloc or bad_array_new_length
// escape for it.
#include <respool/pool.hpp>

#include <cstdint>
#include <limits>
#include <new>
#include <stdexcept>
#include <string>

#include "child_process.hpp"
#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::error_of;

namespace {

auto names(const std::string& message, const char* field) -> bool {
  return message.find(field) != std::string::npos;
}
}  // namespace

TEST_CASE("validate() rejects a housekeeping_interval above 1 hour") {
  using o = respool::pool_options;
  CHECK(names(error_of(o{.housekeeping_interval = o::never}), "housekeeping_interval"));
  CHECK(names(error_of(o{.housekeeping_interval = 1h + 1ms}), "housekeeping_interval"));
  CHECK(names(error_of(o{.housekeeping_interval = 24h}), "housekeeping_interval"));
  CHECK(error_of(o{.housekeeping_interval = 1h}).empty());
  CHECK(error_of(o{.housekeeping_interval = 0ms}).empty());  // 0: no background housekeeping
  respool_test::test_factory f;
  CHECK_THROWS_AS((respool::pool{f, o{.housekeeping_interval = o::never}}), std::invalid_argument);
  CHECK(f.c->made == 0);
}

TEST_CASE("validate() rejects max_waiters = 0") {
  using o = respool::pool_options;
  CHECK(names(error_of(o{.max_waiters = 0}), "max_waiters"));
  CHECK(error_of(o{.max_waiters = 1}).empty());
}

TEST_CASE("validate() rejects a max_size that cannot be allocated") {
  using o = respool::pool_options;
  constexpr auto huge = std::numeric_limits<std::size_t>::max() / 2;
  CHECK(names(error_of(o{.max_size = huge}), "max_size"));
  CHECK(names(error_of(o{.max_size = (std::size_t{1} << 20U) + 1}), "max_size"));
  CHECK(names(error_of(o{.max_size = std::numeric_limits<std::size_t>::max()}), "max_size"));
}

// Run in a child process: the old pool crashed (SIGSEGV) in new[] for such a size.
TEST_CASE("the pool constructor rejects a huge max_size with invalid_argument and not bad_alloc") {
  auto scenario = [] {
    respool_test::test_factory f;
    try {
      respool::pool p{
          f, respool::pool_options{.max_size = std::numeric_limits<std::size_t>::max() / 2}};
    } catch (const std::invalid_argument& e) {
      return names(e.what(), "max_size") && f.c->made == 0 ? 0 : 1;
    } catch (const std::bad_alloc&) {  // std::bad_array_new_length too
      return 2;
    } catch (...) {
      return 3;
    }
    return 4;
  };
#if RESPOOL_TEST_HAVE_FORK
  const auto r = respool_test::run_in_child(scenario, std::chrono::seconds(10));
  INFO(
      "child: exit code " << r.code
                          << " (1: invalid_argument not naming max_size, 2: bad_alloc or "
                             "bad_array_new_length, 3: another exception, 4: no exception), signal "
                          << r.signal);
  CHECK(r.finished);
  CHECK(r.exited);
  CHECK(r.code == 0);
#else
  CHECK(scenario() == 0);
#endif
}
