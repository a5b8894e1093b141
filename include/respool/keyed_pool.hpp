#pragma once
/**
 * `respool::keyed_pool`: one pool per key (a host, a tenant, a transaction lane) under a total
 * cap across keys.
 *
 * **Example**:
 * ```cpp
 * respool::keyed_pool db{
 *     [](const std::string& host) { return connect(host); },
 *     respool::keyed_pool_options<std::string>{
 *         .options_for = [](const std::string& lane) {
 *           return respool::pool_options{.max_size = lane == "long" ? 4u : 8u, .name = lane};
 *         },
 *         .max_total = 10,                  // across every key
 *         .key_idle_timeout = 5min}};       // an unused key's sub-pool is closed after this
 * {
 *   respool::lease c = db.acquire("long");  // the ordinary respool::lease<R>
 *   c->query("SELECT ...");
 * }
 * auto maybe = db.try_acquire("short");     // never waits
 * std::error_code ec;
 * auto l = db.acquire("short", 50ms, ec);   // non-throwing form
 * db.stats("long");  db.stats();            // one key; totals across keys
 * ```
 *
 * How it works (decisions where issue #12 is silent):
 * - Each key gets a `respool::pool` on its first acquire, with the key's `pool_options`
 *   (`options_for(key)`, else `key_options`); its invalid options throw
 *   `std::invalid_argument` from that acquire. A key's sub-pool lives until the key has gone
 *   `key_idle_timeout` without an acquire and has nothing in use, being created or waited for;
 *   then it is closed (its idle resources with it, `destroy_reason::closed`) and its counters
 *   are kept in `stats()`'s totals. The next acquire for the key starts a new sub-pool.
 * - `max_total` bounds resources alive plus factory calls in flight across every key
 *   (detail/key_budget.hpp, K1). A key that needs one more when the total is reached waits in
 *   one FIFO of creations across keys (K2): the oldest idle resource of another key is closed
 *   to make room; with none idle, the next lease returned to another key is destroyed instead
 *   of reset, and its place goes to the waiting key (K3); both count as
 *   `destroy_reason::reclaimed` in that key's stats. A creation waits for a place at most its key's `acquire_timeout`, and gives up when no caller waits for it any
 *   more (a try_acquire()'s spare, or min_idle upkeep, beyond the budget): the factory call then
 *   fails with `errc::exhausted`, which the sub-pool counts as a creation failure.
 * - Background threads: the sub-pools run no housekeeper of their own (their
 *   `housekeeping_interval` is forced to 0); this pool's one housekeeper runs each sub-pool's
 *   `run_maintenance()` every `housekeeping_interval`, so a key's keepalive pings and idle
 *   timeouts run on it, one key after another. Factory calls, destructors and events run on
 *   one set of threads all keys share (detail/worker_threads.hpp): as many as there is work at
 *   once, each lingering 2 s for the next key's work, so a thousand keys do not keep a thousand
 *   threads.
 * - `stats(key)` of a key with no sub-pool (never used, or retired) is an empty `pool_stats`
 *   (all zero), not an error. `stats()` sums the keys' snapshots (each consistent, the sum not
 *   one instant), with `max_size = max_total`.
 * - `evict(key)` is that key's `evict_all()` (its sub-pool stays); `evict_all()` does it for
 *   every key. `close()` closes every sub-pool; later acquires fail with `errc::closed`.
 *
 * Thread safety: every member may be called from any thread. The factory is shared by every
 * key and may run on several threads at once (different keys, or one key's
 * `create_concurrency`); so may the validator and resetter, each key having its own copy.
 */
#include <algorithm>
#include <atomic>
#include <chrono>
#include <concepts>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <shared_mutex>
#include <source_location>
#include <stdexcept>
#include <string>
#include <string_view>
#include <system_error>
#include <thread>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

#include "concepts.hpp"
#include "detail/key_budget.hpp"
#include "errors.hpp"
#include "lease.hpp"
#include "options.hpp"
#include "pool.hpp"
#include "stats.hpp"
#include "version.hpp"

RESPOOL_NAMESPACE_BEGIN

/// How a keyed_pool sizes its keys and itself. An aggregate for designated initialisers;
/// `validate()` (also called by the constructor) throws `std::invalid_argument` naming the field.
template <class Key>
struct keyed_pool_options {
  using duration = std::chrono::milliseconds;

