// test_memplan.c — the static memory plan: on the training graphs of the given specs, for a few
// (B, T): weights / grads / optimizer equal the parameter counts times their element sizes; no
// two buffers alive at the same step overlap in the arena; the arena is at most the sum of all
// buffers and at least the largest (a buffer written in place over another shares its space on
// purpose); the head's loss holds one chunk of logits (linear_ce), never the batch's, and shares
// it with its backward when one step computes both (sft: fuse.c pairs them); the plan
// grows with B and T; after the bf16 mixed-precision pass the weights shrink by exactly 2 bytes
// per frozen weight stored in bf16. Prints the plans.
#include "autocast.h"
#include "check.h"
#include "fuse.h"
#include "load.h"
#include "memplan.h"
#include "memplan_spec.h"
#include "gpu_test_util.h"
#include "test.h"
#include <string.h>

// mp_peak: the step of the most live bytes, found here by summing every buffer at every step; those
// bytes fit in the arena; the groups add up to them, each of buffers of one kind (same node op,
// dtype and bytes per buffer), the largest first; the printed report names the step.
static void check_peak(const MpPlan *mp, const FusePlan *fp) {
    const IrGraph *g = fp->g;
    MpPeak pk;
    CHECK(mp_peak(mp, g, fp->nsteps, &pk) == 0);
    int64_t best = -1;
    int best_step = -1, nlive = 0;
    for (int s = 0; s <= fp->nsteps; s++) {
        int64_t sum = 0;
        for (int i = 0; i < mp->nbufs; i++) {
            const MpBuffer *b = &mp->bufs[i];
            if (b->alias == IR_NONE && b->first <= s && s <= b->last) sum += b->bytes;
        }
        if (sum > best) best = sum, best_step = s;
    }
    for (int i = 0; i < mp->nbufs; i++) {
        const MpBuffer *b = &mp->bufs[i];
        nlive += b->alias == IR_NONE && b->bytes > 0 && b->first <= best_step && best_step <= b->last;
    }
    CHECK_MSG(pk.step == best_step && pk.bytes == best, "peak at step %d, %lld bytes; by hand step %d, %lld bytes", pk.step,
              (long long)pk.bytes, best_step, (long long)best);
    CHECK(pk.bytes <= mp->activations);
    int64_t sum = 0;
    int count = 0, sorted = 1, uniform = 1;
    for (int k = 0; k < pk.ngroups; k++) {
        sum += pk.groups[k].bytes, count += pk.groups[k].count;
        if (k && pk.groups[k].bytes > pk.groups[k - 1].bytes) sorted = 0;
        if (pk.groups[k].count <= 0 || pk.groups[k].bytes % pk.groups[k].count) uniform = 0;
    }
    CHECK_MSG(sum == pk.bytes && count == nlive, "groups: %lld bytes in %d buffers, want %lld in %d", (long long)sum, count,
              (long long)pk.bytes, nlive);
    CHECK(sorted && uniform);
    char text[4096] = "", want[64];
    FILE *f = tmpfile();
    CHECK(f && mp_print_peak(f, mp, g, fp, g->diag, 3) == 0);
    if (f) {
        rewind(f);
        text[fread(text, 1, sizeof text - 1, f)] = 0;
        fclose(f);
    }
    snprintf(want, sizeof want, "  peak: step %d of %d (", pk.step, fp->nsteps);
    int lines = 0;
    for (const char *c = text; *c; c++) lines += *c == '\n';
    CHECK_MSG(strncmp(text, want, strlen(want)) == 0 && lines == 1 + (pk.ngroups < 3 ? pk.ngroups : 3), "%s", text);
    mp_peak_free(&pk);
}

