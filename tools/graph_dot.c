/* graph_dot.c — an engine's network as a Graphviz digraph (`inspect --dot`).
 *
 * Nodes: the inputs and outputs (ellipses), the layers in execution order
 * (boxes) and the constants the layers read (notes).  Edges: the tensors,
 * from the node that produces one to each node that reads it, labelled
 * with the tensor's name and dtype.  Render with `dot -Tsvg FILE`. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Who produces a tensor: an input, a layer, or nobody (a constant). */
typedef struct producer {
    enum { FROM_NOTHING, FROM_INPUT, FROM_LAYER } kind;
    int32_t index;
} producer;

/* Write s inside a double-quoted DOT string. */
static void put_escaped(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '"' || *s == '\\') fputc('\\', f), fputc(*s, f);
        else if (*s == '\n') fputs("\\n", f);
        else fputc(*s, f);
    }
}

static int32_t tensor_by_name(const kiln_engine *e, const char *name) {
    for (int32_t t = 0; t < kiln_engine_tensor_count(e); t++) {
        const char *n = kiln_engine_tensor_name(e, t);
        if (n && strcmp(n, name) == 0) return t;
    }
    return -1;
}

static void put_node_id(FILE *f, producer p, int32_t tensor) {
    if (p.kind == FROM_INPUT) fprintf(f, "input%d", (int)p.index);
    else if (p.kind == FROM_LAYER) fprintf(f, "layer%d", (int)p.index);
    else fprintf(f, "const%d", (int)tensor);
}

static void put_edge(FILE *f, const kiln_engine *e, producer from, int32_t tensor, const char *to_prefix, int32_t to) {
    kiln_dtype dtype = KILN_FLOAT32;
    kiln_engine_tensor_info(e, tensor, &dtype, NULL, NULL);
    fputs("  ", f);
    put_node_id(f, from, tensor);
    fprintf(f, " -> %s%d [label=\"", to_prefix, (int)to);
    put_escaped(f, kiln_engine_tensor_name(e, tensor));
    fprintf(f, "\\n%s\"];\n", kiln_dtype_name(dtype));
}

static void put_shape_label(FILE *f, const kiln_engine *e, const char *name, kiln_dtype dtype, int32_t rank,
                            const kiln_expr *shape) {
    char dims[1024];
    cli_format_symbolic_shape(e, rank, shape, dims, sizeof dims);
    put_escaped(f, name);
    fprintf(f, "\\n%s ", kiln_dtype_name(dtype));
    put_escaped(f, dims);
}

int cli_dot_write(const kiln_engine *e, const char *path) {
    int32_t nt = kiln_engine_tensor_count(e);
    producer *from = calloc(nt ? (size_t)nt : 1, sizeof *from);
    bool *const_drawn = calloc(nt ? (size_t)nt : 1, sizeof *const_drawn);
    if (!from || !const_drawn) {
        free(from);
        free(const_drawn);
        return cli_fail(CLI_EXIT_FAILURE, "out of memory");
    }
    FILE *f = fopen(path, "w");
    if (!f) {
        free(from);
        free(const_drawn);
        return cli_fail(CLI_EXIT_FAILURE, "cannot create '%s': %s", path, strerror(errno));
    }
    fprintf(f, "digraph kiln_engine {\n  rankdir=TB;\n  node [fontname=\"Helvetica\"];\n"
               "  edge [fontname=\"Helvetica\", fontsize=10];\n");

    /* Inputs and outputs. */
    for (int32_t i = 0; i < kiln_engine_io_count(e); i++) {
        kiln_io_info info;
        if (kiln_engine_io_info(e, i, &info) != KILN_OK) continue;
        bool input = info.kind == KILN_IO_INPUT;
        fprintf(f, "  %s%d [shape=ellipse, style=filled, fillcolor=\"%s\", label=\"", input ? "input" : "output",
                (int)i, input ? "#cfe8ff" : "#d7f5d0");
        put_shape_label(f, e, info.name, info.dtype, info.rank, info.shape);
        fprintf(f, "\"];\n");
        int32_t t = tensor_by_name(e, info.name);
        if (input && t >= 0) from[t] = (producer){FROM_INPUT, i};
    }
    /* Layers, and who produces each tensor. */
    for (int32_t l = 0; l < kiln_engine_layer_count(e); l++) {
        const char *kind, *detail;
        int32_t no;
        const int32_t *out;
        if (kiln_engine_layer_info(e, l, &kind, &detail, NULL, NULL, &no, &out) != KILN_OK) continue;
        fprintf(f, "  layer%d [shape=box, style=rounded, label=\"%d: ", (int)l, (int)l);
        put_escaped(f, kind);
        if (detail[0]) {
            fputs("\\n", f);
            put_escaped(f, detail);
        }
        fprintf(f, "\"];\n");
        for (int32_t i = 0; i < no; i++)
            if (out[i] >= 0 && out[i] < nt) from[out[i]] = (producer){FROM_LAYER, l};
    }
    /* Edges into layers; constants get a node the first time one is read. */
    for (int32_t l = 0; l < kiln_engine_layer_count(e); l++) {
        int32_t ni;
        const int32_t *in;
        if (kiln_engine_layer_info(e, l, NULL, NULL, &ni, &in, NULL, NULL) != KILN_OK) continue;
        for (int32_t i = 0; i < ni; i++) {
            int32_t t = in[i];
            if (t < 0 || t >= nt) continue;
            if (from[t].kind == FROM_NOTHING && !const_drawn[t]) {
                kiln_dtype dtype;
                int32_t rank;
                kiln_expr shape[KILN_MAX_RANK];
                if (kiln_engine_tensor_info(e, t, &dtype, &rank, shape) == KILN_OK) {
                    fprintf(f, "  const%d [shape=note, style=filled, fillcolor=\"#f2f2f2\", label=\"", (int)t);
                    put_shape_label(f, e, kiln_engine_tensor_name(e, t), dtype, rank, shape);
                    fprintf(f, "\"];\n");
                }
                const_drawn[t] = true;
            }
            put_edge(f, e, from[t], t, "layer", l);
        }
    }
    /* Edges into outputs. */
    for (int32_t i = 0; i < kiln_engine_io_count(e); i++) {
        kiln_io_info info;
        if (kiln_engine_io_info(e, i, &info) != KILN_OK || info.kind != KILN_IO_OUTPUT) continue;
        int32_t t = tensor_by_name(e, info.name);
        if (t >= 0 && from[t].kind != FROM_NOTHING) put_edge(f, e, from[t], t, "output", i);
    }
    fprintf(f, "}\n");
    free(from);
    free(const_drawn);
    int failed = ferror(f);
    if (fclose(f) != 0) failed = 1;
    if (failed) {
        remove(path);
        return cli_fail(CLI_EXIT_FAILURE, "cannot write '%s'", path);
    }
    return CLI_EXIT_OK;
}