  /// Every key's sub-pool options, unless `options_for` is set. `housekeeping_interval` is
  /// ignored (this pool's own runs every key's housekeeping); a `name` left at "pool" becomes
  /// "<name>[<key>]" for keys that are strings or numbers.
  pool_options key_options{};
  /// A key's sub-pool options, asked once per sub-pool (at the key's first acquire, or the first
  /// after its sub-pool was retired); its result is validated then.
  std::function<pool_options(const Key&)> options_for{};
  /// Most resources alive (idle + in use + being created) across every key, at any instant.
  std::size_t max_total = 64;
  /// A key's sub-pool is closed after this long without an acquire, once nothing of it is in
  /// use, being created or waited for (to within `housekeeping_interval`); 0 keeps keys until
  /// `close()`.
  duration key_idle_timeout = std::chrono::minutes(10);
  /// The one housekeeper's period: every sub-pool's `run_maintenance()` and the check for
  /// unused keys. 0 runs no thread: call `keyed_pool::run_maintenance()` yourself.
  duration housekeeping_interval = std::chrono::milliseconds(100);
  /// Names the keyed pool in errors.
  std::string name = "keyed_pool";

  /// Throws `std::invalid_argument` naming the first bad field.
  void validate() const {
    auto fail = [this](const char* field, const char* why) {
      throw std::invalid_argument("respool keyed_pool_options for '" + name + "': " + field +
                                  " " + why);
    };
    if (max_total == 0) fail("max_total", "must be at least 1");
    if (key_idle_timeout < duration::zero())
      fail("key_idle_timeout", "must not be negative (0 keeps keys until close())");
    if (housekeeping_interval < duration::zero())
      fail("housekeeping_interval", "must not be negative (0: no background housekeeping)");
    if (housekeeping_interval > pool_options::max_housekeeping_interval)
      fail("housekeeping_interval", "must be at most 1 hour (0: no background housekeeping)");
    if (name.empty()) fail("name", "must not be empty");
    if (!options_for) key_options.validate();  // per-key results are validated per key
  }
};

namespace detail {
// The factory each key's sub-pool calls: a place in the budget first (K1), then the user's
// factory with the key.
template <class Key, class Factory>
struct key_factory {
  std::shared_ptr<Factory> make;
  Key key;
  std::shared_ptr<key_budget> budget;
  std::shared_ptr<key_demand> demand;
  std::int64_t wait_ns = 0;  // the key's acquire_timeout
  std::shared_ptr<detail::worker_threads> threads;  // every key's background work runs here

  [[nodiscard]] auto worker_threads() const -> std::shared_ptr<detail::worker_threads> { return threads; }

  auto create() -> keyed_resource_t<Factory, Key> {
    budget->admit(*demand, wait_ns);
    try {
      return invoke_keyed_create(*make, key);
    } catch (...) {
      budget->release();
      throw;
    }
  }
};

// The resetter each key's sub-pool calls on return: the resource is given up for another key's
// queued creation (K3; the pool asks reclaim() first and closes it as reclaimed), else the
// user's resetter runs.
template <class Resetter>
struct key_resetter {
  [[no_unique_address]] Resetter inner;
  std::shared_ptr<key_budget> budget;
  std::shared_ptr<key_demand> demand;

  auto reclaim(std::uint32_t /*origin*/) -> std::optional<destroy_reason> {
    if (budget->give_up_for(demand.get())) return destroy_reason::reclaimed;
    return std::nullopt;
  }

  template <class R>
  auto reset(R& r) -> bool {
    return invoke_reset(inner, r);  // no_reset's is `true`, inlined
  }
};
template <class Resetter>
struct resetter_reclaims<key_resetter<Resetter>> : std::true_type {};

template <class Key>
auto key_text(const Key& k) -> std::string {
  if constexpr (std::is_convertible_v<const Key&, std::string_view>) {
    return std::string(std::string_view(k));
  } else if constexpr (std::is_arithmetic_v<Key>) {
    return std::to_string(k);
  } else {
    return {};
  }
}

// Adds one key's snapshot to a total.
inline void add_stats(pool_stats& t, const pool_stats& s, bool counts) {
  if (counts) {
    t.paused = t.paused || s.paused;
    t.total += s.total;
    t.idle += s.idle;
    t.in_use += s.in_use;
    t.creating += s.creating;
    t.waiters += s.waiters;
    t.min_idle += s.min_idle;
    t.limit += s.limit;
  }
  t.acquired += s.acquired;
  t.created += s.created;
  for (std::size_t i = 0; i < destroy_reason_count; ++i) t.destroyed_by[i] += s.destroyed_by[i];
  t.timeouts += s.timeouts;
  t.create_failures += s.create_failures;
  t.fast_failures += s.fast_failures;
  t.shed += s.shed;
  t.cancelled += s.cancelled;
  for (std::size_t b = 0; b < wait_histogram::bucket_count; ++b) {
    t.wait.buckets[b] += s.wait.buckets[b];
    t.use_time.buckets[b] += s.use_time.buckets[b];
    t.create_time.buckets[b] += s.create_time.buckets[b];
  }
  t.wait_max = std::max(t.wait_max, s.wait_max);
}
}  // namespace detail

