// The creation rules as pure functions (detail/creation_policy.hpp): how many factory calls to
// start, when a creation counts as stalled, the backoff sequence, and the circuit breaker.
#include <respool/detail/creation_policy.hpp>

#include "respool_catch.hpp"

using respool::detail::backoff_delay;
using respool::detail::creation_breaker;
using respool::detail::creations_to_start;
using respool::detail::stall_after;

TEST_CASE("creations_to_start: one per waiter not already covered, within room and lanes") {
  // (max_size, live, creating, stalled, concurrency, waiting, extra)
  CHECK(creations_to_start(8, 0, 0, 0, 2, 5, 0) == 2u);   // lanes bound it
  CHECK(creations_to_start(8, 7, 0, 0, 2, 5, 0) == 1u);   // room bounds it
  CHECK(creations_to_start(8, 2, 2, 0, 2, 5, 0) == 0u);   // lanes full
  CHECK(creations_to_start(8, 1, 1, 0, 4, 1, 0) == 0u);   // the one in flight covers the waiter
  CHECK(creations_to_start(8, 1, 1, 1, 4, 1, 0) == 1u);   // ... unless it has stalled
  CHECK(creations_to_start(8, 0, 0, 0, 2, 0, 1) == 1u);   // a spare or min_idle
  CHECK(creations_to_start(8, 3, 0, 0, 2, 0, 0) == 0u);   // nothing wanted
  CHECK(creations_to_start(8, 8, 0, 0, 2, 3, 0) == 0u);   // full
}

TEST_CASE("stall_after: four times the usual creation, never below the floor") {
  CHECK(stall_after(0, 20) == 20);
  CHECK(stall_after(4, 20) == 20);
  CHECK(stall_after(10, 20) == 40);
}

TEST_CASE("backoff_delay doubles from min and is capped at max") {
  CHECK(backoff_delay(100, 400, 1) == 100);
  CHECK(backoff_delay(100, 400, 2) == 200);
  CHECK(backoff_delay(100, 400, 3) == 400);
  CHECK(backoff_delay(100, 400, 30) == 400);
  CHECK(backoff_delay(100, 150, 2) == 150);
}

TEST_CASE("the breaker opens at the threshold, admits one probe when due, closes on success") {
  creation_breaker b(3, 100, 1000);
  CHECK(b.admit(0, 2, false) == 2u);
  b.on_failure(0, 1.0, b.on_start(false));
  b.on_failure(0, 1.0, b.on_start(false));
  CHECK_FALSE(b.open());                  // two failures: a flaky backend, retried at once
  CHECK(b.admit(0, 2, false) == 2u);
  CHECK_FALSE(b.fails_fast(0));
  b.on_failure(10, 1.0, b.on_start(false));
  CHECK(b.open());                        // the third: down
  CHECK(b.next_attempt_at() == 110);
  CHECK(b.fails_fast(50));
  CHECK(b.admit(50, 2, false) == 0u);     // backing off
  CHECK(b.admit(50, 2, true) == 2u);      // ... unless resources still serve: not down yet
  CHECK_FALSE(b.on_start(true));          // and such an attempt is no probe
  CHECK(b.admit(110, 2, false) == 1u);    // one probe when due
  CHECK_FALSE(b.fails_fast(110));
  CHECK(b.on_start(false));               // it is the probe
  CHECK(b.admit(120, 2, false) == 0u);    // only one at a time
  CHECK_FALSE(b.fails_fast(120));         // callers may wait for the probe
  b.on_failure(130, 0.5, true);
  CHECK(b.next_attempt_at() == 130 + 100);  // the second backoff (200), jittered to half
  b.on_start(false);
  b.on_success();
  CHECK_FALSE(b.open());
  CHECK(b.admit(0, 2, false) == 2u);
}
