/* exec_setup.c — see exec_setup.h. */
#include <stdio.h>
#include <string.h>

#include "exec_setup.h"

int cli_exec_option(cli_args *a, cli_exec_options *o, bool *taken) {
    const char *value;
    int r;
    *taken = true;
    if ((r = cli_args_value(a, "--plugin-lib", &value))) return r < 0 ? CLI_EXIT_USAGE : cli_string_list_add(&o->plugin_libs, value);
    if ((r = cli_args_value(a, "--input", &value))) return r < 0 ? CLI_EXIT_USAGE : cli_assign_add(&o->inputs, "--input", value);
    if ((r = cli_args_value(a, "--shape", &value))) return r < 0 ? CLI_EXIT_USAGE : cli_assign_add(&o->shapes, "--shape", value);
    if ((r = cli_args_value(a, "--device", &value))) {
        if (r < 0) return CLI_EXIT_USAGE;
        if (!cli_parse_device(value, &o->device))
            return cli_fail(CLI_EXIT_USAGE, "%s: --device '%s': expected cpu, cuda or cuda:N", a->command, value);
        return CLI_EXIT_OK;
    }
    if ((r = cli_args_value(a, "--seed", &value))) {
        if (r < 0) return CLI_EXIT_USAGE;
        if (!cli_parse_u64(value, &o->seed))
            return cli_fail(CLI_EXIT_USAGE, "%s: --seed '%s': expected a non-negative integer", a->command, value);
        return CLI_EXIT_OK;
    }
    const char *arg = a->argv[a->i];
    if (arg[0] == '-' && arg[1] != '\0') {
        *taken = false;
        return CLI_EXIT_OK;
    }
    if (o->engine_path)
        return cli_fail(CLI_EXIT_USAGE, "%s: unexpected argument '%s' (the engine is '%s')", a->command, arg,
                        o->engine_path);
    o->engine_path = arg;
    a->i++;
    return CLI_EXIT_OK;
}

int cli_exec_check(const cli_args *a, const cli_exec_options *o) {
    if (!o->engine_path)
        return cli_fail(CLI_EXIT_USAGE, "%s: no engine file given (usage: kiln %s ENGINE [options])", a->command,
                        a->command);
    return CLI_EXIT_OK;
}

void cli_device_text(kiln_device device, char *buf, size_t size) {
    if (device.type == KILN_DEVICE_CPU) snprintf(buf, size, "cpu");
    else snprintf(buf, size, "cuda:%d", (int)device.index);
}

int cli_exec_open(const cli_exec_options *o, kiln_engine **engine, kiln_context **ctx, cli_bindings *b) {
    *engine = NULL;
    *ctx = NULL;
    memset(b, 0, sizeof *b);
    int code = cli_load_plugin_libraries(&o->plugin_libs);
    if (!code) code = cli_engine_open(o->engine_path, true, engine);
    if (code) return code;
    kiln_context_options options = {.struct_size = sizeof options, .device = o->device};
    if (kiln_context_create(*engine, &options, ctx) != KILN_OK) {
        char device[32];
        cli_device_text(o->device, device, sizeof device);
        code = cli_fail_kiln("cannot run '%s' on %s", o->engine_path, device);
        kiln_engine_free(*engine);
        *engine = NULL;
        return code;
    }
    cli_data_options data = {.inputs = &o->inputs, .shapes = &o->shapes, .seed = o->seed};
    if ((code = cli_bindings_create(*ctx, &data, b))) {
        kiln_context_free(*ctx);
        kiln_engine_free(*engine);
        *ctx = NULL;
        *engine = NULL;
    }
    return code;
}

void cli_exec_close(kiln_engine *engine, kiln_context *ctx, cli_bindings *b) {
    /* Buffers first: they may be device memory the context's backend owns. */
    cli_bindings_free(b);
    kiln_context_free(ctx);
    kiln_engine_free(engine);
}

void cli_exec_options_free(cli_exec_options *o) {
    cli_string_list_free(&o->plugin_libs);
    cli_assign_list_free(&o->inputs);
    cli_assign_list_free(&o->shapes);
}