template <class Key, class Factory, class Validator = always_valid, class Resetter = no_reset,
          class Clock = std::chrono::steady_clock>
class keyed_pool {
  static_assert(keyed_factory<Factory, Key>,
                "respool::keyed_pool: the factory must have a member `R create(const Key&)` or be "
                "callable as `R f(const Key&)`, returning a movable, destructible resource R "
                "(for example `[](const std::string& host) { return connect(host); }`)");
  static_assert(std::is_copy_constructible_v<Key> && std::equality_comparable<Key> &&
                    std::is_default_constructible_v<std::hash<Key>>,
                "respool::keyed_pool: the key must be copyable, comparable with == and hashable "
                "with std::hash<Key>");

  using sub_factory = detail::key_factory<Key, Factory>;
  using sub_resetter = detail::key_resetter<Resetter>;
  using sub_pool = pool<sub_factory, Validator, sub_resetter, Clock>;

 public:
  using key_type = Key;
  using resource_type = keyed_resource_t<Factory, Key>;
  using lease_type = lease<resource_type>;
  using options_type = keyed_pool_options<Key>;
  using clock = Clock;

  /// Validates the options (`std::invalid_argument` naming the field) and starts the
  /// housekeeper; no sub-pool exists until its key's first acquire.
  explicit keyed_pool(Factory f, options_type options = {}, Validator v = {}, Resetter s = {})
      : st_(std::make_shared<state>(std::move(f), checked(std::move(options)), std::move(v),
                                    std::move(s))) {
    if (st_->opts.housekeeping_interval > options_type::duration::zero())
      housekeeper_ = std::thread([st = st_] { st->housekeeper_loop(); });
  }

  keyed_pool(const keyed_pool&) = delete;
  auto operator=(const keyed_pool&) -> keyed_pool& = delete;

  /// Closes every sub-pool. Leases still out stay valid; their resources are destroyed on return.
  ~keyed_pool() { close(); }

  /// Waits up to the key's `acquire_timeout`; throws `respool::error` as `pool::acquire` does
  /// (`closed` once this pool is closed).
  [[nodiscard]] auto acquire(const Key& key,
                             std::source_location where = std::source_location::current())
      -> lease_type {
    return with_key(key, [&](sub_pool& p) { return p.acquire(where); });
  }

  template <class Rep, class Period>
  [[nodiscard]] auto acquire(const Key& key, std::chrono::duration<Rep, Period> timeout,
                             std::source_location where = std::source_location::current())
      -> lease_type {
    return with_key(key, [&](sub_pool& p) { return p.acquire(timeout, where); });
  }

  /// Non-throwing form: on failure an empty lease, `ec` set (a `respool::errc`). Invalid
  /// per-key options still throw `std::invalid_argument` (a programming error, not a failure).
  template <class Rep, class Period>
  [[nodiscard]] auto acquire(const Key& key, std::chrono::duration<Rep, Period> timeout,
                             std::error_code& ec,
                             std::source_location where = std::source_location::current())
      -> lease_type {
    auto e = st_->enter(key);
    if (!e) {
      ec = make_error_code(errc::closed);
      return {};
    }
    caller_guard g{*e->demand};
    return e->pool.acquire(timeout, ec, where);
  }

  /// An idle resource of the key now, or nothing; never waits (nothing once closed).
  [[nodiscard]] auto try_acquire(const Key& key,
                                 std::source_location where = std::source_location::current())
      -> std::optional<lease_type> {
    auto e = st_->enter(key);
    if (!e) return std::nullopt;
    caller_guard g{*e->demand};
    return e->pool.try_acquire(where);
  }

