// test_build.c — the IR builders' shape inference and diagnostics (bad shapes are reported at the
// node's location and give IR_NONE, never a crash), symbolic dims, printing, DCE and the pass
// pipeline, and the CPU backend's runtime errors (bad ids, labels, bindings) and dropout RNG.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include "autodiff.h"
#include "cpu.h"
#include "cpu_internal.h"
#include "test.h"

#define D(n) ir_dim(n)
#define DB ir_dim_b()
#define DT ir_dim_t()

static const char *SPEC = "def f(x, w) = linear(x, w) * silu(x);\n"
                          "loss = cross_entropy(logits, labels);\n";

typedef struct Env {
    Diag d;
    IrGraph g;
    char *buf;
    size_t len;
    FILE *mem;
    Loc l1, l2;
} Env;

static void env_init(Env *e) {
    memset(e, 0, sizeof *e);
    e->mem = open_memstream(&e->buf, &e->len);
    diag_init(&e->d, e->mem);
    uint32_t f = diag_add_source(&e->d, "spec.trl", SPEC, strlen(SPEC));
    e->l1 = (Loc){f, 14, 14};                         // linear(x, w) on line 1
    e->l2 = (Loc){f, (uint32_t)(strchr(SPEC, '\n') - SPEC + 8), 13};   // cross_entropy on line 2
    ir_graph_init(&e->g, &e->d, IR_F32);
}

// The diagnostics printed so far (and clears them).
static const char *env_text(Env *e) {
    fflush(e->mem);
    return e->buf ? e->buf : "";
}

static void env_free(Env *e) {
    ir_graph_free(&e->g);
    diag_free(&e->d);
    fclose(e->mem);
    free(e->buf);
}

static void expect_error(const char *what, IrId got, Env *e, int errors_before, const char *needle) {
    const char *t = env_text(e);
    CHECK_MSG(got == IR_NONE, "%s: expected IR_NONE", what);
    CHECK_MSG(e->g.errors == errors_before + 1, "%s: errors %d -> %d", what, errors_before, e->g.errors);
    CHECK_MSG(strstr(t, needle) != NULL, "%s: `%s` not in diagnostics:\n%s", what, needle, t);
}

// The error count is read before the call (as an argument next to the call it could be read after:
// the order arguments are evaluated in is unspecified, and clang reads them left to right).
#define EXPECT_ERROR(what, call, e, needle)                                                         \
    do {                                                                                           \
        int before_ = (e)->g.errors;                                                               \
        IrId got_ = (call);                                                                        \
        expect_error(what, got_, e, before_, needle);                                              \
    } while (0)

static void shape_errors(void) {
    Env e;
    env_init(&e);
    IrGraph *g = &e.g;
    IrId x = ir_input(g, "x", IR_F32, ir_shape3(DB, DT, D(16)), e.l1);
    IrId w = ir_param(g, "w", IR_F32, ir_shape2(D(8), D(12)), true, e.l1);
    int n0 = g->errors;
    expect_error("linear", ir_linear(g, x, w, e.l1), &e, n0, "shape mismatch in linear");
    CHECK(strstr(env_text(&e), "spec.trl:1:15: error:") != NULL);
    IrId w2 = ir_param(g, "w2", IR_F32, ir_shape2(D(12), D(8)), true, e.l1);
    EXPECT_ERROR("matmul", ir_matmul(g, x, w2, false, false, e.l1), &e,
                 "shape mismatch in matmul");
    IrId y = ir_input(g, "y", IR_F32, ir_shape3(DB, DT, D(15)), e.l1);
    EXPECT_ERROR("broadcast", ir_add(g, x, y, e.l1), &e, "cannot be broadcast");
    EXPECT_ERROR("axis", ir_reduce(g, IR_SUM, x, 3, e.l1), &e, "axis 3 is out of range");
    EXPECT_ERROR("reshape", ir_reshape(g, x, ir_shape2(DB, D(16)), e.l1), &e,
                 "different element counts");
    IrDim bb = {1, 1u << IR_SYM_B};
    EXPECT_ERROR("reshape -1", ir_reshape(g, x, ir_shape3(bb, bb, D(-1)), e.l1), &e,
                 "invalid target shape");
    int e0 = g->errors;
    IrId tt = ir_binary(g, IR_GE, ir_reshape(g, ir_arange(g, DT, e.l1), ir_shape2(DT, D(1)), e.l1),
                        ir_arange(g, DT, e.l1), e.l1);   // a (T, T) causal mask is fine
    CHECK(tt != IR_NONE && g->errors == e0);
    EXPECT_ERROR("reshape (T,T)", ir_reshape(g, tt, ir_shape1(D(-1)), e.l1), &e,
                 "repeats a dynamic dimension");
    EXPECT_ERROR("slice T", ir_slice(g, x, 1, 0, -1, e.l1), &e, "is dynamic");
    IrId q = ir_input(g, "q", IR_F32, ir_shape4(DB, D(6), DT, D(8)), e.l1);
    IrId k = ir_input(g, "k", IR_F32, ir_shape4(DB, D(4), DT, D(8)), e.l1);
    EXPECT_ERROR("sdpa heads", ir_sdpa(g, q, k, k, true, 0, e.l1), &e, "multiple of key/value heads");
    IrId odd = ir_input(g, "odd", IR_F32, ir_shape4(DB, D(2), DT, D(7)), e.l1);
    IrId pos = ir_input(g, "pos", IR_I32, ir_shape1(DT), e.l1);
    EXPECT_ERROR("rope odd", ir_rope(g, odd, pos, (IrRope){.theta = 1e4}, e.l1), &e,
                 "constant even number");
    IrId lab = ir_input(g, "lab", IR_I32, ir_shape2(DB, D(3)), e.l2);
    EXPECT_ERROR("ce labels", ir_cross_entropy(g, x, lab, -100, 0, e.l2), &e,
                 "without the last axis");
    CHECK(strstr(env_text(&e), "spec.trl:2:") != NULL);
    EXPECT_ERROR("embed ids", ir_embed(g, x, w, e.l1), &e, "token ids must be i32");
    EXPECT_ERROR("dup param", ir_param(g, "w", IR_F32, ir_shape1(D(3)), true, e.l1), &e,
                 "defined twice");
    EXPECT_ERROR("permute", ir_permute(g, x, (const int[]){0, 0, 1}, e.l1), &e,
                 "not a permutation");
    EXPECT_ERROR("dropout p", ir_dropout(g, x, 1.5, 1, e.l1), &e, "dropout probability");
    IrId i32 = ir_input(g, "ids", IR_I32, ir_shape2(DB, DT), e.l1);
    EXPECT_ERROR("dtypes", ir_matmul(g, i32, i32, false, false, e.l1), &e, "floating-point");
    // errors propagate silently
    int n1 = g->errors;
    CHECK(ir_add(g, IR_NONE, x, e.l1) == IR_NONE);
    CHECK(ir_sdpa(g, IR_NONE, IR_NONE, IR_NONE, true, 0, e.l1) == IR_NONE);
    CHECK(ir_concat(g, (const IrId[]){x, IR_NONE}, 2, 0, e.l1) == IR_NONE);
    CHECK(g->errors == n1);
    // loss must be a scalar
    ir_set_loss(g, x);
    CHECK(g->loss == IR_NONE && g->errors == n1 + 1);
    env_free(&e);
}

