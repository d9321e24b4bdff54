// test_fixtures.c — CPU forward (and dedicated backward) results of softmax, log_softmax, rope
// (HF LlamaRotaryEmbedding, with and without llama-3 scaling), sdpa with GQA, and cross_entropy
// (ignore_index, label smoothing) against values from PyTorch/transformers, and NF4 dequantization
// (plain and double-quantized absmax) against bitsandbytes (tests/ir/gen_fixtures.py →
// fixtures/ir_ref.txt), each in float64 and float32.
#include <stdlib.h>
#include <string.h>
#include "autodiff.h"
#include "cpu.h"
#include "test.h"

#define L0 ((Loc){0, 0, 0})

typedef struct Fx {
    char name[64];
    bool i32;
    int rank;
    int64_t shape[IR_MAX_RANK];
    int64_t n;
    double *v;
} Fx;

static Fx fx[64];
static int nfx;

static bool load(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "cannot open %s\n", path);
        return false;
    }
    char line[256];
    if (!fgets(line, sizeof line, f)) {   // comment line
        fclose(f);
        return false;
    }
    char name[64], dt[8];
    int rank;
    while (nfx < 64 && fscanf(f, " tensor %63s %7s %d", name, dt, &rank) == 3) {
        Fx *x = &fx[nfx];
        if (rank < 0 || rank > IR_MAX_RANK) break;
        snprintf(x->name, sizeof x->name, "%s", name);
        x->i32 = strcmp(dt, "i32") == 0;
        x->rank = rank;
        x->n = 1;
        for (int i = 0; i < rank; i++) {
            long long d;
            if (fscanf(f, "%lld", &d) != 1 || d < 0 || d > 1000000) goto bad;
            x->shape[i] = d;
            x->n *= d;
        }
        if (x->n > 1000000) goto bad;
        x->v = malloc((size_t)(x->n ? x->n : 1) * sizeof *x->v);
        for (int64_t i = 0; i < x->n; i++)
            if (fscanf(f, "%lf", &x->v[i]) != 1) goto bad;
        nfx++;
    }
    fclose(f);
    return nfx > 0;
bad:
    fclose(f);
    return false;
}

static const Fx *get(const char *name) {
    for (int i = 0; i < nfx; i++)
        if (strcmp(fx[i].name, name) == 0) return &fx[i];
    fprintf(stderr, "fixture %s missing\n", name);
    return NULL;
}

// An input named after a fixture tensor; dims equal to sym_b / sym_t become B / T.
static IrId fx_input(IrGraph *g, const char *name, int64_t sym_b, int64_t sym_t) {
    const Fx *x = get(name);
    if (!x) return IR_NONE;
    IrDim d[IR_MAX_RANK];
    for (int i = 0; i < x->rank; i++) {
        d[i] = ir_dim(x->shape[i]);
        if (i == 0 && x->shape[i] == sym_b) d[i] = ir_dim_b();
        else if (i > 0 && x->shape[i] == sym_t && (i == x->rank - 2 || i == 1)) d[i] = ir_dim_t();
    }
    return ir_input(g, name, x->i32 ? IR_I32 : g->float_dtype, ir_shape_of(x->rank, d), L0);
}

// Runs g in `real`, binding every input to its fixture; returns the program (NULL on failure).
static CpuProgram *run(IrGraph *g, IrDType real, Diag *d, int64_t B, int64_t T, void **bufs, int *nb) {
    CpuProgram *p = cpu_program_new(g, real, d);
    if (!p) return NULL;
    for (int i = 0; i < g->n; i++) {
        if (g->nodes[i].op != IR_INPUT) continue;
        const Fx *x = get(g->nodes[i].name);
        if (!x) continue;
        IrDType dt = g->nodes[i].dtype;
        size_t es = cpu_elem_size(dt, real);
        void *b = malloc((size_t)x->n * es);
        for (int64_t k = 0; k < x->n; k++) {
            if (dt == IR_U8) ((uint8_t *)b)[k] = (uint8_t)x->v[k];
            else if (x->i32) ((int32_t *)b)[k] = (int32_t)x->v[k];
            else if (real == IR_F64) ((double *)b)[k] = x->v[k];
            else ((float *)b)[k] = (float)x->v[k];
        }
        bufs[(*nb)++] = b;
        cpu_bind(p, i, b, (size_t)x->n * es);
    }
    int64_t syms[IR_NSYMS] = {B, T};
    if (cpu_run(p, syms, 0) != 0) {
        cpu_program_free(p);
        return NULL;
    }
    return p;
}

