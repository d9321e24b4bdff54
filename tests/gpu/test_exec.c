// test_exec.c — the kernels on a GPU (skipped, exit 77, where there is none; gpu.exec_emu runs it
// on the CUDA emulator, tests/gpu/emu): every fused group of the given specs' training graphs is
// compiled for the device's architecture, launched with the interpreter's values of its inputs
// (once with trlc's grid, once more on two blocks so the grid-stride loops run as a capped grid
// makes them at full size), and its outputs compared with the interpreter's (bf16 outputs to one
// bf16 step; `--bf16 SPEC`: the graph with mixed precision, its casts and bf16 frozen weights);
// the generated CUDA of a hand-built graph and 40 random fusion graphs likewise; every library kernel
// (attention forward/backward at several head sizes with grouped KV heads, segments and key
// masks; cross-entropy f32/bf16; rope; AdamW and the gradient's sum of squares; embed; softmax;
// layout copies; gather; dequantization) is compared with its C reference.
#include "autocast.h"
#include "codegen_cuda.h"
#include "cpu.h"
#include "fuse.h"
#include "gpu_test_util.h"
#include "kernels_ref.h"
#include "load.h"
#include "memplan_spec.h"
#include "rt_cuda.h"
#include "strbuf.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 99;
static float frand(void) { return gpu_test_frand(&rng); }
static RtCudaPtr up(RtCudaDevice *dev, const void *data, size_t bytes) {
    return gpu_test_upload(dev, data, bytes);
}

// compiles one source and returns the kernel `name` loaded on the device, or NULL
static void *build(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, const char *src, const char *prog,
                   const char *name, Diag *d) {
    RtCudaProgram p = {.name = prog, .source = src};
    void *fn = NULL;
    if (rt_cuda_is_emulated(dev)) {   // the emulator runs the source: no cubin (gpu.nvrtc_* compile them)
        if (rt_cuda_load_source(dev, NULL, src, name, &fn) != 0) fn = NULL;
        return fn;
    }
    if (rt_cuda_compile(cache, &p, 1, arch, false, 1, d) == 0 && rt_cuda_load_source(dev, p.cubin, src, name, &fn) == 0) {
        // the registers trlc kernels reads from the cubin's ELF sections = what the driver says
        int elf_regs, drv_regs, drv_shared;
        int64_t elf_shared;
        rt_cuda_cubin_resources(p.cubin, p.cubin_size, name, &elf_regs, &elf_shared);
        CHECK(rt_cuda_func_resources(dev, fn, &drv_regs, &drv_shared) == 0);
        CHECK_MSG(elf_regs == drv_regs, "%s: %d registers in the ELF, %d from the driver", name, elf_regs, drv_regs);
    }
    rt_cuda_program_free(&p);
    return fn;
}

// the largest distance between got and want in bf16 steps (ulps of want; NaN against a number: huge)
static double bf16_ulps(const float *got, const float *want, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double a = got[i], b = want[i];
        if (isnan(a) || isnan(b)) {
            if (!(isnan(a) && isnan(b))) m = 1e30;
            continue;
        }
        if (a == b) continue;
        double ulp = b != 0 && isfinite(b) ? ldexp(1.0, ilogb(b) - 7) : ldexp(1.0, -133);
        double u = fabs(a - b) / ulp;
        if (!(u <= m)) m = u;
    }
    return m;
}

// the device bytes of one element of a group argument (bf16 storage: 2, NF4 codes: 1)
static size_t elem_bytes(IrDType t) { return t == IR_BF16 ? 2 : t == IR_U8 ? 1 : 4; }

// copies n host values (floats for f32 and bf16 nodes, ints for i32, bytes for u8) to a fresh
// device buffer of dtype t (bf16: rounded to nearest even, as the kernels store)
static RtCudaPtr up_typed(RtCudaDevice *dev, const void *data, int64_t n, IrDType t) {
    if (t != IR_BF16 || !data) return up(dev, data, (size_t)n * elem_bytes(t));
    uint16_t *h = malloc((size_t)n * 2 + 2);
    for (int64_t i = 0; i < n; i++) h[i] = gpu_test_bf16_bits(((const float *)data)[i]);
    RtCudaPtr p = up(dev, h, (size_t)n * 2);
    free(h);
    return p;
}

// downloads n values of dtype t as floats (i32 stays int bits)
static void down_typed(RtCudaDevice *dev, float *dst, RtCudaPtr src, int64_t n, IrDType t) {
    if (t != IR_BF16) {
        rt_cuda_download(dev, dst, src, (size_t)n * 4);
        return;
    }
    uint16_t *h = malloc((size_t)n * 2 + 2);
    rt_cuda_download(dev, h, src, (size_t)n * 2);
    for (int64_t i = 0; i < n; i++) dst[i] = gpu_test_bf16_value(h[i]);
    free(h);
}

