#!/usr/bin/env bash
# The pool lab in one command, from a fresh Debian 12 machine: installs what is missing (a
# compiler, CMake, Ninja, SQLite's and libpq's headers, PostgreSQL's server), builds respool-lab
# in release mode in build/lab, and runs it. With no arguments it sweeps pool sizes on a
# PostgreSQL server of its own (on 127.0.0.1, removed afterwards; the embedded SQLite database
# when PostgreSQL cannot run) and says where the CSV and the SVG chart are (lab-results/).
#
#   bash scripts/lab.sh                                     the default sweep
#   bash scripts/lab.sh --sizes 2,4,8 --duration 5          any respool-lab options
#   bash scripts/lab.sh --backend sqlite                    the embedded database
#   bash scripts/lab.sh --backend postgres --conninfo "host=127.0.0.1 dbname=app"
#   bash scripts/lab.sh --backend mysql                     on a MariaDB server it starts itself
#   bash scripts/lab.sh --help                              what it measures, every option
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh lab

echo "::: building respool-lab (release) in build/lab"
cmake -S . -B build/lab -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DRESPOOL_BUILD_LAB=ON -DRESPOOL_BUILD_TESTS=OFF -DRESPOOL_BUILD_EXAMPLES=OFF \
  -DRESPOOL_BUILD_BENCHMARKS=OFF -DRESPOOL_INSTALL=OFF >/dev/null
cmake --build build/lab --target respool-lab -j "$(nproc)"
if [[ ! -x build/lab/lab/respool-lab ]]; then
  echo "lab.sh: respool-lab was not built (is libsqlite3-dev installed?)" >&2
  exit 1
fi

echo "::: running respool-lab $*"
exec build/lab/lab/respool-lab "$@"
