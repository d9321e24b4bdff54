// test_normfuse.c — the fuser's merging (fuse.h: a later group moved into an earlier reduction
// group X when every member takes a level in X). On small hand-built graphs shaped like an
// RMSNorm backward (t = gy * x; r = rsqrt(v) before the reduction exists; s = sum_to(t);
// e = s * r; out = broadcast(e) * x + t, with a dropout on the way in the legal case): the legal
// case becomes one kernel whose result (fuse_eval_group) equals the interpreter; the illegal
// cases keep their groups — the moved member reads a view made between X and it, a GEMM runs
// between, the merged group would read more than FUSE_MAX_INS inputs, X is forward and the rest
// backward. Full fine-tuning's shape (the weight gradient's reduction over B·T first, then the
// [B,T,1] rsqrt group and a [B,T,8] group before the row's sum_to): both are pulled into the row
// reduction (two kernels in all, equal to the interpreter), unless a view between reads the
// group before it. On a spec given on the command line (Qwen3-0.6B LoRA): every RMSNorm backward is
// one kernel (no backward rsqrt in a kernel without a reduction), launches drop by at least 2
// per norm, the unique kernels get no more, and the planned activations at B=8 T=1024 no larger.
#include "cpu.h"
#include "fuse.h"
#include "gpu_test_util.h"
#include "ir.h"
#include "memplan.h"
#include "memplan_spec.h"
#include "test.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const Loc L = {0, 0, 0};

typedef enum Case {
    CASE_LEGAL,       // rsqrt/e group and the [B,T,8] group both merge into the reduction
    CASE_VIEW_READ,   // the [B,T,8] group reads a reshape made after X: it stays apart
    CASE_GEMM_BETWEEN,// a GEMM between X and the [B,T,8] group, which reads its result
    CASE_TOO_MANY_INS,// merged, X's inputs and the [B,T,8] group's would be 33
    CASE_FWD_BWD,     // X forward, the later groups backward
    CASE_PULL,        // full fine-tuning's order: the groups before the row reduction join it
    CASE_PULL_VIEW,   // the same, a view of the [B,T,8] group's value made before the reduction
    CASE_N
} Case;

static const char *case_name[CASE_N] = {"legal", "reads a view made between", "gemm between", "too many inputs",
                                        "forward/backward", "pulled", "pull with a view between"};

typedef struct Ids {
    IrId t, r, s, e, out;
} Ids;

// a = gy * x; w = sum_to(a, [8]) (the weight gradient); r = rsqrt(v); h = a * r + gz;
// s = sum_to(a * x2, [B,T,1]); e = s * r; out = h + e * x.
static void build_pull(IrGraph *g, Case c, Ids *ids) {
    IrShape s3 = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(8)), r3 = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(1));
    IrId x = ir_input(g, "x", IR_F32, s3, L), gy = ir_input(g, "gy", IR_F32, s3, L);
    IrId gz = ir_input(g, "gz", IR_F32, s3, L), x2 = ir_input(g, "x2", IR_F32, s3, L);
    IrId v = ir_input(g, "v", IR_F32, r3, L);
    IrId a = ir_mul(g, gy, x, L);
    IrId w = ir_sum_to(g, a, ir_shape1(ir_dim(8)), L);
    IrId r = ir_unary(g, IR_RSQRT, v, L);
    IrId h = ir_add(g, ir_mul(g, a, ir_broadcast_to(g, r, s3, L), L), gz, L);
    if (c == CASE_PULL_VIEW)
        ir_add_output(g, ir_reshape(g, h, ir_shape4(ir_dim_b(), ir_dim_t(), ir_dim(8), ir_dim(1)), L), "hv");
    IrId t = ir_mul(g, a, x2, L);
    IrId s = ir_sum_to(g, t, r3, L);
    IrId e = ir_mul(g, s, r, L);
    IrId out = ir_add(g, h, ir_mul(g, ir_broadcast_to(g, e, s3, L), x, L), L);
    for (IrId i = a; i < g->n; i++) g->nodes[i].backward = true;
    ir_add_output(g, w, "w");
    ir_add_output(g, a, "a");
    ir_add_output(g, t, "t");
    ir_add_output(g, out, "out");
    *ids = (Ids){t, r, s, e, out};
}

