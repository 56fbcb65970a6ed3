/* json_writer.h — a small streaming JSON writer (pretty-printed, 2-space indent).
 *
 *     json_writer w;
 *     json_init(&w, stdout);
 *     json_begin_object(&w);
 *     json_key(&w, "name"); json_string(&w, "x");
 *     json_key(&w, "dims"); json_begin_array(&w); json_int(&w, 2); json_end_array(&w);
 *     json_end_object(&w);
 *     json_finish(&w);           // newline; false if a write failed
 *
 * Commas and indentation are placed by the writer.  Strings are escaped
 * per RFC 8259; bytes that are not valid UTF-8 become U+FFFD, so the
 * output always parses. */
#ifndef KILN_TOOLS_JSON_WRITER_H
#define KILN_TOOLS_JSON_WRITER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#define JSON_MAX_DEPTH 32

typedef struct json_writer {
    FILE *out;
    int   depth;
    bool  has_items[JSON_MAX_DEPTH];   /* per open container: something written already */
    bool  after_key;                   /* the next value follows "key": on the same line */
} json_writer;

void json_init        (json_writer *w, FILE *out);
void json_begin_object(json_writer *w);
void json_end_object  (json_writer *w);
void json_begin_array (json_writer *w);
void json_end_array   (json_writer *w);
void json_key         (json_writer *w, const char *key);
void json_string      (json_writer *w, const char *s);
void json_int         (json_writer *w, int64_t v);
void json_uint        (json_writer *w, uint64_t v);
void json_bool        (json_writer *w, bool v);
void json_null        (json_writer *w);
/* End the document with a newline; false if any write failed. */
bool json_finish      (json_writer *w);

#endif
