/* error.h — setting the thread-local last-error message. */
#ifndef KILN_CORE_ERROR_H
#define KILN_CORE_ERROR_H

#include "kiln/kiln.h"

/* Record a failure: formats the message for kiln_last_error() and returns
 * status, so that call sites read `return kiln_error(KILN_ERROR_..., "...")`. */
kiln_status kiln_error(kiln_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the current message with more context ("loading x.engine: ...").
 * Returns status unchanged. */
kiln_status kiln_error_prefix(kiln_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* How many messages have been set on this thread so far: code that calls
 * out (into a plugin) reads it before the call and, on failure, knows whether
 * the callee left a message of its own, without clearing the caller's. */
uint64_t kiln_error_serial(void);

#endif
