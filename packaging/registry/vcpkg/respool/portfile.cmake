# The registry port (for microsoft/vcpkg or a private registry): builds from the release archive
# GitHub makes for the tag v${VERSION}. packaging/registry/fill-release.sh writes the version
# (vcpkg.json) and the archive's SHA512 (below); nothing else changes from release to release.
# The overlay port in packaging/vcpkg/respool is the same port building from a checkout.
vcpkg_from_github(
  OUT_SOURCE_PATH SOURCE_PATH
  REPO respool/respool
  REF "v${VERSION}"
  SHA512 0
  HEAD_REF main
)

set(VCPKG_BUILD_TYPE release)  # header-only: a debug build would install the same files
vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DRESPOOL_BUILD_TESTS=OFF
    -DRESPOOL_BUILD_EXAMPLES=OFF
    -DRESPOOL_BUILD_BENCHMARKS=OFF
    -DRESPOOL_BUILD_LAB=OFF
    -DRESPOOL_INSTALL=ON
    # respool.pc has `Libs: -pthread`; vcpkg accepts only Libs-free .pc files in share/pkgconfig.
    -DRESPOOL_INSTALL_PKGCONFIGDIR=lib/pkgconfig
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/respool)
vcpkg_fixup_pkgconfig()

file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
