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
