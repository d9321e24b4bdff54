// test_attention_tc.c — the tensor-core attention kernels (kernels/attention_tc.cu) and their C
// reference (kernels_ref.c trlc_attention_tc_*_ref):
//  1. the reference against an independent double-precision computation of the same contract
//     (bf16 inputs, P / dS / dO rounded to bf16 before their products), every output;
//  2. with the CUDA toolkit: attention_tc.cu (as embedded in trlc) compiles with NVRTC for sm_80
//     and sm_90;
//  3. on a device (a GPU, or the emulator through $TRLC_CUDA_DRIVER): the three kernels against the
//     reference on random inputs, B=2, Hq=4, Hkv=2 (GQA), T in {1, 37, 64, 130}, D in {12, 64, 128},
//     causal and full, with no mask / a key mask / packed segments plus left padding (query rows
//     with no key); and the tc kernels against the fp32 kernels (attention.cu) on the same
//     bf16-rounded inputs: bf16 accuracy (normwise relative error under 1e-2).
// Tolerances. Reference vs double: the only differences are fp32 rounding of the sums (~1e-7
// relative) and, where that moves a P or dS value across a bf16 rounding boundary, one term
// changing by one bf16 ulp (2^-8 relative): seen up to 6e-5 normwise, bound 3e-4. Kernels vs
// reference: the same fp32 quantities summed in another order (WMMA tiles, the online max of the
// forward's first pass), so again fp32 rounding plus rare bf16 boundary flips: seen up to 6e-5,
// bound 2e-4; lse and delta are plain fp32 sums: 1e-5. The bf16 roundings themselves move the
// results by ~2e-3 (tc vs fp32 kernels), so a rounding left out or added fails these bounds.
// Usage: test_gpu_attention_tc [--bench [B T]] (environment as gpu.library; --bench times the
// kernels at Qwen3-0.6B's attention shape on a GPU after the tests: forward, the split backward
// (dq + dkdv kernels, 7 products) and the fused one (memset + delta + fused kernel, 5 products,
// what the executor runs unless TRLC_ATTN_BWD=split), and compares fused with split).
#include "codegen_cuda.h"
#include "gpu_test_util.h"
#include "kernels_ref.h"
#include "test.h"
#ifdef TRLC_HAVE_CUDA
#include "rt_cuda.h"
#endif
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static uint64_t rng = 2024;

static double round_bf16(double v) { return gpu_test_bf16_value(gpu_test_bf16_bits((float)v)); }

// gpu_test_normdiff: ||got - want||_2 / max(||want||_2, 1e-2 sqrt(n)) over the finite entries,
// relative to the RMS of the expected values, or to an RMS of 1e-2 where they are smaller (with
// T = 1 every P is 1 and dS = dP - delta is cancellation noise of size ~1e-3)
static double normdiff(const float *got, const float *want, int64_t n) { return gpu_test_normdiff(got, want, n); }

typedef struct Case {
    int B, Hq, Hkv, T, D, causal, mask;   // mask: 0 none, 1 key_mask, 2 segments + left padding
    float scale;
    uint16_t *q, *k, *v;                   // bf16 bits
    float *go, *km;                        // dO; key mask (B, T)
    int32_t *seg;                          // (B, T)
    // the reference's results
    float *o, *lse, *dq, *dk, *dv, *delta;
} Case;

static void case_init(Case *c, int T, int D, int causal, int mask) {
    memset(c, 0, sizeof *c);
    c->B = 2, c->Hq = 4, c->Hkv = 2, c->T = T, c->D = D, c->causal = causal, c->mask = mask;
    c->scale = 1.0f / sqrtf((float)D);
    const int64_t nq = (int64_t)c->B * c->Hq * T * D, nkv = (int64_t)c->B * c->Hkv * T * D, nl = (int64_t)c->B * c->Hq * T;
    c->q = malloc(nq * 2), c->k = malloc(nkv * 2), c->v = malloc(nkv * 2), c->go = malloc(nq * 4);
    c->km = malloc((size_t)c->B * T * 4), c->seg = malloc((size_t)c->B * T * 4);
    c->o = malloc(nq * 4), c->lse = malloc(nl * 4), c->dq = malloc(nq * 4), c->delta = malloc(nl * 4);
    c->dk = malloc(nkv * 4), c->dv = malloc(nkv * 4);
    gpu_test_attn_inputs(c->q, c->k, c->v, c->go, nq, nkv, &rng);
    gpu_test_attn_masks(c->km, c->seg, T);   // batch row 1 left-padded
    trlc_attention_tc_forward_ref(c->o, c->lse, c->q, c->k, c->v, mask == 2 ? c->seg : NULL, mask ? c->km : NULL, c->B,
                                  c->Hq, c->Hkv, T, D, c->scale, causal);
    trlc_attention_tc_backward_ref(c->dq, c->dk, c->dv, c->delta, c->q, c->k, c->v, c->o, c->go, c->lse,
                                   mask == 2 ? c->seg : NULL, mask ? c->km : NULL, c->B, c->Hq, c->Hkv, T, D, c->scale,
                                   causal);
}

