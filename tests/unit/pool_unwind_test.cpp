// A lease destroyed while an exception unwinds the stack (pool_options::on_unwind): by default its
// resource is reset, then validated before its next borrow; `discard` destroys it (reason
// `unwound`); `return_to_pool` returns it as if nothing happened. "Unwound" counts from the
// grant: a lease taken and dropped inside a destructor that runs during unwinding is not, and an
// explicit discard() or return_to_pool() means what it says. The pools run on a manual clock
// with validate_after_idle = never, so only an unwind can make them validate on borrow.
#include <respool/pool.hpp>

#include <exception>
#include <stdexcept>
#include <thread>
#include <vector>

#include "pool_test_support.hpp"
#include "respool_catch.hpp"

using namespace std::chrono_literals;
using respool::destroy_reason;
using respool::unwind_policy;
using respool_test::counting_reset;
using respool_test::eventually;
using respool_test::flag_validator;
using respool_test::manual_clock;
using respool_test::test_factory;

namespace {
using checked_pool = respool::pool<test_factory, flag_validator, counting_reset, manual_clock>;
using unchecked_pool = respool::pool<test_factory, respool::always_valid, counting_reset, manual_clock>;

auto options(unwind_policy on_unwind, std::size_t max_size = 1) -> respool::pool_options {
  return {.max_size = max_size,
          .validate_after_idle = respool::pool_options::never,
          .housekeeping_interval = 0ms,
          .on_unwind = on_unwind};
}

// A lease held while an exception leaves its scope; `before` runs on the resource first.
template <class Pool, class Before>
void unwind_with_lease(Pool& p, Before before) {
  try {
    auto l = p.acquire(1s);
    before(*l);
    throw std::runtime_error("query failed");
  } catch (const std::runtime_error&) {
  }
}
template <class Pool>
void unwind_with_lease(Pool& p) {
  unwind_with_lease(p, [](respool_test::resource&) {});
}

// The books of a pool at rest: every resource made is live or destroyed.
template <class Pool>
auto books_balance(const Pool& p) -> bool {
  const auto s = p.stats();
  return s.created - s.destroyed() == s.total - s.creating;
}

// Runs `body` in a destructor that runs while an exception unwinds the stack.
template <class Body>
void during_unwinding(Body body) {
  struct runs_on_unwind {
    Body& body;
    ~runs_on_unwind() { body(); }
  };
  try {
    runs_on_unwind guard{body};
    throw std::runtime_error("unwinding");
  } catch (const std::runtime_error&) {
  }
}
}  // namespace

TEST_CASE("validate (the default): an unwound lease is reset, then validated at its next borrow",
          "[unwind]") {
  manual_clock::reset();
  test_factory f;
  flag_validator v;
  counting_reset s;
  checked_pool p{f, options(unwind_policy::validate), v, s};
  CHECK(p.options().on_unwind == unwind_policy::validate);  // the default
  { auto l = p.acquire(1s); }
  { auto l = p.acquire(1s); }
  REQUIRE(*v.calls == 0);  // validate_after_idle = never: no validation on a plain return

  unwind_with_lease(p, [](respool_test::resource& r) { r.session_state = 7; });
  CHECK(*s.calls == 3);   // reset as usual on the way back
  CHECK(*v.calls == 0);   // validated at the borrow, not at the return
  {
    auto l = p.acquire(1s);
    CHECK(*v.calls == 1);
    CHECK(l->id == 1);    // the same resource, still good
    CHECK(l->session_state == 0);
  }
  { auto l = p.acquire(1s); }
  CHECK(*v.calls == 1);   // once: the resource is trusted again
  CHECK(p.stats().destroyed() == 0);
}

TEST_CASE("validate: an unwound resource that fails validation is destroyed, its place kept",
          "[unwind]") {
  manual_clock::reset();
  test_factory f;
  flag_validator v;
  checked_pool p{f, options(unwind_policy::validate), v, {}};
  unwind_with_lease(p, [](respool_test::resource& r) { r.alive = false; });  // broken mid-query
  {
    auto l = p.acquire(1s);  // validates the broken one, destroys it, creates another
    CHECK(l->id == 2);
    CHECK(*v.calls == 1);
  }
  CHECK(eventually([&] { return f.c->live == 1; }));
  const auto st = p.stats();
  CHECK(st.destroyed(destroy_reason::failed_validation) == 1);
  CHECK(st.destroyed() == 1);
  CHECK(st.total == 1);
  CHECK(books_balance(p));
  { auto l = p.acquire(1s); }
  CHECK(*v.calls == 1);  // the new one is not validated again (never)
}

TEST_CASE("validate without a validator: an unwound lease is returned as usual", "[unwind]") {
  manual_clock::reset();
  test_factory f;
  counting_reset s;
  unchecked_pool p{f, options(unwind_policy::validate), {}, s};
  unwind_with_lease(p);
  auto l = p.acquire(1s);
  CHECK(l->id == 1);
  CHECK(*s.calls == 1);
  CHECK(p.stats().destroyed() == 0);
}

