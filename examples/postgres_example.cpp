// Transfers between bank accounts in PostgreSQL, from many threads through a pool of 4
// connections; then checks that no money was created or lost.
//
//   respool_example_postgres "host=127.0.0.1 port=5432 user=postgres dbname=postgres" [threads] [transfers]
//
// Shows: a libpq factory whose errors carry the server's message, validation on every borrow
// (a connection the server closed is never handed out), a resetter that rolls back what a failed
// request left open, and acquire errors that say why. Put `connect_timeout=5` in CONNINFO so an
// unreachable server cannot stall the pool's creator thread.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backends/postgres.hpp"

namespace pg = respool_examples::pg;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s CONNINFO [threads] [transfers]\n"
                         "  e.g. %s \"host=127.0.0.1 port=5432 user=postgres dbname=postgres\"\n",
                 argv[0], argv[0]);
    return 2;
  }
  const std::string conninfo = argv[1];
  const int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 16;
  const int transfers = argc > 3 ? std::max(1, std::atoi(argv[3])) : 2000;
  constexpr int accounts = 100;
  constexpr long long opening_balance = 1000;

  respool::pool db{pg::factory{conninfo},
                   respool::pool_options{.max_size = 4,
                                         .min_idle = 1,
                                         .acquire_timeout = 5s,
                                         .validate_after_idle = 0ms,  // the socket check is cheap
                                         .name = "bank"},
                   pg::validator{.round_trip = false}, pg::resetter{}};

  try {
    auto c = db.acquire();
    c->exec("CREATE TABLE IF NOT EXISTS respool_example_accounts"
            " (id int PRIMARY KEY, balance bigint NOT NULL)");
    c->exec("TRUNCATE respool_example_accounts");
    c->exec_params("INSERT INTO respool_example_accounts SELECT g, $2::bigint"
                   " FROM generate_series(1, $1::int) g",
                   {std::to_string(accounts).c_str(), std::to_string(opening_balance).c_str()});
  } catch (const respool::error& e) {  // the server is down, or refused us: its own words
    std::fprintf(stderr, "cannot reach the database: %s\n", e.what());
    return 1;
  } catch (const pg::error& e) {
    std::fprintf(stderr, "setting up: %s\n", e.what());
    return 1;
  }

  std::atomic<int> done{0}, failed{0}, unavailable{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      std::uniform_int_distribution<int> account(1, accounts), amount(1, 50);
      for (int i = t; i < transfers; i += threads) {
        int from = account(rng), to = account(rng);
        if (from == to) to = to % accounts + 1;
        const auto first = std::to_string(std::min(from, to)), second = std::to_string(std::max(from, to));
        const auto delta = std::to_string(from < to ? -amount(rng) : amount(rng));
        try {
          auto c = db.acquire();
          // Rows are locked in id order, so two transfers never deadlock. If a statement fails,
          // the lease goes back with the transaction open and the resetter rolls it back.
          c->exec("BEGIN");
          c->exec_params("UPDATE respool_example_accounts SET balance = balance + $2::bigint WHERE id = $1::int",
                         {first.c_str(), delta.c_str()});
          c->exec_params("UPDATE respool_example_accounts SET balance = balance - $2::bigint WHERE id = $1::int",
                         {second.c_str(), delta.c_str()});
          c->exec("COMMIT");
          ++done;
        } catch (const respool::error& e) {
          if (++unavailable == 1) std::fprintf(stderr, "acquire failed: %s\n", e.what());
        } catch (const pg::error& e) {
          if (++failed == 1) std::fprintf(stderr, "transfer failed: %s\n", e.what());
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  try {
    auto c = db.acquire();
    const auto total = std::stoll(c->scalar("SELECT sum(balance) FROM respool_example_accounts"));
    const auto s = db.stats();
    std::printf("%d transfers in %.2f s (%.0f/s) by %d threads over %zu connections\n", done.load(),
                secs, done.load() / secs, threads, s.max_size);
    std::printf("failed: %d, no connection: %d\n", failed.load(), unavailable.load());
    std::printf("pool: created %llu, destroyed %llu, acquired %llu, wait p50 %lld us, p99 %lld us\n",
                static_cast<unsigned long long>(s.created), static_cast<unsigned long long>(s.destroyed()),
                static_cast<unsigned long long>(s.acquired), static_cast<long long>(s.wait_p50.count()),
                static_cast<long long>(s.wait_p99.count()));
    const bool balanced = total == accounts * opening_balance;
    std::printf("total balance %lld: %s\n", total, balanced ? "conserved" : "WRONG");
    return balanced && failed == 0 && unavailable == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checking the total: %s\n", e.what());
    return 1;
  }
}
