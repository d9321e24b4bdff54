// test_attn_bwd.c — the fused tensor-core attention backward (kernels/attention_tc.cu:
// trlc_attention_tc_backward_delta(_bf16), then trlc_attention_tc_backward_fused, dQ added with
// fp32 atomics into a zeroed dQ) against the C reference (kernels_ref.c
// trlc_attention_tc_backward_ref) and against the split path (the dq(_bf16) and dkdv kernels,
// $TRLC_ATTN_BWD=split) on the same inputs: causal and full, GQA (Hq / Hkv = 1, 2, 4), T in
// {1, 37, 64, 130, 200} (several key blocks adding into the same dQ rows), D in {16, 40, 64, 128},
// no mask / key mask / packed segments with left padding (queries that see no key), bf16 and
// fp32 O, q / k / v rows not 16-byte aligned. Only on a device (a GPU, or the emulator through
// $TRLC_CUDA_DRIVER; exit 77 without one).
// What must hold:
//  - delta, dK and dV: the fused kernels compute them with the split kernels' operations in the
//    same order: bit for bit on the emulator (normwise 1e-6 on a GPU, whose tensor cores need not
//    sum a fragment the same way in two kernels);
//  - dQ: the same bf16(dS_ij) k_j products (exact in fp32), summed in another order (per 16-key
//    chunk, then the key blocks' partials, each times scale, in the order the atomics land):
//    element (i, d) may differ from the split path's by the fp32 rounding of two different
//    summation orders of the same n <= T + 1 terms, at most 2 (T + 4) 2^-24 A_id where
//    A_id = scale * sum_j |bf16(dS_ij) k_jd| (the standard bound for recursive summation, both
//    orders); on a GPU 4 times that plus 2^-6 max_j |scale bf16(dS_ij) k_jd| (S^T and S may round
//    apart there, flipping a bf16(dS) by one ulp);
//  - against the reference (whose S, dP are sequential fp32 dots, so bf16 flips happen): normwise
//    2e-4 for dQ, dK, dV, 1e-5 for delta (as gpu.attention_tc), and the maxima printed;
//  - a query that sees no key: dQ exactly 0;
//  - on the emulator the race check is on ($TRLC_CUEMU_RACECHECK=1): a dQ word two key blocks
//    both change without atomics fails the launch (a plain `+=` for the atomicAdd does; the
//    sequential emulator would otherwise give the right sums), and a tiny kernel proves the check
//    catches a plain `+=` across blocks and passes atomicAdd;
//  - the executor (with trlc_cuda_exec): TRLC_ATTN_BWD unset (fused) and split on a hand-built
//    graph agree (dK, dV, O bit for bit on the emulator, dQ normwise 1e-5) and match the
//    interpreter over three steps (CUDA graphs captured and replayed), fused making one launch
//    more a step (memset + delta + fused vs dq + dkdv), and a bad value refused.
#include "codegen_cuda.h"
#include "gpu_test_util.h"
#include "kernels_ref.h"
#include "test.h"
#ifdef TRLC_HAVE_CUDA
#include "rt_cuda.h"
#endif
#ifdef TRLC_HAVE_CUDA_EXEC
#include "cpu.h"
#include "exec.h"
#include "ir.h"
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

#ifdef TRLC_HAVE_CUDA
static uint64_t rng = 4242;

static float round_bf16(float v) { return gpu_test_bf16_value(gpu_test_bf16_bits(v)); }
static double normdiff(const float *got, const float *want, int64_t n) { return gpu_test_normdiff(got, want, n); }

static double maxabs(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]);
        if (!(e <= m)) m = e;   // NaN wins
    }
    return m;
}

typedef struct Dev {
    GpuTestDevice t;
    RtCudaDevice *dev;
    bool emu;
    void *delta, *delta16, *fused, *dq, *dq16, *dkdv;
} Dev;

typedef struct Shape {
    int T, D, Hq, Hkv, causal, mask, o16, off;   // mask: 0 none, 1 key mask, 2 segments + left padding
} Shape;

static double worst_dq_ratio;   // max over cases of |fused - split| / the bound (emulator)
static double worst_ref[3];     // max |got - ref| of dq, dk, dv over the cases

static int launch(Dev *g, void *fn, const unsigned grid[3], void **args, const char *what) {
    int r = gpu_test_launch128(g->dev, fn, grid, args, what);
    CHECK_MSG(r == 0, "%s failed", what);
    return r;
}

