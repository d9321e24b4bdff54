// test_depth.c — the compiler's back half on whole training graphs, checked against the plain
// algorithms it replaced for speed (linear in depth): the memory plan's first-fit offsets
// (memplan.c places through a segment tree of merged ranges) against a scan of every buffer placed
// before, and no two buffers alive at once overlapping; ir_find's index against a scan of the
// graph's leaves. Specs and (B, T) come from the command line: SPEC... with sizes 1x64, 8x1024, 3x77.
// Not here: the plans' contents (gpu.memplan, gpu.schedule), timings.
#include "fuse.h"
#include "memplan.h"
#include "memplan_spec.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

// The lowest offset where b fits beside bufs[0, i) alive at once with it (first fit by scan).
static int64_t scan_fit(const MpBuffer *bufs, int i) {
    const MpBuffer *b = &bufs[i];
    int64_t best = -1;
    for (int k = -1; k < i; k++) {
        int64_t off = 0;
        if (k >= 0) {
            const MpBuffer *c = &bufs[k];
            if (c->alias != IR_NONE || c->last < b->first || b->last < c->first) continue;
            off = c->offset + c->bytes;
        }
        if (best >= 0 && off >= best) continue;
        bool ok = true;
        for (int m = 0; m < i && ok; m++) {
            const MpBuffer *c = &bufs[m];
            if (c->alias != IR_NONE || c->last < b->first || b->last < c->first) continue;
            ok = off + b->bytes <= c->offset || off >= c->offset + c->bytes;
        }
        if (ok) best = off;
    }
    return best;
}

static void check_plan(const char *path, const IrGraph *g, const FusePlan *fp, int64_t B, int64_t T, Diag *d) {
    MpPlan mp;
    int64_t sym[IR_NSYMS] = {B, T};
    CHECK_MSG(mp_plan(g, fp, sym, "fp32", &mp, d) == 0, "%s: mp_plan at %lldx%lld", path, (long long)B, (long long)T);
    int bad = 0, overlaps = 0, placed = 0;
    for (int i = 0; i < mp.nbufs; i++) {   // bufs stay in placement order
        const MpBuffer *b = &mp.bufs[i];
        if (b->alias != IR_NONE) continue;
        placed++;
        if (b->bytes > 0 && scan_fit(mp.bufs, i) != b->offset) bad++;
        for (int k = 0; k < i; k++) {
            const MpBuffer *c = &mp.bufs[k];
            if (c->alias == IR_NONE && b->bytes > 0 && c->bytes > 0 && c->first <= b->last && b->first <= c->last &&
                b->offset < c->offset + c->bytes && c->offset < b->offset + b->bytes)
                overlaps++;
        }
        if (b->offset + b->bytes > mp.activations) bad++;
    }
    CHECK_MSG(bad == 0 && overlaps == 0 && placed > 10, "%s at %lldx%lld: %d of %d buffers not at the first fit, %d overlaps",
              path, (long long)B, (long long)T, bad, placed, overlaps);
    mp_plan_free(&mp);
}

static void check_find(const char *path, const IrGraph *g) {
    int leaves = 0, bad = 0;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (!ir_is_leaf(n) || !n->name) continue;
        leaves++;
        IrId first = i;   // the first leaf of that name answers
        for (int k = 0; k < i; k++)
            if (ir_is_leaf(&g->nodes[k]) && g->nodes[k].name && !strcmp(g->nodes[k].name, n->name)) first = k;
        if (ir_find(g, n->name) != first) bad++;
    }
    CHECK_MSG(bad == 0 && leaves > 0, "%s: ir_find wrong for %d of %d leaves", path, bad, leaves);
    CHECK(ir_find(g, "no.such.leaf") == IR_NONE);
}

int main(int argc, char **argv) {
    for (int a = 1; a < argc; a++) {
        Diag d;
        diag_init(&d, stderr);
        Arena arena;
        LoadedSpec spec;
        CheckedSpec *cs;
        IrGraph g;
        if (mp_open_spec_file(&d, &arena, argv[a], &spec, &cs, &g) != 0) {
            CHECK_MSG(0, "%s does not compile", argv[a]);
        } else {
            check_find(argv[a], &g);
            FusePlan fp;
            if (fuse_plan(&g, &d, &fp) == 0) {
                check_plan(argv[a], &g, &fp, 1, 64, &d);
                check_plan(argv[a], &g, &fp, 8, 1024, &d);
                check_plan(argv[a], &g, &fp, 3, 77, &d);
            } else {
                CHECK_MSG(0, "%s: fuse_plan", argv[a]);
            }
            fuse_plan_free(&fp);
        }
        ir_graph_free(&g);
        arena_free(&arena);
        diag_free(&d);
    }
    return test_done("lower.depth");
}
