/* plugin_failure.h — what a failed plugin callback becomes.
 *
 * One rule for every call into a plugin (create, infer_*, workspace_size,
 * enqueue), wherever kiln makes it: the status is KILN_ERROR_PLUGIN, unless
 * the plugin ran out of memory (KILN_ERROR_NO_MEMORY stays, so callers can
 * tell), and the message is the plugin's own, prefixed with where it was
 * called; a plugin that failed without a message gets one saying so.
 *
 *     uint64_t serial = kiln_error_serial();
 *     kiln_status s = creator->enqueue(instance, &launch);
 *     if (s) return kiln_plugin_failure(s, serial, "layer %d (plugin %s)", l, key);
 */
#ifndef KILN_PLUGIN_PLUGIN_FAILURE_H
#define KILN_PLUGIN_PLUGIN_FAILURE_H

#include <stdint.h>

#include "kiln/kiln.h"

kiln_status kiln_plugin_failure(kiln_status status, uint64_t serial_before, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