static RtCudaPtr up(Dev *g, const void *data, size_t bytes) { return gpu_test_buffer(g->dev, data, bytes); }

static bool down(Dev *g, void *host, RtCudaPtr p, size_t bytes) { return rt_cuda_download(g->dev, host, p, bytes) == 0; }

// One backward (fused: delta then fused; split: dq then dkdv): k1 on grid1, then k2 on grid2, then
// dQ, dK, dV and delta (dev[]) copied into host[]. True when all of it worked.
static bool backward(Dev *g, void *k1, const unsigned grid1[3], void **a1, const char *n1, void *k2,
                     const unsigned grid2[3], void **a2, const char *n2, float *const host[4], const RtCudaPtr dev[4],
                     const size_t bytes[4]) {
    bool ok = launch(g, k1, grid1, a1, n1) == 0 && launch(g, k2, grid2, a2, n2) == 0;
    for (int i = 0; i < 4 && ok; i++) ok = down(g, host[i], dev[i], bytes[i]);
    return ok;
}

// A_id and M_id (see the header) from the reference's own dS (float operations as kernels_ref.c)
static void dq_bounds(double *A, double *M, const Shape *s, int B, const uint16_t *q, const uint16_t *k,
                      const uint16_t *v, const float *go, const float *lse, const float *delta, const int32_t *seg,
                      const float *km, float scale) {
    const int T = s->T, D = s->D, Hq = s->Hq, Hkv = s->Hkv;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hq; h++)
            for (int i = 0; i < T; i++) {
                const int64_t ro = (((int64_t)b * Hq + h) * T + i) * D, kh = ((int64_t)b * Hkv + h / (Hq / Hkv)) * T * D;
                for (int d = 0; d < D; d++) A[ro + d] = M[ro + d] = 0;
                for (int j = 0; j < T; j++) {
                    bool vis = (!s->causal || j <= i) && (!seg || seg[b * T + j] == seg[b * T + i]) &&
                               (!km || km[b * T + j] != 0.0f);
                    if (!vis) continue;
                    float sc = 0, dp = 0;
                    for (int d = 0; d < D; d++) {
                        sc += gpu_test_bf16_value(q[ro + d]) * gpu_test_bf16_value(k[kh + (int64_t)j * D + d]);
                        dp += round_bf16(go[ro + d]) * gpu_test_bf16_value(v[kh + (int64_t)j * D + d]);
                    }
                    const float p = expf(scale * sc - lse[((int64_t)b * Hq + h) * T + i]);
                    const double ds = fabs((double)round_bf16(p * (dp - delta[((int64_t)b * Hq + h) * T + i])));
                    for (int d = 0; d < D; d++) {
                        double t = scale * ds * fabs((double)gpu_test_bf16_value(k[kh + (int64_t)j * D + d]));
                        A[ro + d] += t;
                        if (t > M[ro + d]) M[ro + d] = t;
                    }
                }
            }
}

