/* cmd_inspect.c — `kiln inspect`: describe an engine, as text or JSON.
 *
 * The engine is loaded without resolving its plugins, so any engine can be
 * described, including one whose plugins are Python classes or libraries
 * this process does not have; each plugin is shown with whether it needs
 * Python and whether it is registered here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "json_writer.h"
#include "kiln/plugin.h"

typedef struct plugin_view {
    const char *ns, *name, *version, *module;
    uint32_t    flags;
    bool        registered;
} plugin_view;

static int plugin_view_get(const kiln_engine *e, int32_t i, plugin_view *p) {
    if (kiln_engine_plugin_info(e, i, &p->ns, &p->name, &p->version, &p->module) != KILN_OK ||
        kiln_engine_plugin_flags(e, i, &p->flags) != KILN_OK)
        return cli_fail_kiln("plugin %d", i);
    p->registered = kiln_plugin_find(p->ns, p->name, p->version) != NULL;
    return CLI_EXIT_OK;
}

/* The field views of plugin i's creator (its schema says what to show, so
 * this tool knows no plugin's layout): count of them, 0 when the creator is
 * not registered here or has none. */
static int32_t field_views(const plugin_view *p, const kiln_plugin_field_view **views) {
    const kiln_plugin_creator *c = kiln_plugin_find(p->ns, p->name, p->version);
    *views = c ? c->field_views : NULL;
    return c && c->field_views && c->field_view_count > 0 ? c->field_view_count : 0;
}

/* "AOT kernels" -> "aot_kernels". */
static void json_label(const char *label, char *buf, size_t size) {
    size_t n = 0;
    for (; label[n] && n + 1 < size; n++)
        buf[n] = label[n] == ' ' ? '_' : (label[n] >= 'A' && label[n] <= 'Z') ? (char)(label[n] - 'A' + 'a') : label[n];
    buf[n] = 0;
}

/* A dimension's ranges (profile_count entries, malloc'd). */
static kiln_dim_range *dim_ranges(const kiln_engine *e, int32_t d, const char **name) {
    int32_t np = kiln_engine_profile_count(e);
    kiln_dim_range *r = malloc(sizeof *r * (size_t)(np > 0 ? np : 1));
    if (r && kiln_engine_dim_info(e, d, name, r) != KILN_OK) {
        free(r);
        return NULL;
    }
    return r;
}

static void tensor_text(const kiln_engine *e, int32_t t, char *buf, size_t size) {
    kiln_dtype dtype;
    int32_t rank;
    kiln_expr shape[KILN_MAX_RANK];
    char dims[512] = "?";
    if (kiln_engine_tensor_info(e, t, &dtype, &rank, shape) == KILN_OK) {
        cli_format_symbolic_shape(e, rank, shape, dims, sizeof dims);
        snprintf(buf, size, "%s %s %s", kiln_engine_tensor_name(e, t), kiln_dtype_name(dtype), dims);
    } else {
        snprintf(buf, size, "%s", kiln_engine_tensor_name(e, t) ? kiln_engine_tensor_name(e, t) : "?");
    }
}

/* ---- text ------------------------------------------------------------------- */

