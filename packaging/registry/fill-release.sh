#!/usr/bin/env bash
# Fills in the registry recipes for a release: the version and the release archive's hashes.
#
#   packaging/registry/fill-release.sh VERSION ARCHIVE
#
# ARCHIVE is the file the registries will download for the tag vVERSION,
# https://github.com/respool/respool/archive/refs/tags/vVERSION.tar.gz (download it after tagging;
# a local `git archive` is not byte-for-byte the same file). Writes:
#   vcpkg/respool/vcpkg.json       "version"
#   vcpkg/respool/portfile.cmake   SHA512 of the archive
#   conan/config.yml               the version, in folder `all`
#   conan/all/conandata.yml        the version's url and sha256 (other versions are kept)
set -euo pipefail
if (($# != 2)); then
  echo "usage: $0 VERSION ARCHIVE" >&2
  exit 2
fi
version=$1 archive=$2
if [[ ! $version =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "$0: VERSION must be MAJOR.MINOR.PATCH, not '$version'" >&2
  exit 2
fi
if [[ ! -f $archive ]]; then
  echo "$0: no archive at '$archive'" >&2
  exit 2
fi
here=$(cd "$(dirname "$0")" && pwd)
sha512=$(sha512sum "$archive" | cut -d' ' -f1)
sha256=$(sha256sum "$archive" | cut -d' ' -f1)
url="https://github.com/respool/respool/archive/refs/tags/v$version.tar.gz"

sed -i -E "s/\"version\": \"[^\"]*\"/\"version\": \"$version\"/" "$here/vcpkg/respool/vcpkg.json"
sed -i -E "s/^  SHA512 [0-9a-f]+$/  SHA512 $sha512/" "$here/vcpkg/respool/portfile.cmake"

# conandata.yml: this version's entry first, then every other version's as it was.
data=$here/conan/all/conandata.yml
{
  echo "sources:"
  echo "  \"$version\":"
  echo "    url: \"$url\""
  echo "    sha256: \"$sha256\""
  awk -v v="  \"$version\":" '
    /^sources:/ { next }
    /^  "/ { skip = ($0 == v) }
    !skip { print }' "$data"
} > "$data.new"
mv "$data.new" "$data"

config=$here/conan/config.yml
if ! grep -q "^  \"$version\":" "$config"; then
  { echo "versions:"; echo "  \"$version\":"; echo "    folder: all"; grep -v '^versions:' "$config"; } > "$config.new"
  mv "$config.new" "$config"
fi
echo "filled in respool $version: sha512 ${sha512:0:16}..., sha256 ${sha256:0:16}..."
