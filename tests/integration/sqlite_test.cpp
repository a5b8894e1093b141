// respool with SQLite, through the example adapter (examples/backends/sqlite.hpp): a real file
// database in WAL mode in a temp dir. SQLite has no server: "the server's view" of how many
// connections are open is the process's own open file descriptors on the database file.
#include <respool/pool.hpp>

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "backends/sqlite.hpp"
#include "load.hpp"
#include "error_text.hpp"
#include "respool_catch.hpp"
#include "servers.hpp"

using namespace std::chrono_literals;
using respool_test::cause_text;
namespace sq = respool_examples::sqlite;
namespace fs = std::filesystem;
using respool_it::steady;

namespace {

using sqlite_pool = respool::pool<sq::factory, sq::validator, sq::resetter>;

// Open descriptors of this process on `file` (one per SQLite connection to it).
auto open_descriptors(const fs::path& file) -> long {
  long n = 0;
  std::error_code ec;
  const auto target = fs::weakly_canonical(file, ec);
  for (const auto& e : fs::directory_iterator("/proc/self/fd", ec)) {
    std::error_code lec;
    const auto link = fs::read_symlink(e.path(), lec);
    if (!lec && link == target) ++n;
  }
  return n;
}

}  // namespace

TEST_CASE("64 threads through a pool of 4 on a WAL file: every operation succeeds, never more than 4 open") {
  respool_it::temp_dir dir("sqlite");
  const auto path = dir.path() / "load.db";
  sqlite_pool db{sq::factory{{.path = path.string()}},
                 {.max_size = 4, .acquire_timeout = 60s, .name = "sqlite-load"}};
  {
    auto c = db.acquire();
    c->exec("CREATE TABLE items (id INTEGER PRIMARY KEY, thread INTEGER NOT NULL, n INTEGER NOT NULL)");
    auto mode = c->prepare("PRAGMA journal_mode");
    REQUIRE(mode.step());
    CHECK(mode.column_text(0) == "wal");
  }
  respool_it::max_sampler open_files([&] { return open_descriptors(path); }, 2ms);
  respool_it::max_sampler in_pool([&] { return static_cast<long>(db.stats().total); }, 1ms);

  constexpr int threads = 64;
  constexpr int per_thread = 40;
  const auto [ok, failed, first_failure] = respool_it::run_workers(
      threads, per_thread, 120s, "sqlite load", [&](int t, int i) -> bool {
        auto c = db.acquire();
        if (i % 2 == 0) {
          auto ins = c->prepare("INSERT INTO items (thread, n) VALUES (?1, ?2)");
          ins.bind(1, std::int64_t{t}).bind(2, std::int64_t{i});
          ins.run();
        } else {
          auto q = c->prepare("SELECT count(*) FROM items WHERE thread = ?1");
          q.bind(1, std::int64_t{t});
          if (!q.step() || q.column_int64(0) < 1) throw std::runtime_error("own insert not visible");
        }
        return true;
      });
  INFO("first failure: " << first_failure);
  open_files.stop();
  in_pool.stop();

  CHECK(failed == 0);
  CHECK(ok == threads * per_thread);
  auto c = db.acquire();
  auto q = c->prepare("SELECT count(*) FROM items");
  REQUIRE(q.step());
  CHECK(q.column_int64(0) == threads * per_thread / 2);
  CHECK(open_files.max() >= 1);
  CHECK(open_files.max() <= 4);
  CHECK(in_pool.max() <= 4);
  CHECK(db.stats().created <= 4);
}

TEST_CASE("a database that cannot be opened: a fast error with SQLite's message") {
  respool_it::temp_dir dir("sqlite");
  const auto path = dir.path() / "no" / "such" / "dir" / "x.db";
  sqlite_pool db{sq::factory{{.path = path.string()}},
                 {.max_size = 4, .acquire_timeout = 10s, .name = "sqlite-missing"}};
  const auto start = steady::now();
  try {
    auto c = db.acquire();
    FAIL("acquire should fail");
  } catch (const respool::error& e) {
    CHECK(steady::now() - start < 1s);
    CHECK(e.code() == respool::errc::create_failed);
    CHECK(std::string(e.what()).find("unable to open database file") != std::string::npos);
    CHECK(cause_text(e).find(path.string()) != std::string::npos);
  }
}

TEST_CASE("state does not leak between users: open transactions and running statements") {
  respool_it::temp_dir dir("sqlite");
  const auto path = dir.path() / "session.db";
  sqlite_pool db{sq::factory{{.path = path.string(), .busy_timeout = 200ms}},
                 {.max_size = 2, .name = "sqlite-session"}};
  {
    auto c = db.acquire();
    c->exec("CREATE TABLE t (x INTEGER)");
    c->exec("INSERT INTO t VALUES (1), (2), (3)");
  }
  {
    auto c = db.acquire();  // a request that failed between BEGIN and COMMIT
    c->exec("BEGIN IMMEDIATE");
    c->exec("INSERT INTO t VALUES (99)");
  }
  {
    // Both connections: neither holds the write lock, and the insert was rolled back.
    auto c1 = db.acquire();
    auto c2 = db.acquire();
    for (auto* c : {&c1, &c2}) {
      CHECK(!(*c)->in_transaction());
      (*c)->exec("BEGIN IMMEDIATE");  // fails with SQLITE_BUSY if the lock leaked
      (*c)->exec("ROLLBACK");
      auto q = (*c)->prepare("SELECT count(*) FROM t WHERE x = 99");
      REQUIRE(q.step());
      CHECK(q.column_int64(0) == 0);
    }
  }
  {
    auto c = db.acquire();  // a read left half-way through its rows
    auto q = c->prepare("SELECT x FROM t");
    REQUIRE(q.step());
    auto raw = c->get();
    q = sq::statement{};  // the statement wrapper resets it; the resetter catches raw use too
    sqlite3_stmt* leftover = nullptr;
    REQUIRE(sqlite3_prepare_v2(raw, "SELECT x FROM t", -1, &leftover, nullptr) == SQLITE_OK);
    REQUIRE(sqlite3_step(leftover) == SQLITE_ROW);
    c.return_to_pool();
    CHECK(sqlite3_stmt_busy(leftover) == 0);
    sqlite3_finalize(leftover);
  }
}
