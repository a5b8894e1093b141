// detect_nested_acquire: a thread that holds a lease from a pool and calls acquire() on it again
// raises event `nested_acquire`, naming where it took the lease it holds (`where`) and where it
// acquires again (`acquiring`), when it calls, before it waits. The deadlock it warns of: T
// threads each needing n leases at once need max_size >= T * (n - 1) + 1.
#include <respool/detail/holder_text.hpp>
#include <respool/pool.hpp>

#include <atomic>
#include <mutex>
#include <stop_token>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool::event_kind;
using respool_test::contains;
using respool_test::eventually;
using respool_test::manual_clock;
using respool_test::test_factory;
using manual_pool = respool::pool<test_factory, respool::always_valid, respool::no_reset, manual_clock>;
using lease_type = respool::lease<respool_test::resource>;

namespace {

struct nested_report {
  std::string held_file, held_function, acquiring_file, acquiring_function, message;
  unsigned held_line = 0, acquiring_line = 0;
};

// The nested_acquire events a pool raised (from any thread).
struct reports {
  std::shared_ptr<std::mutex> m = std::make_shared<std::mutex>();
  std::shared_ptr<std::vector<nested_report>> seen = std::make_shared<std::vector<nested_report>>();
  auto callback() const {
    return [m = m, seen = seen](const respool::pool_event& e) {
      if (e.kind != event_kind::nested_acquire) return;
      std::lock_guard lk(*m);
      seen->push_back({e.where.file_name, e.where.function_name, e.acquiring.file_name,
                       e.acquiring.function_name, std::string(e.message),
                       static_cast<unsigned>(e.where.line), static_cast<unsigned>(e.acquiring.line)});
    };
  }
  [[nodiscard]] auto count() const -> std::size_t {
    std::lock_guard lk(*m);
    return seen->size();
  }
  [[nodiscard]] auto first() const -> nested_report {
    std::lock_guard lk(*m);
    return seen->empty() ? nested_report{} : seen->front();
  }
};

auto options(const reports& r, std::size_t max_size = 4, bool detect = true) -> respool::pool_options {
  return {.max_size = max_size, .housekeeping_interval = 0ms, .detect_nested_acquire = detect,
          .name = "db", .on_event = r.callback()};
}

auto load_order(manual_pool& p) { return p.acquire(1s); }
auto load_lines(manual_pool& p) { return p.acquire(1s); }

using real_pool = respool::pool<test_factory>;
auto take_outer(real_pool& p, std::error_code& ec) { return p.acquire(10s, ec); }
auto take_inner(real_pool& p, std::error_code& ec) { return p.acquire(10s, ec); }

}  // namespace

TEST_CASE("a nested acquire is reported with both call sites", "[nested]") {
  manual_clock::reset();
  test_factory f;
  reports r;
  manual_pool p{f, options(r)};
  auto order = load_order(p);
  CHECK(r.count() == 0);  // one lease: nothing nested
  auto lines = load_lines(p);
  REQUIRE(r.count() == 1);
  const auto e = r.first();
  INFO(e.message);
  CHECK(contains(e.held_file, "pool_nested_acquire_test.cpp"));
  CHECK(contains(e.held_function, "load_order"));
  CHECK(contains(e.acquiring_file, "pool_nested_acquire_test.cpp"));
  CHECK(contains(e.acquiring_function, "load_lines"));
  CHECK(e.held_line != 0);
  CHECK(e.acquiring_line == e.held_line + 1);  // load_lines sits on the line below load_order
  CHECK(contains(e.message, "nested acquire: this thread holds a lease from pool 'db' acquired at "
                            "pool_nested_acquire_test.cpp:" + std::to_string(e.held_line) +
                                " (load_order) and acquires again at pool_nested_acquire_test.cpp:" +
                                std::to_string(e.acquiring_line) + " (load_lines)"));
  CHECK(contains(e.message, "T * (n - 1) + 1"));
  CHECK(contains(e.message, "n = 2 and max_size = 4: at most 3 such threads"));
}

