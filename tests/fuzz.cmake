# The GGUF reader's libFuzzer target (tests/fuzz), built by clang in its own project so the main
# build is unaffected, then run for MINERVA_FUZZ_SECONDS (default 60) plus once over every
# malformed-file kind under ASan/UBSan. See docs/fuzzing.md.
find_program(MINERVA_CLANGXX NAMES clang++ clang++-14)
set(MINERVA_FUZZ_SECONDS 60 CACHE STRING "How long the gguf_fuzz test fuzzes")
if(MINERVA_CLANGXX)
  add_test(NAME gguf_fuzz
    COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DBIN=${CMAKE_BINARY_DIR}/fuzz
            -DCLANGXX=${MINERVA_CLANGXX} -DSECONDS=${MINERVA_FUZZ_SECONDS}
            -P ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_fuzz.cmake)
  set_tests_properties(gguf_fuzz PROPERTIES TIMEOUT 600 LABELS fuzz)
  # minerva-serve's HTTP request parser (tests/fuzz/fuzz_http.cpp), in a build directory of its own
  set(MINERVA_HTTP_FUZZ_SECONDS 20 CACHE STRING "How long the http_fuzz test fuzzes")
  add_test(NAME http_fuzz
    COMMAND ${CMAKE_COMMAND} -DSRC=${CMAKE_SOURCE_DIR} -DBIN=${CMAKE_BINARY_DIR}/fuzz-http
            -DCLANGXX=${MINERVA_CLANGXX} -DSECONDS=${MINERVA_HTTP_FUZZ_SECONDS}
            -P ${CMAKE_CURRENT_SOURCE_DIR}/fuzz/run_http_fuzz.cmake)
  set_tests_properties(http_fuzz PROPERTIES TIMEOUT 600 LABELS fuzz)
else()
  # Never a silent pass: without clang the test exists and fails, saying what to install.
  add_test(NAME gguf_fuzz COMMAND ${CMAKE_COMMAND} -E echo "gguf_fuzz: clang++ not found (apt-get install clang libclang-rt-14-dev)")
  set_tests_properties(gguf_fuzz PROPERTIES FAIL_REGULAR_EXPRESSION "not found" LABELS fuzz)
endif()
