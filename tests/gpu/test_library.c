// test_library.c — the hand-written kernels (kernels/*.cu): their C references (kernels_ref.c,
// the same algorithms: online softmax, single-pass log-sum-exp, per-key attention backward)
// against the unfused CPU interpreter on random inputs — sdpa forward and backward with grouped
// KV heads (causal and not), rope (plain and Llama-3 scaled, forward and inverse), cross-entropy
// with label smoothing and ignored labels (forward, backward), AdamW against its formula, gather and
// its scatter-add backward (every axis, duplicated and bad indexes), NF4 / map8 dequantization.
// With the CUDA toolkit, every kernels/*.cu (as embedded in trlc) also compiles with NVRTC for sm_80 and sm_90, and
// the registers read from the cubin are printed; with a device (a GPU, or the emulator named by
// $TRLC_CUDA_DRIVER) masked attention and the bf16 gather / dequantization kernels are launched.
#include "codegen_cuda.h"
#include "gpu_test_util.h"
#include "cpu.h"
#include "ir.h"
#include "kernels_ref.h"
#include "optim.h"
#include "test.h"
#ifdef TRLC_HAVE_CUDA
#include "rt_cuda.h"
#endif
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 42;
static float frand(void) { return gpu_test_frand(&rng); }

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

// An f32 graph (its Diag on stderr) with attention's inputs q and go (dO) (B, Hq, T, D), k and v
// (B, Hkv, T, D); and random values for them (q, k in [-1, 1), go, v in [-0.5, 0.5)).
static void attention_graph(Diag *d, IrGraph *g, int Hq, int Hkv, int D, IrId *q, IrId *k, IrId *v, IrId *go) {
    Loc L = {0, 0, 0};
    diag_init(d, stderr);
    ir_graph_init(g, d, IR_F32);
    IrShape sq = ir_shape4(ir_dim_b(), ir_dim(Hq), ir_dim_t(), ir_dim(D));
    IrShape skv = ir_shape4(ir_dim_b(), ir_dim(Hkv), ir_dim_t(), ir_dim(D));
    *q = ir_input(g, "q", IR_F32, sq, L), *k = ir_input(g, "k", IR_F32, skv, L);
    *v = ir_input(g, "v", IR_F32, skv, L), *go = ir_input(g, "go", IR_F32, sq, L);
}

static void attention_values(float *q, float *k, float *v, float *go, int nq, int nkv) {
    for (int i = 0; i < nq; i++) q[i] = 2 * frand(), go[i] = frand();
    for (int i = 0; i < nkv; i++) k[i] = 2 * frand(), v[i] = frand();
}