static void build_case(IrGraph *g, Case c, Ids *ids) {
    if (c == CASE_PULL || c == CASE_PULL_VIEW) {
        build_pull(g, c, ids);
        return;
    }
    IrShape s3 = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(8)), r3 = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(1));
    IrId x = ir_input(g, "x", IR_F32, s3, L);
    IrId gy = ir_input(g, "gy", IR_F32, s3, L);
    IrId v = ir_input(g, "v", IR_F32, r3, L);
    IrId t = ir_mul(g, gy, x, L);
    if (c == CASE_TOO_MANY_INS) t = ir_mul(g, t, ir_input(g, "q", IR_F32, s3, L), L);
    IrId r = ir_unary(g, IR_RSQRT, v, L);   // before the reduction: a group of its own
    IrId s = ir_sum_to(g, t, r3, L);
    IrId e = ir_mul(g, s, r, L);
    IrId between = IR_NONE;
    if (c == CASE_VIEW_READ) {
        IrId z = ir_input(g, "z", IR_F32, ir_shape4(ir_dim_b(), ir_dim_t(), ir_dim(8), ir_dim(1)), L);
        between = ir_reshape(g, z, s3, L);
    } else if (c == CASE_GEMM_BETWEEN) {
        IrId w = ir_param(g, "w", IR_F32, ir_shape2(ir_dim(8), ir_dim(8)), false, L);
        between = ir_linear(g, x, w, L);
    }
    IrId out = ir_add(g, ir_mul(g, ir_broadcast_to(g, e, s3, L), x, L), t, L);
    if (between != IR_NONE) out = ir_add(g, out, between, L);
    if (c == CASE_TOO_MANY_INS)
        for (int k = 0; k < 29; k++) {
            char name[16];
            snprintf(name, sizeof name, "z%d", k);
            out = ir_add(g, out, ir_input(g, name, IR_F32, s3, L), L);
        }
    if (c == CASE_LEGAL) out = ir_dropout(g, out, 0.25, 77, L);
    if (c == CASE_FWD_BWD)
        for (IrId i = r; i < g->n; i++)
            if (i != s) g->nodes[i].backward = true;
    ir_add_output(g, out, "out");
    *ids = (Ids){t, r, s, e, out};
}

// The legal case's one kernel against the interpreter, on random inputs.
static void check_numerics(IrGraph *g, const FusePlan *p, IrId out, bool dropout, Diag *d) {
    int64_t sym[IR_NSYMS] = {2, 5};
    CpuProgram *prog = cpu_program_new(g, IR_F32, d);
    CHECK(prog != NULL);
    if (!prog) return;
    uint64_t rng = 0x40f5;
    float **leaf = calloc((size_t)g->n, sizeof *leaf);
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (!ir_is_leaf(n)) continue;
        int64_t numel = ir_shape_numel(&n->shape, sym);
        leaf[i] = malloc((size_t)numel * sizeof **leaf);
        // v is a mean of squares plus eps: keep it positive
        for (int64_t k = 0; k < numel; k++) leaf[i][k] = 0.5f + 2 * fabsf(gpu_test_frand(&rng));
        CHECK(cpu_bind(prog, i, leaf[i], (size_t)numel * sizeof **leaf) == 0);
    }
    CHECK(cpu_run(prog, sym, 3) == 0);
    const CpuTensor *want = cpu_output_named(prog, "out");
    int gi = p->group_of[out];
    CHECK(want && gi >= 0);
    if (want && gi >= 0) {
        const FuseGroup *gr = &p->groups[gi];
        CHECK(gr->nouts == 1 && gr->outs[0] == out && gr->nins <= 8);
        const void *ins[8] = {0};
        for (int k = 0; k < gr->nins && k < 8; k++) {
            ins[k] = leaf[gr->ins[k]];
            for (int o = 0; o < g->nouts && !ins[k]; o++)   // a value another kernel writes
                if (g->outs[o].id == gr->ins[k]) {
                    const CpuTensor *ct = cpu_output_named(prog, g->outs[o].name);
                    ins[k] = ct ? ct->data : NULL;
                }
            CHECK(ins[k] != NULL);
        }
        float got[2 * 5 * 8];
        void *outs[1] = {got};
        CHECK(fuse_eval_group(p, gi, sym, 3, ins, outs, d) == 0);
        double err = gpu_test_relerr(got, want->data, 2 * 5 * 8);
        int zeros = 0;   // the dropout dropped some (p = 0.25), at the interpreter's indexes
        for (int k = 0; k < 2 * 5 * 8; k++) zeros += got[k] == 0.0f && ((const float *)want->data)[k] == 0.0f;
        CHECK_MSG(err <= 1e-6, "merged norm backward vs the interpreter: %g", err);
        if (dropout) CHECK_MSG(zeros >= 5 && zeros <= 40, "dropout zeros in the merged kernel: %d of 80", zeros);
        printf("normfuse: merged kernel vs interpreter: worst relative error %.3g (%d of 80 dropped)\n", err, zeros);
    }
    for (int i = 0; i < g->n; i++) free(leaf[i]);
    free(leaf);
    cpu_program_free(prog);
}