static void run_case(Dev *g, const Shape *s) {
    const int B = 2, T = s->T, D = s->D, Hq = s->Hq, Hkv = s->Hkv;
    const int64_t nq = (int64_t)B * Hq * T * D, nkv = (int64_t)B * Hkv * T * D, nl = (int64_t)B * Hq * T;
    const float scale = 1.0f / sqrtf((float)D);
    uint16_t *q = malloc(nq * 2), *k = malloc(nkv * 2), *v = malloc(nkv * 2), *o16 = malloc(nq * 2);
    float *go = malloc(nq * 4), *o = malloc(nq * 4), *lse = malloc(nl * 4), *km = malloc((size_t)B * T * 4);
    int32_t *seg = malloc((size_t)B * T * 4);
    float *rdq = malloc(nq * 4), *rdk = malloc(nkv * 4), *rdv = malloc(nkv * 4), *rdl = malloc(nl * 4);
    float *fdq = malloc(nq * 4), *fdk = malloc(nkv * 4), *fdv = malloc(nkv * 4), *fdl = malloc(nl * 4);
    float *sdq = malloc(nq * 4), *sdk = malloc(nkv * 4), *sdv = malloc(nkv * 4), *sdl = malloc(nl * 4);
    double *A = malloc(nq * 8), *M = malloc(nq * 8);
    gpu_test_attn_inputs(q, k, v, go, nq, nkv, &rng);
    gpu_test_attn_masks(km, seg, T);   // batch row 1's left padding: its first queries see no key with segments
    const int32_t *sg = s->mask == 2 ? seg : NULL;
    const float *kmask = s->mask ? km : NULL;
    trlc_attention_tc_forward_ref(o, lse, q, k, v, sg, kmask, B, Hq, Hkv, T, D, scale, s->causal);
    for (int64_t i = 0; i < nq; i++) o16[i] = gpu_test_bf16_bits(o[i]);   // a bf16 forward's O
    trlc_attention_tc_backward_ref(rdq, rdk, rdv, rdl, q, k, v, o, go, lse, sg, kmask, B, Hq, Hkv, T, D, scale,
                                   s->causal);
    dq_bounds(A, M, s, B, q, k, v, go, lse, rdl, sg, kmask, scale);

    // device buffers (q, k, v at `off` elements into their allocations: off 1 = rows not 16-byte aligned)
    RtCudaPtr pq, pk, pv, bq = gpu_test_buffer_at(g->dev, q, nq, s->off, &pq);
    RtCudaPtr bk = gpu_test_buffer_at(g->dev, k, nkv, s->off, &pk), bv = gpu_test_buffer_at(g->dev, v, nkv, s->off, &pv);
    RtCudaPtr pgo = up(g, go, nq * 4), po = s->o16 ? up(g, o16, nq * 2) : up(g, o, nq * 4), pl = up(g, lse, nl * 4);
    RtCudaPtr ps = sg ? up(g, seg, (size_t)B * T * 4) : 0, pm = kmask ? up(g, km, (size_t)B * T * 4) : 0;
    RtCudaPtr pdq = up(g, NULL, nq * 4), pdk = up(g, NULL, nkv * 4), pdv = up(g, NULL, nkv * 4), pdl = up(g, NULL, nl * 4);
    int t = T, dd = D, hq = Hq, hkv = Hkv, cs = s->causal;
    float sc = scale;
    unsigned gq[3] = {(unsigned)(T + 63) / 64, (unsigned)Hq, (unsigned)B};
    unsigned gkv[3] = {(unsigned)(T + 63) / 64, (unsigned)Hkv, (unsigned)B};
    bool ok = bq && bk && bv && pgo && po && pl && pdq && pdk && pdv && pdl && (!sg || ps) && (!kmask || pm);
    CHECK_MSG(ok, "device buffers");
    // fused: dq filled with NaN first, then zeroed as the executor does (the kernel must add, not
    // store: a NaN left anywhere shows)
    float *nanbuf = malloc(nq * 4);
    for (int64_t i = 0; i < nq; i++) nanbuf[i] = NAN;
    if (ok) rt_cuda_upload(g->dev, pdq, nanbuf, nq * 4), rt_cuda_zero(g->dev, pdq, nq * 4);
    const RtCudaPtr grads[4] = {pdq, pdk, pdv, pdl};
    const size_t gbytes[4] = {nq * 4, nkv * 4, nkv * 4, nl * 4};
    float *const fused[4] = {fdq, fdk, fdv, fdl}, *const split[4] = {sdq, sdk, sdv, sdl};
    void *ad[] = {&pdl, &po, &pgo, &t, &dd, &hq};
    void *af[] = {&pdq, &pdk, &pdv, &pq, &pk, &pv, &pgo, &pl, &pdl, &ps, &pm, &t, &dd, &hq, &hkv, &sc, &cs};
    ok = ok && backward(g, s->o16 ? g->delta16 : g->delta, gq, ad, "trlc_attention_tc_backward_delta", g->fused, gkv, af,
                        "trlc_attention_tc_backward_fused", fused, grads, gbytes);
    // split
    void *a1[] = {&pdq, &pdl, &pq, &pk, &pv, &po, &pgo, &pl, &ps, &pm, &t, &dd, &hq, &hkv, &sc, &cs};
    void *a2[] = {&pdk, &pdv, &pq, &pk, &pv, &pgo, &pl, &pdl, &ps, &pm, &t, &dd, &hq, &hkv, &sc, &cs};
    if (ok) rt_cuda_upload(g->dev, pdq, nanbuf, nq * 4), rt_cuda_upload(g->dev, pdk, nanbuf, nkv * 4);
    ok = ok && backward(g, s->o16 ? g->dq16 : g->dq, gq, a1, "trlc_attention_tc_backward_dq", g->dkdv, gkv, a2,
                        "trlc_attention_tc_backward_dkdv", split, grads, gbytes);
    CHECK_MSG(ok, "T=%d D=%d: launches / copies", T, D);
    if (ok) {
        // dQ fused vs split, element by element against the summation-order bound
        double worst = 0;
        int64_t bad = 0, at = -1;
        for (int64_t i = 0; i < nq; i++) {
            double tol = 2.0 * (T + 4) * ldexp(1.0, -24) * A[i];
            if (!g->emu) tol = 4 * tol + ldexp(1.0, -6) * M[i];
            double e = fabs((double)fdq[i] - sdq[i]);
            if (!(e <= tol)) bad++, at = at < 0 ? i : at;
            if (tol > 0 && e / tol > worst) worst = e / tol;
            if (tol == 0 && e > 0) worst = 1e30;
        }
        if (worst > worst_dq_ratio) worst_dq_ratio = worst;
        // queries that see no key: dQ exactly 0 (lse = +inf)
        int64_t empty = 0, nonzero = 0;
        for (int64_t r = 0; r < nl; r++)
            if (isinf(lse[r])) {
                empty++;
                for (int d = 0; d < D; d++) nonzero += fdq[r * D + d] != 0.0f;
            }
        const bool bits_kv = !memcmp(fdk, sdk, nkv * 4) && !memcmp(fdv, sdv, nkv * 4);
        const bool bits_dl = !memcmp(fdl, sdl, nl * 4);
        double e[4] = {normdiff(fdq, rdq, nq), normdiff(fdk, rdk, nkv), normdiff(fdv, rdv, nkv), normdiff(fdl, rdl, nl)};
        double m[3] = {maxabs(fdq, rdq, nq), maxabs(fdk, rdk, nkv), maxabs(fdv, rdv, nkv)};
        for (int x = 0; x < 3; x++)
            if (!(m[x] <= worst_ref[x])) worst_ref[x] = m[x];
        printf("T=%3d D=%3d Hq/Hkv=%d/%d %-6s %-8s O %s%s: vs ref: dq %.2g (max %.2g) dk %.2g (max %.2g) dv %.2g "
               "(max %.2g) delta %.2g; vs split: dq at most %.3f of the bound%s, dk/dv/delta %s; %lld rows see no key\n",
               T, D, Hq, Hkv, s->causal ? "causal" : "full", s->mask == 0 ? "no mask" : s->mask == 1 ? "key mask" : "segments",
               s->o16 ? "bf16" : "fp32", s->off ? ", misaligned" : "", e[0], m[0], e[1], m[1], e[2], m[2], e[3], worst,
               bad ? " (OVER)" : "", bits_kv && bits_dl ? "bit for bit" : "differ", (long long)empty);
        CHECK_MSG(bad == 0, "T=%d D=%d: %lld dQ elements over the summation-order bound (first %lld: fused %g split %g)",
                  T, D, (long long)bad, (long long)at, at >= 0 ? fdq[at] : 0, at >= 0 ? sdq[at] : 0);
        CHECK(e[0] < 2e-4 && e[1] < 2e-4 && e[2] < 2e-4 && e[3] < 1e-5);
        CHECK_MSG(nonzero == 0, "%lld dQ entries of queries that see no key are not 0", (long long)nonzero);
        CHECK(s->mask != 2 || T < 5 || empty > 0);   // the padded case has such rows
        if (g->emu) CHECK_MSG(bits_kv && bits_dl, "T=%d D=%d: fused dK / dV / delta are not the split kernels' bits", T, D);
        else CHECK(normdiff(fdk, sdk, nkv) < 1e-6 && normdiff(fdv, sdv, nkv) < 1e-6 && bits_dl);
    }
    RtCudaPtr all[] = {bq, bk, bv, pgo, po, pl, ps, pm, pdq, pdk, pdv, pdl};
    for (int i = 0; i < 12; i++)
        if (all[i]) rt_cuda_free(g->dev, all[i]);
    void *h[] = {q, k, v, o16, go, o, lse, km, seg, rdq, rdk, rdv, rdl, fdq, fdk, fdv, fdl, sdq, sdk, sdv, sdl, A, M, nanbuf};
    for (size_t i = 0; i < sizeof h / sizeof *h; i++) free(h[i]);
}

