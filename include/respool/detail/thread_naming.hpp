#pragma once
// Names the calling thread `<name>-<number>` where the platform allows it (Linux keeps 15
// characters: the name is shortened, never the number). Kept apart so that <pthread.h> stays out
// of the public headers.
#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstring>
#include <string_view>

#if defined(__linux__)
#include <pthread.h>
#endif

#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

inline void name_current_thread([[maybe_unused]] std::string_view base,
                                [[maybe_unused]] std::size_t number) noexcept {
#if defined(__linux__)
  char suffix[24] = {'-'};
  const auto end = std::to_chars(suffix + 1, suffix + sizeof suffix, number).ptr;
  const auto suffix_length = std::min<std::size_t>(static_cast<std::size_t>(end - suffix), 15);
  const std::size_t keep = std::min(base.size(), 15 - suffix_length);
  char name[16] = {};
  std::memcpy(name, base.data(), keep);
  std::memcpy(name + keep, suffix, suffix_length);
  pthread_setname_np(pthread_self(), name);
#endif
}

}  // namespace detail
RESPOOL_NAMESPACE_END
