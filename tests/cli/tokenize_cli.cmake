# Run by ctest (see tests/tokenize_cli.cmake): cmake -DMINERVA=<minerva binary> -DWORK=<dir> -P this.
# Expected ids are llama.cpp's, from ../shared/vocab/*.out.
set(shared "$ENV{MINERVA_SHARED}")
if(shared STREQUAL "" OR NOT EXISTS "${shared}/vocab/ggml-vocab-llama-bpe.gguf")
  if("$ENV{MINERVA_REQUIRE_SHARED}" STREQUAL "1")
    message(FATAL_ERROR "MINERVA_SHARED is not set or lacks vocab/ but MINERVA_REQUIRE_SHARED=1")
  endif()
  message("SKIPPED: MINERVA_SHARED not set (set it to the ../shared directory)")
  return()
endif()
file(MAKE_DIRECTORY "${WORK}")
set(bpe "${shared}/vocab/ggml-vocab-llama-bpe.gguf")
set(spm "${shared}/vocab/ggml-vocab-llama-spm.gguf")

function(expect_output name expected)
  cmake_parse_arguments(A "" "" "ARGS" ${ARGN})
  execute_process(COMMAND "${MINERVA}" ${A_ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${name}: exit status ${rc}\n${err}")
  endif()
  if(NOT out STREQUAL expected)
    message(FATAL_ERROR "${name}: unexpected output\n--- expected ---\n${expected}--- got ---\n${out}")
  endif()
  message(STATUS "${name}: ok")
endfunction()

function(expect_failure name must_mention)
  cmake_parse_arguments(A "" "" "ARGS" ${ARGN})
  execute_process(COMMAND "${MINERVA}" ${A_ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 1)
    message(FATAL_ERROR "${name}: expected exit status 1, got ${rc}\n${out}${err}")
  endif()
  string(FIND "${err}" "${must_mention}" at)
  if(at EQUAL -1)
    message(FATAL_ERROR "${name}: error message does not mention '${must_mention}':\n${err}")
  endif()
  message(STATUS "${name}: ok (${err})")
endfunction()

# --jsonl: one JSON string per line in, one JSON array per line out.
file(WRITE "${WORK}/in.jsonl"
  "\"Hello world\"\n"
  "\" Hello world\"\n"
  "\"Hello, world!\"\n"
  "\"w048 7tuijk dsdfhu\"\n"
  "\"\\u043d\\u0435\\u0449\\u043e \\u043d\\u0430 \\u0411\\u044a\\u043b\\u0433\\u0430\\u0440\\u0441\\u043a\\u0438\"\n"
  "\"<|eot_id|>\"\n")
file(STRINGS "${WORK}/in.jsonl" lines)
list(SUBLIST lines 0 5 first5)
list(JOIN first5 "\n" first5)
file(WRITE "${WORK}/in5.jsonl" "${first5}\n")
expect_output("llama-bpe jsonl"
  "[9906,1917]\n[22691,1917]\n[9906,11,1917,0]\n[86,23904,220,22,83,2005,42908,11729,3013,17156]\n[79862,102118,13373,64571,34694,3114,112203,80112]\n[27,91,68,354,851,91,29]\n"
  ARGS tokenize -m "${bpe}" -f "${WORK}/in.jsonl" --jsonl)
expect_output("llama-bpe jsonl --special --bos"
  "[128000,9906,1917]\n[128000,22691,1917]\n[128000,9906,11,1917,0]\n[128000,86,23904,220,22,83,2005,42908,11729,3013,17156]\n[128000,79862,102118,13373,64571,34694,3114,112203,80112]\n[128000,128009]\n"
  ARGS tokenize -m "${bpe}" -f "${WORK}/in.jsonl" --jsonl --special --bos)
expect_output("llama-spm jsonl"
  "[15043,3186]\n[29871,15043,3186]\n[15043,29892,3186,29991]\n[281,29900,29946,29947,29871,29955,9161,13535,18031,2176,6905]\n[1538,4851,665,1386,29713,1305]\n"
  ARGS tokenize -m "${spm}" -f "${WORK}/in5.jsonl" --jsonl)
expect_output("llama-bpe -p" "9906 11 1917 0\n" ARGS tokenize -m "${bpe}" -p "Hello, world!")
expect_output("llama-bpe detokenize" "Hello, world!\n" ARGS detokenize -m "${bpe}" -p "9906 11 1917 0")
expect_output("llama-bpe detokenize --no-special" "Hello\n" ARGS detokenize -m "${bpe}" -p "128000 9906 128009" --no-special)

file(WRITE "${WORK}/bad.jsonl" "\"fine\"\n{\"not\": \"a string\"}\n")
expect_failure("jsonl object line" "line 2" ARGS tokenize -m "${bpe}" -f "${WORK}/bad.jsonl" --jsonl)
file(WRITE "${WORK}/bad2.jsonl" "\"unterminated\n")
expect_failure("jsonl broken line" "not valid JSON" ARGS tokenize -m "${bpe}" -f "${WORK}/bad2.jsonl" --jsonl)
expect_failure("detokenize id out of range" "out of range" ARGS detokenize -m "${bpe}" -p "9906 128256")
expect_failure("detokenize not an id" "not a token id" ARGS detokenize -m "${bpe}" -p "9906 abc")
expect_failure("missing model file" "nope.gguf" ARGS tokenize -m "${WORK}/nope.gguf" -p "x")
