/* cli_program.c — the `kiln` executable: the tool (main.c) with no Python. */
#include "cli.h"

int main(int argc, char **argv) { return kiln_cli_main(argc, argv, false); }