// the emulator's race check itself: blocks adding into one word with a plain `+=` fail the
// launch, with atomicAdd they pass (and the sum is right either way: why the check is needed)
static const char *race_src =
    "extern \"C\" __global__ void plain_add(float *x) { if (threadIdx.x == 0) x[0] += 1.0f; }\n"
    "extern \"C\" __global__ void atomic_add(float *x) { if (threadIdx.x == 0) atomicAdd(&x[0], 1.0f); }\n";

static void test_race_check(Dev *g) {
    void *plain = gpu_test_kernel(g->dev, &g->t.cache, g->t.arch, "race.cu", race_src, "plain_add", &g->t.d);
    void *atomic = gpu_test_kernel(g->dev, &g->t.cache, g->t.arch, "race.cu", race_src, "atomic_add", &g->t.d);
    CHECK(plain != NULL && atomic != NULL);
    RtCudaPtr x = up(g, NULL, 4);
    unsigned grid[3] = {3, 1, 1}, blk[3] = {32, 1, 1};
    void *args[] = {&x};
    float got = 0;
    unsetenv("TRLC_CUEMU_RACECHECK");
    int r0 = plain ? rt_cuda_launch(g->dev, plain, grid, blk, 0, args, "plain_add") : -1;
    r0 = r0 == 0 && rt_cuda_sync(g->dev, "plain_add") == 0 && down(g, &got, x, 4) ? 0 : -1;
    CHECK_MSG(r0 == 0 && got == 3.0f, "without the race check a plain += across blocks gives the sum: %g", got);
    setenv("TRLC_CUEMU_RACECHECK", "1", 1);
    fprintf(stderr, "(an expected failure follows: the race check catching a plain +=)\n");
    int r1 = plain ? rt_cuda_launch(g->dev, plain, grid, blk, 0, args, "plain_add") : 0;
    if (r1 == 0) r1 = rt_cuda_sync(g->dev, "plain_add");
    CHECK_MSG(r1 != 0, "the race check let a plain += of 3 blocks into one word pass");
    // the failed launch may leave the context unusable on a real driver; on the emulator it does not
    rt_cuda_zero(g->dev, x, 4);
    int r2 = atomic ? rt_cuda_launch(g->dev, atomic, grid, blk, 0, args, "atomic_add") : -1;
    r2 = r2 == 0 && rt_cuda_sync(g->dev, "atomic_add") == 0 && down(g, &got, x, 4) ? 0 : -1;
    CHECK_MSG(r2 == 0 && got == 3.0f, "the race check refused atomicAdd (%d, sum %g)", r2, got);
    printf("race check: a plain += from 3 blocks into one word: %s with the check (the sum is right without "
           "it); atomicAdd passes with sum %g\n", r1 != 0 ? "refused" : "PASSED", got);
    rt_cuda_free(g->dev, x);
}