TEST_CASE("discard: an unwound lease's resource is destroyed (unwound), without a reset",
          "[unwind]") {
  manual_clock::reset();
  test_factory f;
  flag_validator v;
  counting_reset s;
  checked_pool p{f, options(unwind_policy::discard), v, s};
  unwind_with_lease(p);
  CHECK(eventually([&] { return f.c->live == 0; }));
  CHECK(*s.calls == 0);
  CHECK(p.stats().destroyed(destroy_reason::unwound) == 1);
  CHECK(p.stats().destroyed() == 1);
  auto l = p.acquire(1s);
  CHECK(l->id == 2);
  CHECK(books_balance(p));
}

TEST_CASE("return_to_pool: an unwound lease is returned as if nothing happened", "[unwind]") {
  manual_clock::reset();
  test_factory f;
  flag_validator v;
  counting_reset s;
  checked_pool p{f, options(unwind_policy::return_to_pool), v, s};
  unwind_with_lease(p);
  CHECK(*s.calls == 1);
  auto l = p.acquire(1s);
  CHECK(l->id == 1);
  CHECK(*v.calls == 0);
  CHECK(p.stats().destroyed() == 0);
}

TEST_CASE("a lease taken and dropped in a destructor during unwinding is not unwound",
          "[unwind]") {
  manual_clock::reset();
  test_factory f;
  checked_pool p{f, options(unwind_policy::discard, 2), {}, {}};
  int id_in_destructor = 0;
  during_unwinding([&] {
    std::error_code ec;
    auto l = p.acquire(1s, ec);  // granted while one exception is in flight...
    id_in_destructor = ec ? -1 : l->id;
  });  // ...and dropped while the same one is: an ordinary return
  REQUIRE(id_in_destructor == 1);
  CHECK(p.stats().destroyed() == 0);
  CHECK(p.stats().idle == 1);

  // A second exception, thrown and caught inside that destructor, does unwind such a lease.
  during_unwinding([&] {
    try {
      std::error_code ec;
      auto l = p.acquire(1s, ec);
      throw std::logic_error("nested");
    } catch (const std::logic_error&) {
    }
  });
  CHECK(eventually([&] { return p.stats().destroyed(destroy_reason::unwound) == 1; }));
}

TEST_CASE("explicit discard() and return_to_pool() during unwinding keep their meaning",
          "[unwind]") {
  manual_clock::reset();
  test_factory f;
  counting_reset s;
  checked_pool p{f, options(unwind_policy::discard, 2), {}, s};
  try {
    auto kept = p.acquire(1s);
    auto broken = p.acquire(1s);
    struct on_the_way_out {
      respool::lease<respool_test::resource>& kept;
      respool::lease<respool_test::resource>& broken;
      ~on_the_way_out() {  // runs during the unwinding, before the leases' destructors
        kept.return_to_pool();
        broken.discard();
      }
    } guard{kept, broken};
    throw std::runtime_error("query failed");
  } catch (const std::runtime_error&) {
  }
  CHECK(eventually([&] { return p.stats().destroyed() == 1; }));
  CHECK(p.stats().destroyed(destroy_reason::discarded) == 1);
  CHECK(p.stats().destroyed(destroy_reason::unwound) == 0);
  CHECK(*s.calls == 1);  // the returned one was reset and kept
  CHECK(p.stats().idle == 1);
}

TEST_CASE("the unwinding count the lease reads agrees with std::uncaught_exceptions()",
          "[unwind]") {
  using respool::detail::uncaught_exceptions_now;
  CHECK(uncaught_exceptions_now() == 0);
  CHECK(std::uncaught_exceptions() == 0);
  std::vector<std::pair<int, unsigned>> seen;  // (standard, ours) at each depth
  const auto look = [&] { seen.emplace_back(std::uncaught_exceptions(), uncaught_exceptions_now()); };
  during_unwinding([&] {
    look();
    during_unwinding(look);
    look();
  });
  look();
  REQUIRE(seen.size() == 4);
  CHECK(seen[0] == std::pair{1, 1U});
  CHECK(seen[1] == std::pair{2, 2U});
  CHECK(seen[2] == std::pair{1, 1U});
  CHECK(seen[3] == std::pair{0, 0U});
}

TEST_CASE("threads unwinding leases: each unwound resource is validated once before it is lent",
          "[unwind][threads]") {
  manual_clock::reset();
  test_factory f;
  flag_validator v;
  constexpr std::size_t size = 3;
  constexpr int threads = 4;
  constexpr int rounds = 300;
  checked_pool p{f, options(unwind_policy::validate, size), v, {}};
  std::atomic<int> unwound{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < threads; ++t) {
    ts.emplace_back([&, t] {
      for (int i = 0; i < rounds; ++i) {
        try {
          std::error_code ec;
          auto l = p.acquire(1h, ec);
          if (ec) continue;
          ++l->session_state;
          if ((i + t) % 3 == 0) {
            ++unwound;
            throw std::runtime_error("query failed");
          }
        } catch (const std::runtime_error&) {
        }
      }
    });
  }
  for (auto& t : ts) t.join();
  // Borrow every resource once: the ones still marked are validated now.
  std::vector<respool::lease<respool_test::resource>> all;
  for (std::size_t i = 0; i < size; ++i) all.push_back(p.acquire(1s));
  CHECK(unwound.load() == threads * rounds / 3);
  CHECK(*v.calls == unwound.load());
  CHECK(p.stats().destroyed() == 0);
}
