# The client libraries of the example backends (examples/backends/*.hpp), found once per
# directory that includes this file: libpq, hiredis and SQLite 3. Sets
#   RESPOOL_HAVE_LIBPQ    and the target PostgreSQL::PostgreSQL
#   RESPOOL_HAVE_HIREDIS  and the target respool_hiredis (an INTERFACE target wrapping it)
#   RESPOOL_HAVE_SQLITE3  and the target SQLite::SQLite3
# None of these is a dependency of respool itself (its headers use only the standard library).
include_guard(DIRECTORY)

find_package(PostgreSQL QUIET)
set(RESPOOL_HAVE_LIBPQ ${PostgreSQL_FOUND})

find_package(SQLite3 QUIET)
set(RESPOOL_HAVE_SQLITE3 ${SQLite3_FOUND})

set(RESPOOL_HAVE_HIREDIS OFF)
if(NOT TARGET respool_hiredis)
  find_package(PkgConfig QUIET)
  if(PkgConfig_FOUND)
    pkg_check_modules(RESPOOL_BACKEND_HIREDIS QUIET IMPORTED_TARGET GLOBAL hiredis)
  endif()
  if(RESPOOL_BACKEND_HIREDIS_FOUND)
    add_library(respool_hiredis INTERFACE)
    target_link_libraries(respool_hiredis INTERFACE PkgConfig::RESPOOL_BACKEND_HIREDIS)
  else()
    find_path(RESPOOL_BACKEND_HIREDIS_INCLUDE_DIR hiredis/hiredis.h)
    find_library(RESPOOL_BACKEND_HIREDIS_LIBRARY hiredis)
    if(RESPOOL_BACKEND_HIREDIS_INCLUDE_DIR AND RESPOOL_BACKEND_HIREDIS_LIBRARY)
      add_library(respool_hiredis INTERFACE)
      target_include_directories(respool_hiredis SYSTEM INTERFACE "${RESPOOL_BACKEND_HIREDIS_INCLUDE_DIR}")
      target_link_libraries(respool_hiredis INTERFACE "${RESPOOL_BACKEND_HIREDIS_LIBRARY}")
    endif()
  endif()
endif()
if(TARGET respool_hiredis)
  set(RESPOOL_HAVE_HIREDIS ON)
endif()
