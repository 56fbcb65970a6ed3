/* plugin_failure.c — see plugin_failure.h. */
#include <stdarg.h>
#include <stdio.h>

#include "core/error.h"
#include "plugin/plugin_failure.h"

kiln_status kiln_plugin_failure(kiln_status status, uint64_t serial_before, const char *fmt, ...) {
    kiln_status result = status == KILN_ERROR_NO_MEMORY ? KILN_ERROR_NO_MEMORY : KILN_ERROR_PLUGIN;
    char where[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(where, sizeof where, fmt, ap);
    va_end(ap);
    if (kiln_error_serial() == serial_before)   /* the plugin set no message: the caller's is not its */
        return kiln_error(result, "%s: failed with status %d (%s) and no message", where, (int)status,
                          kiln_status_string(status));
    return kiln_error_prefix(result, "%s", where);
}
