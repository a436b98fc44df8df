# readme_example.cmake: fails unless the example under "Writing a refcounted
# type" in README.md is samples/graph.c, line for line, without the file's
# opening comment. The sample is built and run as a test, so the README's
# code is too.
#   cmake -DREADME=<README.md> -DSAMPLE=<graph.c> -P readme_example.cmake
file(READ "${README}" readme)
file(READ "${SAMPLE}" sample)

set(heading "## Writing a refcounted type")
string(FIND "${readme}" "${heading}" at)
if(at LESS 0)
  message(FATAL_ERROR "README.md has no section '${heading}'")
endif()
string(SUBSTRING "${readme}" ${at} -1 readme)
string(FIND "${readme}" "```c\n" open)
if(open LESS 0)
  message(FATAL_ERROR "README.md: no C code block under '${heading}'")
endif()
math(EXPR open "${open} + 5")
string(SUBSTRING "${readme}" ${open} -1 readme)
string(FIND "${readme}" "```" close)
string(SUBSTRING "${readme}" 0 ${close} example)

string(FIND "${sample}" "*/\n" end_comment)
math(EXPR end_comment "${end_comment} + 3")
string(SUBSTRING "${sample}" ${end_comment} -1 code)

if(NOT example STREQUAL code)
  file(WRITE "${CMAKE_CURRENT_BINARY_DIR}/readme_example.c" "${example}")
  message(FATAL_ERROR "README.md's example under '${heading}' differs from "
          "${SAMPLE} (without its opening comment); the README's copy is in "
          "${CMAKE_CURRENT_BINARY_DIR}/readme_example.c")
endif()
message(STATUS "README.md's example matches ${SAMPLE}")
