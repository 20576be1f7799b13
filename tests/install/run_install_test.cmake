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
          ${LIBDIR}/cmake/minerva/minervaTargets.cmake bin/minerva)
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
