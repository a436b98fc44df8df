# rcgc_warnings(target): the warning set every rcgc target is built with.
function(rcgc_warnings target)
  if(CMAKE_C_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(${target} PRIVATE
      -Wall -Wextra -Wpedantic -Wshadow -Wstrict-prototypes
      -Wmissing-prototypes -Wno-unused-parameter)
  endif()
endfunction()
