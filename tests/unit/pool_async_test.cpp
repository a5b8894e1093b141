// Asynchronous acquire: async_acquire(timeout, handler) and co_await acquire_async(timeout).
// The handler is called exactly once, never with the pool's lock held, inline only when served
// at once; async and blocking waiters share one queue; timeouts come from the pool's own timer;
// cancelling, closing, throwing handlers and destroyed coroutine frames lose nothing.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <random>
#include <stop_token>
#include <string>
#include <thread>
#include <vector>

#include "coro_task.hpp"
#include "error_text.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::contains;
using respool_test::eventually;
using respool_test::resource;
using respool_test::task;
using respool_test::test_factory;
using steady = std::chrono::steady_clock;
using lease_t = respool::lease<resource>;

// Coroutines here are lambdas kept in a named variable (`auto x_body = [&]() -> task {...};
// auto x = x_body();`): a coroutine's frame refers to the closure's captures, so the closure
// must outlive the frame, which a temporary would not.

namespace {

// What one handler call saw.
struct outcome {
  std::atomic<int> calls{0};
  std::error_code ec;
  int id = 0;
  std::thread::id thread;
  std::atomic<bool> done{false};

  auto handler() {
    return [this](std::error_code e, lease_t l) {
      ec = e;
      id = l ? l->id : 0;
      thread = std::this_thread::get_id();
      ++calls;
      done = true;
    };
  }
};

auto process_threads() -> int {
  std::ifstream in("/proc/self/status");
  std::string key;
  while (in >> key) {
    if (key == "Threads:") {
      int n = 0;
      in >> n;
      return n;
    }
  }
  return -1;
}

}  // namespace

TEST_CASE("async_acquire with a resource idle completes before it returns", "[async]") {
  test_factory f;
  respool::pool p{f, {.max_size = 2}};
  { auto warm = p.acquire(); }
  outcome o;
  p.async_acquire(1s, o.handler());
  CHECK(o.calls == 1);  // inline: served at once
  CHECK(!o.ec);
  CHECK(o.id == 1);
  CHECK(o.thread == std::this_thread::get_id());
  CHECK(p.stats().in_use == 0);  // the handler let go of the lease
}

TEST_CASE("a waiting async_acquire is completed once, by the returning thread", "[async]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = p.acquire();
  std::atomic<int> calls{0};
  std::thread::id served_on;
  std::size_t in_use_inside = 0;
  std::optional<bool> try_inside;
  p.async_acquire(5s, [&](std::error_code ec, lease_t l) {
    CHECK(!ec);
    CHECK(l);
    // No pool lock is held here: both take it.
    in_use_inside = p.stats().in_use;
    try_inside = p.try_acquire().has_value();
    served_on = std::this_thread::get_id();
    ++calls;
  });
  CHECK(calls == 0);  // nothing was idle: not before it returns
  CHECK(p.stats().waiters == 1);
  std::thread returner([&] { held.return_to_pool(); });
  const auto returner_id = returner.get_id();
  returner.join();
  CHECK(calls == 1);
  CHECK(served_on == returner_id);
  CHECK(in_use_inside == 1);
  CHECK(try_inside == false);
  CHECK(p.stats().waiters == 0);
  CHECK(p.stats().in_use == 0);
}

TEST_CASE("an async_acquire times out by the pool's timer, counted and worded as a blocking one", "[async]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .name = "db"}};
  auto held = p.acquire();
  outcome o;
  const auto start = steady::now();
  p.async_acquire(60ms, o.handler());
  REQUIRE(eventually([&] { return o.done.load(); }, 5s));
  const auto took = steady::now() - start;
  CHECK(o.calls == 1);
  CHECK(o.ec == respool::errc::timeout);
  CHECK(took >= 60ms);
  CHECK(took < 2s);
  CHECK(o.thread != std::this_thread::get_id());  // a pool worker, not the caller
  const auto st = p.stats();
  CHECK(st.timeouts == 1);
  CHECK(st.waiters == 0);

  // The awaitable's exception carries the same message a blocking acquire's does.
  std::string async_text;
  std::atomic<bool> finished{false};
  auto t_body = [&]() -> task {
    try {
      auto l = co_await p.acquire_async(30ms);
    } catch (const respool::error& e) {
      async_text = e.what();
    }
    finished = true;
  };
  auto t = t_body();
  REQUIRE(eventually([&] { return finished.load(); }, 5s));
  std::string sync_text;
  try {
    auto l = p.acquire(30ms);
  } catch (const respool::error& e) {
    sync_text = e.what();
  }
  CHECK(contains(async_text, "respool pool 'db': timed out after 30 ms waiting for a resource"));
  CHECK(contains(sync_text, "respool pool 'db': timed out after 30 ms waiting for a resource"));
  CHECK(contains(async_text, "held longest by"));
  CHECK(p.stats().timeouts == 3);
}

