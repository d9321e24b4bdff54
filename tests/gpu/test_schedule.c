// test_schedule.c — the fuser's sinking (fuse.h: a group moved later so that a reader whose
// other inputs come from later steps joins it). On small hand-built graphs: the legal case
// (SwiGLU's silu(gate) sunk past the up projection into the mul) merges, and its merged kernel
// (fuse_eval_group) equals the interpreter; the cases where sinking is illegal or not worth it
// keep the plan of the nodes' order exactly — the value read by the GEMM between (and by the
// reader), a reduction's value read by the GEMM between, a value read by two kernels (a permute
// kernel between), an input that sinking would hold longer than it is held, a reader too many
// steps away. On the specs given on the command line: no fused kernel is a lone silu, every
// forward silu shares its kernel with the mul reading it; in fp32 (tiny-llama-lora) sinking does
// it: launches drop by at least the layer count, and the planned activations at B=8 T=1024 get no
// larger; under bf16 (Qwen3-0.6B LoRA) autocast already emits silu next to the mul (autocast.h).
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

// Whether plans a and b have the same steps (kinds, nodes, group members), in the same order.
static bool same_plan(const FusePlan *a, const FusePlan *b) {
    if (a->nsteps != b->nsteps) return false;
    for (int s = 0; s < a->nsteps; s++) {
        const FuseStep *x = &a->steps[s], *y = &b->steps[s];
        if (x->kind != y->kind || x->node != y->node) return false;
        if (x->kind != FUSE_KERNEL) continue;
        const FuseGroup *gx = &a->groups[x->group], *gy = &b->groups[y->group];
        if (gx->nnodes != gy->nnodes || memcmp(gx->nodes, gy->nodes, (size_t)gx->nnodes * sizeof *gx->nodes)) return false;
    }
    return true;
}

// A graph of the cases below: x (B, T, 8); g1 = x W1ᵀ; a = silu(g1); ...; c = a * (the other
// operand). Returns a and c in *a, *c.
typedef enum Case {
    CASE_LEGAL,       // u = x W2ᵀ between; g1 is an output (held anyway): sinks
    CASE_NOT_HELD,    // the same, g1 read by silu only: sinking would hold it past the GEMM
    CASE_GEMM_READS,  // m = a W2ᵀ between: the GEMM reads the value itself
    CASE_REDUCTION,   // s = mean(a) joins a's group; m = s W3ᵀ between reads the reduction
    CASE_TWO_KERNELS, // t = permute(a) (a kernel of its own) between, then u = x W2ᵀ
    CASE_TOO_FAR,     // u = 17 chained products of x: more steps between than FUSE_SINK_MAX_STEPS
    CASE_N
} Case;

static const char *case_name[CASE_N] = {"legal", "input not held", "gemm reads it", "reduction read by the gemm",
                                        "read by two kernels", "too far"};

static void build_case(IrGraph *g, Case c, IrId *a_out, IrId *c_out, IrId *u_out) {
    IrShape s3 = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(8));
    IrId x = ir_input(g, "x", IR_F32, s3, L);
    IrId w1 = ir_param(g, "w1", IR_F32, ir_shape2(ir_dim(8), ir_dim(8)), false, L);
    IrId w2 = ir_param(g, "w2", IR_F32, ir_shape2(ir_dim(8), ir_dim(8)), false, L);
    IrId w3 = ir_param(g, "w3", IR_F32, ir_shape2(ir_dim(8), ir_dim(1)), false, L);
    IrId g1 = ir_linear(g, x, w1, L);
    IrId a = ir_unary(g, IR_SILU, g1, L), other = IR_NONE;
    switch (c) {
    case CASE_LEGAL:
    case CASE_NOT_HELD: other = ir_linear(g, x, w2, L); break;
    case CASE_GEMM_READS: other = ir_linear(g, a, w2, L); break;
    case CASE_REDUCTION: other = ir_linear(g, ir_reduce(g, IR_MEAN, a, -1, L), w3, L); break;
    case CASE_TWO_KERNELS: {
        int perm[3] = {0, 2, 1};
        ir_add_output(g, ir_permute(g, a, perm, L), "t");
        other = ir_linear(g, x, w2, L);
        break;
    }
    case CASE_TOO_FAR:
        other = x;
        for (int k = 0; k < 17; k++) other = ir_linear(g, other, w2, L);
        break;
    case CASE_N: break;
    }
    IrId out = ir_mul(g, a, other, L);
    ir_add_output(g, out, "c");
    if (c != CASE_NOT_HELD) ir_add_output(g, g1, "g1");
    ir_add_output(g, other, "u");
    *a_out = a, *c_out = out, *u_out = other;
}