static void shape_inference(void) {
    Env e;
    env_init(&e);
    IrGraph *g = &e.g;
    char buf[160];
    IrId x = ir_input(g, "x", IR_F32, ir_shape3(DB, DT, D(12)), e.l1);
    IrId r = ir_reshape(g, x, ir_shape2(D(-1), D(12)), e.l1);
    CHECK(r != IR_NONE && strcmp(ir_shape_str(&g->nodes[r].shape, buf, sizeof buf), "[B*T,12]") == 0);
    IrId r2 = ir_reshape(g, r, ir_shape4(DB, DT, D(3), D(-1)), e.l1);
    CHECK(r2 != IR_NONE && strcmp(ir_shape_str(&g->nodes[r2].shape, buf, sizeof buf), "[B,T,3,4]") == 0);
    IrId s = ir_reduce(g, IR_MEAN, x, -1, e.l1);
    CHECK(s != IR_NONE && strcmp(ir_shape_str(&g->nodes[s].shape, buf, sizeof buf), "[B,T,1]") == 0);
    IrId w = ir_param(g, "w", IR_BF16, ir_shape2(D(5), D(12)), true, e.l1);
    IrId y = ir_linear(g, x, w, e.l1);   // bf16 weight promoted to f32
    CHECK(y != IR_NONE && g->nodes[y].dtype == IR_F32);
    CHECK(y != IR_NONE && strcmp(ir_shape_str(&g->nodes[y].shape, buf, sizeof buf), "[B,T,5]") == 0);
    IrId c = ir_concat(g, (const IrId[]){x, x}, 2, 0, e.l1);
    CHECK(c != IR_NONE && strcmp(ir_shape_str(&g->nodes[c].shape, buf, sizeof buf), "[2*B,T,12]") == 0);
    IrId half = ir_slice_dim(g, c, 0, DB, DB, e.l1);
    CHECK(half != IR_NONE && ir_shape_eq(&g->nodes[half].shape, &g->nodes[x].shape));
    IrId m = ir_binary(g, IR_NE, ir_input(g, "lab", IR_I32, ir_shape2(DB, DT), e.l1),
                       ir_scalar(g, -100, e.l1), e.l1);
    CHECK(m != IR_NONE && g->nodes[m].dtype == IR_F32);
    int64_t syms[IR_NSYMS] = {3, 7};
    CHECK(ir_shape_numel(&g->nodes[x].shape, syms) == 3 * 7 * 12);
    CHECK(g->errors == 0);
    env_free(&e);
}

static void printing_and_passes(void) {
    Env e;
    env_init(&e);
    IrGraph *g = &e.g;
    IrId x = ir_input(g, "x", IR_F32, ir_shape3(DB, DT, D(8)), e.l1);
    IrId w = ir_param(g, "model.layers.0.mlp.up_proj.weight", IR_F32, ir_shape2(D(8), D(8)), true, e.l1);
    IrId f = ir_param(g, "frozen", IR_F32, ir_shape1(D(8)), false, e.l1);
    IrId unused = ir_unary(g, IR_EXP, x, e.l1);
    (void)unused;
    IrId s = ir_unary(g, IR_SILU, ir_mul(g, ir_linear(g, x, w, e.l1), f, e.l1), e.l1);
    IrId loss = ir_reshape(g, ir_reduce_all(g, IR_MEAN, s, e.l2), ir_shape0(), e.l2);
    ir_set_loss(g, loss);
    CHECK(ad_run_passes(g, "nope") == -1);
    CHECK(strstr(env_text(&e), "unknown IR pass `nope`") != NULL);
    CHECK(ad_run_passes(g, "dcee") == -1);
    int np = 0;
    const char *const *pn = ad_pass_names(&np);
    CHECK(np == 4 && strcmp(pn[2], "cse") == 0);
    CHECK(strstr(env_text(&e), "did you mean `dce`?") != NULL);
    int before = g->n;
    CHECK(ad_run_passes(g, NULL) == 0);
    CHECK(g->n < before + 40);
    IrId gw = ad_grad_of(g, ir_find(g, "model.layers.0.mlp.up_proj.weight"));
    CHECK(gw != IR_NONE);
    CHECK(ad_backward(g, NULL, 0) == -1);   // twice is refused
    CHECK(strstr(env_text(&e), "already differentiated") != NULL);
    CHECK(ad_grad_of(g, ir_find(g, "frozen")) == IR_NONE);
    for (int i = 0; i < g->n; i++) CHECK_MSG(g->nodes[i].op != IR_EXP || g->nodes[i].backward, "dce kept %%%d", i);
    char *out = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&out, &len);
    ir_print_after(m, g, &e.d, "dce");
    fclose(m);
    CHECK(strstr(out, "# IR after dce") != NULL);
    CHECK(strstr(out, "param \"model.layers.0.mlp.up_proj.weight\" : f32[8,8] trainable  # spec.trl:1:15") != NULL);
    CHECK(strstr(out, "= silu(%") != NULL && strstr(out, ") : f32[B,T,8]  # spec.trl:1:15\n") != NULL);
    CHECK(strstr(out, "backward (") != NULL);
    CHECK(strstr(out, "grad:model.layers.0.mlp.up_proj.weight = %") != NULL);
    if (getenv("IR_SHOW")) fputs(out, stdout);
    free(out);
    (void)x;
    (void)w;
    (void)f;
    env_free(&e);
}