TEST_CASE("async timeouts need no thread per waiter", "[async]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = p.acquire();
  const int before = process_threads();
  constexpr int n = 2000;
  std::atomic<int> timed_out{0};
  std::atomic<int> calls{0};
  for (int i = 0; i < n; ++i)
    p.async_acquire(100ms, [&](std::error_code ec, lease_t) {
      if (ec == respool::errc::timeout) ++timed_out;
      ++calls;
    });
  CHECK(p.stats().waiters == n);
  const int during = process_threads();
  REQUIRE(eventually([&] { return calls.load() == n; }, 10s));
  CHECK(timed_out == n);
  CHECK(p.stats().waiters == 0);
  INFO("threads before " << before << ", with " << n << " waiting: " << during);
  CHECK(during - before <= 4);  // the pool's own few, not one per waiter
}

TEST_CASE("with a manual clock and no housekeeper, run_maintenance times async waiters out", "[async]") {
  respool_test::manual_clock::reset();
  test_factory f;
  respool::pool<test_factory, respool::always_valid, respool::no_reset, respool_test::manual_clock> p{
      f, {.max_size = 1, .housekeeping_interval = 0ms}};
  auto held = p.acquire();
  outcome early;
  outcome late;
  p.async_acquire(100ms, early.handler());
  p.async_acquire(300ms, late.handler());
  respool_test::manual_clock::advance(150ms);
  p.run_maintenance();  // runs what it leads to on this thread
  CHECK(early.calls == 1);
  CHECK(early.ec == respool::errc::timeout);
  CHECK(late.calls == 0);
  held.return_to_pool();
  CHECK(late.calls == 1);
  CHECK(!late.ec);
}

TEST_CASE("a handed-over resource that fails validation is replaced, the async waiter keeps its place", "[async]") {
  test_factory f;
  respool_test::flag_validator v;
  respool::pool p{f, {.max_size = 1, .validate_after_idle = 0ms}, v};
  auto held = p.acquire();
  outcome first;
  outcome second;
  p.async_acquire(5s, first.handler());
  p.async_acquire(5s, second.handler());
  held->alive = false;  // broken while held: the hand-off's check fails
  held.return_to_pool();
  // The first waiter is back at its place, ahead of the second, and gets the replacement.
  REQUIRE(eventually([&] { return first.done.load(); }));
  CHECK(!first.ec);
  CHECK(first.id == 2);
  REQUIRE(eventually([&] { return second.done.load(); }));
  CHECK(!second.ec);
  CHECK(second.id == 2);
  CHECK(p.stats().destroyed_by[static_cast<std::size_t>(respool::destroy_reason::failed_validation)] == 1);
  CHECK(first.calls == 1);
  CHECK(second.calls == 1);
}

TEST_CASE("close completes every async waiter with closed, once", "[async]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = p.acquire();
  std::vector<std::unique_ptr<outcome>> os;
  for (int i = 0; i < 10; ++i) {
    os.push_back(std::make_unique<outcome>());
    p.async_acquire(5s, os.back()->handler());
  }
  p.close();
  for (auto& o : os) {
    CHECK(o->calls == 1);
    CHECK(o->ec == respool::errc::closed);
  }
  outcome after;
  p.async_acquire(5s, after.handler());
  CHECK(after.calls == 1);  // at once
  CHECK(after.ec == respool::errc::closed);
}

TEST_CASE("a stop request cancels a waiting async acquire, on the requesting thread", "[async][cancel]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = p.acquire();
  std::stop_source src;
  outcome o;
  p.async_acquire(5s, o.handler(), src.get_token());
  CHECK(o.calls == 0);
  std::thread stopper([&] { src.request_stop(); });
  const auto stopper_id = stopper.get_id();
  stopper.join();
  CHECK(o.calls == 1);
  CHECK(o.ec == respool::errc::cancelled);
  CHECK(o.thread == stopper_id);
  CHECK(p.stats().cancelled == 1);
  CHECK(p.stats().waiters == 0);

  // Asked to stop before the call: at once. Served before the stop: keeps its lease.
  outcome before;
  p.async_acquire(src.get_token(), 5s, before.handler());
  CHECK(before.ec == respool::errc::cancelled);
  std::stop_source later;
  std::optional<lease_t> kept;
  p.async_acquire(5s, later.get_token(), [&](std::error_code ec, lease_t l) {
    CHECK(!ec);
    kept = std::move(l);
  });
  held.return_to_pool();
  REQUIRE(kept);
  later.request_stop();
  CHECK(*kept);
  CHECK(p.stats().cancelled == 2);
}

