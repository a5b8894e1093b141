#pragma once
// std::uncaught_exceptions() for the lease's grant and destruction (lease.hpp), at the cost of a
// thread-local load. In libstdc++ the standard call is three calls deep (it, __cxa_get_globals,
// __tls_get_addr, 1.2 ns); one at the grant and one at the destruction made the uncontended cycle
// 15-20% slower. The Itanium C++ ABI (GCC and Clang outside MSVC targets; its exception-handling
// chapter) keeps the count in the thread's `__cxa_eh_globals`,
// `{ __cxa_exception* caughtExceptions; unsigned int uncaughtExceptions; }`, whose address
// `__cxa_get_globals()` returns and which lives as long as the thread: we ask for that address
// once per thread and read the field. Other runtimes make the standard call.
// tests/unit/pool_unwind_test.cpp checks that the two agree.
#include <exception>

#if __has_include(<cxxabi.h>)
#include <cxxabi.h>
#endif

#include "../version.hpp"

// libstdc++ (libsupc++) and libc++abi lay the struct out as the ABI says.
#if defined(__GLIBCXX__) || defined(_LIBCPPABI_VERSION)
#define RESPOOL_DETAIL_EH_GLOBALS 1
#else
#define RESPOOL_DETAIL_EH_GLOBALS 0
#endif

RESPOOL_NAMESPACE_BEGIN
namespace detail {

#if RESPOOL_DETAIL_EH_GLOBALS
// This thread's uncaughtExceptions field; null until its first use. Trivially initialised, so
// reading it needs no guard.
inline thread_local const unsigned int* tls_uncaught_count = nullptr;

[[gnu::cold, gnu::noinline]] inline auto find_uncaught_count() noexcept -> const unsigned int* {
  struct eh_globals {  // the ABI's prefix of __cxa_eh_globals
    void* caught_exceptions;
    unsigned int uncaught_exceptions;
  };
  const auto* g = reinterpret_cast<const eh_globals*>(abi::__cxa_get_globals());
  tls_uncaught_count = &g->uncaught_exceptions;
  return tls_uncaught_count;
}

/// How many exceptions this thread is unwinding: std::uncaught_exceptions().
inline auto uncaught_exceptions_now() noexcept -> unsigned int {
  const unsigned int* n = tls_uncaught_count;
  if (n == nullptr) [[unlikely]] n = find_uncaught_count();
  return *n;
}
#else
inline auto uncaught_exceptions_now() noexcept -> unsigned int {
  return static_cast<unsigned int>(std::uncaught_exceptions());
}
#endif

}  // namespace detail
RESPOOL_NAMESPACE_END
