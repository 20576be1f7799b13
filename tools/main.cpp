// minerva: the command-line tool. Subcommands live in tools/cmd_*.cpp.
#include "cli.h"

int main(int argc, char** argv) { return minerva::cli::run_main("minerva", argc, argv); }
