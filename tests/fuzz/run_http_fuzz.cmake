# Run by ctest (tests/fuzz.cmake, test http_fuzz) as: cmake -DSRC=<repo> -DBIN=<dir>
#   -DCLANGXX=<clang++> -DSECONDS=<n> -P run_http_fuzz.cmake
# Builds the HTTP parser's libFuzzer target (ASan + UBSan) with clang in BIN, runs it once over
# the committed seeds, then fuzzes for SECONDS. Any finding fails the test.
cmake_minimum_required(VERSION 3.25)
foreach(v SRC BIN CLANGXX SECONDS)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "run_http_fuzz.cmake: -D${v}=... is required")
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
run(${CMAKE_COMMAND} --build ${BIN} --target fuzz_http)

set(ENV{ASAN_OPTIONS} "detect_leaks=1:abort_on_error=0:allocator_may_return_null=0")
set(ENV{UBSAN_OPTIONS} "print_stacktrace=1:halt_on_error=1")
file(GLOB seeds ${SRC}/tests/fuzz/http_corpus/*)
run(${BIN}/fuzz_http -timeout=10 ${seeds})
file(REMOVE_RECURSE ${BIN}/http_work)
file(MAKE_DIRECTORY ${BIN}/http_work)
run(${BIN}/fuzz_http -max_total_time=${SECONDS} -rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10 -max_len=8192
    -print_final_stats=1 ${BIN}/http_work ${SRC}/tests/fuzz/http_corpus)
string(REGEX MATCH "stat::number_of_executed_units: *[0-9]+" runs "${last_output}")
message(STATUS "fuzzed the HTTP parser ${SECONDS} s clean: ${runs}")
