/* engine_impl.h — loaded engines and execution contexts (private). */
#ifndef KILN_RUNTIME_ENGINE_IMPL_H
#define KILN_RUNTIME_ENGINE_IMPL_H

#include <pthread.h>
#include <stdatomic.h>

#include "backend/backend.h"
#include "runtime/layer_profile.h"
#include "engine/activation_plan.h"
#include "engine/engine_desc.h"
#include "kiln/plugin.h"
#include "runtime/device_service.h"

#define KILN_MAX_CUDA_DEVICES 16

struct kiln_engine {
    atomic_int                  refcount;
    kiln_engine_desc            desc;          /* verified by the format reader */
    void                       *mapping;       /* file loads: the read-only mapping */
    size_t                      mapping_size;
    uint8_t                    *bytes;         /* memory loads: our aligned copy */
    kiln_value                **plugin_fields; /* decoded, one per plugin record */
    const kiln_plugin_creator **creators;      /* resolved at load */
    char                      **layer_details; /* "kiln::Lookup v1" for plugins, "" otherwise */
    /* Weights uploaded once per GPU, shared by that GPU's contexts. */
    pthread_mutex_t             device_lock;
    void                       *device_weights[KILN_MAX_CUDA_DEVICES];
    const kiln_backend_iface   *device_backend;
};

/* A layer ready to run: descriptors with concrete shapes; data pointers are
 * refreshed from the context's tensor table at every enqueue. */
typedef struct kiln_prepared_layer {
    kiln_layer_launch  launch;         /* built-in layers */
    kiln_plugin_launch plugin;         /* plugin layers */
    kiln_tensor_desc  *descs;          /* inputs then outputs */
    int32_t           *tensor_ids;     /* engine tensor per desc */
    /* The layer's integer attributes, then its attribute expressions'
     * values for the current shapes (launch.attrs points here). */
    int64_t            attr_values[KILN_MAX_LAYER_INTS + KILN_MAX_LAYER_EXPRS];
} kiln_prepared_layer;

struct kiln_context {
    kiln_engine              *engine;
    kiln_device               device;
    const kiln_backend_iface *backend;
    void                     *arena;          /* activation arena on the device (sized for the shapes run so far) */
    uint64_t                  arena_capacity; /* its bytes */
    uint64_t                  memory_cap;     /* most arena bytes allowed (options.max_activation_bytes), 0: none */
    void                     *workspace;      /* the backend's scratch at the arena's end (backend.h), or NULL */
    uint64_t                  workspace_size; /* its bytes: the most any built-in launch asked for */
    kiln_activation_plan      plan;           /* activation lifetimes; offsets for the current shapes */
    uint64_t                 *tensor_bytes;   /* per engine tensor: bytes at the current shapes */
    uint8_t                  *weights;        /* engine weights on the device */
    void                    **instances;      /* one per plugin record */
    kiln_device_service       device_service; /* what enqueue gives plugins (outlives the instances) */
    int64_t                 **input_shapes;   /* per io index: dims (inputs), NULL until set */
    int32_t                  *input_ranks;
    uint8_t                  *input_set;      /* per io index: a shape was set */
    int64_t                  *expr_values;    /* evaluated expression program */
    int64_t                  *dim_values;
    void                    **data;           /* per engine tensor: device pointer */
    kiln_tensor_desc         *tensor_descs;   /* per engine tensor: concrete shape */
    kiln_prepared_layer      *layers;
    int                       prepared;       /* shapes evaluated and layers ready */
    int32_t                   profile;        /* profile the current shapes fall in */
    void                     *graph;          /* captured CUDA graph, or NULL */
    int                       graph_stale;    /* shapes or buffers changed since capture */
    atomic_int                busy;           /* a call is using the context (context_enter) */
    void                     *comm;           /* the backend's communicator (kiln_context_set_communicator), or NULL */
    int32_t                   needs_comm;     /* first collective layer when the world size is > 1, else -1 */
    kiln_layer_profile        layer_profile;  /* KILN_PROFILE (layer_profile.h) */
};

/* Ask each native plugin for its layers' outputs and workspace and refuse
 * (KILN_ERROR_CORRUPT, naming the layer) an engine that states others
 * (plugin_verify.c).  Needs the creators resolved. */
kiln_status kiln_engine_verify_plugin_layers(kiln_engine *e);
/* KILN_ERROR_UNSUPPORTED, naming the layer, op and dtypes, unless backend's
 * supports_op accepts every built-in layer of e (context.c, at creation). */
kiln_status kiln_engine_check_backend(const kiln_engine *e, const kiln_backend_iface *backend);
/* Seconds a communicator may wait for its peers: $KILN_NCCL_TIMEOUT_S, else
 * 300 (comm.c). */
double      kiln_comm_timeout_seconds(void);

#endif
