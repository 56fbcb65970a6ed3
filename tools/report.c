/* report.c — the tool's one line of error output.
 *
 * Scripts read a failure from the exit code and people from one line on
 * stderr, so every message, including a multi-line one from kiln (a plugin
 * may return a Python traceback), is flattened onto one "kiln: " line. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

static void print_line(const char *message) {
    char flat[8192];
    size_t n = 0;
    for (const char *p = message; *p && n + 4 < sizeof flat; p++) {
        if (*p == '\n') {
            /* Collapse the newline and the indentation after it into " | ". */
            while (p[1] == ' ' || p[1] == '\n') p++;
            if (p[1]) { memcpy(flat + n, " | ", 3); n += 3; }
        } else if (*p != '\r') {
            flat[n++] = *p;
        }
    }
    flat[n] = '\0';
    /* Messages quote engine strings: escape what a terminal would act on. */
    fprintf(stderr, "kiln: %s\n", cli_safe(flat));
}

int cli_fail(int code, const char *fmt, ...) {
    char message[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    print_line(message);
    return code;
}

int cli_fail_kiln(const char *fmt, ...) {
    char message[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    const char *why = kiln_last_error();
    if (n >= 0 && (size_t)n < sizeof message)
        snprintf(message + n, sizeof message - (size_t)n, ": %s", why[0] ? why : "unknown error");
    print_line(message);
    return CLI_EXIT_FAILURE;
}
