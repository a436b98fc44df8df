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
string(REGEX MATCH "check_release:.*" release "${asm}")
if(retain STREQUAL "" OR release STREQUAL "")
  message(FATAL_ERROR "functions not found in:\n${asm}")
endif()
if(retain MATCHES "[ \t]call")
  message(FATAL_ERROR "rc_retain is not call-free:\n${retain}")
endif()
string(REGEX MATCHALL "[ \t]call[^\n]*" calls "${release}")
if(calls)
  message(FATAL_ERROR "rc_release calls instead of tail-jumping: ${calls}")
endif()
message(STATUS "rc_retain: no call; rc_release: tail jumps only")
