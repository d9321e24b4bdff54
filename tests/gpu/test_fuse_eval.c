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

// ---------------------------------------------------------------------------------------------
// fusing across reshapes (fuse.h, "Across views")

static bool in_outs(const FuseGroup *gr, IrId id) {
    for (int k = 0; k < gr->nouts; k++)
        if (gr->outs[k] == id) return true;
    return false;
}

#ifdef TRLC_HAVE_CUDA
// Every kernel of the plan compiles with NVRTC for sm_80 and sm_90; returns how many.
static int nvrtc_plan(const FusePlan *plan, Diag *d) {
    RtCudaCache cache;
    rt_cuda_cache_init(&cache, d);
    RtCudaProgram progs[64];
    char *src[64];
    int np = 0;
    for (int k = 0; k < plan->nkernels && np < 64; k++, np++) {
        src[np] = cg_cuda_kernel(plan, k, d);
        memset(&progs[np], 0, sizeof progs[np]);
        progs[np].name = plan->kernels[k].name;
        progs[np].source = src[np] ? src[np] : "";
    }
    CHECK(rt_cuda_compile(&cache, progs, np, "sm_80", false, 2, d) == 0);
    for (int k = 0; k < np; k++) rt_cuda_program_free(&progs[k]);
    memset(progs, 0, sizeof progs);
    for (int k = 0; k < np; k++) progs[k].name = plan->kernels[k].name, progs[k].source = src[k] ? src[k] : "";
    CHECK(rt_cuda_compile(&cache, progs, np, "sm_90", false, 2, d) == 0);
    for (int k = 0; k < np; k++) rt_cuda_program_free(&progs[k]), free(src[k]);
    return np;
}
#endif

// The attention output's LoRA pattern, twice (two layers): permute [B,4,T,6] -> [B,T,4,6], cast
// to bf16 (read by a product), reshape to [B,T,24], times a [24] weight (a broadcast in the
// view's shape), dropout, plus a [B,T,24] input, cast. One kernel per layer, the f32 permute and
// the view never written, the layers sharing it; without views two kernels per layer.
static void test_views_lora(void) {
    Diag d;
    diag_init(&d, stderr);
    Loc L = {0, 0, 0};
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    IrShape s_bhtd = ir_shape4(ir_dim_b(), ir_dim(4), ir_dim_t(), ir_dim(6));
    IrShape s_bt = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(24));
    static const int perm[4] = {0, 2, 1, 3};
    IrId perm_ids[2], mul_ids[2], add_ids[2], prev = IR_NONE;
    for (int layer = 0; layer < 2; layer++) {
        char name[32];
        snprintf(name, sizeof name, "q%d", layer);
        IrId q;
        if (layer == 0) {
            q = ir_input(&g, name, IR_F32, s_bhtd, L);
        } else {   // the second layer's q from the first's output, through a product
            IrId wq = ir_param(&g, name, IR_F32, ir_shape2(ir_dim(24), ir_dim(24)), true, L);
            q = ir_reshape(&g, ir_matmul(&g, prev, wq, false, false, L), s_bhtd, L);
        }
        snprintf(name, sizeof name, "w%d", layer);
        IrId w = ir_param(&g, name, IR_F32, ir_shape1(ir_dim(24)), true, L);
        snprintf(name, sizeof name, "y%d", layer);
        IrId y = ir_input(&g, name, IR_F32, s_bt, L);
        IrId pm = ir_permute(&g, q, perm, L);
        IrId c = ir_cast(&g, pm, IR_BF16, L);
        IrId r = ir_reshape(&g, pm, s_bt, L);
        IrId m = ir_mul(&g, r, w, L);
        IrId dr = ir_dropout(&g, m, 0.25, 11 + (uint64_t)layer, L);
        IrId a = ir_add(&g, dr, y, L);
        snprintf(name, sizeof name, "bf%d", layer);
        ir_add_output(&g, c, name);
        snprintf(name, sizeof name, "o%d", layer);
        ir_add_output(&g, ir_cast(&g, a, IR_BF16, L), name);
        snprintf(name, sizeof name, "a%d", layer);   // (written by both layers: the second's product reads the first's)
        ir_add_output(&g, a, name);
        perm_ids[layer] = pm, mul_ids[layer] = m, add_ids[layer] = a, prev = a;
    }
    CHECK(g.errors == 0);
    FusePlan plan, plain;
    FuseOptions off = {.no_views = true};   // (before check_graph adds outputs to the graph)
    CHECK(fuse_plan_with(&g, &off, &d, &plain) == 0);
    double worst = check_graph("views: lora", &g, &d, 2, 5, NULL, &plan);
    CHECK(worst <= 2e-4);
    for (int layer = 0; layer < 2; layer++) {
        int gp = plan.group_of[perm_ids[layer]];
        CHECK(gp >= 0 && plan.group_of[mul_ids[layer]] == gp && plan.group_of[add_ids[layer]] == gp);
        CHECK(gp >= 0 && !in_outs(&plan.groups[gp], perm_ids[layer]));   // stays in registers
        CHECK(gp >= 0 && plan.groups[gp].nspaces == 2);
        CHECK(plain.group_of[perm_ids[layer]] != plain.group_of[mul_ids[layer]]);
        CHECK(in_outs(&plain.groups[plain.group_of[perm_ids[layer]]], perm_ids[layer]));
    }
    CHECK(plan.groups[plan.group_of[perm_ids[0]]].kernel == plan.groups[plan.group_of[perm_ids[1]]].kernel);
    CHECK_MSG(plan.nsteps_kind[FUSE_KERNEL] == 2 && plain.nsteps_kind[FUSE_KERNEL] == 4,
              "kernel launches %d with views, %d without (want 2, 4)", plan.nsteps_kind[FUSE_KERNEL],
              plain.nsteps_kind[FUSE_KERNEL]);
    // the kernel indexes the weight by the view's coordinates
    char *src = cg_cuda_kernel(&plan, plan.groups[plan.group_of[perm_ids[0]]].kernel, &d);
    CHECK(src && strstr(src, "i1_2") && strstr(src, "D1_2 = 24LL"));
    free(src);
    int nv = 0;
