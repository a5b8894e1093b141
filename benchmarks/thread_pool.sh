#!/usr/bin/env bash
# The thread pool, measured in one run (the figures and targets of the README's thread-pool
# "Benchmarks" table): each benchmark prints JSON lines, the last of each its ratios and targets.
#
#   bash benchmarks/thread_pool.sh
#
# Run it on an otherwise idle machine: the figures are ratios measured side by side, but two
# cores shared with a compiler still move them.
set -euo pipefail
cd "$(dirname "$0")/.."

cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)" >/dev/null
bin=build/release/benchmarks

echo "# trickle CPU per task and 8 producers under block, against the plain pool" >&2
"$bin/respool_bench_thread_pool_idle_cost" 5
echo "# the IO burst (1,000 x 2 ms, core 2, max 64) against the ideal 31.25 ms" >&2
"$bin/respool_bench_io_burst" 5
echo "# empty tasks from one producer, against boost::asio::thread_pool" >&2
"$bin/respool_bench_noop_throughput" 7
