// Catch2 2's main for builds that do not link Catch2WithMain (Meson with Debian's catch2).
#define CATCH_CONFIG_MAIN
#include "respool_catch.hpp"