  /// One key's snapshot; all zero for a key with no sub-pool (never used, or retired).
  [[nodiscard]] auto stats(const Key& key) const -> pool_stats {
    auto e = st_->find(key);
    return e ? e->pool.stats() : pool_stats{};
  }

  /// Totals across keys: counts of the live sub-pools, counters also of retired ones;
  /// `max_size` is `max_total`.
  [[nodiscard]] auto stats() const -> pool_stats { return st_->totals(); }

  /// How many keys have a sub-pool now.
  [[nodiscard]] auto key_count() const -> std::size_t {
    std::shared_lock lk(st_->map_mutex);
    return st_->map.size();
  }

  /// Failover for one key: its idle resources closed now, leased ones on return (its sub-pool's
  /// `evict_all()`). No-op for a key with no sub-pool.
  void evict(const Key& key) {
    if (auto e = st_->find(key)) e->pool.evict_all();
  }

  /// `evict(key)` for every key.
  void evict_all() {
    for (auto& e : st_->snapshot()) e->pool.evict_all();
  }

  /// Refuses new acquires (`errc::closed`), fails queued creations, closes every sub-pool and
  /// stops the housekeeper. Idempotent.
  void close() {
    st_->close();
    if (housekeeper_.joinable()) {
      if (housekeeper_.get_id() == std::this_thread::get_id())
        housekeeper_.detach();  // close() from an event callback on the housekeeper
      else
        housekeeper_.join();
    }
  }

  /// One housekeeping pass on this thread: every sub-pool's `run_maintenance()`, then unused
  /// keys retired. With `housekeeping_interval = 0` (or a manual clock) call it yourself.
  void run_maintenance() { st_->maintain(); }

  /// The options as given.
  [[nodiscard]] auto options() const -> const options_type& { return st_->opts; }

 private:
  struct entry {
    std::shared_ptr<detail::key_demand> demand;
    sub_pool pool;
    entry(std::shared_ptr<detail::key_demand> d, sub_factory f, pool_options o, Validator v,
          sub_resetter s)
        : demand(std::move(d)), pool(std::move(f), std::move(o), std::move(v), std::move(s)) {}
  };
  using entry_ptr = std::shared_ptr<entry>;

  // Counts a caller in (done by enter(), under the shared lock) and out.
  struct caller_guard {
    detail::key_demand& d;
    explicit caller_guard(detail::key_demand& demand) noexcept : d(demand) {}
    caller_guard(const caller_guard&) = delete;
    auto operator=(const caller_guard&) -> caller_guard& = delete;
    ~caller_guard() { d.callers.fetch_sub(1, std::memory_order_release); }  // pairs: K5 in retire
  };

  // Everything the sub-pools' factories, resetters and events may reach after this handle is
  // gone (a lease out, a factory call in flight) lives here, shared. The map's entries own the
  // sub-pools, whose factories point back here: close() empties the map, which breaks the cycle.
  //
  // Invariants (besides K1-K5 in detail/key_budget.hpp):
  //  M1. map is guarded by map_mutex: shared to find a key's sub-pool (and count a caller in),
  //      exclusive to add or remove one. No sub-pool is built, closed or destroyed under it.
  //  M2. A sub-pool is removed (retired) only under the exclusive lock, with no caller counted
  //      in and nothing in use, being created or waiting: so no lease of it is out, and closing
  //      it releases all its places in the budget (their destroyed events).
  //  M3. closed is set under the exclusive lock; enter() reads it under the lock, so no
  //      sub-pool is added after close() took the map.
  //  M4. A sub-pool leaving the map enters `retiring` in the same critical section, and leaves
  //      it when its counters are added to `retired` (both under retired_mutex): stats() sees
  //      each sub-pool's counters exactly once.
  struct state final : detail::key_budget, std::enable_shared_from_this<state> {
    state(Factory f, options_type o, Validator v, Resetter s)
        : detail::key_budget(o.max_total, o.name),
          make(std::make_shared<Factory>(std::move(f))),
          opts(std::move(o)),
          validator(std::move(v)),
          resetter(std::move(s)) {
      coarse_now.store(clock_.now(), std::memory_order_relaxed);
    }

