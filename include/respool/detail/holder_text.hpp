#pragma once
// How an error or event names who holds the resources: "held longest by orders.cpp:88
// (load_order) for 2,340 ms, cart.cpp:41 (add_item) for 1,910 ms", and a nested acquire's two
// call sites. Pure functions over acquire sites and pool::holders() data.
#include <algorithm>
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "../stats.hpp"
#include "../version.hpp"

RESPOOL_NAMESPACE_BEGIN
namespace detail {

/// "orders.cpp" from "/src/app/orders.cpp".
inline auto file_base_name(std::string_view path) noexcept -> std::string_view {
  const auto slash = path.find_last_of("/\\");
  return slash == std::string_view::npos ? path : path.substr(slash + 1);
}

/// The function's name from a compiler's signature: "void app::load_order(int)" gives
/// "app::load_order"; what has no parameter list is kept. Anonymous namespaces (GCC's
/// "{anonymous}::", Clang's "(anonymous namespace)::") say nothing a reader needs and go.
inline auto function_short_name(std::string_view signature) -> std::string {
  std::string sig(signature);
  for (std::string_view anon : {std::string_view{"{anonymous}::"},
                                std::string_view{"(anonymous namespace)::"}})
    for (auto at = sig.find(anon); at != std::string::npos; at = sig.find(anon, at))
      sig.erase(at, anon.size());
  const auto paren = sig.find('(');
  if (paren == std::string::npos || paren == 0) return sig;
  sig.resize(paren);
  // The last space outside template arguments ends the return type.
  int depth = 0;
  std::size_t start = 0;
  for (std::size_t i = 0; i < sig.size(); ++i) {
    if (sig[i] == '<') ++depth;
    if (sig[i] == '>' && depth > 0) --depth;
    if (sig[i] == ' ' && depth == 0) start = i + 1;
  }
  return sig.substr(start);
}

/// 2340 as "2,340".
inline auto with_thousands(long long n) -> std::string {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i != 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

/// "orders.cpp:88 (load_order)".
inline auto describe_site(const acquire_site& site) -> std::string {
  std::string out(file_base_name(site.file_name));
  if (out.empty()) out = "unknown site";
  if (site.line != 0) out += ":" + std::to_string(site.line);
  const auto fn = function_short_name(site.function_name);
  if (!fn.empty()) {
    out += " (";
    out += fn;
    out += ")";
  }
  return out;
}

/// "orders.cpp:88 (load_order) for 2,340 ms".
inline auto describe_holder(const lease_holder& h) -> std::string {
  return describe_site(h.site) + " for " + with_thousands(static_cast<long long>(h.held.count())) +
         " ms";
}

/// "held longest by A for 2,340 ms, B for 1,910 ms" for the first `most` of `holders` (longest
/// first, as pool::holders() returns them); empty when nothing is held.
inline auto describe_longest_holders(const std::vector<lease_holder>& holders,
                                     std::size_t most = 3) -> std::string {
  if (holders.empty()) return {};
  std::string out = "held longest by ";
  const auto n = std::min(most, holders.size());
  for (std::size_t i = 0; i < n; ++i) {
    if (i != 0) out += ", ";
    out += describe_holder(holders[i]);
  }
  return out;
}

/// The `nested_acquire` event's message: where the thread took a lease it holds (one of
/// `leases_held`), where it acquires again, and what that costs: T threads that each hold n
/// leases at once deadlock a pool of fewer than T * (n - 1) + 1 (each holds n - 1 and waits for
/// the last one; one more resource lets one of them finish).
inline auto describe_nested_acquire(std::string_view pool, const acquire_site& held,
                                    const acquire_site& acquiring, std::size_t leases_held,
                                    std::size_t max_size) -> std::string {
  std::string out = "nested acquire: this thread holds ";
  out += leases_held == 1 ? std::string("a lease") : std::to_string(leases_held) + " leases";
  out += " from pool '";
  out += pool;
  out += leases_held == 1 ? "' acquired at " + describe_site(held)
                          : "' (one acquired at " + describe_site(held) + ")";
  out += " and acquires again at " + describe_site(acquiring);
  const auto n = leases_held + 1;
  out += "; T threads each holding n leases at once can deadlock unless max_size >= T * (n - 1) "
         "+ 1 (here n = " +
         std::to_string(n) + " and max_size = " + std::to_string(max_size) + ": at most " +
         std::to_string((max_size - 1) / (n - 1)) + " such threads)";
  return out;
}

}  // namespace detail
RESPOOL_NAMESPACE_END
