#pragma once
// The pool's mechanism: an array of slots (which may grow, never shrink or move), each with an atomic state, an index of the idle
// ones, and one control word (closed, eviction generation, waiter count). It knows nothing of
// factories, lifetimes, clocks or threads; pool_core.hpp builds the policies on it.
//
// Slot states, and who moves a slot from one to another ("owner": whoever moved it into its
// current state; only the owner touches the resource):
//
//   | from     | to       | by                                    | how                          |
//   |----------|----------|---------------------------------------|------------------------------|
//   | empty    | creating | a pool thread starting a creation     | store, pool lock held        |
//   | creating | idle     | its creator, nobody waiting           | make_idle                    |
//   | creating | in_use   | its creator, handing to a waiter      | hand_over                    |
//   | creating | empty    | its creator, the factory threw        | release_empty, lock held     |
//   | creating | reserved | its creator, the factory returned     | store, lock held             |
//   | idle     | in_use   | anyone acquiring                      | claim: CAS, no lock          |
//   | idle     | reserved | housekeeping, eviction, close         | try_reserve: CAS, no lock    |
//   | in_use   | returning| the holder returning it               | begin_return: CAS, no lock   |
//   | returning| idle     | the same holder, done with the pool   | finish_return: store         |
//   | returning| in_use   | the same holder, handing to a waiter  | hand_over                    |
//   | returning| reserved | the same holder, the pool was closed  | store                        |
//   | in_use   | in_use   | the holder handing it to a waiter     | hand_over                    |
//   | in_use   | reserved | the holder retiring it                | reserve_owned                |
//   | reserved | idle     | its owner after a keepalive check     | make_idle                    |
//   | reserved | in_use   | its owner handing it to a waiter      | hand_over                    |
//   | reserved | empty    | its owner once the resource is gone   | release_empty, lock held     |
//
// `returning` is `idle | returning_flag`: idle in all but name, still owned by the holder that
// returned it while it finishes its part of S4; nobody else may claim or reserve it. It exists
// so that the pool's memory outlives that last step: destroy_handle waits for no slot to be
// returning before it lets the pool go (a return touches the control word after its CAS).
//
// Flag `orphaned` (only on in_use): the pool's handle was destroyed while the slot was leased;
// the returning holder destroys the resource and drops the pool's last reference. Set by CAS on
// an in_use word, so a holder's return CAS (expecting plain in_use) fails and sees it.
//
// Invariants (the proofs in pool_core.hpp cite them by number):
//  S1. A slot has exactly one owner in every state but idle and empty; an idle slot is owned by
//      nobody and is taken only by a successful CAS from idle, so no two threads own it at once.
//  S2. live = slots not empty = idle + in_use + creating + reserved, and it never exceeds the
//      table's size (there are no more slots than that).
//  S3. An idle or returning slot's bit in the idle index is set, or a thread that saw it idle
//      is about to claim it: every step that leaves an idle slot unmarked is followed by a claim
//      attempt on it by the thread that took the mark away (idle_index::find), and a returning
//      slot's mark is never taken away.
//  S4. (Wake-up.) A thread that makes a slot idle sets its bit, then reads the waiter count; a
//      waiter announces itself in the waiter count, then scans the bits. All seq_cst, so either
//      the returner sees the waiter (and wakes it), or the waiter's scan meets the slot, idle
//      (and claims it) or returning (and scans again instead of sleeping).
#include <array>
#include <atomic>
#include <bit>
#include <new>
#include <cstdint>
#include <memory>
#include <thread>

#include "../version.hpp"
#include "slot.hpp"

// The fast path inlined into its callers whatever the optimiser's budget says, and the rest of
// it kept out of them (inlined, a scan's loop made the fast path spill its registers).
#if defined(__GNUC__) || defined(__clang__)
#define RESPOOL_DETAIL_HOT [[gnu::always_inline]] inline
#define RESPOOL_DETAIL_OUT_OF_LINE [[gnu::noinline]]
#else
#define RESPOOL_DETAIL_HOT inline
#define RESPOOL_DETAIL_OUT_OF_LINE
#endif

