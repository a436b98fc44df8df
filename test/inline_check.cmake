# Compiles inline_fast_path.c with -O2 -S and checks the generated code of
# the inline fast paths.
execute_process(
  COMMAND ${C_COMPILER} -std=c11 -O2 -S -o - -I${SOURCE_DIR}/include
          -I${BINARY_DIR}/include ${SOURCE_DIR}/test/inline_fast_path.c
  OUTPUT_VARIABLE asm RESULT_VARIABLE rv)
if(NOT rv EQUAL 0)
  message(FATAL_ERROR "compiling inline_fast_path.c failed")
endif()
string(REGEX MATCH "check_retain:.*check_release:" retain "${asm}")
string(REGEX MATCH "check_release:.*check_alloc_known:" release "${asm}")
string(REGEX MATCH "check_alloc_known:.*check_alloc_unknown:" known "${asm}")
string(REGEX MATCH "check_alloc_unknown:.*" unknown "${asm}")
if(retain STREQUAL "" OR release STREQUAL "" OR known STREQUAL "" OR
   unknown STREQUAL "")
  message(FATAL_ERROR "functions not found in:\n${asm}")
endif()
if(retain MATCHES "[ \t]call")
  message(FATAL_ERROR "rc_retain is not call-free:\n${retain}")
endif()
string(REGEX MATCHALL "[ \t]call[^\n]*" calls "${release}")
if(calls)
  message(FATAL_ERROR "rc_release calls instead of tail-jumping: ${calls}")
endif()
# A pair's descriptor is read at compile time: the cyclic entry is called,
# and the two stores of the caller leave no zeroing to do.
if(NOT known MATCHES "[ \t](callq?|jmpq?)[ \t]+rc__alloc_cyclic")
  message(FATAL_ERROR "rc_alloc of a static const type does not call "
                      "rc__alloc_cyclic:\n${known}")
endif()
if(known MATCHES "[ \t](callq?|jmpq?)[ \t]+(rc_alloc|memset)[^_a-z]" OR
   known MATCHES "movups|movaps|pxor")
  message(FATAL_ERROR "rc_alloc of a static const type classifies or zeroes "
                      "at run time:\n${known}")
endif()
# Any other descriptor goes to rc_alloc itself.
if(NOT unknown MATCHES "[ \t](callq?|jmpq?)[ \t]+rc_alloc[^_a-z]")
  message(FATAL_ERROR "rc_alloc of an unknown type is not rc_alloc:\n${unknown}")
endif()
message(STATUS "rc_retain: no call; rc_release: tail jumps only; rc_alloc: "
               "static const types classified and zeroed at compile time")
