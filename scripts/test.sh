#!/usr/bin/env bash
# respool's whole test suite, from a fresh Debian 12 machine:
#   installs what is missing, then configures, builds and tests in the GCC debug, TSan,
#   ASan+UBSan and release configurations, checks every public header compiles on its own, and
#   runs the Meson build's tests. Exits non-zero on the first failure. Both sanitizer builds use
#   clang 16 with its warnings as errors, so the plain `clang` preset is left out of the full run
#   (it repeats their compile and the GCC builds' tests); name it to run it.
#
#   bash scripts/test.sh                 everything
#   bash scripts/test.sh gcc-debug tsan  only these CMake presets (Meson is skipped)
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh test

presets=("$@")
run_meson=0
if ((${#presets[@]} == 0)); then
  presets=(gcc-debug tsan asan-ubsan release)
  run_meson=1
fi
jobs=$(nproc)

for preset in "${presets[@]}"; do
  echo "::: [$preset] configure, build, test"
  start=$SECONDS
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  if [[ $preset == gcc-debug ]]; then
    cmake --build --preset "$preset" --target all_verify_interface_header_sets -j "$jobs"
  fi
  ctest --preset "$preset" -j "$jobs"
  echo "::: [$preset] passed in $((SECONDS - start)) s"
done

if ((run_meson)); then
  echo "::: [meson] setup, test"
  start=$SECONDS
  rm -rf build/meson
  # Without debug information: this phase checks the Meson build and its tests, not debugging.
  meson setup build/meson -Ddebug=false >/dev/null
  meson test -C build/meson --print-errorlogs
  echo "::: [meson] passed in $((SECONDS - start)) s"
fi
echo "::: all test configurations passed"
