# The client libraries of the example backends (examples/backends/*.hpp), found once per
# directory that includes this file: libpq, hiredis, SQLite 3 and MariaDB Connector/C. Sets
#   RESPOOL_HAVE_LIBPQ    and the target PostgreSQL::PostgreSQL
#   RESPOOL_HAVE_HIREDIS  and the target respool_hiredis (an INTERFACE target wrapping it)
#   RESPOOL_HAVE_SQLITE3  and the target SQLite::SQLite3
#   RESPOOL_HAVE_MARIADB  and the target respool_mariadb (an INTERFACE target wrapping
#                         libmariadb, the MySQL C API that also speaks to MySQL servers)
# None of these is a dependency of respool itself (its headers use only the standard library).
include_guard(DIRECTORY)

find_package(PostgreSQL QUIET)
set(RESPOOL_HAVE_LIBPQ ${PostgreSQL_FOUND})

find_package(SQLite3 QUIET)
set(RESPOOL_HAVE_SQLITE3 ${SQLite3_FOUND})

# The INTERFACE target respool_<name> for a library without a CMake package: from its
# pkg-config module, else from its header (`header`, also looked for under `suffix`/) and
# library (`library`).
function(_respool_find_client_library name module header suffix library)
  set(target respool_${name})
  if(TARGET ${target})
    return()
  endif()
  string(TOUPPER "RESPOOL_BACKEND_${name}" _var)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(${_var} QUIET IMPORTED_TARGET GLOBAL ${module})
  endif()
  if(${_var}_FOUND)
    add_library(${target} INTERFACE)
    target_link_libraries(${target} INTERFACE PkgConfig::${_var})
    return()
  endif()
  find_path(${_var}_INCLUDE_DIR ${header} PATH_SUFFIXES ${suffix})
  find_library(${_var}_LIBRARY ${library})
  if(${_var}_INCLUDE_DIR AND ${_var}_LIBRARY)
    add_library(${target} INTERFACE)
    target_include_directories(${target} SYSTEM INTERFACE "${${_var}_INCLUDE_DIR}")
    target_link_libraries(${target} INTERFACE "${${_var}_LIBRARY}")
  endif()
endfunction()

_respool_find_client_library(hiredis hiredis hiredis/hiredis.h "" hiredis)
set(RESPOOL_HAVE_HIREDIS OFF)
if(TARGET respool_hiredis)
  set(RESPOOL_HAVE_HIREDIS ON)
endif()

_respool_find_client_library(mariadb libmariadb mysql.h mariadb mariadb)
set(RESPOOL_HAVE_MARIADB OFF)
if(TARGET respool_mariadb)
  set(RESPOOL_HAVE_MARIADB ON)
endif()
