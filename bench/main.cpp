// minerva-bench: end-to-end and per-kernel benchmarks. Subcommands live in bench/bench_*.cpp and
// register with the same table as the CLI (tools/cli.h).
#include "tools/cli.h"

int main(int argc, char** argv) { return minerva::cli::run_main("minerva-bench", argc, argv); }
