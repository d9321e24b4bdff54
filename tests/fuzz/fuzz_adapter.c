// fuzz_adapter.c — a PEFT LoRA adapter directory: input = adapter_config.json "\n@@FILE@@\n"
// adapter_model.safetensors, written to <scratch>/adapter/, read by ex_load_peft_adapter.
// An accepted adapter is then merged (ex_merge_lora) into tests/fixtures/tiny-qwen3, the base the
// seed adapter was trained on, written to <scratch>/merged/.
// Oracle: an accepted adapter's modules have r > 0, positive in/out and both matrices; the merge's
// status agrees with the errors reported.
// Not fuzzed here: the base model's files (fuzz_stindex), writing adapters.
#include "diag.h"
#include "export.h"
#include "fuzz_util.h"
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_SOURCE_DIR
#define FUZZ_SOURCE_DIR "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static const char *const files[] = {"adapter/adapter_config.json", "adapter/adapter_model.safetensors"};
    char dir[1024];
    FUZZ_ASSERT(fuzz_mkdir("adapter", dir, sizeof dir) == 0);
    fuzz_write_files(data, size, files, 2);
    Diag d;
    diag_init(&d, fuzz_out());
    ExLoraAdapter a;
    memset(&a, 0, sizeof a);
    if (ex_load_peft_adapter(&d, dir, &a) == 0) {
        FUZZ_ASSERT(d.errors == 0 && a.cfg.r > 0);
        for (int i = 0; i < a.n_mods; i++)
            FUZZ_ASSERT(a.mods[i].in > 0 && a.mods[i].out > 0 && a.mods[i].A && a.mods[i].B && a.mods[i].module);
        char out[1024];
        snprintf(out, sizeof out, "%s/merged", fuzz_dir());
        int rc = ex_merge_lora(&d, FUZZ_SOURCE_DIR "/../fixtures/tiny-qwen3", dir, out, ST_F32, 0);
        FUZZ_ASSERT((rc == -1) == (d.errors > 0));
    } else {
        FUZZ_ASSERT(d.errors > 0);
    }
    ex_lora_adapter_free(&a);
    diag_free(&d);
    return 0;
}