static void cse(void) {
    Env e;
    env_init(&e);
    IrGraph *g = &e.g;
    IrId x = ir_input(g, "x", IR_F32, ir_shape2(DB, D(4)), e.l1);
    IrId a = ir_unary(g, IR_SILU, x, e.l1), b = ir_unary(g, IR_SILU, x, e.l2);   // same computation
    IrId c = ir_add(g, a, ir_scalar(g, 1, e.l1), e.l1), d = ir_add(g, b, ir_scalar(g, 1, e.l1), e.l1);
    IrId named = ir_unary(g, IR_SILU, x, e.l1);
    ir_set_name(g, named, "kept");
    ir_add_output(g, ir_mul(g, c, d, e.l1), "y");
    ir_add_output(g, named, "named");
    int before = g->n;
    CHECK(ir_cse(g) == 3);   // b, the second scalar 1, d
    CHECK(ir_dce(g) == 3 && g->n == before - 3);
    CHECK(ir_renumbered(g, b) == IR_NONE && ir_renumbered(g, a) == a && ir_renumbered(g, named) == named - 3);
    CHECK(ir_renumbered(g, x) == x && ir_renumbered(g, before) == IR_NONE);
    int silus = 0;
    for (int i = 0; i < g->n; i++) silus += g->nodes[i].op == IR_SILU;
    CHECK(silus == 2);   // the named one is not merged
    // a second dce composes with the first: the ids of before the cse keep answering
    CHECK(g->nouts == 2 && !strcmp(g->outs[1].name, "named"));
    g->nouts = 1;
    CHECK(ir_dce(g) == 1);
    CHECK(ir_renumbered(g, named) == IR_NONE && ir_renumbered(g, b) == IR_NONE && ir_renumbered(g, a) == a &&
          ir_renumbered(g, x) == x && g->outs[0].id == ir_renumbered(g, before - 1));
    const IrNode *y = ir_node(g, g->outs[0].id);
    CHECK(y && y->op == IR_MUL && y->in[0] == y->in[1]);
    CHECK(ir_verify(g));
    env_free(&e);
}

static void runtime_errors(void) {
    Env e;
    env_init(&e);
    IrGraph *g = &e.g;
    IrId ids = ir_input(g, "ids", IR_I32, ir_shape2(DB, DT), e.l1);
    IrId tab = ir_param(g, "emb", IR_F32, ir_shape2(D(5), D(3)), true, e.l1);
    IrId lab = ir_input(g, "labels", IR_I32, ir_shape2(DB, DT), e.l2);
    IrId x = ir_embed(g, ids, tab, e.l1);
    IrId ce = ir_cross_entropy(g, x, lab, -100, 0, e.l2);
    ir_add_output(g, ce, "ce");
    CpuProgram *p = cpu_program_new(g, IR_F32, &e.d);
    CHECK(p != NULL);
    float tv[15];
    for (int i = 0; i < 15; i++) tv[i] = (float)i / 10;
    int32_t idv[4] = {0, 4, 2, 1}, labv[4] = {0, -100, 2, 1};
    int64_t syms[IR_NSYMS] = {2, 2};
    CHECK(cpu_run(p, syms, 0) == -1);   // nothing bound
    CHECK(strstr(env_text(&e), "input `ids` is not bound") != NULL);
    cpu_bind(p, ids, idv, sizeof idv);
    cpu_bind(p, tab, tv, sizeof tv);
    cpu_bind(p, lab, labv, sizeof labv - 4);
    CHECK(cpu_run(p, syms, 0) == -1);   // wrong size
    CHECK(strstr(env_text(&e), "`labels` is bound to 12 bytes, but i32[B,T] with B=2, T=2 needs 16") != NULL);
    cpu_bind(p, lab, labv, sizeof labv);
    CHECK(cpu_run(p, syms, 0) == 0);
    const CpuTensor *t = cpu_output_named(p, "ce");
    CHECK(t && t->numel == 4 && ((float *)t->data)[1] == 0.0f);
    idv[2] = 5;
    CHECK(cpu_run(p, syms, 0) == -1);
    CHECK(strstr(env_text(&e), "spec.trl:1:15: error: runtime error in embed") != NULL);
    CHECK(strstr(env_text(&e), "token id 5 at position 2 is out of range [0, 5)") != NULL);
    idv[2] = 2;
    labv[3] = 3;
    CHECK(cpu_run(p, syms, 0) == -1);
    CHECK(strstr(env_text(&e), "label 3 at position 3 is out of range [0, 3)") != NULL);
    labv[3] = 1;
    int64_t bad[IR_NSYMS] = {0, 2};
    CHECK(cpu_run(p, bad, 0) == -1);
    int64_t huge[IR_NSYMS] = {(int64_t)1 << 30, (int64_t)1 << 30};
    CHECK(cpu_run(p, huge, 0) == -1);   // bindings no longer match; never reads past them
    CHECK(cpu_run(p, syms, 0) == 0);
    cpu_program_free(p);
    env_free(&e);
}

