#include <respool/respool.hpp>

#include <cstdio>
#include <cstring>

int main() {
  const std::error_code ec = respool::errc::timeout;
  if (ec.category().name() != std::string_view("respool")) return 1;
  if (std::strcmp(respool::version_string, RESPOOL_VERSION_STRING) != 0) return 1;
  std::printf("respool %s consumed through add_subdirectory\n", respool::version_string);
  return 0;
}
