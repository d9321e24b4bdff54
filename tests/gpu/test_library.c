// test_library.c — the hand-written kernels (kernels/*.cu): their C references (kernels_ref.c,
// the same algorithms: online softmax, single-pass log-sum-exp, per-key attention backward)
// against the unfused CPU interpreter on random inputs — sdpa forward and backward with grouped
// KV heads (causal and not), rope (plain and Llama-3 scaled, forward and inverse), cross-entropy
// with label smoothing and ignored labels (forward, backward), AdamW against its formula.
// With the CUDA toolkit, every kernels/*.cu (as embedded in trlc) also compiles with NVRTC for sm_80 and sm_90, and
// the registers read from the cubin are printed.
#include "codegen_cuda.h"
#include "cpu.h"
#include "ir.h"
#include "kernels_ref.h"
#include "test.h"
#ifdef TRLC_HAVE_CUDA
#include "rt_cuda.h"
#endif
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 42;
static float frand(void) {
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) * (1.0 / 9007199254740992.0) - 0.5);
}

static double maxdiff(const float *a, const float *b, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - b[i]) / (1e-2 + fabs((double)b[i]));
        if (!(e <= m)) m = e;
    }
    return m;
}

static const float *out_of(CpuProgram *p, const char *name) {
    const CpuTensor *t = cpu_output_named(p, name);
    return t ? t->data : NULL;
}

