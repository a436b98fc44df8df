# extra.cmake: the leaky sample and the CTest entries that check what the
# samples print and write: the leak report at exit (RCGC_LEAK_REPORT), the
# demo's heap pictures, and Valgrind memcheck runs.
#
# Included from samples/CMakeLists.txt, this file defines targets and tests.
# Run as a script, it is the driver those tests use:
#   cmake -DCASE=<case> -DPROG=<program> [-DARG=<arg>] -DDEBUG=<0|1>
#         -P extra.cmake
# It runs PROG with the case's RCGC_LEAK_REPORT setting and checks its exit
# status, its output and the files it writes.

if(CMAKE_SCRIPT_MODE_FILE)
  cmake_policy(SET CMP0007 NEW)
  function(fail what)
    message(FATAL_ERROR "${CASE}: ${what}\n--- exit status: ${rc}\n"
                        "--- stdout:\n${out}\n--- stderr:\n${err}")
  endfunction()

  # Fails unless `text` contains `needle` exactly (not as a regex).
  function(expect_in text needle what)
    string(FIND "${text}" "${needle}" at)
    if(at EQUAL -1)
      fail("${what}: missing \"${needle}\"")
    endif()
  endfunction()

  # The number right-aligned in eight columns, as the report prints it.
  function(pad8 value out_var)
    string(LENGTH "${value}" len)
    math(EXPR n "8 - ${len}")
    string(REPEAT " " ${n} spaces)
    set(${out_var} "${spaces}${value}" PARENT_SCOPE)
  endfunction()

  # Matches of regex in text once ';', '[' and ']' (which CMake lists do
  # not keep intact) are written ',', '<' and '>'.
  function(count_lines text regex out_var)
    string(REPLACE ";" "," text "${text}")
    string(REPLACE "[" "<" text "${text}")
    string(REPLACE "]" ">" text "${text}")
    string(REGEX MATCHALL "${regex}" found "${text}")
    list(LENGTH found n)
    set(${out_var} ${n} PARENT_SCOPE)
  endfunction()

  if(CASE MATCHES "_strict$")
    set(env RCGC_LEAK_REPORT=strict)
  elseif(CASE MATCHES "_report$")
    set(env RCGC_LEAK_REPORT=1)
  else()
    set(env --unset=RCGC_LEAK_REPORT)
  endif()
  execute_process(COMMAND ${CMAKE_COMMAND} -E env ${env} ${PROG} ${ARG}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)

  # Block bytes: 16-byte header + payload (+ 32-byte site prefix in debug).
  if(DEBUG)
    set(entry_bytes 72)
    set(cache_bytes 64)
  else()
    set(entry_bytes 40)
    set(cache_bytes 32)
  endif()
  math(EXPR entries "3 * ${entry_bytes}")
  math(EXPR total "${entries} + ${cache_bytes}")

  if(CASE MATCHES "^leaky_(strict|report)$")
    if(CASE STREQUAL "leaky_strict" AND NOT rc EQUAL 1)
      fail("strict mode must exit with status 1 on a leak")
    elseif(CASE STREQUAL "leaky_report" AND NOT rc EQUAL 0)
      fail("RCGC_LEAK_REPORT=1 must not change the exit status")
    endif()
    expect_in("${out}" "leaky: cached 3 entries" "stdout")
    expect_in("${err}" "rcgc: 4 live objects, ${total} bytes\n  by type:\n"
              "report header")
    pad8(${entries} e)
    pad8(${cache_bytes} c)
    expect_in("${err}" "    ${e} bytes in 3 objects of type entry\n    ${c} bytes in 1 object of type cache\n"
              "groups, largest first")
    expect_in("${err}" "SUMMARY: rcgc: ${total} bytes leaked in 4 objects.\n"
              "summary")
    if(err MATCHES "scratch")
      fail("the scratch ring is garbage: the final pass frees it")
    endif()
    count_lines("${err}" "SUMMARY: rcgc:" n)
    if(NOT n EQUAL 1)
      fail("one report expected, found ${n}")
    endif()
    if(DEBUG AND NOT err MATCHES "of type entry allocated at [^\n]*leaky\\.c:[0-9]+\n")
      fail("debug builds name allocation sites")
    endif()
  elseif(CASE STREQUAL "leaky_quiet" OR CASE MATCHES "^(hello|demo)_strict$")
    if(NOT rc EQUAL 0)
      fail("exit status 0 expected")
    endif()
    if(NOT err STREQUAL "")
      fail("nothing expected on stderr")
    endif()
  else()
    fail("unknown case")
  endif()

  if(CASE STREQUAL "demo_strict")
    expect_in("${out}" "2. rc_collect() freed 6 objects" "stdout")
    expect_in("${out}" "rcgc: no live objects" "stdout")
    file(READ "${ARG}/heap-before.dot" before)
    file(READ "${ARG}/heap-after.dot" after)
    count_lines("${before}" "\n  \"0x[0-9a-f]+\" <label=" nodes)
    count_lines("${before}" "\n  \"0x[0-9a-f]+\" -> \"0x[0-9a-f]+\"," edges)
    count_lines("${before}" "\\(root\\)" roots)
    if(NOT nodes EQUAL 6 OR NOT edges EQUAL 13 OR roots LESS 1)
      fail("heap-before.dot: ${nodes} nodes, ${edges} edges, ${roots} roots "
           "(6, 13, >= 1 expected)")
    endif()
    count_lines("${after}" "\n  \"0x[0-9a-f]+\" <label=" nodes)
    if(NOT nodes EQUAL 0)
      fail("heap-after.dot: ${nodes} nodes, none expected")
    endif()
    expect_in("${after}" "rcgc heap: no live objects" "heap-after.dot")
  endif()
  return()
