/* error.c — status strings and the thread-local last-error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/error.h"
#include "kiln/plugin.h"

#define KILN_ERROR_CAPACITY 4096

static _Thread_local char last_error[KILN_ERROR_CAPACITY];

const char *kiln_status_string(kiln_status status) {
    switch (status) {
    case KILN_OK:                     return "ok";
    case KILN_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case KILN_ERROR_INVALID_NETWORK:  return "invalid network";
    case KILN_ERROR_CORRUPT:          return "corrupt engine";
    case KILN_ERROR_VERSION:          return "unsupported engine version";
    case KILN_ERROR_NOT_FOUND:        return "not found";
    case KILN_ERROR_SHAPE:            return "shape error";
    case KILN_ERROR_NO_MEMORY:        return "out of memory";
    case KILN_ERROR_IO:               return "i/o error";
    case KILN_ERROR_UNSUPPORTED:      return "unsupported";
    case KILN_ERROR_PLUGIN:           return "plugin error";
    case KILN_ERROR_BACKEND:          return "backend error";
    case KILN_ERROR_STATE:            return "invalid state";
    }
    return "unknown status";
}

const char *kiln_last_error(void) { return last_error; }

void kiln_clear_error(void) { last_error[0] = '\0'; }

#define KILN_STRINGIFY_(x) #x
#define KILN_STRINGIFY(x) KILN_STRINGIFY_(x)
const char *kiln_version(void) {
    return KILN_STRINGIFY(KILN_VERSION_MAJOR) "." KILN_STRINGIFY(KILN_VERSION_MINOR) "." KILN_STRINGIFY(
        KILN_VERSION_PATCH);
}

/* Counts the messages set on this thread (kiln_error_serial). */
static _Thread_local uint64_t message_serial;

uint64_t kiln_error_serial(void) { return message_serial; }

/* Format into a scratch buffer first: callers may pass kiln_last_error()
 * itself as an argument, and vsnprintf must not write what it reads. */
static void set_message(const char *fmt, va_list ap) {
    char scratch[KILN_ERROR_CAPACITY];
    vsnprintf(scratch, sizeof scratch, fmt, ap);
    memcpy(last_error, scratch, sizeof last_error);
    message_serial++;
}

kiln_status kiln_error(kiln_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_message(fmt, ap);
    va_end(ap);
    return status;
}

void kiln_plugin_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_message(fmt, ap);
    va_end(ap);
}

kiln_status kiln_error_prefix(kiln_status status, const char *fmt, ...) {
    char prefix[1024], old[KILN_ERROR_CAPACITY];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    /* Long messages are cut at the buffer's end, on purpose. */
    if (snprintf(last_error, sizeof last_error, "%s: %s", prefix, old[0] ? old : kiln_status_string(status)) < 0)
        last_error[0] = '\0';
    return status;
}
