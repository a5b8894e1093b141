// respool::keyed_pool: a sub-pool per key under max_total. The factory gets the key; per-key
// options; the total never exceeded; the oldest idle resource of another key closed for room;
// a quiet key served while a busy one floods; unused keys retired; evict(key) and evict_all();
// try_acquire; the error_code form; invalid options; close().
#include <respool/keyed_pool.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <functional>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::contains;
using respool_test::eventually;
using respool_test::manual_clock;

namespace {

// Counts its live instances overall (the budget's subject) and remembers the keys of the ones
// destroyed, in order.
struct ledger {
  std::atomic<int> live{0};
  std::atomic<int> peak{0};
  std::atomic<int> made{0};
  std::mutex m;
  std::vector<std::string> destroyed;  // keys, in order of destruction
};

struct conn {
  std::shared_ptr<ledger> l;
  std::string key;
  int id = 0;
  conn(std::shared_ptr<ledger> lg, std::string k) : l(std::move(lg)), key(std::move(k)) {
    id = ++l->made;
    const int now = ++l->live;
    int p = l->peak.load();
    while (now > p && !l->peak.compare_exchange_weak(p, now)) {
    }
  }
  conn(conn&& o) noexcept : l(std::move(o.l)), key(std::move(o.key)), id(o.id) {}
  conn& operator=(conn&&) = delete;
  ~conn() {
    if (!l) return;
    {
      std::lock_guard lk(l->m);
      l->destroyed.push_back(key);
    }
    --l->live;
  }
};

struct conn_factory {
  std::shared_ptr<ledger> l = std::make_shared<ledger>();
  auto create(const std::string& key) -> conn { return conn(l, key); }
};

using opts = respool::keyed_pool_options<std::string>;

auto invalid_argument_text(const opts& o) -> std::string {
  try {
    o.validate();
  } catch (const std::invalid_argument& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("the factory gets the key, and leases are the ordinary respool::lease", "[keyed]") {
  std::vector<std::string> seen;
  std::mutex m;
  respool::keyed_pool p{[&](const std::string& k) {
                          std::lock_guard lk(m);
                          seen.push_back(k);
                          return "conn to " + k;
                        },
                        opts{.max_total = 4}};
  static_assert(std::is_same_v<decltype(p.acquire(std::string("a"))), respool::lease<std::string>>);
  respool::lease<std::string> a = p.acquire(std::string("db-a"));
  auto b = p.acquire(std::string("db-b"), 1s);
  CHECK(*a == "conn to db-a");
  CHECK(*b == "conn to db-b");
  std::lock_guard lk(m);
  CHECK(seen == std::vector<std::string>{"db-a", "db-b"});
  CHECK(p.key_count() == 2);
}

TEST_CASE("a member factory create(const Key&) with integer keys", "[keyed]") {
  struct by_number {
    auto create(const int& k) -> int { return k * 10; }
  };
  respool::keyed_pool p{by_number{}, respool::keyed_pool_options<int>{.max_total = 2}};
  CHECK(*p.acquire(3) == 30);
  CHECK(p.stats(3).created == 1);
  CHECK(p.stats(4).created == 0);  // a key never used: empty stats, no sub-pool made
  CHECK(p.key_count() == 1);
}

TEST_CASE("per-key options: a long lane of 4 and a short lane of 8", "[keyed]") {
  conn_factory f;
  respool::keyed_pool p{f, opts{.options_for =
                                    [](const std::string& lane) {
                                      return respool::pool_options{
                                          .max_size = lane == "long" ? 4U : 8U};
                                    },
                                .max_total = 20}};
  std::vector<respool::lease<conn>> held;
  for (int i = 0; i < 4; ++i) held.push_back(p.acquire(std::string("long"), 1s));
  std::error_code ec;
  auto fifth = p.acquire(std::string("long"), 20ms, ec);
  CHECK_FALSE(fifth);
  CHECK(ec == respool::errc::timeout);
  for (int i = 0; i < 8; ++i) held.push_back(p.acquire(std::string("short"), 1s));
  CHECK(p.stats("long").max_size == 4);
  CHECK(p.stats("short").max_size == 8);
  CHECK(p.stats("short").in_use == 8);
  const auto t = p.stats();
  CHECK(t.in_use == 12);
  CHECK(t.max_size == 20);
  CHECK(p.stats("long").limit == 4);
  CHECK(t.limit == 12);  // the keys' limits, 4 + 8 (within max_total)
  CHECK(p.stats("long").timeouts == 1);
}

TEST_CASE("sub-pools are named after the key when the options leave the name", "[keyed]") {
  conn_factory f;
  std::mutex m;
  std::vector<std::string> names;
  respool::keyed_pool p{f, opts{.key_options = {.on_event =
                                                    [&](const respool::pool_event& e) {
                                                      std::lock_guard lk(m);
                                                      names.emplace_back(e.pool_name);
                                                    }},
                                .max_total = 2,
                                .name = "orders"}};
  { auto l = p.acquire(std::string("eu")); }
  // The user's callback still sees the events (`created` is raised on the worker, possibly
  // after the caller has its lease).
  REQUIRE(eventually([&] {
    std::lock_guard lk(m);
    return !names.empty();
  }));
  std::lock_guard lk(m);
  CHECK(names.front() == "orders[eu]");
}

TEST_CASE("max_total is never exceeded over a loop of acquires across keys", "[keyed]") {
  conn_factory f;
  respool::keyed_pool p{f, opts{.key_options = {.max_size = 3}, .max_total = 4}};
  const std::vector<std::string> keys{"a", "b", "c", "d", "e", "f"};
  std::vector<respool::lease<conn>> held;
  for (int i = 0; i < 300; ++i) {
    const auto& k = keys[static_cast<std::size_t>((i * 7 + i / 5) % 6)];
    if (held.size() >= 3) held.erase(held.begin());  // keep up to 3 out, the rest idle
    held.push_back(p.acquire(k, 2s));
    CHECK(held.back()->key == k);
    CHECK(f.l->live.load() <= 4);
    CHECK(p.stats().total <= 4);
  }
  CHECK(f.l->peak.load() <= 4);
  CHECK(f.l->made.load() > 4);  // room was made for new keys: some were closed
  CHECK(p.stats().destroyed(respool::destroy_reason::reclaimed) > 0);
  CHECK(p.stats().destroyed(respool::destroy_reason::evicted) == 0);
}

TEST_CASE("at max_total, the oldest idle resource of another key is closed to make room",
          "[keyed]") {
  manual_clock::reset();
  conn_factory f;
  respool::keyed_pool<std::string, conn_factory, respool::always_valid, respool::no_reset,
                      manual_clock>
      p{f, opts{.max_total = 2, .housekeeping_interval = 0ms}};
  { auto a = p.acquire(std::string("a")); }  // returned first: the oldest idle
  manual_clock::advance(10ms);
  p.run_maintenance();  // ticks the sub-pools' coarse clocks: returns read them
  { auto b = p.acquire(std::string("b")); }
  manual_clock::advance(10ms);
  p.run_maintenance();
  REQUIRE(p.stats().idle == 2);
  {
    auto c = p.acquire(std::string("c"), 2s);
    CHECK(c->key == "c");
    CHECK(f.l->live.load() == 2);
  }
  {
    std::lock_guard lk(f.l->m);
    CHECK(f.l->destroyed == std::vector<std::string>{"a"});
  }
  CHECK(p.stats("a").idle == 0);
  CHECK(p.stats("a").destroyed(respool::destroy_reason::reclaimed) == 1);
  CHECK(p.stats("a").destroyed(respool::destroy_reason::evicted) == 0);
  CHECK(p.stats("b").idle == 1);
  // Now "b" is the oldest idle (c was returned later): the next new key takes b's place.
  manual_clock::advance(10ms);
  p.run_maintenance();
  { auto d = p.acquire(std::string("d"), 2s); }
  std::lock_guard lk(f.l->m);
  CHECK(f.l->destroyed == std::vector<std::string>{"a", "b"});
}

TEST_CASE("fair across keys: a quiet key's waiter is served while a busy key floods",
          "[keyed]") {
  conn_factory f;
  respool::keyed_pool p{f, opts{.key_options = {.max_size = 2, .fairness_window = 0ms},
                                .max_total = 2}};
  std::atomic<bool> stop{false};
  std::atomic<int> busy_cycles{0};
  std::vector<std::thread> flood;
  for (int t = 0; t < 4; ++t)
    flood.emplace_back([&] {
      while (!stop) {
        std::error_code ec;
        auto l = p.acquire(std::string("busy"), 500ms, ec);
        if (!l) continue;
        ++busy_cycles;
        std::this_thread::sleep_for(1ms);
      }
    });
  REQUIRE(eventually([&] { return p.stats("busy").waiters > 0 && busy_cycles > 20; }));
  // Every busy resource is in use or handed straight to a busy waiter: nothing goes idle.
  std::error_code ec;
  const auto start = std::chrono::steady_clock::now();
  auto quiet = p.acquire(std::string("quiet"), 5s, ec);
  const auto waited = std::chrono::steady_clock::now() - start;
  stop = true;
  for (auto& t : flood) t.join();
  REQUIRE(quiet);
  CHECK_FALSE(ec);
  CHECK(quiet->key == "quiet");
  CHECK(waited < 2s);  // about one busy hold, not the busy key's whole flood
  // The busy key gave one return up for it, closed instead of reset.
  CHECK(p.stats("busy").destroyed(respool::destroy_reason::reclaimed) >= 1);
  CHECK(p.stats("busy").destroyed(respool::destroy_reason::failed_reset) == 0);
  CHECK(f.l->peak.load() <= 2);
}

TEST_CASE("an unused key's sub-pool is retired after key_idle_timeout", "[keyed]") {
  conn_factory f;
  respool::keyed_pool p{f, opts{.max_total = 4,
                                .key_idle_timeout = 50ms,
                                .housekeeping_interval = 5ms}};
  { auto l = p.acquire(std::string("gone")); }
  auto kept = p.acquire(std::string("kept"));  // in use: never retired while out
  REQUIRE(p.key_count() == 2);
  CHECK(eventually([&] { return p.key_count() == 1; }, 5s));
  CHECK(p.stats("gone").created == 0);  // no sub-pool: empty stats
  CHECK(p.stats("kept").in_use == 1);
  CHECK(eventually([&] { return f.l->live.load() == 1; }));  // its idle resource was closed
  const auto t = p.stats();
  CHECK(t.created == 2);                // the retired key's counters stay in the totals
  CHECK(t.destroyed(respool::destroy_reason::closed) == 1);
  // The key comes back with a new sub-pool.
  auto again = p.acquire(std::string("gone"));
  CHECK(again->key == "gone");
  CHECK(p.stats("gone").created == 1);
}

TEST_CASE("key_idle_timeout 0 keeps keys until close()", "[keyed]") {
  manual_clock::reset();
  conn_factory f;
  respool::keyed_pool<std::string, conn_factory, respool::always_valid, respool::no_reset,
                      manual_clock>
      p{f, opts{.max_total = 4, .key_idle_timeout = 0ms, .housekeeping_interval = 0ms}};
  { auto l = p.acquire(std::string("a")); }
  manual_clock::advance(24h);
  p.run_maintenance();
  CHECK(p.key_count() == 1);
}

TEST_CASE("evict(key) closes one key's idle resources, evict_all() every key's", "[keyed]") {
  conn_factory f;
  respool::keyed_pool p{f, opts{.max_total = 4}};
  { auto a = p.acquire(std::string("a")); auto b = p.acquire(std::string("b")); }
  auto held = p.acquire(std::string("b"));
  { auto b2 = p.acquire(std::string("b")); }  // a second b, idle
  REQUIRE(p.stats("a").idle == 1);
  REQUIRE(p.stats("b").idle == 1);
  p.evict(std::string("a"));
  CHECK(p.stats("a").idle == 0);
  CHECK(p.stats("a").destroyed(respool::destroy_reason::evicted) == 1);
  CHECK(p.stats("b").idle == 1);
  p.evict(std::string("never"));  // no sub-pool: nothing to do
  CHECK(p.key_count() == 2);
  p.evict_all();
  CHECK(p.stats("b").idle == 0);
  CHECK(p.stats("b").in_use == 1);  // the leased one is closed when it comes back
  held.return_to_pool();  // retired on return; destroyed on a background worker
  CHECK(eventually([&] { return p.stats("b").total == 0; }));
  CHECK(p.stats("b").destroyed(respool::destroy_reason::evicted) == 2);
  CHECK(f.l->live.load() == 0);
  CHECK(p.key_count() == 2);  // evicting keeps the keys' sub-pools
}

TEST_CASE("try_acquire never waits, and gets the key's idle resource", "[keyed]") {
  conn_factory f;
  respool::keyed_pool p{f, opts{.key_options = {.max_size = 1}, .max_total = 1}};
  { auto l = p.acquire(std::string("a")); }
  auto got = p.try_acquire(std::string("a"));
  REQUIRE(got);
  CHECK((*got)->key == "a");
  CHECK_FALSE(p.try_acquire(std::string("a")));  // its only one is out
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(p.try_acquire(std::string("b")));  // nothing idle for b, and the total is reached
  CHECK(std::chrono::steady_clock::now() - start < 1s);
  got.reset();
  CHECK(f.l->peak.load() == 1);
}

TEST_CASE("the error_code form: timeout, then closed", "[keyed]") {
  conn_factory f;
  respool::keyed_pool p{f, opts{.key_options = {.max_size = 4}, .max_total = 1}};
  auto held = p.acquire(std::string("a"));
  std::error_code ec;
  auto l = p.acquire(std::string("a"), 20ms, ec);  // a's own limit is 4, the total 1
  CHECK_FALSE(l);
  CHECK(ec == respool::errc::timeout);
  auto other = p.acquire(std::string("b"), 20ms, ec);
  CHECK_FALSE(other);
  CHECK(ec == respool::errc::timeout);
  CHECK(f.l->live.load() == 1);
  p.close();
  auto after = p.acquire(std::string("a"), 20ms, ec);
  CHECK_FALSE(after);
  CHECK(ec == respool::errc::closed);
}

TEST_CASE("invalid options are refused, naming the field", "[keyed]") {
  CHECK(contains(invalid_argument_text(opts{.max_total = 0}), "max_total"));
  CHECK(contains(invalid_argument_text(opts{.key_idle_timeout = -1ms}), "key_idle_timeout"));
  CHECK(contains(invalid_argument_text(opts{.housekeeping_interval = -1ms}),
                 "housekeeping_interval"));
  CHECK(contains(invalid_argument_text(opts{.housekeeping_interval = 2h}),
                 "housekeeping_interval"));
  CHECK(contains(invalid_argument_text(opts{.name = ""}), "name"));
  CHECK(contains(invalid_argument_text(opts{.key_options = {.max_size = 0}}), "max_size"));
  CHECK(invalid_argument_text(opts{}).empty());
  conn_factory f;
  CHECK_THROWS_AS((respool::keyed_pool{f, opts{.max_total = 0}}), std::invalid_argument);
  // A per-key callable's options are validated at the key's first acquire.
  respool::keyed_pool p{f, opts{.options_for = [](const std::string& k) {
                                  return respool::pool_options{.max_size = k == "bad" ? 0U : 2U};
                                }}};
  try {
    auto l = p.acquire(std::string("bad"));
    FAIL("a key with max_size 0 was accepted");
  } catch (const std::invalid_argument& e) {
    CHECK(contains(e.what(), "max_size"));
  }
  CHECK(p.acquire(std::string("good")));
}

TEST_CASE("close(): acquires fail with closed, leases out stay valid until returned",
          "[keyed]") {
  conn_factory f;
  respool::keyed_pool p{f, opts{.max_total = 1}};
  auto held = p.acquire(std::string("a"));
  std::atomic<bool> waiter_done{false};
  std::error_code waiter_ec;
  std::thread waiter([&] {  // waits for the budget (b needs a's place)
    auto l = p.acquire(std::string("b"), 10s, waiter_ec);
    waiter_done = true;
  });
  REQUIRE(eventually([&] { return p.stats("b").waiters == 1; }));
  p.close();
  waiter.join();
  CHECK(waiter_done);
  CHECK(waiter_ec == respool::errc::closed);
  try {
    auto l = p.acquire(std::string("a"));
    FAIL("acquire after close succeeded");
  } catch (const respool::error& e) {
    CHECK(e.code() == respool::errc::closed);
  }
  CHECK_FALSE(p.try_acquire(std::string("a")));
  CHECK(held->key == "a");  // still valid
  CHECK(f.l->live.load() == 1);
  held.return_to_pool();
  CHECK(f.l->live.load() == 0);
  p.close();  // idempotent
}

namespace {
// Threads in this process now (Linux: /proc/self/status).
auto process_threads() -> int {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line))
    if (line.rfind("Threads:", 0) == 0) return std::stoi(line.substr(8));
  return -1;
}
}  // namespace

TEST_CASE("keys share background threads: forty keys used one after another keep a few threads, not forty") {
  const int before = process_threads();
  REQUIRE(before > 0);
  auto lg = std::make_shared<ledger>();
  respool::keyed_pool<int, std::function<conn(const int&)>> p{
      [lg](const int& k) { return conn{lg, std::to_string(k)}; },
      respool::keyed_pool_options<int>{.key_options = {.max_size = 2}, .max_total = 100}};
  for (int k = 0; k < 40; ++k) {
    auto l = p.acquire(k, 1s);  // a creation on a background worker for each key
    CHECK(l->key == std::to_string(k));
  }
  // Each key's sub-pool used to keep its own worker lingering for 2 s: 40 threads here.
  const int during = process_threads();
  INFO("threads before " << before << ", after 40 keys " << during);
  CHECK(during - before <= 6);  // the housekeeper and a few shared workers
}

TEST_CASE("worker_threads: every task runs once, idle threads are reused, new ones start when all are busy") {
  respool::detail::worker_threads w;
  std::atomic<int> ran{0};
  for (int i = 0; i < 20; ++i) {
    REQUIRE(w.run(respool::detail::move_only_task([&] { ++ran; })));
    CHECK(eventually([&] { return ran.load() == i + 1; }, 2s));
  }
  CHECK(w.threads() == 1);  // one after another: the same lingering thread
  // Shared with the tasks: the set's threads are detached, so a task may still be looking at
  // them after this test has returned (ASan: stack-use-after-return, when they were locals).
  auto release = std::make_shared<std::atomic<bool>>(false);
  auto blocked = std::make_shared<std::atomic<int>>(0);
  for (int i = 0; i < 3; ++i)
    REQUIRE(w.run(respool::detail::move_only_task([release, blocked] {
      ++*blocked;
      while (!release->load()) std::this_thread::sleep_for(1ms);
    })));
  CHECK(eventually([&] { return blocked->load() == 3; }, 2s));  // none waited for a busy thread
  CHECK(w.threads() >= 3);
  release->store(true);
}
