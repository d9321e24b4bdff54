// test_sdpa_ref.c — segment-masked sdpa (packed rows) on the CPU backend against PyTorch
// (sdpa_seg_ref.txt from gen_sdpa_ref.py: torch SDPA with an explicit block-diagonal causal mask,
// GQA, a padding key with segment -1): the forward and dq/dk/dv (the backward ops with gout = w),
// computed in float64 and float32, both attention paths (block and row: TRLC_CPU_SDPA_BLOCK_MAX=0);
// and the C reference of the GPU flash kernel (kernels/kernels_ref.c) with the same segment ids;
// all-zero segment ids give bit-for-bit the output and gradients of the plain sdpa.
// usage: test_sdpa_ref FILE
#include "cpu.h"
#include "ir.h"
#include "kernels_ref.h"
#include "test.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { B = 2, HQ = 4, HK = 2, T = 6, D = 5, NQ = B * HQ * T * D, NK = B * HK * T * D };

typedef struct Ref {
    double seg[B * T], q[NQ], k[NK], v[NK], w[NQ], out[NQ], dq[NQ], dk[NK], dv[NK];
} Ref;

static int read_ref(const char *path, Ref *r) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    struct { const char *name; double *dst; int n; } want[] = {
        {"seg", r->seg, B * T}, {"q", r->q, NQ}, {"k", r->k, NK}, {"v", r->v, NK}, {"w", r->w, NQ},
        {"out", r->out, NQ}, {"dq", r->dq, NQ}, {"dk", r->dk, NK}, {"dv", r->dv, NK},
    };
    int found = 0;
    char name[32];
    int c;
    while ((c = fgetc(f)) != EOF) {
        if (c == '#' || c == '\n') {
            while (c != '\n' && c != EOF) c = fgetc(f);
            continue;
        }
        ungetc(c, f);
        int n;
        if (fscanf(f, "%31s %d", name, &n) != 2) break;
        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
            if (!strcmp(name, want[i].name) && n == want[i].n) {
                for (int j = 0; j < n; j++)
                    if (fscanf(f, "%lf", &want[i].dst[j]) != 1) n = -1;
                found += n > 0;
            }
    }
    fclose(f);
    return found == (int)(sizeof want / sizeof want[0]) ? 0 : -1;
}

// max |a - b| / max |b|
static double rel_err(const CpuTensor *t, IrDType real, const double *ref, int n) {
    if (!t || t->numel != n) return INFINITY;
    double md = 0, mb = 0;
    for (int i = 0; i < n; i++) {
        double a = real == IR_F64 ? ((const double *)t->data)[i] : ((const float *)t->data)[i];
        double dd = fabs(a - ref[i]);
        if (dd > md || isnan(dd)) md = isnan(dd) ? INFINITY : dd;
        if (fabs(ref[i]) > mb) mb = fabs(ref[i]);
    }
    return mb > 0 ? md / mb : md;
}

// An f64 graph (its Diag on stderr) with the inputs q and w (the output's gradient)
// (B, HQ, T, D), k and v (B, HK, T, D) and the segment ids seg (B, T).
static void graph_init(Diag *d, IrGraph *g, IrId *q, IrId *k, IrId *v, IrId *w, IrId *s) {
    diag_init(d, stderr);
    ir_graph_init(g, d, IR_F64);
    Loc l = {0, 0, 0};
    IrShape sq = ir_shape4(ir_dim(B), ir_dim(HQ), ir_dim(T), ir_dim(D));
    IrShape sk = ir_shape4(ir_dim(B), ir_dim(HK), ir_dim(T), ir_dim(D));
    *q = ir_input(g, "q", IR_F64, sq, l), *k = ir_input(g, "k", IR_F64, sk, l);
    *v = ir_input(g, "v", IR_F64, sk, l), *w = ir_input(g, "w", IR_F64, sq, l);
    *s = ir_input(g, "seg", IR_I32, ir_shape2(ir_dim(B), ir_dim(T)), l);
}