static void case_free(Case *c) {
    void *all[] = {c->q, c->k, c->v, c->go, c->km, c->seg, c->o, c->lse, c->dq, c->dk, c->dv, c->delta};
    for (int i = 0; i < 12; i++) free(all[i]);
}

static const char *mask_name(int m) { return m == 0 ? "no mask" : m == 1 ? "key mask" : "segments + left padding"; }

// 1. the reference against the contract computed in double (independently: S, P, dP, dS per
// (query, key) pair; the bf16 roundings of P, dS and dO at the contract's points)
static void test_ref_vs_double(int T, int D, int causal, int mask) {
    Case c;
    case_init(&c, T, D, causal, mask);
    const int B = c.B, Hq = c.Hq, Hkv = c.Hkv;
    const int64_t nq = (int64_t)B * Hq * T * D, nkv = (int64_t)B * Hkv * T * D, nl = (int64_t)B * Hq * T;
    float *o = calloc(nq, 4), *lse = calloc(nl, 4), *dq = calloc(nq, 4), *dk = calloc(nkv, 4), *dv = calloc(nkv, 4);
    float *delta = calloc(nl, 4);
    double *s = malloc((size_t)T * 8), *dka = calloc(nkv, 8), *dva = calloc(nkv, 8), *acc = malloc((size_t)D * 8);
    int empty = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++) {
            const int hk = h / (Hq / Hkv);
            for (int i = 0; i < T; i++) {
                const int64_t ro = (((int64_t)b * Hq + h) * T + i) * D, lo = ((int64_t)b * Hq + h) * T + i;
                double m = -INFINITY;
                for (int j = 0; j < T; j++) {
                    bool vis = (!causal || j <= i) && (mask != 2 || c.seg[b * T + j] == c.seg[b * T + i]) &&
                               (mask == 0 || c.km[b * T + j] != 0.0f);
                    s[j] = -INFINITY;
                    if (!vis) continue;
                    double dot = 0;
                    const uint16_t *kj = c.k + (((int64_t)b * Hkv + hk) * T + j) * D;
                    for (int d = 0; d < D; d++)
                        dot += (double)gpu_test_bf16_value(c.q[ro + d]) * gpu_test_bf16_value(kj[d]);
                    s[j] = c.scale * dot;
                    if (s[j] > m) m = s[j];
                }
                double l = 0;
                for (int j = 0; j < T; j++) l += s[j] > -INFINITY ? exp(s[j] - m) : 0;
                const double li = l > 0 ? m + log(l) : INFINITY;
                empty += l == 0;
                lse[lo] = (float)li;
                double dl = 0;
                // delta_i of the reference's own output (as the kernels get it), its values rounded
                // to bf16 as a bf16 forward stores them (ir.h IR_SDPA: the backward reads bf16 O)
                for (int d = 0; d < D; d++) acc[d] = 0, dl += round_bf16(c.o[ro + d]) * c.go[ro + d];
                delta[lo] = (float)dl;
                for (int j = 0; j < T; j++) {
                    if (!(s[j] > -INFINITY)) continue;
                    const int64_t ko = (((int64_t)b * Hkv + hk) * T + j) * D;
                    const double p = exp(s[j] - li), pb = round_bf16(p);
                    double dp = 0;
                    for (int d = 0; d < D; d++) dp += round_bf16(c.go[ro + d]) * gpu_test_bf16_value(c.v[ko + d]);
                    const double ds = round_bf16(p * (dp - dl));
                    for (int d = 0; d < D; d++) {
                        acc[d] += pb * gpu_test_bf16_value(c.v[ko + d]);
                        dka[ko + d] += ds * gpu_test_bf16_value(c.q[ro + d]);
                        dva[ko + d] += pb * round_bf16(c.go[ro + d]);
                    }
                    for (int d = 0; d < D; d++) dq[ro + d] += (float)(c.scale * ds * gpu_test_bf16_value(c.k[ko + d]));
                }
                for (int d = 0; d < D; d++) o[ro + d] = (float)acc[d];
            }
        }
    for (int64_t e = 0; e < nkv; e++) dk[e] = (float)(c.scale * dka[e]), dv[e] = (float)dva[e];
    double e[6] = {normdiff(c.o, o, nq), normdiff(c.lse, lse, nl), normdiff(c.delta, delta, nl), normdiff(c.dq, dq, nq),
                   normdiff(c.dk, dk, nkv), normdiff(c.dv, dv, nkv)};
    printf("tc reference vs double (T=%d, D=%d, %s, %s; %d rows with no key): o %.2g lse %.2g delta %.2g dq %.2g "
           "dk %.2g dv %.2g\n", T, D, causal ? "causal" : "full", mask_name(mask), empty, e[0], e[1], e[2], e[3], e[4],
           e[5]);
    CHECK(e[0] < 3e-4 && e[1] < 1e-5 && e[2] < 1e-5 && e[3] < 3e-4 && e[4] < 3e-4 && e[5] < 3e-4);
    free(o), free(lse), free(dq), free(dk), free(dv), free(delta), free(s), free(dka), free(dva), free(acc);
    case_free(&c);
}

