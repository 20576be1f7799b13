# `minerva quantize` / `minerva synth` command-line checks (tests/quant_cli.sh).
add_test(NAME quant_cli COMMAND sh ${CMAKE_CURRENT_SOURCE_DIR}/quant_cli.sh $<TARGET_FILE:minerva_cli>)
set_tests_properties(quant_cli PROPERTIES TIMEOUT 300)