static void run(const Ref *r, IrDType real, double tol, const char *label) {
    Diag d;
    IrGraph g;
    IrId q, k, v, w, s;
    graph_init(&d, &g, &q, &k, &v, &w, &s);
    Loc l = {0, 0, 0};
    IrId y = ir_sdpa_seg(&g, q, k, v, IR_NONE, s, true, 0, l);
    IrId gq = ir_sdpa_bwd_seg(&g, IR_SDPA_BWD_Q, q, k, v, w, IR_NONE, s, true, 0, l);
    IrId gk = ir_sdpa_bwd_seg(&g, IR_SDPA_BWD_K, q, k, v, w, IR_NONE, s, true, 0, l);
    IrId gv = ir_sdpa_bwd_seg(&g, IR_SDPA_BWD_V, q, k, v, w, IR_NONE, s, true, 0, l);
    CHECK(y != IR_NONE && gq != IR_NONE && gk != IR_NONE && gv != IR_NONE);
    ir_add_output(&g, y, "out");
    ir_add_output(&g, gq, "dq");
    ir_add_output(&g, gk, "dk");
    ir_add_output(&g, gv, "dv");
    CpuProgram *p = cpu_program_new(&g, real, &d);
    CHECK(p != NULL);
    if (!p) return;
    size_t es = real == IR_F64 ? sizeof(double) : sizeof(float);
    char *buf = malloc((2 * NQ + 2 * NK) * es);
    int32_t seg[B * T];
    for (int i = 0; i < B * T; i++) seg[i] = (int32_t)r->seg[i];
    const double *src[4] = {r->q, r->k, r->v, r->w};
    int cnt[4] = {NQ, NK, NK, NQ};
    const char *nm[4] = {"q", "k", "v", "w"};
    size_t off = 0;
    for (int i = 0; i < 4; i++) {
        for (int j = 0; j < cnt[i]; j++) {
            if (real == IR_F64) ((double *)(buf + off))[j] = src[i][j];
            else ((float *)(buf + off))[j] = (float)src[i][j];
        }
        CHECK(cpu_bind_name(p, nm[i], buf + off, (size_t)cnt[i] * es) == 0);
        off += (size_t)cnt[i] * es;
    }
    CHECK(cpu_bind_name(p, "seg", seg, sizeof seg) == 0);
    int64_t sym[IR_NSYMS] = {B, T};
    CHECK(cpu_run(p, sym, 0) == 0);
    double eo = rel_err(cpu_output_named(p, "out"), real, r->out, NQ);
    double eq = rel_err(cpu_output_named(p, "dq"), real, r->dq, NQ);
    double ek = rel_err(cpu_output_named(p, "dk"), real, r->dk, NK);
    double ev = rel_err(cpu_output_named(p, "dv"), real, r->dv, NK);
    printf("%s: out %.3g dq %.3g dk %.3g dv %.3g (max rel err vs torch)\n", label, eo, eq, ek, ev);
    CHECK(eo < tol && eq < tol && ek < tol && ev < tol);
    cpu_program_free(p);
    free(buf);
    ir_graph_free(&g);
    diag_free(&d);
}

static double rel_err_f(const float *a, const double *ref, int n) {
    double md = 0, mb = 0;
    for (int i = 0; i < n; i++) {
        double dd = fabs(a[i] - ref[i]);
        if (dd > md || isnan(dd)) md = isnan(dd) ? INFINITY : dd;
        if (fabs(ref[i]) > mb) mb = fabs(ref[i]);
    }
    return mb > 0 ? md / mb : md;
}