static void compare(const CpuProgram *p, const char *out, const char *ref, double tol, const char *what) {
    const CpuTensor *t = cpu_output_named(p, out);
    const Fx *x = get(ref);
    CHECK_MSG(t && x && t->numel == x->n, "%s: output %s vs %s", what, out, ref);
    if (!t || !x || t->numel != x->n) return;
    double maxerr = 0, maxref = 0;
    for (int64_t i = 0; i < x->n; i++) {
        double v = t->dtype == IR_F64 ? ((const double *)t->data)[i] : ((const float *)t->data)[i];
        double e = fabs(v - x->v[i]);
        if (!(e <= maxerr)) maxerr = e;
        if (fabs(x->v[i]) > maxref) maxref = fabs(x->v[i]);
    }
    printf("  %-28s %-4s max abs err %.3e (max |ref| %.3g)\n", ref, t->dtype == IR_F64 ? "f64" : "f32",
           maxerr, maxref);
    CHECK_MSG(maxerr <= tol, "%s %s: max abs err %.3e > %.1e", what, ref, maxerr, tol);
}

typedef IrId (*Build)(IrGraph *g, const char *tag);

// Builds with build(), marks named outputs, runs in f64 and f32 and compares each output.
static void case_run(const char *tag, Build build, const char *const *outs, const char *const *refs,
                     int nout, int64_t B, int64_t T, double tol64, double tol32) {
    for (int pass = 0; pass < 2; pass++) {
        IrDType real = pass ? IR_F32 : IR_F64;
        Diag d;
        diag_init(&d, stderr);
        IrGraph g;
        ir_graph_init(&g, &d, IR_F64);
        build(&g, tag);
        CHECK_MSG(g.errors == 0, "%s: build errors", tag);
        void *bufs[32];
        int nb = 0;
        CpuProgram *p = g.errors ? NULL : run(&g, real, &d, B, T, bufs, &nb);
        CHECK_MSG(p != NULL, "%s: run failed", tag);
        if (p) {
            for (int i = 0; i < nout; i++) {
                char ref[96];
                snprintf(ref, sizeof ref, "%s.%s", tag, refs[i]);
                compare(p, outs[i], ref, real == IR_F64 ? tol64 : tol32, tag);
            }
        }
        cpu_program_free(p);
        for (int i = 0; i < nb; i++) free(bufs[i]);
        ir_graph_free(&g);
        diag_free(&d);
    }
}

static IrId build_softmax(IrGraph *g, const char *tag) {
    (void)tag;
    IrId x = fx_input(g, "softmax.x", 2, 3);
    ir_add_output(g, ir_softmax(g, x, L0), "softmax");
    ir_add_output(g, ir_log_softmax(g, x, L0), "log_softmax");
    return x;
}

static IrId build_rope(IrGraph *g, const char *tag) {
    char n[64];
    snprintf(n, sizeof n, "%s.x", tag);
    IrId x = fx_input(g, n, 2, 5);
    snprintf(n, sizeof n, "%s.pos", tag);
    IrId pos = fx_input(g, n, 2, 5);
    IrRope r = {.theta = 10000.0};
    if (strcmp(tag, "rope_llama3") == 0) {
        r.theta = 500000.0;
        r.factor = 8;
        r.low_freq_factor = 1;
        r.high_freq_factor = 4;
        r.original_max_pos = 64;
    }
    IrId y = ir_rope(g, x, pos, r, L0);
    ir_add_output(g, y, "y");
    // the inverse rotation undoes it
    ir_add_output(g, ir_rope_inverse(g, y, pos, r, L0), "x_again");
    return y;
}

static IrId build_sdpa(IrGraph *g, const char *tag) {
    char n[64];
    IrId t[5];
    static const char *names[] = {"q", "k", "v", "gy"};
    for (int i = 0; i < 4; i++) {
        snprintf(n, sizeof n, "%s.%s", tag, names[i]);
        t[i] = fx_input(g, n, 2, strcmp(tag, "sdpa_cache") == 0 ? 7 : 6);
    }
    bool causal = strcmp(tag, "sdpa_full") != 0;
    IrId m = IR_NONE;
    if (strcmp(tag, "sdpa_masked") == 0) m = fx_input(g, "sdpa_masked.mask", 2, 6);
    ir_add_output(g, m == IR_NONE ? ir_sdpa(g, t[0], t[1], t[2], causal, 0, L0)
                                  : ir_sdpa_masked(g, t[0], t[1], t[2], m, causal, 0, L0), "y");
    static const IrOp bw[3] = {IR_SDPA_BWD_Q, IR_SDPA_BWD_K, IR_SDPA_BWD_V};
    static const char *bn[3] = {"dq", "dk", "dv"};
    for (int i = 0; i < 3; i++)
        ir_add_output(g, ir_sdpa_bwd_masked(g, bw[i], t[0], t[1], t[2], t[3], m, causal, 0, L0), bn[i]);
    return t[0];
}