TEST_CASE("a lease from try_acquire or a cancellable acquire counts as held", "[nested]") {
  manual_clock::reset();
  test_factory f;
  reports r;
  manual_pool p{f, options(r, 8)};
  std::stop_source stop;
  {
    auto first = p.try_acquire();  // nothing idle yet: asks for one and returns nothing
    REQUIRE(eventually([&] { return p.stats().idle == 1; }));
  }
  auto tried = p.try_acquire();
  REQUIRE(tried.has_value());
  CHECK(r.count() == 0);
  std::error_code ec;
  auto second = p.acquire(stop.get_token(), 1s, ec);  // holds the tried one: reported
  REQUIRE(second);
  REQUIRE(r.count() == 1);
  tried->return_to_pool();
  auto third = p.acquire(1s);  // holds the cancellable one: reported again
  REQUIRE(r.count() == 2);
  CHECK(contains(r.seen->back().message, "holds a lease from pool 'db'"));
  second.return_to_pool();
  third.return_to_pool();
  auto alone = p.acquire(1s);  // holds nothing
  CHECK(r.count() == 2);
}

TEST_CASE("a nested acquire is reported once per call, however many leases are held", "[nested]") {
  manual_clock::reset();
  test_factory f;
  reports r;
  manual_pool p{f, options(r, 8)};
  auto a = p.acquire(1s);
  auto b = p.acquire(1s);
  REQUIRE(r.count() == 1);
  auto c = p.acquire(1s);  // holds two: one more report, which counts them
  REQUIRE(r.count() == 2);
  const auto all = *r.seen;
  CHECK(contains(all[1].message, "holds 2 leases from pool 'db' (one acquired at "));
  CHECK(contains(all[1].message, "n = 3 and max_size = 8: at most 3 such threads"));
}

TEST_CASE("a callback that acquires from its pool is not reported again", "[nested]") {
  manual_clock::reset();
  test_factory f;
  manual_pool* pool = nullptr;
  int reported = 0;
  auto o = options({}, 8);
  o.on_event = [&](const respool::pool_event& e) {
    if (e.kind != event_kind::nested_acquire || ++reported > 5) return;  // 5: no endless loop
    std::error_code ec;
    auto log_line = pool->acquire(1s, ec);  // nested too: it logs through the pool
  };
  manual_pool p{f, o};
  pool = &p;
  auto a = p.acquire(1s);
  auto b = p.acquire(1s);
  CHECK(reported == 1);
}

TEST_CASE("a nested acquire is reported when called, before it waits", "[nested]") {
  test_factory f;
  reports r;
  respool::pool p{f, options(r, 1)};  // real clock: the nested call below really waits
  auto held = p.acquire(1s);
  // Returns `held` once the report came: only a report made before the wait lets it through.
  std::thread helper([&] {
    if (eventually([&] { return r.count() == 1; }, 5s)) held.return_to_pool();
  });
  std::error_code ec;
  auto again = p.acquire(5s, ec);
  helper.join();
  CHECK_FALSE(ec);
  CHECK(r.count() == 1);
}

TEST_CASE("no report when detect_nested_acquire is off, or once the first lease is back",
          "[nested]") {
  manual_clock::reset();
  test_factory f;
  reports off;
  manual_pool quiet{f, options(off, 4, false)};
  {
    auto a = quiet.acquire(1s);
    auto b = quiet.acquire(1s);
  }
  CHECK(off.count() == 0);

  reports r;
  auto o = options(r);
  o.min_idle = 2;  // for try_acquire() below, which takes only what is idle
  manual_pool p{f, o};
  auto a = p.acquire(1s);
  a.return_to_pool();
  auto b = p.acquire(1s);
  { auto moved = std::move(b); }  // returned through the lease it was moved to
  auto c = p.acquire(1s);
  auto spare = p.try_acquire();  // never waits, so cannot deadlock: not reported...
  REQUIRE(spare.has_value());
  CHECK(r.count() == 0);
  c.return_to_pool();
  auto d = p.acquire(1s);  // ...but what it took is held
  CHECK(r.count() == 1);
}