// every fused group of g's plan compiled, launched with the interpreter's values of its inputs and
// compared with the interpreter's outputs; summary line unless quiet; returns the worst error
static double check_groups(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, const char *what, IrGraph *g,
                           FusePlan *plan, const int64_t *sym, bool quiet, bool one_module, Diag *d) {
    for (int gi = 0; gi < plan->ngroups; gi++) {
        const FuseGroup *gr = &plan->groups[gi];
        for (int k = 0; k < gr->nins + gr->nouts; k++) {
            IrId id = k < gr->nins ? gr->ins[k] : gr->outs[k - gr->nins];
            if (g->nodes[id].op == IR_INPUT || g->nodes[id].op == IR_PARAM) continue;
            char name[32];
            snprintf(name, sizeof name, "fz%d", id);
            ir_add_output(g, id, name);
        }
    }
    const uint64_t step = 5;
    CpuProgram *prog = cpu_program_new(g, IR_F32, d);
    CHECK_MSG(prog != NULL, "%s: no interpreter program", what);
    if (!prog) return 1e30;
    void **host = calloc((size_t)g->n, sizeof *host);
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op != IR_INPUT && n->op != IR_PARAM) continue;
        int64_t numel = ir_shape_numel(&n->shape, sym);
        host[i] = malloc((size_t)numel * 4 + 4);
        if (n->dtype == IR_U8) {   // NF4 codes: random bytes
            for (int64_t k = 0; k < numel; k++) ((uint8_t *)host[i])[k] = (uint8_t)((frand() + 0.5f) * 255);
            cpu_bind(prog, i, host[i], (size_t)numel);
            continue;
        }
        for (int64_t k = 0; k < numel; k++) {
            if (n->dtype == IR_I32) ((int32_t *)host[i])[k] = n->name && !strcmp(n->name, "pos") ? (int32_t)(k % sym[1]) : (int32_t)((frand() + 0.5f) * 300);
            else ((float *)host[i])[k] = n->name && strstr(n->name, "norm") ? 1 + frand() * 0.4f : frand() * (n->op == IR_PARAM ? 0.4f : 2.0f);
        }
        if (n->dtype == IR_BF16) ac_round_bf16(host[i], numel);   // a frozen weight stored in bf16
        cpu_bind(prog, i, host[i], (size_t)numel * 4);
    }
    CHECK(cpu_run(prog, sym, step) == 0);
    void **fns = calloc((size_t)plan->nkernels, sizeof *fns);
    double worst_ulps = 0;
    int nbf16 = 0;
    void **wide_fns = calloc((size_t)plan->nkernels, sizeof *wide_fns);   // the 64-bit-index variants
    char *wide_state = calloc((size_t)plan->nkernels, 1);                 // 1 built, 2 none (below)
    if (one_module && rt_cuda_is_emulated(dev)) {
        // the emulator compiles one module per source with the host compiler: the plan's kernels go
        // into one source, each in a namespace of its own (their helpers repeat), found by name;
        // their 64-bit-index variants (below) into a second one
        for (int w = 0; w < 2; w++) {
            StrBuf all = {0};
            for (int k = 0; k < plan->nkernels; k++) {
                char *src = cg_cuda_kernel(plan, k, d), *at = src && w ? strstr(src, CG_INDEX32_TEST) : NULL;
                if (at) memcpy(at, "if (n <= -1LL)         ", strlen(CG_INDEX32_TEST));   // same length
                if (w && !at) wide_state[k] = 2;
                sb_printf(&all, "namespace cuemu_k%d {\n%s\n}\n", k, src ? src : "");
                free(src);
            }
            for (int k = 0; k < plan->nkernels; k++) sb_printf(&all, "using namespace cuemu_k%d;\n", k);
            void **to = w ? wide_fns : fns;
            for (int k = 0; k < plan->nkernels && all.s && !all.oom; k++) {
                if (w && wide_state[k]) continue;
                if (rt_cuda_load_source(dev, NULL, all.s, plan->kernels[k].name, &to[k]) != 0) to[k] = NULL;
                if (w) wide_state[k] = to[k] ? 1 : 0;   // 0: built one by one below
            }
            free(all.s);
        }
    }
    int bad = 0, launched = 0, strided = 0, wide = 0;
    double worst = 0;
    for (int gi = 0; gi < plan->ngroups; gi++) {
        const FuseGroup *gr = &plan->groups[gi];
        int k = gr->kernel;
        if (!fns[k]) {
            char *src = cg_cuda_kernel(plan, k, d);
            fns[k] = src ? build(dev, cache, arch, src, plan->kernels[k].name, plan->kernels[k].name, d) : NULL;
            free(src);
        }
        CHECK(fns[k] != NULL);
        if (!fns[k]) continue;
        RtCudaPtr ptr[FUSE_MAX_ARGS];
        uint64_t seeds[FUSE_MAX_MEMBERS];
        uint32_t salts[FUSE_MAX_MEMBERS];
        void *args[FUSE_MAX_ARGS + 2 * FUSE_MAX_MEMBERS + 3];
        int na = 0, nd = 0;
        for (int q = 0; q < gr->nouts; q++) {
            const IrNode *n = &g->nodes[gr->outs[q]];
            ptr[q] = up(dev, NULL, (size_t)ir_shape_numel(&n->shape, sym) * elem_bytes(n->dtype));
            args[na++] = &ptr[q];
        }
        for (int q = 0; q < gr->nins; q++) {
            IrId id = gr->ins[q];
            const void *data = host[id];
            if (!data) {
                char name[32];
                snprintf(name, sizeof name, "fz%d", id);
                const CpuTensor *t = cpu_output_named(prog, name);
                data = t ? t->data : NULL;
            }
            ptr[gr->nouts + q] = up_typed(dev, data, ir_shape_numel(&g->nodes[id].shape, sym), g->nodes[id].dtype);
            args[na++] = &ptr[gr->nouts + q];
        }
        for (int m = 0; m < gr->nnodes; m++) {
            const IrNode *n = &g->nodes[gr->nodes[m]];
            if (n->op != IR_DROPOUT) continue;
            seeds[nd] = n->a.seed, salts[nd] = n->a.salt;
            args[na++] = &seeds[nd];
            args[na++] = &salts[nd];
            nd++;
        }
        long long B = sym[0], T = sym[1];
        unsigned long long st = step;
        args[na++] = &B, args[na++] = &T, args[na++] = &st;
        unsigned grid[3], block[3];
        cg_launch_dims(plan, gi, sym, grid, block);
        // pass 1: the grid trlc launches; pass 2: fresh outputs and two blocks, so that the
        // kernel's grid-stride loops do what a capped grid (2^20 blocks) does at full size;
        // pass 3 (elementwise kernels): the loop with 64-bit indexes, which only counts of 2^31
        // elements and more take, forced by the source with its 32-bit test made false
        void *fn = fns[k];
        for (int pass = 0; pass < 3; pass++) {
            if (pass == 1 && grid[0] <= 2) continue;
            if (pass == 2) {
                if (!wide_state[k]) {   // the source with its 32-bit test made false
                    char *src = cg_cuda_kernel(plan, k, d), *at = src ? strstr(src, CG_INDEX32_TEST) : NULL;
                    if (at) memcpy(at, "if (n <= -1LL)         ", strlen(CG_INDEX32_TEST));   // same length
                    wide_fns[k] = at ? build(dev, cache, arch, src, plan->kernels[k].name, plan->kernels[k].name, d) : NULL;
                    CHECK_MSG(!at || wide_fns[k], "%s: the 64-bit-index variant of %s", what, plan->kernels[k].name);
                    wide_state[k] = wide_fns[k] ? 1 : 2;
                    free(src);
                }
                if (!(fn = wide_fns[k])) break;
                cg_launch_dims(plan, gi, sym, grid, block);
                wide++;
            }
            if (pass >= 1) {
                if (pass == 1) grid[0] = 2, strided++;
                for (int q = 0; q < gr->nouts; q++) {
                    const IrNode *n = &g->nodes[gr->outs[q]];
                    rt_cuda_free(dev, ptr[q]);
                    ptr[q] = up(dev, NULL, (size_t)ir_shape_numel(&n->shape, sym) * elem_bytes(n->dtype));
                }
            }
            CHECK(rt_cuda_launch(dev, fn, grid, block, 0, args, plan->kernels[k].name) == 0);
            CHECK(rt_cuda_sync(dev, plan->kernels[k].name) == 0);
            launched++;
            for (int q = 0; q < gr->nouts; q++) {
                const IrNode *n = &g->nodes[gr->outs[q]];
                int64_t numel = ir_shape_numel(&n->shape, sym);
                float *got = malloc((size_t)numel * 4 + 4);
                down_typed(dev, got, ptr[q], numel, n->dtype);
                char name[32];
                snprintf(name, sizeof name, "fz%d", gr->outs[q]);
                const CpuTensor *t = cpu_output_named(prog, name);
                double e = 0;
                if (!t) e = 1;
                else if (n->dtype == IR_BF16) {
                    // a bf16 output: the f32 values differ by ~1e-6 (summation order), so a value
                    // near a rounding boundary may land one bf16 step away; more is a bug
                    double u = bf16_ulps(got, t->data, numel);
                    if (!(u <= worst_ulps)) worst_ulps = u;
                    e = u <= 1 ? 0 : u;
                    nbf16++;
                } else if (n->dtype != IR_I32) e = gpu_test_relerr(got, t->data, numel);
                else if (memcmp(got, t->data, (size_t)numel * 4)) e = 1;   // integers: exact
                if (!(e <= worst)) worst = e;
                if (!(e <= 2e-4) && bad++ < 5)
                    fprintf(stderr, "%s: group %d (%s, grid %u) output %%%d (%s): max rel. error %.3g\n", what, gi,
                            plan->kernels[k].name, grid[0], gr->outs[q], ir_dtype_name(n->dtype), e);
                free(got);
            }
        }
        for (int q = 0; q < gr->nouts + gr->nins; q++) rt_cuda_free(dev, ptr[q]);
    }
    CHECK_MSG(bad == 0, "%s: %d outputs differ", what, bad);
    if (!quiet)
        printf("%s: %d fused launches of %d kernels (%d of them on 2 blocks: grid-stride) on the GPU vs the "
               "interpreter (%d with 64-bit indexes): max rel. error %.3g", what, launched, plan->nkernels, strided, wide, worst);
    if (!quiet && nbf16) printf(" (f32); %d bf16 outputs within %.0f bf16 step(s)", nbf16, worst_ulps);
    if (!quiet) printf("\n");
    for (int i = 0; i < g->n; i++) free(host[i]);
    free(host);
    free(fns);
    free(wide_fns);
    free(wide_state);
    cpu_program_free(prog);
    return worst;
}

