// test_fuse_eval.c — the fused kernels' logic against the unfused CPU interpreter: every fused
// group of a plan is evaluated by fuse_eval_group (the generated kernel's phases and indexing,
// on the CPU) from the interpreter's values of its inputs, and its outputs are compared with the
// interpreter's values of the same nodes, on random inputs. Graphs: hand-built ones covering
// each fusable op, reductions over leading / middle / trailing axes, broadcasts, bf16 casts and
// dropout; and the training graphs (forward + backward) of the specs given on the command line.
// Also checks the plan's shape: rmsnorm is one kernel, identical layers share kernels.
#include "autodiff.h"
#include "check.h"
#include "cpu.h"
#include "fuse.h"
#include "gpu_test_util.h"
#include "ir.h"
#include "load.h"
#include "lower.h"
#ifdef TRLC_HAVE_LORA
#include "lora.h"
#endif
#include "test.h"
#include "codegen_cuda.h"
#ifdef TRLC_HAVE_CUDA
#include "rt_cuda.h"
#endif
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x1234567;
static double urand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng >> 11) * (1.0 / 9007199254740992.0);
}

typedef struct Buf {
    void *data;
    size_t bytes;
} Buf;

// Binds every leaf to random data; returns the buffers (indexed by node id).
static Buf *bind_random(CpuProgram *prog, const IrGraph *g, const int64_t *sym) {
    Buf *bufs = calloc((size_t)g->n, sizeof *bufs);
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op != IR_INPUT && n->op != IR_PARAM) continue;
        int64_t numel = ir_shape_numel(&n->shape, sym);
        if (n->dtype == IR_I32) {
            int32_t *v = malloc((size_t)numel * 4 + 4);
            int64_t T = sym[IR_SYM_T];
            for (int64_t k = 0; k < numel; k++) {
                if (n->name && !strcmp(n->name, "pos")) v[k] = (int32_t)(k % T);
                else if (n->name && !strcmp(n->name, "labels") && urand() < 0.2) v[k] = -100;
                else v[k] = (int32_t)(urand() * 300);   // < every test vocabulary
            }
            bufs[i].data = v, bufs[i].bytes = (size_t)numel * 4;
        } else {
            float *v = malloc((size_t)numel * 4 + 4);
            bool norm = n->name && strstr(n->name, "norm");
            for (int64_t k = 0; k < numel; k++)
                v[k] = norm ? (float)(0.8 + 0.4 * urand()) : (float)((urand() - 0.5) * (n->op == IR_PARAM ? 0.4 : 2.0));
            bufs[i].data = v, bufs[i].bytes = (size_t)numel * 4;
        }
        if (cpu_bind(prog, i, bufs[i].data, bufs[i].bytes) != 0) return NULL;
    }
    return bufs;
}