RESPOOL_NAMESPACE_BEGIN
namespace detail {

namespace slot_state {
inline constexpr std::uint32_t empty = 0;     // no resource; free capacity
inline constexpr std::uint32_t creating = 1;  // a pool thread is making a resource here
inline constexpr std::uint32_t idle = 2;      // ready: claimed by CAS idle -> in_use
inline constexpr std::uint32_t in_use = 3;    // leased
inline constexpr std::uint32_t reserved = 4;  // the pool holds it: checking, or about to destroy
inline constexpr std::uint32_t mask = 0xffU;
inline constexpr std::uint32_t orphaned = 1U << 8U;   // see the top
inline constexpr std::uint32_t returning_flag = 1U << 9U;
inline constexpr std::uint32_t returning = idle | returning_flag;  // see the top
}  // namespace slot_state

// Which slots may be idle, as bits, with a summary bit per 64-bit word, so that finding an idle
// slot costs a few loads whatever the table's size (64 * 64 = 4,096 slots per summary word).
// The bits are hints: a set bit may be stale (its slot was claimed through a thread's hint,
// which does not clear it), and find() clears stale bits as it meets them. Invariant S3 is what
// makes the hints safe: a clearer always re-tries the slot after clearing.
class idle_index {
 public:
  static constexpr std::uint32_t npos = 0xffffffffU;

  explicit idle_index(std::size_t slots)
      : words_count_((slots + 63) / 64),
        summary_count_((words_count_ + 63) / 64),
        words_(std::make_unique<std::atomic<std::uint64_t>[]>(words_count_)),
        summary_(std::make_unique<std::atomic<std::uint64_t>[]>(summary_count_)) {}

  /// Marks slot `i` idle. Call after the state store that made it idle (S3, S4).
  void publish(std::uint32_t i) noexcept {
    mark(words_[i / 64], bit(i));
    mark(summary_[i / 4096], bit(i / 64));
  }

  enum class probe : std::uint8_t { taken, busy, returning };
  struct scan_notes {
    bool republished = false;   // restored a summary bit: do the returner's half of S4
    bool saw_returning = false;  // met a returning slot: scan again before sleeping (S4)
  };

  /// Calls `try_claim(i)` (returning a `probe`) on candidate idle slots, starting with the word
  /// that holds `start`, until one is taken; returns its index, or npos if nothing was idle.
  template <class TryClaim>
  auto find(std::uint32_t start, TryClaim&& try_claim, scan_notes& notes) noexcept
      -> std::uint32_t {
    // Stale marks are cleared only past the first few met in one scan: a handful costs a
    // relaxed load each, while clearing one costs a read-modify-write here and another when
    // its slot comes back. Many (a big pool with many leases out) are cleared as they are met,
    // so a scan stays a few loads whatever the size.
    unsigned stale_tolerated = 8;
    const std::size_t first_summary = (start / 64) / 64;
    for (std::size_t k = 0; k < summary_count_; ++k) {
      const std::size_t sw = (first_summary + k) % summary_count_;
      // seq_cst loads here and below: the waiter's half of S4 (after its announcement).
      std::uint64_t sbits = summary_[sw].load(std::memory_order_seq_cst);
      while (sbits != 0) {
        const auto b = static_cast<std::uint32_t>(std::countr_zero(sbits));
        sbits &= sbits - 1;
        const std::size_t w = sw * 64 + b;
        std::uint64_t bits = words_[w].load(std::memory_order_seq_cst);
        if (bits == 0) {
          // Stale summary bit. Clear it, then look again: a publisher that saw it still set
          // skipped setting it, and its word bit is visible to this second load.
          summary_[sw].fetch_and(~bit(b), std::memory_order_seq_cst);
          bits = words_[w].load(std::memory_order_seq_cst);
          if (bits == 0) continue;
          summary_[sw].fetch_or(bit(b), std::memory_order_seq_cst);
          notes.republished = true;
        }
        while (bits != 0) {
          const auto j = static_cast<std::uint32_t>(std::countr_zero(bits));
          bits &= bits - 1;
          const auto i = static_cast<std::uint32_t>(w * 64 + j);
          auto p = try_claim(i);
          if (p == probe::taken) return i;
          if (p == probe::returning) {  // about to be idle: keep its mark (S3)
            notes.saw_returning = true;
            continue;
          }
          if (stale_tolerated > 0) {
            --stale_tolerated;
            continue;
          }
          // Stale: clear, then try once more (S3). A returner that saw the bit still set did
          // not set it again; its state is visible to this retry (all seq_cst).
          words_[w].fetch_and(~bit(j), std::memory_order_seq_cst);
          p = try_claim(i);
          if (p == probe::taken) return i;
          if (p == probe::returning) {
            // Put the mark back. A waiter may have scanned while it was off, after its
            // returner read the waiter count: do the returner's half of S4 for it.
            words_[w].fetch_or(bit(j), std::memory_order_seq_cst);
            notes.saw_returning = true;
            notes.republished = true;
          }
        }
      }
    }
    return npos;
  }