static void test_cases(void) {
    for (int c = 0; c < CASE_N; c++) {
        Diag d;
        diag_init(&d, stderr);
        IrGraph g;
        ir_graph_init(&g, &d, IR_F32);
        Ids id;
        build_case(&g, (Case)c, &id);
        CHECK_MSG(g.errors == 0 && ir_verify(&g), "%s: the graph builds", case_name[c]);
        FusePlan merged, plain;
        FuseOptions off = {.no_merge = true};
        bool ok = fuse_plan_with(&g, NULL, &d, &merged) == 0 && fuse_plan_with(&g, &off, &d, &plain) == 0;
        CHECK_MSG(ok, "%s: both plans build (and pass fuse_verify)", case_name[c]);
        if (ok) {
            const FusePlan *P = &plain, *M = &merged;
            CHECK_MSG(P->nmerged == 0 && P->group_of[id.r] != P->group_of[id.s] &&
                          (c >= CASE_PULL || (P->group_of[id.out] != P->group_of[id.s] &&
                                              P->group_of[id.out] != P->group_of[id.e])),
                      "%s: without merging, the rsqrt and the reduction are apart", case_name[c]);
            int kx = M->group_of[id.s];
            printf("normfuse: %s: kernel launches %d -> %d (%d merged)\n", case_name[c], P->nsteps_kind[FUSE_KERNEL],
                   M->nsteps_kind[FUSE_KERNEL], M->nmerged);
            switch ((Case)c) {
            case CASE_LEGAL:
                CHECK_MSG(M->nmerged == 2 && M->ngroups == 1 && M->group_of[id.out] == kx && M->group_of[id.r] == kx,
                          "legal: one kernel (%d merged, %d groups)", M->nmerged, M->ngroups);
                CHECK(M->nsteps_kind[FUSE_KERNEL] == P->nsteps_kind[FUSE_KERNEL] - 2);
                CHECK(M->level[id.r] == FUSE_LV_EPI && M->level[id.e] == FUSE_LV_EPI &&
                      M->level[id.out] == FUSE_LV_POST && M->level[id.t] == FUSE_LV_PRO);
                CHECK(M->groups[kx].nouts == 1);   // t and e stay in registers
                check_numerics(&g, M, id.out, true, &d);
                break;
            case CASE_VIEW_READ:
            case CASE_GEMM_BETWEEN:
            case CASE_TOO_MANY_INS:
                // the [B,T,1] group still merges; the output group keeps its own kernel
                CHECK_MSG(M->nmerged == 1 && M->group_of[id.r] == kx && M->group_of[id.out] != kx,
                          "%s: only the rsqrt group merges (%d merged)", case_name[c], M->nmerged);
                if (c == CASE_TOO_MANY_INS) CHECK(P->groups[P->group_of[id.out]].nins == 32);
                for (int gi = 0; gi < M->ngroups; gi++)
                    CHECK_MSG(M->groups[gi].nins <= FUSE_MAX_INS, "%s: group %d reads %d inputs", case_name[c], gi,
                              M->groups[gi].nins);
                break;
            case CASE_PULL:
                // the [B,T,8] group's reader, the row reduction, joins it while planning (the open
                // group made last: fuse.c place_fused); the rsqrt group is pulled in
                CHECK_MSG(P->ngroups == 3 && M->nmerged == 1 && M->ngroups == 2 && M->group_of[id.r] == kx &&
                              M->group_of[id.out] == kx && M->group_of[id.t] != kx && P->group_of[id.out] == P->group_of[id.s],
                          "pulled: the rsqrt and [B,T,8] groups join the row reduction (%d -> %d groups)", P->ngroups,
                          M->ngroups);
                CHECK(M->level[id.r] == FUSE_LV_EPI && M->level[id.e] == FUSE_LV_EPI && M->level[id.out] == FUSE_LV_POST);
                CHECK(M->step_of[id.out] == M->step_of[id.s] && M->step_of[id.s] > M->step_of[id.t]);
                check_numerics(&g, M, id.out, false, &d);
                break;
            case CASE_PULL_VIEW:
                // the view of the [B,T,8] value follows that group, which the reduction joined while
                // planning (a view closes no group): the rsqrt group is pulled in as without it
                CHECK_MSG(P->ngroups == 3 && M->nmerged == 1 && M->ngroups == 2 && M->group_of[id.r] == kx &&
                              M->group_of[id.out] == kx,
                          "pull with a view between: as without it (%d merged)", M->nmerged);
                break;
            case CASE_FWD_BWD:
                CHECK_MSG(M->nmerged == 0 && M->group_of[id.r] != kx && M->group_of[id.out] != kx,
                          "forward/backward: nothing merges into the forward reduction (%d merged)", M->nmerged);
                break;
            case CASE_N: break;
            }
        }
        fuse_plan_free(&merged);
        fuse_plan_free(&plain);
        ir_graph_free(&g);
        diag_free(&d);
    }
}

