// fuzz_spec.c — a .trl spec's text → load (lex, parse, imports) → check → lower the policy.
// The spec is named examples/language/fuzz.trl (it is never written), so its relative paths find
// that folder's tiny models and data, as the seeds (examples, specs) expect; stdlib imports are the
// embedded modules. Asserts the status agrees with the error count.
// Not fuzzed here: lowering models deeper than 64 layers (see below), autodiff and later passes (tests/ir's mutation tests), `--set` (check_override).
#include "arena.h"
#include "check.h"
#include "diag.h"
#include "fuzz_util.h"
#include "ir.h"
#include "load.h"
#include "lower.h"
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
    if (load_spec_text(&d, &a, path, (const char *)data, size, &spec) == 0) {
        FUZZ_ASSERT(d.errors == 0);
        CheckedSpec *cs = arena_alloc(&a, sizeof *cs);
        int rc = check_spec(&d, &a, &spec, cs);
        FUZZ_ASSERT((rc == -1) == (d.errors > 0));
        // Lowering is quadratic in the number of parameters (lower.c looks names up linearly:
        // 1000 layers take 5 s, 3000 take 32 s), so deep models are left out here.
        if (rc == 0 && cs->nmodels > 0 && cs->policy >= 0 && cs->models[cs->policy].cfg.layers <= 64) {
            IrGraph g;
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