 private:
  static constexpr auto bit(std::uint32_t i) noexcept -> std::uint64_t {
    return std::uint64_t{1} << (i % 64);
  }
  // A load first: the bit is usually still set (the hint path leaves it), and a read keeps the
  // cache line shared between threads that each reuse their own slot.
  static void mark(std::atomic<std::uint64_t>& word, std::uint64_t b) noexcept {
    if ((word.load(std::memory_order_seq_cst) & b) == 0) word.fetch_or(b, std::memory_order_seq_cst);
  }

  std::size_t words_count_;
  std::size_t summary_count_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> words_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> summary_;
};

// The control word: bit 0 closed, bits 1..30 how many callers wait, bit 31 gated, bits 32..63
// the eviction generation. One word, so a return reads all four in one load. Gated: the pool
// is paused or holds more than its (lowered) max_size, so every lend and return takes the
// lock, where the pool decides.
class control_word {
 public:
  struct view {
    std::uint64_t raw;
    [[nodiscard]] auto closed() const noexcept -> bool { return (raw & 1U) != 0; }
    [[nodiscard]] auto waiters() const noexcept -> std::uint32_t {
      return static_cast<std::uint32_t>((raw >> 1U) & 0x3fffffffU);
    }
    [[nodiscard]] auto gated() const noexcept -> bool { return (raw & gate_bit) != 0; }
    // One test each for the fast paths: closed or gated; waiters queued or gated.
    [[nodiscard]] auto closed_or_gated() const noexcept -> bool {
      return (raw & (1U | gate_bit)) != 0;
    }
    [[nodiscard]] auto waiters_or_gated() const noexcept -> bool {
      return (raw & (waiters_mask | gate_bit)) != 0;
    }
    [[nodiscard]] auto generation() const noexcept -> std::uint32_t {
      return static_cast<std::uint32_t>(raw >> 32U);
    }
  };

  // seq_cst: S4 (a returner's read after its publish) and close()'s half of the closed check.
  [[nodiscard]] auto load() const noexcept -> view { return {word_.load(std::memory_order_seq_cst)}; }
  // Announce before scanning (S4); pairs with the returner's load().
  void add_waiter() noexcept { word_.fetch_add(2, std::memory_order_seq_cst); }
  void remove_waiter() noexcept { word_.fetch_sub(2, std::memory_order_seq_cst); }
  // Pairs with the load() a borrower and a returner make after their CAS: either they see the
  // pool closed, or close()'s later sweep of idle slots sees their slot. The gate likewise.
  void close() noexcept { word_.fetch_or(1, std::memory_order_seq_cst); }
  void set_gate(bool on) noexcept {
    if (on)
      word_.fetch_or(gate_bit, std::memory_order_seq_cst);
    else
      word_.fetch_and(~gate_bit, std::memory_order_seq_cst);
  }
  void next_generation() noexcept { word_.fetch_add(std::uint64_t{1} << 32U, std::memory_order_seq_cst); }