// Backward rsqrt nodes (one per RMSNorm backward: the recomputed 1/rms) in kernels without a
// reduction, and the norm backwards that are one kernel: the rsqrt's group holds a sum_to and
// a member over the domain reading the reduced values (POST).
static void count_norms(const IrGraph *g, const FusePlan *p, int *norms, int *lone, int *one_kernel) {
    *norms = *lone = *one_kernel = 0;
    for (int i = 0; i < g->n; i++) {
        if (g->nodes[i].op != IR_RSQRT || !g->nodes[i].backward || p->group_of[i] < 0) continue;
        (*norms)++;
        const FuseGroup *gr = &p->groups[p->group_of[i]];
        if (!gr->has_reduce) {
            (*lone)++;
            continue;
        }
        bool sum_to = false, post = false;
        for (int m = 0; m < gr->nnodes; m++) {
            sum_to |= g->nodes[gr->nodes[m]].op == IR_SUM_TO;
            post |= p->level[gr->nodes[m]] == FUSE_LV_POST;
        }
        *one_kernel += sum_to && post;
    }
}

static void test_spec(const char *path) {
    GpuTestSpec S;
    FusePlan merged, plain;
    FuseOptions off = {.no_merge = true};
    bool ok = gpu_test_spec_plans(&S, path, &off, &merged, &plain);
    CHECK_MSG(ok, "%s compiles and plans", path);
    if (ok) {
        const IrGraph *g = &S.g;
        int np, lp, op, nm, lm, om;
        count_norms(g, &plain, &np, &lp, &op);
        count_norms(g, &merged, &nm, &lm, &om);
        int lone_red_p = 0, lone_red_m = 0;   // kernels without a reduction over some reduction's R
        for (int pass = 0; pass < 2; pass++) {
            const FusePlan *p = pass ? &merged : &plain;
            int *cnt = pass ? &lone_red_m : &lone_red_p;
            for (int a = 0; a < p->ngroups; a++) {
                if (p->groups[a].has_reduce || !p->groups[a].nnodes || !g->nodes[p->groups[a].nodes[0]].backward)
                    continue;
                bool hit = false;
                for (int b = 0; b < p->ngroups && !hit; b++)
                    hit = p->groups[b].has_reduce && ir_shape_eq(&p->groups[b].rshape, &p->groups[a].dom) &&
                          p->groups[b].rshape.rank > 0 && !ir_shape_eq(&p->groups[b].dom, &p->groups[a].dom);
                *cnt += hit;
            }
        }
        printf("%s: %d RMSNorm backwards; kernel launches %d -> %d (%d groups merged), unique kernels %d -> %d; "
               "backward rsqrt kernels without a reduction %d -> %d; norms in one kernel %d -> %d; backward kernels "
               "over a reduction's shape %d -> %d\n",
               path, nm, plain.nsteps_kind[FUSE_KERNEL], merged.nsteps_kind[FUSE_KERNEL], merged.nmerged,
               plain.nkernels, merged.nkernels, lp, lm, op, om, lone_red_p, lone_red_m);
        CHECK_MSG(np == nm && nm >= 3, "the spec has RMSNorm backwards (%d)", nm);
        CHECK_MSG(lp == np && op == 0, "without merging each norm backward has a lone rsqrt kernel (%d of %d)", lp, np);
        CHECK_MSG(lm == 0 && om == nm, "merged: every norm backward is one kernel (%d of %d; %d lone)", om, nm, lm);
        CHECK_MSG(lone_red_m == 0, "no backward elementwise kernel over a reduction's shape remains (%d)", lone_red_m);
        // (the walk itself puts a norm's [B,T,H] gradient group into its row reduction when that is
        // the open group made last: full fine-tuning's norms, one launch each without merging)
        CHECK_MSG(plain.nsteps_kind[FUSE_KERNEL] - merged.nsteps_kind[FUSE_KERNEL] >= nm,
                  "launches drop by at least 1 per norm: %d -> %d", plain.nsteps_kind[FUSE_KERNEL],
                  merged.nsteps_kind[FUSE_KERNEL]);
        CHECK(merged.nkernels <= plain.nkernels);
        gpu_test_check_plan_leaner(g, &merged, &plain, path, &S.d);
    }
    gpu_test_spec_plans_free(&S, &merged, &plain);
}

int main(int argc, char **argv) {
    test_cases();
    for (int i = 1; i < argc; i++) test_spec(argv[i]);
    return test_done("gpu.normfuse");
}