#ifdef TRLC_HAVE_CUDA_EXEC
// The executor (runtime/cuda/exec.c run_attention_bwd): a hand-built graph (bf16 q, k, v params,
// B 2, Hq 4, Hkv 2, T 130, D 64, causal; the forward's bf16 O and dq, dk, dv as outputs, or dq
// alone) run on the interpreter and on the device with TRLC_ATTN_BWD unset (fused) and split,
// three steps each (warm-up, capture, replay where graphs work): every run within 2e-4 of the
// interpreter; dk, dv and O fused = split (bits on the emulator), dq within 1e-5; the launches
// per step (memset + delta + fused vs dq + dkdv: one more; dq alone: the same kernel both ways).
enum { XB = 2, XHQ = 4, XHKV = 2, XT = 130, XD = 64 };

static void exec_mode(RtCudaDevice *dev, RtCudaCache *cache, bool only_dq, const char *mode, float **out, int *launches,
                      int *graph_launches) {
    Diag d;
    diag_init(&d, stderr);
    GpuTestAttnGraph a;
    uint64_t r = 77;   // the same values every time
    gpu_test_attn_graph(&a, &d, XB, XHQ, XHKV, XT, XD, true, only_dq ? 1 : 3, &r);
    enum { NQ = XB * XHQ * XT * XD, NKV = XB * XHKV * XT * XD };
    if (mode) setenv("TRLC_ATTN_BWD", mode, 1);
    else unsetenv("TRLC_ATTN_BWD");
    CpuProgram *c = cpu_program_new(&a.g, IR_F32, &d);
    CudaProgram *x = cuda_program_new(&a.g, dev, cache, &d);
    unsetenv("TRLC_ATTN_BWD");
    CHECK(c && x);
    int64_t sym[IR_NSYMS] = {XB, XT};
    const int nout = only_dq ? 2 : 4;
    const int64_t n[4] = {NQ, NQ, NKV, NKV};
    const char *names[4] = {"o", "dq", "dk", "dv"};
    if (c && x) {
        gpu_test_attn_bind(&a, c, x);
        CHECK(cpu_run(c, sym, 0) == 0);
        for (int step = 0; step < 3; step++) {
            CHECK(cuda_run(x, sym, (uint64_t)step) == 0);
            double e[4] = {0, 0, 0, 0};
            for (int o = 0; o < nout; o++) {
                const CpuTensor *a = cpu_output_named(c, names[o]), *b = cuda_output_named(x, names[o]);
                CHECK(a && b && a->numel == n[o] && b->numel == n[o]);
                e[o] = a && b && a->numel == b->numel ? normdiff(b->data, a->data, a->numel) : 1e30;
                if (step == 2 && b && b->numel == n[o] && (out[o] = malloc((size_t)n[o] * 4)))
                    memcpy(out[o], b->data, (size_t)n[o] * 4);
            }
            // o: bf16 values (a rare one an ulp apart); the gradients: fp32 sums in other orders
            CHECK_MSG(e[0] < 2e-3 && e[1] < 2e-4 && e[2] < 2e-4 && e[3] < 2e-4,
                      "TRLC_ATTN_BWD=%s%s, step %d vs the interpreter: o %.2g dq %.2g dk %.2g dv %.2g", mode ? mode : "",
                      only_dq ? " (dq alone)" : "", step, e[0], e[1], e[2], e[3]);
            if (step == 2)
                printf("executor, TRLC_ATTN_BWD=%s%s: vs the interpreter o %.2g dq %.2g dk %.2g dv %.2g; %d launches a "
                       "step, %d graph launches\n", mode ? mode : "(unset)", only_dq ? ", dq alone" : "", e[0], e[1],
                       e[2], e[3], cuda_launch_count(x), cuda_graph_launches(x));
        }
        *launches = cuda_launch_count(x), *graph_launches = cuda_graph_launches(x);
    }
    gpu_test_attn_graph_free(&a, c, x);
    diag_free(&d);
}

