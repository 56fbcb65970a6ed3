/* builtin_plugins.h — plugin creators that libkiln itself provides.  The
 * registry registers them the first time it is used (registry.c), so an
 * engine that uses them loads with nothing else imported or loaded. */
#ifndef KILN_PLUGINS_BUILTIN_PLUGINS_H
#define KILN_PLUGINS_BUILTIN_PLUGINS_H

#include "kiln/plugin.h"

/* kiln::TritonAOT version 1: kernels compiled ahead of time (triton_aot.c). */
extern const kiln_plugin_creator kiln_triton_aot_creator;

#endif
