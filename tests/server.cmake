# End-to-end test of minerva-serve with the official OpenAI Node SDK (tests/server/).
# scripts/test.sh runs `npm install` in tests/server; the test needs node and that install.
find_program(NODE_EXECUTABLE node)
if(TARGET minerva-serve AND NODE_EXECUTABLE)
  add_test(NAME server_openai_sdk
    COMMAND ${NODE_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/server.test.mjs $<TARGET_FILE:minerva-serve> $ENV{MINERVA_SHARED}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/server)
  # All cases skipped (no shared data, outside CI) shows as skipped, not passed.
  set_tests_properties(server_openai_sdk PROPERTIES TIMEOUT 600 SKIP_REGULAR_EXPRESSION "# pass 0\n# fail 0\n")
  # hostile clients and load against the connection layer, limits, shutdown, model management
  add_test(NAME server_robustness
    COMMAND ${NODE_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/robustness.test.mjs $<TARGET_FILE:minerva-serve> $ENV{MINERVA_SHARED}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/server)
  # Timing bounds (deadlines, "answered at once"): run alone so a parallel test cannot starve it.
  set_tests_properties(server_robustness PROPERTIES TIMEOUT 300 RUN_SERIAL TRUE SKIP_REGULAR_EXPRESSION "# pass 0\n# fail 0\n")
  # three replicas behind HAProxy (scripts/install-deps.sh installs it), one restarted mid-run
  add_test(NAME server_haproxy
    COMMAND ${NODE_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/haproxy.test.mjs $<TARGET_FILE:minerva-serve> $ENV{MINERVA_SHARED}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/server)
  set_tests_properties(server_haproxy PROPERTIES TIMEOUT 180 RUN_SERIAL TRUE SKIP_REGULAR_EXPRESSION "# pass 0\n# fail 0\n")
endif()

# `minerva chat` end to end: a turn on stdin is rendered with the chosen template, tokenized and
# answered. Exit 77 (skip) without shared data unless MINERVA_REQUIRE_SHARED=1.
if(TARGET minerva_cli)
  set(_chat_script [=[
    model="$MINERVA_SHARED/models/stories260K-f32.gguf"
    if [ ! -f "$model" ]; then [ "$MINERVA_REQUIRE_SHARED" = 1 ] && { echo "missing $model"; exit 1; }; exit 77; fi
    out=$(printf 'Once upon a time\n/reset\nThe cat\n' | "$0" chat -m "$model" -n 8 --temp 0 -t 1 --print-prompt --chat-template "$1" 2>&1) || { echo "$out"; exit 1; }
    echo "$out"
    echo "$out" | grep -qF "$2" || { echo "expected: $2"; exit 1; }
    [ "$(echo "$out" | grep -c '\[prompt\]')" = 2 ] || { echo "expected two turns"; exit 1; }
  ]=])
  add_test(NAME chat_cli_chatml COMMAND sh -c "${_chat_script}" $<TARGET_FILE:minerva_cli> chatml "<|im_start|>user")
  add_test(NAME chat_cli_llama2 COMMAND sh -c "${_chat_script}" $<TARGET_FILE:minerva_cli> llama2 "[INST] The cat [/INST]")
  set_tests_properties(chat_cli_chatml chat_cli_llama2 PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)

  # A conversation longer than its context: the oldest turns are dropped, the system prompt stays,
  # every turn is answered.
  set(_chat_shift_script [=[
    model="$MINERVA_SHARED/models/stories260K-f32.gguf"
    if [ ! -f "$model" ]; then [ "$MINERVA_REQUIRE_SHARED" = 1 ] && { echo "missing $model"; exit 1; }; exit 77; fi
    turns='The little dog ran to the park to play
The girl had a red ball and a blue hat
They went home and ate soup with bread
The cat sat on the mat by the door
It was a sunny day and the birds sang
The end of the story was happy
'
    out=$(printf "$turns" | "$0" chat -m "$model" -c 96 -n 12 --temp 0 -t 1 -s "You tell stories." --print-prompt --chat-template chatml 2>&1) || { echo "$out"; exit 1; }
    echo "$out"
    echo "$out" | grep -qF "(context full: the oldest turn was dropped)" || { echo "expected a dropped turn"; exit 1; }
    last=$(echo "$out" | awk '/\[prompt\]/{p=""} {p=p"\n"$0} END{print p}')
    echo "$last" | grep -qF "You tell stories." || { echo "the system prompt must stay"; exit 1; }
    echo "$last" | grep -qF "The end of the story" || { echo "the last turn must be there"; exit 1; }
    if echo "$out" | grep -q "^error"; then echo "no turn may fail"; exit 1; fi
  ]=])
  add_test(NAME chat_cli_context_shift COMMAND sh -c "${_chat_shift_script}" $<TARGET_FILE:minerva_cli>)
  set_tests_properties(chat_cli_context_shift PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()

# The chat page at / in headless Chromium (tests/server/webui.test.mjs; needs Debian's chromium,
# which scripts/install-deps.sh installs, and playwright-core from the npm install).
if(TARGET minerva-serve AND NODE_EXECUTABLE)
  add_test(NAME server_webui_chromium
    COMMAND ${NODE_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/webui.test.mjs $<TARGET_FILE:minerva-serve> $ENV{MINERVA_SHARED}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/server)
  set_tests_properties(server_webui_chromium PROPERTIES TIMEOUT 300 SKIP_REGULAR_EXPRESSION "# pass 0\n# fail 0\n")
endif()

# Structured output, several prompts and embeddings through the OpenAI Node SDK, validated by ajv.
if(TARGET minerva-serve AND NODE_EXECUTABLE)
  add_test(NAME server_structured_output
    COMMAND ${NODE_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/server/structured.test.mjs $<TARGET_FILE:minerva-serve> $ENV{MINERVA_SHARED}
    WORKING_DIRECTORY ${CMAKE_CURRENT_SOURCE_DIR}/server)
  set_tests_properties(server_structured_output PROPERTIES TIMEOUT 900 SKIP_REGULAR_EXPRESSION "# pass 0\n# fail 0\n")
endif()