TEST_CASE("async acquires are shed past max_waiters and fail fast while the backend is down", "[async]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .max_waiters = 1}};
  auto held = p.acquire();
  outcome queued;
  outcome shed;
  p.async_acquire(5s, queued.handler());
  p.async_acquire(5s, shed.handler());
  CHECK(shed.calls == 1);
  CHECK(shed.ec == respool::errc::exhausted);
  CHECK(queued.calls == 0);
  held.return_to_pool();
  CHECK(queued.calls == 1);

  test_factory down;
  *down.fail = true;
  respool::pool q{down, {.max_size = 1, .fail_fast_after = 1, .create_backoff_min = 1s,
                         .create_backoff_max = 2s}};
  outcome first;
  q.async_acquire(5s, first.handler());
  REQUIRE(eventually([&] { return first.done.load(); }, 5s));
  CHECK(first.ec == respool::errc::create_failed);
  outcome next;
  q.async_acquire(5s, next.handler());
  CHECK(next.calls == 1);  // at once
  CHECK(next.ec == respool::errc::backend_unavailable);
}

TEST_CASE("blocking and async waiters are served in arrival order (strict FIFO)", "[async][fairness]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .fairness_window = 0ms}};
  auto held = p.acquire();
  std::mutex m;
  std::vector<std::string> order;
  const auto note = [&](std::string who) {
    std::lock_guard lk(m);
    order.push_back(std::move(who));
  };
  const auto blocking = [&](std::string who) {
    return std::thread([&, who] {
      auto l = p.acquire(10s);
      note(who);
    });
  };
  const auto async = [&](std::string who) {
    p.async_acquire(10s, [&, who](std::error_code ec, lease_t) {
      CHECK(!ec);
      note(who);
    });
  };
  auto a = blocking("A");
  REQUIRE(eventually([&] { return p.stats().waiters == 1; }));
  async("B");
  auto c = blocking("C");
  REQUIRE(eventually([&] { return p.stats().waiters == 3; }));
  async("D");
  auto e = blocking("E");
  REQUIRE(eventually([&] { return p.stats().waiters == 5; }));
  held.return_to_pool();
  a.join();
  c.join();
  e.join();
  REQUIRE(eventually([&] { return p.stats().waiters == 0 && p.stats().in_use == 0; }));
  std::lock_guard lk(m);
  CHECK(order == std::vector<std::string>{"A", "B", "C", "D", "E"});
}

TEST_CASE("a blocked thread at the head gets its turn while async waiters churn", "[async][fairness]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};  // eventual fairness, window 2 ms
  auto held = p.acquire();
  std::atomic<bool> stop{false};
  std::atomic<long> async_served{0};
  // A chain of async waiters: each one served queues the next before it lets go.
  std::function<void()> again = [&] {
    if (stop) return;
    p.async_acquire(10s, [&](std::error_code ec, lease_t) {
      if (!ec) ++async_served;
      again();
    });
  };
  for (int i = 0; i < 4; ++i) again();
  std::atomic<bool> blocked_served{false};
  std::thread blocked([&] {
    auto l = p.acquire(10s);
    blocked_served = true;
  });
  REQUIRE(eventually([&] { return p.stats().waiters == 5; }));
  const auto start = steady::now();
  held.return_to_pool();
  REQUIRE(eventually([&] { return blocked_served.load(); }, 5s));
  const auto waited = steady::now() - start;
  stop = true;
  blocked.join();
  p.close();  // the chain ends: the last waiters get closed
  CHECK(async_served > 0);
  const auto waited_ms = std::chrono::duration<double, std::milli>(waited).count();
  INFO("the blocked head waited " << waited_ms << " ms while " << async_served
                                  << " async waiters were served");
  CHECK(waited < 1s);
}

TEST_CASE("a handler that throws is reported and loses nothing", "[async]") {
  test_factory f;
  std::mutex m;
  std::vector<std::string> threw;
  respool::pool p{f, {.max_size = 1, .on_event = [&](const respool::pool_event& e) {
                        if (e.kind != respool::event_kind::handler_threw) return;
                        std::lock_guard lk(m);
                        threw.emplace_back(e.message);
                      }}};
  auto held = p.acquire();
  p.async_acquire(5s, [](std::error_code, lease_t) { throw std::runtime_error("handler bug"); });
  held.return_to_pool();  // the handler throws on this thread: it must not reach us
  REQUIRE(eventually([&] {
    std::lock_guard lk(m);
    return !threw.empty();
  }));
  {
    std::lock_guard lk(m);
    CHECK(contains(threw.front(), "handler bug"));
  }
  CHECK(p.stats().in_use == 0);  // the lease went back as the handler unwound
  auto again = p.acquire(1s);
  CHECK(again);
}