static int print_text(const kiln_engine *e, const char *path, long long file_size) {
    printf("engine          %s\n", path);
    printf("format version  %u\n", (unsigned)kiln_engine_format_version(e));
    printf("size            %lld bytes\n", file_size);
    printf("profiles        %d\n", (int)kiln_engine_profile_count(e));
    int32_t group_rank = 0, world_size = 1;
    kiln_engine_parallel(e, &group_rank, &world_size);
    printf("parallel        rank %d of world size %d\n", (int)group_rank, (int)world_size);

    printf("\ndimensions (min, opt, max per profile)\n");
    if (kiln_engine_dim_count(e) == 0) printf("  none: every shape is static\n");
    for (int32_t d = 0; d < kiln_engine_dim_count(e); d++) {
        const char *name;
        kiln_dim_range *r = dim_ranges(e, d, &name);
        if (!r) return cli_fail_kiln("dimension %d", d);
        printf("  %-14s", cli_safe(name));
        for (int32_t p = 0; p < kiln_engine_profile_count(e); p++)
            printf("%s profile %d: (%lld, %lld, %lld)", p ? "," : "", (int)p, (long long)r[p].min,
                   (long long)r[p].opt, (long long)r[p].max);
        printf("\n");
        free(r);
    }

    for (int kind = KILN_IO_INPUT; kind <= KILN_IO_OUTPUT; kind++) {
        printf("\n%s\n", kind == KILN_IO_INPUT ? "inputs" : "outputs");
        for (int32_t i = 0; i < kiln_engine_io_count(e); i++) {
            kiln_io_info info;
            if (kiln_engine_io_info(e, i, &info) != KILN_OK) return cli_fail_kiln("input/output %d", i);
            if ((int)info.kind != kind) continue;
            char shape[1024];
            cli_format_symbolic_shape(e, info.rank, info.shape, shape, sizeof shape);
            printf("  %-14s %-9s %s\n", cli_safe(info.name), kiln_dtype_name(info.dtype), cli_safe(shape));
        }
    }

    printf("\nlayers (%d, in execution order)\n", (int)kiln_engine_layer_count(e));
    int width = 0;   /* of the widest "kind detail", to align the tensor columns */
    for (int32_t l = 0; l < kiln_engine_layer_count(e); l++) {
        const char *kind, *detail;
        if (kiln_engine_layer_info(e, l, &kind, &detail, NULL, NULL, NULL, NULL) != KILN_OK) continue;
        int n = (int)(strlen(kind) + (detail[0] ? 1 + strlen(detail) : 0));
        if (n > width) width = n < 60 ? n : 60;
    }
    for (int32_t l = 0; l < kiln_engine_layer_count(e); l++) {
        const char *kind, *detail;
        int32_t ni, no;
        const int32_t *in, *out;
        if (kiln_engine_layer_info(e, l, &kind, &detail, &ni, &in, &no, &out) != KILN_OK)
            return cli_fail_kiln("layer %d", l);
        char what[256];
        snprintf(what, sizeof what, "%s%s%s", kind, detail[0] ? " " : "", detail);
        printf("  %3d  %-*s  ", (int)l, width, cli_safe(what));
        for (int32_t i = 0; i < ni; i++) printf("%s%s", i ? ", " : "", cli_safe(kiln_engine_tensor_name(e, in[i])));
        printf(" -> ");
        for (int32_t i = 0; i < no; i++) {
            char t[1024];
            tensor_text(e, out[i], t, sizeof t);
            printf("%s%s", i ? ", " : "", cli_safe(t));
        }
        printf("\n");
    }

    printf("\nplugins\n");
    if (kiln_engine_plugin_count(e) == 0) printf("  none\n");
    /* Each plugin once (an engine has a record per plugin layer), then its
     * layers with the attributes each stores. */
    int32_t nplug = kiln_engine_plugin_count(e);
    bool *shown = calloc(nplug > 0 ? (size_t)nplug : 1, sizeof *shown);
    if (!shown) return cli_fail(CLI_EXIT_FAILURE, "out of memory");
    for (int32_t i = 0; i < nplug; i++) {
        if (shown[i]) continue;
        plugin_view p;
        int code = plugin_view_get(e, i, &p);
        if (code) { free(shown); return code; }
        printf("  %s::%s version %s\n", cli_safe(p.ns), cli_safe(p.name), cli_safe(p.version));
        bool cpu = p.flags & KILN_PLUGIN_SUPPORTS_CPU, cuda = p.flags & KILN_PLUGIN_SUPPORTS_CUDA;
        printf("      module %s, needs Python: %s, runs on: %s, registered here: %s\n",
               p.module[0] ? cli_safe(p.module) : "(unknown)", p.flags & KILN_PLUGIN_NEEDS_PYTHON ? "yes" : "no",
               cpu && cuda ? "cpu cuda" : cpu ? "cpu" : cuda ? "cuda" : "none", p.registered ? "yes" : "no");
        for (int32_t j = i; j < nplug; j++) {
            plugin_view q;
            if (shown[j] || plugin_view_get(e, j, &q) || strcmp(q.ns, p.ns) || strcmp(q.name, p.name) ||
                strcmp(q.version, p.version))
                continue;
            shown[j] = true;
            const kiln_value *fields = NULL;
            char text[1024] = "";
            if (kiln_engine_plugin_fields(e, j, &fields) == KILN_OK) cli_fields_text(fields, text, sizeof text);
            for (int32_t l = 0; l < kiln_engine_layer_count(e); l++)
                if (kiln_engine_layer_plugin(e, l) == j) printf("      layer %d: %s\n", (int)l, text);
            const kiln_plugin_field_view *views;
            int32_t nviews = fields ? field_views(&q, &views) : 0;
            for (int32_t v = 0; v < nviews; v++) {
                char shown_text[1024];
                kiln_plugin_field_view_format(&views[v], fields, shown_text, sizeof shown_text);
                if (shown_text[0]) printf("      %s: %s\n", cli_safe(views[v].label), cli_safe(shown_text));
            }
        }
    }
    free(shown);

    printf("\nmemory\n");
    printf("  activation arena  %llu bytes (planned at the profiles' maxima)\n",
           (unsigned long long)kiln_engine_arena_bytes(e));
    printf("  weights           %llu bytes\n", (unsigned long long)kiln_engine_weight_bytes(e));
    /* What a context actually holds: its arena follows the shapes it runs. */
    for (int32_t p = 0; p < kiln_engine_profile_count(e) || (p == 0 && kiln_engine_profile_count(e) == 0); p++) {
        uint64_t opt = 0, max = 0;
        if (kiln_engine_activation_bytes(e, p, false, &opt) == KILN_OK &&
            kiln_engine_activation_bytes(e, p, true, &max) == KILN_OK)
            printf("  activations       %llu bytes at profile %d's opt shapes, %llu at its max\n",
                   (unsigned long long)opt, (int)p, (unsigned long long)max);
    }
    return fflush(stdout) == 0 ? CLI_EXIT_OK : cli_fail(CLI_EXIT_FAILURE, "cannot write to standard output");
}

