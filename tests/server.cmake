# End-to-end test of minerva-serve with the official OpenAI Node SDK (tests/server/).
# scripts/test.sh runs `npm install` in tests/server; the test needs node and that install.
find_program(NODE_EXECUTABLE node)
if(TARGET minerva-serve AND NODE_EXECUTABLE)
  add_test(NAME server_openai_sdk
    COMMAND ${NODE_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/server.test.mjs $<TARGET_FILE:minerva-serve> $ENV{MINERVA_SHARED}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/server)
  set_tests_properties(server_openai_sdk PROPERTIES TIMEOUT 600)
endif()
