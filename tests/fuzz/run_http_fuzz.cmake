# Run by ctest (tests/fuzz.cmake, test http_fuzz) as: cmake -DSRC=<repo> -DBIN=<dir>
#   -DCLANGXX=<clang++> -DSECONDS=<n> -P run_http_fuzz.cmake
# Builds the HTTP parser's libFuzzer target (ASan + UBSan) with clang in BIN, runs it once over
# the committed seeds, then fuzzes for SECONDS. Any finding fails the test.
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/fuzz_common.cmake)
run(${CMAKE_COMMAND} --build ${BIN} --target fuzz_http)

file(GLOB seeds ${SRC}/tests/fuzz/http_corpus/*)
run(${BIN}/fuzz_http -timeout=10 ${seeds})
file(REMOVE_RECURSE ${BIN}/http_work)
file(MAKE_DIRECTORY ${BIN}/http_work)
run(${BIN}/fuzz_http -max_total_time=${SECONDS} -rss_limit_mb=1024 -malloc_limit_mb=256 -timeout=10 -max_len=8192
    -print_final_stats=1 ${BIN}/http_work ${SRC}/tests/fuzz/http_corpus)
string(REGEX MATCH "stat::number_of_executed_units: *[0-9]+" runs "${last_output}")
message(STATUS "fuzzed the HTTP parser ${SECONDS} s clean: ${runs}")
