/* comm.c — communicator ids and the launcher's environment.
 *
 * An id (kiln_comm_id, an ncclUniqueId) is made by rank 0 and shared; every
 * rank then joins with kiln_context_set_communicator (context.c).  The id is
 * made by the backend that has communicators (CUDA, with NCCL loaded at run
 * time); the rest is plain text and files, for C programs started by mpirun
 * or torchrun that have no other channel. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "core/log.h"
#include "runtime/engine_impl.h"

#define DEFAULT_TIMEOUT_S 300.0

double kiln_comm_timeout_seconds(void) {
    const char *env = getenv("KILN_NCCL_TIMEOUT_S");
    if (!env || !*env) return DEFAULT_TIMEOUT_S;
    char *end = NULL;
    double v = strtod(env, &end);
    if (end == env || *end || !(v > 0 && v < 1e9)) {
        kiln_log(KILN_LOG_WARNING, "KILN_NCCL_TIMEOUT_S='%s' is not a positive number of seconds: using %.0f", env,
                 DEFAULT_TIMEOUT_S);
        return DEFAULT_TIMEOUT_S;
    }
    return v;
}

kiln_status kiln_comm_id_new(kiln_comm_id *out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_id_new: out is NULL");
    const kiln_backend_iface *backend;
    kiln_status s = kiln_backend_get(KILN_DEVICE_CUDA, &backend);
    if (s) return kiln_error_prefix(s, "kiln_comm_id_new: communicators need the CUDA backend and libnccl");
    if (!backend->comm_unique_id)
        return kiln_error(KILN_ERROR_UNSUPPORTED, "kiln_comm_id_new: the %s backend has no communicators", backend->name);
    return backend->comm_unique_id(out->bytes);
}

kiln_status kiln_comm_id_to_hex(const kiln_comm_id *id, char *out, size_t size) {
    if (!id || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_id_to_hex: NULL argument");
    if (size < KILN_COMM_ID_HEX_SIZE)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_id_to_hex: the buffer has %zu bytes, needs %d", size,
                          KILN_COMM_ID_HEX_SIZE);
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < KILN_COMM_ID_BYTES; i++) {
        out[2 * i] = digits[id->bytes[i] >> 4];
        out[2 * i + 1] = digits[id->bytes[i] & 15];
    }
    out[2 * KILN_COMM_ID_BYTES] = '\0';
    return KILN_OK;
}

static int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

kiln_status kiln_comm_id_from_hex(const char *hex, kiln_comm_id *out) {
    if (!hex || !out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_id_from_hex: NULL argument");
    while (is_space(*hex)) hex++;
    size_t n = strlen(hex);
    while (n && is_space(hex[n - 1])) n--;
    if (n != 2 * KILN_COMM_ID_BYTES)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "communicator id: %zu characters, an id is %d hex digits", n,
                          2 * KILN_COMM_ID_BYTES);
    kiln_comm_id id;
    for (size_t i = 0; i < KILN_COMM_ID_BYTES; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "communicator id: character %zu is not a hex digit",
                              hi < 0 ? 2 * i : 2 * i + 1);
        id.bytes[i] = (uint8_t)(hi << 4 | lo);
    }
    *out = id;
    return KILN_OK;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Rank 0: a fresh id into `path`, written beside it and renamed, so that a
 * reader never sees half an id. */
static kiln_status write_id_file(const char *path, kiln_comm_id *out) {
    struct stat st;
    if (stat(path, &st) == 0)
        return kiln_error(KILN_ERROR_STATE, "id file '%s' exists already: other ranks may have read a stale id from "
                          "it; remove it, or use a fresh path per job", path);
    kiln_status s = kiln_comm_id_new(out);
    if (s) return s;
    char hex[KILN_COMM_ID_HEX_SIZE + 1];
    kiln_comm_id_to_hex(out, hex, sizeof hex);
    size_t len = strlen(hex);
    hex[len++] = '\n';
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.%ld.tmp", path, (long)getpid()) >= sizeof tmp)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "id file '%s': the path is too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) return kiln_error(KILN_ERROR_IO, "id file: cannot create '%s': %s", tmp, strerror(errno));
    ssize_t wrote = write(fd, hex, len);
    int ok = wrote == (ssize_t)len && fsync(fd) == 0;
    ok &= close(fd) == 0;
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        return kiln_error(KILN_ERROR_IO, "id file: cannot write '%s': %s", path, strerror(err));
    }
    return KILN_OK;
}

