# Run by ctest (tests/fuzz.cmake) as: cmake -DSRC=<repo> -DBIN=<dir> -DCLANGXX=<clang++>
#   -DSECONDS=<n> -P run_fuzz.cmake
# 1. configures and builds tests/fuzz with clang (libFuzzer + ASan + UBSan) in BIN;
# 2. writes every malformed kind of tests/gguf_builder.h to BIN/cases and runs the sanitized
#    target over each file once (and over the shared models/vocabularies when MINERVA_SHARED is set);
# 3. fuzzes for SECONDS from the committed corpus plus freshly generated seeds.
# Any sanitizer report, crash, leak, timeout or oversized allocation fails the test.
cmake_minimum_required(VERSION 3.25)
include(${CMAKE_CURRENT_LIST_DIR}/fuzz_common.cmake)
run(${CMAKE_COMMAND} --build ${BIN})

file(REMOVE_RECURSE ${BIN}/cases ${BIN}/seeds ${BIN}/work)
file(MAKE_DIRECTORY ${BIN}/work)
run(${BIN}/gguf_cases --write-cases ${BIN}/cases)
run(${BIN}/gguf_cases --write-corpus ${BIN}/seeds)

# Every malformed kind once under ASan/UBSan: one process, one file per argument.
file(GLOB cases ${BIN}/cases/*.gguf)
list(LENGTH cases n_cases)
if(n_cases LESS 40)
  message(FATAL_ERROR "only ${n_cases} malformed cases were written")
endif()
run(${BIN}/fuzz_gguf -rss_limit_mb=2048 -timeout=10 ${cases})
message(STATUS "sanitized reader: ${n_cases} malformed files, all clean")

# The real files too, when the shared data is there.
if(DEFINED ENV{MINERVA_SHARED} AND EXISTS "$ENV{MINERVA_SHARED}/models")
  file(GLOB shared $ENV{MINERVA_SHARED}/models/*.gguf $ENV{MINERVA_SHARED}/vocab/*.gguf)
  list(LENGTH shared n_shared)
  run(${BIN}/fuzz_gguf -rss_limit_mb=2048 -timeout=30 ${shared})
  message(STATUS "sanitized reader: ${n_shared} shared GGUF files, all clean")
elseif("$ENV{MINERVA_REQUIRE_SHARED}" STREQUAL "1")
  message(FATAL_ERROR "MINERVA_REQUIRE_SHARED=1 but the shared models are missing")
endif()

# Bounded fuzzing. New inputs go to BIN/work (the first corpus directory); the committed corpus
# and the generated seeds are read only.
run(${BIN}/fuzz_gguf -max_total_time=${SECONDS} -rss_limit_mb=2048 -malloc_limit_mb=512 -timeout=10
    -max_len=16384 -print_final_stats=1 ${BIN}/work ${SRC}/tests/fuzz/corpus ${BIN}/seeds)
string(REGEX MATCH "stat::number_of_executed_units: *[0-9]+" runs "${last_output}")
string(REGEX MATCH "stat::peak_rss_mb: *[0-9]+" rss "${last_output}")
message(STATUS "fuzzed ${SECONDS} s clean: ${runs}, ${rss}")
