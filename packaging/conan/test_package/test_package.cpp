// Conan's test_package: a real pool that creates, lends, takes back and counts.
#include <respool/pool.hpp>

#include <cstdio>
#include <string>

int main() {
  int opened = 0;
  respool::pool p{[&] { return std::string("connection ") + std::to_string(++opened); },
                  respool::pool_options{.max_size = 2, .name = "test_package"}};
  {
    respool::lease a = p.acquire();
    respool::lease b = p.acquire();
    if (a->empty() || *a == *b) return 1;
  }
  { respool::lease again = p.acquire(); }
  const auto s = p.stats();
  std::printf("respool %s: %llu acquires, %llu created, %zu idle\n", respool::version_string,
              static_cast<unsigned long long>(s.acquired),
              static_cast<unsigned long long>(s.created), s.idle);
  return s.acquired == 3 && s.created == 2 && s.idle == 2 && opened == 2 ? 0 : 1;
}
