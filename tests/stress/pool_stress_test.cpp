// Fault-injection stress test for respool::pool: 8 threads on a pool of 4, with a factory that
// fails about 10% of the time, a validator that fails 5% of borrows, a resetter that fails 2% of
// returns, discarded leases, short timeouts, short idle timeouts and lifetimes, short backend
// outages (every connect and validation fails), evict_all() under load (no resource made before
// a finished eviction is lent), and a 1 ms housekeeper racing the callers. It checks, throughout and at the end:
//
// - never more than max_size live resources (counted by the resource's own constructor and
//   destructor, so a resource inside the factory counts too);
// - no resource held by two leases at once (an atomic `held` flag per resource);
// - stats(): created - destroyed == total - creating, total <= max_size, in every snapshot;
// - every acquire returns a resource or an acceptable error within its timeout plus a slack;
// - the pool's counters agree with what the callers and the policies saw;
// - after close() (or the pool's destruction with leases still out) nothing is live.
//
// Three cases: the long run above; close() racing busy callers (round after round); and the pool
// destroyed while threads still hold leases and return them concurrently (ASan and TSan watch
// for use after free).
//
// Size: RESPOOL_STRESS_CYCLES (total acquire attempts over all threads) if set; otherwise 10^6 in
// an optimised build without sanitizers (about 15 s on 2 cores: the contended hand-off costs a
// context switch per cycle) and 200,000 with a sanitizer or without NDEBUG (about 5 s under TSan
// on 2 cores). RESPOOL_STRESS_SEED fixes the random seed (printed at the start) to replay a run's
// fault pattern (thread interleavings still differ).
//
// Worker threads never call Catch2's assertion macros (Catch2 2 is not thread-safe): they record
// violations, and the test thread checks them after joining.
#include <respool/pool.hpp>

#include <algorithm>
#include <array>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <stop_token>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#include "respool_catch.hpp"

using namespace std::chrono_literals;

#if defined(__SANITIZE_THREAD__) || defined(__SANITIZE_ADDRESS__)
#define POOL_STRESS_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define POOL_STRESS_SANITIZED 1
#endif
#endif
#ifndef POOL_STRESS_SANITIZED
#define POOL_STRESS_SANITIZED 0
#endif

namespace {

using steady = std::chrono::steady_clock;

constexpr std::size_t pool_max = 4;
constexpr int thread_count = 8;
// Generous: TSan on a loaded 2-core machine can stall a thread for a long time.
constexpr auto slack = 2s;

auto env_u64(const char* name, std::uint64_t fallback) -> std::uint64_t {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  char* end = nullptr;
  const auto n = std::strtoull(v, &end, 10);
  return (end != nullptr && *end == '\0' && n > 0) ? static_cast<std::uint64_t>(n) : fallback;
}

auto stress_cycles() -> std::uint64_t {
#if defined(NDEBUG) && !POOL_STRESS_SANITIZED
  constexpr std::uint64_t fallback = 1'000'000;
#else
  constexpr std::uint64_t fallback = 200'000;  // about 5 s under TSan, 3 s under ASan+UBSan
#endif
  return env_u64("RESPOOL_STRESS_CYCLES", fallback);
}

auto base_seed() -> std::uint64_t {
  static const std::uint64_t seed = env_u64("RESPOOL_STRESS_SEED", std::random_device{}());
  return seed;
}

// One generator per thread (the factory runs on the pool's creator thread, the validator and the
// resetter on the callers' threads).
auto rng() -> std::mt19937& {
  static std::atomic<std::uint32_t> next_stream{0};
  thread_local std::mt19937 gen(
      static_cast<std::uint32_t>(base_seed() * 1000003U + next_stream.fetch_add(1)));
  return gen;
}

// True with probability per_mille / 1000.
auto chance(unsigned per_mille) -> bool {
  return std::uniform_int_distribution<unsigned>(0, 999)(rng()) < per_mille;
}

auto pick(unsigned lo, unsigned hi) -> unsigned {
  return std::uniform_int_distribution<unsigned>(lo, hi)(rng());
}

// ------------------------------------------------------------------ what went wrong, if anything

class violations {
 public:
  void add(const std::string& what) {
    if (count_.fetch_add(1) == 0) {
      std::lock_guard lk(mutex_);
      first_ = what;
    }
  }
  [[nodiscard]] auto count() const -> std::uint64_t { return count_.load(); }
  [[nodiscard]] auto first() const -> std::string {
    std::lock_guard lk(mutex_);
    return first_;
  }
  void clear() {
    std::lock_guard lk(mutex_);
    count_ = 0;
    first_.clear();
  }

