// test_lowp_linear.c — bf16 linear outputs (compiler/autocast.h) on Qwen3-0.6B with LoRA on every
// linear layer (tests/gpu/specs/qwen3-0.6b-lora.trl, compiled as trlc kernels does: autocast, then
// gemm_acc): each decoder layer's q, k, v, o, gate, up and down projections write their base
// output in bf16, and the LoRA product accumulates into it with bf16 C and D (one product); no
// f32 value reads those outputs but a widening cast (of the output or of a bf16 reshape / permute
// of it); a forward widening cast is read in the forward alone (the backward has its own), every
// widening cast is computed inside a fused kernel, and none of the forward's is written to memory:
// no f32 copy of a linear output is kept for the backward. With TRLC_GEMM_ACC=0 the sums stay
// an f32 add rounded by a cast. Numbers: run.step (bf16 vs PyTorch), gemm_acc.* (the bf16-C GEMM
// on the CPU and the emulator).
// usage: test_ir_lowp_linear SPEC
#include "fuse.h"
#include "memplan_spec.h"
#include "test.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const PROJ[] = {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                                   "mlp.gate_proj",    "mlp.up_proj",      "mlp.down_proj"};
enum { NPROJ = 7 };

// A decoder layer's projection: "model.layers.N.<PROJ>" exactly.
static bool projection(const char *name) {
    int n = 0, used = 0;
    if (!name || sscanf(name, "model.layers.%d.%n", &n, &used) != 1 || used == 0) return false;
    for (int k = 0; k < NPROJ; k++)
        if (!strcmp(name + used, PROJ[k])) return true;
    return false;
}

// Whether x is a bf16 linear output or a bf16 view of one (mark[] holds the known ones).
static bool is_bf16_view(const IrGraph *g, const bool *mark, IrId x) {
    const IrNode *n = &g->nodes[x];
    return (n->op == IR_RESHAPE || n->op == IR_PERMUTE) && n->dtype == IR_BF16 && mark[n->in[0]];
}