static void test_exec(void) {
    GpuTestDevice t;
    if (!gpu_test_open(&t, "gpu.attn_bwd executor", ": not run")) return;
    const bool emu = rt_cuda_is_emulated(t.dev);
    enum { NQ = XB * XHQ * XT * XD, NKV = XB * XHKV * XT * XD };
    for (int only_dq = 0; only_dq < 2; only_dq++) {
        float *fu[4] = {NULL, NULL, NULL, NULL}, *sp[4] = {NULL, NULL, NULL, NULL};
        int lf = -1, ls = -1, gf = 0, gs = 0;
        exec_mode(t.dev, &t.cache, only_dq, NULL, fu, &lf, &gf);
        exec_mode(t.dev, &t.cache, only_dq, "split", sp, &ls, &gs);
        const int64_t n[4] = {NQ, NQ, NKV, NKV};
        double e[4] = {1e30, 1e30, 1e30, 1e30};
        bool bits[4] = {false, false, false, false};
        for (int o = 0; o < (only_dq ? 2 : 4); o++)
            if (fu[o] && sp[o]) e[o] = normdiff(fu[o], sp[o], n[o]), bits[o] = !memcmp(fu[o], sp[o], (size_t)n[o] * 4);
        printf("executor%s: fused vs split: o %s, dq %.2g%s", only_dq ? " (dq alone)" : "", bits[0] ? "bit for bit" : "differs",
               e[1], bits[1] ? " (bit for bit)" : "");
        if (!only_dq) printf(", dk %s, dv %s", bits[2] ? "bit for bit" : "differs", bits[3] ? "bit for bit" : "differs");
        printf("; launches a step %d fused, %d split\n", lf, ls);
        CHECK(bits[0] && e[1] < 1e-5);
        if (only_dq) CHECK(bits[1] && lf == ls);   // dq alone: the dq kernel both ways
        else {
            CHECK(emu ? bits[2] && bits[3] : e[2] < 1e-6 && e[3] < 1e-6);
            CHECK_MSG(lf == ls + 1, "launches: fused %d, split %d (memset + delta + fused vs dq + dkdv)", lf, ls);
        }
        CHECK(gf == gs);   // graphs (where the driver has them) work the same both ways
        for (int o = 0; o < 4; o++) free(fu[o]), free(sp[o]);
    }
    // a value outside fused / split: no program, an error naming the variable
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    Loc L = {0, 0, 0};
    IrShape sq = ir_shape4(ir_dim(1), ir_dim(1), ir_dim(4), ir_dim(16));
    IrId q = ir_param(&g, "q", IR_BF16, sq, false, L);
    ir_add_output(&g, ir_sdpa_to(&g, q, q, q, IR_NONE, IR_NONE, true, 0, IR_BF16, L), "o");
    setenv("TRLC_ATTN_BWD", "atomic", 1);
    fprintf(stderr, "(an expected error follows: TRLC_ATTN_BWD=atomic)\n");
    CudaProgram *x = cuda_program_new(&g, t.dev, &t.cache, &d);
    unsetenv("TRLC_ATTN_BWD");
    CHECK(x == NULL && d.errors > 0);
    if (x) cuda_program_free(x);
    ir_graph_free(&g);
    diag_free(&d);
    gpu_test_close(&t);
}
#endif

