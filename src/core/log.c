/* log.c — see log.h and kiln.h. */
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static atomic_int level = -1;                 /* -1: not decided yet (read the environment) */
static _Atomic(kiln_log_fn) sink;
static void *_Atomic sink_user;

static const char *const level_names[] = {"error", "warning", "info", "debug"};

static int level_from_env(void) {
    const char *v = getenv("KILN_LOG_LEVEL");
    if (v && v[0]) {
        for (int i = 0; i < 4; i++)
            if (!strcmp(v, level_names[i])) return i;
        if (v[0] >= '0' && v[0] <= '3' && !v[1]) return v[0] - '0';
    }
    return KILN_LOG_WARNING;
}

kiln_log_level kiln_log_get_level(void) {
    int l = atomic_load(&level);
    if (l < 0) {
        l = level_from_env();
        int unset = -1;
        atomic_compare_exchange_strong(&level, &unset, l);
        l = atomic_load(&level);
    }
    return (kiln_log_level)l;
}

void kiln_log_set_level(kiln_log_level l) {
    if ((int)l < KILN_LOG_ERROR) l = KILN_LOG_ERROR;
    if ((int)l > KILN_LOG_DEBUG) l = KILN_LOG_DEBUG;
    atomic_store(&level, (int)l);
}

void kiln_log_set_callback(kiln_log_fn fn, void *user) {
    atomic_store(&sink_user, user);
    atomic_store(&sink, fn);
}

const char *kiln_log_level_name(kiln_log_level l) {
    return (int)l >= 0 && (int)l < 4 ? level_names[l] : "?";
}

bool kiln_log_enabled(kiln_log_level l) { return (int)l <= (int)kiln_log_get_level(); }

void kiln_log(kiln_log_level l, const char *fmt, ...) {
    if (!kiln_log_enabled(l)) return;
    char message[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    kiln_log_fn fn = atomic_load(&sink);
    if (fn) fn(l, message, atomic_load(&sink_user));
    else fprintf(stderr, "kiln [%s] %s\n", kiln_log_level_name(l), message);
}