TEST_CASE("co_await acquire_async resumes on the thread that served it", "[async][coroutine]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  { auto warm = p.acquire(); }  // idle now
  std::thread::id resumed_on;
  std::atomic<int> got{0};
  auto at_once_body = [&]() -> task {
    auto l = co_await p.acquire_async(1s);
    got = l->id;
    resumed_on = std::this_thread::get_id();
  };
  auto at_once = at_once_body();
  CHECK(got == 1);  // served at once: it never suspended
  CHECK(resumed_on == std::this_thread::get_id());

  auto held = p.acquire();
  std::error_code ec = respool::errc::closed;
  std::atomic<bool> done{false};
  auto later_body = [&]() -> task {
    auto l = co_await p.acquire_async(5s, ec);
    got = l ? l->id : -1;
    resumed_on = std::this_thread::get_id();
    done = true;
  };
  auto later = later_body();
  CHECK_FALSE(done);
  std::thread returner([&] { held.return_to_pool(); });
  const auto returner_id = returner.get_id();
  returner.join();
  REQUIRE(done);
  CHECK(!ec);
  CHECK(got == 1);
  CHECK(resumed_on == returner_id);
}

TEST_CASE("co_await acquire_async through an executor resumes there", "[async][coroutine]") {
  // A one-thread executor with post(f).
  struct loop {
    std::mutex m;
    std::condition_variable cv;
    std::deque<std::function<void()>> q;
    bool stopping = false;
    std::thread t{[this] {
      std::unique_lock lk(m);
      while (!stopping || !q.empty()) {
        if (q.empty()) {
          cv.wait(lk);
          continue;
        }
        auto f = std::move(q.front());
        q.pop_front();
        lk.unlock();
        f();
        lk.lock();
      }
    }};
    void join() {
      {
        std::lock_guard lk(m);
        stopping = true;
      }
      cv.notify_all();
      if (t.joinable()) t.join();
    }
    ~loop() { join(); }
  };
  struct executor {
    loop* l;
    void post(std::function<void()> f) const {
      {
        std::lock_guard lk(l->m);
        l->q.push_back(std::move(f));
      }
      l->cv.notify_all();
    }
  };
  loop ex;
  test_factory f;
  respool::pool p{f, {.max_size = 1}};
  auto held = p.acquire();
  std::thread::id resumed_on;
  std::atomic<bool> done{false};
  auto t_body = [&]() -> task {
    auto l = co_await p.acquire_async(5s, executor{&ex});
    CHECK(l);
    resumed_on = std::this_thread::get_id();
    done = true;
  };
  auto t = t_body();
  const auto loop_thread = ex.t.get_id();
  held.return_to_pool();
  REQUIRE(eventually([&] { return done.load(); }));
  ex.join();  // the coroutine runs to its end there: only then may its frame go
  CHECK(resumed_on == loop_thread);
}

TEST_CASE("acquire_async takes an executor callable as e(f), a stop token, and the default timeout", "[async][coroutine]") {
  test_factory f;
  respool::pool p{f, {.max_size = 1, .acquire_timeout = 5s}};
  auto held = p.acquire();
  // A callable executor: it keeps what it is given, the test runs it.
  std::vector<std::function<void()>> posted;
  std::mutex m;
  const auto executor = [&](auto fn) {
    std::lock_guard lk(m);
    posted.emplace_back(std::move(fn));
  };
  std::atomic<int> got{0};
  auto via_body = [&]() -> task {
    auto l = co_await p.acquire_async(5s, executor);
    got = l ? l->id : -1;
  };
  auto via = via_body();
  held.return_to_pool();
  CHECK(got == 0);  // not resumed on the returning thread: it was posted
  std::function<void()> run;
  {
    std::lock_guard lk(m);
    REQUIRE(posted.size() == 1);
    run = std::move(posted.front());
  }
  run();
  CHECK(got == 1);

  // A stop token cancels a waiting coroutine; the ec form reports it without throwing.
  auto again = p.acquire();
  std::stop_source src;
  std::error_code ec;
  std::atomic<bool> done{false};
  auto stopped_body = [&]() -> task {
    auto l = co_await p.acquire_async(5s, src.get_token(), ec);
    CHECK_FALSE(l);
    done = true;
  };
  auto stopped = stopped_body();
  CHECK_FALSE(done);
  src.request_stop();
  CHECK(done);
  CHECK(ec == respool::errc::cancelled);

  // No timeout given: options().acquire_timeout, and the throwing form.
  std::atomic<bool> served{false};
  auto plain_body = [&]() -> task {
    auto l = co_await p.acquire_async();
    served = static_cast<bool>(l);
  };
  auto plain = plain_body();
  CHECK(p.stats().waiters == 1);
  again.return_to_pool();
  CHECK(served);
}

