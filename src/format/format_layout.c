/* format_layout.c — names of the engine format's sections, for messages. */
#include <stddef.h>

#include "format/format_layout.h"

const char *kiln_format_section_name(uint32_t id) {
    switch (id) {
    case KILN_SECTION_STRINGS: return "strings";
    case KILN_SECTION_DIMS:    return "dims";
    case KILN_SECTION_EXPRS:   return "exprs";
    case KILN_SECTION_TENSORS: return "tensors";
    case KILN_SECTION_LAYERS:  return "layers";
    case KILN_SECTION_PLUGINS: return "plugins";
    case KILN_SECTION_CHECKS:  return "checks";
    case KILN_SECTION_IO:      return "io";
    case KILN_SECTION_WEIGHTS: return "weights";
    default:                   return NULL;
    }
}
