#pragma once
/**
 * respool's version, and the versioned inline namespace every public name lives in.
 *
 * The inline namespace changes with every release (and with `RESPOOL_DEBUG_CHECKS`, which adds
 * a holder count to the pool's slots and aborts with a message if a resource is ever lent twice),
 * so two copies of respool with different layouts in one program fail at link time instead of
 * corrupting memory.
 *
 * **Example**:
 * ```cpp
 * static_assert(RESPOOL_VERSION >= 10000, "respool 1.0 or newer");
 * std::puts(respool::version_string);
 * ```
 */

// The one place the version is written; CMake and Meson read it from here.
#define RESPOOL_VERSION_MAJOR 1
#define RESPOOL_VERSION_MINOR 0
#define RESPOOL_VERSION_PATCH 0

#define RESPOOL_VERSION \
  (RESPOOL_VERSION_MAJOR * 10000 + RESPOOL_VERSION_MINOR * 100 + RESPOOL_VERSION_PATCH)

#define RESPOOL_DETAIL_STR2(x) #x
#define RESPOOL_DETAIL_STR(x) RESPOOL_DETAIL_STR2(x)
#define RESPOOL_VERSION_STRING                                                                \
  RESPOOL_DETAIL_STR(RESPOOL_VERSION_MAJOR)                                                   \
  "." RESPOOL_DETAIL_STR(RESPOOL_VERSION_MINOR) "." RESPOOL_DETAIL_STR(RESPOOL_VERSION_PATCH)

// Debug checks change the layout of internal types: give them their own ABI tag.
#ifndef RESPOOL_DEBUG_CHECKS
#define RESPOOL_DEBUG_CHECKS 0
#endif
#if RESPOOL_DEBUG_CHECKS
#define RESPOOL_DETAIL_ABI_TAG _dbg
#else
#define RESPOOL_DETAIL_ABI_TAG
#endif

#define RESPOOL_DETAIL_ABI_NAME3(ma, mi, pa, tag) v##ma##_##mi##_##pa##tag
#define RESPOOL_DETAIL_ABI_NAME2(ma, mi, pa, tag) RESPOOL_DETAIL_ABI_NAME3(ma, mi, pa, tag)
#define RESPOOL_ABI_NAMESPACE                                                                 \
  RESPOOL_DETAIL_ABI_NAME2(RESPOOL_VERSION_MAJOR, RESPOOL_VERSION_MINOR, RESPOOL_VERSION_PATCH,   \
                           RESPOOL_DETAIL_ABI_TAG)

#define RESPOOL_NAMESPACE_BEGIN \
  namespace respool {           \
  inline namespace RESPOOL_ABI_NAMESPACE {
#define RESPOOL_NAMESPACE_END \
  }                           \
  }

RESPOOL_NAMESPACE_BEGIN

inline constexpr int version_major = RESPOOL_VERSION_MAJOR;
inline constexpr int version_minor = RESPOOL_VERSION_MINOR;
inline constexpr int version_patch = RESPOOL_VERSION_PATCH;
inline constexpr const char* version_string = RESPOOL_VERSION_STRING;

RESPOOL_NAMESPACE_END
