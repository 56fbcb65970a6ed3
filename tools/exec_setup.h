/* exec_setup.h — what `run` and `bench` share: their common options and the
 * steps from a command line to a context with every tensor bound. */
#ifndef KILN_TOOLS_EXEC_SETUP_H
#define KILN_TOOLS_EXEC_SETUP_H

#include "bindings.h"

typedef struct cli_exec_options {
    const char     *engine_path;
    cli_string_list plugin_libs;        /* --plugin-lib PATH, repeatable */
    cli_assign_list inputs;             /* --input NAME=FILE.npy, repeatable */
    cli_assign_list shapes;             /* --shape NAME=DIMS, repeatable */
    kiln_device     device;             /* --device cpu|cuda[:N]; default cpu */
    uint64_t        seed;               /* --seed N; default 0 */
} cli_exec_options;

/* If argv[a->i] is a shared option (or the engine path), take it and set
 * *taken.  Returns an exit code (nonzero after reporting a usage error). */
int  cli_exec_option(cli_args *a, cli_exec_options *o, bool *taken);
/* After parsing: the engine path must have been given. */
int  cli_exec_check(const cli_args *a, const cli_exec_options *o);
/* Load plugins and the engine, create a context on the device, bind every
 * input and output.  On failure everything made so far is released. */
int  cli_exec_open(const cli_exec_options *o, kiln_engine **engine, kiln_context **ctx, cli_bindings *b);
void cli_exec_close(kiln_engine *engine, kiln_context *ctx, cli_bindings *b);
void cli_exec_options_free(cli_exec_options *o);

/* "cpu" or "cuda:N". */
void cli_device_text(kiln_device device, char *buf, size_t size);

#endif
