/* log.h — kiln's log: what the library did, by level (kiln.h, "Logging").
 *
 * kiln_log formats only when the level is enabled, so a disabled message costs
 * a comparison.  The sink is stderr ("kiln [info] ...") unless a callback is
 * installed (the Python extension installs one that feeds Python's logging). */
#ifndef KILN_CORE_LOG_H
#define KILN_CORE_LOG_H

#include "kiln/kiln.h"

/* Is level enabled (kiln_log_set_level, else $KILN_LOG_LEVEL, else warning)? */
bool kiln_log_enabled(kiln_log_level level);
void kiln_log(kiln_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
