/* main.c — `kiln`: the command line tool's entry point and help.
 *
 *     kiln [--plugin-lib PATH ...] COMMAND [ARGS]
 *     kiln inspect ENGINE [--json] [--dot FILE]
 *     kiln run     ENGINE [--input NAME=FILE.npy] [--shape NAME=DIMS] [--output-dir DIR] ...
 *     kiln bench   ENGINE [--shape NAME=DIMS] [--iterations N] [--warmup N] ...
 *     kiln help [COMMAND] | --help | --version
 *
 * Options given before the command (only --plugin-lib) are passed on to it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
    const char *help;
} commands[] = {
    {"inspect", cli_cmd_inspect, "describe an engine: inputs, outputs, shapes, layers, plugins, memory",
     "usage: kiln inspect ENGINE [--json] [--dot FILE] [--plugin-lib PATH ...]\n"
     "\n"
     "Describe an engine file: format version, size, inputs and outputs with\n"
     "dtypes and symbolic shapes, each dynamic dimension's (min, opt, max) per\n"
     "optimization profile, the layers in execution order, the plugins (with\n"
     "the module that defines them and whether they need Python), the\n"
     "activation arena and the weight bytes.  Plugins need not be available:\n"
     "an engine is described without running any plugin code.\n"
     "\n"
     "  --json             print one JSON document instead of text\n"
     "  --dot FILE         also write the network as a Graphviz graph to FILE\n"
     "  --plugin-lib PATH  load a native plugin library first (repeatable);\n"
     "                     only changes the 'registered here' column\n"},
    {"run", cli_cmd_run, "run an engine once on given or random inputs",
     "usage: kiln run ENGINE [--input NAME=FILE.npy ...] [--shape NAME=DIMS ...]\n"
     "                [--output-dir DIR] [--device cpu|cuda:N] [--seed N]\n"
     "                [--plugin-lib PATH ...]\n"
     "\n"
     "Run the engine once and print each output's shape and first values.\n"
     "\n"
     "  --input NAME=FILE.npy  take input NAME (shape and data) from a .npy file;\n"
     "                         a bfloat16 input takes float32 ('<f4') data, or\n"
     "                         '<u2' holding bfloat16 bit patterns\n"
     "  --shape NAME=DIMS      give input NAME this shape (e.g. 2x16) and random data\n"
     "  --output-dir DIR       write each output as DIR/NAME.npy (bfloat16 as float32)\n"
     "  --device DEV           cpu (default), cuda or cuda:N\n"
     "  --seed N               seed of the random inputs (default 0)\n"
     "  --plugin-lib PATH      load a native plugin library first (repeatable)\n"
     "\n"
     "Inputs without --input or --shape get random data at a shape made of\n"
     "their constant axes and, for each dynamic dimension, the value another\n"
     "input gave it or else its optimal value in profile 0.  Random data:\n"
     "floats uniform in [-1, 1), integers uniform in [0, 10), bools 0 or 1.\n"},
    {"bench", cli_cmd_bench, "time repeated runs: latency percentiles and throughput",
     "usage: kiln bench ENGINE [--shape NAME=DIMS ...] [--input NAME=FILE.npy ...]\n"
     "                  [--iterations N] [--warmup N] [--device cpu|cuda:N]\n"
     "                  [--graphs] [--seed N] [--plugin-lib PATH ...]\n"
     "\n"
     "Run the engine --warmup times (default 10), then time --iterations runs\n"
     "(default 100), each an enqueue plus a device synchronize, and print the\n"
     "mean, p50, p90, p99, min and max latency and the throughput in runs/s.\n"
     "Inputs are chosen as for 'kiln run'.\n"
     "\n"
     "  --graphs   capture one run as a CUDA graph and time its replays\n"
     "             (needs a CUDA device)\n"},
};

#define COMMAND_COUNT (int)(sizeof commands / sizeof commands[0])

static const struct command *find_command(const char *name) {
    for (int i = 0; i < COMMAND_COUNT; i++)
        if (strcmp(commands[i].name, name) == 0) return &commands[i];
    return NULL;
}

void cli_print_command_help(const char *name) {
    const struct command *c = find_command(name);
    if (c) fputs(c->help, stdout);
}

static void print_help(void) {
    printf("usage: kiln [--plugin-lib PATH ...] COMMAND [ARGS]\n"
           "\n"
           "Inspect, run and benchmark kiln engine files.\n"
           "\n"
           "commands:\n");
    for (int i = 0; i < COMMAND_COUNT; i++) printf("  %-9s %s\n", commands[i].name, commands[i].summary);
    printf("  %-9s %s\n", "help", "show help for a command: kiln help COMMAND");
    printf("\n"
           "options:\n"
           "  --plugin-lib PATH  load a native plugin library before the command (repeatable)\n"
           "  --help, -h         show this help\n"
           "  --version          show the version of the tool and of libkiln\n"
           "\n"
           "Exit status: 0 success, 1 failure (reported on one 'kiln: ' line on\n"
           "stderr), 2 usage error.\n");
}

int kiln_cli_main(int argc, char **argv, bool with_python) {
    /* --import runs Python: only the command pip installs can do it, by
     * importing the modules and then running this function in its process. */
    for (int i = 1; !with_python && i < argc; i++)
        if (strncmp(argv[i], "--import", 8) == 0)
            return cli_fail(CLI_EXIT_USAGE, "%s imports Python modules, which this program cannot: run the `kiln` "
                            "command that pip installs (python -m kiln.cli), which runs the same tool in a Python "
                            "process", argv[i]);
    /* Leading --plugin-lib options are handed to the command, in front of its own. */
    int first = 1;
    while (first < argc && (strcmp(argv[first], "--plugin-lib") == 0 || strncmp(argv[first], "--plugin-lib=", 13) == 0))
        first += strcmp(argv[first], "--plugin-lib") == 0 ? 2 : 1;
    if (first > argc) return cli_fail(CLI_EXIT_USAGE, "option --plugin-lib needs a value");
    if (first == argc) return cli_fail(CLI_EXIT_USAGE, "no command given (try 'kiln --help')");
    const char *name = argv[first];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
        print_help();
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0) {
        printf("kiln %d.%d.%d (libkiln %s)\n", KILN_VERSION_MAJOR, KILN_VERSION_MINOR, KILN_VERSION_PATCH,
               kiln_version());
        return CLI_EXIT_OK;
    }
    if (strcmp(name, "help") == 0) {
        if (first + 1 >= argc) {
            print_help();
            return CLI_EXIT_OK;
        }
        if (!find_command(argv[first + 1]))
            return cli_fail(CLI_EXIT_USAGE, "help: unknown command '%s' (commands: inspect, run, bench)",
                            argv[first + 1]);
        cli_print_command_help(argv[first + 1]);
        return CLI_EXIT_OK;
    }
    const struct command *c = find_command(name);
    if (!c) {
        if (name[0] == '-') return cli_fail(CLI_EXIT_USAGE, "unknown option '%s' (try 'kiln --help')", name);
        return cli_fail(CLI_EXIT_USAGE, "unknown command '%s' (commands: inspect, run, bench)", name);
    }
    /* The command's arguments: the leading plugin options, then the rest. */
    int n = (first - 1) + (argc - first - 1);
    char **args = malloc(sizeof *args * (size_t)(n + 1));
    if (!args) return cli_fail(CLI_EXIT_FAILURE, "out of memory");
    int k = 0;
    for (int i = 1; i < first; i++) args[k++] = argv[i];
    for (int i = first + 1; i < argc; i++) args[k++] = argv[i];
    args[k] = NULL;
    int code = c->run(n, args);
    free(args);
    return code;
}
