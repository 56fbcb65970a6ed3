/* registry.c — the process-wide plugin registry, keyed by (namespace, name, version).
 *
 * Small and rarely written, so a mutex-protected array with linear lookup:
 * lookups happen at network-build and engine-load time, never per run. */
#include <dlfcn.h>
#include <pthread.h>
#include <string.h>

#include "core/alloc.h"
#include "core/error.h"
#include "kiln/plugin.h"
#include "plugins/builtin_plugins.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static const kiln_plugin_creator **registry;
static size_t registry_count, registry_capacity;

static int key_equal(const kiln_plugin_creator *c, const char *ns, const char *name, const char *version) {
    return strcmp(c->plugin_namespace, ns) == 0 && strcmp(c->name, name) == 0 && strcmp(c->version, version) == 0;
}

static long find_locked(const char *ns, const char *name, const char *version) {
    for (size_t i = 0; i < registry_count; i++)
        if (key_equal(registry[i], ns, name, version)) return (long)i;
    return -1;
}

static int valid_key_part(const char *s) { return s && s[0] && strlen(s) < 256; }

static kiln_status add_creator(const kiln_plugin_creator *c);

/* The built-in creators are registered on first use of the registry, so no
 * initialization call is needed (a constructor would run even in programs
 * that never touch plugins).  add_creator, not kiln_plugin_register: calling
 * pthread_once from its own init routine would deadlock. */
static pthread_once_t builtins_once = PTHREAD_ONCE_INIT;

static void register_builtins(void) {
    /* Fails only when out of memory; lookups of kiln::TritonAOT then miss, and
     * say so, naming it. */
    (void)add_creator(&kiln_triton_aot_creator);
}

static void ensure_builtins(void) { pthread_once(&builtins_once, register_builtins); }

kiln_status kiln_plugin_register(const kiln_plugin_creator *c) {
    ensure_builtins();
    return add_creator(c);
}

static kiln_status add_creator(const kiln_plugin_creator *c) {
    if (!c) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_plugin_register: creator is NULL");
    if (!valid_key_part(c->plugin_namespace) || !valid_key_part(c->name) || !valid_key_part(c->version))
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                          "kiln_plugin_register: namespace, name and version must be non-empty strings "
                          "shorter than 256 bytes");
    if (c->abi_version != KILN_PLUGIN_ABI_VERSION)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                          "plugin %s::%s version %s uses plugin ABI %u but this kiln implements ABI %u",
                          c->plugin_namespace, c->name, c->version, c->abi_version, KILN_PLUGIN_ABI_VERSION);
    if (!c->create || !c->enqueue)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT,
                          "plugin %s::%s version %s lacks a required callback (create, enqueue)",
                          c->plugin_namespace, c->name, c->version);
    if (c->output_count < 0 || c->output_count > 1024)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "plugin %s::%s version %s declares %d outputs (need 0..1024)",
                          c->plugin_namespace, c->name, c->version, c->output_count);
    kiln_status status = KILN_OK;
    pthread_mutex_lock(&registry_lock);
    if (find_locked(c->plugin_namespace, c->name, c->version) >= 0) {
        status = kiln_error(KILN_ERROR_INVALID_ARGUMENT, "plugin %s::%s version %s is already registered",
                            c->plugin_namespace, c->name, c->version);
    } else if (!kiln_grow((void **)&registry, &registry_capacity, registry_count + 1, sizeof *registry)) {
        status = kiln_error(KILN_ERROR_NO_MEMORY, "registering plugin %s::%s: out of memory", c->plugin_namespace,
                            c->name);
    } else {
        registry[registry_count++] = c;
    }
    pthread_mutex_unlock(&registry_lock);
    return status;
}

kiln_status kiln_plugin_deregister(const char *ns, const char *name, const char *version) {
    if (!ns || !name || !version)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_plugin_deregister: NULL argument");
    ensure_builtins();
    pthread_mutex_lock(&registry_lock);
    long i = find_locked(ns, name, version);
    if (i >= 0) {
        memmove(&registry[i], &registry[i + 1], (registry_count - (size_t)i - 1) * sizeof *registry);
        registry_count--;
    }
    pthread_mutex_unlock(&registry_lock);
    if (i < 0)
        return kiln_error(KILN_ERROR_NOT_FOUND, "plugin %s::%s version %s is not registered", ns, name, version);
    return KILN_OK;
}

const kiln_plugin_creator *kiln_plugin_find(const char *ns, const char *name, const char *version) {
    if (!ns || !name || !version) return NULL;
    ensure_builtins();
    pthread_mutex_lock(&registry_lock);
    long i = find_locked(ns, name, version);
    const kiln_plugin_creator *c = i >= 0 ? registry[i] : NULL;
    pthread_mutex_unlock(&registry_lock);
    return c;
}

kiln_status kiln_plugin_library_load(const char *path) {
    if (!path) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_plugin_library_load: path is NULL");
    void *lib = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!lib) return kiln_error(KILN_ERROR_IO, "cannot load plugin library '%s': %s", path, dlerror());
    kiln_status (*init)(void);
    *(void **)&init = dlsym(lib, "kiln_plugin_library_init");
    if (!init) {
        dlclose(lib);
        return kiln_error(KILN_ERROR_NOT_FOUND, "plugin library '%s' has no kiln_plugin_library_init function", path);
    }
    kiln_status status = init();
    if (status != KILN_OK) {
        /* Keep the library loaded: the init may have registered some creators
         * before failing, and they point into it. */
        return kiln_error_prefix(status, "plugin library '%s' failed to initialize", path);
    }
    return KILN_OK;   /* never dlclose: registered creators live in the library */
}
