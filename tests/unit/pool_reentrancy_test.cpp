// Closing or destroying a pool from its own event callback: on_event may call close() (while
// another thread destroys the pool), or destroy the pool outright, from the pool's own thread;
// neither deadlocks nor aborts (no self-join, no joinable std::thread destroyed, no use after
// free), and a caller in acquire() gets a resource or errc::closed.
//
// Each scenario runs in a child process (POSIX fork, child_process.hpp), so that an abort or a
// hang in it becomes a failed check here instead of taking the whole test run down.
#include <respool/pool.hpp>

#include <atomic>
#include <future>
#include <memory>

#include "bounded_run.hpp"
#include "child_process.hpp"
#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool_test::background;
using respool_test::test_factory;

namespace {
using real_pool = respool::pool<test_factory>;

// Exit codes of the scenarios; 0 is success.
enum outcome : int {
  ok = 0,
  callback_never_ran = 10,
  destructor_hung = 11,
  acquire_hung = 12,
  acquire_wrong_result = 13,
};

[[maybe_unused]] auto describe(int code) -> const char* {
  switch (code) {
    case ok: return "ok";
    case callback_never_ran: return "the created event never reached the callback";
    case destructor_hung: return "the pool's destructor did not return within 2 s";
    case acquire_hung: return "acquire did not return within 2 s";
    case acquire_wrong_result: return "acquire returned neither a resource nor errc::closed";
    default: return "unexpected exit code";
  }
}

// (a) The callback closes the pool on `created` while the main thread destroys it.
auto close_from_callback_while_destroying() -> int {
  test_factory f;
  auto target = std::make_shared<std::atomic<real_pool*>>(nullptr);
  auto fired = std::make_shared<std::promise<void>>();
  auto once = std::make_shared<std::atomic<bool>>(false);
  respool::pool_options o{.max_size = 2};
  o.on_event = [target, fired, once](const respool::pool_event& e) {
    if (e.kind != respool::event_kind::created || once->exchange(true)) return;
    fired->set_value();
    if (real_pool* q = target->load()) q->close();
  };
  auto p = std::make_unique<real_pool>(f, o);
  target->store(p.get());
  auto none = p->try_acquire();  // nothing idle: asks the pool's creator for one
  if (fired->get_future().wait_for(2s) != std::future_status::ready) return callback_never_ran;
  background<void> destroy([&p] { p.reset(); });
  if (!destroy.ready_within(2s)) return destructor_hung;
  return ok;
}

// (b) The callback destroys the pool (it owns the only handle) on `created`, which an acquire on
// an empty pool triggered from another thread.
[[maybe_unused]] auto destroy_from_callback() -> int {
  test_factory f;
  auto holder = std::make_shared<std::unique_ptr<real_pool>>();
  auto once = std::make_shared<std::atomic<bool>>(false);
  respool::pool_options o{.max_size = 2};
  o.on_event = [holder, once](const respool::pool_event& e) {
    if (e.kind != respool::event_kind::created || once->exchange(true)) return;
    holder->reset();
  };
  *holder = std::make_unique<real_pool>(f, o);
  real_pool* raw = holder->get();
  background<std::pair<bool, std::error_code>> caller([raw] {
    std::error_code ec;
    auto l = raw->acquire(5s, ec);
    const bool got = static_cast<bool>(l);
    l.return_to_pool();  // a lease that may outlive its pool: returning it must be safe
    return std::pair{got, ec};
  });
  if (!caller.ready_within(2s)) return acquire_hung;
  const auto [got, ec] = caller.get();
  // The event is raised on a pool thread after the resource is handed over: give it a moment.
  if (!respool_test::eventually([&] { return once->load(); }, 2s)) return callback_never_ran;
  if (!got && ec != respool::errc::closed) return acquire_wrong_result;
  std::this_thread::sleep_for(200ms);  // whatever the pool's threads still do, they do it now
  return ok;
}

#if RESPOOL_TEST_HAVE_FORK
void check_child(const respool_test::child_result& r) {
  INFO("child: " << (r.finished ? "finished" : "hung, killed") << ", exit code " << r.code << " ("
                 << describe(r.code) << "), signal " << r.signal);
  CHECK(r.finished);
  CHECK(r.exited);  // not killed by a signal (SIGABRT from std::terminate, SIGSEGV)
  CHECK(r.code == ok);
}
#endif
}  // namespace

#if RESPOOL_TEST_HAVE_FORK
TEST_CASE("on_event may close the pool while another thread destroys it") {
  check_child(respool_test::run_in_child(close_from_callback_while_destroying, 10s));
}

TEST_CASE("on_event may destroy its own pool while a caller is in acquire") {
  check_child(respool_test::run_in_child(destroy_from_callback, 10s));
}
#else
TEST_CASE("on_event may close the pool while another thread destroys it") {
  CHECK(close_from_callback_while_destroying() == ok);
}
#endif