#ifdef TRLC_HAVE_CUDA
    nv = nvrtc_plan(&plan, &d);
#endif
    printf("views: lora: kernel launches %d -> %d, unique kernels %d -> %d%s\n", plain.nsteps_kind[FUSE_KERNEL],
           plan.nsteps_kind[FUSE_KERNEL], plain.nkernels, plan.nkernels, nv ? "; NVRTC compiles them (sm_80, sm_90)" : "");
    fuse_plan_free(&plan);
    fuse_plan_free(&plain);
    ir_graph_free(&g);
    diag_free(&d);
}

// Reductions across views. (a) A reshape that moves the reduced axes stops the group: tanh over
// [B,T,4,6], reshaped to [B,T,24] and summed along the last axis. (b) A reduction group over
// [B,T,24] (rmsnorm's mean, post product) continues through a reshape to [B,T,4,6] with an
// elementwise product by a [6] weight (post level, in the view's shape), but the sum over the
// view's last axis does not join. (c) A reduced value read through a reshape comes from memory.
static void test_views_reduce(void) {
    Diag d;
    diag_init(&d, stderr);
    Loc L = {0, 0, 0};
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    IrShape s4 = ir_shape4(ir_dim_b(), ir_dim_t(), ir_dim(4), ir_dim(6));
    IrShape s3 = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(24));
    // (a)
    IrId x = ir_input(&g, "x", IR_F32, s4, L);
    IrId a = ir_unary(&g, IR_TANH, x, L);
    IrId sa = ir_reduce(&g, IR_SUM, ir_reshape(&g, a, s3, L), -1, L);
    ir_add_output(&g, sa, "sa");
    ir_add_output(&g, ir_unary(&g, IR_NEG, a, L), "na");
    // (b)
    IrId x2 = ir_input(&g, "x2", IR_F32, s3, L);
    IrId w6 = ir_param(&g, "w6", IR_F32, ir_shape1(ir_dim(6)), true, L);
    IrId ms = ir_reduce(&g, IR_MEAN, ir_mul(&g, x2, x2, L), -1, L);
    IrId nx = ir_mul(&g, x2, ir_unary(&g, IR_RSQRT, ir_add(&g, ms, ir_scalar(&g, 1e-5, L), L), L), L);
    IrId v = ir_reshape(&g, nx, s4, L);
    IrId e = ir_mul(&g, v, w6, L);
    IrId s2 = ir_reduce(&g, IR_SUM, v, -1, L);
    ir_add_output(&g, e, "e");
    ir_add_output(&g, s2, "s2");
    // (c)
    IrId rv = ir_reshape(&g, ms, ir_shape2(ir_dim_b(), ir_dim_t()), L);
    IrId c = ir_mul(&g, rv, ir_input(&g, "z", IR_F32, ir_shape2(ir_dim_b(), ir_dim_t()), L), L);
    ir_add_output(&g, c, "c");
    CHECK(g.errors == 0);
    FusePlan plan;
    double worst = check_graph("views: reductions", &g, &d, 3, 4, NULL, &plan);
    CHECK(worst <= 2e-4);
    CHECK(plan.group_of[sa] >= 0 && plan.group_of[sa] != plan.group_of[a]);                 // (a)
    CHECK(in_outs(&plan.groups[plan.group_of[a]], a));
    int gb = plan.group_of[ms];
    CHECK(gb >= 0 && plan.group_of[nx] == gb && plan.group_of[e] == gb);                     // (b)
    CHECK(plan.level[e] == FUSE_LV_POST && plan.groups[gb].nspaces == 2);
    CHECK(plan.group_of[s2] >= 0 && plan.group_of[s2] != gb);
    CHECK(plan.group_of[c] >= 0 && plan.group_of[c] != gb);                                  // (c)
    int nv = 0;
