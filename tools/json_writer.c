/* json_writer.c — see json_writer.h. */
#include <inttypes.h>

#include "json_writer.h"

void json_init(json_writer *w, FILE *out) { *w = (json_writer){.out = out}; }

static void newline_indent(json_writer *w) {
    fputc('\n', w->out);
    for (int i = 0; i < w->depth; i++) fputs("  ", w->out);
}

/* Before any value or key: the comma and line break that separate it from the previous one. */
static void separate(json_writer *w) {
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (w->depth == 0) return;
    /* Deeper than JSON_MAX_DEPTH (never, in this tool) shares the last slot. */
    int slot = w->depth <= JSON_MAX_DEPTH ? w->depth - 1 : JSON_MAX_DEPTH - 1;
    if (w->has_items[slot]) fputc(',', w->out);
    w->has_items[slot] = true;
    newline_indent(w);
}

static void open_container(json_writer *w, char c) {
    separate(w);
    fputc(c, w->out);
    if (w->depth < JSON_MAX_DEPTH) w->has_items[w->depth] = false;
    w->depth++;
}

static void close_container(json_writer *w, char c) {
    if (w->depth == 0) return;
    w->depth--;
    if (w->depth < JSON_MAX_DEPTH && w->has_items[w->depth]) newline_indent(w);
    fputc(c, w->out);
}

void json_begin_object(json_writer *w) { open_container(w, '{'); }
void json_end_object(json_writer *w) { close_container(w, '}'); }
void json_begin_array(json_writer *w) { open_container(w, '['); }
void json_end_array(json_writer *w) { close_container(w, ']'); }

/* Length of the valid UTF-8 sequence at p (1..4), or 0 if it is not one. */
static int utf8_sequence(const unsigned char *p) {
    unsigned c = p[0];
    int n;
    uint32_t cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
    else return 0;
    for (int i = 1; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;    /* also stops at the terminating NUL */
        cp = cp << 6 | (p[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

static void write_string(json_writer *w, const char *s) {
    fputc('"', w->out);
    const unsigned char *p = (const unsigned char *)(s ? s : "");
    while (*p) {
        unsigned c = *p;
        if (c == '"' || c == '\\') {
            fputc('\\', w->out);
            fputc((int)c, w->out);
            p++;
        } else if (c == '\n') {
            fputs("\\n", w->out), p++;
        } else if (c == '\t') {
            fputs("\\t", w->out), p++;
        } else if (c == '\r') {
            fputs("\\r", w->out), p++;
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(w->out, "\\u%04x", c), p++;
        } else {
            int n = utf8_sequence(p);
            if (n == 0) {
                fputs("\\ufffd", w->out);
                p++;
            } else {
                fwrite(p, 1, (size_t)n, w->out);
                p += n;
            }
        }
    }
    fputc('"', w->out);
}

void json_key(json_writer *w, const char *key) {
    separate(w);
    write_string(w, key);
    fputs(": ", w->out);
    w->after_key = true;
}

void json_string(json_writer *w, const char *s) {
    separate(w);
    write_string(w, s);
}

void json_int(json_writer *w, int64_t v) {
    separate(w);
    fprintf(w->out, "%" PRId64, v);
}

void json_uint(json_writer *w, uint64_t v) {
    separate(w);
    fprintf(w->out, "%" PRIu64, v);
}

void json_bool(json_writer *w, bool v) {
    separate(w);
    fputs(v ? "true" : "false", w->out);
}

void json_null(json_writer *w) {
    separate(w);
    fputs("null", w->out);
}

bool json_finish(json_writer *w) {
    fputc('\n', w->out);
    return fflush(w->out) == 0 && !ferror(w->out);
}