static int test_device(void) {
    Dev g = {0};
    if (!gpu_test_open(&g.t, "gpu.attn_bwd", " (nor $TRLC_CUDA_DRIVER): nothing to run")) return 77;
    g.dev = g.t.dev;
    g.emu = rt_cuda_is_emulated(g.dev);
    printf("gpu.attn_bwd: on %s (%s)\n", g.t.arch, g.emu ? "the emulator, race check on" : "a GPU");
    const char *names[6] = {"trlc_attention_tc_backward_delta", "trlc_attention_tc_backward_delta_bf16",
                            "trlc_attention_tc_backward_fused", "trlc_attention_tc_backward_dq",
                            "trlc_attention_tc_backward_dq_bf16", "trlc_attention_tc_backward_dkdv"};
    void *fns[6];
    gpu_test_kernels(&g.t, "attention_tc.cu", cg_library_source("attention_tc.cu"), names, fns, 6);
    g.delta = fns[0], g.delta16 = fns[1], g.fused = fns[2], g.dq = fns[3], g.dq16 = fns[4], g.dkdv = fns[5];
    if (g.emu) {
        test_race_check(&g);
        setenv("TRLC_CUEMU_RACECHECK", "1", 1);   // every launch below
    }
    const Shape shapes[] = {
        // T    D  Hq Hkv causal mask o16 off
        {1, 64, 4, 2, 1, 0, 1, 0},
        {1, 40, 4, 1, 0, 1, 0, 0},
        {37, 40, 4, 1, 0, 1, 0, 0},
        {37, 128, 2, 1, 1, 2, 1, 0},
        {37, 64, 4, 2, 1, 0, 1, 1},
        {64, 64, 2, 2, 0, 0, 0, 0},
        {130, 64, 4, 2, 1, 0, 1, 0},
        {130, 128, 8, 2, 0, 1, 1, 0},
        {130, 40, 4, 2, 1, 2, 0, 0},
        {130, 128, 4, 1, 1, 2, 1, 0},
        {200, 16, 2, 1, 1, 1, 1, 0},
        {200, 64, 2, 1, 0, 2, 0, 0},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof *shapes; i++) run_case(&g, &shapes[i]);
    printf("fused dQ vs split: at most %.3f of the summation-order bound; max |fused - reference|: dq %.3g dk %.3g "
           "dv %.3g\n", worst_dq_ratio, worst_ref[0], worst_ref[1], worst_ref[2]);
    unsetenv("TRLC_CUEMU_RACECHECK");
    gpu_test_close(&g.t);
    return 0;
}
#endif

int main(void) {
#ifdef TRLC_HAVE_CUDA
    if (test_device() == 77) return 77;
#ifdef TRLC_HAVE_CUDA_EXEC
    test_exec();
#endif
    return test_done("gpu.attn_bwd");
#else
    printf("gpu.attn_bwd: built without CUDA: nothing to run\n");
    return 77;
#endif
}