static void check_lowp_spec(const char *path, bool fused) {
    Diag d;
    diag_init(&d, stderr);
    Arena a;
    LoadedSpec spec;
    CheckedSpec *cs;
    IrGraph g;
    if (!fused) setenv("TRLC_GEMM_ACC", "0", 1);
    bool ok = mp_open_spec_file(&d, &a, path, &spec, &cs, &g) == 0;
    unsetenv("TRLC_GEMM_ACC");
    CHECK_MSG(ok, "%s: the training graph", path);
    if (!ok) goto out;
    int n = g.n;
    int *readers = calloc((size_t)n, sizeof *readers);
    bool *mark = calloc((size_t)n, 1);   // linear outputs (the sums) and their bf16 views
    if (!readers || !mark) {
        CHECK_MSG(false, "out of memory");
        goto out;
    }
    for (int i = 0; i < n; i++)
        for (int k = 0; k < g.nodes[i].nin; k++) readers[g.nodes[i].in[k]]++;
    int bases = 0, f32_bases = 0, sums = 0, bad_sums = 0;
    for (int i = 0; i < n; i++) {
        const IrNode *p = &g.nodes[i];
        if (p->op != IR_MATMUL || p->nin != 2 || p->backward || !projection(p->name)) continue;
        bases++;
        f32_bases += p->dtype != IR_BF16;
        // the one reader: the LoRA sum — fused: a matmul with the base as its bf16 addend; unfused:
        // cast_f32(base) read by the f32 add that a cast to bf16 rounds
        IrId sum = IR_NONE;
        for (int j = i + 1; j < n && sum == IR_NONE; j++) {
            const IrNode *r = &g.nodes[j];
            if (fused && r->op == IR_MATMUL && r->nin == 3 && r->in[2] == i) sum = j;
            if (!fused && r->op == IR_CAST && r->dtype == IR_F32 && r->in[0] == i)
                for (int k = j + 1; k < n && sum == IR_NONE; k++)
                    if (g.nodes[k].op == IR_ADD && (g.nodes[k].in[0] == j || g.nodes[k].in[1] == j))
                        for (int c = k + 1; c < n && sum == IR_NONE; c++)
                            if (g.nodes[c].op == IR_CAST && g.nodes[c].in[0] == k) sum = c;
        }
        if (sum == IR_NONE || readers[i] != 1 || g.nodes[sum].dtype != IR_BF16 || g.nodes[sum].backward) {
            bad_sums++;
            continue;
        }
        sums++;
        mark[sum] = true;
    }
    CHECK_MSG(bases == 28 * NPROJ && f32_bases == 0, "%s: %d base projections, %d of them f32", path, bases, f32_bases);
    CHECK_MSG(sums == bases && bad_sums == 0, "%s: %d LoRA sums in bf16, %d not", path, sums, bad_sums);
    // the views of the sums (q, k, v's (B, T, H, D) and (B, H, T, D)): bf16 too
    int views = 0;
    for (int i = 0; i < n; i++)
        if (is_bf16_view(&g, mark, i)) mark[i] = true, views++;
    // every reader of a linear output (or view) is a product, a bf16 view or a widening cast
    int widen_fwd = 0, widen_bwd = 0, other = 0, crossing = 0;
    bool *widen = calloc((size_t)n, 1);
    for (int i = 0; widen && i < n; i++) {
        const IrNode *r = &g.nodes[i];
        for (int k = 0; k < r->nin; k++) {
            if (!mark[r->in[k]]) continue;
            if (r->op == IR_CAST && r->dtype == IR_F32) {
                if (!widen[i]) {
                    if (r->backward) widen_bwd++;
                    else widen_fwd++;
                }
                widen[i] = true;
            } else if (!mark[i] && k >= ir_lowp_operands(r->op)) {   // bf16 views; bf16 operands
                other++;
            }
        }
    }
    // a forward widening cast is read in the forward alone
    for (int i = 0; widen && i < n; i++)
        for (int k = 0; k < g.nodes[i].nin; k++)
            if (widen[g.nodes[i].in[k]] && g.nodes[g.nodes[i].in[k]].backward != g.nodes[i].backward) crossing++;
    CHECK_MSG(other == 0, "%s: %d readers of bf16 linear outputs read them neither as bf16 nor through a cast", path,
              other);
    CHECK_MSG(crossing == 0, "%s: %d backward nodes read a forward widening cast (an f32 copy kept)", path, crossing);
    // per layer at least: q, k (their norms), gate, up (SwiGLU), o, down (residual adds) widened in
    // the forward; q, k, gate, up again in the backward (their norms' and SwiGLU's backward)
    CHECK_MSG(widen_fwd >= 28 * 6 && widen_bwd >= 28 * 4, "%s: %d forward and %d backward widening casts", path,
              widen_fwd, widen_bwd);
    // the fusion plan: each widening cast inside a kernel, a forward one never written out
    FusePlan fp;
    memset(&fp, 0, sizeof fp);
    int unfused = 0, written = 0;
    if (fuse_plan(&g, &d, &fp) == 0) {
        for (int i = 0; widen && i < n; i++) {
            if (!widen[i]) continue;
            int gi = fp.group_of[i];
            if (gi < 0) {
                unfused++;
                continue;
            }
            const FuseGroup *gr = &fp.groups[gi];
            for (int o = 0; o < gr->nouts; o++) written += gr->outs[o] == i && !g.nodes[i].backward;
        }
        fuse_plan_free(&fp);
    } else {
        CHECK_MSG(false, "%s: the fusion plan", path);
    }
    CHECK_MSG(unfused == 0, "%s: %d widening casts outside a kernel", path, unfused);
    CHECK_MSG(written == 0, "%s: %d forward widening casts written to memory (an f32 copy)", path, written);
    printf("%s (%s): %d base projections bf16, %d LoRA sums bf16, %d bf16 views; %d forward / %d backward widening "
           "casts, all in kernels, %d written\n",
           path, fused ? "gemm_acc" : "TRLC_GEMM_ACC=0", bases, sums, views, widen_fwd, widen_bwd, written);
    free(widen);
    free(readers);
    free(mark);
out:
    ir_graph_free(&g);
    arena_free(&a);
    diag_free(&d);
}

int main(int argc, char **argv) {
    CHECK_MSG(argc == 2, "usage: test_ir_lowp_linear SPEC");
    if (argc == 2) {
        check_lowp_spec(argv[1], true);
        check_lowp_spec(argv[1], false);
    }
    return test_done("ir.lowp_linear");
}