static void test_fused(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, const char *path, bool mixed) {
    GpuTestSpec S;
    FusePlan plan;
    memset(&plan, 0, sizeof plan);
    // --bf16 on an fp32 spec: the graph with mixed precision (a bf16 spec's graph has it already)
    if (gpu_test_spec_open(&S, path) != 0 ||
        (mixed && !(S.cs->train.precision && !strcmp(S.cs->train.precision, "bf16")) && ir_autocast_bf16(&S.g, NULL) != 0) ||
        fuse_plan(&S.g, &S.d, &plan) != 0) {
        CHECK_MSG(0, "%s does not compile", path);
        return;
    }
    int64_t sym[IR_NSYMS] = {2, 45};
    char what[600];
    snprintf(what, sizeof what, "%s%s", path, mixed ? " (bf16 mixed precision)" : "");
    check_groups(dev, cache, arch, what, &S.g, &plan, sym, false, false, &S.d);
    fuse_plan_free(&plan);
    gpu_test_spec_free(&S);
}

// Hand-built and random graphs of fusable ops (every unary op, comparisons, where, pow, casts to
// bf16 and i32, dropout, reductions over every axis and all of them, sum_to, broadcasts back,
// permutes, H = 1, rank-1/2 inputs broadcast): the generated CUDA of every group vs the
// interpreter, the code paths the training graphs do not reach.
static IrId pick(const IrId *v, int n) { return v[(int)((frand() + 0.5f) * n) % n]; }

static void test_codegen_fuzz(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, int ngraphs) {
    double worst = 0;
    int groups = 0;
    for (int it = -1; it < ngraphs; it++) {
        Diag d;
        diag_init(&d, stderr);
        Loc L = {0, 0, 0};
        IrGraph g;
        ir_graph_init(&g, &d, IR_F32);
        char what[48];
        if (it < 0) {   // hand-built: every op once
            snprintf(what, sizeof what, "codegen: hand-built graph");
            gpu_test_handbuilt_graph(&g, NULL);
        } else {   // random
            snprintf(what, sizeof what, "codegen: random graph %d", it);
            IrShape shapes[5];
            IrId v[200];
            int n = gpu_test_fuzz_inputs(&g, it, shapes, v);
            const IrShape full = shapes[0];
            int nops = 6 + (int)((frand() + 0.5f) * 30);
            for (int k = 0; k < nops && n < 190; k++) {
                double r = frand() + 0.5;
                IrId x = pick(v, n), y = pick(v, n), z = IR_NONE;
                const IrNode *xn = ir_node(&g, x);
                if (r < 0.3) {
                    IrOp un[] = {IR_NEG, IR_TANH, IR_SIGMOID, IR_SILU, IR_SQUARE, IR_ABS, IR_RELU, IR_GELU,
                                 IR_SOFTPLUS, IR_LOG_SIGMOID};
                    z = ir_unary(&g, un[(int)((frand() + 0.5f) * 10) % 10], x, L);
                } else if (r < 0.6) {
                    IrOp bin[] = {IR_ADD, IR_SUB, IR_MUL, IR_MAXIMUM, IR_MINIMUM};
                    z = ir_binary(&g, bin[(int)((frand() + 0.5f) * 5) % 5], x, y, L);
                } else if (r < 0.65) {
                    z = ir_div(&g, x, ir_add(&g, ir_unary(&g, IR_ABS, y, L), ir_scalar(&g, 1.0, L), L), L);
                } else if (r < 0.7) {
                    z = ir_where(&g, ir_binary(&g, IR_LT, x, y, L), x, pick(v, n), L);
                } else if (r < 0.85 && xn->shape.rank == 3) {
                    IrOp red[] = {IR_SUM, IR_MEAN, IR_MAX};
                    z = ir_reduce(&g, red[(int)((frand() + 0.5f) * 3) % 3], x, (int)((frand() + 0.5f) * 3) % 3, L);
                } else if (r < 0.93 && ir_shape_eq(&xn->shape, &full)) {
                    z = ir_sum_to(&g, x, shapes[1 + (int)((frand() + 0.5f) * 4) % 4], L);
                } else if (r < 0.97 && xn->shape.rank == 3) {
                    static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
                    const int *pp = perms[(int)((frand() + 0.5f) * 6) % 6];
                    int inv[3];
                    for (int i = 0; i < 3; i++) inv[pp[i]] = i;
                    IrId t = ir_unary(&g, IR_TANH, ir_permute(&g, x, pp, L), L);
                    z = ir_add(&g, ir_permute(&g, t, inv, L), pick(v, n), L);
                } else if (xn->shape.rank == 3 && ir_dim_is_one(xn->shape.d[2])) {
                    z = ir_broadcast_to(&g, x, full, L);
                } else {
                    z = ir_add(&g, x, ir_scalar(&g, 0.5, L), L);
                }
                if (z != IR_NONE) v[n++] = ir_unary(&g, IR_TANH, z, L);   // bounded values
            }
            for (int k = n - 1, outs = 0; k >= 5 && outs < 4; k--, outs++) {
                char name[16];
                snprintf(name, sizeof name, "o%d", k);
                ir_add_output(&g, v[k], name);
            }
        }
        CHECK_MSG(g.errors == 0, "%s: graph errors", what);
        FusePlan plan;
        memset(&plan, 0, sizeof plan);
        if (g.errors == 0 && fuse_plan(&g, &d, &plan) == 0) {
            int64_t sym[IR_NSYMS] = {2, it < 0 ? 40 : 35};
            double e = check_groups(dev, cache, arch, what, &g, &plan, sym, it >= 0, true, &d);
            if (!(e <= worst)) worst = e;
            groups += plan.ngroups;
        } else CHECK_MSG(0, "%s: no fusion plan", what);
        fuse_plan_free(&plan);
        ir_graph_free(&g);
        diag_free(&d);
    }
    printf("codegen: a hand-built graph and %d random graphs, %d fused groups on the GPU vs the interpreter: max rel. "
           "error %.3g\n", ngraphs, groups, worst);
}

