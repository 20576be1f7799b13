# CLI tests of `minerva tokenize` / `minerva detokenize` on the shared vocabularies. The script
# reads MINERVA_SHARED from the environment ctest runs in; without it the test is reported as
# skipped (or fails under MINERVA_REQUIRE_SHARED=1).
add_test(NAME cli_tokenize_jsonl
  COMMAND ${CMAKE_COMMAND} -DMINERVA=$<TARGET_FILE:minerva_cli>
          -DWORK=${CMAKE_CURRENT_BINARY_DIR}/cli_tokenize
          -P ${CMAKE_CURRENT_SOURCE_DIR}/cli/tokenize_cli.cmake)
set_tests_properties(cli_tokenize_jsonl PROPERTIES SKIP_REGULAR_EXPRESSION "SKIPPED:" TIMEOUT 120)
