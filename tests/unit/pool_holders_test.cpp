// Who holds the resources: pool::holders() lists every lease out with its acquire() call site and
// how long it has been held, longest first; timeout and exhausted errors name the three longest.
// The pool runs on a manual clock, moved with run_maintenance() (which ticks the coarse clock the
// fast path stamps leases with).
#include <respool/detail/holder_text.hpp>
#include <respool/pool.hpp>

#include <string>
#include <utility>
#include <vector>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::contains;
using respool_test::manual_clock;
using respool_test::test_factory;
using clocked_pool = respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock>;

namespace {

auto load_order(clocked_pool& p) { return p.acquire(1s); }
auto add_item(clocked_pool& p) { return p.acquire(1s); }

// Two leases out: one from load_order held 4,250 ms, one from add_item held 1,910 ms.
auto hold_two(clocked_pool& p) {
  auto a = load_order(p);
  manual_clock::advance(2340ms);
  p.run_maintenance();
  auto b = add_item(p);
  manual_clock::advance(1910ms);
  p.run_maintenance();
  return std::pair{std::move(a), std::move(b)};
}

}  // namespace

TEST_CASE("holders() lists every lease out, longest held first, with its call site", "[holders]") {
  manual_clock::reset();
  test_factory f;
  clocked_pool p{f, {.max_size = 4, .housekeeping_interval = 0ms}};
  REQUIRE(p.holders().empty());
  auto [a, b] = hold_two(p);
  const auto h = p.holders();
  REQUIRE(h.size() == 2);
  CHECK(h[0].held == 4250ms);
  CHECK(h[1].held == 1910ms);
  CHECK(std::string(h[0].site.function_name).find("load_order") != std::string::npos);
  CHECK(std::string(h[1].site.function_name).find("add_item") != std::string::npos);
  CHECK(contains(h[0].site.file_name, "pool_holders_test.cpp"));
  CHECK(h[0].site.line != 0);
  b = {};  // returned: no longer listed
  REQUIRE(p.holders().size() == 1);
}

TEST_CASE("a timeout names the longest holders, their sites and how long", "[holders]") {
  manual_clock::reset();
  test_factory f;
  clocked_pool p{f, {.max_size = 2, .housekeeping_interval = 0ms}};
  auto [a, b] = hold_two(p);
  std::error_code ec;
  auto c = p.acquire(0ms, ec);
  REQUIRE(ec == respool::errc::timeout);
  try {
    (void)p.acquire(0ms);
    FAIL("the pool is exhausted");
  } catch (const respool::error& e) {
    const std::string what = e.what();
    INFO(what);
    CHECK(contains(what, "held longest by pool_holders_test.cpp:"));
    CHECK(contains(what, "(load_order) for 4,250 ms, pool_holders_test.cpp:"));
    CHECK(contains(what, "(add_item) for 1,910 ms"));
    CHECK(what.find("load_order") < what.find("add_item"));
  }
}

TEST_CASE("an exhausted (shed) error names the holders too - at most three are named", "[holders]") {
  manual_clock::reset();
  test_factory f;
  clocked_pool p{f, {.max_size = 4, .max_waiters = 1, .housekeeping_interval = 0ms}};
  std::vector<respool::lease<respool_test::resource>> held;
  for (int i = 0; i < 4; ++i) held.push_back(load_order(p));
  // One waiter fills the queue (it gives up on the manual clock only when told); the next
  // caller is shed.
  std::thread waiter([&] {
    std::error_code ec;
    (void)p.acquire(10s, ec);
  });
  REQUIRE(respool_test::eventually([&] { return p.stats().waiters == 1; }));
  std::string what;
  try {
    (void)p.acquire(1s);
  } catch (const respool::error& e) {
    what = e.what();
  }
  held.clear();  // the waiter is served and leaves
  waiter.join();
  INFO(what);
  CHECK(contains(what, "load shed"));
  CHECK(contains(what, "held longest by"));
  std::size_t named = 0;
  for (auto at = what.find("(load_order)"); at != std::string::npos;
       at = what.find("(load_order)", at + 1))
    ++named;
  CHECK(named == 3);
}

TEST_CASE("holder text: base name, short function name, thousands", "[holders]") {
  using respool::detail::describe_holder;
  using respool::detail::function_short_name;
  CHECK(function_short_name("void app::load_order(int)") == "app::load_order");
  CHECK(function_short_name("int main()") == "main");
  CHECK(function_short_name("auto f() -> int") == "f");
  CHECK(function_short_name("") == "");
  CHECK(function_short_name("{anonymous}::load_order(int)") == "load_order");
  CHECK(function_short_name("auto (anonymous namespace)::load_order(pool &)") == "load_order");
  CHECK(function_short_name("std::vector<int, std::allocator<int> > f(int)") == "f");
  CHECK(respool::detail::file_base_name("/src/app/orders.cpp") == "orders.cpp");
  CHECK(respool::detail::with_thousands(2340) == "2,340");
  CHECK(respool::detail::with_thousands(1234567) == "1,234,567");
  CHECK(respool::detail::with_thousands(999) == "999");
  const respool::lease_holder h{{"/src/orders.cpp", "void load_order(int)", 88}, 2340ms};
  CHECK(describe_holder(h) == "orders.cpp:88 (load_order) for 2,340 ms");
  CHECK(respool::detail::describe_longest_holders({}).empty());
}