 private:
  std::atomic<std::uint64_t> count_{0};
  mutable std::mutex mutex_;
  std::string first_;
};

violations g_violations;

// ------------------------------------------------------------------ the resource

std::atomic<long> g_live{0};  // resources alive right now, wherever they are
std::atomic<long> g_peak{0};  // the most ever alive at once

// The identity of one resource. Lives on the heap so that moving a `resource` moves the pointer:
// a moved-from resource holds nothing and counts nothing.
// Evictions the monitor has begun and finished (evict_all): a resource made before an eviction
// began must never be lent once that eviction has finished.
std::atomic<std::uint64_t> g_evictions_started{0};
std::atomic<std::uint64_t> g_evictions_done{0};

struct tracked {
  std::uint64_t epoch = g_evictions_started.load();  // read while the factory runs
  tracked() {
    const long now = g_live.fetch_add(1) + 1;
    long peak = g_peak.load();
    while (now > peak && !g_peak.compare_exchange_weak(peak, now)) {
    }
    if (now > static_cast<long>(pool_max))
      g_violations.add("live resources " + std::to_string(now) + " > max_size while creating");
  }
  ~tracked() { g_live.fetch_sub(1); }
  tracked(const tracked&) = delete;
  auto operator=(const tracked&) -> tracked& = delete;
  tracked(tracked&&) = delete;
  auto operator=(tracked&&) -> tracked& = delete;

  std::atomic<bool> held{false};
  std::uint64_t serial = 0;
};

struct resource {
  std::unique_ptr<tracked> t;
};

// ------------------------------------------------------------------ policies with faults

struct fault_counters {
  std::atomic<std::uint64_t> factory_ok{0};
  std::atomic<std::uint64_t> factory_throws{0};
  std::atomic<std::uint64_t> validations{0};
  std::atomic<std::uint64_t> validation_failures{0};  // said false or threw
  std::atomic<std::uint64_t> resets{0};
  std::atomic<std::uint64_t> reset_failures{0};  // said false or threw
};

fault_counters g_faults;
// An outage: every connect fails and every validation says the connection died, so the pool
// empties, counts the backend as down and fails fast until a probe gets through.
std::atomic<bool> g_outage{false};

struct flaky_factory {
  auto create() -> resource {
    if (g_outage.load() || chance(100)) {
      g_faults.factory_throws.fetch_add(1);
      throw std::runtime_error("injected: connection refused");
    }
    if (chance(5)) std::this_thread::sleep_for(std::chrono::microseconds(pick(10, 200)));
    static std::atomic<std::uint64_t> serials{0};
    resource r{std::make_unique<tracked>()};
    r.t->serial = serials.fetch_add(1) + 1;
    g_faults.factory_ok.fetch_add(1);
    return r;
  }
};

struct flaky_validator {
  auto validate(resource& r) const -> bool {
    g_faults.validations.fetch_add(1);
    if (!r.t) g_violations.add("validator got a moved-from resource");
    else if (r.t->held.load()) g_violations.add("validator ran on a resource someone holds");
    if (g_outage.load() || chance(50)) {
      g_faults.validation_failures.fetch_add(1);
      if (chance(200)) throw std::runtime_error("injected: validation threw");
      return false;
    }
    return true;
  }
};

struct flaky_resetter {
  auto reset(resource& r) const -> bool {
    g_faults.resets.fetch_add(1);
    if (!r.t) g_violations.add("resetter got a moved-from resource");
    else if (r.t->held.load()) g_violations.add("resetter ran on a resource someone holds");
    if (chance(20)) {
      g_faults.reset_failures.fetch_add(1);
      if (chance(200)) throw std::runtime_error("injected: reset threw");
      return false;
    }
    return true;
  }
};

using stress_pool = respool::pool<flaky_factory, flaky_validator, flaky_resetter>;

auto stress_options(std::size_t min_idle) -> respool::pool_options {
  return respool::pool_options{
      .max_size = pool_max,
      .min_idle = min_idle,
      .acquire_timeout = 200ms,
      .idle_timeout = 2ms,   // the housekeeper retires idle resources while callers race it
      .max_lifetime = 10ms,  // and expires old ones, on borrow, on return and in housekeeping
      .validate_after_idle = 0ms,  // validate every borrow
      .create_backoff_min = 1ms,
      .create_backoff_max = 4ms,
      .housekeeping_interval = 1ms,
      .name = "stress",
  };
}

// ------------------------------------------------------------------ holding a lease

struct outcome_counters {
  std::atomic<std::uint64_t> attempts{0};
  std::atomic<std::uint64_t> acquired{0};  // by acquire() in either form
  std::atomic<std::uint64_t> try_acquired{0};
  std::atomic<std::uint64_t> try_empty{0};
  std::atomic<std::uint64_t> timeouts{0};
  std::atomic<std::uint64_t> create_failed{0};
  std::atomic<std::uint64_t> backend_unavailable{0};
  std::atomic<std::uint64_t> closed{0};
  std::atomic<std::uint64_t> discards{0};
  std::atomic<std::uint64_t> early_returns{0};  // return_to_pool() before the lease's end
  std::atomic<std::int64_t> worst_overshoot_us{0};  // elapsed - timeout, worst seen
};

void note_overshoot(outcome_counters& out, steady::duration elapsed, steady::duration timeout) {
  const auto over = std::chrono::duration_cast<std::chrono::microseconds>(elapsed - timeout).count();
  auto worst = out.worst_overshoot_us.load();
  while (over > worst && !out.worst_overshoot_us.compare_exchange_weak(worst, over)) {
  }
  if (elapsed > timeout + slack)
    g_violations.add("an acquire with timeout " +
                     std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                     " ms took " +
                     std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count()) +
                     " ms");
}

