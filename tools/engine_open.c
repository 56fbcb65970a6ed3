/* engine_open.c — loading plugin libraries and engines for the commands.
 *
 * Describing an engine must work wherever the file is, even when its plugins
 * live in a Python module or a library this process never loaded: inspect
 * loads with KILN_LOAD_NO_PLUGINS.  Running needs every plugin; when the
 * load fails for a missing one, the engine is loaded again without plugins
 * to tell which one is missing and why (a Python plugin cannot run in this
 * tool at all; a native one needs --plugin-lib). */
#include <stdio.h>

#include "cli.h"
#include "kiln/plugin.h"

int cli_load_plugin_libraries(const cli_string_list *paths) {
    for (int32_t i = 0; i < paths->count; i++)
        if (kiln_plugin_library_load(paths->items[i]) != KILN_OK)
            return cli_fail(CLI_EXIT_FAILURE, "--plugin-lib: %s", kiln_last_error());   /* names the library */
    return CLI_EXIT_OK;
}

/* After a failed load: the first plugin of the engine that is not registered,
 * reported; CLI_EXIT_OK when every plugin is there (the failure was another). */
static int report_missing_plugin(const char *path) {
    kiln_engine *e;
    if (kiln_engine_load_file(path, KILN_LOAD_NO_PLUGINS, &e) != KILN_OK) return CLI_EXIT_OK;
    int code = CLI_EXIT_OK;
    for (int32_t i = 0; i < kiln_engine_plugin_count(e) && !code; i++) {
        const char *ns, *name, *version, *module;
        uint32_t flags = 0;
        if (kiln_engine_plugin_info(e, i, &ns, &name, &version, &module) != KILN_OK ||
            kiln_engine_plugin_flags(e, i, &flags) != KILN_OK || kiln_plugin_find(ns, name, version))
            continue;
        if (flags & KILN_PLUGIN_NEEDS_PYTHON) {
            if (module[0])
                code = cli_fail(CLI_EXIT_FAILURE,
                                "engine '%s' needs Python: plugin %s::%s version %s runs Python code (module '%s'); "
                                "run it with the kiln command pip installs and --import %s, or from Python after "
                                "'import %s'", path, ns, name, version, module, module, module);
            else
                code = cli_fail(CLI_EXIT_FAILURE,
                                "engine '%s' needs Python: plugin %s::%s version %s runs Python code; run it with "
                                "the kiln command pip installs and --import MODULE, or from Python after importing "
                                "the plugin's module",
                                path, ns, name, version);
        } else if (module[0]) {
            code = cli_fail(CLI_EXIT_FAILURE,
                            "engine '%s' needs plugin %s::%s version %s, which is not registered: pass "
                            "--plugin-lib with the library that defines it (module '%s')",
                            path, ns, name, version, module);
        } else {
            code = cli_fail(CLI_EXIT_FAILURE,
                            "engine '%s' needs plugin %s::%s version %s, which is not registered: pass "
                            "--plugin-lib with the library that defines it",
                            path, ns, name, version);
        }
    }
    kiln_engine_free(e);
    return code;
}

int cli_engine_open(const char *path, bool to_run, kiln_engine **out) {
    kiln_status s = kiln_engine_load_file(path, to_run ? 0 : KILN_LOAD_NO_PLUGINS, out);
    if (s == KILN_OK) return CLI_EXIT_OK;
    char message[4096];
    snprintf(message, sizeof message, "%s", kiln_last_error());
    if (to_run && s == KILN_ERROR_NOT_FOUND) {
        int code = report_missing_plugin(path);
        if (code) return code;
    }
    /* kiln's load messages already name the file. */
    return cli_fail(CLI_EXIT_FAILURE, "%s", message[0] ? message : kiln_status_string(s));
}