static void test_attention_rope_ce(int causal) {
    enum { B = 2, Hq = 4, Hkv = 2, T = 37, D = 16, V = 50 };
    Diag d;
    diag_init(&d, stderr);
    Loc L = {0, 0, 0};
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    IrShape sq = ir_shape4(ir_dim_b(), ir_dim(Hq), ir_dim_t(), ir_dim(D));
    IrShape skv = ir_shape4(ir_dim_b(), ir_dim(Hkv), ir_dim_t(), ir_dim(D));
    IrId q = ir_input(&g, "q", IR_F32, sq, L), k = ir_input(&g, "k", IR_F32, skv, L);
    IrId v = ir_input(&g, "v", IR_F32, skv, L), go = ir_input(&g, "go", IR_F32, sq, L);
    IrId pos = ir_input(&g, "pos", IR_I32, ir_shape2(ir_dim_b(), ir_dim_t()), L);
    IrId lg = ir_input(&g, "logits", IR_F32, ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(V)), L);
    IrId lab = ir_input(&g, "labels", IR_I32, ir_shape2(ir_dim_b(), ir_dim_t()), L);
    IrId gl = ir_input(&g, "gloss", IR_F32, ir_shape2(ir_dim_b(), ir_dim_t()), L);
    const float scale = 0.3f;
    ir_add_output(&g, ir_sdpa(&g, q, k, v, causal, scale, L), "o");
    ir_add_output(&g, ir_sdpa_bwd(&g, IR_SDPA_BWD_Q, q, k, v, go, causal, scale, L), "dq");
    ir_add_output(&g, ir_sdpa_bwd(&g, IR_SDPA_BWD_K, q, k, v, go, causal, scale, L), "dk");
    ir_add_output(&g, ir_sdpa_bwd(&g, IR_SDPA_BWD_V, q, k, v, go, causal, scale, L), "dv");
    IrRope rp = {10000.0, 0, 0, 0, 0}, r3 = {500000.0, 32.0, 1.0, 4.0, 8192.0};
    ir_add_output(&g, ir_rope(&g, q, pos, rp, L), "rope");
    ir_add_output(&g, ir_rope_inverse(&g, q, pos, r3, L), "rope3_inv");
    ir_add_output(&g, ir_cross_entropy(&g, lg, lab, -100, 0.1, L), "ce");
    ir_add_output(&g, ir_cross_entropy_bwd(&g, lg, lab, gl, -100, 0.1, L), "dce");
    CHECK(g.errors == 0);
    static float qb[B * Hq * T * D], kb[B * Hkv * T * D], vb[B * Hkv * T * D], gob[B * Hq * T * D];
    static float lgb[B * T * V], glb[B * T];
    static int32_t posb[B * T], labb[B * T];
    for (int i = 0; i < B * Hq * T * D; i++) qb[i] = 2 * frand(), gob[i] = frand();
    for (int i = 0; i < B * Hkv * T * D; i++) kb[i] = 2 * frand(), vb[i] = frand();
    for (int i = 0; i < B * T * V; i++) lgb[i] = 8 * frand();
    for (int i = 0; i < B * T; i++) {
        posb[i] = (i % T) * 37 + 5;
        labb[i] = i % 7 == 3 ? -100 : (int32_t)((frand() + 0.5f) * (V - 1));
        glb[i] = 1 + frand();
    }
    CpuProgram *p = cpu_program_new(&g, IR_F32, &d);
    CHECK(p != NULL);
    if (!p) return;
    cpu_bind(p, q, qb, sizeof qb), cpu_bind(p, k, kb, sizeof kb), cpu_bind(p, v, vb, sizeof vb);
    cpu_bind(p, go, gob, sizeof gob), cpu_bind(p, pos, posb, sizeof posb), cpu_bind(p, lg, lgb, sizeof lgb);
    cpu_bind(p, lab, labb, sizeof labb), cpu_bind(p, gl, glb, sizeof glb);
    int64_t sym[IR_NSYMS] = {B, T};
    CHECK(cpu_run(p, sym, 0) == 0);
    static float o[B * Hq * T * D], lse[B * Hq * T], dq[B * Hq * T * D], delta[B * Hq * T];
    static float dk[B * Hkv * T * D], dv[B * Hkv * T * D], ry[B * Hq * T * D];
    trlc_attention_fwd_ref(o, lse, qb, kb, vb, NULL, B, Hq, Hkv, T, D, scale, causal);
    trlc_attention_bwd_dq_ref(dq, delta, qb, kb, vb, o, gob, lse, NULL, B, Hq, Hkv, T, D, scale, causal);
    trlc_attention_bwd_dkdv_ref(dk, dv, qb, kb, vb, gob, lse, delta, NULL, B, Hq, Hkv, T, D, scale, causal);
    double e_o = maxdiff(o, out_of(p, "o"), B * Hq * T * D), e_dq = maxdiff(dq, out_of(p, "dq"), B * Hq * T * D);
    double e_dk = maxdiff(dk, out_of(p, "dk"), B * Hkv * T * D), e_dv = maxdiff(dv, out_of(p, "dv"), B * Hkv * T * D);
    printf("attention (%s, GQA %d/%d, T=%d, D=%d) vs interpreter: o %.2g, dq %.2g, dk %.2g, dv %.2g\n",
           causal ? "causal" : "full", Hq, Hkv, T, D, e_o, e_dq, e_dk, e_dv);
    CHECK(e_o < 1e-4 && e_dq < 1e-4 && e_dk < 1e-4 && e_dv < 1e-4);
    double inv[D / 2];
    trlc_rope_inv_freq(inv, D, rp.theta, 0, 0, 0, 0);
    trlc_rope_ref(ry, qb, posb, inv, B, Hq, T, D, 1, 0);
    double e_r = maxdiff(ry, out_of(p, "rope"), B * Hq * T * D);
    trlc_rope_inv_freq(inv, D, r3.theta, r3.factor, r3.low_freq_factor, r3.high_freq_factor, r3.original_max_pos);
    trlc_rope_ref(ry, qb, posb, inv, B, Hq, T, D, 1, 1);
    double e_r3 = maxdiff(ry, out_of(p, "rope3_inv"), B * Hq * T * D);
    printf("rope vs interpreter: %.2g; llama-3 scaled, inverse: %.2g\n", e_r, e_r3);
    CHECK(e_r < 1e-4 && e_r3 < 1e-4);
    static float loss[B * T], lse2[B * T], dl[B * T * V];
    trlc_cross_entropy_ref(loss, lse2, lgb, labb, B * T, V, -100, 0.1f);
    trlc_cross_entropy_bwd_ref(dl, lgb, lse2, labb, glb, B * T, V, -100, 0.1f);
    double e_ce = maxdiff(loss, out_of(p, "ce"), B * T), e_dce = maxdiff(dl, out_of(p, "dce"), B * T * V);
    printf("cross-entropy (V=%d, smoothing 0.1, ignored labels) vs interpreter: loss %.2g, dlogits %.2g\n", V, e_ce, e_dce);
    CHECK(e_ce < 1e-4 && e_dce < 1e-4);
    cpu_program_free(p);
    ir_graph_free(&g);
    diag_free(&d);
}