// Compares every fused group of g's plan with the interpreter. Returns the worst relative error.
static double check_graph(const char *what, IrGraph *g, Diag *d, int64_t B, int64_t T, int *ngroups_out,
                          FusePlan *plan_out) {
    FusePlan plan;
    CHECK(fuse_plan(g, d, &plan) == 0);
    // every group input and output that is not a leaf becomes a graph output the interpreter keeps
    int first_out = g->nouts;
    for (int gi = 0; gi < plan.ngroups; gi++) {
        const FuseGroup *gr = &plan.groups[gi];
        for (int k = 0; k < gr->nins + gr->nouts; k++) {
            IrId id = k < gr->nins ? gr->ins[k] : gr->outs[k - gr->nins];
            IrOp op = g->nodes[id].op;
            if (op == IR_INPUT || op == IR_PARAM) continue;
            char name[32];
            snprintf(name, sizeof name, "fz%d", id);
            ir_add_output(g, id, name);
        }
    }
    (void)first_out;
    int64_t sym[IR_NSYMS] = {B, T};
    CpuProgram *prog = cpu_program_new(g, IR_F32, d);
    CHECK(prog != NULL);
    if (!prog) return 1e30;
    Buf *bufs = bind_random(prog, g, sym);
    CHECK(bufs != NULL);
    const uint64_t step = 3;
    int rc = cpu_run(prog, sym, step);
    CHECK(rc == 0);
    double worst = 0;
    int bad = 0;
    for (int gi = 0; gi < plan.ngroups && rc == 0; gi++) {
        const FuseGroup *gr = &plan.groups[gi];
        const void *ins[FUSE_MAX_ARGS];
        void *outs[FUSE_MAX_ARGS];
        for (int k = 0; k < gr->nins; k++) {
            IrId id = gr->ins[k];
            if (bufs[id].data) {
                ins[k] = bufs[id].data;
            } else {
                char name[32];
                snprintf(name, sizeof name, "fz%d", id);
                const CpuTensor *t = cpu_output_named(prog, name);
                ins[k] = t ? t->data : NULL;
            }
        }
        for (int k = 0; k < gr->nouts; k++) {
            int64_t numel = ir_shape_numel(&g->nodes[gr->outs[k]].shape, sym);
            outs[k] = calloc((size_t)numel + 1, 4);
        }
        CHECK(fuse_eval_group(&plan, gi, sym, step, ins, outs, d) == 0);
        for (int k = 0; k < gr->nouts; k++) {
            IrId id = gr->outs[k];
            char name[32];
            snprintf(name, sizeof name, "fz%d", id);
            const CpuTensor *t = cpu_output_named(prog, name);
            CHECK(t != NULL);
            int64_t numel = ir_shape_numel(&g->nodes[id].shape, sym);
            for (int64_t e = 0; t && e < numel; e++) {
                double a, b;
                if (g->nodes[id].dtype == IR_I32) {
                    a = ((int32_t *)outs[k])[e];
                    b = ((const int32_t *)t->data)[e];
                } else {
                    a = ((float *)outs[k])[e];
                    b = ((const float *)t->data)[e];
                }
                double err = fabs(a - b) / (1e-3 + fabs(b));
                if (!(err <= worst)) worst = err;
                if (!(err <= 2e-4) && bad++ < 5)
                    fprintf(stderr, "%s: group %d (kernel %s) output %%%d element %lld: fused %.9g, interpreter %.9g\n",
                            what, gi, plan.kernels[gr->kernel].name, id, (long long)e, a, b);
            }
            free(outs[k]);
        }
    }
    CHECK_MSG(bad == 0, "%s: %d elements differ", what, bad);
    if (strncmp(what, "fuzz", 4))
        printf("%s: %d nodes, %d steps, %d fused groups -> %d unique kernels; max rel. error fused vs interpreter %.3g\n",
               what, g->n, plan.nsteps, plan.ngroups, plan.nkernels, worst);
    if (ngroups_out) *ngroups_out = plan.ngroups;
    for (int i = 0; i < g->n; i++) free(bufs ? bufs[i].data : NULL);
    free(bufs);
    cpu_program_free(prog);
    if (plan_out) *plan_out = plan;
    else fuse_plan_free(&plan);
    return worst;
}

// Hand-built graphs: each fusable op, reductions along every axis kind, broadcasting.
static void test_handbuilt(void) {
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    GpuTestHandbuilt h;
    gpu_test_handbuilt_graph(&g, &h);
    CHECK(g.errors == 0);
    FusePlan plan;
    int ngroups = 0;
    double worst = check_graph("handbuilt", &g, &d, 3, 7, &ngroups, &plan);
    CHECK(worst <= 2e-4);
    // rmsnorm: mean, rsqrt and both muls in one group
    int gm = plan.group_of[h.ms];
    CHECK(gm >= 0 && plan.group_of[h.r] == gm && plan.group_of[h.nx] == gm);
    CHECK(plan.groups[gm].has_reduce);
    // the written-out softmax: the exp is computed in the max's group or its sum's
    CHECK(plan.group_of[h.sm] >= 0);
    // fuse_verify notices a plan whose steps are out of order or that drops an output
    FILE *sink = tmpfile();
    Diag d2;
    diag_init(&d2, sink);
    CHECK(fuse_verify(&plan, &d2) == 0);
    FuseStep first = plan.steps[0];
    plan.steps[0] = plan.steps[plan.nsteps - 1];
    plan.steps[plan.nsteps - 1] = first;
    CHECK(fuse_verify(&plan, &d2) > 0);
    plan.steps[plan.nsteps - 1] = plan.steps[0];
    plan.steps[0] = first;
    CHECK(fuse_verify(&plan, &d2) == 0);
    plan.groups[gm].nouts--;   // the group no longer writes one of the values read elsewhere
    CHECK(fuse_verify(&plan, &d2) > 0);
    plan.groups[gm].nouts++;
    CHECK(d2.errors > 0);
    diag_free(&d2);
    fclose(sink);
    fuse_plan_free(&plan);
    // another batch shape, same plan: no recompilation is needed, the results still agree
    ir_graph_free(&g);
    diag_free(&d);
}


// Random graphs of fusable ops over broadcast-compatible shapes: the grouping rules (levels,
// phases, the step-order rule, broadcasts of reduced values) against the interpreter.
static IrId pick(const IrId *v, int n) { return v[(int)(urand() * n) % n]; }

