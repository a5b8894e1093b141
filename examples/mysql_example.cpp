// Sells concert seats from many threads through a pool of 4 MySQL / MariaDB connections, then
// checks that every sale is in the table, none twice, and that no request saw another's session.
//
//   respool_example_mysql "host=127.0.0.1 port=3306 user=app password=secret database=app" [threads] [sales]
//
// Shows: a factory with connect, read and write timeouts whose errors carry the server's code
// and message ("ERROR 1045 (28000): Access denied ..."), validation on every borrow with the
// socket check (a connection the server closed, after wait_timeout say, is never handed out),
// and the resetter's mysql_reset_connection: each request tags its session with a user variable
// and a temporary table, one in ten abandons its transaction half-way, and the next user of the
// connection finds none of it.
#include <respool/pool.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "backends/mysql.hpp"

namespace my = respool_examples::mysql;
using namespace std::chrono_literals;

namespace {
// One sale: the first free seat, locked (SKIP LOCKED: concurrent sales take different seats),
// then marked sold. `abandon` stops before COMMIT, as a request that failed half-way would.
void sell(my::connection& c, int customer, bool abandon) {
  c.exec("SET @customer = " + std::to_string(customer));
  c.exec("CREATE TEMPORARY TABLE respool_example_cart (seat int)");
  c.exec("START TRANSACTION");
  const auto seat = c.scalar(
      "SELECT id FROM respool_example_seats WHERE customer IS NULL ORDER BY id LIMIT 1 "
      "FOR UPDATE SKIP LOCKED");
  if (seat.empty()) throw std::runtime_error("sold out");
  c.exec("UPDATE respool_example_seats SET customer = @customer WHERE id = " + seat);
  if (abandon) throw std::runtime_error("the customer's card was declined");
  c.exec("COMMIT");
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: %s CONNINFO [threads] [sales]\n"
                 "  CONNINFO: host=H port=P user=U password=S database=D [connect_timeout=5]\n"
                 "            [read_timeout=30] [write_timeout=30] [charset=utf8mb4] [unix_socket=PATH]\n"
                 "  e.g. %s \"host=127.0.0.1 port=3306 user=app password=secret database=app\"\n",
                 argv[0], argv[0]);
    return 2;
  }
  my::options opts;
  try {
    opts = my::options::parse(argv[1]);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  }
  const int threads = argc > 2 ? std::max(1, std::atoi(argv[2])) : 16;
  const int sales = argc > 3 ? std::max(1, std::atoi(argv[3])) : 2000;

  respool::pool db{my::factory{opts},
                   respool::pool_options{.max_size = 4,
                                         .min_idle = 1,
                                         .acquire_timeout = 5s,
                                         .validate_after_idle = 0ms,  // the socket check is cheap
                                         .name = "box-office"},
                   my::validator{}, my::resetter{}};

  try {
    auto c = db.acquire();
    std::printf("server %s\n", c->server_version().c_str());
    c->exec("CREATE TABLE IF NOT EXISTS respool_example_seats"
            " (id int PRIMARY KEY, customer int NULL) ENGINE=InnoDB");
    c->exec("DELETE FROM respool_example_seats");
    for (int first = 1; first <= sales; first += 500) {  // as many seats as sales, 500 a statement
      std::string values;
      for (int id = first; id < first + 500 && id <= sales; ++id)
        values += (values.empty() ? "(" : ",(") + std::to_string(id) + ", NULL)";
      c->exec("INSERT INTO respool_example_seats VALUES " + values);
    }
  } catch (const respool::error& e) {  // the server is down, or refused us: its own words
    std::fprintf(stderr, "cannot reach the database: %s\n", e.what());
    return 1;
  } catch (const my::error& e) {
    std::fprintf(stderr, "setting up: %s\n", e.what());
    return 1;
  }

  std::atomic<int> sold{0}, abandoned{0}, failed{0}, unavailable{0}, leaks{0};
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = t; i < sales; i += threads) {  // one in ten is abandoned
        const bool abandon = i % 10 == 9;
        try {
          auto c = db.acquire();
          // What the previous user of this connection left must be gone.
          if (c->scalar("SELECT @customer IS NULL") != "1") ++leaks;
          try {
            sell(*c, i + 1, abandon);
            ++sold;
          } catch (const std::runtime_error& e) {
            // The lease goes back with the transaction open, the variable set and the temporary
            // table there: the resetter's mysql_reset_connection drops all three.
            if (abandon && std::string(e.what()).find("declined") != std::string::npos) {
              ++abandoned;
            } else if (++failed == 1) {
              std::fprintf(stderr, "sale failed: %s\n", e.what());
            }
          }
        } catch (const respool::error& e) {
          if (++unavailable == 1) std::fprintf(stderr, "acquire failed: %s\n", e.what());
        } catch (const my::error& e) {
          if (++failed == 1) std::fprintf(stderr, "sale failed: %s\n", e.what());
        }
      }
    });
  }
  for (auto& w : workers) w.join();
  const auto secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  try {
    auto c = db.acquire();
    const int in_table = std::atoi(
        c->scalar("SELECT COUNT(*) FROM respool_example_seats WHERE customer IS NOT NULL").c_str());
    const int customers = std::atoi(
        c->scalar("SELECT COUNT(DISTINCT customer) FROM respool_example_seats").c_str());
    const auto s = db.stats();
    std::printf("%d seats sold, %d sales abandoned half-way, in %.2f s (%.0f/s) by %d threads over "
                "%zu connections\n",
                sold.load(), abandoned.load(), secs, sold.load() / secs, threads, s.max_size);
    std::printf("failed: %d, no connection: %d, session state seen by the next user: %d\n",
                failed.load(), unavailable.load(), leaks.load());
    std::printf("pool: created %llu, destroyed %llu, acquired %llu, wait p50 %lld us, p99 %lld us\n",
                static_cast<unsigned long long>(s.created),
                static_cast<unsigned long long>(s.destroyed()),
                static_cast<unsigned long long>(s.acquired),
                static_cast<long long>(s.wait_p50.count()),
                static_cast<long long>(s.wait_p99.count()));
    const bool consistent = in_table == sold.load() && customers == in_table;
    std::printf("seats marked sold %d, distinct customers %d: %s\n", in_table, customers,
                consistent ? "consistent" : "WRONG");
    return consistent && failed == 0 && unavailable == 0 && leaks == 0 ? 0 : 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "checking the sales: %s\n", e.what());
    return 1;
  }
}