static void test_library(RtCudaDevice *dev, RtCudaCache *cache, const char *arch) {
    Diag d;
    diag_init(&d, stderr);
    enum { B = 2, Hq = 4, Hkv = 2, T = 70, D = 64, N = 37, V = 1000 };
    const int nq = B * Hq * T * D, nkv = B * Hkv * T * D;
    float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *go = malloc(nq * 4);
    float *o = malloc(nq * 4), *lse = malloc(B * Hq * T * 4), *dq = malloc(nq * 4), *delta = malloc(B * Hq * T * 4);
    float *dk = malloc(nkv * 4), *dv = malloc(nkv * 4), *got = malloc(nq * 4 + (size_t)N * V * 4);
    for (int i = 0; i < nq; i++) q[i] = frand(), go[i] = frand();
    for (int i = 0; i < nkv; i++) k[i] = frand(), v[i] = frand();
    const char *src = cg_library_source("attention.cu");
    void *ffw = build(dev, cache, arch, src, "attention.cu", "trlc_attention_forward", &d);
    void *fdq = build(dev, cache, arch, src, "attention.cu", "trlc_attention_backward_dq", &d);
    void *fkv = build(dev, cache, arch, src, "attention.cu", "trlc_attention_backward_dkdv", &d);
    CHECK(ffw && fdq && fkv);
    int32_t segs[B * T];   // packed rows: three sequences in row 0, two and padding (-1) in row 1
    for (int i = 0; i < T; i++) segs[i] = i < 20 ? 0 : i < 45 ? 1 : 2, segs[T + i] = i < 33 ? 0 : i < 60 ? 1 : -1;
    for (int mode = 0; mode < 3 && ffw && fdq && fkv; mode++) {   // full, causal, causal + segments
        int causal = mode > 0;
        const int32_t *seg = mode == 2 ? segs : NULL;
        float scale = 0.125f;
        trlc_attention_fwd_ref(o, lse, q, k, v, seg, NULL, B, Hq, Hkv, T, D, scale, causal);
        trlc_attention_bwd_dq_ref(dq, delta, q, k, v, o, go, lse, seg, NULL, B, Hq, Hkv, T, D, scale, causal);
        trlc_attention_bwd_dkdv_ref(dk, dv, q, k, v, go, lse, delta, seg, NULL, B, Hq, Hkv, T, D, scale, causal);
        RtCudaPtr ps = seg ? up(dev, seg, sizeof segs) : 0, pkm = 0;
        RtCudaPtr pq = up(dev, q, nq * 4), pk = up(dev, k, nkv * 4), pv = up(dev, v, nkv * 4), pgo = up(dev, go, nq * 4);
        RtCudaPtr po = up(dev, NULL, nq * 4), pl = up(dev, NULL, B * Hq * T * 4), pdq = up(dev, NULL, nq * 4);
        RtCudaPtr pdl = up(dev, NULL, B * Hq * T * 4), pdk = up(dev, NULL, nkv * 4), pdv = up(dev, NULL, nkv * 4);
        int t = T, dd = D, hq = Hq, hkv = Hkv;
        unsigned grid[3] = {(T + 3) / 4, Hq, B}, gridkv[3] = {(T + 3) / 4, Hkv, B}, block[3] = {128, 1, 1};
        void *a1[] = {&po, &pl, &pq, &pk, &pv, &ps, &pkm, &t, &dd, &hq, &hkv, &scale, &causal};
        CHECK(rt_cuda_launch(dev, ffw, grid, block, 0, a1, "attention forward") == 0);
        void *a2[] = {&pdq, &pdl, &pq, &pk, &pv, &po, &pgo, &pl, &ps, &pkm, &t, &dd, &hq, &hkv, &scale, &causal};
        CHECK(rt_cuda_launch(dev, fdq, grid, block, 0, a2, "attention dq") == 0);
        void *a3[] = {&pdk, &pdv, &pq, &pk, &pv, &pgo, &pl, &pdl, &ps, &pkm, &t, &dd, &hq, &hkv, &scale, &causal};
        CHECK(rt_cuda_launch(dev, fkv, gridkv, block, 0, a3, "attention dkdv") == 0);
        CHECK(rt_cuda_sync(dev, "attention") == 0);
        double e[5];
        rt_cuda_download(dev, got, po, nq * 4), e[0] = gpu_test_relerr(got, o, nq);
        rt_cuda_download(dev, got, pl, B * Hq * T * 4), e[1] = gpu_test_relerr(got, lse, B * Hq * T);
        rt_cuda_download(dev, got, pdq, nq * 4), e[2] = gpu_test_relerr(got, dq, nq);
        rt_cuda_download(dev, got, pdk, nkv * 4), e[3] = gpu_test_relerr(got, dk, nkv);
        rt_cuda_download(dev, got, pdv, nkv * 4), e[4] = gpu_test_relerr(got, dv, nkv);
        printf("attention on the GPU (%s, T=%d, D=%d, GQA %d/%d) vs reference: o %.2g lse %.2g dq %.2g dk %.2g dv %.2g\n",
               seg ? "causal, packed segments" : causal ? "causal" : "full", T, D, Hq, Hkv, e[0], e[1], e[2], e[3],
               e[4]);
        for (int i = 0; i < 5; i++) CHECK(e[i] < 1e-3);
        RtCudaPtr all[] = {pq, pk, pv, pgo, po, pl, pdq, pdl, pdk, pdv};
        for (int i = 0; i < 10; i++) rt_cuda_free(dev, all[i]);
        if (ps) rt_cuda_free(dev, ps);
    }
    // cross-entropy
    float *lg = malloc((size_t)N * V * 4), *loss = malloc(N * 4), *lse2 = malloc(N * 4), *gl = malloc(N * 4);
    float *dl = malloc((size_t)N * V * 4);
    int32_t lab[N];
    for (int i = 0; i < N * V; i++) lg[i] = 10 * frand();
    for (int i = 0; i < N; i++) lab[i] = i % 9 == 4 ? -100 : (int32_t)((frand() + 0.5f) * (V - 1)), gl[i] = 1 + frand();
    trlc_cross_entropy_ref(loss, lse2, lg, lab, N, V, -100, 0.1f);
    trlc_cross_entropy_bwd_ref(dl, lg, lse2, lab, gl, N, V, -100, 0.1f);
    src = cg_library_source("cross_entropy.cu");
    void *cf = build(dev, cache, arch, src, "cross_entropy.cu", "trlc_cross_entropy_forward_f32", &d);
    void *cb = build(dev, cache, arch, src, "cross_entropy.cu", "trlc_cross_entropy_backward_f32", &d);
    CHECK(cf && cb);
    if (cf && cb) {
        RtCudaPtr plg = up(dev, lg, (size_t)N * V * 4), plab = up(dev, lab, N * 4), pgl = up(dev, gl, N * 4);
        RtCudaPtr ploss = up(dev, NULL, N * 4), plse = up(dev, NULL, N * 4);
        long long vv = V;
        int ign = -100;
        float eps = 0.1f;
        unsigned grid[3] = {N, 1, 1}, block[3] = {256, 1, 1};
        void *a1[] = {&ploss, &plse, &plg, &plab, &vv, &ign, &eps};
        CHECK(rt_cuda_launch(dev, cf, grid, block, 0, a1, "cross_entropy forward") == 0);
        void *a2[] = {&plg, &plg, &plse, &plab, &pgl, &vv, &ign, &eps};   // in place over the logits
        CHECK(rt_cuda_launch(dev, cb, grid, block, 0, a2, "cross_entropy backward") == 0);
        CHECK(rt_cuda_sync(dev, "cross_entropy") == 0);
        double e1, e2;
        rt_cuda_download(dev, got, ploss, N * 4), e1 = gpu_test_relerr(got, loss, N);
        rt_cuda_download(dev, got, plg, (size_t)N * V * 4), e2 = gpu_test_relerr(got, dl, (int64_t)N * V);
        printf("cross-entropy on the GPU (V=%d): loss %.2g, dlogits (in place) %.2g\n", V, e1, e2);
        CHECK(e1 < 1e-4 && e2 < 1e-3);
        rt_cuda_free(dev, plg), rt_cuda_free(dev, plab), rt_cuda_free(dev, pgl), rt_cuda_free(dev, ploss), rt_cuda_free(dev, plse);
    }
    // rope (in place), AdamW, embed
    {
        int32_t pos[B * T];
        for (int i = 0; i < B * T; i++) pos[i] = (i % T) * 101;
        double inv[D / 2];
        trlc_rope_inv_freq(inv, D, 500000.0, 32.0, 1.0, 4.0, 8192.0);
        trlc_rope_ref(o, q, pos, inv, B, Hq, T, D, 1, 0);
        void *fr = build(dev, cache, arch, cg_library_source("rope.cu"), "rope.cu", "trlc_rope_forward", &d);
        CHECK(fr != NULL);
        if (fr) {
            RtCudaPtr px = up(dev, q, nq * 4), pp = up(dev, pos, B * T * 4), pi = up(dev, inv, sizeof inv);
            int t = T, dd = D, h = Hq, pb = 1, inverse = 0;
            unsigned grid[3] = {(T * D / 2 + 255) / 256, Hq, B}, block[3] = {256, 1, 1};
            void *a[] = {&px, &px, &pp, &pi, &t, &dd, &h, &pb, &inverse};
            CHECK(rt_cuda_launch(dev, fr, grid, block, 0, a, "rope") == 0 && rt_cuda_sync(dev, "rope") == 0);
            rt_cuda_download(dev, got, px, nq * 4);
            double e = gpu_test_relerr(got, o, nq);
            printf("rope on the GPU (llama-3 scaled, positions to %d): %.2g\n", (T - 1) * 101, e);
            CHECK(e < 1e-4);
            rt_cuda_free(dev, px), rt_cuda_free(dev, pp), rt_cuda_free(dev, pi);
        }
        enum { NP = 1000 };
        float p[NP], m[NP], s[NP], gr[NP], p2[NP], m2[NP], s2[NP];
        for (int i = 0; i < NP; i++) p[i] = p2[i] = frand(), m[i] = m2[i] = frand() * 0.1f, s[i] = s2[i] = 0.01f, gr[i] = frand();
        trlc_adamw_ref(p2, m2, s2, gr, NP, 1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f, 0.19f, 0.002f, 0.7f);
        void *fa = build(dev, cache, arch, cg_library_source("adamw.cu"), "adamw.cu", "trlc_adamw_update", &d);
        CHECK(fa != NULL);
        if (fa) {
            RtCudaPtr pp = up(dev, p, sizeof p), pm = up(dev, m, sizeof m), ps = up(dev, s, sizeof s), pg = up(dev, gr, sizeof gr);
            long long n = NP;
            float lr = 1e-3f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.01f, bc1 = 0.19f, bc2 = 0.002f, gs = 0.7f;
            unsigned grid[3] = {4, 1, 1}, block[3] = {256, 1, 1};
            void *a[] = {&pp, &pm, &ps, &pg, &n, &lr, &b1, &b2, &eps, &wd, &bc1, &bc2, &gs};
            CHECK(rt_cuda_launch(dev, fa, grid, block, 0, a, "adamw") == 0 && rt_cuda_sync(dev, "adamw") == 0);
            rt_cuda_download(dev, got, pp, sizeof p);
            double e = gpu_test_relerr(got, p2, NP);
            printf("AdamW on the GPU: %.2g\n", e);
            CHECK(e < 1e-5);
            rt_cuda_free(dev, pp), rt_cuda_free(dev, pm), rt_cuda_free(dev, ps), rt_cuda_free(dev, pg);
        }
    }
    free(q), free(k), free(v), free(go), free(o), free(lse), free(dq), free(delta), free(dk), free(dv), free(got);
    free(lg), free(loss), free(lse2), free(gl), free(dl);
    diag_free(&d);
}