// The legal case's merged kernel against the interpreter, on random inputs.
static void check_merged_numerics(IrGraph *g, const FusePlan *p, IrId c, Diag *d) {
    int64_t sym[IR_NSYMS] = {2, 5};
    CpuProgram *prog = cpu_program_new(g, IR_F32, d);
    CHECK(prog != NULL);
    if (!prog) return;
    uint64_t rng = 0x5eed;
    float *bufs[8] = {0};
    int nb = 0;
    for (int i = 0; i < g->n && nb < 8; i++) {
        const IrNode *n = &g->nodes[i];
        if (!ir_is_leaf(n)) continue;
        int64_t numel = ir_shape_numel(&n->shape, sym);
        float *v = malloc((size_t)numel * sizeof *v);
        for (int64_t k = 0; k < numel; k++) v[k] = 4 * gpu_test_frand(&rng);
        CHECK(cpu_bind(prog, i, v, (size_t)numel * sizeof *v) == 0);
        bufs[nb++] = v;
    }
    CHECK(cpu_run(prog, sym, 1) == 0);
    const CpuTensor *g1 = cpu_output_named(prog, "g1"), *u = cpu_output_named(prog, "u"),
                    *want = cpu_output_named(prog, "c");
    int gi = p->group_of[c];
    CHECK(g1 && u && want && gi >= 0);
    if (g1 && u && want && gi >= 0) {
        const FuseGroup *gr = &p->groups[gi];
        CHECK(gr->nins == 2 && gr->nouts == 1 && gr->outs[0] == c);
        const void *ins[2];
        IrId g1_id = IR_NONE;
        for (int o = 0; o < g->nouts; o++)
            if (!strcmp(g->outs[o].name, "g1")) g1_id = g->outs[o].id;
        for (int k = 0; k < gr->nins && k < 2; k++) ins[k] = gr->ins[k] == g1_id ? g1->data : u->data;
        float got[2 * 5 * 8];
        void *outs[1] = {got};
        CHECK(fuse_eval_group(p, gi, sym, 1, ins, outs, d) == 0);
        double err = gpu_test_relerr(got, want->data, 2 * 5 * 8);
        CHECK_MSG(err <= 1e-6, "merged silu * u vs the interpreter: %g", err);
        printf("schedule: merged kernel vs interpreter: worst relative error %.3g\n", err);
    }
    for (int k = 0; k < nb; k++) free(bufs[k]);
    cpu_program_free(prog);
}

static void test_cases(void) {
    for (int c = 0; c < CASE_N; c++) {
        Diag d;
        diag_init(&d, stderr);
        IrGraph g;
        ir_graph_init(&g, &d, IR_F32);
        IrId a, out, u;
        build_case(&g, (Case)c, &a, &out, &u);
        CHECK_MSG(g.errors == 0 && ir_verify(&g), "%s: the graph builds", case_name[c]);
        FusePlan sunk, plain;
        FuseOptions off = {.no_sink = true};
        bool ok = fuse_plan_with(&g, NULL, &d, &sunk) == 0 && fuse_plan_with(&g, &off, &d, &plain) == 0;
        CHECK_MSG(ok, "%s: both plans build (and pass fuse_verify)", case_name[c]);
        if (ok) {
            CHECK_MSG(plain.nsunk == 0 && plain.group_of[a] != plain.group_of[out],
                      "%s: in node order a and its reader are apart", case_name[c]);
            if (c == CASE_LEGAL) {
                CHECK_MSG(sunk.nsunk == 1 && sunk.group_of[a] == sunk.group_of[out], "legal: silu sinks into the mul");
                CHECK(sunk.nsteps_kind[FUSE_KERNEL] == plain.nsteps_kind[FUSE_KERNEL] - 1);
                // the order: both products, then the one kernel
                CHECK(sunk.nsteps == 3 && sunk.steps[2].kind == FUSE_KERNEL && sunk.step_of[u] == 1);
                CHECK(!same_plan(&sunk, &plain));
                check_merged_numerics(&g, &sunk, out, &d);
            } else {
                CHECK_MSG(sunk.nsunk == 0 && same_plan(&sunk, &plain), "%s: the order is kept (%d sunk)",
                          case_name[c], sunk.nsunk);
                CHECK_MSG(sunk.group_of[a] != sunk.group_of[out], "%s: a and its reader stay apart", case_name[c]);
            }
        }
        fuse_plan_free(&sunk);
        fuse_plan_free(&plain);
        ir_graph_free(&g);
        diag_free(&d);
    }
}