 private:
  static constexpr std::uint64_t gate_bit = std::uint64_t{1} << 31U;
  static constexpr std::uint64_t waiters_mask = std::uint64_t{0x3fffffffU} << 1U;
  std::atomic<std::uint64_t> word_{0};
};

template <class R>
class slot_table {
 public:
  using slot_type = slot<R>;
  static constexpr std::size_t max_segments = 21;

  /// Throws std::bad_alloc (or bad_array_new_length) if `n` slots cannot be allocated.
  explicit slot_table(std::size_t n)
      : first_(n), capacity_(n), slots_(std::make_unique<slot_type[]>(n)), idle_(n) {
    for (std::size_t i = 0; i < n; ++i) slots_[i].index = static_cast<std::uint32_t>(i);
  }
  slot_table(const slot_table&) = delete;
  auto operator=(const slot_table&) -> slot_table& = delete;
  ~slot_table() {
    for (auto& g : grown_) delete g.load(std::memory_order_relaxed);
  }

  /// Slots there are now (acquire: pairs with grow's release, so their segments are seen).
  [[nodiscard]] auto size() const noexcept -> std::size_t {
    return capacity_.load(std::memory_order_acquire);
  }
  /// The first segment's size: what the table was made with.
  [[nodiscard]] auto first_size() const noexcept -> std::size_t { return first_; }

  auto operator[](std::size_t i) noexcept -> slot_type& { return *locate(i).s; }
  auto operator[](std::size_t i) const noexcept -> const slot_type& {
    return *const_cast<slot_table*>(this)->locate(i).s;
  }

  /// Calls `f(slot&)` on every slot there is, segment by segment.
  template <class Fn>
  void for_each(Fn&& f) const {
    for (std::size_t i = 0; i < first_; ++i) f(slots_[i]);
    const auto n = segments();
    for (std::size_t k = 1; k < n; ++k) {
      segment* g = grown_[k - 1].load(std::memory_order_acquire);
      for (std::size_t i = 0; i < g->size; ++i) f(g->slots[i]);
    }
  }

  /// Adds segments until there are at least `n` slots; calls `added(index)` for each new slot,
  /// lowest index last (a free list pops it first). The caller holds the pool lock (one grower
  /// at a time). Throws std::bad_alloc and adds nothing then.
  template <class Added>
  void grow(std::size_t n, Added&& added) {
    while (capacity_.load(std::memory_order_relaxed) < n) {
      const auto k = segments();
      if (k >= max_segments) throw std::bad_alloc();
      const std::size_t base = capacity_.load(std::memory_order_relaxed);  // first << (k - 1)
      auto g = std::make_unique<segment>(base);
      for (std::size_t i = 0; i < base; ++i) g->slots[i].index = static_cast<std::uint32_t>(base + i);
      grown_[k - 1].store(g.release(), std::memory_order_release);
      // seq_cst: a waiter's scan reads it after announcing itself (S4 across segments).
      capacity_.store(base * 2, std::memory_order_seq_cst);
      for (std::size_t i = base * 2; i-- > base;) added(static_cast<std::uint32_t>(i));
    }
  }

  [[nodiscard]] auto control() noexcept -> control_word& { return control_; }
  [[nodiscard]] auto control() const noexcept -> const control_word& { return control_; }

  [[nodiscard]] static auto state_of(const slot_type& s) noexcept -> std::uint32_t {
    return s.state.load(std::memory_order_acquire) & slot_state::mask;
  }

  using scan_notes = idle_index::scan_notes;

