#!/usr/bin/env bash
# The resource pool's slow path, measured in one run (the figures and targets of the README's
# "Performance" section): each benchmark prints JSON lines, the last of each its targets.
#
#   bash benchmarks/slow_path.sh            build the release preset, then run everything
#   bash benchmarks/slow_path.sh --no-pg    without the PostgreSQL case (needs the server)
#
# Run it on an otherwise idle machine: the figures are ratios measured side by side, but two
# cores shared with a compiler still move them.
set -euo pipefail
cd "$(dirname "$0")/.."

with_pg=1
for a in "$@"; do
  case "$a" in
    --no-pg) with_pg=0 ;;
    *) echo "usage: $0 [--no-pg]" >&2; exit 2 ;;
  esac
done

cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" >/dev/null
bin=build/release/benchmarks

echo "# availability under a flaky backend; a down backend answered fast" >&2
"$bin/respool_bench_pool_faults"
echo "# 8 threads on 4 resources, 1 us hold, against the mutex + condvar pool" >&2
"$bin/respool_bench_pool_contended"
echo "# the uncontended cycle (1-8 threads), allocations per cycle" >&2
"$bin/respool_bench_pool_cycle"
echo "# max_size 10,000 against 8" >&2
"$bin/respool_bench_pool_scale"
echo "# acquire(t) with the CPU saturated" >&2
"$bin/respool_bench_pool_deadlines"
if ((with_pg)); then
  if [[ -x $bin/respool_bench_pg_select ]]; then
    echo "# PostgreSQL, pool of 4, 16 and 64 threads: respool, the mutex pool, pgbench -S -c 4" >&2
    "$bin/respool_bench_pg_select" --threads=16,64 --seconds=3 --runs=3
  else
    echo "# pg_select not built (libpq missing): bash scripts/install-deps.sh test" >&2
  fi
fi
