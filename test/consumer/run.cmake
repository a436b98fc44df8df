# Installs rcgc into a temporary prefix, then builds and runs a program
# against it twice: with find_package(rcgc) and with pkg-config.
set(prefix "${BINARY_DIR}/prefix")
file(REMOVE_RECURSE "${BINARY_DIR}")

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rv OUTPUT_VARIABLE out
                  ERROR_VARIABLE out)
  if(NOT rv EQUAL 0)
    message(FATAL_ERROR "failed (${rv}): ${ARGN}\n${out}")
  endif()
  message(STATUS "${out}")
endfunction()

if(NOT SHARED)
  set(SHARED OFF)
endif()
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}" -B "${BINARY_DIR}/lib"
    -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=${SHARED}
    -DRCGC_BUILD_TESTS=OFF -DRCGC_BUILD_SAMPLES=OFF
    -DCMAKE_C_COMPILER=${C_COMPILER} -DCMAKE_INSTALL_PREFIX=${prefix})
run(${CMAKE_COMMAND} --build "${BINARY_DIR}/lib" --parallel 2)
run(${CMAKE_COMMAND} --install "${BINARY_DIR}/lib")

# Every global symbol the installed library defines is in the rc_
# namespace (rc__ for the private ones): none can clash with a program's
# own names, in a static link too.
file(GLOB_RECURSE libs "${prefix}/*/librcgc.a" "${prefix}/*/librcgc.so")
list(LENGTH libs nlibs)
if(nlibs EQUAL 0)
  message(FATAL_ERROR "no librcgc.a or librcgc.so installed under ${prefix}")
endif()
foreach(lib ${libs})
  set(dynamic "")
  if(lib MATCHES "\\.so$")
    set(dynamic -D)
  endif()
  execute_process(COMMAND ${NM} -g ${dynamic} --defined-only "${lib}"
                  OUTPUT_VARIABLE syms RESULT_VARIABLE rv)
  if(NOT rv EQUAL 0)
    message(FATAL_ERROR "${NM} failed on ${lib}")
  endif()
  string(REGEX MATCHALL "[0-9a-fA-F]+ [A-Za-z] [^\n]+" defs "${syms}")
  set(foreign "")
  foreach(def ${defs})
    string(REGEX REPLACE "^[0-9a-fA-F]+ [A-Za-z] " "" name "${def}")
    if(NOT name MATCHES "^rc_")
      list(APPEND foreign "${name}")
    endif()
  endforeach()
  if(foreign)
    message(FATAL_ERROR "${lib} defines names outside rc_: ${foreign}")
  endif()
  list(LENGTH defs ndefs)
  message(STATUS "${lib}: ${ndefs} global symbols, all rc_ or rc__")
endforeach()

# find_package
run(${CMAKE_COMMAND} -S "${SOURCE_DIR}/test/consumer" -B "${BINARY_DIR}/fp"
    -DCMAKE_PREFIX_PATH=${prefix} -DCMAKE_C_COMPILER=${C_COMPILER})
run(${CMAKE_COMMAND} --build "${BINARY_DIR}/fp")
run("${BINARY_DIR}/fp/consumer")

# pkg-config
file(GLOB_RECURSE pcs "${prefix}/*/rcgc.pc")
list(GET pcs 0 pc)
get_filename_component(pcdir "${pc}" DIRECTORY)
set(ENV{PKG_CONFIG_PATH} "${pcdir}")
execute_process(COMMAND pkg-config --cflags --libs --static rcgc
                OUTPUT_VARIABLE flags RESULT_VARIABLE rv
                OUTPUT_STRIP_TRAILING_WHITESPACE)
if(NOT rv EQUAL 0)
  message(FATAL_ERROR "pkg-config --cflags --libs rcgc failed")
endif()
separate_arguments(flags UNIX_COMMAND "${flags}")
run(${C_COMPILER} -std=c11 "${SOURCE_DIR}/test/consumer/main.c" ${flags}
    -o "${BINARY_DIR}/pc-consumer")
set(ENV{LD_LIBRARY_PATH} "${pcdir}/..")
run("${BINARY_DIR}/pc-consumer")
