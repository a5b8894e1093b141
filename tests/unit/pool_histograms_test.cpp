// stats() histograms beside the wait time: how long leases are held (one acquisition in
// use_time_sample_every per resource is timed) and how long factory calls take (every one).
#include <respool/pool.hpp>

#include <chrono>
#include <thread>

#include "respool_catch.hpp"

using namespace std::chrono_literals;

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

TEST_CASE("use_time times one hold in use_time_sample_every per resource", "[stats]") {
  respool::pool p{[] { return 1; }, respool::pool_options{.max_size = 1}};
  constexpr auto every = respool::pool_stats::use_time_sample_every;
  REQUIRE(p.stats().use_time.count() == 0);
  // Holds 1, every + 1, 2 * every + 1 are timed; the first one is long.
  for (std::uint64_t i = 0; i < 2 * every + 1; ++i) {
    auto l = p.acquire(5s);
    if (i == 0) std::this_thread::sleep_for(5ms);
  }
  const auto s = p.stats();
  REQUIRE(s.acquired == 2 * every + 1);
  REQUIRE(s.use_time.count() == 3);
  REQUIRE(at_least(s.use_time, 4000us) >= 1);  // the 5 ms hold
  REQUIRE(s.min_idle == 0);
}

TEST_CASE("a timed hold that is discarded still counts", "[stats]") {
  respool::pool p{[] { return 1; }, respool::pool_options{.max_size = 1}};
  {
    auto l = p.acquire(5s);
    l.discard();
  }
  REQUIRE(p.stats().use_time.count() == 1);
}