static void test_attention_rope_ce(int causal) {
    enum { B = 2, Hq = 4, Hkv = 2, T = 37, D = 16, V = 50 };
    Diag d;
    IrGraph g;
    IrId q, k, v, go;
    attention_graph(&d, &g, Hq, Hkv, D, &q, &k, &v, &go);
    Loc L = {0, 0, 0};
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
    attention_values(qb, kb, vb, gob, B * Hq * T * D, B * Hkv * T * D);
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
    trlc_attention_fwd_ref(o, lse, qb, kb, vb, NULL, NULL, B, Hq, Hkv, T, D, scale, causal);
    trlc_attention_bwd_dq_ref(dq, delta, qb, kb, vb, o, gob, lse, NULL, NULL, B, Hq, Hkv, T, D, scale, causal);
    trlc_attention_bwd_dkdv_ref(dk, dv, qb, kb, vb, gob, lse, delta, NULL, NULL, B, Hq, Hkv, T, D, scale, causal);
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

// A library node's kernel (cg_library_kernel) is an extern "C" function of the file it names.
static void check_mapping(const IrGraph *g, IrId id, const char *want) {
    const char *file = NULL, *k = cg_library_kernel(g, id, &file);
    const char *src = file ? cg_library_source(file) : NULL;
    char decl[160];
    snprintf(decl, sizeof decl, " %s(", k ? k : "?");
    CHECK_MSG(k && !strcmp(k, want) && src && strstr(src, decl), "%s: kernel %s in %s", want, k ? k : "none",
              file ? file : "none");
}

// gather along axis `ax` of x (3, 7, 5) with idx of the given shape: forward and backward (the
// scatter-add, with duplicated and never-chosen positions) against the interpreter.
static void test_gather_axis(int ax, IrShape si) {
    Diag d;
    diag_init(&d, stderr);
    Loc L = {0, 0, 0};
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    IrShape sx = ir_shape3(ir_dim(3), ir_dim(7), ir_dim(5));
    IrId x = ir_input(&g, "x", IR_F32, sx, L), idx = ir_input(&g, "idx", IR_I32, si, L);
    IrId gy = ir_input(&g, "gy", IR_F32, si, L);
    IrId ga = ir_gather(&g, x, idx, ax, L), gb = ir_gather_bwd(&g, idx, gy, ax, sx, L);
    ir_add_output(&g, ga, "y");
    ir_add_output(&g, gb, "dx");
    CHECK(g.errors == 0);
    if (g.errors) return;
    check_mapping(&g, ga, "trlc_gather_forward_f32");
    check_mapping(&g, gb, "trlc_gather_backward_f32");
    int64_t ds[3], nx = 3 * 7 * 5, ni = 1;
    for (int i = 0; i < 3; i++) ds[i] = si.d[i].coef, ni *= ds[i];
    int64_t outer = 1, inner = 1, Lx = ax == 0 ? 3 : ax == 1 ? 7 : 5, Li = ds[ax];
    for (int i = 0; i < ax; i++) outer *= ds[i];
    for (int i = ax + 1; i < 3; i++) inner *= ds[i];
    float xb[3 * 7 * 5], *gyb = malloc((size_t)ni * sizeof *gyb), *y = malloc((size_t)ni * sizeof *y);
    int32_t *ib = malloc((size_t)ni * sizeof *ib);
    float dx[3 * 7 * 5];
    for (int64_t i = 0; i < nx; i++) xb[i] = frand();
    // index a and a + 1 (a even) of a column pick the same position (duplicates); the last position
    // along the axis is never picked
    int dups = 0;
    for (int64_t k = 0; k < ni; k++) {
        int64_t r = k % inner, a = k / inner % Li, o = k / inner / Li;
        gyb[k] = frand(), ib[k] = (int32_t)((a / 2 + o + r) % (Lx - 1));
        dups += a % 2 == 1;
    }
    CpuProgram *p = cpu_program_new(&g, IR_F32, &d);
    CHECK(p != NULL);
    if (p) {
        cpu_bind(p, x, xb, sizeof xb), cpu_bind(p, idx, ib, (size_t)ni * sizeof *ib);
        cpu_bind(p, gy, gyb, (size_t)ni * sizeof *gyb);
        int64_t sym[IR_NSYMS] = {1, 1};
        CHECK(cpu_run(p, sym, 0) == 0);
        int bad = 0, bad2 = 0;
        trlc_gather_ref(y, &bad, xb, ib, outer, Li, Lx, inner);
        trlc_gather_bwd_ref(dx, &bad2, ib, gyb, outer, Li, Lx, inner);
        const float *iy = out_of(p, "y"), *idx_ = out_of(p, "dx");
        int same_y = iy && !memcmp(iy, y, (size_t)ni * sizeof *y), same_dx = idx_ && !memcmp(idx_, dx, sizeof dx);
        int zero_rows = 0;   // dx elements at the never-chosen position: must be 0
        for (int64_t e = 0; e < nx; e++) zero_rows += e / inner % Lx == Lx - 1 && dx[e] == 0;
        printf("gather axis %d (x 3x7x5, idx %" PRId64 "x%" PRId64 "x%" PRId64 ") vs interpreter: forward %s, "
               "backward %s (%d duplicated indexes), %d zeros at the unused position\n",
               ax, ds[0], ds[1], ds[2], same_y ? "bit-identical" : "DIFFERENT", same_dx ? "bit-identical" : "DIFFERENT",
               dups, zero_rows);
        CHECK(same_y && same_dx && bad == 0 && bad2 == 0 && zero_rows == nx / Lx && (Li == 1 || dups > 0));
        cpu_program_free(p);
    }
    free(gyb), free(y), free(ib);
    ir_graph_free(&g);
    diag_free(&d);
}

// An index out of range: the interpreter fails with the position; the kernels (reference) give 0
// / skip it and report the first bad position + 1.
static void test_gather_bad(void) {
    float x[2 * 4] = {1, 2, 3, 4, 5, 6, 7, 8}, y[2 * 3], g[2 * 3] = {1, 1, 1, 1, 1, 1}, dx[2 * 4];
    int32_t idx[2 * 3] = {0, 3, 3, 1, 4, -1};   // (2, 3) along axis 1 of (2, 4): 4 and -1 are bad
    int bad = 0, bad2 = 0;
    trlc_gather_ref(y, &bad, x, idx, 2, 3, 4, 1);
    trlc_gather_bwd_ref(dx, &bad2, idx, g, 2, 3, 4, 1);
    float ye[6] = {1, 4, 4, 6, 0, 0}, dxe[8] = {1, 0, 0, 2, 0, 1, 0, 0};
    CHECK(!memcmp(y, ye, sizeof y) && !memcmp(dx, dxe, sizeof dx));
    CHECK_MSG(bad == 5 && bad2 == 5, "bad %d %d", bad, bad2);
    // the interpreter refuses the same input
    FILE *mem = tmpfile();
    Diag d;
    diag_init(&d, mem);
    Loc L = {0, 0, 0};
    IrGraph gr;
    ir_graph_init(&gr, &d, IR_F32);
    IrId xi = ir_input(&gr, "x", IR_F32, ir_shape2(ir_dim(2), ir_dim(4)), L);
    IrId ii = ir_input(&gr, "idx", IR_I32, ir_shape2(ir_dim(2), ir_dim(3)), L);
    ir_add_output(&gr, ir_gather(&gr, xi, ii, 1, L), "y");
    CpuProgram *p = cpu_program_new(&gr, IR_F32, &d);
    CHECK(p != NULL);
    if (p) {
        cpu_bind(p, xi, x, sizeof x), cpu_bind(p, ii, idx, sizeof idx);
        int64_t sym[IR_NSYMS] = {1, 1};
        CHECK(cpu_run(p, sym, 0) != 0);
        char log[1024] = "";
        rewind(mem);
        size_t n = fread(log, 1, sizeof log - 1, mem);
        log[n] = 0;
        CHECK_MSG(strstr(log, "gather index 4 at position 4"), "interpreter said: %s", log);
        cpu_program_free(p);
    }
    ir_graph_free(&gr);
    diag_free(&d);
    fclose(mem);
}

// The NF4 table of quant.cu (parsed from the source trlc embeds) equals the interpreter's.
static void test_nf4_table_cu(void) {
    const char *src = cg_library_source("quant.cu"), *t = src ? strstr(src, "trlc_nf4_table[16] = {") : NULL;
    CHECK(t != NULL);
    if (!t) return;
    t = strchr(t, '{') + 1;
    int same = 0;
    for (int c = 0; c < 16; c++) {
        char *end;
        float v = strtof(t, &end);
        if (end == t) break;
        same += v == (float)ir_nf4_value(c);
        t = end;
        while (*t == 'f' || *t == ',' || *t == ' ' || *t == '\n') t++;
    }
    printf("quant.cu's NF4 table: %d of 16 codes equal to the interpreter's\n", same);
    CHECK(same == 16);
}

// NF4 and map8 dequantization against the interpreter: n odd (the last byte's low nibble unused),
// a last partial block, an odd block (a byte's two elements in different blocks), every code in
// both nibbles; then the two chained as double quantization does (map8 gives the NF4 absmax).
static void test_dequant(int64_t rows, int64_t cols, int64_t block, int64_t block2) {
    Diag d;
    diag_init(&d, stderr);
    Loc L = {0, 0, 0};
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    int64_t n = rows * cols, nb = (n + 1) / 2, nbl = (n + block - 1) / block, nbl2 = (nbl + block2 - 1) / block2;
    IrId pk = ir_input(&g, "packed", IR_U8, ir_shape1(ir_dim(nb)), L);
    IrId am = ir_input(&g, "absmax", IR_F32, ir_shape1(ir_dim(nbl)), L);
    IrId q8 = ir_input(&g, "q8", IR_U8, ir_shape1(ir_dim(nbl)), L);
    IrId map = ir_input(&g, "map", IR_F32, ir_shape1(ir_dim(256)), L);
    IrId sc = ir_input(&g, "scale", IR_F32, ir_shape1(ir_dim(nbl2)), L);
    IrShape sw = ir_shape2(ir_dim(rows), ir_dim(cols));
    IrId w = ir_dequant_nf4(&g, pk, am, block, sw, L);
    IrId a8 = ir_dequant_map8(&g, q8, map, sc, block2, 0.0123, L);
    IrId w2 = ir_dequant_nf4(&g, pk, a8, block, sw, L);
    ir_add_output(&g, w, "w");
    ir_add_output(&g, a8, "absmax8");
    ir_add_output(&g, w2, "w_double");
    CHECK(g.errors == 0);
    if (g.errors) return;
    check_mapping(&g, w, "trlc_dequant_nf4_f32");
    check_mapping(&g, a8, "trlc_dequant_map8_f32");
    uint8_t *pb = malloc((size_t)nb), *qb = malloc((size_t)nbl);
    float *ab = malloc((size_t)nbl * 4), mb[256], *sb = malloc((size_t)nbl2 * 4);
    float *wr = malloc((size_t)n * 4), *ar = malloc((size_t)nbl * 4), *w2r = malloc((size_t)n * 4);
    for (int64_t i = 0; i < nb; i++) pb[i] = (uint8_t)(i < 16 ? i * 17 : (int)((frand() + 0.5f) * 255.99f));
    if (nb > 32) pb[16] = 0x0f, pb[17] = 0xf0, pb[18] = 0x7e;   // both nibbles at the extremes
    for (int64_t i = 0; i < nbl; i++) ab[i] = 0.01f + (frand() + 0.5f), qb[i] = (uint8_t)(i * 37 % 256);
    for (int i = 0; i < 256; i++) mb[i] = (float)(i - 128) / 127.0f + 0.001f * frand();
    for (int64_t i = 0; i < nbl2; i++) sb[i] = 0.5f + frand();
    CpuProgram *p = cpu_program_new(&g, IR_F32, &d);
    CHECK(p != NULL);
    if (p) {
        cpu_bind(p, pk, pb, (size_t)nb), cpu_bind(p, am, ab, (size_t)nbl * 4), cpu_bind(p, q8, qb, (size_t)nbl);
        cpu_bind(p, map, mb, sizeof mb), cpu_bind(p, sc, sb, (size_t)nbl2 * 4);
        int64_t sym[IR_NSYMS] = {1, 1};
        CHECK(cpu_run(p, sym, 0) == 0);
        trlc_dequant_nf4_ref(wr, pb, ab, n, block);
        trlc_dequant_map8_ref(ar, qb, mb, sb, nbl, block2, 0.0123f);
        trlc_dequant_nf4_ref(w2r, pb, ar, n, block);
        const float *iw = out_of(p, "w");
        int same = iw && !memcmp(iw, wr, (size_t)n * 4);
        double e8 = maxdiff(ar, out_of(p, "absmax8"), nbl), e2 = maxdiff(w2r, out_of(p, "w_double"), n);
        printf("dequant nf4 (%" PRId64 "x%" PRId64 ", block %" PRId64 ") vs interpreter: %s; map8 (block %" PRId64
               "): %.2g; nf4 of map8 absmax: %.2g\n", rows, cols, block, same ? "bit-identical" : "DIFFERENT",
               block2, e8, e2);
        CHECK(same && e8 < 1e-6 && e2 < 1e-6);
        cpu_program_free(p);
    }
    // every code through the reference (absmax 1): the 16 table values, high nibble first
    uint8_t codes[8] = {0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    float one[1] = {1}, v[16];
    trlc_dequant_nf4_ref(v, codes, one, 16, 16);
    int ok = 0;
    for (int c = 0; c < 16; c++) ok += v[c] == (float)ir_nf4_value(c);
    CHECK(ok == 16);
    free(pb), free(qb), free(ab), free(sb), free(wr), free(ar), free(w2r);
    ir_graph_free(&g);
    diag_free(&d);
}

// Attention with a key mask (B, T): row 0 masks every fifth key, row 1 is left-padded (6 keys);
// with segments, row 1's padding is its own segment (-1), so its queries see no key even without
// the causal mask. A query with no visible key: output 0, lse +inf, dq 0 (the interpreter's 0
// output and gradients); a masked key: dk = dv = 0.
static void test_attention_masked(int causal, int with_seg) {
    enum { B = 2, Hq = 4, Hkv = 2, T = 29, D = 8, PAD = 6 };
    Diag d;
    IrGraph g;
    IrId q, k, v, go;
    attention_graph(&d, &g, Hq, Hkv, D, &q, &k, &v, &go);
    Loc L = {0, 0, 0};
    IrId km = ir_input(&g, "mask", IR_F32, ir_shape2(ir_dim_b(), ir_dim_t()), L);
    IrId sg = with_seg ? ir_input(&g, "seg", IR_I32, ir_shape2(ir_dim_b(), ir_dim_t()), L) : IR_NONE;
    const float scale = 0.4f;
    ir_add_output(&g, ir_sdpa_seg(&g, q, k, v, km, sg, causal, scale, L), "o");
    const char *names[3] = {"dq", "dk", "dv"};
    for (int w = 0; w < 3; w++)
        ir_add_output(&g, ir_sdpa_bwd_seg(&g, IR_SDPA_BWD_Q + w, q, k, v, go, km, sg, causal, scale, L), names[w]);
    CHECK(g.errors == 0);
    if (g.errors) return;
    static float qb[B * Hq * T * D], kb[B * Hkv * T * D], vb[B * Hkv * T * D], gob[B * Hq * T * D], mb[B * T];
    static int32_t sb[B * T];
    attention_values(qb, kb, vb, gob, B * Hq * T * D, B * Hkv * T * D);
    for (int j = 0; j < T; j++) {
        mb[j] = j % 5 == 2 ? 0.0f : 1.0f;
        mb[T + j] = j < PAD ? 0.0f : 1.0f;
        sb[j] = j < 12 ? 0 : 1;
        sb[T + j] = j < PAD ? -1 : j < 20 ? 0 : 1;
    }
    CpuProgram *p = cpu_program_new(&g, IR_F32, &d);
    CHECK(p != NULL);
    if (!p) return;
    cpu_bind(p, q, qb, sizeof qb), cpu_bind(p, k, kb, sizeof kb), cpu_bind(p, v, vb, sizeof vb);
    cpu_bind(p, go, gob, sizeof gob), cpu_bind(p, km, mb, sizeof mb);
    if (with_seg) cpu_bind(p, sg, sb, sizeof sb);
    int64_t sym[IR_NSYMS] = {B, T};
    CHECK(cpu_run(p, sym, 0) == 0);
    static float o[B * Hq * T * D], lse[B * Hq * T], dq[B * Hq * T * D], delta[B * Hq * T];
    static float dk[B * Hkv * T * D], dv[B * Hkv * T * D];
    const int32_t *seg = with_seg ? sb : NULL;
    trlc_attention_fwd_ref(o, lse, qb, kb, vb, seg, mb, B, Hq, Hkv, T, D, scale, causal);
    trlc_attention_bwd_dq_ref(dq, delta, qb, kb, vb, o, gob, lse, seg, mb, B, Hq, Hkv, T, D, scale, causal);
    trlc_attention_bwd_dkdv_ref(dk, dv, qb, kb, vb, gob, lse, delta, seg, mb, B, Hq, Hkv, T, D, scale, causal);
    double e_o = maxdiff(o, out_of(p, "o"), B * Hq * T * D), e_dq = maxdiff(dq, out_of(p, "dq"), B * Hq * T * D);
    double e_dk = maxdiff(dk, out_of(p, "dk"), B * Hkv * T * D), e_dv = maxdiff(dv, out_of(p, "dv"), B * Hkv * T * D);
    int empty = 0, empty_ok = 0, masked_ok = 0;   // query rows seeing no key; masked keys' gradients
    for (int h = 0; h < Hq; h++)
        for (int i = 0; i < T; i++) {
            int64_t r = (int64_t)(1 * Hq + h) * T + i;   // batch row 1
            int none = i < PAD && (causal || with_seg);
            if (!none) continue;
            empty++;
            int zero = lse[r] == INFINITY;
            for (int e = 0; e < D; e++) zero &= o[r * D + e] == 0 && dq[r * D + e] == 0;
            empty_ok += zero;
        }
    for (int b = 0; b < B; b++)
        for (int h = 0; h < Hkv; h++)
            for (int j = 0; j < T; j++) {
                if (mb[b * T + j] != 0) continue;
                int zero = 1;
                for (int e = 0; e < D; e++) zero &= dk[((b * Hkv + h) * T + j) * D + e] == 0 && dv[((b * Hkv + h) * T + j) * D + e] == 0;
                masked_ok += zero;
            }
    printf("attention with a key mask (%s%s) vs interpreter: o %.2g, dq %.2g, dk %.2g, dv %.2g; %d/%d query rows "
           "with no key: o = dq = 0, lse = inf; %d masked keys: dk = dv = 0\n", causal ? "causal" : "full",
           with_seg ? ", segments" : "", e_o, e_dq, e_dk, e_dv, empty_ok, empty, masked_ok);
    CHECK(e_o < 1e-4 && e_dq < 1e-4 && e_dk < 1e-4 && e_dv < 1e-4);
    CHECK(empty == ((causal || with_seg) ? Hq * PAD : 0) && empty_ok == empty);
    CHECK(masked_ok == Hkv * (PAD + (T + 2) / 5));
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

// adamw.cu's multi-tensor update (the trainer's optimizer on the device) through its C reference
// against runtime/train/optim.c, the host optimizer: the gradient scaled by 1/targets and clipped
// in place as tr_apply and opt_clip_grad_norm do, then opt_adamw_update / opt_sgd_update. Every
// element must come out bit-identical (the same float operations on the same float scalars).
static int opt_case(bool adamw, int step, bool decay, bool clip, double wd, double mom, double damp, bool nest) {
    enum { N = 1000 };
    float p0[N], g[N], m0[N], v0[N], p1[N], m1[N], v1[N], g1[N], p2[N], m2[N], v2[N];
    for (int i = 0; i < N; i++)
        p0[i] = frand(), g[i] = 3 * frand(), m0[i] = 0.1f * frand(), v0[i] = 0.01f * (frand() + 0.5f);
    const float scale = (float)(1.0 / 37.0), coef = 0.3712f;
    const double lr = 3e-3, b1 = 0.9, b2 = 0.999, eps = 1e-8;
    memcpy(p1, p0, sizeof p0), memcpy(m1, m0, sizeof m0), memcpy(v1, v0, sizeof v0);
    memcpy(p2, p0, sizeof p0), memcpy(m2, m0, sizeof m0), memcpy(v2, v0, sizeof v0);
    for (int i = 0; i < N; i++) g1[i] = g[i] * scale;   // tr_apply
    if (clip)
        for (int i = 0; i < N; i++) g1[i] *= coef;     // opt_clip_grad_norm
    double w = decay ? wd : 0.0;                        // opt_step: decay groups
    if (adamw) {
        opt_adamw_update(p1, g1, m1, v1, N, lr, w, b1, b2, eps, step);
        TrlcAdamw s;
        trlc_adamw_setup(&s, lr, wd, b1, b2, eps, step);
        trlc_adamw_multi_ref(p2, g, m2, v2, N, scale, coef, clip, decay, &s);
    } else {
        opt_sgd_update(p1, g1, mom != 0 ? m1 : NULL, N, lr, w, mom, damp, nest, step == 1);
        TrlcSgd s;
        trlc_sgd_setup(&s, lr, wd, mom, damp, nest, step == 1);
        trlc_sgd_multi_ref(p2, g, mom != 0 ? m2 : NULL, N, scale, coef, clip, decay, &s);
    }
    int differ = 0;
    for (int i = 0; i < N; i++) differ += memcmp(&p1[i], &p2[i], 4) != 0 || memcmp(&m1[i], &m2[i], 4) != 0 ||
                                          (adamw && memcmp(&v1[i], &v2[i], 4) != 0);
    return differ;
}

static void test_opt_multi(void) {
    int cases = 0, differ = 0;
    for (int step = 1; step <= 5; step += 4)
        for (int decay = 0; decay < 2; decay++)
            for (int clip = 0; clip < 2; clip++) {
                differ += opt_case(true, step, decay, clip, 0.01, 0, 0, false), cases++;
                differ += opt_case(true, step, decay, clip, 0.0, 0, 0, false), cases++;
                differ += opt_case(false, step, decay, clip, 0.01, 0, 0, false), cases++;
                differ += opt_case(false, step, decay, clip, 0.01, 0.9, 0, false), cases++;
                differ += opt_case(false, step, decay, clip, 0.0, 0.9, 0.1, false), cases++;
                differ += opt_case(false, step, decay, clip, 0.01, 0.9, 0, true), cases++;
            }
    printf("adamw.cu multi-tensor AdamW / SGD (reference) vs optim.c: %d cases of 1000 elements, %d elements differ\n",
           cases, differ);
    CHECK(differ == 0);
}

#ifdef TRLC_HAVE_CUDA
static void test_nvrtc(const char *dir) {
    (void)dir;
    enum { NF = 16 };
    int nf = cg_library_count();
    CHECK(nf >= 9 && nf <= NF);   // adamw attention cross_entropy embed gather layout quant rope softmax
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
    // no_fma (generated kernels): a * b + c stays a multiply and an add, as the CPU computes it;
    // by default NVRTC contracts it into one fma (the PTX says which)
    const char *fsrc = "extern \"C\" __global__ void f(float *o, const float *a, const float *b, const float *c) {\n"
                       "    o[threadIdx.x] = a[threadIdx.x] * b[threadIdx.x] + c[threadIdx.x];\n}\n";
    for (int nofma = 0; nofma < 2; nofma++) {
        RtCudaProgram fp = {.name = "f", .source = fsrc, .no_fma = nofma};
        CHECK(rt_cuda_compile(&cache, &fp, 1, "sm_90", true, 1, &d) == 0);
        bool fma = fp.ptx && strstr(fp.ptx, "fma.rn.f32");
        bool split = fp.ptx && strstr(fp.ptx, "mul.rn.f32") && strstr(fp.ptx, "add.rn.f32");
        printf("a * b + c compiled %s: PTX has %s\n", nofma ? "with --fmad=false" : "by default",
               fma ? "fma.rn.f32" : split ? "mul.rn.f32 and add.rn.f32" : "neither");
        CHECK(nofma ? !fma && split : fma && !split);
        rt_cuda_program_free(&fp);
    }
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
// ---------------------------------------------------------------------------------------------
// On a device (a GPU, or the CUDA emulator through $TRLC_CUDA_DRIVER): the kernels this file's
// references stand for, launched and compared with the references — attention with a key mask
// (fully masked query rows), and the bf16 variants of gather and dequantization (bit-exact: the
// same f32 math, rounded to nearest even once). Without a device this part is skipped.

static RtCudaPtr dev_up(RtCudaDevice *dev, const void *data, size_t bytes) {
    return gpu_test_upload(dev, data, bytes);
}

// compiles `file` (as embedded in trlc), loads `name`, launches it and waits; 0 or -1
static int dev_launch(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, const char *file, const char *name,
                      const unsigned grid[3], unsigned block, void **args, Diag *d) {
    void *fn = gpu_test_kernel(dev, cache, arch, file, cg_library_source(file), name, d);
    int r = -1;
    unsigned b[3] = {block, 1, 1};
    if (fn) r = rt_cuda_launch(dev, fn, grid, b, 0, args, name) == 0 && rt_cuda_sync(dev, name) == 0 ? 0 : -1;
    CHECK_MSG(r == 0, "%s (%s) does not run", name, file);
    return r;
}

static void dev_attention_masked(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, int with_seg, Diag *d) {
    enum { B = 2, Hq = 4, Hkv = 2, T = 45, D = 40, PAD = 7 };
    const int nq = B * Hq * T * D, nkv = B * Hkv * T * D, nl = B * Hq * T;
    float *q = malloc(nq * 4), *k = malloc(nkv * 4), *v = malloc(nkv * 4), *go = malloc(nq * 4);
    float *o = malloc(nq * 4), *lse = malloc(nl * 4), *dq = malloc(nq * 4), *delta = malloc(nl * 4);
    float *dk = malloc(nkv * 4), *dv = malloc(nkv * 4), *got = malloc(nq * 4), km[B * T];
    int32_t sg[B * T];
    attention_values(q, k, v, go, nq, nkv);
    for (int j = 0; j < T; j++) {
        km[j] = j % 5 == 2 ? 0.0f : 1.0f, km[T + j] = j < PAD ? 0.0f : 1.0f;
        sg[j] = j < 20 ? 0 : 1, sg[T + j] = j < PAD ? -1 : j < 33 ? 0 : 1;
    }
    const int32_t *seg = with_seg ? sg : NULL;
    float scale = 0.3f;
    int causal = 1, t = T, dd = D, hq = Hq, hkv = Hkv;
    trlc_attention_fwd_ref(o, lse, q, k, v, seg, km, B, Hq, Hkv, T, D, scale, causal);
    trlc_attention_bwd_dq_ref(dq, delta, q, k, v, o, go, lse, seg, km, B, Hq, Hkv, T, D, scale, causal);
    trlc_attention_bwd_dkdv_ref(dk, dv, q, k, v, go, lse, delta, seg, km, B, Hq, Hkv, T, D, scale, causal);
    RtCudaPtr ps = seg ? dev_up(dev, sg, sizeof sg) : 0, pm = dev_up(dev, km, sizeof km);
    RtCudaPtr pq = dev_up(dev, q, nq * 4), pk = dev_up(dev, k, nkv * 4), pv = dev_up(dev, v, nkv * 4);
    RtCudaPtr pgo = dev_up(dev, go, nq * 4), po = dev_up(dev, NULL, nq * 4), pl = dev_up(dev, NULL, nl * 4);
    RtCudaPtr pdq = dev_up(dev, NULL, nq * 4), pdl = dev_up(dev, NULL, nl * 4), pdk = dev_up(dev, NULL, nkv * 4);
    RtCudaPtr pdv = dev_up(dev, NULL, nkv * 4);
    unsigned grid[3] = {(T + 3) / 4, Hq, B}, gridkv[3] = {(T + 3) / 4, Hkv, B};
    void *a1[] = {&po, &pl, &pq, &pk, &pv, &ps, &pm, &t, &dd, &hq, &hkv, &scale, &causal};
    void *a2[] = {&pdq, &pdl, &pq, &pk, &pv, &po, &pgo, &pl, &ps, &pm, &t, &dd, &hq, &hkv, &scale, &causal};
    void *a3[] = {&pdk, &pdv, &pq, &pk, &pv, &pgo, &pl, &pdl, &ps, &pm, &t, &dd, &hq, &hkv, &scale, &causal};
    if (dev_launch(dev, cache, arch, "attention.cu", "trlc_attention_forward", grid, 128, a1, d) == 0 &&
        dev_launch(dev, cache, arch, "attention.cu", "trlc_attention_backward_dq", grid, 128, a2, d) == 0 &&
        dev_launch(dev, cache, arch, "attention.cu", "trlc_attention_backward_dkdv", gridkv, 128, a3, d) == 0) {
        double e[5];
        int inf_rows = 0;
        rt_cuda_download(dev, got, po, nq * 4), e[0] = gpu_test_relerr_eq(got, o, nq);
        rt_cuda_download(dev, got, pl, nl * 4), e[1] = gpu_test_relerr_eq(got, lse, nl);
        for (int i = 0; i < nl; i++) inf_rows += got[i] == INFINITY;
        rt_cuda_download(dev, got, pdq, nq * 4), e[2] = gpu_test_relerr_eq(got, dq, nq);
        rt_cuda_download(dev, got, pdk, nkv * 4), e[3] = gpu_test_relerr_eq(got, dk, nkv);
        rt_cuda_download(dev, got, pdv, nkv * 4), e[4] = gpu_test_relerr_eq(got, dv, nkv);
        printf("attention with a key mask on the device (causal%s, T=%d, D=%d) vs reference: o %.2g lse %.2g dq %.2g "
               "dk %.2g dv %.2g; %d query rows with no key (lse inf)\n", with_seg ? ", segments" : "", T, D, e[0], e[1],
               e[2], e[3], e[4], inf_rows);
        for (int i = 0; i < 5; i++) CHECK(e[i] < 1e-3);
        CHECK(inf_rows == Hq * PAD);
    }
    RtCudaPtr all[] = {pm, pq, pk, pv, pgo, po, pl, pdq, pdl, pdk, pdv};
    for (int i = 0; i < 11; i++) rt_cuda_free(dev, all[i]);
    if (ps) rt_cuda_free(dev, ps);
    free(q), free(k), free(v), free(go), free(o), free(lse), free(dq), free(delta), free(dk), free(dv), free(got);
}

// bf16 gather forward / backward along the middle axis of (O, LX, IN), several blocks in a grid-
// stride loop: bit-exact against the reference run on the bf16 values and rounded once.
static void dev_gather_bf16(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, Diag *d) {
    enum { O = 5, LX = 40, LI = 12, IN = 9 };
    const int nx = O * LX * IN, ni = O * LI * IN;
    uint16_t xb[O * LX * IN], gb[O * LI * IN], yb[O * LI * IN], dxb[O * LX * IN];
    float xf[O * LX * IN], gf[O * LI * IN], y[O * LI * IN], dx[O * LX * IN];
    int32_t idx[O * LI * IN];
    for (int i = 0; i < nx; i++) xb[i] = gpu_test_bf16_bits(frand()), xf[i] = gpu_test_bf16_value(xb[i]);
    for (int i = 0; i < ni; i++) {
        gb[i] = gpu_test_bf16_bits(frand()), gf[i] = gpu_test_bf16_value(gb[i]);
        idx[i] = (int32_t)(((i / IN) % LI / 3 * 7 + i % IN) % (LX - 1));   // triples of a pick one position
    }
    int bad = 0, bad2 = 0, gbad = -1;
    trlc_gather_ref(y, &bad, xf, idx, O, LI, LX, IN);
    trlc_gather_bwd_ref(dx, &bad2, idx, gf, O, LI, LX, IN);
    RtCudaPtr px = dev_up(dev, xb, sizeof xb), pg = dev_up(dev, gb, sizeof gb), pi = dev_up(dev, idx, sizeof idx);
    RtCudaPtr py = dev_up(dev, NULL, sizeof yb), pdx = dev_up(dev, NULL, sizeof dxb), pbad = dev_up(dev, NULL, 4);
    rt_cuda_zero(dev, pbad, 4);
    long long outer = O, li = LI, lx = LX, inner = IN;
    unsigned grid[3] = {3, 1, 1};   // fewer threads than elements: the grid-stride loop runs
    void *a1[] = {&py, &pbad, &px, &pi, &outer, &li, &lx, &inner};
    void *a2[] = {&pdx, &pbad, &pi, &pg, &outer, &li, &lx, &inner};
    if (dev_launch(dev, cache, arch, "gather.cu", "trlc_gather_forward_bf16", grid, 256, a1, d) == 0 &&
        dev_launch(dev, cache, arch, "gather.cu", "trlc_gather_backward_bf16", grid, 256, a2, d) == 0) {
        rt_cuda_download(dev, yb, py, sizeof yb), rt_cuda_download(dev, dxb, pdx, sizeof dxb);
        rt_cuda_download(dev, &gbad, pbad, 4);
        int wrong_y = 0, wrong_dx = 0;
        for (int i = 0; i < ni; i++) wrong_y += yb[i] != gpu_test_bf16_bits(y[i]);
        for (int i = 0; i < nx; i++) wrong_dx += dxb[i] != gpu_test_bf16_bits(dx[i]);
        printf("gather bf16 on the device (%dx%dx%d, %d indexes): forward %d, backward %d elements differ\n", O, LX, IN,
               LI, wrong_y, wrong_dx);
        CHECK(wrong_y == 0 && wrong_dx == 0 && gbad == 0);
    }
    RtCudaPtr all[] = {px, pg, pi, py, pdx, pbad};
    for (int i = 0; i < 6; i++) rt_cuda_free(dev, all[i]);
}

// bf16 NF4 (odd n, a partial last block, an odd block size) and map8, several blocks in the
// grid-stride loop: bit-exact against the reference rounded once.
static void dev_dequant_bf16(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, int64_t n, int64_t block,
                             Diag *d) {
    int64_t nb = (n + 1) / 2, nbl = (n + block - 1) / block;
    uint8_t *packed = malloc((size_t)nb), *q8 = malloc((size_t)n);
    float *absmax = malloc((size_t)nbl * 4), map[256], *want = malloc((size_t)n * 4);
    uint16_t *got = malloc((size_t)n * 2);
    for (int64_t i = 0; i < nb; i++) packed[i] = (uint8_t)(i * 73 + 11);
    for (int64_t i = 0; i < n; i++) q8[i] = (uint8_t)(i * 29 + 5);
    for (int64_t i = 0; i < nbl; i++) absmax[i] = 0.05f + (frand() + 0.5f);
    for (int i = 0; i < 256; i++) map[i] = (float)(i - 128) / 127.0f + 0.01f * frand();
    RtCudaPtr pp = dev_up(dev, packed, (size_t)nb), pa = dev_up(dev, absmax, (size_t)nbl * 4);
    RtCudaPtr pq = dev_up(dev, q8, (size_t)n), pm = dev_up(dev, map, sizeof map), po = dev_up(dev, NULL, (size_t)n * 2);
    long long ln = n, lb = block;
    float off = -0.0123f;
    unsigned grid[3] = {2, 1, 1};
    void *a1[] = {&po, &pp, &pa, &ln, &lb};
    void *a2[] = {&po, &pq, &pm, &pa, &ln, &lb, &off};
    int wrong4 = -1, wrong8 = -1;
    if (dev_launch(dev, cache, arch, "quant.cu", "trlc_dequant_nf4_bf16", grid, 256, a1, d) == 0) {
        trlc_dequant_nf4_ref(want, packed, absmax, n, block);
        rt_cuda_download(dev, got, po, (size_t)n * 2);
        wrong4 = 0;
        for (int64_t i = 0; i < n; i++) wrong4 += got[i] != gpu_test_bf16_bits(want[i]);
    }
    if (dev_launch(dev, cache, arch, "quant.cu", "trlc_dequant_map8_bf16", grid, 256, a2, d) == 0) {
        trlc_dequant_map8_ref(want, q8, map, absmax, n, block, off);
        rt_cuda_download(dev, got, po, (size_t)n * 2);
        wrong8 = 0;
        for (int64_t i = 0; i < n; i++) wrong8 += got[i] != gpu_test_bf16_bits(want[i]);
    }
    printf("dequant bf16 on the device (n=%" PRId64 ", block %" PRId64 "): nf4 %d, map8 %d elements differ\n", n, block,
           wrong4, wrong8);
    CHECK(wrong4 == 0 && wrong8 == 0);
    RtCudaPtr all[] = {pp, pa, pq, pm, po};
    for (int i = 0; i < 5; i++) rt_cuda_free(dev, all[i]);
    free(packed), free(q8), free(absmax), free(want), free(got);
}

// adamw.cu's multi-tensor kernels launched over a table of three chunks (grid-stride: 2 blocks),
// against their C references: AdamW and SGD bit-identical, the accumulation exact, the sum of
// squares within double rounding of a sequential sum.
typedef struct OptChunk {   // adamw.cu's TrlcOptChunk
    RtCudaPtr p, g, m, v;
    long long n;
    int decay, pad;
} OptChunk;
typedef struct AccChunk {   // adamw.cu's TrlcAccChunk
    RtCudaPtr dst, src;
    long long n;
} AccChunk;

static void dev_opt_multi(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, Diag *d) {
    enum { C = 1000, N = 3 * C };
    static float p[N], g[N], m[N], v[N], want_p[N], want_m[N], want_v[N], got[N];
    for (int i = 0; i < N; i++) p[i] = frand(), g[i] = 3 * frand(), m[i] = 0.1f * frand(), v[i] = 0.01f * (frand() + 0.5f);
    RtCudaPtr dp = dev_up(dev, p, sizeof p), dg = dev_up(dev, g, sizeof g), dm = dev_up(dev, m, sizeof m);
    RtCudaPtr dv = dev_up(dev, v, sizeof v), dacc = dev_up(dev, NULL, sizeof g);
    OptChunk ch[3];
    AccChunk ac[3];
    for (int c = 0; c < 3; c++) {
        RtCudaPtr o = (RtCudaPtr)c * C * 4;
        ch[c] = (OptChunk){dp + o, dg + o, dm + o, dv + o, C, c != 1, 0};
        ac[c] = (AccChunk){dacc + o, dg + o, C};
    }
    RtCudaPtr dch = dev_up(dev, ch, sizeof ch), dac = dev_up(dev, ac, sizeof ac), dpart = dev_up(dev, NULL, 3 * 8);
    int nc = 3, two = 2, first = 1, clip = 1;
    float scale = (float)(1.0 / 29.0), coef = 0.61f;
    unsigned grid[3] = {2, 1, 1}, one[3] = {1, 1, 1};
    // AdamW, step 3, clipped
    TrlcAdamw sa;
    trlc_adamw_setup(&sa, 2e-3, 0.01, 0.9, 0.999, 1e-8, 3);
    memcpy(want_p, p, sizeof p), memcpy(want_m, m, sizeof m), memcpy(want_v, v, sizeof v);
    for (int c = 0; c < 3; c++)
        trlc_adamw_multi_ref(want_p + c * C, g + c * C, want_m + c * C, want_v + c * C, C, scale, coef, clip, c != 1, &sa);
    void *a1[] = {&dch, &nc, &scale, &coef, &clip, &sa};
    int bad_adamw = -1, bad_sgd = -1, bad_acc = -1;
    if (dev_launch(dev, cache, arch, "adamw.cu", "trlc_adamw_multi", grid, 256, a1, d) == 0) {
        bad_adamw = 0;
        rt_cuda_download(dev, got, dp, sizeof got);
        for (int i = 0; i < N; i++) bad_adamw += memcmp(&got[i], &want_p[i], 4) != 0;
        rt_cuda_download(dev, got, dm, sizeof got);
        for (int i = 0; i < N; i++) bad_adamw += memcmp(&got[i], &want_m[i], 4) != 0;
        rt_cuda_download(dev, got, dv, sizeof got);
        for (int i = 0; i < N; i++) bad_adamw += memcmp(&got[i], &want_v[i], 4) != 0;
    }
    // SGD with Nesterov momentum over the values AdamW left, not clipped
    TrlcSgd ss;
    trlc_sgd_setup(&ss, 1e-2, 0.01, 0.9, 0, 1, 0);
    clip = 0;
    for (int c = 0; c < 3; c++) trlc_sgd_multi_ref(want_p + c * C, g + c * C, want_m + c * C, C, scale, coef, clip, c != 1, &ss);
    void *a2[] = {&dch, &nc, &scale, &coef, &clip, &ss};
    if (dev_launch(dev, cache, arch, "adamw.cu", "trlc_sgd_multi", grid, 256, a2, d) == 0) {
        bad_sgd = 0;
        rt_cuda_download(dev, got, dp, sizeof got);
        for (int i = 0; i < N; i++) bad_sgd += memcmp(&got[i], &want_p[i], 4) != 0;
        rt_cuda_download(dev, got, dm, sizeof got);
        for (int i = 0; i < N; i++) bad_sgd += memcmp(&got[i], &want_m[i], 4) != 0;
    }
    // accumulation: acc = g, then acc += g (twice g, exactly)
    void *a3[] = {&dac, &nc, &first};
    if (dev_launch(dev, cache, arch, "adamw.cu", "trlc_accumulate_multi", grid, 256, a3, d) == 0) {
        first = 0;
        if (dev_launch(dev, cache, arch, "adamw.cu", "trlc_accumulate_multi", grid, 256, a3, d) == 0) {
            bad_acc = 0;
            rt_cuda_download(dev, got, dacc, sizeof got);
            for (int i = 0; i < N; i++) bad_acc += got[i] != 2 * g[i];
        }
    }
    // the global sum of squares of the scaled gradients: partials of 2 blocks, then their sum
    double want = 0, total = -1;
    for (int i = 0; i < N; i++) want += (double)(g[i] * scale) * (double)(g[i] * scale);
    RtCudaPtr dtot = dpart + 2 * 8;
    void *a4[] = {&dpart, &dch, &nc, &scale};
    void *a5[] = {&dtot, &dpart, &two};
    if (dev_launch(dev, cache, arch, "adamw.cu", "trlc_sumsq_multi", grid, 256, a4, d) == 0 &&
        dev_launch(dev, cache, arch, "adamw.cu", "trlc_sum_partials", one, 256, a5, d) == 0)
        rt_cuda_download(dev, &total, dtot, 8);
    printf("adamw.cu multi-tensor kernels on the device (3 chunks, 2 blocks): AdamW %d, SGD %d, accumulation %d elements "
           "differ; sum of squares %.17g vs %.17g\n", bad_adamw, bad_sgd, bad_acc, total, want);
    CHECK(bad_adamw == 0 && bad_sgd == 0 && bad_acc == 0);
    CHECK(fabs(total - want) <= 1e-12 * want);
    RtCudaPtr all[] = {dp, dg, dm, dv, dacc, dch, dac, dpart};
    for (int i = 0; i < 8; i++) rt_cuda_free(dev, all[i]);
}

static void test_device(void) {
    GpuTestDevice t;
    if (!gpu_test_open(&t, "gpu.library", " (nor $TRLC_CUDA_DRIVER): kernels not launched")) return;
    printf("gpu.library: launching on %s (%s)\n", t.arch, rt_cuda_is_emulated(t.dev) ? "the emulator" : "a GPU");
    dev_attention_masked(t.dev, &t.cache, t.arch, 0, &t.d);
    dev_attention_masked(t.dev, &t.cache, t.arch, 1, &t.d);
    dev_gather_bf16(t.dev, &t.cache, t.arch, &t.d);
    dev_dequant_bf16(t.dev, &t.cache, t.arch, 1401, 64, &t.d);
    dev_dequant_bf16(t.dev, &t.cache, t.arch, 999, 37, &t.d);
    dev_opt_multi(t.dev, &t.cache, t.arch, &t.d);
    gpu_test_close(&t);
}
#endif

int main(int argc, char **argv) {
    test_attention_rope_ce(1);
    test_attention_rope_ce(0);
    test_attention_masked(1, 0);
    test_attention_masked(0, 1);
    test_attention_masked(1, 1);
    test_adamw();
    test_opt_multi();
    test_gather_axis(1, ir_shape3(ir_dim(3), ir_dim(4), ir_dim(5)));
    test_gather_axis(0, ir_shape3(ir_dim(6), ir_dim(7), ir_dim(5)));
    test_gather_axis(2, ir_shape3(ir_dim(3), ir_dim(7), ir_dim(1)));
    test_gather_bad();
    test_nf4_table_cu();
    test_dequant(3, 67, 64, 2);
    test_dequant(5, 9, 7, 3);
#ifdef TRLC_HAVE_CUDA
    if (argc > 1) test_nvrtc(argv[1]);
    test_device();
#else
    (void)argc, (void)argv;
#endif
    return test_done("gpu.library");
}