    // The key's sub-pool with a caller counted in, built on first use; null once closed.
    auto enter(const Key& key) -> entry_ptr {
      {
        std::shared_lock lk(map_mutex);
        if (closed) return nullptr;
        if (auto it = map.find(key); it != map.end()) return counted_in(it->second);
      }
      // Built outside the lock (M1): a sub-pool's constructor may wait for min_idle.
      auto fresh = make_entry(key);
      entry_ptr found;
      {
        std::unique_lock lk(map_mutex);
        if (!closed) found = counted_in(map.try_emplace(key, fresh).first->second);
      }
      return found;  // `fresh`, if another thread's won or we closed meanwhile, is closed here
    }

    auto find(const Key& key) const -> entry_ptr {
      std::shared_lock lk(map_mutex);
      auto it = map.find(key);
      return it == map.end() ? nullptr : it->second;
    }

    auto snapshot() const -> std::vector<entry_ptr> {
      std::vector<entry_ptr> out;
      std::shared_lock lk(map_mutex);
      out.reserve(map.size());
      for (const auto& [k, e] : map) out.push_back(e);
      return out;
    }

    auto totals() const -> pool_stats {
      // M4: each sub-pool is read once, from the map, the retiring list, or the retired sums.
      pool_stats t;
      std::vector<entry_ptr> live;
      {
        std::shared_lock lk(map_mutex);
        std::lock_guard rl(retired_mutex);
        t = retired;
        live.reserve(map.size() + retiring.size());
        for (const auto& [k, e] : map) live.push_back(e);
        live.insert(live.end(), retiring.begin(), retiring.end());
      }
      for (const auto& e : live) detail::add_stats(t, e->pool.stats(), true);
      t.max_size = max_total();
      t.limit = std::min(t.limit, t.max_size);  // the keys' limits, at most max_total at once
      t.wait_p50 = t.wait.percentile(0.50);
      t.wait_p99 = t.wait.percentile(0.99);
      return t;
    }

    void maintain() {
      coarse_now.store(clock_.now(), std::memory_order_relaxed);
      for (auto& e : snapshot()) e->pool.run_maintenance();
      retire_unused_keys();
    }

    void retire_unused_keys() {
      const auto idle_for = detail::saturating_ns(opts.key_idle_timeout);
      if (idle_for == 0) return;
      const auto now = clock_.now();
      std::vector<entry_ptr> gone;
      {
        std::unique_lock lk(map_mutex);
        for (auto it = map.begin(); it != map.end();) {
          auto& d = *it->second->demand;
          // M2. acquire: pairs with caller_guard's release (its lease is counted in in_use).
          if (now - d.last_used.load(std::memory_order_relaxed) < idle_for ||
              d.callers.load(std::memory_order_acquire) != 0) {
            ++it;
            continue;
          }
          const auto s = it->second->pool.stats();
          if (s.in_use != 0 || s.creating != 0 || s.waiters != 0) {
            ++it;
            continue;
          }
          gone.push_back(std::move(it->second));
          it = map.erase(it);
        }
        std::lock_guard rl(retired_mutex);  // M4
        retiring.insert(retiring.end(), gone.begin(), gone.end());
      }
      for (auto& e : gone) retire(*e);
    }

    void close() {
      std::vector<entry_ptr> all;
      {
        std::unique_lock lk(map_mutex);
        if (closed) return;
        closed = true;  // M3
        for (auto& [k, e] : map) all.push_back(std::move(e));
        map.clear();
        std::lock_guard rl(retired_mutex);  // M4
        retiring.insert(retiring.end(), all.begin(), all.end());
      }
      {
        std::lock_guard lk(hk_mutex);
        stopping = true;
      }
      hk_cv.notify_all();
      // The sub-pools first, so that their waiters fail with `closed`: a queued creation that
      // failed first (the budget closed) could trip a sub-pool's breaker and give its waiters
      // `create_failed`. A key's queued creation gives up once its callers are gone (K4,
      // within a poll), so each close is quick.
      for (auto& e : all) retire(*e);
      key_budget::close();  // anything still queued fails with `closed`
    }

    void housekeeper_loop() {
      const auto period = opts.housekeeping_interval;
      std::unique_lock lk(hk_mutex);
      while (!stopping) {
        hk_cv.wait_for(lk, period);
        if (stopping) break;
        lk.unlock();
        maintain();
        lk.lock();
      }
    }

   private:
    auto counted_in(const entry_ptr& e) -> entry_ptr {
      e->demand->callers.fetch_add(1, std::memory_order_relaxed);  // under the map lock (M2)
      e->demand->last_used.store(coarse_now.load(std::memory_order_relaxed),
                                 std::memory_order_relaxed);
      return e;
    }