// launches kernel `name` of library file `file` on a grid-stride / per-row grid; 0 on success
static int launch_lib(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, const char *file, const char *name,
                      unsigned grid, unsigned block, void **args, Diag *d) {
    void *fn = build(dev, cache, arch, cg_library_source(file), file, name, d);
    unsigned g[3] = {grid, 1, 1}, b[3] = {block, 1, 1};
    CHECK_MSG(fn != NULL, "%s does not build", name);
    if (!fn) return -1;
    int r = rt_cuda_launch(dev, fn, g, b, 0, args, name) == 0 && rt_cuda_sync(dev, name) == 0 ? 0 : -1;
    CHECK_MSG(r == 0, "%s does not run", name);
    return r;
}

// the library kernels test_library does not cover: embed, softmax, layout copies, the gradient's
// sum of squares, cross-entropy on bf16 logits, gather and dequantization (exact where the C
// reference runs the same loops)
static void test_library_more(RtCudaDevice *dev, RtCudaCache *cache, const char *arch) {
    Diag d;
    diag_init(&d, stderr);
    enum { N = 45, H = 72, V = 50 };
    float *table = malloc(V * H * 4), *out = malloc(N * H * 4), *want = malloc(N * H * 4), *grad = malloc(N * H * 4);
    float *got = malloc(16384 * 4);   // the largest result below: 7 x 1000 or 9 x 777 floats
    int32_t ids[N];
    for (int i = 0; i < V * H; i++) table[i] = frand();
    for (int i = 0; i < N * H; i++) grad[i] = frand();
    for (int i = 0; i < N; i++) ids[i] = i == 17 ? V + 3 : (i * 7) % V;   // one bad id, repeated ids
    {   // embed forward: rows of the table, a zero row and the first bad position + 1 for a bad id
        RtCudaPtr po = up(dev, NULL, N * H * 4), pbad = up(dev, NULL, 4), pids = up(dev, ids, sizeof ids);
        RtCudaPtr pt = up(dev, table, V * H * 4);
        int zero = 0, bad = -1;
        rt_cuda_upload(dev, pbad, &zero, 4);
        long long n = N, h = H, v = V;
        void *a[] = {&po, &pbad, &pids, &pt, &n, &h, &v};
        if (launch_lib(dev, cache, arch, "embed.cu", "trlc_embed_forward", 16, 128, a, &d) == 0) {
            rt_cuda_download(dev, got, po, N * H * 4);
            rt_cuda_download(dev, &bad, pbad, 4);
            int wrong = 0;
            for (int r = 0; r < N; r++)
                for (int c = 0; c < H; c++) wrong += got[r * H + c] != (r == 17 ? 0.0f : table[ids[r] * H + c]);
            CHECK_MSG(wrong == 0 && bad == 18, "embed forward: %d wrong, bad = %d", wrong, bad);
        }
        // backward: scatter-add into a zeroed table gradient
        float *dt = calloc(V * H, 4);
        for (int r = 0; r < N; r++)
            if (ids[r] >= 0 && ids[r] < V)
                for (int c = 0; c < H; c++) dt[ids[r] * H + c] += grad[r * H + c];
        RtCudaPtr pd = up(dev, NULL, V * H * 4), pg = up(dev, grad, N * H * 4);
        rt_cuda_zero(dev, pd, V * H * 4);
        void *b[] = {&pd, &pids, &pg, &n, &h, &v};
        if (launch_lib(dev, cache, arch, "embed.cu", "trlc_embed_backward", 16, 128, b, &d) == 0) {
            rt_cuda_download(dev, got, pd, V * H * 4);
            double e = gpu_test_relerr(got, dt, V * H);
            printf("embed on the GPU: forward exact, backward %.2g\n", e);
            CHECK(e < 1e-6);
        }
        free(dt);
        rt_cuda_free(dev, po), rt_cuda_free(dev, pbad), rt_cuda_free(dev, pids), rt_cuda_free(dev, pt);
        rt_cuda_free(dev, pd), rt_cuda_free(dev, pg);
    }
    {   // softmax and log-softmax over rows of 1000 (several blocks per row count: grid-stride)
        enum { R = 7, C = 1000 };
        float *x = malloc(R * C * 4), *y = malloc(R * C * 4);
        for (int i = 0; i < R * C; i++) x[i] = 8 * frand();
        RtCudaPtr px = up(dev, x, R * C * 4), py = up(dev, NULL, R * C * 4);
        for (int lg = 0; lg < 2; lg++) {
            for (int r = 0; r < R; r++) {
                double m = -INFINITY, s = 0;
                for (int c = 0; c < C; c++) m = fmax(m, x[r * C + c]);
                for (int c = 0; c < C; c++) s += exp(x[r * C + c] - m);
                for (int c = 0; c < C; c++)
                    y[r * C + c] = (float)(lg ? x[r * C + c] - m - log(s) : exp(x[r * C + c] - m) / s);
            }
            long long rows = R, n = C;
            void *a[] = {&py, &px, &rows, &n, &lg};
            if (launch_lib(dev, cache, arch, "softmax.cu", "trlc_softmax_forward", 3, 256, a, &d) == 0) {
                rt_cuda_download(dev, got, py, R * C * 4);
                double e = gpu_test_relerr(got, y, R * C);
                printf("%s on the GPU: %.2g\n", lg ? "log-softmax" : "softmax", e);
                CHECK(e < 1e-5);
            }
        }
        rt_cuda_free(dev, px), rt_cuda_free(dev, py);
        free(x), free(y);
    }
    {   // layout: (2,3,5,7) permuted to (2,5,3,7) into the window of a padded output; fill; arange
        struct { int rank; long long dims[8], src_stride[8], dst_stride[8], src_base, dst_base; } L;
        memset(&L, 0, sizeof L);
        const int A0 = 2, A1 = 3, A2 = 5, A3 = 7, n = A0 * A1 * A2 * A3;
        float x[2 * 3 * 5 * 7], y[2 * 5 * 3 * 8 + 1], w[2 * 5 * 3 * 8 + 1];
        for (int i = 0; i < n; i++) x[i] = frand();
        for (int i = 0; i < 2 * 5 * 3 * 8 + 1; i++) w[i] = 0.5f;   // the fill value around the window
        for (int a = 0; a < A0; a++)
            for (int b = 0; b < A1; b++)
                for (int c = 0; c < A2; c++)
                    for (int e = 0; e < A3; e++) w[1 + ((a * A2 + c) * A1 + b) * 8 + e] = x[((a * A1 + b) * A2 + c) * A3 + e];
        L.rank = 4;
        long long dims[4] = {A0, A2, A1, A3}, ss[4] = {A1 * A2 * A3, A3, A2 * A3, 1}, ds[4] = {A2 * A1 * 8, A1 * 8, 8, 1};
        memcpy(L.dims, dims, sizeof dims), memcpy(L.src_stride, ss, sizeof ss), memcpy(L.dst_stride, ds, sizeof ds);
        L.dst_base = 1;
        const int ny = 2 * 5 * 3 * 8 + 1;
        RtCudaPtr px = up(dev, x, sizeof x), py = up(dev, NULL, sizeof y);
        long long nn = ny, nw = n;
        float half = 0.5f;
        void *f[] = {&py, &nn, &half};
        void *c[] = {&py, &px, &nw, &L};
        if (launch_lib(dev, cache, arch, "layout.cu", "trlc_fill", 1, 256, f, &d) == 0 &&
            launch_lib(dev, cache, arch, "layout.cu", "trlc_strided_copy", 1, 256, c, &d) == 0) {
            rt_cuda_download(dev, y, py, sizeof y);
            CHECK_MSG(!memcmp(y, w, sizeof y), "strided copy (permute into a padded window) differs");
        }
        RtCudaPtr pi = up(dev, NULL, 1000 * 4);
        long long na = 1000;
        void *r[] = {&pi, &na};
        if (launch_lib(dev, cache, arch, "layout.cu", "trlc_arange", 2, 256, r, &d) == 0) {
            int32_t ar[1000];
            int wrong = 0;
            rt_cuda_download(dev, ar, pi, sizeof ar);
            for (int i = 0; i < 1000; i++) wrong += ar[i] != i;
            CHECK(wrong == 0);
        }
        rt_cuda_free(dev, px), rt_cuda_free(dev, py), rt_cuda_free(dev, pi);
    }
    {   // the sum of squares: one partial per block
        enum { NG = 5000, NB = 3 };
        float *g = malloc(NG * 4), part[NB];
        double want_s = 0;
        for (int i = 0; i < NG; i++) g[i] = frand(), want_s += (double)g[i] * g[i];
        RtCudaPtr pg = up(dev, g, NG * 4), pp = up(dev, NULL, sizeof part);
        long long n = NG;
        void *a[] = {&pp, &pg, &n};
        if (launch_lib(dev, cache, arch, "adamw.cu", "trlc_sumsq_partial", NB, 256, a, &d) == 0) {
            rt_cuda_download(dev, part, pp, sizeof part);
            double s = 0;
            for (int i = 0; i < NB; i++) s += part[i];
            printf("sum of squares on the GPU: rel. error %.2g\n", fabs(s - want_s) / want_s);
            CHECK(fabs(s - want_s) <= 1e-5 * want_s);
        }
        rt_cuda_free(dev, pg), rt_cuda_free(dev, pp);
        free(g);
    }
    {   // cross-entropy on bf16 logits (forward; backward in place, bf16 gradients)
        enum { R = 9, C = 777 };
        uint16_t *lg16 = malloc(R * C * 2);
        float *lg = malloc(R * C * 4), loss[R], lse[R], gl[R], *dl = malloc(R * C * 4);
        int32_t lab[R];
        for (int i = 0; i < R * C; i++) lg16[i] = gpu_test_bf16_bits(10 * frand()), lg[i] = gpu_test_bf16_value(lg16[i]);
        for (int i = 0; i < R; i++) lab[i] = i == 4 ? -100 : (i * 131) % C, gl[i] = 1 + frand();
        trlc_cross_entropy_ref(loss, lse, lg, lab, R, C, -100, 0.1f);
        trlc_cross_entropy_bwd_ref(dl, lg, lse, lab, gl, R, C, -100, 0.1f);
        RtCudaPtr plg = up(dev, lg16, R * C * 2), plab = up(dev, lab, sizeof lab), pgl = up(dev, gl, sizeof gl);
        RtCudaPtr ploss = up(dev, NULL, sizeof loss), plse = up(dev, NULL, sizeof lse);
        long long vv = C;
        int ign = -100;
        float eps = 0.1f;
        void *a1[] = {&ploss, &plse, &plg, &plab, &vv, &ign, &eps};
        void *a2[] = {&plg, &plg, &plse, &plab, &pgl, &vv, &ign, &eps};
        if (launch_lib(dev, cache, arch, "cross_entropy.cu", "trlc_cross_entropy_forward_bf16", R, 256, a1, &d) == 0 &&
            launch_lib(dev, cache, arch, "cross_entropy.cu", "trlc_cross_entropy_backward_bf16", R, 256, a2, &d) == 0) {
            float gloss[R];
            rt_cuda_download(dev, gloss, ploss, sizeof gloss);
            rt_cuda_download(dev, lg16, plg, R * C * 2);
            for (int i = 0; i < R * C; i++) got[i] = gpu_test_bf16_value(lg16[i]);
            double e1 = gpu_test_relerr(gloss, loss, R), e2 = gpu_test_relerr(got, dl, R * C);
            printf("cross-entropy on the GPU, bf16 logits (V=%d): loss %.2g, dlogits (bf16, in place) %.2g\n", C, e1, e2);
            CHECK(e1 < 1e-5 && e2 < 4e-3);   // the gradient is rounded to bf16 once
        }
        rt_cuda_free(dev, plg), rt_cuda_free(dev, plab), rt_cuda_free(dev, pgl), rt_cuda_free(dev, ploss);
        rt_cuda_free(dev, plse);
        free(lg16), free(lg), free(dl);
    }
    {   // gather along the middle axis, forward and backward, with duplicated and one bad index
        enum { O = 3, LI = 4, LX = 6, IN = 5 };
        float x[O * LX * IN], g[O * LI * IN], o1[O * LI * IN], o2[O * LI * IN], dx1[O * LX * IN], dx2[O * LX * IN];
        int32_t idx[O * LI * IN];
        for (int i = 0; i < O * LX * IN; i++) x[i] = frand();
        for (int i = 0; i < O * LI * IN; i++) g[i] = frand(), idx[i] = i == 23 ? LX : (i * 5) % LX;
        int bad1 = 0, bad2 = 0, gb1 = -1, gb2 = -1;
        trlc_gather_ref(o1, &bad1, x, idx, O, LI, LX, IN);
        trlc_gather_bwd_ref(dx1, &bad2, idx, g, O, LI, LX, IN);
        RtCudaPtr po = up(dev, NULL, sizeof o2), pb = up(dev, NULL, 4), px = up(dev, x, sizeof x), pi = up(dev, idx, sizeof idx);
        RtCudaPtr pg = up(dev, g, sizeof g), pdx = up(dev, NULL, sizeof dx2);
        int zero = 0;
        long long o = O, li = LI, lx = LX, in = IN;
        void *a1[] = {&po, &pb, &px, &pi, &o, &li, &lx, &in};
        void *a2[] = {&pdx, &pb, &pi, &pg, &o, &li, &lx, &in};
        rt_cuda_upload(dev, pb, &zero, 4);
        if (launch_lib(dev, cache, arch, "gather.cu", "trlc_gather_forward_f32", 1, 256, a1, &d) == 0) {
            rt_cuda_download(dev, o2, po, sizeof o2);
            rt_cuda_download(dev, &gb1, pb, 4);
            CHECK_MSG(!memcmp(o1, o2, sizeof o1) && gb1 == bad1, "gather forward differs (bad %d vs %d)", gb1, bad1);
        }
        rt_cuda_upload(dev, pb, &zero, 4);
        if (launch_lib(dev, cache, arch, "gather.cu", "trlc_gather_backward_f32", 1, 256, a2, &d) == 0) {
            rt_cuda_download(dev, dx2, pdx, sizeof dx2);
            rt_cuda_download(dev, &gb2, pb, 4);
            CHECK_MSG(!memcmp(dx1, dx2, sizeof dx1) && gb2 == bad2, "gather backward differs (bad %d vs %d)", gb2, bad2);
        }
        rt_cuda_free(dev, po), rt_cuda_free(dev, pb), rt_cuda_free(dev, px), rt_cuda_free(dev, pi);
        rt_cuda_free(dev, pg), rt_cuda_free(dev, pdx);
    }
    {   // NF4 and map8 dequantization (odd n, a partial last block)
        enum { NQ = 301, BLK = 64 };
        uint8_t packed[(NQ + 1) / 2], q8[NQ];
        float absmax[(NQ + BLK - 1) / BLK], map[256], o1[NQ], o2[NQ];
        for (int i = 0; i < (NQ + 1) / 2; i++) packed[i] = (uint8_t)(i * 37 + 11);
        for (int i = 0; i < NQ; i++) q8[i] = (uint8_t)(i * 91 + 5);
        for (int i = 0; i < (NQ + BLK - 1) / BLK; i++) absmax[i] = 0.5f + frand();
        for (int i = 0; i < 256; i++) map[i] = frand();
        RtCudaPtr po = up(dev, NULL, sizeof o2), pp = up(dev, packed, sizeof packed), pa = up(dev, absmax, sizeof absmax);
        RtCudaPtr pq = up(dev, q8, sizeof q8), pm = up(dev, map, sizeof map);
        long long n = NQ, blk = BLK;
        float off = 0.25f;
        void *a1[] = {&po, &pp, &pa, &n, &blk};
        trlc_dequant_nf4_ref(o1, packed, absmax, NQ, BLK);
        if (launch_lib(dev, cache, arch, "quant.cu", "trlc_dequant_nf4_f32", 1, 256, a1, &d) == 0) {
            rt_cuda_download(dev, o2, po, sizeof o2);
            CHECK_MSG(!memcmp(o1, o2, sizeof o1), "NF4 dequantization differs");
        }
        void *a2[] = {&po, &pq, &pm, &pa, &n, &blk, &off};
        trlc_dequant_map8_ref(o1, q8, map, absmax, NQ, BLK, off);
        if (launch_lib(dev, cache, arch, "quant.cu", "trlc_dequant_map8_f32", 1, 256, a2, &d) == 0) {
            rt_cuda_download(dev, o2, po, sizeof o2);
            CHECK_MSG(!memcmp(o1, o2, sizeof o1), "map8 dequantization differs");
        }
        rt_cuda_free(dev, po), rt_cuda_free(dev, pp), rt_cuda_free(dev, pa), rt_cuda_free(dev, pq), rt_cuda_free(dev, pm);
    }
    free(table), free(out), free(want), free(grad), free(got);
    diag_free(&d);
}