static void test_fuzz(int ngraphs) {
    int groups = 0, reduce_groups = 0, failures = 0, epi = 0, post = 0, multi_red = 0, nvrtc_kernels = 0;
    double worst = 0;
    for (int it = 0; it < ngraphs; it++) {
        Diag d;
        diag_init(&d, stderr);
        Loc L = {0, 0, 0};
        IrGraph g;
        ir_graph_init(&g, &d, IR_F32);
        IrShape shapes[5];
        IrId v[200];
        int n = gpu_test_fuzz_inputs(&g, it, shapes, v);
        const IrShape full = shapes[0];
        v[n++] = ir_input(&g, "in5", IR_F32, full, L);
        int nops = 6 + (int)(urand() * 30);
        for (int k = 0; k < nops && n < 190; k++) {
            double r = urand();
            IrId x = pick(v, n), y = pick(v, n), z = IR_NONE;
            const IrNode *xn = ir_node(&g, x);
            if (r < 0.3) {
                IrOp un[] = {IR_NEG, IR_TANH, IR_SIGMOID, IR_SILU, IR_SQUARE, IR_ABS, IR_RELU, IR_GELU, IR_SOFTPLUS,
                             IR_LOG_SIGMOID};
                z = ir_unary(&g, un[(int)(urand() * 10) % 10], x, L);
                if (urand() < 0.3) z = ir_unary(&g, IR_TANH, z, L);   // keeps values bounded
            } else if (r < 0.6) {
                IrOp bin[] = {IR_ADD, IR_SUB, IR_MUL, IR_MAXIMUM, IR_MINIMUM};
                z = ir_binary(&g, bin[(int)(urand() * 5) % 5], x, y, L);
            } else if (r < 0.65) {
                z = ir_div(&g, x, ir_add(&g, ir_unary(&g, IR_ABS, y, L), ir_scalar(&g, 1.0, L), L), L);
            } else if (r < 0.7) {
                z = ir_where(&g, ir_binary(&g, IR_LT, x, y, L), x, pick(v, n), L);
            } else if (r < 0.85 && xn->shape.rank == 3) {
                IrOp red[] = {IR_SUM, IR_MEAN, IR_MAX};
                z = ir_reduce(&g, red[(int)(urand() * 3) % 3], x, (int)(urand() * 3) % 3, L);
                if (urand() < 0.5) z = ir_mul(&g, z, ir_scalar(&g, 0.25, L), L);
            } else if (r < 0.93 && ir_shape_eq(&xn->shape, &full)) {
                z = ir_sum_to(&g, x, shapes[1 + (int)(urand() * 4) % 4], L);
            } else if (r < 0.97 && xn->shape.rank == 3) {
                // a permute and its inverse (the first is a copy, the second may fuse as a load)
                static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
                const int *pp = perms[(int)(urand() * 6) % 6];
                int inv[3];
                for (int i = 0; i < 3; i++) inv[pp[i]] = i;
                IrId t = ir_permute(&g, x, pp, L);
                if (urand() < 0.5) t = ir_unary(&g, IR_TANH, t, L);
                z = ir_add(&g, ir_permute(&g, t, inv, L), pick(v, n), L);
            } else if (xn->shape.rank == 3 && ir_dim_is_one(xn->shape.d[2])) {
                z = ir_broadcast_to(&g, x, full, L);
            } else {
                z = ir_add(&g, x, ir_scalar(&g, 0.5, L), L);
            }
            if (z != IR_NONE) v[n++] = z;
        }
        CHECK(g.errors == 0);
        for (int k = n - 1, outs = 0; k >= 6 && outs < 4; k--, outs++) {
            char name[16];
            snprintf(name, sizeof name, "o%d", k);
            ir_add_output(&g, v[k], name);
        }
        char what[32];
        snprintf(what, sizeof what, "fuzz graph %d", it);
        FusePlan plan;
        int before = test_failed;
        int ng = 0;
        double w = check_graph(what, &g, &d, 2, 3, &ng, &plan);
        if (test_failed != before) failures++;
        if (!(w <= worst)) worst = w;
        groups += ng;
        for (int i = 0; i < plan.ngroups; i++) {
            reduce_groups += plan.groups[i].has_reduce;
            for (int m = 0; m < plan.groups[i].nnodes; m++) {
                FuseLevel lv = (FuseLevel)plan.level[plan.groups[i].nodes[m]];
                epi += lv == FUSE_LV_EPI, post += lv == FUSE_LV_POST, multi_red += lv == FUSE_LV_RED;
            }
            multi_red -= plan.groups[i].has_reduce;   // reductions beyond the first
        }
#ifdef TRLC_HAVE_CUDA
        // the generated CUDA of the first graphs' kernels compiles (odd shapes: H = 1, rank-1/2
        // inputs broadcast, reductions of every kind)
        if (it < 16) {
            RtCudaCache cache;
            rt_cuda_cache_init(&cache, &d);
            RtCudaProgram progs[64];
            char *src[64];
            int np = 0;
            for (int k = 0; k < plan.nkernels && np < 64; k++, np++) {
                src[np] = cg_cuda_kernel(&plan, k, &d);
                memset(&progs[np], 0, sizeof progs[np]);
                progs[np].name = plan.kernels[k].name;
                progs[np].source = src[np] ? src[np] : "";
            }
            CHECK(rt_cuda_compile(&cache, progs, np, "sm_90", false, 2, &d) == 0);
            nvrtc_kernels += np;
            for (int k = 0; k < np; k++) rt_cuda_program_free(&progs[k]), free(src[k]);
        }
#endif
        fuse_plan_free(&plan);
        ir_graph_free(&g);
        diag_free(&d);
    }
    if (nvrtc_kernels) printf("fuzz: the %d kernels of the first 16 graphs compile with NVRTC for sm_90\n", nvrtc_kernels);
    printf("fuzz: %d random graphs, %d fused groups (%d with reductions, %d extra reductions sharing a group; "
           "%d epilogue and %d post nodes), %d failing graphs, max rel. error %.3g\n",
           ngraphs, groups, reduce_groups, multi_red, epi, post, failures, worst);
    CHECK(reduce_groups > 100 && epi > 100 && post > 100 && multi_red > 10);   // the generator reaches every phase
}