static void check_invariants(const MpPlan *mp, const FusePlan *fp) {
    const IrGraph *g = fp->g;
    int bad = 0;
    int64_t largest = 0;
    for (int i = 0; i < mp->nbufs; i++) {
        const MpBuffer *a = &mp->bufs[i];
        if (a->bytes > largest) largest = a->bytes;
        if (a->offset < 0 || a->offset + a->bytes > mp->activations) bad++;
        for (int j = i + 1; j < mp->nbufs; j++) {
            const MpBuffer *b = &mp->bufs[j];
            if ((a->alias != IR_NONE && a->alias == b->node && b->what == MP_VALUE) ||
                (b->alias != IR_NONE && b->alias == a->node && a->what == MP_VALUE)) {   // in place, on purpose
                if (a->offset != b->offset || a->bytes != b->bytes) bad++;
                continue;
            }
            bool live = a->first <= b->last && b->first <= a->last;
            bool overlap = a->offset < b->offset + b->bytes && b->offset < a->offset + a->bytes;
            if (live && overlap && bad++ < 3)
                fprintf(stderr, "buffers %%%d [%d,%d] and %%%d [%d,%d] overlap\n", a->node, a->first, a->last, b->node,
                        b->first, b->last);
        }
    }
    CHECK_MSG(bad == 0, "%d conflicts", bad);
    int chunks = 0;
    for (int i = 0; i < mp->nbufs; i++)
        if (mp->bufs[i].what == MP_CHUNK) {
            chunks++;
            CHECK_MSG(mp->bufs[i].bytes <= MP_LCE_CHUNK_BYTES + 256, "a chunk of logits of %lld bytes",
                      (long long)mp->bufs[i].bytes);
        }
    // one chunk buffer when the loss's step also computes its backward (fuse.c pairs them: sft), else two
    bool paired = false;
    for (int s = 0; s < fp->nsteps; s++)
        paired = paired || (fp->steps[s].kind == FUSE_LIBRARY && g->nodes[fp->steps[s].node].op == IR_LINEAR_CE_BWD_X &&
                            fp->lib_leader[s] >= 0 && g->nodes[fp->steps[fp->lib_leader[s]].node].op == IR_LINEAR_CE);
    CHECK_MSG(chunks == (paired ? 1 : 2), "the head's loss and its backward hold chunks of logits (%d, %s)", chunks,
              paired ? "one step" : "two steps");
    CHECK(mp->activations <= mp->naive);
    CHECK(mp->activations >= largest);
    check_peak(mp, fp);
}