// kernels_ref.c: the loops of kernels/attention.cu (forward, dq, dk/dv with gout = w)
static void gpu_ref(const Ref *r) {
    static float q[NQ], k[NK], v[NK], w[NQ], o[NQ], dq[NQ], dk[NK], dv[NK], lse[B * HQ * T], delta[B * HQ * T];
    int32_t seg[B * T];
    for (int i = 0; i < B * T; i++) seg[i] = (int32_t)r->seg[i];
    for (int i = 0; i < NQ; i++) q[i] = (float)r->q[i], w[i] = (float)r->w[i];
    for (int i = 0; i < NK; i++) k[i] = (float)r->k[i], v[i] = (float)r->v[i];
    float scale = (float)(1.0 / sqrt((double)D));
    trlc_attention_fwd_ref(o, lse, q, k, v, seg, NULL, B, HQ, HK, T, D, scale, 1);
    trlc_attention_bwd_dq_ref(dq, delta, q, k, v, o, w, lse, seg, NULL, B, HQ, HK, T, D, scale, 1);
    trlc_attention_bwd_dkdv_ref(dk, dv, q, k, v, w, lse, delta, seg, NULL, B, HQ, HK, T, D, scale, 1);
    double eo = rel_err_f(o, r->out, NQ), eq = rel_err_f(dq, r->dq, NQ);
    double ek = rel_err_f(dk, r->dk, NK), ev = rel_err_f(dv, r->dv, NK);
    printf("flash reference: out %.3g dq %.3g dk %.3g dv %.3g (max rel err vs torch)\n", eo, eq, ek, ev);
    CHECK(eo < 1e-5 && eq < 1e-5 && ek < 1e-5 && ev < 1e-5);
}

// One segment per row (all zeros) == no segment input, bit for bit (unpacked batches unchanged).
static void zeros_identical(const Ref *r) {
    Diag d;
    IrGraph g;
    IrId q, k, v, w, s;
    graph_init(&d, &g, &q, &k, &v, &w, &s);
    Loc l = {0, 0, 0};
    IrOp bw[3] = {IR_SDPA_BWD_Q, IR_SDPA_BWD_K, IR_SDPA_BWD_V};
    ir_add_output(&g, ir_sdpa(&g, q, k, v, true, 0, l), "y0");
    ir_add_output(&g, ir_sdpa_seg(&g, q, k, v, IR_NONE, s, true, 0, l), "y1");
    for (int i = 0; i < 3; i++) {
        ir_add_output(&g, ir_sdpa_bwd(&g, bw[i], q, k, v, w, true, 0, l), i == 0 ? "q0" : i == 1 ? "k0" : "v0");
        ir_add_output(&g, ir_sdpa_bwd_seg(&g, bw[i], q, k, v, w, IR_NONE, s, true, 0, l),
                      i == 0 ? "q1" : i == 1 ? "k1" : "v1");
    }
    CpuProgram *p = cpu_program_new(&g, IR_F32, &d);
    CHECK(p != NULL);
    if (p) {
        static float fq[NQ], fk[NK], fv[NK], fw[NQ];
        static const int32_t zero[B * T];
        for (int i = 0; i < NQ; i++) fq[i] = (float)r->q[i], fw[i] = (float)r->w[i];
        for (int i = 0; i < NK; i++) fk[i] = (float)r->k[i], fv[i] = (float)r->v[i];
        CHECK(cpu_bind_name(p, "q", fq, sizeof fq) == 0 && cpu_bind_name(p, "k", fk, sizeof fk) == 0 &&
              cpu_bind_name(p, "v", fv, sizeof fv) == 0 && cpu_bind_name(p, "w", fw, sizeof fw) == 0 &&
              cpu_bind_name(p, "seg", zero, sizeof zero) == 0);
        int64_t sym[IR_NSYMS] = {B, T};
        CHECK(cpu_run(p, sym, 0) == 0);
        const char *pairs[4][2] = {{"y0", "y1"}, {"q0", "q1"}, {"k0", "k1"}, {"v0", "v1"}};
        for (int i = 0; i < 4; i++) {
            const CpuTensor *a = cpu_output_named(p, pairs[i][0]), *b = cpu_output_named(p, pairs[i][1]);
            CHECK(a && b && a->numel == b->numel && !memcmp(a->data, b->data, (size_t)a->numel * sizeof(float)));
        }
        cpu_program_free(p);
    }
    ir_graph_free(&g);
    diag_free(&d);
}

int main(int argc, char **argv) {
    static Ref r;
    CHECK(argc > 1 && read_ref(argv[1], &r) == 0);
    if (argc < 2) return test_done("pack.sdpa_ref");
    run(&r, IR_F64, 1e-12, "f64");
    run(&r, IR_F32, 1e-5, "f32");
    gpu_ref(&r);
    zeros_identical(&r);
    return test_done("pack.sdpa_ref");
}
