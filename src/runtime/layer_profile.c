/* layer_profile.c — see layer_profile.h. */
#include "runtime/layer_profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/alloc.h"
#include "kiln/kiln.h"   /* kiln_free */

void kiln_layer_profile_init(kiln_layer_profile *p, int32_t layer_count) {
    memset(p, 0, sizeof *p);
    const char *env = getenv("KILN_PROFILE");
    if (!env || !env[0] || strcmp(env, "0") == 0 || layer_count <= 0) return;
    p->seconds = kiln_calloc((size_t)layer_count, sizeof *p->seconds);
    if (p->seconds) p->layer_count = layer_count;
}

double kiln_layer_profile_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct op_total {
    char    name[96];
    double  seconds;
    int32_t layers;
} op_total;

static int by_time(const void *a, const void *b) {
    double x = ((const op_total *)a)->seconds, y = ((const op_total *)b)->seconds;
    return x < y ? 1 : x > y ? -1 : 0;
}

void kiln_layer_profile_finish(kiln_layer_profile *p, const char *(*name_of)(void *user, int32_t layer),
                               void *user) {
    if (!p->seconds) return;
    op_total *t = kiln_calloc((size_t)p->layer_count, sizeof *t);
    int32_t n = 0;
    double all = 0;
    for (int32_t l = 0; t && l < p->layer_count; l++) {
        const char *name = name_of(user, l);
        int32_t k = 0;
        while (k < n && strcmp(t[k].name, name) != 0) k++;
        if (k == n) snprintf(t[n++].name, sizeof t[0].name, "%s", name);
        t[k].seconds += p->seconds[l];
        t[k].layers++;
        all += p->seconds[l];
    }
    if (t && p->runs > 0) {
        qsort(t, (size_t)n, sizeof *t, by_time);
        fprintf(stderr, "kiln profile: %lld runs, %.3f ms per run (layers waited for one by one)\n",
                (long long)p->runs, all * 1e3 / (double)p->runs);
        fprintf(stderr, "  %-40s %7s %12s %7s\n", "op", "layers", "ms per run", "share");
        for (int32_t k = 0; k < n; k++)
            fprintf(stderr, "  %-40s %7d %12.3f %6.1f%%\n", t[k].name, (int)t[k].layers,
                    t[k].seconds * 1e3 / (double)p->runs, all > 0 ? 100.0 * t[k].seconds / all : 0.0);
    }
    kiln_free(t);
    kiln_free(p->seconds);
    p->seconds = NULL;
}