static void finite_check(void) {
    Env e;
    env_init(&e);
    IrGraph *g = &e.g;
    IrId x = ir_input(g, "x", IR_F32, ir_shape1(D(4)), e.l1);
    IrId y = ir_unary(g, IR_LOG, x, e.l2);
    ir_add_output(g, ir_unary(g, IR_EXP, y, e.l1), "y");
    CpuProgram *p = cpu_program_new(g, IR_F32, &e.d);
    float xv[4] = {1, 2, -1, 3};
    cpu_bind(p, x, xv, sizeof xv);
    CHECK(cpu_run(p, NULL, 0) == 0);   // NaN flows silently by default
    cpu_set_check_finite(p, true);
    CHECK(cpu_run(p, NULL, 0) == -1);
    CHECK(strstr(env_text(&e), "spec.trl:2:8: error: runtime error in log") != NULL);
    CHECK(strstr(env_text(&e), "NaN at element 2 of the result (forward)") != NULL);
    xv[2] = 5;
    CHECK(cpu_run(p, NULL, 0) == 0);
    cpu_program_free(p);
    env_free(&e);
}

// The same program in float32 and float64: a 2-layer llama-style model with GQA, rope, SiLU MLP,
// tied lm_head and cross entropy; loss and every gradient agree to float32 precision.
static IrId rms(IrGraph *g, IrId x, IrId w) {
    IrId ms = ir_reduce(g, IR_MEAN, ir_mul(g, x, x, (Loc){0, 0, 0}), -1, (Loc){0, 0, 0});
    IrId r = ir_unary(g, IR_RSQRT, ir_add(g, ms, ir_scalar(g, 1e-5, (Loc){0, 0, 0}), (Loc){0, 0, 0}), (Loc){0, 0, 0});
    return ir_mul(g, w, ir_mul(g, x, r, (Loc){0, 0, 0}), (Loc){0, 0, 0});
}

static IrId split_heads(IrGraph *g, IrId x, int64_t h, int64_t d) {
    IrId r = ir_reshape(g, x, ir_shape4(DB, DT, D(h), D(d)), (Loc){0, 0, 0});
    return ir_permute(g, r, (const int[]){0, 2, 1, 3}, (Loc){0, 0, 0});
}

static void f32_vs_f64(void) {
    const Loc l = {0, 0, 0};
    const int64_t V = 50, H = 32, NH = 4, NKV = 2, HD = 8, I = 48, B = 2, T = 12;
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    IrId tok = ir_input(&g, "tok", IR_I32, ir_shape2(DB, DT), l);
    IrId lab = ir_input(&g, "lab", IR_I32, ir_shape2(DB, DT), l);
    IrId pos = ir_input(&g, "pos", IR_I32, ir_shape1(DT), l);
    IrId par[32];
    int np = 0;
    char name[32];
#define PARAM(shape) (snprintf(name, sizeof name, "p%d", np), par[np++] = ir_param(&g, name, IR_F32, shape, true, l))
    IrId emb = PARAM(ir_shape2(D(V), D(H)));
    IrId x = ir_embed(&g, tok, emb, l);
    for (int layer = 0; layer < 2; layer++) {
        IrId n1 = PARAM(ir_shape1(D(H))), n2 = PARAM(ir_shape1(D(H)));
        IrId wq = PARAM(ir_shape2(D(NH * HD), D(H))), wk = PARAM(ir_shape2(D(NKV * HD), D(H)));
        IrId wv = PARAM(ir_shape2(D(NKV * HD), D(H))), wo = PARAM(ir_shape2(D(H), D(NH * HD)));
        IrId wg = PARAM(ir_shape2(D(I), D(H))), wu = PARAM(ir_shape2(D(I), D(H)));
        IrId wd = PARAM(ir_shape2(D(H), D(I)));
        IrId hn = rms(&g, x, n1);
        IrRope r = {.theta = 10000};
        IrId q = ir_rope(&g, split_heads(&g, ir_linear(&g, hn, wq, l), NH, HD), pos, r, l);
        IrId k = ir_rope(&g, split_heads(&g, ir_linear(&g, hn, wk, l), NKV, HD), pos, r, l);
        IrId v = split_heads(&g, ir_linear(&g, hn, wv, l), NKV, HD);
        IrId a = ir_permute(&g, ir_sdpa(&g, q, k, v, true, 0, l), (const int[]){0, 2, 1, 3}, l);
        IrId h = ir_add(&g, x, ir_linear(&g, ir_reshape(&g, a, ir_shape3(DB, DT, D(NH * HD)), l), wo, l), l);
        IrId h2 = rms(&g, h, n2);
        IrId m = ir_mul(&g, ir_unary(&g, IR_SILU, ir_linear(&g, h2, wg, l), l), ir_linear(&g, h2, wu, l), l);
        x = ir_add(&g, h, ir_linear(&g, m, wd, l), l);
    }
#undef PARAM
    IrId ce = ir_cross_entropy(&g, ir_linear(&g, x, emb, l), lab, -100, 0.1, l);
    ir_set_loss(&g, ir_reshape(&g, ir_reduce_all(&g, IR_SUM, ce, l), ir_shape0(), l));
    CHECK(g.errors == 0 && ad_run_passes(&g, NULL) == 0);
    // dce renumbered the nodes: look the leaves up again by name
    tok = ir_find(&g, "tok");
    lab = ir_find(&g, "lab");
    pos = ir_find(&g, "pos");
    for (int i = 0; i < np; i++) {
        snprintf(name, sizeof name, "p%d", i);
        par[i] = ir_find(&g, name);
    }
    int32_t tk[B * T], lb[B * T], ps[T];
    uint64_t seed = 12345;
    for (int i = 0; i < B * T; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        tk[i] = (int32_t)((seed >> 33) % V);
        lb[i] = i % 5 == 4 ? -100 : (int32_t)((seed >> 40) % V);
    }
    for (int i = 0; i < T; i++) ps[i] = i;
    CpuProgram *p[2];
    float *w32[32];
    double *w64[32];
    int64_t syms[IR_NSYMS] = {B, T};
    for (int prec = 0; prec < 2; prec++) {
        p[prec] = cpu_program_new(&g, prec ? IR_F64 : IR_F32, &d);
        cpu_bind(p[prec], tok, tk, sizeof tk);
        cpu_bind(p[prec], lab, lb, sizeof lb);
        cpu_bind(p[prec], pos, ps, sizeof ps);
    }
    for (int i = 0; i < np; i++) {
        int64_t n = ir_shape_numel(&g.nodes[par[i]].shape, NULL);
        bool norm = g.nodes[par[i]].shape.rank == 1;
        w32[i] = malloc((size_t)n * sizeof(float));
        w64[i] = malloc((size_t)n * sizeof(double));
        for (int64_t k = 0; k < n; k++) {
            seed = seed * 6364136223846793005ull + 1442695040888963407ull;
            double u = (double)(seed >> 11) / 9007199254740992.0;
            w32[i][k] = (float)(norm ? 0.8 + 0.4 * u : (u - 0.5) * 0.4);
            w64[i][k] = w32[i][k];
        }
        cpu_bind(p[0], par[i], w32[i], (size_t)n * sizeof(float));
        cpu_bind(p[1], par[i], w64[i], (size_t)n * sizeof(double));
    }
    CHECK(cpu_run(p[0], syms, 0) == 0 && cpu_run(p[1], syms, 0) == 0);
    CHECK(cpu_plan_peak_bytes(p[0], syms) == cpu_peak_bytes(p[0]) && cpu_peak_bytes(p[0]) > 0);
    CHECK(cpu_plan_peak_bytes(p[1], syms) == cpu_peak_bytes(p[1]));
    CHECK(cpu_peak_bytes(p[1]) == 2 * cpu_peak_bytes(p[0]));   // no integer intermediates here
    printf("  peak intermediates: %lld bytes (f32)\n", (long long)cpu_peak_bytes(p[0]));
    double worst = 0;
    for (int o = 0; o < g.nouts; o++) {
        const CpuTensor *a = cpu_output(p[0], o), *b = cpu_output(p[1], o);
        if (!a || !b || a->numel != b->numel) {
            CHECK_MSG(0, "output %d missing", o);
            continue;
        }
        double maxd = 0, maxb = 0;
        for (int64_t k = 0; k < a->numel; k++) {
            double x64 = ((const double *)b->data)[k], x32 = ((const float *)a->data)[k];
            if (!(fabs(x64 - x32) <= maxd)) maxd = fabs(x64 - x32);
            if (fabs(x64) > maxb) maxb = fabs(x64);
        }
        double rel = maxd / (maxb > 1e-30 ? maxb : 1e-30);
        if (!(rel <= worst)) worst = rel;
    }
    printf("  f32 vs f64, loss and %d gradients: max rel diff %.3e\n", g.nouts - 1, worst);
    CHECK_MSG(worst < 2e-5, "f32 vs f64: %.3e", worst);
    for (int i = 0; i < np; i++) {
        free(w32[i]);
        free(w64[i]);
    }
    cpu_program_free(p[0]);
    cpu_program_free(p[1]);
    ir_graph_free(&g);
    diag_free(&d);
}