#ifdef TRLC_HAVE_CUDA
    nv = nvrtc_plan(&plan, &d);
#endif
    printf("views: reductions: %d kernel launches; the reductions across a reshape apart%s\n",
           plan.nsteps_kind[FUSE_KERNEL], nv ? "; NVRTC compiles them (sm_80, sm_90)" : "");
    fuse_plan_free(&plan);
    ir_graph_free(&g);
    diag_free(&d);
}

// Random chains across reshapes (gpu_test_view_graph): every fused group against the interpreter.
static void test_fuzz_views(int ngraphs) {
    int multi = 0, failures = 0, groups = 0, groups_off = 0, kernels = 0;
    double worst = 0;
    for (int it = 0; it < ngraphs; it++) {
        Diag d;
        diag_init(&d, stderr);
        IrGraph g;
        ir_graph_init(&g, &d, IR_F32);
        gpu_test_view_graph(&g, it, urand);
        CHECK(g.errors == 0);
        char what[32];
        snprintf(what, sizeof what, "fuzz views %d", it);
        FusePlan plan, plain;
        FuseOptions off = {.no_views = true};   // (before check_graph adds outputs to the graph)
        CHECK(fuse_plan_with(&g, &off, &d, &plain) == 0);
        int before = test_failed, ng = 0;
        double w = check_graph(what, &g, &d, 2, 3, &ng, &plan);
        if (test_failed != before) failures++;
        if (!(w <= worst)) worst = w;
        groups += plan.nsteps_kind[FUSE_KERNEL], groups_off += plain.nsteps_kind[FUSE_KERNEL];
        for (int gi = 0; gi < plan.ngroups; gi++) multi += plan.groups[gi].nspaces > 1;
#ifdef TRLC_HAVE_CUDA
        if (it < 8) kernels += nvrtc_plan(&plan, &d);
#endif
        fuse_plan_free(&plan);
        fuse_plan_free(&plain);
        ir_graph_free(&g);
        diag_free(&d);
    }
    printf("fuzz views: %d random graphs, kernel launches %d -> %d (%d groups over several views), %d failing "
           "graphs, max rel. error %.3g%s\n", ngraphs, groups_off, groups, multi, failures, worst,
           kernels ? "; the first 8 graphs' kernels compile with NVRTC" : "");
    CHECK(multi > 50 && groups < groups_off);   // the generator reaches the rule
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
        FusePlan plan, plain;
        FuseOptions off = {.no_views = true};   // (before check_graph adds outputs to the graph)
        CHECK(fuse_plan_with(&g, &off, &d, &plain) == 0);
        double worst = check_graph(path, &g, &d, 2, 6, NULL, &plan);
        CHECK(worst <= 2e-4);
        // identical layers share kernels: fewer unique kernels than fused groups
        CHECK_MSG(plan.nkernels < plan.ngroups, "%d kernels for %d groups", plan.nkernels, plan.ngroups);
        // across views: never more launches than without; what kernels still read through a view
        // of another kernel's value (written and read back)
        CHECK(plan.nsteps_kind[FUSE_KERNEL] <= plain.nsteps_kind[FUSE_KERNEL]);
        int via_view = 0;
        for (int gi = 0; gi < plan.ngroups; gi++) {
            const FuseGroup *gr = &plan.groups[gi];
            for (int k = 0; k < gr->nins; k++) {
                IrId x = gr->ins[k], r = fuse_view_src(&g, x);
                int w = plan.group_of[r];
                if (r == x || w < 0 || w == gi) continue;
                if (via_view++ == 0)
                    printf("%s: e.g. a %s kernel reads %%%d, a view of %%%d (%s, written by another kernel)\n", path,
                           ir_op_name(g.nodes[gr->nodes[0]].op), x, r, ir_op_name(g.nodes[r].op));
            }
        }
        printf("%s: kernel launches %d -> %d across views; %d kernel inputs still read a view of another kernel's value\n",
               path, plain.nsteps_kind[FUSE_KERNEL], plan.nsteps_kind[FUSE_KERNEL], via_view);
        fuse_plan_free(&plain);
        fuse_plan_free(&plan);
    }
    ir_graph_free(&g);
    arena_free(&a);
    diag_free(&d);
}

