/* safe_text.c — engine strings made safe to print on a terminal.
 *
 * Names, modules and messages in an engine file are untrusted bytes: printed
 * raw, an ESC sequence in a tensor name could rewrite the user's terminal.
 * cli_safe() passes well-formed UTF-8 without control characters through
 * unchanged (the usual case: no copy) and otherwise returns a copy with each
 * offending byte written as \xNN: C0 controls and DEL, C1 controls (U+0080 to
 * U+009F, which some terminals act on) and bytes that are not well-formed
 * UTF-8.  Copies live in a small ring of slots, so a printf may take several
 * cli_safe() results at once; the tool is single-threaded. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

enum { SAFE_SLOTS = 16 };

/* Bytes of the well-formed, printable UTF-8 character at p, or 0. */
static size_t printable_char(const unsigned char *p) {
    if (p[0] >= 0x20 && p[0] < 0x7f) return 1;
    if (p[0] < 0xc2) return 0;                                   /* controls, DEL, stray continuation, overlong */
    size_t n = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : p[0] < 0xf5 ? 4 : 0;
    if (!n) return 0;
    for (size_t i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80) return 0;
    if (p[0] == 0xc2 && p[1] < 0xa0) return 0;                   /* C1 controls */
    if (p[0] == 0xe0 && p[1] < 0xa0) return 0;                   /* overlong */
    if (p[0] == 0xed && p[1] >= 0xa0) return 0;                  /* surrogates */
    if (p[0] == 0xf0 && p[1] < 0x90) return 0;                   /* overlong */
    if (p[0] == 0xf4 && p[1] >= 0x90) return 0;                  /* above U+10FFFF */
    return n;
}

const char *cli_safe(const char *text) {
    static char *slots[SAFE_SLOTS];
    static unsigned next;
    if (!text) return "(null)";
    const unsigned char *s = (const unsigned char *)text;
    size_t bad = 0, len = 0;
    for (size_t i = 0; s[i];) {
        size_t n = printable_char(s + i);
        if (n) i += n;
        else { bad++; i++; }
        len = i;
    }
    if (!bad) return text;
    char *copy = malloc(len + 3 * bad + 1);
    if (!copy) return "(unprintable)";
    char *o = copy;
    for (size_t i = 0; s[i];) {
        size_t n = printable_char(s + i);
        if (n) {
            memcpy(o, s + i, n);
            o += n;
            i += n;
        } else {
            o += sprintf(o, "\\x%02x", s[i]);
            i++;
        }
    }
    *o = '\0';
    free(slots[next]);
    slots[next] = copy;
    next = (next + 1) % SAFE_SLOTS;
    return copy;
}