// cast rounds to the target format's precision (round to nearest even), overflow gives inf
static void cast_rounding(void) {
    Env e;
    env_init(&e);
    IrGraph *g = &e.g;
    IrId x = ir_input(g, "x", IR_F32, ir_shape1(D(7)), e.l1);
    ir_add_output(g, ir_cast(g, x, IR_F16, e.l1), "f16");
    ir_add_output(g, ir_cast(g, x, IR_BF16, e.l1), "bf16");
    ir_add_output(g, ir_cast(g, x, IR_I32, e.l1), "i32");
    CpuProgram *p = cpu_program_new(g, IR_F64, &e.d);
    double xv[7] = {1.0009765625, 1 + 1.0 / 4096, 65519, 65520, 1e-8, 3e-8, -2.75};
    cpu_bind(p, x, xv, sizeof xv);
    CHECK(cpu_run(p, NULL, 0) == 0);
    const double *h = cpu_output_named(p, "f16")->data, *b = cpu_output_named(p, "bf16")->data;
    const int32_t *iv = cpu_output_named(p, "i32")->data;
    CHECK(h[0] == 1.0009765625 && h[1] == 1.0 && h[2] == 65504 && isinf(h[3]) && h[4] == 0);
    CHECK(h[5] == ldexp(1, -24) && h[6] == -2.75);
    CHECK(b[0] == 1.0 && b[2] == 65536 && b[6] == -2.75);
    CHECK(iv[6] == -2 && iv[2] == 65519);
    xv[0] = 1e10;   // out of i32 range: a runtime error, not undefined behaviour
    CHECK(cpu_run(p, NULL, 0) == -1);
    CHECK(strstr(env_text(&e), "cannot convert 1e+10 (element 0) to i32") != NULL);
    cpu_program_free(p);
    env_free(&e);
}

// Big enough for the threaded loops: every configuration — 1 or 2 OpenMP threads, the float
// kernels of each instruction set this CPU has (TRLC_CPU_ISA), attention's block or row path —
// gives bit-identical results to the baseline kernels on one thread.
enum { AGREE_OUTS = 11 };