  /// idle -> in_use: the hinted slot first (no shared line touched when it is still ours), then
  /// the idle index. Null when nothing is idle.
  RESPOOL_DETAIL_HOT auto claim(std::uint32_t hint, scan_notes& notes) noexcept -> slot_type* {
    if (slot_type* s = claim_hinted(hint)) return s;
    return claim_scan(hint, notes);
  }
  /// The hinted slot alone (in the first segment), or null.
  RESPOOL_DETAIL_HOT auto claim_hinted(std::uint32_t hint) noexcept -> slot_type* {
    if (hint < first_ && try_claim(slots_[hint]) == idle_index::probe::taken) return &slots_[hint];
    return nullptr;
  }

  /// The rest of claim: the hint missed. The hint's segment first, then the others.
  RESPOOL_DETAIL_OUT_OF_LINE auto claim_scan(std::uint32_t hint, scan_notes& notes) noexcept
      -> slot_type* {
    const auto n = segments();  // seq_cst: after the waiter's announcement (S4)
    const auto home = hint < size() ? locate(hint) : place{&slots_[0], 0, 0};
    for (std::size_t k = 0; k < n; ++k) {
      const std::size_t seg = (home.segment + k) % n;
      auto* slots = seg == 0 ? slots_.get() : grown_[seg - 1].load(std::memory_order_acquire)->slots.get();
      auto& idle = seg == 0 ? idle_ : grown_[seg - 1].load(std::memory_order_acquire)->idle;
      const auto i = idle.find(seg == home.segment ? home.local : 0,
                               [slots](std::uint32_t j) { return try_claim(slots[j]); }, notes);
      if (i != idle_index::npos) return &slots[i];
    }
    return nullptr;
  }

  /// in_use -> returning by its holder, and marked in the index. False if the slot was orphaned
  /// meanwhile (the holder still owns it and must destroy it). The holder then reads the control
  /// word (S4) and ends with finish_return, hand_over or a store of reserved.
  auto begin_return(slot_type& s) noexcept -> bool {
    std::uint32_t expected = slot_state::in_use;
    // seq_cst: S4 (before the index mark and the control-word read that follow).
    if (!s.state.compare_exchange_strong(expected, slot_state::returning,
                                         std::memory_order_seq_cst, std::memory_order_relaxed))
      return false;
    publish(s.index);
    return true;
  }

  /// returning -> idle: the last touch of the pool by a returning holder. release: the holder's
  /// writes to the resource happen before the next claimer's (pairs with try_claim's CAS), and
  /// before destroy_handle's wait for no returning slot (its acquire load).
  static void finish_return(slot_type& s) noexcept {
    s.state.store(slot_state::idle, std::memory_order_release);
  }

  /// Owned (creating, in_use or reserved) -> idle. The caller must then do S4.
  void make_idle(slot_type& s) noexcept {
    s.state.store(slot_state::idle, std::memory_order_seq_cst);  // release for the next claimer
    publish(s.index);
  }

  /// Owned -> in_use for a new holder (a hand-off). The new holder reads what the old owner
  /// wrote through the pool lock or the waiter's `served` flag.
  static void hand_over(slot_type& s) noexcept {
    s.state.store(slot_state::in_use, std::memory_order_release);
  }

  /// idle -> reserved, for housekeeping, eviction and close.
  static auto try_reserve(slot_type& s) noexcept -> bool {
    std::uint32_t expected = slot_state::idle;
    // acquire: pairs with the release in finish_return / make_idle (the resource's last writes).
    return s.state.compare_exchange_strong(expected, slot_state::reserved,
                                           std::memory_order_acquire, std::memory_order_relaxed);
  }

  /// Owned -> reserved (a holder retiring its resource, or a creator keeping it off the idle
  /// list). False if the in_use slot was orphaned: the caller still owns it.
  static auto reserve_owned(slot_type& s) noexcept -> bool {
    auto cur = s.state.load(std::memory_order_relaxed);
    for (;;) {
      if ((cur & slot_state::orphaned) != 0) return false;
      // CAS: destroy_handle may be setting `orphaned` on an in_use slot at this moment.
      if (s.state.compare_exchange_weak(cur, slot_state::reserved, std::memory_order_acq_rel,
                                        std::memory_order_relaxed))
        return true;
    }
  }

