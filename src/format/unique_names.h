/* unique_names.h — finding a repeated name in a list, in O(n log n).
 *
 * Engine files can hold millions of records, so the reader cannot compare
 * every name with every other. */
#ifndef KILN_FORMAT_UNIQUE_NAMES_H
#define KILN_FORMAT_UNIQUE_NAMES_H

#include <stdint.h>

/* Look for two equal strings among names[0..count).  Returns 1 and sets
 * *first < *second (their indices) when found, 0 when all differ, -1 when
 * memory runs out.  NULL entries are treated as "". */
int kiln_names_find_duplicate(const char *const *names, int32_t count, int32_t *first, int32_t *second);

#endif
