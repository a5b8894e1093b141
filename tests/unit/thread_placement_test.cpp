// The thread pool's placement rule and its companions as pure functions
// (detail/thread_placement.hpp, detail/spin_policy.hpp), one row per case, and which idle
// thread takes a hand-off (detail/thread_worker.hpp).
#include <respool/detail/spin_policy.hpp>
#include <respool/detail/thread_placement.hpp>
#include <respool/detail/thread_worker.hpp>

#include "respool_catch.hpp"

using respool::thread_growth;
using respool::detail::adaptive_spin;
using respool::detail::idle_stack;
using respool::detail::worker;
using respool::detail::placement;
using respool::detail::placement_state;

namespace {

// (idle, booting, threads, queued, claimed, core, max, capacity, growth, may_start)
auto at(std::size_t idle, std::size_t booting, std::size_t threads, std::size_t queued,
        std::size_t claimed, std::size_t core, std::size_t max, std::size_t capacity,
        thread_growth growth = thread_growth::threads_first, bool may_start = true)
    -> placement_state {
  return {idle, booting, threads, queued, claimed, core, max, capacity, growth, may_start};
}

auto decide(const placement_state& s) { return respool::detail::place(s); }
auto owed(const placement_state& s) { return respool::detail::start_owed(s); }

constexpr auto tf = thread_growth::threads_first;
constexpr auto qf = thread_growth::queue_first;

}  // namespace

TEST_CASE("place, threads_first: idle thread, then a booting one, then a new thread, then queue") {
  CHECK(decide(at(1, 0, 2, 0, 0, 2, 4, 8)) == placement::run_on_idle);
  CHECK(decide(at(0, 1, 2, 0, 0, 2, 4, 8)) == placement::wait_for_booting);
  CHECK(decide(at(0, 1, 2, 1, 1, 2, 4, 8)) == placement::start_thread);  // its one claim taken
  CHECK(decide(at(0, 0, 2, 0, 0, 2, 4, 8)) == placement::start_thread);
  CHECK(decide(at(0, 0, 4, 0, 0, 2, 4, 8)) == placement::enqueue);
  CHECK(decide(at(0, 0, 4, 8, 0, 2, 4, 8)) == placement::reject);
}

TEST_CASE("place: a booting thread takes a task even with no queue at all (prestart)") {
  CHECK(decide(at(0, 1, 1, 0, 0, 1, 1, 0)) == placement::wait_for_booting);
  CHECK(decide(at(0, 1, 1, 1, 1, 1, 1, 0)) == placement::reject);  // claimed: the next is refused
  CHECK(decide(at(0, 4, 4, 3, 3, 4, 64, 0)) == placement::wait_for_booting);  // not a 5th thread
}

TEST_CASE("place: a new thread takes the oldest queued task first") {
  // A task queued after a failed start is unclaimed: the next start is for it.
  CHECK(decide(at(0, 0, 1, 1, 0, 1, 4, 8)) == placement::start_for_queue);
  CHECK(decide(at(0, 0, 1, 1, 0, 1, 4, 8, tf, false)) == placement::enqueue);  // start failed
  CHECK(decide(at(0, 0, 4, 1, 0, 1, 4, 1, tf, false)) == placement::reject);
  // Claimed tasks do not count against the queue's bound.
  CHECK(decide(at(0, 1, 4, 2, 1, 1, 4, 2)) == placement::enqueue);  // one of two places taken
  CHECK(decide(at(0, 1, 4, 3, 1, 1, 4, 2)) == placement::reject);   // both taken
}

TEST_CASE("place, queue_first: core, then queue, then grow when full, then reject") {
  CHECK(decide(at(0, 0, 0, 0, 0, 1, 3, 2, qf)) == placement::start_thread);
  CHECK(decide(at(0, 0, 1, 0, 0, 1, 3, 2, qf)) == placement::enqueue);
  CHECK(decide(at(0, 0, 1, 1, 0, 1, 3, 2, qf)) == placement::enqueue);
  CHECK(decide(at(0, 0, 1, 2, 0, 1, 3, 2, qf)) == placement::start_for_queue);  // full: grow
  CHECK(decide(at(0, 0, 3, 2, 0, 1, 3, 2, qf)) == placement::reject);
  // No core threads: the first task still gets a thread (the JDK starts one for the queue).
  CHECK(decide(at(0, 0, 0, 0, 0, 0, 3, 2, qf)) == placement::start_thread);
}

TEST_CASE("start_owed: only queued tasks the rule would start a thread for") {
  CHECK(owed(at(0, 0, 0, 1, 0, 0, 4, 8)));            // a failed start left it queued
  CHECK(owed(at(0, 0, 2, 1, 0, 2, 4, 8)));            // threads_first: below max
  CHECK_FALSE(owed(at(0, 0, 4, 1, 0, 2, 4, 8)));      // at max: waiting is by design
  CHECK_FALSE(owed(at(0, 1, 1, 1, 1, 0, 4, 8)));      // a booting thread will take it
  CHECK_FALSE(owed(at(0, 0, 1, 0, 0, 0, 4, 8)));      // nothing queued
  CHECK_FALSE(owed(at(0, 0, 2, 1, 0, 1, 4, 8, qf)));  // queue_first above core: by design
  CHECK(owed(at(0, 0, 0, 1, 0, 1, 4, 8, qf)));        // ... but below core it is owed
}

TEST_CASE("start_retry_delay: 1 ms doubling, capped at 250 ms") {
  using respool::detail::start_retry_delay;
  CHECK(start_retry_delay(1) == 1'000'000);
  CHECK(start_retry_delay(2) == 2'000'000);
  CHECK(start_retry_delay(4) == 8'000'000);
  CHECK(start_retry_delay(9) == 250'000'000);
  CHECK(start_retry_delay(4'000'000'000U) == 250'000'000);
}

TEST_CASE("adaptive_spin: spins after a short gap, not after a long one") {
  adaptive_spin s;
  CHECK(s.budget_ns() == adaptive_spin::max_spin_ns);
  s.after_wait(250'000);  // a task every 250 us: sleeping is cheaper
  CHECK(s.budget_ns() == 0);
  s.after_wait(1'000);  // a short gap: spin a few times that long next time
  CHECK(s.budget_ns() == 4'000);
  s.after_wait(100);  // never less than the minimum
  CHECK(s.budget_ns() == adaptive_spin::min_spin_ns);
  s.after_wait(15'000);  // never more than the maximum
  CHECK(s.budget_ns() == adaptive_spin::max_spin_ns);
  s.after_wait(adaptive_spin::max_spin_ns + 1);
  CHECK(s.budget_ns() == 0);
}

TEST_CASE("a hand-off goes to the awake top idle thread, else to the one below a sleeping top",
          "[placement]") {
  idle_stack idle;
  REQUIRE(idle.pick() == nullptr);
  worker a;
  worker b;
  worker c;
  idle.push(a);
  a.sleeping = true;
  REQUIRE(idle.pick() == &a);  // the only one
  idle.push(b);                // b on top, still awake (spinning)
  REQUIRE(idle.pick() == &b);
  b.sleeping = true;  // asleep: its CPU is likely the submitter's, so the one below
  REQUIRE(idle.pick() == &a);
  idle.push(c);
  c.sleeping = true;
  REQUIRE(idle.pick() == &b);
  idle.remove(b);
  REQUIRE(idle.pick() == &a);
  REQUIRE(idle.size() == 2);
}
