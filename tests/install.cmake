# `cmake --install` into a temporary prefix, then build docs/examples/tokenize against the
# installed CMake package (find_package(minerva), minerva::minerva) and run it on a shared
# vocabulary, checking its ids against the llama.cpp test vectors. Script: tests/install/.
add_test(NAME install_package
  COMMAND ${CMAKE_COMMAND} -DBUILD=${CMAKE_BINARY_DIR} -DSRC=${CMAKE_SOURCE_DIR}
          -DWORK=${CMAKE_BINARY_DIR}/install-test
          -DLIBDIR=${CMAKE_INSTALL_LIBDIR} -P ${CMAKE_CURRENT_SOURCE_DIR}/install/run_install_test.cmake)
set_tests_properties(install_package PROPERTIES TIMEOUT 600 SKIP_REGULAR_EXPRESSION "SKIPPED:" LABELS install)
