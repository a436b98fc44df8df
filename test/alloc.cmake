# alloc.cmake: the pooled allocator's plain driver and its Valgrind checks.
#
# Included from test/CMakeLists.txt (after rcgc_driver is defined), it builds
# uaf_driver, runs it natively on a clean workload, and, where Valgrind is
# installed and the build has no AddressSanitizer or ThreadSanitizer, runs
# it under memcheck four ways:
#   valgrind_uaf        a read of a released pooled object is an invalid read
#   valgrind_leak       a dropped object is definitely lost, its child
#                       indirectly lost
#   valgrind_clean      a clean program: no error, nothing lost
#   valgrind_reachable  an object alive at exit is still reachable, not lost
#
# Run as a script (cmake -P), the same file performs one of those checks:
# it runs VALGRIND on DRIVER MODE, then requires the exit status
# EXPECT_STATUS, every regular expression of EXPECT in the output and none
# of REJECT.

if(CMAKE_SCRIPT_MODE_FILE)
  execute_process(
    COMMAND ${VALGRIND} ${VALGRIND_ARGS} ${DRIVER} ${MODE}
    RESULT_VARIABLE status
    OUTPUT_VARIABLE out
    ERROR_VARIABLE err)
  set(all "${out}${err}")
  set(problems "")
  if(NOT "${status}" STREQUAL "${EXPECT_STATUS}")
    string(APPEND problems "exit status ${status}, expected ${EXPECT_STATUS}\n")
  endif()
  foreach(re IN LISTS EXPECT)
    if(NOT all MATCHES "${re}")
      string(APPEND problems "missing from the output: ${re}\n")
    endif()
  endforeach()
  foreach(re IN LISTS REJECT)
    if(all MATCHES "${re}")
      string(APPEND problems "unexpected in the output: ${re}\n")
    endif()
  endforeach()
  if(problems)
    message(FATAL_ERROR "uaf_driver ${MODE} under valgrind:\n${problems}"
                        "---- output ----\n${all}")
  endif()
  message(STATUS "uaf_driver ${MODE} under valgrind: as expected")
  return()
endif()

if(NOT COMMAND rcgc_driver)
  message(FATAL_ERROR "alloc.cmake is included from test/CMakeLists.txt")
endif()

set(RCGC_ALLOC_SCRIPT "${CMAKE_CURRENT_LIST_FILE}")

rcgc_driver(uaf_driver SOURCES ${CMAKE_CURRENT_LIST_DIR}/uaf_driver.c
            ARGS clean LABELS "alloc;driver")

find_program(RCGC_VALGRIND valgrind)
if(RCGC_VALGRIND AND NOT RCGC_ASAN AND NOT RCGC_TSAN)
  set(vg_common --error-exitcode=99 --num-callers=20)
  set(vg_leaks --leak-check=full --show-leak-kinds=all)

  # rcgc_alloc_valgrind(<test> <mode> <status> ARGS ... EXPECT ... REJECT ...)
  function(rcgc_alloc_valgrind test mode status)
    cmake_parse_arguments(V "" "" "ARGS;EXPECT;REJECT" ${ARGN})
    add_test(NAME ${test}
             COMMAND ${CMAKE_COMMAND}
                     -DVALGRIND=${RCGC_VALGRIND}
                     "-DVALGRIND_ARGS=${vg_common};${V_ARGS}"
                     -DDRIVER=$<TARGET_FILE:uaf_driver>
                     -DMODE=${mode}
                     -DEXPECT_STATUS=${status}
                     "-DEXPECT=${V_EXPECT}"
                     "-DREJECT=${V_REJECT}"
                     -P ${RCGC_ALLOC_SCRIPT})
    set_tests_properties(${test} PROPERTIES LABELS "alloc;valgrind")
  endfunction()

  set(lost_nothing "definitely lost: [1-9]" "indirectly lost: [1-9]"
                   "possibly lost: [1-9]")
  rcgc_alloc_valgrind(valgrind_uaf uaf 99 ARGS --leak-check=no
                      EXPECT "Invalid read" "free'd")
  rcgc_alloc_valgrind(valgrind_leak leak 99
                      ARGS ${vg_leaks} --errors-for-leak-kinds=definite,indirect
                      EXPECT "definitely lost: [1-9][0-9]* bytes in 1 blocks"
                             "indirectly lost: [1-9][0-9]* bytes in 1 blocks")
  rcgc_alloc_valgrind(valgrind_clean clean 0
                      ARGS ${vg_leaks}
                           --errors-for-leak-kinds=definite,indirect,possible
                      REJECT ${lost_nothing} "Invalid" "uninitialised")
  rcgc_alloc_valgrind(valgrind_reachable reachable 0
                      ARGS ${vg_leaks}
                           --errors-for-leak-kinds=definite,indirect,possible
                      EXPECT "still reachable: [1-9]"
                      REJECT ${lost_nothing} "Invalid" "uninitialised")
endif()