    auto make_entry(const Key& key) -> entry_ptr {
      pool_options o = opts.options_for ? opts.options_for(key) : opts.key_options;
      o.housekeeping_interval = pool_options::duration::zero();  // ours runs it
      if (o.name == pool_options{}.name) {
        if (auto text = detail::key_text(key); !text.empty()) o.name = opts.name + "[" + text + "]";
      }
      auto user_event = std::move(o.on_event);
      o.detect_nested_acquire = o.detect_nested_acquire && static_cast<bool>(user_event);
      std::shared_ptr<detail::key_budget> budget = this->shared_from_this();
      // Every destroyed resource gives its place back (K1); the user's callback follows.
      o.on_event = [budget, user = std::move(user_event)](const pool_event& e) {
        if (e.kind == event_kind::destroyed) budget->release();
        if (user) user(e);
      };
      auto demand = std::make_shared<detail::key_demand>();
      demand->last_used.store(coarse_now.load(std::memory_order_relaxed), std::memory_order_relaxed);
      const auto wait_ns = detail::saturating_ns(o.acquire_timeout);
      return std::make_shared<entry>(demand, sub_factory{make, key, budget, demand, wait_ns, threads},
                                     std::move(o), validator, sub_resetter{resetter, budget, demand});
    }

    // The oldest idle resource of another key, closed (K3).
    auto reclaim_idle_elsewhere(const detail::key_demand* owner) noexcept -> bool override {
      try {
        for (int attempt = 0; attempt < 4; ++attempt) {
          entry_ptr best;
          std::chrono::nanoseconds best_age{-1};
          for (auto& e : snapshot()) {
            if (e->demand.get() == owner) continue;
            if (auto age = e->pool.oldest_idle_age(); age && *age > best_age) {
              best_age = *age;
              best = e;
            }
          }
          if (!best) return false;
          if (best->pool.retire_oldest_idle()) return true;
        }
      } catch (...) {  // no memory for the snapshot: no room made now; the caller polls again
      }
      return false;
    }

    // A sub-pool leaving the map: closed (its idle resources with it), counters kept.
    void retire(entry& e) {
      e.pool.close();
      const auto s = e.pool.stats();
      std::lock_guard lk(retired_mutex);
      detail::add_stats(retired, s, false);
      std::erase_if(retiring, [&](const entry_ptr& r) { return r.get() == &e; });  // M4
    }

   public:
    std::shared_ptr<Factory> make;
    std::shared_ptr<detail::worker_threads> threads = std::make_shared<detail::worker_threads>();
    const options_type opts;
    Validator validator;
    Resetter resetter;
    const detail::pool_clock<Clock> clock_;
    std::atomic<std::int64_t> coarse_now{0};  // the last maintenance pass; relaxed: a hint

    mutable std::shared_mutex map_mutex;  // M1
    std::unordered_map<Key, entry_ptr> map;
    bool closed = false;  // M3

    // Guarded by retired_mutex (taken after map_mutex when both are held):
    mutable std::mutex retired_mutex;
    pool_stats retired;               // counters of retired sub-pools
    std::vector<entry_ptr> retiring;  // out of the map, not yet closed and summed (M4)

    std::mutex hk_mutex;
    std::condition_variable hk_cv;
    bool stopping = false;  // guarded by hk_mutex
  };

  static auto checked(options_type o) -> options_type {
    o.validate();
    return o;
  }

  template <class Op>
  auto with_key(const Key& key, Op&& op) -> lease_type {
    auto e = st_->enter(key);
    if (!e)
      throw error(errc::closed, "respool keyed_pool '" + st_->opts.name + "': closed");
    caller_guard g{*e->demand};
    return std::forward<Op>(op)(e->pool);
  }

  std::shared_ptr<state> st_;
  std::thread housekeeper_;
};

template <class K, class F>
keyed_pool(F, keyed_pool_options<K>) -> keyed_pool<K, F>;
template <class K, class F, class V>
keyed_pool(F, keyed_pool_options<K>, V) -> keyed_pool<K, F, V>;
template <class K, class F, class V, class S>
keyed_pool(F, keyed_pool_options<K>, V, S) -> keyed_pool<K, F, V, S>;

RESPOOL_NAMESPACE_END
