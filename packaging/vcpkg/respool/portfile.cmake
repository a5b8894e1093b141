# An overlay port for a header-only library: `vcpkg install respool --overlay-ports=packaging/vcpkg`.
# It builds from the checkout this overlay lives in; the registry variant of this port, built from
# a release archive, is packaging/registry/vcpkg/respool.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

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