static void test_spec(const char *path) {
    GpuTestSpec S;
    FusePlan fp;
    memset(&fp, 0, sizeof fp);
    int rc = gpu_test_spec_open(&S, path) == 0 && fuse_plan(&S.g, &S.d, &fp) == 0 ? 0 : -1;
    CHECK_MSG(rc == 0, "%s", path);
    if (rc == 0) {
        int64_t w32 = 0, trainable = 0;
        for (int i = 0; i < S.g.n; i++) {
            if (S.g.nodes[i].op != IR_PARAM) continue;
            int64_t n = ir_shape_numel(&S.g.nodes[i].shape, (int64_t[]){1, 1});
            w32 += (S.g.nodes[i].dtype == IR_BF16 ? 2 : 4) * n;   // a bf16 spec's graph is mixed already
            if (S.g.nodes[i].trainable) trainable += n;
        }
        int64_t prev = 0;
        int64_t sizes[3][2] = {{1, 16}, {2, 64}, {4, 256}};
        for (int k = 0; k < 3; k++) {
            MpPlan mp;
            CHECK(mp_plan(&S.g, &fp, sizes[k], "fp32", &mp, &S.d) == 0);
            printf("%s: ", path);
            mp_print(stdout, &mp);
            CHECK(mp.weights == w32);
            CHECK(mp.grads == 4 * trainable);
            CHECK(mp.optimizer == 8 * trainable);
            CHECK(mp.activations > prev);
            prev = mp.activations;
            check_invariants(&mp, &fp);
            mp_plan_free(&mp);
        }
        // bf16 mixed precision: frozen weights read only by products are stored in 2 bytes
        {
            IrGraph gm;
            ir_graph_init(&gm, &S.d, IR_F32);
            FusePlan fm;
            memset(&fm, 0, sizeof fm);
            AutocastStats ac;
            Arena a2 = {0};
            LoadedSpec spec2 = {0};
            CheckedSpec *cs2 = arena_alloc(&a2, sizeof *cs2);
            bool okm = mp_compile_spec_file(&S.d, &a2, path, &spec2, cs2, &gm) == 0 && ir_autocast_bf16(&gm, &ac) == 0 &&
                       fuse_plan(&gm, &S.d, &fm) == 0;
            CHECK_MSG(okm, "%s: the mixed-precision graph", path);
            int64_t retyped = 0, frozen = 0, all = 0;
            for (int i = 0; okm && i < gm.n; i++) {
                const IrNode *n = &gm.nodes[i];
                if (n->op != IR_PARAM) continue;
                int64_t numel = ir_shape_numel(&n->shape, (int64_t[]){1, 1});
                if (n->dtype == IR_BF16) retyped += numel;
                if (!n->trainable) frozen += numel;
                all += numel;
            }
            MpPlan h;
            if (okm && mp_plan(&gm, &fm, sizes[1], "bf16", &h, &S.d) == 0) {
                printf("%s, bf16: %lld of %lld frozen weights stored in bf16: ", path, (long long)retyped, (long long)frozen);
                mp_print(stdout, &h);
                CHECK(h.weights == 4 * all - 2 * retyped);
                CHECK(h.grads == 4 * trainable && h.optimizer == 8 * trainable);
                CHECK(retyped > 0 || frozen == 0);   // a spec with frozen linear weights stores them in bf16
                check_invariants(&h, &fm);
                mp_plan_free(&h);
            }
            if (okm) fuse_plan_free(&fm);
            ir_graph_free(&gm);
            arena_free(&a2);
        }
        // train.recompute: the backward recomputes each layer from its input, so the activations of
        // a step of 4 x 256 tokens fall to a few layers' worth: below 80% with the 2-layer fixtures
        // (measured 74% full, 77% LoRA; 49%, 61% before the plain step recomputed its cheap chains,
        // recompute.h), below 45% for a real model (llama-3.2-1b-lora, 16 layers: 40%; 36% before
        // the chains, since its linear outputs are bf16 (autocast.h) — 19% when they were fp32: the
        // plain step shrank, the recomputed one, a layer's worth, much less)
        if (!S.cs->train.recompute) {
            IrGraph gr;
            ir_graph_init(&gr, &S.d, IR_F32);
            FusePlan fr;
            memset(&fr, 0, sizeof fr);
            S.cs->train.recompute = true;
            bool okr = mp_compile_training_graph(&S.d, &S.a, &S.spec, S.cs, &gr) == 0 && fuse_plan(&gr, &S.d, &fr) == 0;
            S.cs->train.recompute = false;
            CHECK_MSG(okr, "%s: the recompute graph", path);
            MpPlan plain, redo;
            if (okr && mp_plan(&S.g, &fp, sizes[2], "fp32", &plain, &S.d) == 0) {
                if (mp_plan(&gr, &fr, sizes[2], "fp32", &redo, &S.d) == 0) {
                    printf("%s, recompute: activations %lld -> %lld bytes (%.0f%%)\n", path, (long long)plain.activations,
                           (long long)redo.activations, 100.0 * (double)redo.activations / (double)plain.activations);
                    double want = plain.activations > ((int64_t)1 << 30) ? 0.45 : 0.8;
                    CHECK_MSG((double)redo.activations < want * (double)plain.activations, "%s: recompute %lld vs %lld bytes",
                              path, (long long)redo.activations, (long long)plain.activations);
                    check_invariants(&redo, &fr);
                    mp_plan_free(&redo);
                }
                mp_plan_free(&plain);
            }
            if (okr) fuse_plan_free(&fr);
            ir_graph_free(&gr);
        }
        // a B*T that overflows is an error, not a crash
        MpPlan big;
        FILE *sink = tmpfile();
        Diag d2;
        diag_init(&d2, sink);
        CHECK(mp_plan(&S.g, &fp, (int64_t[]){(int64_t)1 << 40, (int64_t)1 << 40}, "fp32", &big, &d2) == -1);
        CHECK(d2.errors == 1);
        diag_free(&d2);
        fclose(sink);
        // the report entry point `trlc check --memory` can call
        FILE *mem = tmpfile();
        CHECK(mp_report_spec(mem, &S.d, &S.a, &S.spec, S.cs, 2, 32) == 0);
        char text[2048] = "";
        rewind(mem);
        text[fread(text, 1, sizeof text - 1, mem)] = 0;
        CHECK(strstr(text, "B=2, T=32") && strstr(text, "activations") && strstr(text, "optimizer"));
        fclose(mem);
    }
    fuse_plan_free(&fp);
    gpu_test_spec_free(&S);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) test_spec(argv[i]);
    return test_done("gpu.memplan");
}
