# The packaging files that cannot read version.hpp themselves must carry its version.
file(READ "${SOURCE_DIR}/packaging/vcpkg/respool/vcpkg.json" vcpkg_json)
string(JSON vcpkg_version GET "${vcpkg_json}" version)
if(NOT vcpkg_version STREQUAL VERSION)
  message(FATAL_ERROR "packaging/vcpkg/respool/vcpkg.json has version ${vcpkg_version}, "
                      "include/respool/version.hpp says ${VERSION}")
endif()
file(READ "${SOURCE_DIR}/packaging/meson/respool.wrap" wrap)
if(NOT wrap MATCHES "revision = v${VERSION}\n")
  message(FATAL_ERROR "packaging/meson/respool.wrap does not point at v${VERSION}")
endif()
message(STATUS "packaging versions agree: ${VERSION}")
