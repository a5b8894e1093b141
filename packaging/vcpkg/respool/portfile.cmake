# An overlay port for a header-only library: `vcpkg install respool --overlay-ports=packaging/vcpkg`.
# It builds from the checkout this overlay lives in; a registry port would use vcpkg_from_github.
get_filename_component(SOURCE_PATH "${CMAKE_CURRENT_LIST_DIR}/../../.." ABSOLUTE)

vcpkg_cmake_configure(
  SOURCE_PATH "${SOURCE_PATH}"
  OPTIONS
    -DRESPOOL_BUILD_TESTS=OFF
    -DRESPOOL_BUILD_EXAMPLES=OFF
    -DRESPOOL_BUILD_BENCHMARKS=OFF
    -DRESPOOL_BUILD_LAB=OFF
    -DRESPOOL_INSTALL=ON
)
vcpkg_cmake_install()
vcpkg_cmake_config_fixup(CONFIG_PATH share/cmake/respool)
vcpkg_fixup_pkgconfig()

# Header-only: nothing in debug/.
file(REMOVE_RECURSE "${CURRENT_PACKAGES_DIR}/debug")
file(INSTALL "${CMAKE_CURRENT_LIST_DIR}/usage" DESTINATION "${CURRENT_PACKAGES_DIR}/share/${PORT}")
vcpkg_install_copyright(FILE_LIST "${SOURCE_PATH}/LICENSE")
