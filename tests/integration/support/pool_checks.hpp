#pragma once
// The scenarios the servers' integration tests share, with their checks (Catch2):
//  - load: 64 threads through a pool, every operation succeeds, and neither the server's own
//    count of connections nor the pool's passes the pool's size;
//  - restart under load: 16 threads through the pool, the server restarted under them, then no
//    hang, every acquire answered within acquire_timeout + 1 s, no dead connection handed out
//    once the server is back, full service within 2 s of it; afterwards the pool's books
//    balance and the server sees exactly the pool's connections;
//  - an acquire that must fail, and fast.
#include <respool/errors.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include "load.hpp"
#include "respool_catch.hpp"
#include "servers.hpp"

namespace respool_it {

/// 64 threads, each running `op(thread, iteration)` `per_thread` times through `pool`: every one
/// succeeds (returns true), while the server's own count of the pool's connections
/// (`server_count`, sampled every 2 ms) and the pool's count stay within `max_size`. Returns the
/// server's peak.
template <class Pool>
auto check_load(Pool& pool, std::size_t max_size, const char* what, int per_thread,
                const std::function<long()>& server_count,
                const std::function<bool(int, int)>& op) -> long {
  max_sampler on_server(server_count, 2ms);
  max_sampler in_pool([&] { return static_cast<long>(pool.stats().total); }, 1ms);
  constexpr int threads = 64;
  const auto [ok, failed, first_failure] = run_workers(threads, per_thread, 120s, what, op);
  on_server.stop();
  in_pool.stop();
  INFO("first failure: " << first_failure);
  CHECK(failed == 0);
  CHECK(ok == threads * per_thread);  // none failed or returned a wrong answer
  INFO("server samples " << on_server.samples() << ", errors " << on_server.errors() << " "
                         << on_server.last_error());
  CHECK(on_server.samples() > 2);
  CHECK(on_server.max() >= 1);
  CHECK(on_server.max() <= static_cast<long>(max_size));
  CHECK(in_pool.max() <= static_cast<long>(max_size));
  const auto s = pool.stats();
  CHECK(s.acquired >= static_cast<std::uint64_t>(threads * per_thread));
  CHECK(s.created <= max_size);
  CHECK(s.destroyed() == 0);
  CHECK(s.total == s.idle);
  return on_server.max();
}

/// The error of an acquire that must fail, within `limit`; nullopt (and a failed test) if it
/// succeeds or takes longer.
template <class Pool>
auto failed_acquire(Pool& pool, std::chrono::milliseconds limit = 1s) -> std::optional<respool::error> {
  const auto start = steady::now();
  try {
    auto c = pool.acquire();
    FAIL_CHECK("acquire should fail");
  } catch (const respool::error& e) {
    CHECK(steady::now() - start < limit);
    return e;
  }
  return std::nullopt;
}

struct restart_scenario {
  const char* what;                        // "postgres restart": names the WARN line
  std::chrono::milliseconds acquire_timeout;
  bool fault_must_show = true;             // some operation failed: the restart was felt
};

/// Runs 16 workers doing `op` through `pool` for 1 s, then `restart()` (returning once the
/// server is back), lets them run 3.5 s more, stops them and checks what they saw.
template <class Pool>
void check_restart_under_load(Pool& pool, const restart_scenario& sc,
                              std::function<bool(typename Pool::resource_type&)> op,
                              const std::function<void()>& restart) {
  recorded_load<Pool> load(pool, 16, std::move(op), sc.acquire_timeout);
  std::this_thread::sleep_for(1s);
  const auto fault = steady::now();
  restart();
  const auto back = steady::now();
  std::this_thread::sleep_for(3500ms);
  load.stop();

  const auto rep = analyse_restart(load.records(), fault, back, 2s);
  INFO(rep.summary());
  INFO("restart took " << std::chrono::duration_cast<std::chrono::milliseconds>(back - fault).count()
                       << " ms; first failure after settling: " << rep.first_settled_failure);
  WARN(sc.what << ": " << rep.summary());
  CHECK(rep.before_failed == 0);
  CHECK(rep.before_ok > 100);
  if (sc.fault_must_show) CHECK(rep.acquire_failed + rep.op_failed > 0);
  CHECK(rep.longest_acquire <= sc.acquire_timeout + 1s);
  CHECK(rep.settled_failed == 0);
  CHECK(rep.dead_handed_out == 0);
  CHECK(rep.settled_ok > 100);
  CHECK(rep.resumed_after <= 2s);
}

/// A restart for `check_restart_under_load`: SIGKILL (a crash: no goodbye to the clients), 500 ms
/// down (callers meet a refusing port), started again on the same port.
template <class Server>
auto kill_and_restart(Server& server) -> std::function<void()> {
  return [&server] {
    server.kill9();
    std::this_thread::sleep_for(500ms);
    server.start();
  };
}

/// After the load: every connection is back, none is being made, and the counts add up.
template <class Pool>
void check_books_balance(const Pool& pool, std::size_t max_size) {
  const auto s = pool.stats();
  CHECK(s.in_use == 0);
  CHECK(s.waiters == 0);
  CHECK(s.creating == 0);
  CHECK(s.total == s.idle);
  CHECK(s.total <= max_size);
  CHECK(s.created - s.destroyed() == s.total);
}

/// The server's own count of the pool's connections (`server_count`) matches the pool's, and
/// drops to 0 once the pool is closed: nothing leaked on either side.
template <class Pool>
void check_server_sees_the_pool(Pool& pool, const std::function<long()>& server_count) {
  CHECK(wait_until([&] { return server_count() == static_cast<long>(pool.stats().total); }, 5s));
  pool.close();
  CHECK(wait_until([&] { return server_count() == 0; }, 5s));
}

}  // namespace respool_it
