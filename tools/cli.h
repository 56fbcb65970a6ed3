/* cli.h — the kiln command-line tool's internal interface.
 *
 * The tool is built on the public API alone (include/kiln/), like any
 * other application: it is the first user of that API and proves it is
 * enough to describe, run and time an engine.
 *
 * Exit codes: 0 success; 1 a failure while doing the work (a file that
 * cannot be read, an engine that does not load, a shape outside its
 * profile, a plugin that is missing or needs Python); 2 a usage error (an
 * unknown option, a missing or malformed value, a tensor name the engine
 * does not have).  Every failure prints exactly one line, "kiln: ...", on
 * stderr. */
#ifndef KILN_TOOLS_CLI_H
#define KILN_TOOLS_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "kiln/kiln.h"

enum { CLI_EXIT_OK = 0, CLI_EXIT_FAILURE = 1, CLI_EXIT_USAGE = 2 };

/* ---- main.c: the whole tool as a function ---------------------------------- */

/* `kiln ARGS...` (argv[0] is the program name).  cli_program.c's main() calls
 * it; so does the Python extension (_kiln.cli_main), in a process whose
 * Python plugins are registered: `kiln run --import MODULE ...` from the
 * command pip installs (python/kiln/cli.py).  with_python says which: only
 * then are the --import options (already handled by Python) accepted. */
int kiln_cli_main(int argc, char **argv, bool with_python);

/* ---- report.c: the one error line ----------------------------------------- */

/* text, or a copy with control characters and bytes that are not well-formed
 * UTF-8 written as \xNN (safe_text.c): for every engine string printed. */
const char *cli_safe(const char *text);
/* A plugin layer's stored fields (a map) as "key=value, ..." with arrays,
 * bytes and long strings summarized, into buf (value_text.c). */
void cli_fields_text(const kiln_value *fields, char *buf, size_t size);
/* Print "kiln: <message>" on stderr (newlines in the message are flattened,
 * so it stays one line) and return code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same for a failed kiln call: "kiln: <context>: <kiln_last_error()>";
 * returns CLI_EXIT_FAILURE. */
int cli_fail_kiln(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- args.c: walking argv and parsing option values ------------------------ */

typedef struct cli_args {
    int         argc;
    char      **argv;
    int         i;            /* the next argument to look at */
    const char *command;      /* for messages: "run", "bench", ... */
} cli_args;

/* If argv[i] is `name` taking a value ("--name VALUE" or "--name=VALUE"):
 * sets *value, advances and returns 1.  0: argv[i] is something else.
 * -1: the value is missing (reported; exit with CLI_EXIT_USAGE). */
int  cli_args_value(cli_args *a, const char *name, const char **value);
/* If argv[i] is exactly the flag `name`: advances and returns true. */
bool cli_args_flag(cli_args *a, const char *name);

/* A "NAME=VALUE" option value, split at its first '=' (the name is copied). */
typedef struct cli_assign {
    char       *name;
    const char *value;
} cli_assign;

/* A growing list of assignments given with one repeatable option. */
typedef struct cli_assign_list {
    cli_assign *items;
    int32_t     count, capacity;
} cli_assign_list;

/* Split text ("x=in.npy") and append it; reports a usage error naming option
 * and returns CLI_EXIT_USAGE when there is no '=' or the name is empty. */
int  cli_assign_add(cli_assign_list *list, const char *option, const char *text);
void cli_assign_list_free(cli_assign_list *list);

/* A growing list of strings (e.g. --plugin-lib paths). */
typedef struct cli_string_list {
    const char **items;
    int32_t      count, capacity;
} cli_string_list;
int  cli_string_list_add(cli_string_list *list, const char *s);
void cli_string_list_free(cli_string_list *list);

/* Parsers: true on success; the caller reports the failure. */
bool cli_parse_int(const char *text, int64_t min, int64_t max, int64_t *out);
bool cli_parse_u64(const char *text, uint64_t *out);
/* "cpu", "cuda" (GPU 0) or "cuda:N". */
bool cli_parse_device(const char *text, kiln_device *out);
/* "2x16", "2,16", "7"; "" or "scalar" for rank 0.  Sizes are >= 0. */
bool cli_parse_dims(const char *text, int32_t *rank, int64_t dims[KILN_MAX_RANK]);

/* ---- engine_open.c: plugins and engines -------------------------------------- */

/* Load each native plugin library (--plugin-lib). */
int cli_load_plugin_libraries(const cli_string_list *paths);
/* Load an engine.  to_run false: plugins are not resolved (KILN_LOAD_NO_PLUGINS),
 * so any engine can be described.  to_run true: every plugin must be
 * registered; a missing one is reported by name, saying when it needs Python. */
int cli_engine_open(const char *path, bool to_run, kiln_engine **out);

/* ---- shared text helpers ---------------------------------------------------- */

/* Symbolic shape as "[batch, 16]" into buf (truncated to size). */
void cli_format_symbolic_shape(const kiln_engine *e, int32_t rank, const kiln_expr *shape, char *buf, size_t size);
/* Concrete shape as "[2, 16]". */
void cli_format_dims(int32_t rank, const int64_t *dims, char *buf, size_t size);

/* ---- graph_dot.c -------------------------------------------------------------- */

/* Write the engine's network as a Graphviz digraph to path. */
int cli_dot_write(const kiln_engine *e, const char *path);

/* ---- commands ----------------------------------------------------------------- */

/* Each gets the arguments after its name and returns the exit code. */
int cli_cmd_inspect(int argc, char **argv);
int cli_cmd_run(int argc, char **argv);
int cli_cmd_bench(int argc, char **argv);

/* Per-command help text (main.c), printed by `kiln help CMD` and `kiln CMD --help`. */
void cli_print_command_help(const char *command);

#endif