static void agree_run(IrGraph *g, Diag *d, const char *isa, int threads, bool rows, const float *xv,
                      const float *wv, const int32_t *lv, size_t n, void **first, const char *what) {
    setenv("TRLC_CPU_ISA", isa, 1);
    if (rows) setenv("TRLC_CPU_SDPA_BLOCK_MAX", "0", 1);
    else unsetenv("TRLC_CPU_SDPA_BLOCK_MAX");
    omp_set_num_threads(threads);
    CpuProgram *p = cpu_program_new(g, IR_F32, d);
    CHECK(p != NULL);
    if (!p) return;
    cpu_bind_name(p, "x", xv, n * sizeof *xv);
    cpu_bind_name(p, "w", wv, 1024 * sizeof *wv);
    cpu_bind_name(p, "lab", lv, 4096 * sizeof *lv);
    cpu_bind_name(p, "q", xv, 2 * 4 * 256 * 64 * sizeof *xv);
    cpu_bind_name(p, "kv", xv + 7, 2 * 2 * 256 * 64 * sizeof *xv);
    cpu_bind_name(p, "go", xv + 11, 2 * 4 * 256 * 64 * sizeof *xv);
    CHECK(cpu_run(p, (int64_t[IR_NSYMS]){4, 1024}, 3) == 0);
    int same = 0, compared = 0;
    for (int o = 0; o < g->nouts && o < AGREE_OUTS; o++) {
        const CpuTensor *t = cpu_output(p, o);
        CHECK(t != NULL);
        if (!t) continue;
        size_t bytes = (size_t)t->numel * sizeof(float);
        if (!first[o]) {
            first[o] = malloc(bytes);
            memcpy(first[o], t->data, bytes);
            continue;
        }
        compared++;
        same += memcmp(first[o], t->data, bytes) == 0;
        CHECK_MSG(memcmp(first[o], t->data, bytes) == 0, "output %s differs: %s", g->outs[o].name, what);
    }
    if (compared) printf("  %-44s %d/%d outputs bit-identical\n", what, same, compared);
    cpu_program_free(p);
}

