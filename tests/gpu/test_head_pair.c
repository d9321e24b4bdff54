// test_head_pair.c — the head's loss and its backward in one step (linear_ce.h
// ir_linear_ce_hoist_grads, fuse.c's pairing, exec.c's joint chunk loop). A hand-built head: x
// (2, 100, 4) and w (V, 4) trainable, labels; loss = sum(linear_ce(x, w, labels)) with V so
// large that the rows take two chunks of logits. The gradient's nodes move before the loss, the
// plan has the loss step lead dx and dw, and a loss whose gradient depends on its own value
// (sum(l²)) keeps them apart. On a device (the emulator in CI) the paired step's loss, dx and dw
// match the CPU interpreter's to 1e-4 normwise (fp32: dx sums V terms in another order; the CPU
// recomputes the logits for each backward op) and the executor
// launches one logits product per chunk: exactly its running kernel and gemm steps plus 5 per
// chunk (logits, cross-entropy forward and backward, dx, dw; unpaired it would be 10 per chunk).
// The specs' sft training graphs given (tests/run/full.trl: dx and dw; lora.trl: dx) pair too.
// Attention's backward pairs with its forward the same way through recomputed copies of q and k
// (recompute.h's rope option: a hand-built attention, check_attention_copies), not through a copy
// that differs. Without a device the plan checks still run and the device part prints a skip line.
#include "autodiff.h"
#include "cpu.h"
#include "exec.h"
#include "fuse.h"
#include "gpu_test_util.h"
#include "linear_ce.h"
#include "memplan.h"
#include "memplan_spec.h"
#include "recompute.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

#define L0 ((Loc){0, 0, 0})
enum { NB = 2, NT = 100, H = 4, V = 1 << 18 };   // 200 rows; 128 MiB / (V * 4 B) = 128 rows a chunk

static uint64_t rng = 11;

// squared: the loss is sum(l²), whose gradient 2 l depends on the forward
static void build_head(IrGraph *g, bool squared) {
    IrId x = ir_param(g, "x", IR_F32, ir_shape3(ir_dim(NB), ir_dim(NT), ir_dim(H)), true, L0);
    IrId w = ir_param(g, "w", IR_F32, ir_shape2(ir_dim(V), ir_dim(H)), true, L0);
    IrId labels = ir_input(g, "labels", IR_I32, ir_shape2(ir_dim(NB), ir_dim(NT)), L0);
    IrId l = ir_linear_ce(g, x, w, labels, -100, 0.0, L0);
    if (squared) l = ir_unary(g, IR_SQUARE, l, L0);
    ir_set_loss(g, ir_reshape(g, ir_reduce_all(g, IR_SUM, l, L0), ir_shape0(), L0));
    ad_backward(g, NULL, 0);
}

// Steps the plan's linear_ce leads (dx, dw), and whether every gradient input they read is
// computed before the leader.
static int led_by_loss(const FusePlan *fp, bool *ready) {
    const IrGraph *g = fp->g;
    int led = 0;
    *ready = true;
    for (int s = 0; s < fp->nsteps; s++) {
        if (fp->steps[s].kind != FUSE_LIBRARY) continue;
        const IrNode *n = &g->nodes[fp->steps[s].node];
        if (n->op != IR_LINEAR_CE_BWD_X && n->op != IR_LINEAR_CE_BWD_W) continue;
        int l = fp->lib_leader[s];
        if (l < 0 || g->nodes[fp->steps[l].node].op != IR_LINEAR_CE) continue;
        led++;
        *ready = *ready && fp->step_of[n->in[3]] < l;
    }
    return led;
}

