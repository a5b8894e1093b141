// Built with RESPOOL_DEBUG_CHECKS=1: slots count their holders and a resource lent twice aborts
// the program. Churning a tiny pool from many threads must never trip it.
#include <respool/pool.hpp>

#include <string>
#include <thread>
#include <vector>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;

static_assert(RESPOOL_DEBUG_CHECKS == 1, "this test is built with RESPOOL_DEBUG_CHECKS=1");

TEST_CASE("debug checks put respool in its own ABI namespace") {
  CHECK(std::string(RESPOOL_DETAIL_STR(RESPOOL_ABI_NAMESPACE)).find("_dbg") != std::string::npos);
}

TEST_CASE("no resource is lent twice under churn, hand-off, discard and close") {
  respool_test::test_factory f;
  respool::pool p{f, {.max_size = 2, .acquire_timeout = 30s}};
  std::vector<std::thread> threads;
  std::atomic<int> served{0};
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 3000; ++i) {
        auto l = p.acquire();
        ++served;
        if ((i + t) % 97 == 0) l.discard();
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(served == 18000);
  p.close();
  CHECK(f.c->live == 0);
}