namespace {
// A pool of one, its resource held, and two coroutines waiting for it: x first, then y.
struct two_waiting_coroutines {
  test_factory f;
  respool::pool<test_factory> p{f, {.max_size = 1}};
  lease_t held = p.acquire();
  std::atomic<bool> x_resumed{false};
  std::atomic<int> y_got{0};
  std::function<task()> x_body = [this]() -> task {
    auto l = co_await p.acquire_async(5s);
    x_resumed = true;
  };
  std::function<task()> y_body = [this]() -> task {
    auto l = co_await p.acquire_async(5s);
    y_got = l->id;
  };
  task x = x_body();
  task y = y_body();
};
}  // namespace

TEST_CASE("destroying a suspended coroutine takes its waiter out of the queue", "[async][coroutine]") {
  two_waiting_coroutines t;
  CHECK(t.p.stats().waiters == 2);
  t.x.reset();  // destroyed while suspended
  CHECK(t.p.stats().waiters == 1);
  t.held.return_to_pool();
  CHECK(t.y_got == 1);
  CHECK_FALSE(t.x_resumed);
  CHECK(t.p.stats().in_use == 0);
}

namespace {
std::atomic<std::function<void()>*> on_delivery{nullptr};
void run_on_delivery(respool::detail::test_hooks::point pt) noexcept {
  if (pt != respool::detail::test_hooks::point::before_delivery) return;
  if (auto* f = on_delivery.exchange(nullptr)) (*f)();
}
}  // namespace

TEST_CASE("a coroutine destroyed while its resource is on the way passes it on", "[async][coroutine]") {
  // Forced interleaving: the return hands the resource to X and queues X's completion; before
  // it runs, X's frame is destroyed. The resource must go to Y, not vanish.
  two_waiting_coroutines t;
  std::function<void()> destroy_x = [&] { t.x.reset(); };
  on_delivery = &destroy_x;
  respool::detail::test_hooks::set(&run_on_delivery);
  t.held.return_to_pool();
  respool::detail::test_hooks::set(nullptr);
  CHECK(on_delivery.load() == nullptr);  // the hook ran
  CHECK_FALSE(t.x_resumed);
  CHECK(t.y_got == 1);
  const auto st = t.p.stats();
  CHECK(st.in_use == 0);
  CHECK(st.idle == 1);
  CHECK(st.waiters == 0);
}

TEST_CASE("exactly once under racing returns, timeouts, cancels and close", "[async][stress]") {
  test_factory f;
  respool::pool p{f, {.max_size = 3}};
  constexpr int per_thread = 3000;
  constexpr int threads = 3;
  std::vector<std::atomic<int>> calls(static_cast<std::size_t>(per_thread * threads));
  std::atomic<int> completed{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t)
    ts.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::vector<std::stop_source> sources;
      for (int i = 0; i < per_thread; ++i) {
        const auto id = static_cast<std::size_t>(t * per_thread + i);
        const auto handler = [&, id](std::error_code, lease_t l) {
          calls[id].fetch_add(1);
          ++completed;
          if (l && (id % 7) == 0) std::this_thread::yield();  // hold it a moment
        };
        const auto timeout = std::chrono::microseconds(rng() % 3000);
        if (i % 3 == 0) {
          sources.emplace_back();
          p.async_acquire(timeout, handler, sources.back().get_token());
        } else {
          p.async_acquire(timeout, handler);
        }
        if (i % 5 == 0) {
          auto l = p.try_acquire();  // a blocking-side return racing the rest
        }
        if (!sources.empty() && rng() % 2 == 0) {
          sources[rng() % sources.size()].request_stop();
        }
      }
    });
  for (auto& t : ts) t.join();
  p.close();
  REQUIRE(eventually([&] { return completed.load() == per_thread * threads; }, 20s));
  int wrong = 0;
  for (auto& c : calls)
    if (c.load() != 1) ++wrong;
  CHECK(wrong == 0);
  const auto st = p.stats();
  CHECK(st.waiters == 0);
  CHECK(st.in_use == 0);
}