// A chain reading 50 different inputs: groups split at FUSE_MAX_INS inputs, results unchanged.
static void test_many_inputs(void) {
    Diag d;
    diag_init(&d, stderr);
    Loc L = {0, 0, 0};
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    IrShape s3 = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(4));
    IrId acc = IR_NONE;
    for (int i = 0; i < 50; i++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", i);
        IrId x = ir_input(&g, name, IR_F32, s3, L);
        acc = acc == IR_NONE ? ir_unary(&g, IR_TANH, x, L) : ir_add(&g, acc, x, L);
    }
    ir_add_output(&g, ir_reduce(&g, IR_SUM, acc, -1, L), "out");
    FusePlan plan;
    int ng = 0;
    double w = check_graph("50 inputs", &g, &d, 2, 3, &ng, &plan);
    CHECK(w <= 2e-4);
    CHECK(plan.ngroups >= 2);
    for (int i = 0; i < plan.ngroups; i++) CHECK(plan.groups[i].nins <= FUSE_MAX_INS);
    fuse_plan_free(&plan);
    ir_graph_free(&g);
    diag_free(&d);
}

static int compile_spec(const char *path, Diag *d, Arena *a, IrGraph *g) {
    LoadedSpec spec = {0};
    CheckedSpec *cs = arena_alloc(a, sizeof *cs);
    if (load_spec(d, a, path, &spec) != 0 || check_spec(d, a, &spec, cs) != 0) return -1;
    LowerResult res;
    if (lower_model(d, a, &spec, cs, -1, g, &res) != 0) return -1;
#ifdef TRLC_HAVE_LORA
    const CheckedModel *m = &cs->models[cs->policy];
    if (m->has_lora) {
        LoraOptions lo = {0};
        lo.rank = m->lora_rank;
        lo.alpha = m->lora_alpha;
        lo.dropout = 0.25;   // exercise dropout inside the fused graph
        lo.train_dropout = true;
        lo.rslora = m->lora_rslora;
        lo.all_linear = m->lora_all_linear;
        lo.targets = m->lora_targets;
        lo.ntargets = m->lora_ntargets;
        lo.seed = 5;
        LoraResult lr;
        if (lora_apply(d, a, g, &res, &lo, &lr) != 0) return -1;
    }
#endif
    return ad_run_passes(g, NULL);
}

static void test_spec(const char *path) {
    Diag d;
    diag_init(&d, stderr);
    Arena a = {0};
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    int rc = compile_spec(path, &d, &a, &g);
    CHECK_MSG(rc == 0, "%s does not compile", path);
    if (rc == 0) {
        FusePlan plan;
        double worst = check_graph(path, &g, &d, 2, 6, NULL, &plan);
        CHECK(worst <= 2e-4);
        // identical layers share kernels: fewer unique kernels than fused groups
        CHECK_MSG(plan.nkernels < plan.ngroups, "%d kernels for %d groups", plan.nkernels, plan.ngroups);
        fuse_plan_free(&plan);
    }
    ir_graph_free(&g);
    arena_free(&a);
    diag_free(&d);
}

int main(int argc, char **argv) {
    test_handbuilt();
    test_many_inputs();
    test_fuzz(400);
    for (int i = 1; i < argc; i++) test_spec(argv[i]);
    return test_done("gpu.fuse_eval");
}