#ifdef TRLC_HAVE_CUDA
// 2. NVRTC: attention_tc.cu as trlc embeds it, for sm_80 and sm_90
static void test_nvrtc(void) {
    Diag d;
    diag_init(&d, stderr);
    RtCudaCache cache;
    rt_cuda_cache_init(&cache, &d);
    const char *src = cg_library_source("attention_tc.cu");
    CHECK(src != NULL);
    for (int a = 0; a < 2 && src; a++) {
        const char *arch = a ? "sm_90" : "sm_80";
        RtCudaProgram p = {.name = "attention_tc.cu", .source = src};
        CHECK(rt_cuda_compile(&cache, &p, 1, arch, true, 1, &d) == 0);
        const char *ents[] = {"trlc_attention_tc_forward", "trlc_attention_tc_backward_dq", "trlc_attention_tc_backward_dkdv"};
        int found = 0;
        for (int i = 0; i < 3; i++) found += p.ptx && strstr(p.ptx, ents[i]) != NULL;
        printf("attention_tc.cu for %s: %zu bytes of cubin, %d of 3 kernels in the PTX%s\n", arch,
               p.cubin_size, found, p.cached ? " (cache)" : "");
        CHECK(p.cubin_size > 0 && found == 3);
        rt_cuda_program_free(&p);
    }
    diag_free(&d);
}

// 3. on a device
typedef struct Dev {
    GpuTestDevice t;                // the device, its cache, arch and Diag
    RtCudaDevice *dev;              // t.dev
    void *fwd, *dq, *dkdv;          // attention_tc.cu
    void *fwd32, *dq32, *dkdv32;    // attention.cu
    void *delta, *fused;            // the fused backward (--bench; gpu.attn_bwd tests it)
} Dev;

// a fresh buffer: data uploaded, or zeros where there is none
static RtCudaPtr dev_up(Dev *g, const void *data, size_t bytes) { return gpu_test_buffer(g->dev, data, bytes); }

static double dev_err(Dev *g, RtCudaPtr p, const float *want, int64_t n) {
    float *got = malloc((size_t)n * 4);
    double e = 1e30;
    if (got && rt_cuda_download(g->dev, got, p, (size_t)n * 4) == 0) e = normdiff(got, want, n);
    free(got);
    return e;
}

static int launch(Dev *g, void *fn, const unsigned grid[3], void **args, const char *what) {
    int r = gpu_test_launch128(g->dev, fn, grid, args, what);
    CHECK_MSG(r == 0, "%s failed", what);
    return r;
}