// attention at shapes the main case does not reach: head sizes 16 / 32 / 80 / 128, one KV head,
// no grouping, T a multiple of the tile or not, key masks (left padding under the causal mask
// leaves queries seeing no key), segments with a key mask
static void test_attention_shapes(RtCudaDevice *dev, RtCudaCache *cache, const char *arch) {
    Diag d;
    diag_init(&d, stderr);
    const char *src = cg_library_source("attention.cu");
    void *ffw = build(dev, cache, arch, src, "attention.cu", "trlc_attention_forward", &d);
    void *fdq = build(dev, cache, arch, src, "attention.cu", "trlc_attention_backward_dq", &d);
    void *fkv = build(dev, cache, arch, src, "attention.cu", "trlc_attention_backward_dkdv", &d);
    CHECK(ffw && fdq && fkv);
    static const struct { int B, Hq, Hkv, T, D, causal, mask, seg; } cases[] = {
        {1, 2, 2, 33, 16, 1, 1, 0},   // left padding: queries 0-4 see no key
        {2, 3, 1, 40, 128, 0, 2, 0},  // scattered padding keys, full attention
        {1, 4, 2, 65, 80, 1, 0, 1},   // segments
        {2, 2, 1, 32, 32, 1, 2, 1},   // segments and padding keys
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0] && ffw && fdq && fkv; c++) {
        const int B = cases[c].B, Hq = cases[c].Hq, Hkv = cases[c].Hkv, T = cases[c].T, D = cases[c].D;
        const int nq = B * Hq * T * D, nkv = B * Hkv * T * D, nl = B * Hq * T;
        float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *go = malloc(nq * 4);
        float *o = malloc(nq * 4), *lse = malloc(nl * 4), *dq = malloc(nq * 4), *delta = malloc(nl * 4);
        float *dk = malloc(nkv * 4), *dv = malloc(nkv * 4), *got = malloc(nq * 4), *km = malloc(B * T * 4);
        int32_t *sg = malloc(B * T * 4);
        for (int i = 0; i < nq; i++) q[i] = frand(), go[i] = frand();
        for (int i = 0; i < nkv; i++) k[i] = frand(), v[i] = frand();
        for (int i = 0; i < B * T; i++) {
            int t = i % T;
            km[i] = cases[c].mask == 1 ? (t >= 5 ? 1.0f : 0.0f) : (t % 7 == 3 ? 0.0f : 1.0f);
            sg[i] = t < T / 3 ? 0 : t < T - 4 ? 1 : -1;
        }
        const float *kmp = cases[c].mask ? km : NULL;
        const int32_t *sgp = cases[c].seg ? sg : NULL;
        int causal = cases[c].causal;
        float scale = 1.0f / sqrtf((float)D);
        trlc_attention_fwd_ref(o, lse, q, k, v, sgp, kmp, B, Hq, Hkv, T, D, scale, causal);
        trlc_attention_bwd_dq_ref(dq, delta, q, k, v, o, go, lse, sgp, kmp, B, Hq, Hkv, T, D, scale, causal);
        trlc_attention_bwd_dkdv_ref(dk, dv, q, k, v, go, lse, delta, sgp, kmp, B, Hq, Hkv, T, D, scale, causal);
        RtCudaPtr ps = sgp ? up(dev, sg, B * T * 4) : 0, pkm = kmp ? up(dev, km, B * T * 4) : 0;
        RtCudaPtr pq = up(dev, q, nq * 4), pk = up(dev, k, nkv * 4), pv = up(dev, v, nkv * 4), pgo = up(dev, go, nq * 4);
        RtCudaPtr po = up(dev, NULL, nq * 4), pl = up(dev, NULL, nl * 4), pdq = up(dev, NULL, nq * 4);
        RtCudaPtr pdl = up(dev, NULL, nl * 4), pdk = up(dev, NULL, nkv * 4), pdv = up(dev, NULL, nkv * 4);
        int t = T, dd = D, hq = Hq, hkv = Hkv;
        unsigned grid[3] = {(T + 3) / 4, Hq, B}, gridkv[3] = {(T + 3) / 4, Hkv, B}, block[3] = {128, 1, 1};
        void *a1[] = {&po, &pl, &pq, &pk, &pv, &ps, &pkm, &t, &dd, &hq, &hkv, &scale, &causal};
        void *a2[] = {&pdq, &pdl, &pq, &pk, &pv, &po, &pgo, &pl, &ps, &pkm, &t, &dd, &hq, &hkv, &scale, &causal};
        void *a3[] = {&pdk, &pdv, &pq, &pk, &pv, &pgo, &pl, &pdl, &ps, &pkm, &t, &dd, &hq, &hkv, &scale, &causal};
        CHECK(rt_cuda_launch(dev, ffw, grid, block, 0, a1, "attention forward") == 0);
        CHECK(rt_cuda_launch(dev, fdq, grid, block, 0, a2, "attention dq") == 0);
        CHECK(rt_cuda_launch(dev, fkv, gridkv, block, 0, a3, "attention dkdv") == 0);
        CHECK(rt_cuda_sync(dev, "attention") == 0);
        double e[5];
        rt_cuda_download(dev, got, po, nq * 4), e[0] = gpu_test_relerr_eq(got, o, nq);
        rt_cuda_download(dev, got, pl, nl * 4), e[1] = gpu_test_relerr_eq(got, lse, nl);
        rt_cuda_download(dev, got, pdq, nq * 4), e[2] = gpu_test_relerr_eq(got, dq, nq);
        rt_cuda_download(dev, got, pdk, nkv * 4), e[3] = gpu_test_relerr_eq(got, dk, nkv);
        rt_cuda_download(dev, got, pdv, nkv * 4), e[4] = gpu_test_relerr_eq(got, dv, nkv);
        printf("attention on the GPU (B=%d Hq=%d Hkv=%d T=%d D=%d%s%s%s): o %.2g lse %.2g dq %.2g dk %.2g dv %.2g\n", B, Hq,
               Hkv, T, D, causal ? ", causal" : "", cases[c].mask ? ", key mask" : "", sgp ? ", segments" : "", e[0], e[1],
               e[2], e[3], e[4]);
        for (int i = 0; i < 5; i++) CHECK_MSG(e[i] < 1e-3, "case %zu output %d: %.3g", c, i, e[i]);
        RtCudaPtr all[] = {pq, pk, pv, pgo, po, pl, pdq, pdl, pdk, pdv};
        for (int i = 0; i < 10; i++) rt_cuda_free(dev, all[i]);
        if (ps) rt_cuda_free(dev, ps);
        if (pkm) rt_cuda_free(dev, pkm);
        free(q), free(k), free(v), free(go), free(o), free(lse), free(dq), free(delta), free(dk), free(dv), free(got);
        free(km), free(sg);
    }
    diag_free(&d);
}

