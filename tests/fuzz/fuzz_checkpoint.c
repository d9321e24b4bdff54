// fuzz_checkpoint.c — a training checkpoint to resume from: input = state.json "\n@@FILE@@\n"
// model.safetensors "\n@@FILE@@\n" optimizer.safetensors, written to <scratch>/run/checkpoint-3/.
// Runs ckpt_find_latest over the run directory, ckpt_read_state, then ckpt_load into two model
// tensors (w [2, 3], b [3]) and an AdamW optimizer holding them.
// Oracle: the status agrees with the errors reported; a loaded step is not negative.
// Not fuzzed here: saving and rotation (tests/train).
#include "checkpoint.h"
#include "diag.h"
#include "fuzz_util.h"
#include "optim.h"
#include <stdlib.h>
#include <string.h>

static const char *const FILES[] = {"run/checkpoint-3/state.json", "run/checkpoint-3/model.safetensors",
                                    "run/checkpoint-3/optimizer.safetensors"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char run[1024], dir[1024];
    FUZZ_ASSERT(fuzz_mkdir("run", run, sizeof run) == 0 && fuzz_mkdir("run/checkpoint-3", dir, sizeof dir) == 0);
    fuzz_write_files(data, size, FILES, 3);
    Diag d;
    diag_init(&d, fuzz_out());
    char found[1024];
    int64_t step = -1;
    int rc = ckpt_find_latest(&d, run, found, sizeof found, &step);
    FUZZ_ASSERT(rc >= -1 && rc <= 1);
    if (rc == 1) FUZZ_ASSERT(step == 3);
    CkptState *st = calloc(1, sizeof *st);
    FUZZ_ASSERT(st != NULL);
    int before = d.errors;
    if (ckpt_read_state(&d, dir, st) == 0) FUZZ_ASSERT(d.errors == before && st->step >= 0);
    else FUZZ_ASSERT(d.errors > before);

    float w[6] = {0}, b[3] = {0}, gw[6] = {0}, gb[3] = {0};
    CkptTensor model[2] = {{.name = "w", .data = w, .ndim = 2, .shape = {2, 3}},
                           {.name = "b", .data = b, .ndim = 1, .shape = {3}}};
    Optimizer opt;
    OptConfig oc = opt_config_adamw();
    FUZZ_ASSERT(opt_init(&d, &opt, &oc) == 0);
    FUZZ_ASSERT(opt_add(&d, &opt, "w", w, gw, 6, true) >= 0 && opt_add(&d, &opt, "b", b, gb, 3, false) >= 0);
    before = d.errors;
    memset(st, 0, sizeof *st);
    if (ckpt_load(&d, dir, st, model, 2, &opt) == 0) FUZZ_ASSERT(d.errors == before && opt.step >= 0);
    else FUZZ_ASSERT(d.errors > before);
    opt_free(&opt);
    free(st);
    diag_free(&d);
    return 0;
}