static void threads_agree(void) {
    const Loc l = {0, 0, 0};
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    IrId x = ir_input(&g, "x", IR_F32, ir_shape3(DB, DT, D(1024)), l);      // (4, 1024, 1024)
    IrId w = ir_input(&g, "w", IR_F32, ir_shape1(D(1024)), l);
    IrId lab = ir_input(&g, "lab", IR_I32, ir_shape2(DB, DT), l);
    IrId y = ir_mul(&g, ir_unary(&g, IR_SILU, x, l), w, l);
    ir_add_output(&g, ir_reduce(&g, IR_SUM, y, -1, l), "rowsum");
    ir_add_output(&g, ir_log_softmax(&g, y, l), "lsm");
    ir_add_output(&g, ir_cross_entropy(&g, y, lab, -100, 0.1, l), "ce");
    ir_add_output(&g, ir_dropout(&g, y, 0.1, 5, l), "drop");
    IrId q = ir_input(&g, "q", IR_F32, ir_shape4(D(2), D(4), D(256), D(64)), l);
    IrId kv = ir_input(&g, "kv", IR_F32, ir_shape4(D(2), D(2), D(256), D(64)), l);   // grouped heads
    IrId go = ir_input(&g, "go", IR_F32, ir_shape4(D(2), D(4), D(256), D(64)), l);
    ir_add_output(&g, ir_sdpa(&g, q, q, q, true, 0, l), "attn");
    ir_add_output(&g, ir_sdpa(&g, q, kv, kv, true, 0, l), "attn_gqa");
    ir_add_output(&g, ir_sdpa_bwd(&g, IR_SDPA_BWD_Q, q, kv, kv, go, true, 0, l), "dq");
    ir_add_output(&g, ir_sdpa_bwd(&g, IR_SDPA_BWD_K, q, kv, kv, go, true, 0, l), "dk");
    ir_add_output(&g, ir_sdpa_bwd(&g, IR_SDPA_BWD_V, q, kv, kv, go, true, 0, l), "dv");
    ir_add_output(&g, ir_add(&g, ir_unary(&g, IR_EXP, ir_mul(&g, x, w, l), l), ir_reduce(&g, IR_MEAN, x, -1, l), l),
                  "exp_rowbcast");
    ir_add_output(&g, ir_sub(&g, ir_scalar(&g, 1.0, l), ir_unary(&g, IR_SIGMOID, x, l), l), "one_minus");
    CHECK(g.errors == 0);
    size_t n = 4u * 1024 * 1024;
    float *xv = malloc(n * sizeof *xv), *wv = malloc(1024 * sizeof *wv);
    int32_t *lv = malloc(4 * 1024 * sizeof *lv);
    for (size_t i = 0; i < n; i++) xv[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    for (int i = 0; i < 1024; i++) wv[i] = (float)i / 1024;
    for (int i = 0; i < 4096; i++) lv[i] = i % 7 ? (i * 31) % 1024 : -100;
    int saved = omp_get_max_threads();
    setenv("TRLC_CPU_ISA", "avx512", 1);
    printf("  float kernels on this CPU: %s\n", cpu_isa_name());
    const char *isas[] = {"base", "avx2", "avx512"};
    for (int rows = 0; rows < 2; rows++) {   // the attention outputs differ between the paths
        void *first[AGREE_OUTS] = {NULL};
        for (int k = 0; k < 3; k++)
            for (int threads = 1; threads <= 2; threads++) {
                char what[96];
                snprintf(what, sizeof what, "isa %s, %d thread%s, attention %s", isas[k], threads,
                         threads > 1 ? "s" : "", rows ? "rows" : "blocks");
                agree_run(&g, &d, isas[k], threads, rows, xv, wv, lv, n, first, what);
            }
        for (int o = 0; o < AGREE_OUTS; o++) free(first[o]);
    }
    unsetenv("TRLC_CPU_SDPA_BLOCK_MAX");
    unsetenv("TRLC_CPU_ISA");
    omp_set_num_threads(saved);
    free(xv);
    free(wv);
    free(lv);
    ir_graph_free(&g);
    diag_free(&d);
}

// The kernels' vectorizable exp against the C library's exp in double (correctly rounded to
// float): within 1 ulp across the float range, and expf's limits (0 below, +inf above, NaN).
static void vexp_accuracy(void) {
    double worst = 0;
    float at = 0;
    long n = 0, subnormal_off = 0;
    for (float x = -110.0f; x < 95.0f; x += (fabsf(x) > 1 ? fabsf(x) : 1.0f) * 3.1e-6f, n++) {
        float got = cpu_vexpf(x), want = (float)exp((double)x);
        if (want >= 1.1754944e-38f && !isinf(want)) {
            double rel = fabs((double)got - want) / want;
            if (rel > worst) worst = rel, at = x;
        } else if (isinf(want)) {
            CHECK_MSG(isinf(got) && got > 0, "exp(%.9g) = %g, want inf", x, got);
        } else if (fabsf(got - want) > 1.5e-45f) {   // subnormal results: within one step
            subnormal_off++;
        }
    }
    printf("  cpu_vexpf: %ld points in [-110, 95], worst %.3g relative (at %.7g)\n", n, worst, at);
    CHECK(worst <= 1.2e-7);   // one float ulp is 1.19e-7 relative at worst
    CHECK(subnormal_off == 0);
    CHECK(cpu_vexpf(-INFINITY) == 0 && cpu_vexpf(-104.0f) == 0);
    CHECK(isinf(cpu_vexpf(INFINITY)) && isinf(cpu_vexpf(88.8f)));
    CHECK(isnan(cpu_vexpf(NAN)));
    CHECK(cpu_vexpf(0.0f) == 1.0f && cpu_vexpf(1.0f) == (float)M_E);
}

// Attention's dQ, dK, dV with the same inputs run as one group (cpu.c): each equals, bit for bit,
// the op run alone, on the block path and on the row path, with grouped heads and a causal mask.
static void attention_group_agrees(void) {
    const Loc l = {0, 0, 0};
    Diag d;
    diag_init(&d, stderr);
    size_t nq = 2 * 4 * 48 * 16, nk = 2 * 2 * 48 * 16;
    float *buf = malloc((nq * 2 + nk * 2) * sizeof *buf);
    for (size_t i = 0; i < nq * 2 + nk * 2; i++) buf[i] = (float)((i * 2654435761u) % 1000) / 500.0f - 1.0f;
    const IrOp ops[3] = {IR_SDPA_BWD_Q, IR_SDPA_BWD_K, IR_SDPA_BWD_V};
    int same = 0;
    for (int rows = 0; rows < 2; rows++) {
        if (rows) setenv("TRLC_CPU_SDPA_BLOCK_MAX", "0", 1);
        float *got[4][3] = {{NULL}};   // [0]: the group; [1 + k]: op k alone
        for (int run = 0; run < 4; run++) {
            IrGraph g;
            ir_graph_init(&g, &d, IR_F32);
            IrId q = ir_input(&g, "q", IR_F32, ir_shape4(D(2), D(4), D(48), D(16)), l);
            IrId k = ir_input(&g, "k", IR_F32, ir_shape4(D(2), D(2), D(48), D(16)), l);
            IrId v = ir_input(&g, "v", IR_F32, ir_shape4(D(2), D(2), D(48), D(16)), l);
            IrId go = ir_input(&g, "go", IR_F32, ir_shape4(D(2), D(4), D(48), D(16)), l);
            for (int o = 0; o < 3; o++)
                if (run == 0 || run == o + 1)
                    ir_add_output(&g, ir_sdpa_bwd(&g, ops[o], q, k, v, go, true, 0.3, l), "grad");
            CpuProgram *p = cpu_program_new(&g, IR_F32, &d);
            cpu_bind_name(p, "q", buf, nq * sizeof *buf);
            cpu_bind_name(p, "go", buf + nq, nq * sizeof *buf);
            cpu_bind_name(p, "k", buf + 2 * nq, nk * sizeof *buf);
            cpu_bind_name(p, "v", buf + 2 * nq + nk, nk * sizeof *buf);
            CHECK(cpu_run(p, NULL, 0) == 0);
            for (int o = 0, out = 0; o < 3; o++) {
                if (!(run == 0 || run == o + 1)) continue;
                const CpuTensor *t = cpu_output(p, out++);
                got[run][o] = malloc((size_t)t->numel * sizeof(float));
                memcpy(got[run][o], t->data, (size_t)t->numel * sizeof(float));
            }
            cpu_program_free(p);
            ir_graph_free(&g);
        }
        for (int o = 0; o < 3; o++) {
            size_t n = o == 0 ? nq : nk;
            bool eq = memcmp(got[0][o], got[1 + o][o], n * sizeof(float)) == 0;
            same += eq;
            CHECK_MSG(eq, "%s in a group differs from alone (%s path)", ir_op_name(ops[o]), rows ? "row" : "block");
            free(got[0][o]);
            free(got[1 + o][o]);
        }
    }
    unsetenv("TRLC_CPU_SDPA_BLOCK_MAX");
    printf("  attention backward as one group vs alone: %d/6 bit-identical (block and row paths)\n", same);
    free(buf);
    diag_free(&d);
}

// The block path of attention (query chunks of 64 rows over the keys they can see) against the
// row path (one query row at a time, written independently): forward and the three gradients,
// several chunks and a partial one, causal or not, a key mask and packed segments, grouped heads,
// and a forward with fewer queries than keys (a KV cache).
static void attention_paths_agree(void) {
    const Loc l = {0, 0, 0};
    Diag d;
    diag_init(&d, stderr);
    enum { B2 = 2, HQ = 4, HK = 2, TK = 200, DH = 16 };
    size_t nmax = (size_t)B2 * HQ * TK * DH;
    float *buf = malloc(4 * nmax * sizeof *buf);
    for (size_t i = 0; i < 4 * nmax; i++) buf[i] = (float)((i * 2654435761u) % 1000) / 250.0f - 2.0f;
    int32_t km[B2 * TK], seg[B2 * TK];
    for (int i = 0; i < B2 * TK; i++) {
        km[i] = i % 17 != 3;         // some padding keys
        seg[i] = (i % TK) / 70;      // three packed sequences per row
    }
    double worst = 0;
    int cases = 0;
    for (int c = 0; c < 4; c++) {
        bool causal = c != 1, masked = c == 2;
        int64_t tq = c == 3 ? 37 : TK;   // c == 3: 37 queries against 200 cached keys (forward only)
        float *res[2][4] = {{NULL}};
        int64_t cnt[4] = {0};
        int nouts = 0;
        for (int rows = 0; rows < 2; rows++) {
            if (rows) setenv("TRLC_CPU_SDPA_BLOCK_MAX", "0", 1);
            else unsetenv("TRLC_CPU_SDPA_BLOCK_MAX");
            IrGraph g;
            ir_graph_init(&g, &d, IR_F32);
            IrId q = ir_input(&g, "q", IR_F32, ir_shape4(D(B2), D(HQ), D(tq), D(DH)), l);
            IrId k = ir_input(&g, "k", IR_F32, ir_shape4(D(B2), D(HK), D(TK), D(DH)), l);
            IrId v = ir_input(&g, "v", IR_F32, ir_shape4(D(B2), D(HK), D(TK), D(DH)), l);
            IrId go = ir_input(&g, "go", IR_F32, ir_shape4(D(B2), D(HQ), D(tq), D(DH)), l);
            IrId m = masked ? ir_input(&g, "km", IR_I32, ir_shape2(D(B2), D(TK)), l) : IR_NONE;
            IrId sg = masked ? ir_input(&g, "seg", IR_I32, ir_shape2(D(B2), D(TK)), l) : IR_NONE;
            ir_add_output(&g, ir_sdpa_seg(&g, q, k, v, m, sg, causal, 0, l), "out");
            if (c != 3) {
                ir_add_output(&g, ir_sdpa_bwd_seg(&g, IR_SDPA_BWD_Q, q, k, v, go, m, sg, causal, 0, l), "dq");
                ir_add_output(&g, ir_sdpa_bwd_seg(&g, IR_SDPA_BWD_K, q, k, v, go, m, sg, causal, 0, l), "dk");
                ir_add_output(&g, ir_sdpa_bwd_seg(&g, IR_SDPA_BWD_V, q, k, v, go, m, sg, causal, 0, l), "dv");
            }
            CHECK(g.errors == 0);
            CpuProgram *p = cpu_program_new(&g, IR_F32, &d);
            size_t nq = (size_t)B2 * HQ * tq * DH, nk = (size_t)B2 * HK * TK * DH;
            cpu_bind_name(p, "q", buf, nq * sizeof *buf);
            cpu_bind_name(p, "k", buf + nmax, nk * sizeof *buf);
            cpu_bind_name(p, "v", buf + 2 * nmax, nk * sizeof *buf);
            cpu_bind_name(p, "go", buf + 3 * nmax, nq * sizeof *buf);
            if (masked) {
                cpu_bind_name(p, "km", km, sizeof km);
                cpu_bind_name(p, "seg", seg, sizeof seg);
            }
            CHECK(cpu_run(p, NULL, 0) == 0);
            nouts = g.nouts;
            for (int o = 0; o < g.nouts; o++) {
                const CpuTensor *t = cpu_output(p, o);
                cnt[o] = t->numel;
                res[rows][o] = malloc((size_t)t->numel * sizeof(float));
                memcpy(res[rows][o], t->data, (size_t)t->numel * sizeof(float));
            }
            cpu_program_free(p);
            ir_graph_free(&g);
        }
        for (int o = 0; o < nouts; o++) {
            double md = 0, mb = 0;
            for (int64_t i = 0; i < cnt[o]; i++) {
                double dd = fabs((double)res[0][o][i] - res[1][o][i]);
                md = dd > md || dd != dd ? dd : md;
                mb = fabs(res[1][o][i]) > mb ? fabs(res[1][o][i]) : mb;
            }
            double rel = mb > 0 ? md / mb : md;
            worst = rel > worst ? rel : worst;
            cases++;
            CHECK_MSG(rel <= 1e-5 && mb > 0, "attention case %d output %d: block vs rows rel %.3g", c, o, rel);
            free(res[0][o]);
            free(res[1][o]);
        }
    }
    unsetenv("TRLC_CPU_SDPA_BLOCK_MAX");
    printf("  attention block path vs row path: %d outputs, worst %.3g relative\n", cases, worst);
    free(buf);
    diag_free(&d);
}

static void dropout_rng(void) {
    Env e;
    env_init(&e);
    IrGraph *g = &e.g;
    IrId x = ir_input(g, "x", IR_F32, ir_shape1(D(10000)), e.l1);
    IrId y = ir_dropout(g, x, 0.25, 99, e.l1);
    ir_add_output(g, y, "y");
    CpuProgram *p = cpu_program_new(g, IR_F32, &e.d);
    float *xv = malloc(10000 * sizeof *xv), *y1 = malloc(10000 * sizeof *y1);
    for (int i = 0; i < 10000; i++) xv[i] = 1.0f;
    cpu_bind(p, x, xv, 10000 * sizeof *xv);
    CHECK(cpu_run(p, NULL, 5) == 0);
    memcpy(y1, cpu_output(p, 0)->data, 10000 * sizeof *y1);
    int zeros = 0, same = 0;
    for (int i = 0; i < 10000; i++) {
        zeros += y1[i] == 0;
        CHECK_MSG(y1[i] == 0 || fabsf(y1[i] - 1 / 0.75f) < 1e-6f, "kept value %g", y1[i]);
    }
    CHECK_MSG(zeros > 2300 && zeros < 2700, "dropped %d of 10000 at p = 0.25", zeros);
    CHECK(cpu_run(p, NULL, 5) == 0);
    CHECK(memcmp(y1, cpu_output(p, 0)->data, 10000 * sizeof *y1) == 0);   // same step: same mask
    CHECK(cpu_run(p, NULL, 6) == 0);
    for (int i = 0; i < 10000; i++) same += y1[i] == ((float *)cpu_output(p, 0)->data)[i];
    CHECK_MSG(same < 8000, "step 6 mask equals step 5 mask in %d places", same);
    printf("  dropout p=0.25: %d/10000 dropped\n", zeros);
    free(xv);
    free(y1);
    cpu_program_free(p);
    env_free(&e);
}

int main(void) {
    shape_errors();
    shape_inference();
    printing_and_passes();
    cse();
    runtime_errors();
    finite_check();
    f32_vs_f64();
    cast_rounding();
    threads_agree();
    vexp_accuracy();
    attention_group_agrees();
    attention_paths_agree();
    dropout_rng();
    return test_done("ir.build");
}