// Random graphs across reshapes (gpu_test_view_graph; fuse.h, fusing across views): the
// generated CUDA of groups over several views of D's elements (loads at a view's broadcast
// coordinates, reductions beside them) vs the interpreter.
static double frand01(void) { return frand() + 0.5; }

static void test_codegen_views(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, int ngraphs) {
    double worst = 0;
    int groups = 0, multi = 0;
    for (int it = 0; it < ngraphs; it++) {
        Diag d;
        diag_init(&d, stderr);
        IrGraph g;
        ir_graph_init(&g, &d, IR_F32);
        char what[48];
        snprintf(what, sizeof what, "codegen: view graph %d", it);
        gpu_test_view_graph(&g, it, frand01);
        CHECK_MSG(g.errors == 0, "%s: graph errors", what);
        FusePlan plan;
        memset(&plan, 0, sizeof plan);
        if (g.errors == 0 && fuse_plan(&g, &d, &plan) == 0) {
            int64_t sym[IR_NSYMS] = {2, 35};
            double e = check_groups(dev, cache, arch, what, &g, &plan, sym, true, true, &d);
            if (!(e <= worst)) worst = e;
            groups += plan.ngroups;
            for (int gi = 0; gi < plan.ngroups; gi++) multi += plan.groups[gi].nspaces > 1;
        } else CHECK_MSG(0, "%s: no fusion plan", what);
        fuse_plan_free(&plan);
        ir_graph_free(&g);
        diag_free(&d);
    }
    printf("codegen: %d random graphs across reshapes, %d fused groups (%d over several views) on the GPU vs the "
           "interpreter: max rel. error %.3g\n", ngraphs, groups, multi, worst);
    CHECK(multi > 10);
}

int main(int argc, char **argv) {
    GpuTestDevice t;
    if (!gpu_test_open(&t, "gpu.exec", ": skipped")) return 77;
    printf("gpu.exec: device 0 is %s\n", t.arch);
    for (int i = 1; i < argc; i++) {   // SPEC, or --bf16 SPEC: the graph with bf16 mixed precision
        bool mixed = !strcmp(argv[i], "--bf16") && i + 1 < argc;
        test_fused(t.dev, &t.cache, t.arch, argv[i + mixed], mixed);
        i += mixed;
    }
    test_codegen_fuzz(t.dev, &t.cache, t.arch, 40);
    test_library(t.dev, &t.cache, t.arch);
    test_library_more(t.dev, &t.cache, t.arch);
    test_attention_shapes(t.dev, &t.cache, t.arch);
    test_codegen_views(t.dev, &t.cache, t.arch, 24);
    gpu_test_close(&t);
    return test_done("gpu.exec");
}
