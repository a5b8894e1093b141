#!/usr/bin/env bash
# Builds and runs the consumer program the way a user of one build system would.
#   consume.sh pkg-config SOURCE_DIR WORK_DIR PREFIX   against an install prefix, with pkg-config
#   consume.sh meson      SOURCE_DIR WORK_DIR          respool as a Meson subproject
#   consume.sh conan      SOURCE_DIR WORK_DIR PREFIX   the Conan test_package against an install
set -euo pipefail
mode=$1 src=$2 work=$3
rm -rf "$work"
mkdir -p "$work"
case "$mode" in
  pkg-config)
    prefix=$4
    export PKG_CONFIG_PATH="$prefix/share/pkgconfig"
    pkg-config --exists --print-errors 'respool >= 1.0'
    # shellcheck disable=SC2046  # pkg-config's flags are words
    "${CXX:-c++}" $(pkg-config --cflags respool) "$src/tests/consumers/common/consumer_main.cpp" \
      -o "$work/consumer" $(pkg-config --libs respool)
    "$work/consumer"
    ;;
  meson)
    cp "$src/tests/consumers/meson_subproject/meson.build" "$src/tests/consumers/common/consumer_main.cpp" "$work/"
    mkdir -p "$work/subprojects"
    ln -s "$src" "$work/subprojects/respool"
    meson setup "$work/build" "$work" >/dev/null
    meson compile -C "$work/build"
    meson test -C "$work/build" --print-errorlogs
    "$work/build/consumer"
    ;;
  conan)
    prefix=$4
    cmake -S "$src/packaging/conan/test_package" -B "$work" -G Ninja -DCMAKE_PREFIX_PATH="$prefix" >/dev/null
    cmake --build "$work"
    "$work/test_package"
    ;;
  *)
    echo "consume.sh: unknown mode '$mode'" >&2
    exit 2
    ;;
esac
