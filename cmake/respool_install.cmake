# Install rules: the headers, an exported target, a package config (find_package) and a
# pkg-config file. respool is header-only and architecture-independent, so everything goes under
# share/ (`share/cmake/respool`, `share/pkgconfig`).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(RESPOOL_INSTALL_CMAKEDIR "${CMAKE_INSTALL_DATADIR}/cmake/respool"
    CACHE STRING "Where respoolConfig.cmake is installed, relative to the prefix")
set(RESPOOL_INSTALL_PKGCONFIGDIR "${CMAKE_INSTALL_DATADIR}/pkgconfig"
    CACHE STRING "Where respool.pc is installed, relative to the prefix")

install(TARGETS respool EXPORT respoolTargets FILE_SET HEADERS)
install(EXPORT respoolTargets NAMESPACE respool:: DESTINATION "${RESPOOL_INSTALL_CMAKEDIR}")

configure_package_config_file("${CMAKE_CURRENT_LIST_DIR}/respoolConfig.cmake.in"
  "${PROJECT_BINARY_DIR}/respoolConfig.cmake"
  INSTALL_DESTINATION "${RESPOOL_INSTALL_CMAKEDIR}")
write_basic_package_version_file("${PROJECT_BINARY_DIR}/respoolConfigVersion.cmake"
  COMPATIBILITY SameMajorVersion ARCH_INDEPENDENT)
install(FILES "${PROJECT_BINARY_DIR}/respoolConfig.cmake"
              "${PROJECT_BINARY_DIR}/respoolConfigVersion.cmake"
        DESTINATION "${RESPOOL_INSTALL_CMAKEDIR}")

# pkg-config: prefix relative to the .pc file's own directory, and includedir relative to the
# prefix, so a relocated install still works wherever RESPOOL_INSTALL_PKGCONFIGDIR puts it.
if(IS_ABSOLUTE "${RESPOOL_INSTALL_PKGCONFIGDIR}")
  file(RELATIVE_PATH RESPOOL_PC_TO_PREFIX "${RESPOOL_INSTALL_PKGCONFIGDIR}" "${CMAKE_INSTALL_PREFIX}")
else()
  file(RELATIVE_PATH RESPOOL_PC_TO_PREFIX "/prefix/${RESPOOL_INSTALL_PKGCONFIGDIR}" "/prefix")
endif()
string(REGEX REPLACE "/$" "" RESPOOL_PC_TO_PREFIX "${RESPOOL_PC_TO_PREFIX}")
set(RESPOOL_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(RESPOOL_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
endif()
configure_file("${CMAKE_CURRENT_LIST_DIR}/respool.pc.in" "${PROJECT_BINARY_DIR}/respool.pc" @ONLY)
install(FILES "${PROJECT_BINARY_DIR}/respool.pc" DESTINATION "${RESPOOL_INSTALL_PKGCONFIGDIR}")
