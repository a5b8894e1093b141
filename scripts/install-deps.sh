#!/usr/bin/env bash
# Installs, with apt-get, the Debian 12 packages a job needs and the machine lacks.
#   scripts/install-deps.sh test   compilers, Catch2, Meson, the libraries the benchmarks compare
#                                  against, and the servers and clients of the integration tests
#   scripts/install-deps.sh lab    what the lab needs (compiler, SQLite, libpq and PostgreSQL's
#                                  server for its default run; hiredis and libmariadb are used
#                                  when present)
set -euo pipefail

job=${1:-test}
case "$job" in
  test)
    packages=(g++ clang-16 libclang-rt-16-dev llvm-16 cmake ninja-build meson pkg-config catch2
              libboost1.81-dev libpoco-dev libsqlite3-dev)
    # Boost 1.81 rather than Debian's default 1.74: Asio's per-operation cancellation (1.77+),
    # which examples/asio uses. It replaces libboost-dev (the same headers, older).
    # llvm-16 brings the symbolizer TSan needs for its built-in suppressions of libstdc++'s
    # uninstrumented refcounts (an exception freed by a promise on another thread, for one).
    # The integration tests' servers and client libraries (tests/integration, docs/backends.md):
    # the tests start their own servers on random ports and never use the system services these
    # packages may start. pgbench ships in postgresql-15, redis-benchmark in redis-tools.
    # prometheus brings the server the metrics integration test scrapes with, and promtool, which
    # the unit tests run on respool::metrics' output (`promtool check metrics`).
    # mariadb-server, libmariadb-dev (the MySQL C API; it also speaks to MySQL servers) and
    # sysbench, the MySQL benchmark's reference client.
    # pgbouncer: the many-instances test puts it between four processes and one PostgreSQL.
    packages+=(postgresql redis-server redis-tools nginx libpq-dev libhiredis-dev prometheus
               mariadb-server libmariadb-dev sysbench pgbouncer)
    ;;
  # The lab runs on a PostgreSQL server of its own by default (SQLite without one).
  lab) packages=(g++ cmake ninja-build pkg-config libsqlite3-dev libpq-dev postgresql) ;;
  *) echo "install-deps.sh: unknown job '$job' (expected: test or lab)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=()
if ((EUID != 0)); then sudo=(sudo); fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# Servers' packages start system services on install; on a machine without an init system (a CI
# container) that can fail the install. Tell invoke-rc.d not to start anything while we install.
policy=/usr/sbin/policy-rc.d
added_policy=0
if [[ ! -e $policy ]]; then
  printf '#!/bin/sh\nexit 101\n' | "${sudo[@]}" tee "$policy" >/dev/null
  "${sudo[@]}" chmod +x "$policy"
  added_policy=1
fi
cleanup() { if ((added_policy)); then "${sudo[@]}" rm -f "$policy"; fi; }
trap cleanup EXIT
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