static void check_plans(int nspecs, char **specs) {
    for (int squared = 0; squared < 2; squared++) {
        Diag d;
        diag_init(&d, stderr);
        IrGraph g;
        ir_graph_init(&g, &d, IR_F32);
        build_head(&g, squared);
        int moved = ir_linear_ce_hoist_grads(&g);
        FusePlan fp;
        memset(&fp, 0, sizeof fp);
        CHECK_MSG(g.errors == 0 && fuse_plan(&g, &d, &fp) == 0, "head%s: plan", squared ? " (squared)" : "");
        bool ready;
        int led = led_by_loss(&fp, &ready);
        if (!squared) {
            CHECK_MSG(moved >= 1 && led == 2 && ready, "head: %d nodes moved, the loss leads %d steps (want 2)", moved, led);
        } else {
            CHECK_MSG(moved == 0 && led == 0, "head (squared): %d nodes moved, the loss leads %d steps (want none)", moved, led);
        }
        printf("head%s: %d gradient nodes moved before the loss; its step leads %d backward steps\n",
               squared ? " with sum(l^2) (gradient from the loss)" : "", moved, led);
        fuse_plan_free(&fp);
        ir_graph_free(&g);
        diag_free(&d);
    }
    for (int k = 0; k < nspecs; k++) {   // full.trl (dx and dw), then lora.trl (dx: w is frozen)
        Diag d;
        diag_init(&d, stderr);
        Arena a;
        LoadedSpec spec;
        CheckedSpec *cs;
        IrGraph g;
        FusePlan fp;
        memset(&fp, 0, sizeof fp);
        bool ok = mp_open_spec_file(&d, &a, specs[k], &spec, &cs, &g) == 0 && fuse_plan(&g, &d, &fp) == 0;
        CHECK_MSG(ok, "%s: plan", specs[k]);
        bool ready;
        int led = ok ? led_by_loss(&fp, &ready) : 0;
        CHECK_MSG(led == (k == 0 ? 2 : 1) && ready, "%s: the loss leads %d backward steps", specs[k], led);
        printf("%s: the loss's step leads %d backward step(s)\n", specs[k], led);
        if (ok) fuse_plan_free(&fp);
        ir_graph_free(&g);
        arena_free(&a);
        diag_free(&d);
    }
}

