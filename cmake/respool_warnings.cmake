# Strict warnings for respool's own targets (tests, examples, benchmarks), never for the
# INTERFACE target a consumer links.
function(respool_strict_warnings target)
  if(MSVC)
    target_compile_options(${target} PRIVATE /W4 /WX /permissive-)
  else()
    target_compile_options(${target} PRIVATE -Wall -Wextra -Wpedantic -Wconversion -Wshadow -Werror)
  endif()
endfunction()
