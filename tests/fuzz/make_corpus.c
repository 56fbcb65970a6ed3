/* make_corpus.c — write the fuzzer's seed engines.
 *
 *   kiln_make_corpus DIR     → DIR/full.engine, DIR/minimal.engine
 *
 * The engines come from tests/c/format_sample.h, the same descs that
 * test_format round-trips; regenerate the seeds when the format changes
 * (test_format replays them and fails if they no longer load). */
#include <stdio.h>

#include "core/alloc.h"
#include "format/engine_format.h"
#include "format_sample.h"

static int write_seed(const char *dir, const char *name, int (*build)(kiln_engine_desc *)) {
    kiln_engine_desc d;
    uint8_t *bytes = NULL;
    size_t size = 0;
    int ok = build(&d) && kiln_format_write(&d, &bytes, &size) == KILN_OK;
    kiln_engine_desc_clear(&d);
    if (!ok) {
        fprintf(stderr, "%s: %s\n", name, kiln_last_error());
        return 0;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    ok = f && fwrite(bytes, 1, size, f) == size;
    if (f && fclose(f) != 0) ok = 0;
    kiln_aligned_free(bytes);
    if (!ok) perror(path);
    else printf("%s: %zu bytes\n", path, size);
    return ok;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s DIR\n", argv[0]);
        return 2;
    }
    int ok = write_seed(argv[1], "full.engine", sample_full);
    ok &= write_seed(argv[1], "minimal.engine", sample_minimal);
    return ok ? 0 : 1;
}
