// fuzz_stindex.c — a sharded checkpoint directory: input = config.json "\n@@FILE@@\n"
// model.safetensors.index.json "\n@@FILE@@\n" model-00001-of-00002.safetensors "\n@@FILE@@\n"
// model-00002-of-00002.safetensors, written to <scratch>/model/; st_checkpoint_open on it, every
// tensor through st_checkpoint_read_f32 (up to 1 Mi elements), then config.json and the check of
// the checkpoint against it (what trlc run does before training from a model directory).
// Not fuzzed here: a single model.safetensors (fuzz_safetensors reads the same bytes from memory).
#include "diag.h"
#include "fuzz_util.h"
#include "hfconfig.h"
#include "safetensors.h"
#include <stdlib.h>
#include <string.h>

static const char *const FILES[] = {"model/config.json", "model/model.safetensors.index.json",
                                    "model/model-00001-of-00002.safetensors",
                                    "model/model-00002-of-00002.safetensors"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char dir[1024];
    FUZZ_ASSERT(fuzz_mkdir("model", dir, sizeof dir) == 0);
    fuzz_write_files(data, size, FILES, 4);
    Diag d;
    diag_init(&d, fuzz_out());
    StCheckpoint *ck = st_checkpoint_open(&d, dir);
    if (!ck) {
        FUZZ_ASSERT(d.errors > 0);
    } else {
        size_t n = st_checkpoint_count(ck);
        for (size_t i = 0; i < n; i++) {
            const StTensor *t = st_checkpoint_tensor(ck, i);
            FUZZ_ASSERT(t && st_checkpoint_find(ck, t->name) == t);
            if (t->numel > (1 << 20)) continue;
            float *out = malloc((size_t)(t->numel ? t->numel : 1) * sizeof *out);
            FUZZ_ASSERT(out != NULL);
            (void)st_checkpoint_read_f32(&d, ck, t->name, t->ndim, t->shape, out);
            free(out);
        }
        HfConfig *c = malloc(sizeof *c);
        FUZZ_ASSERT(c != NULL);
        if (hf_config_load(&d, dir, c) == 0) (void)hf_config_check_checkpoint(&d, c, ck);
        free(c);
        st_checkpoint_close(ck);
    }
    diag_free(&d);
    return 0;
}