/* ---- JSON ------------------------------------------------------------------- */

static void json_shape(json_writer *w, const kiln_engine *e, int32_t rank, const kiln_expr *shape) {
    json_begin_array(w);
    for (int32_t a = 0; a < rank; a++) {
        int64_t v;
        if (kiln_expr_is_const(kiln_engine_exprs(e), shape[a], &v)) {
            json_int(w, v);
        } else {
            char text[4096];
            size_t n = kiln_expr_format(kiln_engine_exprs(e), shape[a], text, sizeof text);
            if (n >= sizeof text) memcpy(text + sizeof text - 4, "...", 4);
            json_string(w, text);
        }
    }
    json_end_array(w);
}

static void json_tensor_names(json_writer *w, const kiln_engine *e, int32_t n, const int32_t *ids) {
    json_begin_array(w);
    for (int32_t i = 0; i < n; i++) json_string(w, kiln_engine_tensor_name(e, ids[i]));
    json_end_array(w);
}

static int print_json(const kiln_engine *e, const char *path, long long file_size) {
    json_writer w;
    json_init(&w, stdout);
    json_begin_object(&w);
    json_key(&w, "engine"), json_string(&w, path);
    json_key(&w, "format_version"), json_uint(&w, kiln_engine_format_version(e));
    json_key(&w, "size_bytes"), json_int(&w, file_size);
    json_key(&w, "profile_count"), json_int(&w, kiln_engine_profile_count(e));
    int32_t group_rank = 0, world_size = 1;
    kiln_engine_parallel(e, &group_rank, &world_size);
    json_key(&w, "rank"), json_int(&w, group_rank);
    json_key(&w, "world_size"), json_int(&w, world_size);

    json_key(&w, "dimensions");
    json_begin_array(&w);
    for (int32_t d = 0; d < kiln_engine_dim_count(e); d++) {
        const char *name;
        kiln_dim_range *r = dim_ranges(e, d, &name);
        if (!r) return cli_fail_kiln("dimension %d", d);
        json_begin_object(&w);
        json_key(&w, "name"), json_string(&w, name);
        json_key(&w, "profiles");
        json_begin_array(&w);
        for (int32_t p = 0; p < kiln_engine_profile_count(e); p++) {
            json_begin_object(&w);
            json_key(&w, "min"), json_int(&w, r[p].min);
            json_key(&w, "opt"), json_int(&w, r[p].opt);
            json_key(&w, "max"), json_int(&w, r[p].max);
            json_end_object(&w);
        }
        json_end_array(&w);
        json_end_object(&w);
        free(r);
    }
    json_end_array(&w);

    for (int kind = KILN_IO_INPUT; kind <= KILN_IO_OUTPUT; kind++) {
        json_key(&w, kind == KILN_IO_INPUT ? "inputs" : "outputs");
        json_begin_array(&w);
        for (int32_t i = 0; i < kiln_engine_io_count(e); i++) {
            kiln_io_info info;
            if (kiln_engine_io_info(e, i, &info) != KILN_OK) return cli_fail_kiln("input/output %d", i);
            if ((int)info.kind != kind) continue;
            json_begin_object(&w);
            json_key(&w, "name"), json_string(&w, info.name);
            json_key(&w, "dtype"), json_string(&w, kiln_dtype_name(info.dtype));
            json_key(&w, "shape"), json_shape(&w, e, info.rank, info.shape);
            json_end_object(&w);
        }
        json_end_array(&w);
    }

    json_key(&w, "layers");
    json_begin_array(&w);
    for (int32_t l = 0; l < kiln_engine_layer_count(e); l++) {
        const char *kind, *detail;
        int32_t ni, no;
        const int32_t *in, *out;
        if (kiln_engine_layer_info(e, l, &kind, &detail, &ni, &in, &no, &out) != KILN_OK)
            return cli_fail_kiln("layer %d", l);
        json_begin_object(&w);
        json_key(&w, "index"), json_int(&w, l);
        json_key(&w, "kind"), json_string(&w, kind);
        json_key(&w, "detail"), json_string(&w, detail);
        json_key(&w, "inputs"), json_tensor_names(&w, e, ni, in);
        json_key(&w, "outputs"), json_tensor_names(&w, e, no, out);
        json_end_object(&w);
    }
    json_end_array(&w);

    json_key(&w, "tensors");
    json_begin_array(&w);
    for (int32_t t = 0; t < kiln_engine_tensor_count(e); t++) {
        kiln_dtype dtype;
        int32_t rank;
        kiln_expr shape[KILN_MAX_RANK];
        if (kiln_engine_tensor_info(e, t, &dtype, &rank, shape) != KILN_OK) return cli_fail_kiln("tensor %d", t);
        json_begin_object(&w);
        json_key(&w, "name"), json_string(&w, kiln_engine_tensor_name(e, t));
        json_key(&w, "dtype"), json_string(&w, kiln_dtype_name(dtype));
        json_key(&w, "shape"), json_shape(&w, e, rank, shape);
        json_end_object(&w);
    }
    json_end_array(&w);

    json_key(&w, "plugins");
    json_begin_array(&w);
    for (int32_t i = 0; i < kiln_engine_plugin_count(e); i++) {
        plugin_view p;
        int code = plugin_view_get(e, i, &p);
        if (code) return code;
        json_begin_object(&w);
        json_key(&w, "namespace"), json_string(&w, p.ns);
        json_key(&w, "name"), json_string(&w, p.name);
        json_key(&w, "version"), json_string(&w, p.version);
        json_key(&w, "module");
        if (p.module[0]) json_string(&w, p.module);
        else json_null(&w);
        json_key(&w, "needs_python"), json_bool(&w, p.flags & KILN_PLUGIN_NEEDS_PYTHON);
        json_key(&w, "supports_cpu"), json_bool(&w, p.flags & KILN_PLUGIN_SUPPORTS_CPU);
        json_key(&w, "supports_cuda"), json_bool(&w, p.flags & KILN_PLUGIN_SUPPORTS_CUDA);
        json_key(&w, "registered"), json_bool(&w, p.registered);
        const kiln_value *fields = NULL;
        const kiln_plugin_field_view *views;
        int32_t nviews = kiln_engine_plugin_fields(e, i, &fields) == KILN_OK ? field_views(&p, &views) : 0;
        for (int32_t v = 0; v < nviews; v++) {
            char shown_text[1024], key[128];
            kiln_plugin_field_view_format(&views[v], fields, shown_text, sizeof shown_text);
            json_label(views[v].label, key, sizeof key);
            if (shown_text[0]) json_key(&w, key), json_string(&w, shown_text);
        }
        json_key(&w, "layers");
        json_begin_array(&w);
        for (int32_t l = 0; l < kiln_engine_layer_count(e); l++)
            if (kiln_engine_layer_plugin(e, l) == i) json_int(&w, l);
        json_end_array(&w);
        char text[2048] = "";
        if (fields) cli_fields_text(fields, text, sizeof text);
        json_key(&w, "attributes"), json_string(&w, text);
        json_end_object(&w);
    }
    json_end_array(&w);

    json_key(&w, "memory");
    json_begin_object(&w);
    json_key(&w, "arena_bytes"), json_uint(&w, kiln_engine_arena_bytes(e));
    json_key(&w, "activation_bytes");
    json_begin_array(&w);
    for (int32_t p = 0; p < kiln_engine_profile_count(e) || (p == 0 && kiln_engine_profile_count(e) == 0); p++) {
        uint64_t opt = 0, max = 0;
        if (kiln_engine_activation_bytes(e, p, false, &opt) != KILN_OK ||
            kiln_engine_activation_bytes(e, p, true, &max) != KILN_OK)
            continue;
        json_begin_object(&w);
        json_key(&w, "profile"), json_int(&w, p);
        json_key(&w, "opt"), json_uint(&w, opt);
        json_key(&w, "max"), json_uint(&w, max);
        json_end_object(&w);
    }
    json_end_array(&w);
    json_key(&w, "weight_bytes"), json_uint(&w, kiln_engine_weight_bytes(e));
    json_end_object(&w);
    json_end_object(&w);
    return json_finish(&w) ? CLI_EXIT_OK : cli_fail(CLI_EXIT_FAILURE, "cannot write to standard output");
}

