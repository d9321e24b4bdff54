// test_memplan.c — the static memory plan: on the training graphs of the given specs, for a few
// (B, T): weights / grads / optimizer equal the parameter counts times their element sizes; no
// two buffers alive at the same step overlap in the arena; the arena is at most the sum of all
// buffers and at least the largest; the plan grows with B and T; precision bf16 halves the
// activations' element size. Prints the plans.
#include "check.h"
#include "fuse.h"
#include "load.h"
#include "memplan.h"
#include "memplan_spec.h"
#include "test.h"
#include <string.h>

static void check_invariants(const MpPlan *mp) {
    int bad = 0;
    int64_t largest = 0;
    for (int i = 0; i < mp->nbufs; i++) {
        const MpBuffer *a = &mp->bufs[i];
        if (a->bytes > largest) largest = a->bytes;
        if (a->offset < 0 || a->offset + a->bytes > mp->activations) bad++;
        for (int j = i + 1; j < mp->nbufs; j++) {
            const MpBuffer *b = &mp->bufs[j];
            bool live = a->first <= b->last && b->first <= a->last;
            bool overlap = a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes;
            if (live && overlap && bad++ < 3)
                fprintf(stderr, "buffers %%%d [%d,%d] and %%%d [%d,%d] overlap\n", a->node, a->first, a->last, b->node,
                        b->first, b->last);
        }
    }
    CHECK_MSG(bad == 0, "%d conflicts", bad);
    CHECK(mp->activations <= mp->naive);
    CHECK(mp->activations >= largest);
}

static void test_spec(const char *path) {
    Diag d;
    diag_init(&d, stderr);
    Arena a = {0};
    LoadedSpec spec = {0};
    CheckedSpec *cs = arena_alloc(&a, sizeof *cs);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    FusePlan fp;
    memset(&fp, 0, sizeof fp);
    int rc = load_spec(&d, &a, path, &spec) == 0 && check_spec(&d, &a, &spec, cs) == 0 &&
                     mp_compile_training_graph(&d, &a, &spec, cs, &g) == 0 && fuse_plan(&g, &d, &fp) == 0
                 ? 0
                 : -1;
    CHECK_MSG(rc == 0, "%s", path);
    if (rc == 0) {
        int64_t w32 = 0, trainable = 0;
        for (int i = 0; i < g.n; i++) {
            if (g.nodes[i].op != IR_PARAM) continue;
            int64_t n = ir_shape_numel(&g.nodes[i].shape, (int64_t[]){1, 1});
            w32 += 4 * n;
            if (g.nodes[i].trainable) trainable += n;
        }
        int64_t prev = 0;
        int64_t sizes[3][2] = {{1, 16}, {2, 64}, {4, 256}};
        for (int k = 0; k < 3; k++) {
            MpPlan mp;
            CHECK(mp_plan(&g, &fp, sizes[k], "fp32", &mp, &d) == 0);
            printf("%s: ", path);
            mp_print(stdout, &mp);
            CHECK(mp.weights == w32);
            CHECK(mp.grads == 4 * trainable);
            CHECK(mp.optimizer == 8 * trainable);
            CHECK(mp.activations > prev);
            prev = mp.activations;
            check_invariants(&mp);
            MpPlan h;
            CHECK(mp_plan(&g, &fp, sizes[k], "bf16", &h, &d) == 0);
            CHECK(h.weights == w32 / 2 + 4 * trainable);
            CHECK(h.activations < mp.activations && 2 * h.activations >= mp.activations / 2);
            check_invariants(&h);
            mp_plan_free(&h);
            mp_plan_free(&mp);
        }
        // a B*T that overflows is an error, not a crash
        MpPlan big;
        FILE *sink = tmpfile();
        Diag d2;
        diag_init(&d2, sink);
        CHECK(mp_plan(&g, &fp, (int64_t[]){(int64_t)1 << 40, (int64_t)1 << 40}, "fp32", &big, &d2) == -1);
        CHECK(d2.errors == 1);
        diag_free(&d2);
        fclose(sink);
        // the report entry point `trlc check --memory` can call
        FILE *mem = tmpfile();
        CHECK(mp_report_spec(mem, &d, &a, &spec, cs, 2, 32) == 0);
        char text[2048] = "";
        rewind(mem);
        text[fread(text, 1, sizeof text - 1, mem)] = 0;
        CHECK(strstr(text, "B=2, T=32") && strstr(text, "activations") && strstr(text, "optimizer"));
        fclose(mem);
    }
    fuse_plan_free(&fp);
    ir_graph_free(&g);
    arena_free(&a);
    diag_free(&d);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) test_spec(argv[i]);
    return test_done("gpu.memplan");
}
