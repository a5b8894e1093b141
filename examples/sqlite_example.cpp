// An event log in a SQLite file database (WAL mode): writers and readers on many threads through
// a pool of 4 connections, each with its own cache of prepared statements.
//
//   respool_example_sqlite PATH/TO/events.db [threads] [operations]
//
// Shows: a file database in WAL mode (readers never wait for the writer), prepared statements
// compiled once per connection, the busy timeout absorbing write contention, and a resetter that
// rolls back a transaction a failed request left open.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "backends/sqlite.hpp"

namespace sq = respool_examples::sqlite;
using namespace std::chrono_literals;

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s DATABASE_FILE [threads] [operations]\n", argv[0]);
    return 2;
  }
  const std::string path = argv[1];
  const int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 8;
  const int operations = argc > 3 ? std::max(1, std::atoi(argv[3])) : 4000;

  respool::pool db{sq::factory{{.path = path}},
                   respool::pool_options{.max_size = 4, .acquire_timeout = 10s, .name = "events"},
                   sq::validator{}, sq::resetter{}};

  try {
    auto c = db.acquire();
    c->exec("CREATE TABLE IF NOT EXISTS events (id INTEGER PRIMARY KEY, thread INTEGER NOT NULL,"
            " payload TEXT NOT NULL)");
    c->exec("DELETE FROM events");
  } catch (const std::exception& e) {  // respool::error with SQLite's message as its cause
    std::fprintf(stderr, "cannot open %s: %s\n", path.c_str(), e.what());
    return 1;
  }

  std::atomic<int> writes{0}, reads{0}, failed{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = t; i < operations; i += threads) {
        try {
          auto c = db.acquire();
          if (i % 4 == 0) {  // one write in four
            auto ins = c->prepare("INSERT INTO events (thread, payload) VALUES (?1, ?2)");
            ins.bind(1, std::int64_t{t}).bind(2, "event " + std::to_string(i));
            ins.run();
            ++writes;
          } else {
            auto q = c->prepare("SELECT count(*) FROM events WHERE thread = ?1");
            q.bind(1, std::int64_t{t});
            if (q.step()) ++reads;
          }
        } catch (const std::exception& e) {
          if (++failed == 1) std::fprintf(stderr, "operation failed: %s\n", e.what());
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  try {
    auto c = db.acquire();
    auto q = c->prepare("SELECT count(*) FROM events");
    const auto rows = q.step() ? q.column_int64(0) : -1;
    const auto s = db.stats();
    std::printf("%d writes, %d reads in %.2f s (%.0f ops/s) by %d threads; %lld rows\n",
                writes.load(), reads.load(), secs, (writes + reads) / secs, threads,
                static_cast<long long>(rows));
    std::printf("pool: %llu connections for %llu acquires; this one caches %zu statements; "
                "failed: %d\n",
                static_cast<unsigned long long>(s.created), static_cast<unsigned long long>(s.acquired),
                c->cached_statements(), failed.load());
    return failed == 0 && rows == writes ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "counting: %s\n", e.what());
    return 1;
  }
}
