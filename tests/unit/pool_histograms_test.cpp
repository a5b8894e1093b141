// stats() histograms beside the wait time: how long leases are held (a resource's first hold
// after each tick of the coarse clock is timed) and how long factory calls take (every one).
#include <respool/pool.hpp>

#include <chrono>
#include <thread>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::manual_clock;
using respool_test::test_factory;
using manual_pool = respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock>;

namespace {

auto at_least(const respool::wait_histogram& h, std::chrono::microseconds d) -> std::uint64_t {
  std::uint64_t n = 0;
  for (std::size_t b = respool::wait_histogram::bucket_of(d); b < h.bucket_count; ++b)
    n += h.buckets[b];
  return n;
}

}  // namespace

TEST_CASE("create_time counts every successful creation, with its duration", "[stats]") {
  int calls = 0;
  respool::pool p{[&] {
                    std::this_thread::sleep_for(3ms);
                    if (++calls == 2) throw std::runtime_error("refused");
                    return calls;
                  },
                  respool::pool_options{.max_size = 2, .min_idle = 0}};
  { auto a = p.acquire(5s); }
  {
    auto a = p.acquire(5s);
    auto b = p.acquire(5s);  // the second call fails; a third one serves
  }
  const auto s = p.stats();
  REQUIRE(s.created == 2);
  REQUIRE(s.create_time.count() == 2);            // failed calls are not creation times
  REQUIRE(at_least(s.create_time, 2000us) == 2);  // each slept 3 ms
}

TEST_CASE("use_time times a resource's first hold after each tick of the coarse clock",
          "[stats]") {
  manual_clock::reset();
  // No housekeeping thread: the coarse clock ticks only when maintenance runs.
  manual_pool p{test_factory{}, respool::pool_options{.max_size = 1,
                                                       .housekeeping_interval = 0ms}};
  REQUIRE(p.stats().use_time.count() == 0);
  {
    auto l = p.acquire(5s);  // its first hold: timed
    std::this_thread::sleep_for(5ms);
  }
  for (int i = 0; i < 200; ++i) auto l = p.acquire(5s);  // the same tick: none timed
  REQUIRE(p.stats().use_time.count() == 1);
  REQUIRE(at_least(p.stats().use_time, 4000us) == 1);  // the 5 ms hold
  for (int tick = 0; tick < 3; ++tick) {
    manual_clock::advance(1ms);
    p.run_maintenance();  // a tick: the next hold is timed, the ones after it are not
    for (int i = 0; i < 10; ++i) auto l = p.acquire(5s);
  }
  const auto s = p.stats();
  REQUIRE(s.acquired == 231);
  REQUIRE(s.use_time.count() == 4);
  REQUIRE(s.min_idle == 0);
}

TEST_CASE("a resource's first hold is timed, also in a slot another resource had", "[stats]") {
  manual_clock::reset();
  manual_pool p{test_factory{}, respool::pool_options{.max_size = 1,
                                                       .housekeeping_interval = 0ms}};
  { auto l = p.acquire(5s); }
  {
    auto l = p.acquire(5s);
    l.discard();  // the next resource takes the same slot, in the same tick
  }
  { auto l = p.acquire(5s); }
  REQUIRE(p.stats().use_time.count() == 2);  // the first resource's first hold, the second's
}

TEST_CASE("a timed hold that is discarded still counts", "[stats]") {
  respool::pool p{[] { return 1; }, respool::pool_options{.max_size = 1}};
  {
    auto l = p.acquire(5s);
    l.discard();
  }
  REQUIRE(p.stats().use_time.count() == 1);
}