// Marks the resource held (it must not have been), works with it a little, unmarks it and
// returns or discards it.
void use_and_return(respool::lease<resource>& l, outcome_counters& out) {
  tracked* t = l->t.get();
  if (t == nullptr) {
    g_violations.add("a lease holds a moved-from resource");
    return;
  }
  if (t->held.exchange(true)) g_violations.add("resource " + std::to_string(t->serial) +
                                               " is held by two leases at once");
  const long live = g_live.load();
  if (live > static_cast<long>(pool_max))
    g_violations.add("live resources " + std::to_string(live) + " > max_size while holding");
  const auto serial = t->serial;
  const auto p = pick(0, 999);
  if (p < 10) {
    std::this_thread::sleep_for(std::chrono::microseconds(pick(20, 300)));
  } else if (p < 100) {
    std::this_thread::yield();
  }
  if (t->serial != serial || l->t.get() != t) g_violations.add("a held resource changed under its holder");
  t->held.store(false);
  const auto how = pick(0, 999);
  if (how < 30) {
    out.discards.fetch_add(1);
    l.discard();
  } else if (how < 130) {
    out.early_returns.fetch_add(1);
    l.return_to_pool();
  }
  // otherwise the lease's destructor returns it
}

// What the pool may answer besides a resource: `closed` only once the test has begun to close it.
// A timeout must not come early: the pool waits its full timeout before giving up.
void check_error(const std::error_code& ec, steady::duration elapsed, steady::duration timeout,
                 bool closed_ok, outcome_counters& out) {
  if (ec == respool::errc::timeout) {
    out.timeouts.fetch_add(1);
    if (elapsed < timeout)
      g_violations.add("a timeout after " +
                       std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(elapsed).count()) +
                       " us, before its timeout of " +
                       std::to_string(std::chrono::duration_cast<std::chrono::microseconds>(timeout).count()) +
                       " us");
  } else if (ec == respool::errc::create_failed) {
    out.create_failed.fetch_add(1);
  } else if (ec == respool::errc::backend_unavailable) {
    out.backend_unavailable.fetch_add(1);
    // What a real client does when told the backend is down: wait a little before retrying.
    // Without it most attempts are fast failures inside the pool's (1-4 ms) backoff window.
    std::this_thread::sleep_for(std::chrono::microseconds(pick(50, 200)));
  } else if (ec == respool::errc::closed && closed_ok) {
    out.closed.fetch_add(1);
  } else {
    g_violations.add("unexpected acquire error: " + ec.message());
  }
}

enum class cycle_result { got, failed, closed };

// One acquire attempt in one of three forms, with a random timeout, and what follows. `closed` is
// an acceptable answer only once `*closing` is set.
auto one_cycle(stress_pool& pool, outcome_counters& out,
               const std::atomic<bool>* closing = nullptr) -> cycle_result {
  const auto closed_ok = [closing] { return closing != nullptr && closing->load(); };
  bool got = false;
  out.attempts.fetch_add(1);
  const auto t = pick(0, 999);
  const steady::duration timeout = t < 100 ? steady::duration(0ms)
                                   : t < 250 ? steady::duration(std::chrono::milliseconds(pick(1, 3)))
                                             : steady::duration(200ms);
  const auto form = pick(0, 999);
  const auto start = steady::now();
  const auto evictions_done = g_evictions_done.load();
  const auto check_not_evicted = [evictions_done](const resource& r) {
    if (r.t && r.t->epoch < evictions_done)
      g_violations.add("lent a resource made before an eviction that had finished");
  };
  std::error_code failure;
  if (form < 50) {
    auto maybe = pool.try_acquire();
    note_overshoot(out, steady::now() - start, 0ms);
    if (maybe) {
      got = true;
      out.try_acquired.fetch_add(1);
      check_not_evicted(**maybe);
      use_and_return(*maybe, out);
    } else {
      out.try_empty.fetch_add(1);
    }
  } else if (form < 500) {
    std::error_code ec;
    auto l = pool.acquire(timeout, ec);
    const auto elapsed = steady::now() - start;
    note_overshoot(out, elapsed, timeout);
    if (l) {
      got = true;
      if (ec) g_violations.add("a lease together with an error: " + ec.message());
      out.acquired.fetch_add(1);
      check_not_evicted(*l);
      use_and_return(l, out);
    } else {
      if (!ec) g_violations.add("an empty lease without an error");
      check_error(ec, elapsed, timeout, closed_ok(), out);
      failure = ec;
    }
  } else {
    try {
      auto l = pool.acquire(timeout);
      note_overshoot(out, steady::now() - start, timeout);
      if (!l) g_violations.add("the throwing acquire returned an empty lease");
      got = true;
      out.acquired.fetch_add(1);
      check_not_evicted(*l);
      use_and_return(l, out);
    } catch (const respool::error& e) {
      const auto elapsed = steady::now() - start;
      note_overshoot(out, elapsed, timeout);
      if (std::string_view(e.what()).find("'stress'") == std::string_view::npos)
        g_violations.add(std::string("an error that does not name the pool: ") + e.what());
      if ((e.code() == respool::errc::create_failed || e.code() == respool::errc::backend_unavailable) &&
          !e.cause())
        g_violations.add(std::string("a creation error without its cause: ") + e.what());
      check_error(e.code(), elapsed, timeout, closed_ok(), out);
      failure = e.code();
    } catch (const std::exception& e) {
      g_violations.add(std::string("acquire threw something else: ") + e.what());
    }
  }
  if (got) return cycle_result::got;
  return failure == respool::errc::closed ? cycle_result::closed : cycle_result::failed;
}

