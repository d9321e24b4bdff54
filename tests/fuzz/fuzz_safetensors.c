// fuzz_safetensors.c — safetensors bytes → st_open_buffer (header JSON, dtypes, shapes, offsets),
// then every accessor and, for tensors up to 1 Mi elements, st_to_f32.
// Asserts that an opened file's tensors lie inside the buffer, and that writing them again with
// StWriter (same dtypes, bytes as read) gives a file that reads back to the same tensors.
// Not fuzzed here: st_open's mmap path (the same validation after mapping), sharded checkpoints.
#include "diag.h"
#include "fuzz_util.h"
#include "safetensors.h"
#include <stdlib.h>
#include <string.h>

// Writes every tensor of f to a scratch file and compares what reads back.
static void round_trip(const StFile *f) {
    Diag d;
    diag_init(&d, fuzz_out());
    StWriter *w = st_writer_new();
    FUZZ_ASSERT(w != NULL);
    size_t n = st_count(f);
    for (size_t i = 0; i < n; i++) {
        const StTensor *t = st_tensor(f, i);
        FUZZ_ASSERT(st_writer_add(&d, w, t->name, t->dtype, t->ndim, t->shape, t->data) == 0);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/rt.safetensors", fuzz_dir());
    FUZZ_ASSERT(st_writer_write(&d, w, path) == 0);
    st_writer_free(w);
    StFile *g = st_open(&d, path);
    FUZZ_ASSERT(g != NULL && st_count(g) == n);
    for (size_t i = 0; i < n; i++) {
        const StTensor *a = st_tensor(f, i), *b = st_find(g, a->name);
        FUZZ_ASSERT(b && b->dtype == a->dtype && b->ndim == a->ndim && b->nbytes == a->nbytes);
        FUZZ_ASSERT(!memcmp(a->shape, b->shape, (size_t)a->ndim * sizeof *a->shape));
        FUZZ_ASSERT(a->nbytes == 0 || !memcmp(a->data, b->data, a->nbytes));
    }
    st_close(g);
    FUZZ_ASSERT(d.errors == 0);
    diag_free(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Diag d;
    diag_init(&d, fuzz_out());
    StFile *f = st_open_buffer(&d, "fuzz.safetensors", data, size);
    if (!f) {
        FUZZ_ASSERT(d.errors > 0);
    } else {
        size_t n = st_count(f);
        for (size_t i = 0; i < n; i++) {
            const StTensor *t = st_tensor(f, i);
            FUZZ_ASSERT(t && t->name && st_find(f, t->name) == t);
            FUZZ_ASSERT((const uint8_t *)t->data >= data && t->nbytes <= size &&
                        (const uint8_t *)t->data - data <= (ptrdiff_t)(size - t->nbytes));
            FUZZ_ASSERT(t->ndim >= 0 && t->ndim <= ST_MAX_DIMS && t->numel >= 0);
            (void)st_dtype_name(t->dtype);
            if (t->numel <= (1 << 20)) {
                float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
                if (out) {
                    (void)st_to_f32(&d, t, out);
                    free(out);
                }
            }
        }
        for (size_t i = 0; i < st_metadata_count(f); i++) {
            const char *k = st_metadata_key(f, i);
            FUZZ_ASSERT(k && st_metadata(f, k) && st_metadata_value(f, i));
        }
        round_trip(f);
        st_close(f);
    }
    diag_free(&d);
    return 0;
}
