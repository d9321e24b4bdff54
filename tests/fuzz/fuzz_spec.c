// fuzz_spec.c — a .trl spec's text → load (lex, parse, imports) → check → compile the policy's
// training step as `trlc check` does (memplan_spec.h: lower, LoRA, autodiff, recompute, mixed
// precision) → fuse → memory plan for the spec's B and T and its peak lines (`check --memory`),
// and the CUDA source of every fused kernel with its launch sizes (`trlc kernels --no-compile`).
// The spec is named examples/language/fuzz.trl (it is never written), so its relative paths find
// that folder's tiny models and data, as the seeds (examples, specs) expect; stdlib imports are the
// embedded modules. Lines after a "\n@@SET@@\n" are `--set KEY=VALUE` overrides applied before
// checking (check_override_arg), one per line. Asserts the status agrees with the error count.
// Not fuzzed here: compiling models deeper than 16 layers (see below: up to 64 are lowered only),
// compiling the CUDA (NVRTC), `--fit`'s search over batch sizes (cmd_check.c: fuzz_cli stops at
// the missing spec file; tests/check/run_memory.sh tests it).
#include "arena.h"
#include "check.h"
#include "codegen_cuda.h"
#include "diag.h"
#include "fuzz_util.h"
#include "ir.h"
#include "load.h"
#include "lower.h"
#include "memplan.h"
#include "memplan_spec.h"
#include "fuse.h"
#include <stdlib.h>

#ifndef FUZZ_SOURCE_DIR
#define FUZZ_SOURCE_DIR "."
#endif

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    const char *path = FUZZ_SOURCE_DIR "/../../examples/language/fuzz.trl";
    Diag d;
    diag_init(&d, fuzz_out());
    Arena a = {0};
    LoadedSpec spec = {0};
    const uint8_t *parts[2];
    size_t lens[2];
    size_t np = fuzz_split(data, size, "\n@@SET@@\n", parts, lens, 2);
    if (load_spec_text(&d, &a, path, (const char *)parts[0], lens[0], &spec) == 0) {
        FUZZ_ASSERT(d.errors == 0);
        int orc = 0;
        for (size_t i = 0, start = 0; np == 2 && i <= lens[1]; i++) {
            if (i < lens[1] && parts[1][i] != '\n') continue;
            char *set = fuzz_strndup(parts[1] + start, i - start);
            FUZZ_ASSERT(set != NULL);
            if (check_override_arg(&d, &a, (Ast *)spec.mods[spec.nmods - 1].root, set) != 0) orc = -1;
            free(set);
            start = i + 1;
        }
        FUZZ_ASSERT((orc == -1) == (d.errors > 0));
        CheckedSpec *cs = arena_alloc(&a, sizeof *cs);
        int rc = orc == 0 ? check_spec(&d, &a, &spec, cs) : -1;
        FUZZ_ASSERT((rc == -1) == (d.errors > 0));
        // Compiling is linear in depth but the backward and the plans make each layer costly
        // (64 layers of a tiny model: ~1 s under ASan), so deep models are left out here.
        if (rc == 0 && cs->nmodels > 0 && cs->policy >= 0 && cs->models[cs->policy].cfg.layers <= 16) {
            IrGraph g;
            ir_graph_init(&g, &d, IR_F32);
            int crc = mp_compile_training_graph(&d, &a, &spec, cs, &g);
            FUZZ_ASSERT((crc == -1) == (d.errors > 0));
            FusePlan fp = {0};
            MpPlan mp = {0};
            int frc = crc == 0 ? fuse_plan(&g, &d, &fp) : -1;
            FUZZ_ASSERT(crc != 0 || (frc == -1) == (d.errors > 0));
            if (frc == 0) {   // check --memory's B and T
                int64_t B = cs->train.batch > 0 ? cs->train.batch : 1, T = 2048;
                if (cs->train_data >= 0 && cs->train_data < cs->ndata && cs->data[cs->train_data].max_len > 0)
                    T = cs->data[cs->train_data].max_len;
                int64_t sym[IR_NSYMS] = {B, T};
                for (int k = 0; k < fp.nkernels; k++) {   // trlc kernels --no-compile: each kernel's source
                    char *src = cg_cuda_kernel(&fp, k, &d);
                    FUZZ_ASSERT(src != NULL);
                    free(src);
                }
                for (int s = 0; s < fp.nsteps; s++) {   // launch sizes; the library kernel of each library step
                    const char *file = NULL;
                    unsigned grid[3], block[3];
                    if (fp.steps[s].kind == FUSE_KERNEL) cg_launch_dims(&fp, fp.steps[s].group, sym, grid, block);
                    else if (fp.steps[s].kind == FUSE_LIBRARY) cg_library_kernel(&g, fp.steps[s].node, &file);
                }
                int prc = mp_plan(&g, &fp, sym, cs->train.precision, &mp, &d);
                FUZZ_ASSERT((prc == -1) == (d.errors > 0));
                if (prc == 0) {
                    mp_print(fuzz_out(), &mp);
                    mp_print_peak(fuzz_out(), &mp, &g, &fp, &d, 10);
                }
            }
            mp_plan_free(&mp);
            fuse_plan_free(&fp);
            ir_graph_free(&g);
        } else if (rc == 0 && cs->nmodels > 0 && cs->policy >= 0 && cs->models[cs->policy].cfg.layers <= 64) {
            IrGraph g;   // deeper models: the forward only (lowering is linear in depth since 8781658)
            ir_graph_init(&g, &d, IR_F32);
            LowerResult res;
            int lrc = lower_model(&d, &a, &spec, cs, -1, &g, &res);
            FUZZ_ASSERT((lrc == -1) == (d.errors > 0));
            ir_graph_free(&g);
        }
    } else {
        FUZZ_ASSERT(d.errors > 0);
    }
    arena_free(&a);
    diag_free(&d);
    return 0;
}
