// What every consumer test builds: real work with a pool and a thread pool, through whatever
// way the library was taken (add_subdirectory, find_package, pkg-config, Meson, Conan).
#include <respool/respool.hpp>

#include <atomic>
#include <cstdio>
#include <future>
#include <memory>
#include <vector>

int main() {
  std::atomic<int> opened{0};
  respool::pool db{[&] { return std::make_unique<int>(++opened); },
                   respool::pool_options{.max_size = 2, .min_idle = 1, .name = "consumer"}};
  respool::thread_pool workers{respool::thread_pool_options{.core_threads = 2, .max_threads = 8}};

  std::vector<std::future<int>> results;
  for (int i = 0; i < 32; ++i) {
    results.push_back(workers.submit([&db, i] {
      respool::lease conn = db.acquire();
      return **conn > 0 ? i : -1;
    }));
  }
  int sum = 0;
  for (auto& r : results) sum += r.get();
  workers.shutdown();

  const auto s = db.stats();
  std::printf("respool %s: sum %d, %llu acquires, %zu connections (max %zu)\n",
              respool::version_string, sum, static_cast<unsigned long long>(s.acquired), s.total,
              s.max_size);
  const bool ok = sum == 32 * 31 / 2 && s.acquired == 32 && s.total <= 2 && opened <= 2 &&
                  s.in_use == 0;
  return ok ? 0 : 1;
}