// the tc kernels vs the reference; with fp32 set, the fp32 kernels of attention.cu too (on the
// bf16 values as floats) against the tc results. q, k, v at `off` elements into their
// allocations (off = 1: rows not 16-byte aligned, the kernels' scalar staging path even where
// D % 8 == 0).
static void dev_case(Dev *g, int T, int D, int causal, int mask, bool fp32, int off) {
    Case c;
    case_init(&c, T, D, causal, mask);
    const int64_t nq = (int64_t)c.B * c.Hq * T * D, nkv = (int64_t)c.B * c.Hkv * T * D, nl = (int64_t)c.B * c.Hq * T;
    RtCudaPtr pq, pk, pv;
    RtCudaPtr bq = gpu_test_buffer_at(g->dev, c.q, nq, off, &pq), bk = gpu_test_buffer_at(g->dev, c.k, nkv, off, &pk);
    RtCudaPtr bv = gpu_test_buffer_at(g->dev, c.v, nkv, off, &pv);
    RtCudaPtr pgo = dev_up(g, c.go, nq * 4), pm = mask ? dev_up(g, c.km, (size_t)c.B * T * 4) : 0;
    RtCudaPtr ps = mask == 2 ? dev_up(g, c.seg, (size_t)c.B * T * 4) : 0;
    RtCudaPtr po = dev_up(g, NULL, nq * 4), pl = dev_up(g, NULL, nl * 4), pdq = dev_up(g, NULL, nq * 4);
    RtCudaPtr pro = dev_up(g, c.o, nq * 4), prl = dev_up(g, c.lse, nl * 4);   // the reference's out and lse
    RtCudaPtr pdl = dev_up(g, NULL, nl * 4), pdk = dev_up(g, NULL, nkv * 4), pdv = dev_up(g, NULL, nkv * 4);
    int t = T, dd = D, hq = c.Hq, hkv = c.Hkv, cs = causal;
    float scale = c.scale;
    unsigned grid[3] = {(unsigned)(T + 63) / 64, (unsigned)c.Hq, (unsigned)c.B};
    unsigned gridkv[3] = {(unsigned)(T + 63) / 64, (unsigned)c.Hkv, (unsigned)c.B};
    void *a1[] = {&po, &pl, &pq, &pk, &pv, &ps, &pm, &t, &dd, &hq, &hkv, &scale, &cs};
    // the backward gets the reference's out and lse: its results do not inherit the forward's
    // rounding differences (delta = dO . out would, through cancellation)
    void *a2[] = {&pdq, &pdl, &pq, &pk, &pv, &pro, &pgo, &prl, &ps, &pm, &t, &dd, &hq, &hkv, &scale, &cs};
    void *a3[] = {&pdk, &pdv, &pq, &pk, &pv, &pgo, &prl, &pdl, &ps, &pm, &t, &dd, &hq, &hkv, &scale, &cs};
    if (launch(g, g->fwd, grid, a1, "trlc_attention_tc_forward") == 0 &&
        launch(g, g->dq, grid, a2, "trlc_attention_tc_backward_dq") == 0 &&
        launch(g, g->dkdv, gridkv, a3, "trlc_attention_tc_backward_dkdv") == 0) {
        double e[6] = {dev_err(g, po, c.o, nq), dev_err(g, pl, c.lse, nl), dev_err(g, pdl, c.delta, nl),
                       dev_err(g, pdq, c.dq, nq), dev_err(g, pdk, c.dk, nkv), dev_err(g, pdv, c.dv, nkv)};
        printf("tc kernels vs reference (T=%d, D=%d, %s, %s%s): o %.2g lse %.2g delta %.2g dq %.2g dk %.2g dv %.2g\n",
               T, D, causal ? "causal" : "full", mask_name(mask), off ? ", q/k/v rows misaligned" : "", e[0], e[1],
               e[2], e[3], e[4], e[5]);
        CHECK(e[0] < 2e-4 && e[1] < 1e-5 && e[2] < 1e-5 && e[3] < 2e-4 && e[4] < 2e-4 && e[5] < 2e-4);
    }
    if (fp32) {
        // the fp32 kernels on the same (bf16-valued) inputs: the tc results within bf16 accuracy
        float *qf = malloc(nq * 4), *kf = malloc(nkv * 4), *vf = malloc(nkv * 4);
        float *o = malloc(nq * 4), *dq = malloc(nq * 4), *dk = malloc(nkv * 4), *dv = malloc(nkv * 4);
        for (int64_t i = 0; i < nq; i++) qf[i] = gpu_test_bf16_value(c.q[i]);
        for (int64_t i = 0; i < nkv; i++) kf[i] = gpu_test_bf16_value(c.k[i]), vf[i] = gpu_test_bf16_value(c.v[i]);
        RtCudaPtr fq = dev_up(g, qf, nq * 4), fk = dev_up(g, kf, nkv * 4), fv = dev_up(g, vf, nkv * 4);
        RtCudaPtr fo = dev_up(g, NULL, nq * 4), fl = dev_up(g, NULL, nl * 4), fdq = dev_up(g, NULL, nq * 4);
        RtCudaPtr fdl = dev_up(g, NULL, nl * 4), fdk = dev_up(g, NULL, nkv * 4), fdv = dev_up(g, NULL, nkv * 4);
        unsigned g4[3] = {(unsigned)(T + 3) / 4, (unsigned)c.Hq, (unsigned)c.B};
        unsigned g4kv[3] = {(unsigned)(T + 3) / 4, (unsigned)c.Hkv, (unsigned)c.B};
        void *b1[] = {&fo, &fl, &fq, &fk, &fv, &ps, &pm, &t, &dd, &hq, &hkv, &scale, &cs};
        void *b2[] = {&fdq, &fdl, &fq, &fk, &fv, &fo, &pgo, &fl, &ps, &pm, &t, &dd, &hq, &hkv, &scale, &cs};
        void *b3[] = {&fdk, &fdv, &fq, &fk, &fv, &pgo, &fl, &fdl, &ps, &pm, &t, &dd, &hq, &hkv, &scale, &cs};
        if (launch(g, g->fwd32, g4, b1, "trlc_attention_forward") == 0 &&
            launch(g, g->dq32, g4, b2, "trlc_attention_backward_dq") == 0 &&
            launch(g, g->dkdv32, g4kv, b3, "trlc_attention_backward_dkdv") == 0 &&
            rt_cuda_download(g->dev, o, fo, nq * 4) == 0 && rt_cuda_download(g->dev, dq, fdq, nq * 4) == 0 &&
            rt_cuda_download(g->dev, dk, fdk, nkv * 4) == 0 && rt_cuda_download(g->dev, dv, fdv, nkv * 4) == 0) {
            double e[4] = {dev_err(g, po, o, nq), dev_err(g, pdq, dq, nq), dev_err(g, pdk, dk, nkv),
                           dev_err(g, pdv, dv, nkv)};
            printf("  tc vs fp32 kernels, same bf16 inputs: o %.2g dq %.2g dk %.2g dv %.2g (bf16 accuracy: < 1e-2)\n",
                   e[0], e[1], e[2], e[3]);
            CHECK(e[0] < 1e-2 && e[1] < 1e-2 && e[2] < 1e-2 && e[3] < 1e-2);
            // and bf16 rounding is really there: the tc results are not the fp32 ones
            CHECK(e[0] > 1e-6 && e[3] > 1e-6);
        }
        RtCudaPtr fall[] = {fq, fk, fv, fo, fl, fdq, fdl, fdk, fdv};
        for (int i = 0; i < 9; i++) rt_cuda_free(g->dev, fall[i]);
        free(qf), free(kf), free(vf), free(o), free(dq), free(dk), free(dv);
    }
    RtCudaPtr all[] = {bq, bk, bv, pgo, po, pl, pdq, pdl, pdk, pdv, pro, prl};
    for (int i = 0; i < 12; i++) rt_cuda_free(g->dev, all[i]);
    if (pm) rt_cuda_free(g->dev, pm);
    if (ps) rt_cuda_free(g->dev, ps);
    case_free(&c);
}