// SwiGLU's backward under bf16 (fuse.h FusePlan.read_as): gate and up are bf16 products, the
// f32 casts of them feed silu(gate) * up before a GEMM (the down projection's gradient) and the
// gradient's kernel after it. That kernel reads gate and up as the bf16 values (its loads widen
// them), so no kernel writes an f32 cast; the gradients of gate and of up are one kernel after
// the GEMM (silu and its derivative from the kernel before it), evaluated against the interpreter.
static void test_cast_alias(void) {
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    const Loc L = {0, 0, 0};
    IrShape sx = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(8));
    IrId x = ir_cast(&g, ir_input(&g, "x", IR_F32, sx, L), IR_BF16, L);
    IrId wg = ir_cast(&g, ir_param(&g, "wg", IR_F32, ir_shape2(ir_dim(16), ir_dim(8)), false, L), IR_BF16, L);
    IrId wu = ir_cast(&g, ir_param(&g, "wu", IR_F32, ir_shape2(ir_dim(16), ir_dim(8)), false, L), IR_BF16, L);
    IrId wd = ir_cast(&g, ir_param(&g, "wd", IR_F32, ir_shape2(ir_dim(8), ir_dim(16)), false, L), IR_BF16, L);
    IrId gate = ir_matmul_to(&g, x, wg, false, true, IR_BF16, L), up = ir_matmul_to(&g, x, wu, false, true, IR_BF16, L);
    IrId gf = ir_cast(&g, gate, IR_F32, L), uf = ir_cast(&g, up, IR_F32, L);
    IrId s = ir_unary(&g, IR_SILU, gf, L);
    IrId h = ir_cast(&g, ir_mul(&g, s, uf, L), IR_BF16, L);
    IrId y = ir_matmul_to(&g, h, wd, false, true, IR_F32, L);                          // (B, T, 8)
    IrId dh = ir_matmul(&g, ir_cast(&g, y, IR_BF16, L), wd, false, false, L);         // (B, T, 16) f32
    IrId du = ir_mul(&g, dh, s, L);
    IrId sg = ir_unary(&g, IR_SIGMOID, gf, L);
    IrId ds = ir_mul(&g, sg, ir_add(&g, ir_full(&g, 1.0, IR_F32, ir_shape0(), L),
                                     ir_mul(&g, gf, ir_sub(&g, ir_full(&g, 1.0, IR_F32, ir_shape0(), L), sg, L), L), L), L);
    IrId dg = ir_mul(&g, ir_mul(&g, dh, uf, L), ds, L);
    ir_add_output(&g, ir_cast(&g, du, IR_BF16, L), "du");
    ir_add_output(&g, ir_cast(&g, dg, IR_BF16, L), "dg");
    CHECK(g.errors == 0 && ir_verify(&g));
    FusePlan plan;
    double worst = check_graph("cast alias", &g, &d, 2, 5, NULL, &plan);
    CHECK(worst <= 2e-4);
    int ga = plan.group_of[h], gb = plan.group_of[dg];
    CHECK_MSG(ga >= 0 && gb >= 0 && ga != gb && plan.group_of[du] == gb && plan.step_of[dh] < plan.groups[gb].step,
              "silu(gate) * up before the GEMMs, both gradients in one kernel after them");
    int written = 0, source = 0;   // f32 casts written; up read by the gradient's kernel
    for (int gi = 0; gi < plan.ngroups; gi++)
        for (int k = 0; k < plan.groups[gi].nouts; k++) written += plan.groups[gi].outs[k] == gf || plan.groups[gi].outs[k] == uf;
    for (int k = 0; gb >= 0 && k < plan.groups[gb].nins; k++) source += plan.groups[gb].ins[k] == up;
    CHECK_MSG(written == 0 && source == 1 && plan.read_as[gf] == gate && plan.read_as[uf] == up,
              "no f32 cast of gate or up written (%d); the gradient reads up's bf16 value (%d)", written, source);
#ifdef TRLC_HAVE_CUDA
    CHECK(nvrtc_plan(&plan, &d) == plan.nkernels);
#endif
    fuse_plan_free(&plan);
    ir_graph_free(&g);
    diag_free(&d);
}

int main(int argc, char **argv) {
    test_handbuilt();
    test_cast_alias();
    test_many_inputs();
    test_fuzz(400);
    test_views_lora();
    test_views_reduce();
    test_fuzz_views(300);
    for (int i = 1; i < argc; i++) test_spec(argv[i]);
    return test_done("gpu.fuse_eval");
}