/* Other ranks: wait for rank 0's file, at most the communicator timeout. */
static kiln_status read_id_file(const char *path, int32_t rank, kiln_comm_id *out) {
    double timeout = kiln_comm_timeout_seconds(), start = now_seconds();
    char text[KILN_COMM_ID_HEX_SIZE + 16];
    for (;;) {
        FILE *f = fopen(path, "r");
        if (f) {
            size_t n = fread(text, 1, sizeof text - 1, f);
            fclose(f);
            text[n] = '\0';
            kiln_status s = kiln_comm_id_from_hex(text, out);
            return s ? kiln_error_prefix(s, "id file '%s' (read by rank %d)", path, (int)rank) : KILN_OK;
        }
        if (errno != ENOENT)
            return kiln_error(KILN_ERROR_IO, "id file: rank %d cannot read '%s': %s", (int)rank, path,
                              strerror(errno));
        if (now_seconds() - start > timeout)
            return kiln_error(KILN_ERROR_IO, "id file: rank %d waited %.0f s for rank 0 to write '%s' "
                              "(KILN_NCCL_TIMEOUT_S)", (int)rank, timeout, path);
        struct timespec pause = {0, 20 * 1000 * 1000};
        nanosleep(&pause, NULL);
    }
}

kiln_status kiln_comm_id_from_file(int32_t rank, const char *path, kiln_comm_id *out) {
    if (!out || !path || !*path)
        return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_id_from_file: NULL argument or empty path");
    if (rank < 0) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_id_from_file: rank %d is negative", (int)rank);
    return rank == 0 ? write_id_file(path, out) : read_id_file(path, rank, out);
}

kiln_status kiln_comm_id_from_env(int32_t rank, kiln_comm_id *out) {
    if (!out) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_id_from_env: out is NULL");
    if (rank < 0) return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_id_from_env: rank %d is negative", (int)rank);
    const char *hex = getenv("KILN_NCCL_ID");
    if (hex && *hex) {
        kiln_status s = kiln_comm_id_from_hex(hex, out);
        return s ? kiln_error_prefix(s, "KILN_NCCL_ID") : KILN_OK;
    }
    const char *path = getenv("KILN_NCCL_ID_FILE");
    if (!path || !*path)
        return kiln_error(KILN_ERROR_NOT_FOUND, "kiln_comm_id_from_env: neither KILN_NCCL_ID nor KILN_NCCL_ID_FILE is "
                          "set");
    kiln_status s = kiln_comm_id_from_file(rank, path, out);
    return s ? kiln_error_prefix(s, "KILN_NCCL_ID_FILE") : KILN_OK;
}

/* A non-negative int from the environment: 1 when found, 0 when unset, -1
 * when set to something else. */
static int env_int(const char *name, int32_t *out) {
    const char *v = getenv(name);
    if (!v || !*v) return 0;
    char *end = NULL;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || *end || n < 0 || n > INT32_MAX) return -1;
    *out = (int32_t)n;
    return 1;
}

kiln_status kiln_comm_env(int32_t *rank, int32_t *world_size, int32_t *local_rank) {
    static const char *const launchers[][4] = {
        {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
        {"Open MPI", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"},
        {"MPICH", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"},
        {"Slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"},
    };
    for (size_t i = 0; i < sizeof launchers / sizeof launchers[0]; i++) {
        int32_t r = 0, w = 0, lr = 0;
        int fr = env_int(launchers[i][1], &r), fw = env_int(launchers[i][2], &w);
        if (fr == 0 && fw == 0) continue;
        if (fr < 0 || fw < 0 || fr == 0 || fw == 0)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_env: %s variables %s and %s must both be set to "
                              "non-negative integers", launchers[i][0], launchers[i][1], launchers[i][2]);
        if (w < 1 || r >= w)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_env: %s gives rank %d of world size %d",
                              launchers[i][0], (int)r, (int)w);
        int fl = env_int(launchers[i][3], &lr);
        if (fl < 0)
            return kiln_error(KILN_ERROR_INVALID_ARGUMENT, "kiln_comm_env: %s is not a non-negative integer",
                              launchers[i][3]);
        if (rank) *rank = r;
        if (world_size) *world_size = w;
        if (local_rank) *local_rank = fl ? lr : r;
        return KILN_OK;
    }
    return kiln_error(KILN_ERROR_NOT_FOUND, "kiln_comm_env: no launcher's rank variables are set (RANK/WORLD_SIZE, "
                      "OMPI_COMM_WORLD_RANK/_SIZE, PMI_RANK/PMI_SIZE, SLURM_PROCID/SLURM_NTASKS)");
}