static int64_t launches(const FusePlan *p) { return p->nsteps_kind[FUSE_KERNEL]; }

static void test_spec(const char *path) {
    GpuTestSpec S;
    FusePlan sunk, plain;
    FuseOptions off = {.no_sink = true};
    bool ok = gpu_test_spec_plans(&S, path, &off, &sunk, &plain);
    CHECK_MSG(ok, "%s compiles and plans", path);
    if (ok) {
        const IrGraph *g = &S.g;
        int silus = 0, lone_sunk = 0, lone_plain = 0, with_mul = 0;
        for (int i = 0; i < g->n; i++) {
            const IrNode *n = &g->nodes[i];
            if (n->op != IR_SILU || n->backward) continue;
            silus++;
            int gs = sunk.group_of[i], gp = plain.group_of[i];
            lone_sunk += gs >= 0 && sunk.groups[gs].nnodes == 1;
            lone_plain += gp >= 0 && plain.groups[gp].nnodes == 1;
            bool mul = false;   // a mul reading it in its kernel
            for (int j = i + 1; j < g->n && !mul; j++)
                mul = g->nodes[j].op == IR_MUL && sunk.group_of[j] == gs &&
                      (g->nodes[j].in[0] == i || g->nodes[j].in[1] == i);
            with_mul += mul;
        }
        for (int gi = 0; gi < sunk.ngroups; gi++)
            lone_sunk += sunk.groups[gi].nnodes == 1 && g->nodes[sunk.groups[gi].nodes[0]].op == IR_SILU &&
                         g->nodes[sunk.groups[gi].nodes[0]].backward;
        printf("%s: %d forward silus; kernel launches %lld -> %lld (%d groups sunk), unique kernels %d -> %d; lone "
               "silu kernels %d -> %d\n",
               path, silus, (long long)launches(&plain), (long long)launches(&sunk), sunk.nsunk, plain.nkernels,
               sunk.nkernels, lone_plain, lone_sunk);
        // under precision = bf16, gate and up are bf16 linear outputs (autocast.h) and autocast
        // itself emits silu (with gate's widening cast) just before the mul, after up's products:
        // no sinking is needed there, silu shares the mul's kernel in node order already
        bool lowp = false;
        for (int i = 0; i < g->n && !lowp; i++) lowp = g->nodes[i].op == IR_MATMUL && g->nodes[i].dtype == IR_BF16 && !g->nodes[i].backward;
        CHECK_MSG(silus >= 2, "the spec has SwiGLU layers (%d silus)", silus);
        CHECK_MSG(lone_plain == (lowp ? 0 : silus), "in node order every forward silu is a kernel of its own (%d of %d; "
                  "none with bf16 linear outputs)", lone_plain, silus);
        CHECK_MSG(lone_sunk == 0, "no fused kernel is a lone silu (%d)", lone_sunk);
        CHECK_MSG(with_mul == silus, "every forward silu shares its kernel with the mul reading it (%d of %d)",
                  with_mul, silus);
        CHECK_MSG(launches(&plain) - launches(&sunk) >= (lowp ? 0 : silus),
                  "launches drop by at least the layers (fp32): %lld -> %lld", (long long)launches(&plain),
                  (long long)launches(&sunk));
        CHECK(sunk.nkernels <= plain.nkernels);
        if (!lowp) gpu_test_check_plan_leaner(g, &sunk, &plain, path, &S.d);   // the memory plan gets no worse
    }
    gpu_test_spec_plans_free(&S, &sunk, &plain);
}

int main(int argc, char **argv) {
    test_cases();
    for (int i = 1; i < argc; i++) test_spec(argv[i]);
    return test_done("gpu.schedule");
}