TEST_CASE("a lease moved to another thread and returned there is not reported later",
          "[nested]") {
  manual_clock::reset();
  test_factory f;
  reports r;
  manual_pool p{f, options(r, 2)};
  auto a = p.acquire(1s);
  std::thread([l = std::move(a)]() mutable { l.return_to_pool(); }).join();
  auto b = p.acquire(1s);
  std::thread([&] { auto other = p.acquire(1s); }).join();  // holds nothing: not nested
  CHECK(r.count() == 0);
}

namespace {
// Holds a waiter between being handed a slot and taking it (the lease it gets is not yet
// granted), so the test can act in that window every run.
std::atomic<bool> hold_handed_over{false};
std::atomic<bool> held_in_window{false};
thread_local bool is_held_waiter = false;
void hold_waiter(respool::detail::test_hooks::point at) noexcept {
  if (at != respool::detail::test_hooks::point::before_borrow || !is_held_waiter) return;
  held_in_window = true;
  while (hold_handed_over) std::this_thread::yield();
}
}  // namespace

TEST_CASE("a lease moved away and handed to a waiter there is not reported while the waiter takes it",
          "[nested]") {
  namespace hooks = respool::detail::test_hooks;
  manual_clock::reset();
  test_factory f;
  reports r;
  manual_pool p{f, options(r, 1)};
  auto a = p.acquire(1s);
  hold_handed_over = true;
  hooks::set(&hold_waiter);
  std::thread waiter([&] {
    is_held_waiter = true;
    auto l = p.acquire(1h);
  });
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  std::thread([l = std::move(a)]() mutable { l.return_to_pool(); }).join();  // to the waiter
  REQUIRE(eventually([&] { return held_in_window.load(); }));
  // The slot is in use, its acquisition count still that of the lease this thread took.
  std::error_code ec;
  auto none = p.acquire(0ms, ec);
  CHECK(ec == respool::errc::timeout);
  hold_handed_over = false;
  waiter.join();
  hooks::set(nullptr);
  CHECK(r.count() == 0);
}

TEST_CASE("threads with nested acquires on a pool big enough for them: one report each",
          "[nested][threads]") {
  test_factory f;
  reports r;
  constexpr int threads = 4;
  constexpr int rounds = 200;
  real_pool p{f, options(r, threads * (2 - 1) + 1)};  // T * (n - 1) + 1: no deadlock
  std::atomic<int> failed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&] {
      for (int i = 0; i < rounds; ++i) {
        std::error_code ec;
        auto outer = take_outer(p, ec);
        if (ec) ++failed;
        if (ec || i % 2 == 1) continue;  // not nested: no report
        auto inner = take_inner(p, ec);
        if (ec) ++failed;
      }
    });
  }
  for (auto& t : ts) t.join();
  CHECK(failed == 0);
  CHECK(r.count() == threads * rounds / 2);
  std::size_t wrong_sites = 0;
  for (const auto& e : *r.seen)
    wrong_sites += contains(e.held_function, "take_outer") &&
                           contains(e.acquiring_function, "take_inner") &&
                           e.acquiring_line == e.held_line + 1
                       ? 0U
                       : 1U;
  CHECK(wrong_sites == 0);
}

TEST_CASE("nested acquire text", "[nested]") {
  using respool::detail::describe_nested_acquire;
  const respool::acquire_site held{"/src/a.cpp", "void f(int)", 10};
  const respool::acquire_site again{"/src/a.cpp", "int g()", 20};
  CHECK(describe_nested_acquire("db", held, again, 1, 8) ==
        "nested acquire: this thread holds a lease from pool 'db' acquired at a.cpp:10 (f) and "
        "acquires again at a.cpp:20 (g); T threads each holding n leases at once can deadlock "
        "unless max_size >= T * (n - 1) + 1 (here n = 2 and max_size = 8: at most 7 such threads)");
  CHECK(contains(describe_nested_acquire("db", held, again, 3, 1),
                 "holds 3 leases from pool 'db' (one acquired at a.cpp:10 (f))"));
  CHECK(contains(describe_nested_acquire("db", held, again, 3, 1),
                 "(here n = 4 and max_size = 1: at most 0 such threads)"));
}
