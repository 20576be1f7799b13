# Included by run_fuzz.cmake and run_http_fuzz.cmake (cmake -P scripts run by tests/fuzz.cmake):
# checks the -D arguments every fuzz runner takes (SRC, BIN, CLANGXX, SECONDS), defines run(),
# configures tests/fuzz with clang (libFuzzer + ASan + UBSan) in BIN, and sets the sanitizer
# options. run(COMMAND...) fails the test with the command's output on a non-zero exit and leaves
# its output in last_output.
foreach(v SRC BIN CLANGXX SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "${CMAKE_CURRENT_LIST_FILE}: -D${v}=... is required")
  endif()
endforeach()
get_filename_component(SRC ${SRC} ABSOLUTE)
get_filename_component(BIN ${BIN} ABSOLUTE)

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message("${out}\n${err}")
    message(FATAL_ERROR "failed (${rc}): ${ARGN}")
  endif()
  set(last_output "${out}${err}" PARENT_SCOPE)
endfunction()

find_program(NINJA ninja)
if(NINJA)
  set(gen -G Ninja)
endif()
run(${CMAKE_COMMAND} -S ${SRC}/tests/fuzz -B ${BIN} ${gen} -DCMAKE_CXX_COMPILER=${CLANGXX} -DCMAKE_BUILD_TYPE=)

set(ENV{ASAN_OPTIONS} "detect_leaks=1:abort_on_error=0:allocator_may_return_null=0")
set(ENV{UBSAN_OPTIONS} "print_stacktrace=1:halt_on_error=1")