static IrId build_ce(IrGraph *g, const char *tag) {
    IrId lg = fx_input(g, "ce.logits", 2, 5);
    IrId lb = fx_input(g, "ce.labels", 2, 5);
    char n[64];
    snprintf(n, sizeof n, "%s.gloss", tag);
    IrId gl = fx_input(g, n, 2, 5);
    double ls = strcmp(tag, "ce1") == 0 ? 0.1 : 0.0;
    ir_add_output(g, ir_cross_entropy(g, lg, lb, -100, ls, L0), "loss");
    ir_add_output(g, ir_cross_entropy_bwd(g, lg, lb, gl, -100, ls, L0), "dlogits");
    return lg;
}

// bitsandbytes NF4: packed codes + absmax (plain, or itself 8-bit quantized with an offset)
static IrId u8_input(IrGraph *g, const char *name) {
    const Fx *x = get(name);
    return x ? ir_input(g, name, IR_U8, ir_shape1(ir_dim(x->n)), L0) : IR_NONE;
}

static IrId build_nf4(IrGraph *g, const char *tag) {
    char n[64];
    snprintf(n, sizeof n, "%s.packed", tag);
    IrId packed = u8_input(g, n);
    IrId absmax;
    if (strcmp(tag, "nf4dq") == 0) {
        const Fx *off = get("nf4dq.offset");
        absmax = ir_dequant_map8(g, u8_input(g, "nf4dq.absmax_q"), fx_input(g, "nf4dq.code", -1, -1),
                                 fx_input(g, "nf4dq.absmax2", -1, -1), 256, off ? off->v[0] : 0, L0);
    } else {
        absmax = fx_input(g, "nf4.absmax", -1, -1);
    }
    IrId w = ir_dequant_nf4(g, packed, absmax, 64, ir_shape2(ir_dim(6), ir_dim(128)), L0);
    ir_add_output(g, w, "w");
    return w;
}

int main(int argc, char **argv) {
    if (argc < 2 || !load(argv[1])) {
        fprintf(stderr, "usage: test_ir_fixtures FIXTURE_FILE (could not load)\n");
        return 1;
    }
    const char *sm_o[] = {"softmax", "log_softmax"}, *sm_r[] = {"y", "y"};
    case_run("softmax", build_softmax, sm_o, sm_r, 1, 2, 3, 1e-12, 1e-6);
    const char *ls_r[] = {"y"};
    case_run("log_softmax", build_softmax, sm_o + 1, ls_r, 1, 2, 3, 1e-12, 1e-5);
    const char *ro_o[] = {"y", "x_again"}, *ro_r[] = {"y", "x"};
    // HF computes the angles in float32: ~3e-7 differences at positions up to 40
    case_run("rope", build_rope, ro_o, ro_r, 2, 2, 5, 1e-6, 2e-6);
    case_run("rope_llama3", build_rope, ro_o, ro_r, 2, 2, 5, 1e-6, 2e-6);
    const char *sd_o[] = {"y", "dq", "dk", "dv"};
    case_run("sdpa_causal", build_sdpa, sd_o, sd_o, 4, 2, 6, 1e-12, 2e-5);
    case_run("sdpa_full", build_sdpa, sd_o, sd_o, 4, 2, 6, 1e-12, 2e-5);
    case_run("sdpa_masked", build_sdpa, sd_o, sd_o, 4, 2, 6, 1e-12, 2e-5);
    case_run("sdpa_cache", build_sdpa, sd_o, sd_o, 4, 2, 7, 1e-12, 2e-5);
    const char *ce_o[] = {"loss", "dlogits"};
    case_run("ce0", build_ce, ce_o, ce_o, 2, 2, 5, 1e-12, 2e-5);
    case_run("ce1", build_ce, ce_o, ce_o, 2, 2, 5, 1e-12, 2e-5);
    const char *w_o[] = {"w"};
    case_run("nf4", build_nf4, w_o, w_o, 1, 1, 1, 1e-6, 1e-6);
    case_run("nf4dq", build_nf4, w_o, w_o, 1, 1, 1, 1e-6, 1e-6);
    for (int i = 0; i < nfx; i++) free(fx[i].v);
    return test_done("ir.fixtures");
}
