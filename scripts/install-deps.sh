#!/usr/bin/env bash
# Installs, with apt-get, the Debian 12 packages a job needs and the machine lacks.
#   scripts/install-deps.sh test   compilers, Catch2, Meson, servers and client libraries for tests
#   scripts/install-deps.sh lab    what the lab needs (compiler, SQLite; clients if present)
set -euo pipefail

job=${1:-test}
case "$job" in
  test) packages=(g++ clang-16 libclang-rt-16-dev cmake ninja-build meson pkg-config catch2) ;;
  lab) packages=(g++ cmake ninja-build pkg-config libsqlite3-dev) ;;
  *) echo "install-deps.sh: unknown job '$job' (expected: test or lab)" >&2; exit 2 ;;
esac
# Extra packages later jobs add (benchmarks, integration servers) come through RESPOOL_EXTRA_PACKAGES.
if [[ -n "${RESPOOL_EXTRA_PACKAGES:-}" ]]; then
  read -r -a extra <<<"$RESPOOL_EXTRA_PACKAGES"
  packages+=("${extra[@]}")
fi

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
"${sudo[@]}" apt-get update -q
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"