static void check_device(GpuTestDevice *t) {
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    build_head(&g, false);
    CHECK(ir_linear_ce_hoist_grads(&g) >= 1);
    float *x = malloc(sizeof(float) * NB * NT * H), *w = malloc(sizeof(float) * (size_t)V * H);
    int32_t labels[NB * NT];
    for (int i = 0; i < NB * NT * H; i++) x[i] = gpu_test_frand(&rng) * 2.0f;
    for (int64_t i = 0; i < (int64_t)V * H; i++) w[i] = gpu_test_frand(&rng) * 0.5f;
    for (int i = 0; i < NB * NT; i++) labels[i] = i % 17 == 3 ? -100 : (int32_t)((uint32_t)(i * 2654435761u) % V);
    CpuProgram *cpu = cpu_program_new(&g, IR_F32, &d);
    CudaProgram *gpu = cuda_program_new(&g, t->dev, &t->cache, &d);
    bool ok = cpu && gpu && x && w;
    for (int i = 0; ok && i < g.n; i++) {
        const IrNode *n = &g.nodes[i];
        const void *data = n->op == IR_INPUT ? (const void *)labels : !strcmp(n->name ? n->name : "", "x") ? (const void *)x : w;
        size_t bytes = n->op == IR_INPUT ? sizeof labels : !strcmp(n->name ? n->name : "", "x") ? sizeof(float) * NB * NT * H
                                                                                                 : sizeof(float) * (size_t)V * H;
        if (n->op != IR_INPUT && n->op != IR_PARAM) continue;
        ok = cpu_bind(cpu, i, data, bytes) == 0 && cuda_bind(gpu, i, data, bytes) == 0;
    }
    const int64_t sym[IR_NSYMS] = {1, 1};
    ok = ok && cpu_run(cpu, sym, 0) == 0 && cuda_run(gpu, sym, 0) == 0;
    CHECK_MSG(ok, "head on the device: runs");
    double worst = 0;
    for (int o = 0; ok && o < g.nouts; o++) {
        const CpuTensor *c = cpu_output(cpu, o), *x2 = cuda_output(gpu, o);
        bool same = c && x2 && c->numel == x2->numel;
        CHECK_MSG(same, "output %s", g.outs[o].name);
        double e = same ? gpu_test_relerr(x2->data, c->data, c->numel) : 1;
        CHECK_MSG(e <= 1e-4, "output %s differs from the CPU's by %.3g", g.outs[o].name, e);
        if (!(e <= worst)) worst = e;
    }
    // the launches: the plan's running kernel and gemm steps (the executor plans the same graph
    // with the same fuse_plan), plus the leader's 5 a chunk
    FusePlan plan;
    memset(&plan, 0, sizeof plan);
    const FusePlan *fp = fuse_plan(&g, &d, &plan) == 0 ? &plan : NULL;
    int expect = 0, chunks = (int)((NB * NT + mp_lce_chunk_rows(V, NB * NT) - 1) / mp_lce_chunk_rows(V, NB * NT));
    for (int s = 0; fp && s < fp->nsteps; s++)
        if (fuse_step_runs(fp, s) && fp->steps[s].kind != FUSE_LIBRARY) expect++;
    expect += 5 * chunks;
    int got = ok ? cuda_launch_count(gpu) : -1;
    CHECK_MSG(fp && got == expect, "launches %d, want %d (%d chunks of one logits product each)", got, expect, chunks);
    printf("head on %s: loss, dx, dw within %.2g of the CPU's; %d launches = %d steps + 5 x %d chunks (unpaired: 10 a chunk)\n",
           rt_cuda_is_emulated(t->dev) ? "the emulator" : "a device", worst, got, expect - 5 * chunks, chunks);
    if (fp) fuse_plan_free(&plan);
    if (gpu) cuda_program_free(gpu);
    if (cpu) cpu_program_free(cpu);
    free(x), free(w);
    ir_graph_free(&g);
    diag_free(&d);
}

// Attention whose q and k the backward recomputes (RecomputeCheapOptions.rope): x (1, 8, 32);
// q = rope(permute(reshape(silu(x wqᵀ)))) over 2 heads of 16 (silu's backward keeps x wqᵀ, so the
// cheap pass recomputes the chain down to it), k the same, v = permute(reshape(x wvᵀ)); loss =
// sum(sdpa(q, k, v)). The backward's dq, dk, dv read the recomputed copies of q and k; fuse.c
// pairs them with the forward all the same (the copies compute the same bits), and not when a
// copy differs (its rope's theta changed).
static void build_attention(IrGraph *g) {
    IrShape xs = ir_shape3(ir_dim(1), ir_dim(8), ir_dim(32)), hs = ir_shape4(ir_dim(1), ir_dim(8), ir_dim(2), ir_dim(16));
    IrId x = ir_param(g, "x", IR_F32, xs, true, L0);
    IrId pos = ir_input(g, "pos", IR_I32, ir_shape1(ir_dim(8)), L0);
    IrRope rope = {.theta = 10000.0};
    const int perm[4] = {0, 2, 1, 3};
    IrId qkv[3];
    for (int j = 0; j < 3; j++) {
        static const char *const names[3] = {"wq", "wk", "wv"};
        IrId w = ir_param(g, names[j], IR_F32, ir_shape2(ir_dim(32), ir_dim(32)), true, L0);
        IrId y = ir_matmul(g, x, w, false, true, L0);
        if (j < 2) y = ir_unary(g, IR_SILU, y, L0);
        y = ir_permute(g, ir_reshape(g, y, hs, L0), perm, L0);
        qkv[j] = j < 2 ? ir_rope(g, y, pos, rope, L0) : y;
    }
    IrId o = ir_sdpa(g, qkv[0], qkv[1], qkv[2], true, 0.25, L0);
    ir_set_loss(g, ir_reshape(g, ir_reduce_all(g, IR_SUM, o, L0), ir_shape0(), L0));
    ad_backward(g, NULL, 0);
}