// --bench on a GPU: Qwen3-0.6B's attention (Hq 16, Hkv 8, D 128, causal) at B x T, the tc kernels
// against the fp32 ones: milliseconds per launch (after a warm-up, mean of 10) and TFLOP/s counting
// the causal half of 4 B Hq T^2 D (forward: QK^T and PV) and of 2.5 times that (backward); the
// two results compared normwise (bf16 accuracy).
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double time_launch(Dev *g, void *fn, const unsigned grid[3], void **args, const char *what) {
    unsigned blk[3] = {128, 1, 1};
    if (!fn || rt_cuda_launch(g->dev, fn, grid, blk, 0, args, what) != 0 || rt_cuda_sync(g->dev, what) != 0) return -1;
    double t0 = now_s();
    for (int r = 0; r < 10; r++)
        if (rt_cuda_launch(g->dev, fn, grid, blk, 0, args, what) != 0) return -1;
    if (rt_cuda_sync(g->dev, what) != 0) return -1;
    return (now_s() - t0) / 10 * 1e3;
}

// the fused backward (what the executor runs by default): dq zeroed, delta, the fused kernel;
// milliseconds per backward (after a warm-up, mean of 10), -1 on failure
static double time_fused(Dev *g, RtCudaPtr dq, size_t dq_bytes, const unsigned gq[3], void **ad,
                         const unsigned gkv[3], void **af) {
    unsigned blk[3] = {128, 1, 1};
    double t0 = 0;
    for (int r = 0; r < 11; r++) {
        if (r == 1) {
            if (rt_cuda_sync(g->dev, "fused backward") != 0) return -1;
            t0 = now_s();
        }
        if (rt_cuda_zero_async(g->dev, NULL, dq, dq_bytes) != 0 ||
            rt_cuda_launch(g->dev, g->delta, gq, blk, 0, ad, "backward_delta") != 0 ||
            rt_cuda_launch(g->dev, g->fused, gkv, blk, 0, af, "backward_fused") != 0)
            return -1;
    }
    if (rt_cuda_sync(g->dev, "fused backward") != 0) return -1;
    return (now_s() - t0) / 10 * 1e3;
}

