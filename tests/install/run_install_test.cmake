# cmake -DBUILD=<build dir> -DSRC=<source dir> -DWORK=<scratch dir> [-DLIBDIR=lib] -P run_install_test.cmake
cmake_minimum_required(VERSION 3.25)
foreach(v BUILD SRC WORK)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "-D${v}=... is required")
  endif()
endforeach()

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
  set(out "${out}" PARENT_SCOPE)
endfunction()

set(prefix ${WORK}/prefix)
file(REMOVE_RECURSE ${WORK})

# 1. Install, and check the layout a consumer relies on.
run(${CMAKE_COMMAND} --install ${BUILD} --prefix ${prefix})
if(NOT DEFINED LIBDIR)
  set(LIBDIR lib)
endif()
foreach(f include/minerva/minerva.h include/minerva/vocab.h include/minerva/gguf.h include/minerva/error.h
          ${LIBDIR}/libminerva.so ${LIBDIR}/cmake/minerva/minervaConfig.cmake
          ${LIBDIR}/cmake/minerva/minervaConfigVersion.cmake
          ${LIBDIR}/cmake/minerva/minervaTargets.cmake bin/minerva bin/minerva-bench
          include/minerva.h include/minerva/version.h include/minerva/log.h include/minerva/chat.h
          ${LIBDIR}/pkgconfig/minerva.pc)
  if(NOT EXISTS ${prefix}/${f})
    message(FATAL_ERROR "cmake --install did not install ${f}")
  endif()
endforeach()
# The installed CLI finds the installed library (RPATH $ORIGIN/../lib), not the build tree's.
run(${prefix}/bin/minerva --version)
if(NOT out MATCHES "^minerva [0-9]")
  message(FATAL_ERROR "installed minerva --version printed: ${out}")
endif()

# 2. Build the example as another project would: only the prefix on CMAKE_PREFIX_PATH.
find_program(NINJA ninja)
if(NINJA)
  set(gen -G Ninja)
endif()
run(${CMAKE_COMMAND} -S ${SRC}/docs/examples/tokenize -B ${WORK}/example ${gen} -DCMAKE_PREFIX_PATH=${prefix}
    -DCMAKE_BUILD_TYPE=Release)
run(${CMAKE_COMMAND} --build ${WORK}/example)
message(STATUS "built docs/examples/tokenize against ${prefix}")

# 2b. A C program against the C API, compiled as a C project would: cc + pkg-config only.
find_program(CC NAMES cc gcc REQUIRED)
find_program(PKG_CONFIG pkg-config REQUIRED)
set(ENV{PKG_CONFIG_PATH} ${prefix}/${LIBDIR}/pkgconfig)
run(${PKG_CONFIG} --cflags --libs minerva)
string(STRIP "${out}" pc_flags)
separate_arguments(pc_flags UNIX_COMMAND "${pc_flags}")
run(${CC} -std=c11 -Wall -Wextra -Werror ${SRC}/docs/examples/c/generate.c ${pc_flags}
    -Wl,-rpath,${prefix}/${LIBDIR} -o ${WORK}/c_generate)
message(STATUS "built docs/examples/c/generate.c with: cc $(pkg-config --cflags --libs minerva) = ${pc_flags}")
# The C++ API's C++20 requirement travels with minerva::minerva: the example sets no standard.
run(${prefix}/bin/minerva-bench --help)

# 3. Run it on the SentencePiece test vocabulary.
if(NOT DEFINED ENV{MINERVA_SHARED} OR NOT EXISTS "$ENV{MINERVA_SHARED}/vocab/ggml-vocab-llama-spm.gguf")
  if("$ENV{MINERVA_REQUIRE_SHARED}" STREQUAL "1")
    message(FATAL_ERROR "MINERVA_REQUIRE_SHARED=1 but $ENV{MINERVA_SHARED}/vocab/ggml-vocab-llama-spm.gguf is missing")
  endif()
  message("SKIPPED: the example was built, but MINERVA_SHARED is not set so it was not run")
  return()
endif()
set(vocab $ENV{MINERVA_SHARED}/vocab/ggml-vocab-llama-spm.gguf)

# Expected ids: the line of the .out vector file that belongs to the input "Hello world".
file(READ ${vocab}.inp inp)
file(READ ${vocab}.out outv)
set(sep "\n__ggml_vocab_test__\n")
string(FIND "${inp}" "${sep}Hello world${sep}" at)
if(at LESS 0)
  message(FATAL_ERROR "no \"Hello world\" vector in ${vocab}.inp")
endif()
string(SUBSTRING "${inp}" 0 ${at} before)
# Input k (0-based) follows k markers; `before` ends just before the marker preceding ours.
string(REGEX MATCHALL "__ggml_vocab_test__" markers "${before}")
list(LENGTH markers index)
math(EXPR index "${index} + 1")
string(REPLACE "\n" ";" out_lines "${outv}")
list(GET out_lines ${index} expected)
string(STRIP "${expected}" expected)
if(expected STREQUAL "")
  message(FATAL_ERROR "empty expected ids for \"Hello world\"")
endif()

run(${WORK}/example/tokenize --raw ${vocab} Hello world)
string(REPLACE "\n" ";" lines "${out}")
list(GET lines 0 ids)
list(GET lines 1 text)
if(NOT ids STREQUAL expected)
  message(FATAL_ERROR "tokenize --raw printed ids '${ids}', the vectors say '${expected}'")
endif()
if(NOT text STREQUAL "Hello world")
  message(FATAL_ERROR "decoding the ids gave '${text}', not 'Hello world'")
endif()
# With special tokens: BOS first (the file has add_bos_token), then the same ids.
run(${WORK}/example/tokenize ${vocab} Hello world)
string(REPLACE "\n" ";" lines "${out}")
list(GET lines 0 ids_bos)
if(NOT ids_bos MATCHES "^[0-9]+ ${expected}$")
  message(FATAL_ERROR "tokenize printed '${ids_bos}', expected BOS then '${expected}'")
endif()
message(STATUS "example tokenized \"Hello world\" to ${ids_bos} (vectors: ${expected})")

# 4. The C program greedily continues a prompt; the installed CLI must print the same text.
set(model $ENV{MINERVA_SHARED}/models/stories260K-f32.gguf)
if(NOT EXISTS ${model})
  message(FATAL_ERROR "missing ${model}")
endif()
run(${WORK}/c_generate ${model} "Once upon a time" 16)
set(c_text "${out}")
run(${prefix}/bin/minerva run -m ${model} -p "Once upon a time" -n 16 --temp 0 --ignore-eos --device cpu)
if(NOT c_text STREQUAL out)
  message(FATAL_ERROR "the C API generated '${c_text}', minerva run printed '${out}'")
endif()
execute_process(COMMAND ${WORK}/c_generate ${model} "Once upon a time" 4 RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
if(NOT e MATCHES "embedding: [0-9]+ floats, squared norm 1\\.0000")
  message(FATAL_ERROR "the C program's embedding report: ${e}")
endif()
# An error comes back as a status and a message naming the file, and the program says so.
execute_process(COMMAND ${WORK}/c_generate ${WORK}/missing.gguf "x" 4 RESULT_VARIABLE rc OUTPUT_VARIABLE o ERROR_VARIABLE e)
if(NOT rc EQUAL 1 OR NOT e MATCHES "load: MINERVA_ERR_FAILED: .*missing.gguf")
  message(FATAL_ERROR "loading a missing file through the C API: exit ${rc}, stderr: ${e}")
endif()
message(STATUS "C API: greedy text matches minerva run: ${c_text}")