// Attention's backward steps that read the forward fwd's saved state; *copies: how many of them
// read copies of q and k (recomputed nodes) instead of the forward's own.
static int attention_paired(const FusePlan *fp, IrId fwd, int *copies) {
    const IrGraph *g = fp->g;
    int paired = 0;
    *copies = 0;
    for (int s = 0; s < fp->nsteps; s++) {
        const IrNode *n = &g->nodes[fp->steps[s].node];
        if (fp->steps[s].kind != FUSE_LIBRARY || n->op < IR_SDPA_BWD_Q || n->op > IR_SDPA_BWD_V) continue;
        paired += fp->lib_fwd[s] == fwd;
        *copies += g->nodes[n->in[0]].recomputed && g->nodes[n->in[1]].recomputed && n->in[0] != g->nodes[fwd].in[0] &&
                   n->in[1] != g->nodes[fwd].in[1];
    }
    return paired;
}

static void check_attention_copies(void) {
    for (int rope = 0; rope < 2; rope++) {
        for (int tamper = 0; tamper <= rope; tamper++) {
            Diag d;
            diag_init(&d, stderr);
            IrGraph g;
            ir_graph_init(&g, &d, IR_F32);
            build_attention(&g);
            RecomputeCheapOptions o = {.chains = true, .rope = rope == 1, .max_chain = RECOMPUTE_MAX_CHAIN};
            int made = 0;
            CHECK(g.errors == 0 && ir_recompute_cheap_opts(&g, &o, &made) == 0);
            IrId fwd = IR_NONE, qcopy = IR_NONE;
            for (int i = 0; i < g.n; i++) {
                if (g.nodes[i].op == IR_SDPA && !g.nodes[i].backward) fwd = i;
                if (g.nodes[i].op == IR_SDPA_BWD_Q && g.nodes[i].backward) qcopy = g.nodes[i].in[0];
            }
            if (tamper && qcopy != IR_NONE && g.nodes[qcopy].op == IR_ROPE) g.nodes[qcopy].a.rope.theta *= 2;
            FusePlan fp;
            memset(&fp, 0, sizeof fp);
            bool ok = fwd != IR_NONE && qcopy != IR_NONE && fuse_plan(&g, &d, &fp) == 0;
            CHECK_MSG(ok, "attention (rope copies %d, tampered %d): plan", rope, tamper);
            int copies = 0, paired = ok ? attention_paired(&fp, fwd, &copies) : -1;
            int want = tamper ? 0 : 3;
            CHECK_MSG(paired == want && copies == (rope ? 3 : 0),
                      "attention (rope copies %d, tampered %d): %d of 3 backward steps read the forward's saved state "
                      "(want %d), %d read copies of q and k (want %d); %d values recomputed",
                      rope, tamper, paired, want, copies, rope ? 3 : 0, made);
            printf("attention%s: %d values recomputed; %d of 3 backward steps read copies of q and k, %d read the "
                   "forward's saved state\n",
                   !rope ? "" : tamper ? " with q's rope copy changed (theta x 2)" : " with rope recomputed", made,
                   copies, paired);
            if (ok) fuse_plan_free(&fp);
            ir_graph_free(&g);
            diag_free(&d);
        }
    }
}

int main(int argc, char **argv) {   // argv: tests/run/full.trl tests/run/lora.trl
    check_plans(argc - 1, argv + 1);
    check_attention_copies();
    GpuTestDevice t;
    if (gpu_test_open(&t, "gpu.head_pair", ": the device part skipped")) {
        check_device(&t);
        gpu_test_close(&t);
    }
    return test_done("gpu.head_pair");
}
