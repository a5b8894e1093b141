#pragma once
// Lets one test source build against Catch2 3 (catch_all) or Catch2 2 (single header).
#if RESPOOL_CATCH2_MAJOR >= 3
#include <catch2/catch_all.hpp>
#else
#include <catch2/catch.hpp>
#endif
