// evict_if(pred): the matching idle resources close now, leased ones when they return, and none
// that matches is lent again; pred runs on the thread that owns the resource.
#include <respool/pool.hpp>

#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool::destroy_reason;
using respool_test::eventually;
using respool_test::resource;
using respool_test::test_factory;

namespace {

auto evicted(const respool::pool_stats& s) { return s.destroyed(destroy_reason::evicted); }

template <class Pool>
auto lend_all(Pool& p, int n) {
  std::vector<respool::lease<resource>> out;
  for (int i = 0; i < n; ++i) out.push_back(p.acquire(5s));
  return out;
}

}  // namespace

TEST_CASE("evict_if closes the matching idle resources now and keeps the others", "[evict_if]") {
  test_factory f;
  respool::pool p{f, {.max_size = 4}};
  { auto all = lend_all(p, 4); }  // ids 1-4, all idle now
  REQUIRE(p.stats().idle == 4);
  p.evict_if([](const resource& r) { return r.id % 2 == 0; });
  auto s = p.stats();
  CHECK(evicted(s) == 2);
  CHECK(s.idle == 2);
  std::set<int> seen;
  {
    auto all = lend_all(p, 4);
    for (auto& l : all) seen.insert(l->id);
  }
  CHECK(seen.count(2) == 0);
  CHECK(seen.count(4) == 0);
  CHECK(seen.count(1) == 1);
  CHECK(seen.count(3) == 1);
}

TEST_CASE("a leased resource that matches closes when it returns, never lent again",
          "[evict_if]") {
  test_factory f;
  respool::pool p{f, {.max_size = 2}};
  auto held = p.acquire(5s);
  const int id = held->id;
  p.evict_if([id](const resource& r) { return r.id == id; });
  CHECK(evicted(p.stats()) == 0);  // still in use
  held = {};
  // Decided on return; destroyed in the background.
  CHECK(eventually([&] { return evicted(p.stats()) == 1; }));
  REQUIRE(eventually([&] { return f.c->live.load() == 0; }));
  auto a = p.acquire(5s);
  auto b = p.acquire(5s);
  CHECK(a->id != id);
  CHECK(b->id != id);
}

TEST_CASE("evict_if's predicate runs on the thread that owns the resource", "[evict_if]") {
  test_factory f;
  respool::pool p{f, {.max_size = 2}};
  std::atomic<bool> go_return{false};
  std::thread::id holder_id;
  std::atomic<int> leased_id{0};
  std::thread holder([&] {
    holder_id = std::this_thread::get_id();
    auto l = p.acquire(5s);
    leased_id = l->id;
    while (!go_return.load()) std::this_thread::sleep_for(1ms);
  });
  REQUIRE(eventually([&] { return leased_id.load() != 0; }));
  std::mutex m;
  std::vector<std::thread::id> callers;
  const int target = leased_id.load();
  p.evict_if([&, target](const resource& r) {
    if (r.id == target) {
      std::lock_guard lk(m);
      callers.push_back(std::this_thread::get_id());
    }
    return r.id == target;
  });
  {
    std::lock_guard lk(m);
    CHECK(callers.empty());  // not called on a resource another thread holds
  }
  go_return = true;
  holder.join();
  std::lock_guard lk(m);
  REQUIRE(callers.size() == 1);
  CHECK(callers[0] == holder_id);
  CHECK(eventually([&] { return evicted(p.stats()) == 1; }));
}

TEST_CASE("a predicate that throws counts as a match", "[evict_if]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  { auto l = p.acquire(5s); }
  p.evict_if([](const resource&) -> bool { throw std::runtime_error("cannot tell"); });
  CHECK(evicted(p.stats()) == 1);
  CHECK(p.stats().idle == 0);
}

TEST_CASE("under load, nothing a finished evict_if matched is lent again", "[evict_if][stress]") {
  test_factory f;
  respool::pool p{f, {.max_size = 4}};
  std::atomic<int> floor{0};  // ids below this were evicted by a finished evict_if
  std::atomic<bool> stop{false};
  std::atomic<long> violations{0};
  std::atomic<long> cycles{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 6; ++t)
    threads.emplace_back([&] {
      while (!stop.load()) {
        const int below = floor.load();
        std::error_code ec;
        auto l = p.acquire(2s, ec);
        if (!l) continue;
        if (l->id < below) violations.fetch_add(1);
        cycles.fetch_add(1);
        std::this_thread::sleep_for(20us);
      }
    });
  for (int round = 0; round < 40; ++round) {
    std::this_thread::sleep_for(5ms);
    const int k = f.c->made.load() + 1;  // every resource made so far
    p.evict_if([k](const resource& r) { return r.id < k; });
    floor = k;
  }
  stop = true;
  for (auto& th : threads) th.join();
  INFO("cycles " << cycles.load());
  CHECK(cycles.load() > 0);
  CHECK(violations.load() == 0);
  const auto s = p.stats();
  CHECK(evicted(s) > 0);
  CHECK(s.in_use == 0);
  CHECK(s.created - s.destroyed() == s.total - s.creating);
}

TEST_CASE("a predicate waiting for a resource destroyed otherwise does not meet its successor",
          "[evict_if]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = p.acquire(5s);
  p.evict_if([](const resource&) { return true; });  // waits for `held`
  held.discard();                                      // destroyed as discarded instead
  REQUIRE(eventually([&] { return p.stats().total == 0; }));
  auto next = p.acquire(5s);  // a new resource in the same slot: no predicate applies to it
  CHECK(next);
  next = {};
  CHECK(p.stats().idle == 1);
  CHECK(evicted(p.stats()) == 0);
}