// created - destroyed == total - creating and total <= max_size, in one snapshot.
void check_snapshot(const respool::pool_stats& st, const char* when) {
  const auto alive = static_cast<std::int64_t>(st.created) - static_cast<std::int64_t>(st.destroyed());
  const auto counted = static_cast<std::int64_t>(st.total) - static_cast<std::int64_t>(st.creating);
  if (alive != counted)
    g_violations.add(std::string(when) + ": created - destroyed = " + std::to_string(alive) +
                     " but total - creating = " + std::to_string(counted));
  if (st.total > pool_max || st.max_size != pool_max)
    g_violations.add(std::string(when) + ": total " + std::to_string(st.total) + " > max_size");
  if (st.idle + st.in_use + st.creating > st.total)
    g_violations.add(std::string(when) + ": idle + in_use + creating > total");
}

void reset_globals() {
  g_violations.clear();
  g_peak = g_live.load();
  g_faults.factory_ok = 0;
  g_faults.factory_throws = 0;
  g_faults.validations = 0;
  g_faults.validation_failures = 0;
  g_faults.resets = 0;
  g_faults.reset_failures = 0;
}

auto seconds_since(steady::time_point start) -> double {
  return std::chrono::duration<double>(steady::now() - start).count();
}

}  // namespace

TEST_CASE("pool under fault injection: bounded, exclusive, consistent, and empty after close") {
  REQUIRE(g_live.load() == 0);
  reset_globals();
  const auto cycles = stress_cycles();
  const auto per_thread = (cycles + thread_count - 1) / thread_count;
  std::printf("pool_stress: %llu cycles on %d threads, max_size %zu, seed %llu, sanitized %d\n",
              static_cast<unsigned long long>(per_thread * thread_count), thread_count, pool_max,
              static_cast<unsigned long long>(base_seed()), POOL_STRESS_SANITIZED);
  std::fflush(stdout);
  const auto started = steady::now();

  outcome_counters out;
  std::uint64_t snapshots = 0;
  std::uint64_t after_evicted = 0;
  {
    stress_pool pool{flaky_factory{}, stress_options(2), flaky_validator{}, flaky_resetter{}};

    std::atomic<bool> done{false};
    // Every ~50 ms the callers pause for ~4 ms, so idle resources age past idle_timeout and the
    // housekeeper retires them; then all of them rush back at once, racing it and the creator.
    // Every ~120 ms the backend goes down for ~15 ms (the breaker opens, callers fail fast).
    std::atomic<bool> quiet{false};
    std::thread monitor([&] {
      auto next_quiet = steady::now() + 50ms;
      auto next_outage = steady::now() + 120ms;
      auto outage_ends = steady::time_point::max();
      auto next_eviction = steady::now() + 70ms;  // a failover: evict_all under load
      while (!done.load()) {
        if (steady::now() >= next_eviction) {
          g_evictions_started.fetch_add(1);
          pool.evict_all();
          g_evictions_done.fetch_add(1);
          next_eviction = steady::now() + 70ms;
        }
        if (steady::now() >= next_outage) {
          g_outage = true;
          outage_ends = steady::now() + 15ms;
          next_outage = steady::now() + 120ms;
        }
        if (steady::now() >= outage_ends) {
          g_outage = false;
          outage_ends = steady::time_point::max();
        }
        check_snapshot(pool.stats(), "during the run");
        const long live = g_live.load();
        if (live > static_cast<long>(pool_max))
          g_violations.add("live resources " + std::to_string(live) + " > max_size (monitor)");
        ++snapshots;
        if (steady::now() >= next_quiet) {
          quiet = true;
          std::this_thread::sleep_for(4ms);
          quiet = false;
          next_quiet = steady::now() + 50ms;
        }
        std::this_thread::sleep_for(200us);
      }
    });
    std::vector<std::thread> workers;
    for (int i = 0; i < thread_count; ++i)
      workers.emplace_back([&] {
        for (std::uint64_t c = 0; c < per_thread; ++c) {
          while (quiet.load()) std::this_thread::sleep_for(250us);
          one_cycle(pool, out);
        }
      });
    for (auto& w : workers) w.join();
    done = true;
    monitor.join();
    g_outage = false;

    // Every lease is back. Nothing is in use; the counters agree with one another.
    const auto before = pool.stats();
    check_snapshot(before, "after the run");
    CHECK(before.in_use == 0);
    CHECK(before.waiters == 0);
    CHECK(before.acquired == out.acquired.load() + out.try_acquired.load());
    CHECK(before.timeouts == out.timeouts.load());
    CHECK(before.fast_failures == out.backend_unavailable.load());
    CHECK(before.shed == 0);

    pool.close();
    const auto after = pool.stats();
    after_evicted = after.destroyed(respool::destroy_reason::evicted);
    const auto elapsed = seconds_since(started);
    check_snapshot(after, "after close");
    CHECK(after.total == 0);
    CHECK(after.idle == 0);
    CHECK(after.creating == 0);
    CHECK(g_live.load() == 0);
    // Every resource the factory made was counted, and every one destroyed, for the reason the
    // policies and the callers gave.
    CHECK(after.created == g_faults.factory_ok.load());
    CHECK(after.create_failures == g_faults.factory_throws.load());
    CHECK(after.created == after.destroyed());
    CHECK(after.destroyed(respool::destroy_reason::failed_validation) ==
          g_faults.validation_failures.load());
    CHECK(after.destroyed(respool::destroy_reason::failed_reset) == g_faults.reset_failures.load());
    CHECK(after.destroyed(respool::destroy_reason::discarded) == out.discards.load());
    if (g_evictions_done.load() == 0) CHECK(after.destroyed(respool::destroy_reason::evicted) == 0);
    CHECK(after.destroyed(respool::destroy_reason::max_uses) == 0);

    std::printf(
        "pool_stress: %.2f s; attempts %llu, acquired %llu, try_acquired %llu, try_empty %llu, "
        "timeouts %llu, create_failed %llu, backend_unavailable %llu, discards %llu, early "
        "returns %llu; worst overshoot past timeout %lld us; peak live %ld; %llu stats snapshots\n",
        elapsed, static_cast<unsigned long long>(out.attempts.load()),
        static_cast<unsigned long long>(out.acquired.load()),
        static_cast<unsigned long long>(out.try_acquired.load()),
        static_cast<unsigned long long>(out.try_empty.load()),
        static_cast<unsigned long long>(out.timeouts.load()),
        static_cast<unsigned long long>(out.create_failed.load()),
        static_cast<unsigned long long>(out.backend_unavailable.load()),
        static_cast<unsigned long long>(out.discards.load()),
        static_cast<unsigned long long>(out.early_returns.load()),
        static_cast<long long>(out.worst_overshoot_us.load()), g_peak.load(),
        static_cast<unsigned long long>(snapshots));
    std::printf(
        "pool_stress: factory ok %llu, factory threw %llu, validations %llu (failed %llu), resets "
        "%llu (failed %llu); destroyed: idle_timeout %llu, lifetime %llu, failed_validation %llu, "
        "failed_reset %llu, discarded %llu, closed %llu; wait p50 %lld us, p99 %lld us, max %lld "
        "us\n",
        static_cast<unsigned long long>(g_faults.factory_ok.load()),
        static_cast<unsigned long long>(g_faults.factory_throws.load()),
        static_cast<unsigned long long>(g_faults.validations.load()),
        static_cast<unsigned long long>(g_faults.validation_failures.load()),
        static_cast<unsigned long long>(g_faults.resets.load()),
        static_cast<unsigned long long>(g_faults.reset_failures.load()),
        static_cast<unsigned long long>(after.destroyed(respool::destroy_reason::idle_timeout)),
        static_cast<unsigned long long>(after.destroyed(respool::destroy_reason::lifetime)),
        static_cast<unsigned long long>(after.destroyed(respool::destroy_reason::failed_validation)),
        static_cast<unsigned long long>(after.destroyed(respool::destroy_reason::failed_reset)),
        static_cast<unsigned long long>(after.destroyed(respool::destroy_reason::discarded)),
        static_cast<unsigned long long>(after.destroyed(respool::destroy_reason::closed)),
        static_cast<long long>(after.wait_p50.count()), static_cast<long long>(after.wait_p99.count()),
        static_cast<long long>(after.wait_max.count()));
    std::fflush(stdout);
  }

  INFO("first violation: " << g_violations.first());
  CHECK(g_violations.count() == 0);
  CHECK(g_peak.load() <= static_cast<long>(pool_max));
  CHECK(g_live.load() == 0);
  CHECK(out.attempts.load() == per_thread * thread_count);
  CHECK(out.acquired.load() > 0);
  // A large run must have exercised every fault and every outcome, or it proves little.
  if (cycles >= 100'000) {
    CHECK(out.timeouts.load() > 0);
    CHECK(out.create_failed.load() + out.backend_unavailable.load() > 0);
    CHECK(out.discards.load() > 0);
    if (g_evictions_done.load() > 0) CHECK(after_evicted > 0);
    CHECK(out.try_acquired.load() > 0);
    CHECK(g_faults.factory_throws.load() > 0);
    CHECK(g_faults.validation_failures.load() > 0);
    CHECK(g_faults.reset_failures.load() > 0);
  }
}

