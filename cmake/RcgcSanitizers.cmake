# rcgc_sanitize(target): compile and link flags for the RCGC_ASAN, RCGC_UBSAN
# and RCGC_TSAN options. Link flags are PUBLIC on the library, so every
# program linking rcgc gets the sanitizer runtime too.
set(RCGC_SAN_FLAGS "")
if(RCGC_ASAN)
  list(APPEND RCGC_SAN_FLAGS -fsanitize=address)
endif()
if(RCGC_UBSAN)
  list(APPEND RCGC_SAN_FLAGS -fsanitize=undefined -fno-sanitize-recover=undefined)
endif()
if(RCGC_TSAN)
  list(APPEND RCGC_SAN_FLAGS -fsanitize=thread)
endif()

function(rcgc_sanitize target)
  if(RCGC_SAN_FLAGS)
    target_compile_options(${target} PRIVATE ${RCGC_SAN_FLAGS} -fno-omit-frame-pointer)
    target_link_options(${target} PUBLIC ${RCGC_SAN_FLAGS})
  endif()
endfunction()
