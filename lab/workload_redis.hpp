#pragma once
// The lab's workload on Redis, through the example adapter examples/backends/redis.hpp. The
// accounts are string keys holding balances; a write is a Lua script moving the amount (atomic,
// one round trip, and it leaves the session clean, so returning a connection costs nothing).
#include <charconv>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "backends/redis.hpp"
#include "cli.hpp"

namespace lab {

class redis_workload {
 public:
  using factory_type = respool_examples::redis::factory;
  using validator_type = respool_examples::redis::validator;
  using resetter_type = respool_examples::redis::resetter;
  using connection_type = respool_examples::redis::connection;

  explicit redis_workload(const options& o) : accounts_(o.accounts) {
    opts_.client_name = "respool-lab";
    parse(o.conninfo.empty() ? "127.0.0.1:6379" : o.conninfo);
  }

  [[nodiscard]] auto name() const -> std::string { return "Redis"; }
  [[nodiscard]] auto describe() const -> std::string {
    return "Redis" + (server_version_.empty() ? "" : " " + server_version_) + " at " + opts_.host +
           ":" + std::to_string(opts_.port) + "/" + std::to_string(opts_.db);
  }
  [[nodiscard]] auto make_factory() const -> factory_type { return factory_type{opts_}; }
  [[nodiscard]] static auto make_validator() -> validator_type { return {}; }
  [[nodiscard]] static auto make_resetter() -> resetter_type { return {}; }

  void prepare(connection_type& c) {
    auto info = c.command_ok({"INFO", "server"});
    const std::string text = respool_examples::redis::text_of(info.get());
    if (const auto at = text.find("redis_version:"); at != std::string::npos) {
      const auto start = at + 14;
      server_version_ = text.substr(start, text.find_first_of("\r\n", start) - start);
    }
    // In batches: every account starts with the same balance and an empty ledger.
    constexpr std::int64_t batch = 1000;
    for (std::int64_t first = 1; first <= accounts_; first += batch) {
      std::vector<std::string> args{"MSET"};
      for (std::int64_t id = first; id < first + batch && id <= accounts_; ++id) {
        args.push_back(key(id));
        args.emplace_back("100000");
      }
      std::vector<std::string> ledgers{"DEL"};
      for (std::int64_t id = first; id < first + batch && id <= accounts_; ++id) {
        ledgers.push_back(ledger(id));
      }
      for (const auto* cmd : {&args, &ledgers}) {
        const std::vector<std::string_view> views(cmd->begin(), cmd->end());
        auto r = c.command(views);
        if (r->type == REDIS_REPLY_ERROR) {
          throw std::runtime_error("redis: " + cmd->front() + ": " +
                                   respool_examples::redis::text_of(r.get()));
        }
      }
    }
  }

  /// The account page: the balance and the last five transfers (two round trips).
  static void read(connection_type& c, std::int64_t id) {
    const std::string k = key(id);
    auto r = c.command({"GET", k});
    if (r->type != REDIS_REPLY_STRING) throw std::runtime_error("redis: " + k + " is missing");
    auto recent = c.command({"LRANGE", ledger(id), "0", "4"});
    if (recent->type != REDIS_REPLY_ARRAY) throw std::runtime_error("redis: LRANGE failed");
  }

  /// A transfer: one Lua script (atomic, one round trip) moves the amount and records it in
  /// the payer's ledger, trimmed to its last 100 entries.
  static void write(connection_type& c, std::int64_t from, std::int64_t to, std::int64_t amount,
                    std::int64_t now) {
    static constexpr std::string_view script =
        "redis.call('DECRBY', KEYS[1], ARGV[1]) redis.call('INCRBY', KEYS[2], ARGV[1]) "
        "redis.call('LPUSH', KEYS[3], ARGV[2]) redis.call('LTRIM', KEYS[3], 0, 99) return 1";
    const std::string a = key(from), b = key(to), l = ledger(from), x = std::to_string(amount),
                      entry = std::to_string(to) + ":" + x + ":" + std::to_string(now);
    auto r = c.command({"EVAL", script, "3", a, b, l, x, entry});
    if (r->type == REDIS_REPLY_ERROR) {
      throw std::runtime_error("redis: EVAL: " + respool_examples::redis::text_of(r.get()));
    }
  }

 private:
  static auto key(std::int64_t id) -> std::string {
    return "respool-lab:account:" + std::to_string(id);
  }
  static auto ledger(std::int64_t id) -> std::string {
    return "respool-lab:transfers:" + std::to_string(id);
  }

  // HOST[:PORT] or redis://HOST[:PORT][/DB]
  void parse(std::string_view s) {
    const std::string original(s);
    if (s.starts_with("redis://")) s.remove_prefix(8);
    if (const auto slash = s.find('/'); slash != std::string_view::npos) {
      opts_.db = number(s.substr(slash + 1), original);
      s = s.substr(0, slash);
    }
    if (const auto colon = s.rfind(':'); colon != std::string_view::npos) {
      opts_.port = number(s.substr(colon + 1), original);
      s = s.substr(0, colon);
    }
    if (s.empty()) throw usage_error("--conninfo '" + original + "': no host (expected HOST[:PORT])");
    opts_.host = std::string(s);
  }
  static auto number(std::string_view text, const std::string& original) -> int {
    int v = 0;
    const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (text.empty() || ec != std::errc{} || ptr != text.data() + text.size() || v < 0 || v > 65535) {
      throw usage_error("--conninfo '" + original +
                        "': expected HOST[:PORT] or redis://HOST[:PORT][/DB]");
    }
    return v;
  }

  respool_examples::redis::options opts_;
  std::int64_t accounts_;
  std::string server_version_;
};

}  // namespace lab