TEST_CASE("close() while callers are busy: callers get closed, and nothing stays live") {
  REQUIRE(g_live.load() == 0);
  reset_globals();
  // One round: a new pool, every thread cycling on it, close() at a random moment; each thread
  // stops at its first `closed` answer. Then every lease is back: nothing may be live.
  const auto rounds = std::clamp<std::uint64_t>(stress_cycles() / 2'000, 100, 1'000);
  std::printf("pool_stress: %llu rounds of close() under load, %d threads\n",
              static_cast<unsigned long long>(rounds), thread_count);
  std::fflush(stdout);
  const auto started = steady::now();

  std::optional<stress_pool> pool;
  std::barrier sync(thread_count + 1);
  outcome_counters out;
  std::atomic<bool> closing{false};      // set just before close()
  std::atomic<bool> close_done{false};   // set once close() has returned
  std::atomic<std::uint64_t> got_after_close{0};
  std::atomic<std::uint64_t> rounds_with_leftovers{0};

  std::vector<std::thread> workers;
  for (int i = 0; i < thread_count; ++i)
    workers.emplace_back([&] {
      for (std::uint64_t r = 0; r < rounds; ++r) {
        sync.arrive_and_wait();  // the pool exists
        for (;;) {
          const bool after_close = close_done.load();
          const auto res = one_cycle(*pool, out, &closing);
          if (res == cycle_result::got && after_close) got_after_close.fetch_add(1);
          if (res == cycle_result::closed) break;
        }
        sync.arrive_and_wait();  // everyone saw `closed`; every lease is back
        sync.arrive_and_wait();  // the test thread has checked
      }
    });

  for (std::uint64_t r = 0; r < rounds; ++r) {
    pool.emplace(flaky_factory{}, stress_options(2), flaky_validator{}, flaky_resetter{});
    closing = false;
    close_done = false;
    sync.arrive_and_wait();
    std::this_thread::sleep_for(std::chrono::microseconds(pick(0, 3'000)));
    closing = true;
    pool->close();
    close_done = true;
    sync.arrive_and_wait();
    const auto st = pool->stats();
    check_snapshot(st, "after close() under load");
    if (st.total != 0 || g_live.load() != 0) {
      rounds_with_leftovers.fetch_add(1);
      g_violations.add("after close() and every lease back: total " + std::to_string(st.total) +
                       ", live " + std::to_string(g_live.load()));
    }
    pool.reset();
    sync.arrive_and_wait();
  }
  for (auto& w : workers) w.join();

  std::printf(
      "pool_stress: %.2f s; attempts %llu, acquired %llu, closed %llu, timeouts %llu, "
      "create_failed %llu, backend_unavailable %llu, peak live %ld\n",
      seconds_since(started), static_cast<unsigned long long>(out.attempts.load()),
      static_cast<unsigned long long>(out.acquired.load() + out.try_acquired.load()),
      static_cast<unsigned long long>(out.closed.load()),
      static_cast<unsigned long long>(out.timeouts.load()),
      static_cast<unsigned long long>(out.create_failed.load()),
      static_cast<unsigned long long>(out.backend_unavailable.load()), g_peak.load());
  std::fflush(stdout);

  INFO("first violation: " << g_violations.first());
  CHECK(g_violations.count() == 0);
  CHECK(got_after_close.load() == 0);
  CHECK(rounds_with_leftovers.load() == 0);
  CHECK(g_live.load() == 0);
  CHECK(g_peak.load() <= static_cast<long>(pool_max));
  CHECK(out.closed.load() >= rounds * thread_count);
}

TEST_CASE("leases outlive the pool under fault injection, and every resource is destroyed") {
  REQUIRE(g_live.load() == 0);
  reset_globals();
  // One round: a new pool, every thread takes up to two leases, the pool is destroyed while the
  // threads return them (some before, some during, some after the destruction).
  const auto rounds = std::clamp<std::uint64_t>(stress_cycles() / 1'000, 200, 2'000);
  std::printf("pool_stress: %llu rounds of pool destruction with leases out, %d threads\n",
              static_cast<unsigned long long>(rounds), thread_count);
  std::fflush(stdout);
  const auto started = steady::now();

  std::optional<stress_pool> pool;
  std::barrier sync(thread_count + 1);
  outcome_counters out;
  std::atomic<std::uint64_t> held_at_destruction{0};
  std::atomic<std::uint64_t> leaks_after_round{0};

  std::vector<std::thread> workers;
  for (int i = 0; i < thread_count; ++i)
    workers.emplace_back([&] {
      for (std::uint64_t r = 0; r < rounds; ++r) {
        sync.arrive_and_wait();  // the pool exists
        std::vector<respool::lease<resource>> mine;
        for (int k = 0; k < 2; ++k) {
          std::error_code ec;
          const steady::duration timeout = std::chrono::milliseconds(pick(0, 2));
          const auto start = steady::now();
          auto l = pool->acquire(timeout, ec);
          const auto elapsed = steady::now() - start;
          out.attempts.fetch_add(1);
          note_overshoot(out, elapsed, timeout);
          if (!l) {
            check_error(ec, elapsed, timeout, false, out);
            continue;
          }
          out.acquired.fetch_add(1);
          if (l->t->held.exchange(true))
            g_violations.add("resource " + std::to_string(l->t->serial) + " held twice");
          mine.push_back(std::move(l));
        }
        sync.arrive_and_wait();  // everyone has what they got; no more calls on the pool
        held_at_destruction.fetch_add(mine.size());
        const auto delay = pick(0, 3);
        if (delay > 0) std::this_thread::sleep_for(std::chrono::microseconds(pick(0, 60)));
        for (auto& l : mine) {
          if (!l->t || !l->t->held.load()) g_violations.add("a held resource changed after the pool went");
          l->t->held.store(false);
          if (chance(100)) {
            out.discards.fetch_add(1);
            l.discard();
          } else {
            l.return_to_pool();
          }
        }
        sync.arrive_and_wait();  // all returned
        sync.arrive_and_wait();  // the test thread has checked
      }
    });

  for (std::uint64_t r = 0; r < rounds; ++r) {
    pool.emplace(flaky_factory{}, stress_options(pool_max), flaky_validator{}, flaky_resetter{});
    sync.arrive_and_wait();
    sync.arrive_and_wait();
    if (chance(500)) std::this_thread::sleep_for(std::chrono::microseconds(pick(0, 40)));
    pool.reset();  // races the returns
    sync.arrive_and_wait();
    if (g_live.load() != 0) leaks_after_round.fetch_add(1);
    sync.arrive_and_wait();
  }
  for (auto& w : workers) w.join();

  std::printf(
      "pool_stress: %.2f s; leases held at destruction %llu, acquired %llu, timeouts %llu, "
      "create_failed %llu, backend_unavailable %llu, discards %llu, peak live %ld\n",
      seconds_since(started), static_cast<unsigned long long>(held_at_destruction.load()),
      static_cast<unsigned long long>(out.acquired.load()),
      static_cast<unsigned long long>(out.timeouts.load()),
      static_cast<unsigned long long>(out.create_failed.load()),
      static_cast<unsigned long long>(out.backend_unavailable.load()),
      static_cast<unsigned long long>(out.discards.load()), g_peak.load());
  std::fflush(stdout);

  INFO("first violation: " << g_violations.first());
  CHECK(g_violations.count() == 0);
  CHECK(leaks_after_round.load() == 0);
  CHECK(g_live.load() == 0);
  CHECK(g_peak.load() <= static_cast<long>(pool_max));
  CHECK(held_at_destruction.load() > 0);
}

// set_max_size(), pause()/resume(), evict_if() and cancellations racing busy callers. A lend
// that began and ended while the limit stood still (no resize in between) never takes the
// leases out above that limit, however many were out from before a shrink; a lend that began
// and ended within one pause never happens; every caller gets a lease, a timeout or (if its
// stop token fired) cancelled; the books balance in every snapshot, and nothing is live after
// close().
TEST_CASE("set_max_size and pause under load: within the limit, nothing lent while paused") {
  reset_globals();
  static std::atomic<long> live{0};
  static std::atomic<int> made{0};
  struct plain {
    plain() : id(made.fetch_add(1) + 1) { live.fetch_add(1); }
    plain(plain&& o) noexcept : id(o.id), counted(std::exchange(o.counted, false)) {}
    plain(const plain&) = delete;
    auto operator=(const plain&) -> plain& = delete;
    auto operator=(plain&&) -> plain& = delete;
    ~plain() {
      if (counted) live.fetch_sub(1);
    }
    int id;
    bool counted = true;
  };
  // The stop sources of the cancellable acquires in flight, for the controller to fire.
  std::mutex stops_mutex;
  std::vector<std::stop_source*> stops;
  std::atomic<std::uint64_t> cancelled{0};
  std::atomic<std::uint64_t> evictions{0};
  const auto run_for = POOL_STRESS_SANITIZED ? 1500ms : 3000ms;
  std::atomic<std::size_t> limit{4};
  std::atomic<std::uint64_t> resize_seq{0};  // odd while set_max_size() runs
  std::atomic<std::uint64_t> pause_seq{0};   // odd from pause()'s return to before resume()
  std::atomic<long> out_now{0};  // leases out: counted after acquire, uncounted before return
  std::atomic<bool> done{false};
  std::atomic<std::uint64_t> lent{0};
  std::atomic<std::uint64_t> timed_out{0};
  std::atomic<std::uint64_t> resizes{0};
  std::atomic<std::uint64_t> pauses{0};
  {
    respool::pool pool{[] { return plain{}; },
                       respool::pool_options{.max_size = 4, .acquire_timeout = 50ms,
                                             .idle_timeout = 3ms, .housekeeping_interval = 1ms,
                                             .name = "resize-stress"}};
    std::vector<std::thread> workers;
    for (int i = 0; i < thread_count; ++i)
      workers.emplace_back([&] {
        while (!done.load()) {
          // The sequence first: a limit read after it is at least as new, so if no resize
          // began by the check below, `lim` is the limit that stood throughout.
          const auto rs = resize_seq.load();
          const auto lim = limit.load();
          const auto ps = pause_seq.load();
          std::error_code ec;
          const auto timeout = std::chrono::milliseconds(pick(0, 4));
          respool::lease<plain> l;
          if (pick(0, 7) == 0) {
            std::stop_source src;
            {
              std::lock_guard lk(stops_mutex);
              stops.push_back(&src);
            }
            l = pool.acquire(src.get_token(), timeout, ec);
            std::lock_guard lk(stops_mutex);
            stops.erase(std::find(stops.begin(), stops.end(), &src));
          } else {
            l = pool.acquire(timeout, ec);
          }
          if (!l) {
            if (ec == respool::errc::cancelled) {
              cancelled.fetch_add(1);
            } else if (ec != respool::errc::timeout) {
              g_violations.add("unexpected error: " + ec.message());
            }
            timed_out.fetch_add(1);
            continue;
          }
          const auto n = out_now.fetch_add(1) + 1;
          if (rs % 2 == 0 && resize_seq.load() == rs && n > static_cast<long>(lim))
            g_violations.add(std::to_string(n) + " leases out, above the limit " +
                             std::to_string(lim) + " that stood during the acquire");
          if (ps % 2 == 1 && pause_seq.load() == ps) g_violations.add("lent while paused");
          lent.fetch_add(1);
          if (pick(0, 9) == 0) std::this_thread::sleep_for(std::chrono::microseconds(pick(10, 200)));
          out_now.fetch_sub(1);
          if (pick(0, 19) == 0) l.discard();
        }
      });
    const auto end = steady::now() + run_for;
    while (steady::now() < end) {
      const auto action = pick(0, 9);
      if (action < 5) {
        const std::size_t n = pick(1, 12);
        resize_seq.fetch_add(1);
        if (n > limit.load()) limit.store(n);  // growing: the bound first
        pool.set_max_size(n);
        limit.store(n);  // shrinking: the bound once the call returned
        resize_seq.fetch_add(1);
        resizes.fetch_add(1);
      } else if (action == 7) {
        pool.evict_if([](const plain& r) { return r.id % 3 == 0; });
        evictions.fetch_add(1);
      } else if (action == 8) {
        std::lock_guard lk(stops_mutex);
        if (!stops.empty()) stops[pick(0, static_cast<unsigned>(stops.size() - 1))]->request_stop();
      } else {
        pool.pause();
        pause_seq.fetch_add(1);
        std::this_thread::sleep_for(std::chrono::microseconds(pick(100, 3'000)));
        pause_seq.fetch_add(1);
        pool.resume();
        pauses.fetch_add(1);
      }
      const auto st = pool.stats();
      if (st.created - st.destroyed() != st.total - st.creating)
        g_violations.add("created - destroyed != total - creating");
      std::this_thread::sleep_for(std::chrono::microseconds(pick(100, 2'000)));
    }
    done = true;
    for (auto& w : workers) w.join();
    pool.close();
    const auto st = pool.stats();
    if (st.total != 0) g_violations.add("total " + std::to_string(st.total) + " after close()");
  }
  std::printf("pool_stress: resize/pause: %llu lent, %llu timed out or cancelled (%llu "
              "cancelled), %llu resizes, %llu pauses, %llu evict_if\n",
              static_cast<unsigned long long>(lent.load()),
              static_cast<unsigned long long>(timed_out.load()),
              static_cast<unsigned long long>(cancelled.load()),
              static_cast<unsigned long long>(resizes.load()),
              static_cast<unsigned long long>(pauses.load()),
              static_cast<unsigned long long>(evictions.load()));
  std::fflush(stdout);
  INFO("first violation: " << g_violations.first());
  CHECK(g_violations.count() == 0);
  CHECK(live.load() == 0);
  CHECK(lent.load() > 1'000);
  CHECK(resizes.load() > 10);
  CHECK(pauses.load() > 5);
  CHECK(evictions.load() > 5);
}