endif()

# ------------------------------------------------------------ targets

rcgc_sample(leaky)

function(rcgc_sample_check case target)
  add_test(NAME sample_${case}
           COMMAND ${CMAKE_COMMAND} -DCASE=${case}
                   -DPROG=$<TARGET_FILE:${target}> ${ARGN}
                   -DDEBUG=${RCGC_DEBUG_VALUE} -P ${CMAKE_CURRENT_LIST_FILE})
  set_tests_properties(sample_${case} PROPERTIES LABELS "samples;report")
endfunction()

rcgc_sample_check(leaky_strict leaky)
rcgc_sample_check(leaky_report leaky)
rcgc_sample_check(leaky_quiet leaky)
rcgc_sample_check(hello_strict hello)
if(TARGET demo)
  rcgc_sample_check(demo_strict demo
                    -DARG=${CMAKE_CURRENT_BINARY_DIR}/demo-strict-out)
endif()

# Valgrind memcheck on the samples (it cannot run beside the sanitizers).
if(NOT RCGC_ASAN AND NOT RCGC_TSAN)
  find_program(RCGC_VALGRIND valgrind)
endif()
if(RCGC_VALGRIND AND NOT RCGC_ASAN AND NOT RCGC_TSAN)
  set(vg ${RCGC_VALGRIND} --error-exitcode=1 --leak-check=full -q)
  add_test(NAME valgrind_hello COMMAND ${vg} $<TARGET_FILE:hello>)
  add_test(NAME valgrind_leaky COMMAND ${vg} $<TARGET_FILE:leaky>)
  set_tests_properties(valgrind_leaky PROPERTIES
                       ENVIRONMENT RCGC_LEAK_REPORT=1)
  set(vg_tests valgrind_hello valgrind_leaky)
  if(TARGET demo)
    add_test(NAME valgrind_demo COMMAND ${vg} $<TARGET_FILE:demo>
                                        ${CMAKE_CURRENT_BINARY_DIR}/demo-vg-out)
    list(APPEND vg_tests valgrind_demo)
  endif()
  set_tests_properties(${vg_tests} PROPERTIES LABELS "samples;valgrind")
endif()