static float frand(void) { return gpu_test_frand(&rng); }

static void bench(Dev *g, int B, int T) {
    const int Hq = 16, Hkv = 8, D = 128;
    const int64_t nq = (int64_t)B * Hq * T * D, nkv = (int64_t)B * Hkv * T * D, nl = (int64_t)B * Hq * T;
    uint16_t *hb = malloc((size_t)nq * 2);
    float *hf = malloc((size_t)nq * 4), *r1 = malloc((size_t)nq * 4), *r2 = malloc((size_t)nq * 4);
    if (!hb || !hf || !r1 || !r2) {
        free(hb), free(hf), free(r1), free(r2);
        return;
    }
    RtCudaPtr b16[3], f32[3], go = dev_up(g, NULL, nq * 4);
    for (int m = 0; m < 3; m++) {   // q, k, v: bf16 and the same values as fp32
        const int64_t n = m ? nkv : nq;
        for (int64_t i = 0; i < n; i++) hb[i] = gpu_test_bf16_bits(4 * frand()), hf[i] = gpu_test_bf16_value(hb[i]);
        b16[m] = dev_up(g, hb, (size_t)n * 2), f32[m] = dev_up(g, hf, (size_t)n * 4);
    }
    for (int64_t i = 0; i < nq; i++) hf[i] = frand();
    rt_cuda_upload(g->dev, go, hf, (size_t)nq * 4);
    RtCudaPtr o[2], l[2], dq[2], dl[2], dk[2], dv[2], none = 0;
    for (int x = 0; x < 2; x++) {
        o[x] = dev_up(g, NULL, nq * 4), l[x] = dev_up(g, NULL, nl * 4), dq[x] = dev_up(g, NULL, nq * 4);
        dl[x] = dev_up(g, NULL, nl * 4), dk[x] = dev_up(g, NULL, nkv * 4), dv[x] = dev_up(g, NULL, nkv * 4);
    }
    int t = T, dd = D, hq = Hq, hkv = Hkv, cs = 1;
    float scale = 1.0f / sqrtf((float)D);
    const double fl = 4.0 * B * Hq * (double)T * T * D / 2;
    printf("bench (B=%d, T=%d, Hq=%d, Hkv=%d, D=%d, causal):\n", B, T, Hq, Hkv, D);
    for (int x = 0; x < 2; x++) {   // 0: tc, 1: fp32
        RtCudaPtr *in = x ? f32 : b16;
        unsigned rows = x ? 4 : 64;
        unsigned grid[3] = {(unsigned)(T + rows - 1) / rows, (unsigned)Hq, (unsigned)B};
        unsigned gkv[3] = {(unsigned)(T + rows - 1) / rows, (unsigned)Hkv, (unsigned)B};
        void *a1[] = {&o[x], &l[x], &in[0], &in[1], &in[2], &none, &none, &t, &dd, &hq, &hkv, &scale, &cs};
        void *a2[] = {&dq[x], &dl[x], &in[0], &in[1], &in[2], &o[x], &go, &l[x], &none, &none, &t, &dd, &hq, &hkv,
                      &scale, &cs};
        void *a3[] = {&dk[x], &dv[x], &in[0], &in[1], &in[2], &go, &l[x], &dl[x], &none, &none, &t, &dd, &hq, &hkv,
                      &scale, &cs};
        double t1 = time_launch(g, x ? g->fwd32 : g->fwd, grid, a1, "forward");
        double t2 = time_launch(g, x ? g->dq32 : g->dq, grid, a2, "backward_dq");
        double t3 = time_launch(g, x ? g->dkdv32 : g->dkdv, gkv, a3, "backward_dkdv");
        printf("  %s: forward %.3f ms (%.1f TFLOP/s), dq %.3f ms, dkdv %.3f ms, backward %.1f TFLOP/s\n",
               x ? "fp32 attention.cu   " : "bf16 attention_tc.cu", t1, fl / (t1 * 1e-3) * 1e-12, t2, t3,
               2.5 * fl / ((t2 + t3) * 1e-3) * 1e-12);
        CHECK(t1 > 0 && t2 > 0 && t3 > 0);
        if (x == 0) {   // the fused backward (5 products) on the same inputs, into dq[1] / dk[1] / dv[1]
            void *ad[] = {&dl[1], &o[0], &go, &t, &dd, &hq};
            void *af[] = {&dq[1], &dk[1], &dv[1], &in[0], &in[1], &in[2], &go, &l[0], &dl[1], &none, &none, &t, &dd,
                          &hq, &hkv, &scale, &cs};
            double tfu = time_fused(g, dq[1], (size_t)nq * 4, grid, ad, gkv, af);
            // the timed loop added into dq 11 times: once more, for the comparison below
            if (rt_cuda_zero(g->dev, dq[1], (size_t)nq * 4) != 0 ||
                launch(g, g->delta, grid, ad, "backward_delta") != 0 || launch(g, g->fused, gkv, af, "backward_fused") != 0)
                tfu = -1;
            printf("  bf16 fused backward: %.3f ms (%.1f TFLOP/s; memset + delta + fused kernel), split (dq + dkdv) "
                   "%.3f ms: split / fused %.2fx\n", tfu, 2.5 * fl / (tfu * 1e-3) * 1e-12, t2 + t3, (t2 + t3) / tfu);
            CHECK(tfu > 0);
            float *a = malloc((size_t)nq * 4), *b2 = malloc((size_t)nq * 4);
            if (a && b2 && tfu > 0) {   // fused vs split, same inputs: fp32 summation order only
                const RtCudaPtr pr[3][2] = {{dq[0], dq[1]}, {dk[0], dk[1]}, {dv[0], dv[1]}};
                const int64_t ns3[3] = {nq, nkv, nkv};
                printf("  fused vs split:");
                for (int m = 0; m < 3; m++) {
                    rt_cuda_download(g->dev, a, pr[m][1], (size_t)ns3[m] * 4);
                    rt_cuda_download(g->dev, b2, pr[m][0], (size_t)ns3[m] * 4);
                    double e = normdiff(a, b2, ns3[m]);
                    printf(" %s %.2g", m == 0 ? "dq" : m == 1 ? "dk" : "dv", e);
                    CHECK(e < 1e-4);
                }
                printf("\n");
            }
            free(a), free(b2);
        }
    }
    RtCudaPtr pairs[4][2] = {{o[0], o[1]}, {dq[0], dq[1]}, {dk[0], dk[1]}, {dv[0], dv[1]}};
    const int64_t ns[4] = {nq, nq, nkv, nkv};
    const char *names[4] = {"o", "dq", "dk", "dv"};
    printf("  tc vs fp32:");
    for (int m = 0; m < 4; m++) {
        rt_cuda_download(g->dev, r1, pairs[m][0], (size_t)ns[m] * 4);
        rt_cuda_download(g->dev, r2, pairs[m][1], (size_t)ns[m] * 4);
        double e = normdiff(r1, r2, ns[m]);
        printf(" %s %.2g", names[m], e);
        CHECK(e < 1e-2);
    }
    printf("\n");
    for (int x = 0; x < 2; x++) {
        RtCudaPtr all[] = {o[x], l[x], dq[x], dl[x], dk[x], dv[x]};
        for (int i = 0; i < 6; i++) rt_cuda_free(g->dev, all[i]);
    }
    for (int m = 0; m < 3; m++) rt_cuda_free(g->dev, b16[m]), rt_cuda_free(g->dev, f32[m]);
    rt_cuda_free(g->dev, go);
    free(hb), free(hf), free(r1), free(r2);
}