  /// Waits out a holder's last step of a return (a few instructions, unless it was preempted).
  /// acquire: pairs with finish_return's release, so the holder is done with the pool.
  static void await_return(const slot_type& s) noexcept {
    while (s.state.load(std::memory_order_acquire) == slot_state::returning)
      std::this_thread::yield();
  }

  /// empty -> creating (pool lock held by the caller).
  static void begin_create(slot_type& s) noexcept {
    s.state.store(slot_state::creating, std::memory_order_relaxed);
  }

  /// creating or reserved -> empty, after the resource is gone (pool lock held by the caller).
  static void release_empty(slot_type& s) noexcept {
    s.state.store(slot_state::empty, std::memory_order_release);
  }

  /// in_use -> in_use|orphaned, when the pool's handle dies while a lease is out. False if the
  /// slot is not in use (any more).
  static auto try_orphan(slot_type& s) noexcept -> bool {
    auto cur = s.state.load(std::memory_order_acquire);
    while ((cur & slot_state::mask) == slot_state::in_use && (cur & slot_state::orphaned) == 0) {
      // acq_rel: pairs with the holder's failing return CAS, which then sees the flag.
      if (s.state.compare_exchange_weak(cur, cur | slot_state::orphaned, std::memory_order_acq_rel))
        return true;
    }
    return false;
  }

 private:
  RESPOOL_DETAIL_HOT static auto try_claim(slot_type& s) noexcept -> idle_index::probe {
    // Relaxed pre-check: do not dirty a line we cannot take. seq_cst CAS: S4, and the claimer's
    // reads of the control word after it (closed, generation) are ordered after the claim.
    auto cur = s.state.load(std::memory_order_relaxed);
    if (cur == slot_state::idle &&
        s.state.compare_exchange_strong(cur, slot_state::in_use, std::memory_order_seq_cst,
                                        std::memory_order_relaxed))
      return idle_index::probe::taken;
    return cur == slot_state::returning ? idle_index::probe::returning : idle_index::probe::busy;
  }

  struct segment {
    explicit segment(std::size_t n) : size(n), slots(std::make_unique<slot_type[]>(n)), idle(n) {}
    std::size_t size;
    std::unique_ptr<slot_type[]> slots;
    idle_index idle;
  };
  struct place {
    slot_type* s;
    std::size_t segment;
    std::uint32_t local;
  };

  // Segments there are now: 1 + log2(capacity / first).
  [[nodiscard]] auto segments() const noexcept -> std::size_t {
    const auto cap = capacity_.load(std::memory_order_seq_cst);
    return static_cast<std::size_t>(std::bit_width(cap / first_));
  }

  // Where global index `i` (< size()) lives. A division only for slots of grown segments.
  auto locate(std::size_t i) noexcept -> place {
    if (i < first_) return {&slots_[i], 0, static_cast<std::uint32_t>(i)};
    const auto k = static_cast<std::size_t>(std::bit_width(i / first_));  // first << (k-1) <= i
    const std::size_t base = first_ << (k - 1);
    segment* g = grown_[k - 1].load(std::memory_order_acquire);
    return {&g->slots[i - base], k, static_cast<std::uint32_t>(i - base)};
  }

  void publish(std::uint32_t i) noexcept {
    if (i < first_) return idle_.publish(i);
    const auto p = locate(i);
    grown_[p.segment - 1].load(std::memory_order_acquire)->idle.publish(p.local);
  }

  const std::size_t first_;
  std::atomic<std::size_t> capacity_;
  std::unique_ptr<slot_type[]> slots_;  // segment 0
  std::array<std::atomic<segment*>, max_segments - 1> grown_{};  // segments 1.., owned
  alignas(cache_line) idle_index idle_;
  alignas(cache_line) control_word control_;
};

}  // namespace detail
RESPOOL_NAMESPACE_END
