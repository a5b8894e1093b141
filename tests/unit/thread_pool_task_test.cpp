// The thread pool's building blocks: the move-only task and the segmented queue.
#include <respool/detail/move_only_task.hpp>
#include <respool/detail/segmented_queue.hpp>

#include <array>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

#include "respool_catch.hpp"

using respool::detail::move_only_task;
using respool::detail::segmented_queue;

namespace {

// Counts live copies, so a test can see that a task destroys what it holds exactly once.
struct tracked {
  explicit tracked(int* live) : live_(live) { ++*live_; }
  tracked(tracked&& other) noexcept : live_(other.live_) { ++*live_; }
  tracked(const tracked&) = delete;
  auto operator=(const tracked&) -> tracked& = delete;
  auto operator=(tracked&&) -> tracked& = delete;
  ~tracked() { --*live_; }
  int* live_;
};

struct with_fail_hook {
  int* ran;
  std::string* failure;
  void operator()() { ++*ran; }
  void fail(std::exception_ptr e) noexcept {
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& ex) {
      *failure = ex.what();
    }
  }
};

}  // namespace

TEST_CASE("a task runs a move-only callable after being moved", "[task]") {
  int result = 0;
  move_only_task t{[p = std::make_unique<int>(42), &result] { result = *p; }};
  REQUIRE(static_cast<bool>(t));
  move_only_task u = std::move(t);
  REQUIRE_FALSE(static_cast<bool>(t));  // NOLINT(bugprone-use-after-move): moved-from is empty
  u();
  REQUIRE(result == 42);
}

TEST_CASE("small callables live inline, large ones on the heap, both destroyed once", "[task]") {
  int live = 0;
  {
    move_only_task small{[x = tracked(&live)] { static_cast<void>(x); }};
    std::array<char, 200> pad{};
    move_only_task large{[x = tracked(&live), pad] { static_cast<void>(pad); }};
    REQUIRE(live == 2);
    move_only_task a = std::move(small);
    move_only_task b = std::move(large);
    REQUIRE(live == 2);  // a move relocates, it never duplicates
    a = std::move(b);    // assigning destroys the old callable
    REQUIRE(live == 1);
  }
  REQUIRE(live == 0);
}

TEST_CASE("reset releases the callable at once", "[task]") {
  auto shared = std::make_shared<int>(1);
  move_only_task t{[shared] { static_cast<void>(shared); }};
  REQUIRE(shared.use_count() == 2);
  t.reset();
  REQUIRE(shared.use_count() == 1);
  REQUIRE_FALSE(static_cast<bool>(t));
}

TEST_CASE("fail reaches a callable's fail hook and empties the task", "[task]") {
  int ran = 0;
  std::string failure;
  move_only_task t{with_fail_hook{&ran, &failure}};
  t.fail(std::make_exception_ptr(std::runtime_error("dropped")));
  REQUIRE(failure == "dropped");
  REQUIRE(ran == 0);
  REQUIRE_FALSE(static_cast<bool>(t));

  int live = 0;
  move_only_task plain{[x = tracked(&live)] { static_cast<void>(x); }};
  plain.fail(std::make_exception_ptr(std::runtime_error("dropped")));  // no hook: destroyed only
  REQUIRE(live == 0);
}

TEST_CASE("the segmented queue is FIFO across chunks, and reuses an emptied chunk", "[queue]") {
  segmented_queue<move_only_task> q;
  std::string order;
  int next = 0;
  auto push = [&] {
    const char c = static_cast<char>('a' + (next++ % 26));
    q.push_back(move_only_task{[&order, c] { order += c; }});
  };
  // Grow over several chunks while popping, so the front chunk is retired while others fill.
  constexpr int chunk = static_cast<int>(segmented_queue<move_only_task>::chunk_size);
  for (int round = 0; round < 3 * chunk; ++round) {
    push();
    push();
    q.pop_front()();
  }
  REQUIRE(q.size() == static_cast<std::size_t>(3 * chunk));
  while (!q.empty()) q.pop_front()();
  // Empty, then hover around a chunk boundary.
  for (int i = 0; i < 5 * chunk; ++i) {
    push();
    if (i % 3 == 2) q.pop_front()();
  }
  while (!q.empty()) q.pop_front()();
  std::string expected;
  for (int i = 0; i < next; ++i) expected += static_cast<char>('a' + (i % 26));
  REQUIRE(order == expected);
  REQUIRE(q.size() == 0);
}

TEST_CASE("the segmented queue destroys what it still holds", "[queue]") {
  auto shared = std::make_shared<int>(0);
  {
    segmented_queue<move_only_task> q;
    for (int i = 0; i < 300; ++i) q.push_back(move_only_task{[shared] { ++*shared; }});
    q.pop_front()();
    REQUIRE(shared.use_count() == 300);
  }
  REQUIRE(shared.use_count() == 1);
  REQUIRE(*shared == 1);
}