/* ---- the command ------------------------------------------------------------ */

int cli_cmd_inspect(int argc, char **argv) {
    cli_args a = {argc, argv, 0, "inspect"};
    cli_string_list plugin_libs = {0};
    const char *path = NULL, *dot = NULL;
    bool json = false;
    int code = CLI_EXIT_OK;
    while (a.i < a.argc && !code) {
        const char *value;
        int r;
        if (cli_args_flag(&a, "--help") || cli_args_flag(&a, "-h")) {
            cli_print_command_help("inspect");
            cli_string_list_free(&plugin_libs);
            return CLI_EXIT_OK;
        }
        if (cli_args_flag(&a, "--json")) {
            json = true;
        } else if ((r = cli_args_value(&a, "--dot", &value))) {
            if (r < 0) code = CLI_EXIT_USAGE;
            else dot = value;
        } else if ((r = cli_args_value(&a, "--plugin-lib", &value))) {
            code = r < 0 ? CLI_EXIT_USAGE : cli_string_list_add(&plugin_libs, value);
        } else if (a.argv[a.i][0] == '-' && a.argv[a.i][1]) {
            code = cli_fail(CLI_EXIT_USAGE, "inspect: unknown option '%s' (see 'kiln help inspect')", a.argv[a.i]);
        } else if (path) {
            code = cli_fail(CLI_EXIT_USAGE, "inspect: unexpected argument '%s' (the engine is '%s')", a.argv[a.i],
                            path);
        } else {
            path = a.argv[a.i++];
        }
    }
    if (!code && !path) code = cli_fail(CLI_EXIT_USAGE, "inspect: no engine file given (usage: kiln inspect ENGINE)");
    if (!code) code = cli_load_plugin_libraries(&plugin_libs);
    cli_string_list_free(&plugin_libs);
    if (code) return code;

    kiln_engine *e;
    if ((code = cli_engine_open(path, false, &e))) return code;
    struct stat st;
    long long file_size = stat(path, &st) == 0 ? (long long)st.st_size : -1;
    code = json ? print_json(e, path, file_size) : print_text(e, path, file_size);
    if (!code && dot) code = cli_dot_write(e, dot);
    kiln_engine_free(e);
    return code;
}
