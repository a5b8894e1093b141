// Slow-path events, leak detection with the acquiring source location, and the stats snapshot.
#include <respool/pool.hpp>

#include <mutex>
#include <string>
#include <vector>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::eventually;
using respool_test::manual_clock;
using respool_test::resource;
using respool_test::test_factory;

namespace {
using manual_pool = respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock>;

struct recorded {
  respool::event_kind kind;
  respool::destroy_reason reason;
  std::string pool;
  std::string message;
  std::string file;
  unsigned line;
  std::chrono::milliseconds held;
};

struct recorder {
  std::shared_ptr<std::mutex> m = std::make_shared<std::mutex>();
  std::shared_ptr<std::vector<recorded>> events = std::make_shared<std::vector<recorded>>();
  auto callback() {
    return [m = m, events = events](const respool::pool_event& e) {
      std::lock_guard lk(*m);
      events->push_back({e.kind, e.reason, std::string(e.pool_name), std::string(e.message),
                         e.where.file_name, static_cast<unsigned>(e.where.line), e.held});
    };
  }
  auto count(respool::event_kind k) const -> std::size_t {
    std::lock_guard lk(*m);
    std::size_t n = 0;
    for (const auto& e : *events) n += e.kind == k ? 1U : 0U;
    return n;
  }
  auto first(respool::event_kind k) const -> recorded {
    std::lock_guard lk(*m);
    for (const auto& e : *events)
      if (e.kind == k) return e;
    return {};
  }
};
}  // namespace

TEST_CASE("created, destroyed, create_failed and timeout events reach the callback") {
  test_factory f;
  recorder r;
  respool::pool p{f, {.max_size = 1, .create_backoff_min = 1ms, .create_backoff_max = 1ms,
                      .name = "cache", .on_event = r.callback()}};
  {
    auto l = p.acquire();
    std::error_code ec;
    auto none = p.acquire(1ms, ec);
    CHECK(ec == respool::errc::timeout);
    l.discard();
  }
  f.fail->store(true);
  std::error_code ec;
  auto none = p.acquire(5s, ec);
  CHECK(ec);
  REQUIRE(eventually([&] { return r.count(respool::event_kind::create_failed) >= 1; }));
  CHECK(r.count(respool::event_kind::created) == 1);
  CHECK(r.count(respool::event_kind::destroyed) == 1);
  CHECK(r.first(respool::event_kind::destroyed).reason == respool::destroy_reason::discarded);
  CHECK(r.count(respool::event_kind::acquire_timeout) == 1);
  CHECK(r.first(respool::event_kind::acquire_timeout).message.find("timed out") != std::string::npos);
  CHECK(r.first(respool::event_kind::create_failed).message == "connection refused (test)");
  CHECK(r.first(respool::event_kind::created).pool == "cache");
}

TEST_CASE("a callback that throws does not break the pool") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .on_event = [](const respool::pool_event&) {
                        throw std::runtime_error("logger down");
                      }}};
  auto l = p.acquire();
  l.discard();
  auto again = p.acquire();
  CHECK(again->id == 2);
}

TEST_CASE("a lease held past leak_threshold is reported once, with where it was taken") {
  manual_clock::reset();
  test_factory f;
  recorder r;
  manual_pool p{f, {.max_size = 2, .min_idle = 1, .leak_threshold = 10s,
                    .housekeeping_interval = 0ms, .on_event = r.callback()}};
  auto leaked = p.acquire(); const unsigned leak_line = __LINE__;
  manual_clock::advance(5s);
  p.run_maintenance();
  CHECK(r.count(respool::event_kind::leak_suspected) == 0);
  manual_clock::advance(6s);
  p.run_maintenance();
  REQUIRE(r.count(respool::event_kind::leak_suspected) == 1);
  const auto e = r.first(respool::event_kind::leak_suspected);
  CHECK(e.line == leak_line);
  CHECK(e.file.find("pool_events_test.cpp") != std::string::npos);
  CHECK(e.held >= 10s);
  manual_clock::advance(60s);
  p.run_maintenance();
  CHECK(r.count(respool::event_kind::leak_suspected) == 1);  // once, not every pass
  leaked.return_to_pool();
  REQUIRE(r.count(respool::event_kind::leak_returned) == 1);
  const auto back = r.first(respool::event_kind::leak_returned);
  CHECK(back.held >= 70s);
  CHECK(back.line == leak_line);
}

TEST_CASE("a lease returned in time is never reported") {
  manual_clock::reset();
  test_factory f;
  recorder r;
  manual_pool p{f, {.max_size = 1, .min_idle = 1, .leak_threshold = 10s,
                    .housekeeping_interval = 0ms, .on_event = r.callback()}};
  { auto l = p.acquire(); }
  manual_clock::advance(1h);
  p.run_maintenance();
  CHECK(r.count(respool::event_kind::leak_suspected) == 0);
  CHECK(r.count(respool::event_kind::leak_returned) == 0);
}

TEST_CASE("stats: counts, counters and wait times add up") {
  test_factory f;
  respool::pool p{f, {.max_size = 3}};  // no min_idle: nothing is refilled behind our back
  auto a = p.acquire();
  auto b = p.acquire();
  auto c = p.acquire();
  b.discard();  // destroyed in the background
  REQUIRE(eventually([&] { return p.stats().destroyed() == 1; }));
  auto s = p.stats();
  CHECK(s.max_size == 3);
  CHECK(s.in_use == 2);
  CHECK(s.idle == 0);
  CHECK(s.creating == 0);
  CHECK(s.acquired == 3);
  CHECK(s.created == 3);
  CHECK(s.destroyed() == 1);
  CHECK(s.created - s.destroyed() == s.total - s.creating);
  CHECK(s.wait.count() >= 3);  // every acquire is in the histogram
  CHECK(s.wait_p50 <= s.wait_p99);
  CHECK(s.wait_p99 <= respool::wait_histogram::upper_bound(respool::wait_histogram::bucket_of(s.wait_max)));
}

TEST_CASE("wait_histogram buckets and percentiles") {
  using h = respool::wait_histogram;
  CHECK(h::bucket_of(0us) == 0);
  CHECK(h::bucket_of(1us) == 1);
  CHECK(h::bucket_of(3us) == 2);
  CHECK(h::bucket_of(1000us) == 10);
  CHECK(h::bucket_of(std::chrono::microseconds(std::chrono::hours(1000))) == h::bucket_count - 1);
  h hist;
  hist.buckets[0] = 90;
  hist.buckets[10] = 9;
  hist.buckets[20] = 1;
  CHECK(hist.count() == 100);
  CHECK(hist.percentile(0.5) == h::upper_bound(0));
  CHECK(hist.percentile(0.95) == h::upper_bound(10));
  CHECK(hist.percentile(0.999) == h::upper_bound(20));
  CHECK(h{}.percentile(0.5) == 0us);
}