static void test_adamw(void) {
    float p[4] = {1, -2, 0.5f, 0}, m[4] = {0.1f, 0, -0.2f, 0}, v[4] = {0.01f, 0, 0.04f, 0}, g[4] = {0.5f, -1, 0, 2};
    float pe[4], lr = 1e-2f, b1 = 0.9f, b2 = 0.999f, eps = 1e-8f, wd = 0.1f, bc1 = 1 - 0.9f * 0.9f,
                 bc2 = 1 - 0.999f * 0.999f, gs = 0.5f;
    for (int i = 0; i < 4; i++) {
        double gi = g[i] * gs, mi = b1 * m[i] + (1 - b1) * gi, vi = b2 * v[i] + (1 - b2) * gi * gi;
        pe[i] = (float)(p[i] - lr * (wd * p[i] + (mi / bc1) / (sqrt(vi / bc2) + eps)));
    }
    trlc_adamw_ref(p, m, v, g, 4, lr, b1, b2, eps, wd, bc1, bc2, gs);
    for (int i = 0; i < 4; i++) CHECK_CLOSE(p[i], pe[i], 1e-6, 1e-5);
}

#ifdef TRLC_HAVE_CUDA
static void test_nvrtc(const char *dir) {
    (void)dir;
    enum { NF = 16 };
    int nf = cg_library_count();
    CHECK(nf >= 7 && nf <= NF);   // adamw attention cross_entropy embed layout rope softmax
    if (nf > NF) nf = NF;
    Diag d;
    diag_init(&d, stderr);
    RtCudaCache cache;
    rt_cuda_cache_init(&cache, &d);
    for (int a = 0; a < 2; a++) {
        const char *arch = a ? "sm_90" : "sm_80";
        RtCudaProgram progs[NF];
        memset(progs, 0, sizeof progs);
        for (int i = 0; i < nf; i++) progs[i].name = cg_library_name(i), progs[i].source = cg_library_source(cg_library_name(i));
        int failed = rt_cuda_compile(&cache, progs, nf, arch, false, 2, &d);
        CHECK(failed == 0);
        for (int i = 0; i < nf; i++) {
            printf("kernels/%s compiled for %s: %zu bytes of cubin%s\n", progs[i].name, arch, progs[i].cubin_size,
                   progs[i].cached ? " (cache)" : "");
            rt_cuda_program_free(&progs[i]);
        }
    }
    // the register count read from the cubin's ELF sections: the rope kernel on sm_90
    const char *src = "extern \"C\" __global__ void k(float *x) { x[threadIdx.x] *= 2.0f; }\n";
    RtCudaProgram pr = {.name = "k", .source = src};
    CHECK(rt_cuda_compile(&cache, &pr, 1, "sm_90", true, 1, &d) == 0);
    CHECK_MSG(pr.regs > 0 && pr.regs < 32, "regs %d", pr.regs);
    CHECK(pr.shared_bytes >= 0);
    CHECK(pr.ptx && strstr(pr.ptx, ".entry k"));
    rt_cuda_program_free(&pr);
    // a failing compile is reported (name, options, log, numbered source) and counted
    FILE *mem = tmpfile();
    Diag d2;
    diag_init(&d2, mem);
    RtCudaProgram bad = {.name = "broken", .source = "extern \"C\" __global__ void broken() { undeclared(); }\n"};
    CHECK(rt_cuda_compile(&cache, &bad, 1, "sm_90", false, 1, &d2) == 1);
    CHECK(d2.errors == 1);
    char log[8192] = "";
    rewind(mem);
    size_t n = fread(log, 1, sizeof log - 1, mem);
    log[n] = 0;
    CHECK(strstr(log, "broken") && strstr(log, "--gpu-architecture=sm_90") && strstr(log, "undeclared") &&
          strstr(log, "    1  extern"));
    fclose(mem);
    diag_free(&d2);
    diag_free(&d);
}
#endif

int main(int argc, char **argv) {
    test_attention_rope_ce(1);
    test_attention_rope_ce(0);
    test_adamw();
#ifdef TRLC_HAVE_CUDA
    if (argc > 1) test_nvrtc(argv[1]);
#else
    (void)argc, (void)argv;
#endif
    return test_done("gpu.library");
}
