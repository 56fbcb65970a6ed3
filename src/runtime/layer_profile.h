/* layer_profile.h — per-layer wall time of a context's runs (KILN_PROFILE).
 *
 * With the environment variable KILN_PROFILE set (to anything but "0") when
 * a context is created, every run waits for each layer (a device
 * synchronize after it) and adds its time to the layer's total; freeing the
 * context prints the totals to stderr, grouped by op and sorted, slowest
 * first.  A debugging aid: the waits make runs slower, and graph replays
 * are not profiled. */
#ifndef KILN_RUNTIME_LAYER_PROFILE_H
#define KILN_RUNTIME_LAYER_PROFILE_H

#include <stdint.h>

typedef struct kiln_layer_profile {
    double  *seconds;      /* per layer; NULL when profiling is off */
    int32_t  layer_count;
    int64_t  runs;
} kiln_layer_profile;

/* Turn profiling on for layer_count layers when KILN_PROFILE asks; off (and
 * fine) when it does not or memory runs out. */
void   kiln_layer_profile_init(kiln_layer_profile *p, int32_t layer_count);
double kiln_layer_profile_now(void);
/* Print the totals (name_of(user, layer) names a layer's op) and free. */
void   kiln_layer_profile_finish(kiln_layer_profile *p, const char *(*name_of)(void *user, int32_t layer),
                                 void *user);

#endif