static void test_device(int bench_b, int bench_t) {
    Dev g = {0};
    if (!gpu_test_open(&g.t, "gpu.attention_tc", " (nor $TRLC_CUDA_DRIVER): kernels not launched")) return;
    g.dev = g.t.dev;
    printf("gpu.attention_tc: launching on %s (%s)\n", g.t.arch, rt_cuda_is_emulated(g.dev) ? "the emulator" : "a GPU");
    const char *tc[5] = {"trlc_attention_tc_forward", "trlc_attention_tc_backward_dq", "trlc_attention_tc_backward_dkdv",
                         "trlc_attention_tc_backward_delta", "trlc_attention_tc_backward_fused"};
    const char *f32[3] = {"trlc_attention_forward", "trlc_attention_backward_dq", "trlc_attention_backward_dkdv"};
    void *fn[8];
    gpu_test_kernels(&g.t, "attention_tc.cu", cg_library_source("attention_tc.cu"), tc, fn, 5);
    gpu_test_kernels(&g.t, "attention.cu", cg_library_source("attention.cu"), f32, fn + 5, 3);
    g.fwd = fn[0], g.dq = fn[1], g.dkdv = fn[2], g.delta = fn[3], g.fused = fn[4];
    g.fwd32 = fn[5], g.dq32 = fn[6], g.dkdv32 = fn[7];
    const int Ts[4] = {1, 37, 64, 130}, Ds[3] = {12, 64, 128};
    int n = 0;
    for (int ti = 0; ti < 4; ti++)
        for (int di = 0; di < 3; di++)
            for (int causal = 1; causal >= 0; causal--, n++)
                dev_case(&g, Ts[ti], Ds[di], causal, n % 3, Ts[ti] == 130 && di + causal == 2, 0);
    // every mask with the largest shapes; rows not 16-byte aligned
    dev_case(&g, 130, 128, 1, 2, false, 0);
    dev_case(&g, 130, 64, 0, 1, false, 0);
    dev_case(&g, 37, 64, 1, 2, false, 1);
    if (bench_b > 0 && !rt_cuda_is_emulated(g.dev)) bench(&g, bench_b, bench_t);
    else if (bench_b > 0) printf("--bench: not on the emulator (no timing there)\n");
    gpu_test_close(&g.t);
}
#endif

int main(int argc, char **argv) {
    // --bench [B T]: after the tests, time the kernels on a GPU (default B 4, T 1024)
    int bench_b = 0, bench_t = 0;
    if (argc > 1 && !strcmp(argv[1], "--bench")) {
        bench_b = argc > 2 ? atoi(argv[2]) : 4, bench_t = argc > 3 ? atoi(argv[3]) : 1024;
        if (bench_b < 1 || bench_b > 64 || bench_t < 1 || bench_t > 32768) {
            fprintf(stderr, "usage: test_gpu_attention_tc [--bench [B (1..64) T (1..32768)]]\n");
            return 2;
        }
    }
    test_ref_vs_double(37, 12, 1, 0);
    test_ref_vs_double(64, 64, 0, 1);
    test_ref_vs_double(130, 64, 1, 2);
    test_ref_vs_double(130, 128, 0, 2);
    test_ref_vs_double(1, 16, 1, 1);
#ifdef TRLC_HAVE_CUDA
    test_nvrtc();
    test_device(bench_b, bench_t);
#else
    (void)bench_b, (void)bench_t;
#endif
    return test_done("gpu.attention_tc");
}
