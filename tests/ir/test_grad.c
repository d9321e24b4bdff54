// test_grad.c — gradient checks of every IR primitive's backward rule in float64 against central
// finite differences (random inputs, several shapes incl. broadcasting and the dynamic B/T dims,
// GQA, ignore_index, label smoothing, rope with and without llama-3 scaling).
#include "gradcheck.h"

#define L0 ((Loc){0, 0, 0})
#define D(n) ir_dim(n)
#define DB ir_dim_b()
#define DT ir_dim_t()
#define TOL 1e-6

static void unary_cases(void) {
    static const struct { IrOp op; double lo, hi; } u[] = {
        {IR_NEG, -2, 2}, {IR_EXP, -2, 2}, {IR_LOG, 0.2, 3}, {IR_SQRT, 0.2, 3},
        {IR_RSQRT, 0.2, 3}, {IR_TANH, -2, 2}, {IR_SIGMOID, -4, 4}, {IR_SILU, -4, 4},
        {IR_GELU, -4, 4}, {IR_RELU, -2, 2}, {IR_ABS, -2, 2}, {IR_SQUARE, -2, 2},
        {IR_LOG_SIGMOID, -30, 30}, {IR_SOFTPLUS, -30, 30},
    };
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++) {
        GC c;
        char name[64];
        snprintf(name, sizeof name, "%s", ir_op_name(u[i].op));
        gc_begin(&c, name, 2, 3);
        IrId x = gc_var(&c, ir_shape3(DB, DT, D(5)), u[i].lo, u[i].hi);
        gc_check(&c, ir_unary(&c.g, u[i].op, x, L0), TOL);
    }
    GC c;
    gc_begin(&c, "pow 3", 2, 3);
    gc_check(&c, ir_pow(&c.g, gc_var(&c, ir_shape2(D(3), D(4)), -2, 2), 3.0, L0), TOL);
    gc_begin(&c, "pow -0.5", 2, 3);
    gc_check(&c, ir_pow(&c.g, gc_var(&c, ir_shape2(D(3), D(4)), 0.3, 2), -0.5, L0), TOL);
    gc_begin(&c, "dropout p=0.3", 2, 3);
    gc_check(&c, ir_dropout(&c.g, gc_var(&c, ir_shape3(DB, DT, D(8)), -1, 1), 0.3, 42, L0), TOL);
}

static void binary_cases(void) {
    static const IrOp ops[] = {IR_ADD, IR_SUB, IR_MUL, IR_DIV, IR_MAXIMUM, IR_MINIMUM};
    static const struct { const char *name; int ra; int64_t a[3]; int rb; int64_t b[3]; } sh[] = {
        {"same", 2, {3, 4}, 2, {3, 4}},
        {"row bcast", 3, {2, 3, 4}, 1, {4}},
        {"both bcast", 3, {3, 1, 5}, 3, {1, 4, 1}},
        {"scalar", 2, {3, 4}, 0, {0}},
    };
    for (size_t o = 0; o < sizeof ops / sizeof ops[0]; o++)
        for (size_t s = 0; s < sizeof sh / sizeof sh[0]; s++) {
            GC c;
            char name[64];
            snprintf(name, sizeof name, "%s %s", ir_op_name(ops[o]), sh[s].name);
            gc_begin(&c, name, 2, 3);
            IrDim da[3], db[3];
            for (int i = 0; i < sh[s].ra; i++) da[i] = D(sh[s].a[i]);
            for (int i = 0; i < sh[s].rb; i++) db[i] = D(sh[s].b[i]);
            double lo = ops[o] == IR_DIV ? 0.5 : -2;
            IrId a = gc_var(&c, ir_shape_of(sh[s].ra, da), lo, 2);
            IrId b = gc_var(&c, ir_shape_of(sh[s].rb, db), lo, 2);
            gc_check(&c, ir_binary(&c.g, ops[o], a, b, L0), TOL);
        }
    // symbolic broadcast: (B, T, 4) * (4) + (B, 1, 1)
    GC c;
    gc_begin(&c, "mul/add symbolic bcast", 3, 2);
    IrId x = gc_var(&c, ir_shape3(DB, DT, D(4)), -1, 1);
    IrId w = gc_var(&c, ir_shape1(D(4)), -1, 1);
    IrId z = gc_var(&c, ir_shape3(DB, D(1), D(1)), -1, 1);
    gc_check(&c, ir_add(&c.g, ir_mul(&c.g, x, w, L0), z, L0), TOL);

    // where with a mask from a comparison (no gradient through the mask)
    gc_begin(&c, "where(a > 0.1, a*b, b)", 2, 3);
    IrId a = gc_var(&c, ir_shape2(D(3), D(4)), -1, 1);
    IrId b = gc_var(&c, ir_shape1(D(4)), -1, 1);
    IrId m = ir_binary(&c.g, IR_GT, a, ir_scalar(&c.g, 0.1, L0), L0);
    gc_check(&c, ir_where(&c.g, m, ir_mul(&c.g, a, b, L0), b, L0), TOL);
}

static void reduce_cases(void) {
    static const IrOp ops[] = {IR_SUM, IR_MEAN, IR_MAX};
    for (size_t o = 0; o < 3; o++) {
        for (int ax = -1; ax <= 3; ax++) {
            GC c;
            char name[64];
            snprintf(name, sizeof name, "%s axis %s", ir_op_name(ops[o]),
                     ax == 3 ? "all" : ax == -1 ? "-1" : (const char *[]){"0", "1", "2"}[ax]);
            gc_begin(&c, name, 2, 3);
            IrId x = gc_var(&c, ir_shape3(DB, DT, D(4)), -2, 2);
            IrId y = ax == 3 ? ir_reduce_all(&c.g, ops[o], x, L0) : ir_reduce(&c.g, ops[o], x, ax, L0);
            gc_check(&c, y, TOL);
        }
    }
    GC c;
    gc_begin(&c, "sum_to (3,4,5)->(4,1)", 2, 3);
    IrId x = gc_var(&c, ir_shape3(D(3), D(4), D(5)), -1, 1);
    gc_check(&c, ir_sum_to(&c.g, x, ir_shape2(D(4), D(1)), L0), TOL);
    gc_begin(&c, "broadcast_to (4,1)->(B,4,5)", 2, 3);
    x = gc_var(&c, ir_shape2(D(4), D(1)), -1, 1);
    gc_check(&c, ir_broadcast_to(&c.g, x, ir_shape3(DB, D(4), D(5)), L0), TOL);
    gc_begin(&c, "rmsnorm composite", 2, 3);
    x = gc_var(&c, ir_shape3(DB, DT, D(6)), -2, 2);
    IrId w = gc_var(&c, ir_shape1(D(6)), 0.5, 1.5);
    IrId ms = ir_reduce(&c.g, IR_MEAN, ir_mul(&c.g, x, x, L0), -1, L0);
    IrId y = ir_mul(&c.g, ir_mul(&c.g, w, x, L0),
                    ir_unary(&c.g, IR_RSQRT, ir_add(&c.g, ms, ir_scalar(&c.g, 1e-6, L0), L0), L0), L0);
    gc_check(&c, y, TOL);
}

static void matmul_cases(void) {
    static const struct { const char *name; int ra; int64_t a[3]; int rb; int64_t b[3]; bool ta, tb; } m[] = {
        {"(2,3,4)@(4,5)", 3, {2, 3, 4}, 2, {4, 5}, false, false},
        {"(2,3,4)@(2,4,5)", 3, {2, 3, 4}, 3, {2, 4, 5}, false, false},
        {"(1,3,4)@(2,4,5) bcast", 3, {1, 3, 4}, 3, {2, 4, 5}, false, false},
        {"(2,4,3)T@(4,5)", 3, {2, 4, 3}, 2, {4, 5}, true, false},
        {"(3,4)@(5,4)T", 2, {3, 4}, 2, {5, 4}, false, true},
        {"(2,4,3)T@(2,5,4)T", 3, {2, 4, 3}, 3, {2, 5, 4}, true, true},
    };
    for (size_t i = 0; i < sizeof m / sizeof m[0]; i++) {
        GC c;
        gc_begin(&c, m[i].name, 2, 3);
        IrDim da[3], db[3];
        for (int k = 0; k < m[i].ra; k++) da[k] = D(m[i].a[k]);
        for (int k = 0; k < m[i].rb; k++) db[k] = D(m[i].b[k]);
        IrId a = gc_var(&c, ir_shape_of(m[i].ra, da), -1, 1);
        IrId b = gc_var(&c, ir_shape_of(m[i].rb, db), -1, 1);
        gc_check(&c, ir_matmul(&c.g, a, b, m[i].ta, m[i].tb, L0), TOL);
    }
    GC c;
    gc_begin(&c, "linear+bias (B,T,4)x(3,4)", 2, 3);
    IrId x = gc_var(&c, ir_shape3(DB, DT, D(4)), -1, 1);
    IrId w = gc_var(&c, ir_shape2(D(3), D(4)), -1, 1);
    IrId b = gc_var(&c, ir_shape1(D(3)), -1, 1);
    gc_check(&c, ir_linear_bias(&c.g, x, w, b, L0), TOL);
}

static void softmax_cases(void) {
    GC c;
    gc_begin(&c, "softmax", 2, 3);
    gc_check(&c, ir_softmax(&c.g, gc_var(&c, ir_shape3(DB, DT, D(7)), -3, 3), L0), TOL);
    gc_begin(&c, "log_softmax", 2, 3);
    gc_check(&c, ir_log_softmax(&c.g, gc_var(&c, ir_shape3(DB, DT, D(7)), -3, 3), L0), TOL);
}

static void model_cases(void) {
    GC c;
    // embed: ids (B, T) into a (V=6, H=4) table
    gc_begin(&c, "embed", 2, 3);
    int32_t ids[6] = {0, 5, 2, 2, 3, 5};
    IrId id = gc_input(&c, IR_I32, ir_shape2(DB, DT), ids);
    IrId tab = gc_var(&c, ir_shape2(D(6), D(4)), -1, 1);
    gc_check(&c, ir_embed(&c.g, id, tab, L0), TOL);

    // rope: pos (T) and (B, T); with llama-3 scaling
    for (int variant = 0; variant < 3; variant++) {
        static const char *names[] = {"rope pos(T)", "rope pos(B,T)", "rope llama3 scaling"};
        gc_begin(&c, names[variant], 2, 5);
        IrId x = gc_var(&c, ir_shape4(DB, D(3), DT, D(8)), -1, 1);
        int32_t pos[10] = {0, 1, 2, 3, 4, 7, 8, 9, 10, 11};
        IrId p = variant == 1 ? gc_input(&c, IR_I32, ir_shape2(DB, DT), pos)
                              : gc_input(&c, IR_I32, ir_shape1(DT), pos);
        IrRope r = {.theta = 10000.0};
        if (variant == 2) {
            r.theta = 500000.0;
            r.factor = 8;
            r.low_freq_factor = 1;
            r.high_freq_factor = 4;
            r.original_max_pos = 16;
        }
        gc_check(&c, ir_rope(&c.g, x, p, r, L0), TOL);
    }

    // sdpa: MHA and GQA, causal and not
    static const struct { const char *name; int hq, hk; bool causal; } sd[] = {
        {"sdpa causal Hq=Hkv=2", 2, 2, true},
        {"sdpa causal GQA Hq=4 Hkv=2", 4, 2, true},
        {"sdpa full GQA Hq=3 Hkv=1", 3, 1, false},
    };
    for (size_t i = 0; i < 3; i++) {
        gc_begin(&c, sd[i].name, 2, 4);
        IrId q = gc_var(&c, ir_shape4(DB, D(sd[i].hq), DT, D(5)), -1, 1);
        IrId k = gc_var(&c, ir_shape4(DB, D(sd[i].hk), DT, D(5)), -1, 1);
        IrId v = gc_var(&c, ir_shape4(DB, D(sd[i].hk), DT, D(5)), -1, 1);
        gc_check(&c, ir_sdpa(&c.g, q, k, v, sd[i].causal, 0, L0), TOL);
    }

    // a query block against a longer key cache (decoding): causal aligned at the end
    static const struct { const char *name; int64_t tq; bool masked; } dc[] = {
        {"sdpa decode Tq=1 vs Tk=T GQA", 1, false},
        {"sdpa Tq=2 vs Tk=T GQA key mask", 2, true},
    };
    for (size_t i = 0; i < 2; i++) {
        gc_begin(&c, dc[i].name, 2, 5);
        IrId q = gc_var(&c, ir_shape4(DB, D(4), D(dc[i].tq), D(3)), -1, 1);
        IrId k = gc_var(&c, ir_shape4(DB, D(2), DT, D(3)), -1, 1);
        IrId v = gc_var(&c, ir_shape4(DB, D(2), DT, D(3)), -1, 1);
        int32_t km[10] = {0, 1, 1, 1, 1, 1, 1, 0, 1, 1};
        IrId y = dc[i].masked ? ir_sdpa_masked(&c.g, q, k, v, gc_input(&c, IR_I32, ir_shape2(DB, DT), km), true, 0, L0)
                              : ir_sdpa(&c.g, q, k, v, true, 0, L0);
        gc_check(&c, y, TOL);
    }

    // key-padding mask (left padding): batch 1's first key is padding, so its first query row under
    // the causal mask sees nothing (output 0); i32 and float masks
    for (int mi = 0; mi < 2; mi++) {
        gc_begin(&c, mi ? "sdpa causal GQA key mask (f64)" : "sdpa causal GQA key mask (i32)", 2, 4);
        IrId q = gc_var(&c, ir_shape4(DB, D(4), DT, D(3)), -1, 1);
        IrId k = gc_var(&c, ir_shape4(DB, D(2), DT, D(3)), -1, 1);
        IrId v = gc_var(&c, ir_shape4(DB, D(2), DT, D(3)), -1, 1);
        int32_t mi32[8] = {1, 1, 0, 1, 0, 1, 1, 1};
        double mf[8] = {1, 1, 0, 1, 0, 1, 1, 1};
        IrId m = mi ? gc_input(&c, IR_F64, ir_shape2(DB, DT), mf) : gc_input(&c, IR_I32, ir_shape2(DB, DT), mi32);
        gc_check(&c, ir_sdpa_masked(&c.g, q, k, v, m, true, 0, L0), TOL);
    }

    // packed rows: segment ids (B, T) block the attention between sequences of one row; with the
    // causal mask, with a key mask too, and non-causal (block-diagonal); -1 marks padding
    static const struct { const char *name; int hq, hk; bool causal, masked; } sg[] = {
        {"sdpa causal GQA segments", 4, 2, true, false},
        {"sdpa causal MHA segments + key mask", 2, 2, true, true},
        {"sdpa full GQA segments", 3, 1, false, false},
    };
    for (size_t i = 0; i < 3; i++) {
        gc_begin(&c, sg[i].name, 2, 5);
        IrId q = gc_var(&c, ir_shape4(DB, D(sg[i].hq), DT, D(3)), -1, 1);
        IrId k = gc_var(&c, ir_shape4(DB, D(sg[i].hk), DT, D(3)), -1, 1);
        IrId v = gc_var(&c, ir_shape4(DB, D(sg[i].hk), DT, D(3)), -1, 1);
        int32_t seg[10] = {0, 0, 1, 1, 1, 0, 1, 2, 2, -1};
        int32_t km[10] = {1, 1, 1, 0, 1, 1, 1, 1, 1, 1};
        IrId s = gc_input(&c, IR_I32, ir_shape2(DB, DT), seg);
        IrId m = sg[i].masked ? gc_input(&c, IR_I32, ir_shape2(DB, DT), km) : IR_NONE;
        gc_check(&c, ir_sdpa_seg(&c.g, q, k, v, m, s, sg[i].causal, 0, L0), TOL);
    }

    // cross entropy with ignored positions, with and without label smoothing
    for (int ls = 0; ls < 2; ls++) {
        gc_begin(&c, ls ? "cross_entropy smoothing 0.1" : "cross_entropy ignore_index", 2, 3);
        IrId x = gc_var(&c, ir_shape3(DB, DT, D(7)), -3, 3);
        int32_t lab[6] = {3, -100, 0, 6, -100, 2};
        IrId l = gc_input(&c, IR_I32, ir_shape2(DB, DT), lab);
        gc_check(&c, ir_cross_entropy(&c.g, x, l, -100, ls ? 0.1 : 0.0, L0), TOL);
    }

    // gather of per-token log-probs (DPO/GRPO)
    gc_begin(&c, "gather log_softmax axis -1", 2, 3);
    IrId x = gc_var(&c, ir_shape3(DB, DT, D(7)), -3, 3);
    int32_t idx[6] = {1, 6, 0, 3, 3, 2};
    IrId ix = gc_input(&c, IR_I32, ir_shape3(DB, DT, D(1)), idx);
    gc_check(&c, ir_gather(&c.g, ir_log_softmax(&c.g, x, L0), ix, -1, L0), TOL);
}

static void layout_cases(void) {
    GC c;
    gc_begin(&c, "reshape (B,T,6)->(B*T,2,-1)", 2, 3);
    IrId x = gc_var(&c, ir_shape3(DB, DT, D(6)), -1, 1);
    IrDim bt = {1, (1u << IR_SYM_B) | (1u << IR_SYM_T)};
    IrId y = ir_reshape(&c.g, x, ir_shape3(bt, D(2), D(-1)), L0);
    CHECK(y != IR_NONE && c.g.nodes[y].shape.d[2].coef == 3);
    gc_check(&c, y, TOL);

    gc_begin(&c, "permute (B,T,2,3)->(B,2,T,3)", 2, 3);
    x = gc_var(&c, ir_shape4(DB, DT, D(2), D(3)), -1, 1);
    gc_check(&c, ir_permute(&c.g, x, (const int[]){0, 2, 1, 3}, L0), TOL);

    gc_begin(&c, "transpose last two", 2, 3);
    x = gc_var(&c, ir_shape3(D(2), D(3), D(4)), -1, 1);
    gc_check(&c, ir_transpose(&c.g, x, -1, -2, L0), TOL);

    gc_begin(&c, "concat axis -1 (rotate_half)", 2, 3);
    x = gc_var(&c, ir_shape3(DB, DT, D(6)), -1, 1);
    IrId x1 = ir_slice(&c.g, x, -1, 0, 3, L0), x2 = ir_slice(&c.g, x, -1, 3, 6, L0);
    IrId parts[2] = {ir_unary(&c.g, IR_NEG, x2, L0), x1};
    gc_check(&c, ir_concat(&c.g, parts, 2, -1, L0), TOL);

    gc_begin(&c, "concat/slice along batch (2B)", 2, 3);
    IrId a = gc_var(&c, ir_shape2(DB, D(3)), -1, 1), b = gc_var(&c, ir_shape2(DB, D(3)), -1, 1);
    IrId ab[2] = {a, b};
    IrId cat = ir_concat(&c.g, ab, 2, 0, L0);
    CHECK(cat != IR_NONE && c.g.nodes[cat].shape.d[0].coef == 2);
    IrId second = ir_slice_dim(&c.g, ir_unary(&c.g, IR_SQUARE, cat, L0), 0, DB, DB, L0);
    gc_check(&c, ir_mul(&c.g, second, a, L0), TOL);

    gc_begin(&c, "slice middle", 2, 3);
    x = gc_var(&c, ir_shape2(D(5), D(4)), -1, 1);
    gc_check(&c, ir_slice(&c.g, x, 0, 1, -1, L0), TOL);
}

// stop_gradient: d/dx [x * stop(x)] = stop(x), not 2x.
static void stop_gradient_case(void) {
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F64);
    IrId x = ir_param(&g, "x", IR_F64, ir_shape1(D(3)), true, L0);
    IrId frozen = ir_param(&g, "frozen", IR_F64, ir_shape1(D(3)), false, L0);
    IrId y = ir_mul(&g, ir_mul(&g, x, ir_stop_gradient(&g, x, L0), L0), frozen, L0);
    ir_set_loss(&g, ir_reshape(&g, ir_reduce_all(&g, IR_SUM, y, L0), ir_shape0(), L0));
    CHECK(ad_backward(&g, NULL, 0) == 0);
    CHECK(ad_grad_of(&g, frozen) == IR_NONE);   // frozen params get no gradient
    CpuProgram *p = cpu_program_new(&g, IR_F64, &d);
    double xv[3] = {1, 2, 3}, fv[3] = {1, 1, 2};
    cpu_bind(p, x, xv, sizeof xv);
    cpu_bind(p, frozen, fv, sizeof fv);
    CHECK(cpu_run(p, NULL, 0) == 0);
    const CpuTensor *gx = cpu_output_named(p, "grad:x");
    CHECK(gx != NULL && gx == cpu_value(p, ad_grad_of(&g, x)));
    if (gx) {
        const double *gv = gx->data;
        CHECK_CLOSE(gv[0], 1.0, 1e-12, 0);
        CHECK_CLOSE(gv[1], 2.0, 1e-12, 0);
        CHECK_CLOSE(gv[2], 6.0, 1e-12, 0);
    }
    cpu_program_free(p);
    ir_graph_free(&g);
    diag_free(&d);
}

// cast: the gradient passes through (cast back to the source dtype); rounding makes finite
// differences meaningless here, so the value is checked directly: d/dx sum(cast(x) * w) = w.
static void cast_case(void) {
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F64);
    IrId x = ir_param(&g, "x", IR_F64, ir_shape1(D(3)), true, L0);
    IrId w = ir_input(&g, "w", IR_F64, ir_shape1(D(3)), L0);
    IrId y = ir_mul(&g, ir_cast(&g, ir_cast(&g, x, IR_BF16, L0), IR_F32, L0), w, L0);
    ir_set_loss(&g, ir_reshape(&g, ir_reduce_all(&g, IR_SUM, y, L0), ir_shape0(), L0));
    CHECK(ad_backward(&g, NULL, 0) == 0);
    CpuProgram *p = cpu_program_new(&g, IR_F64, &d);
    double xv[3] = {1.00390625, -2.5, 3.14159}, wv[3] = {0.5, -1.5, 2};
    cpu_bind(p, x, xv, sizeof xv);
    cpu_bind(p, w, wv, sizeof wv);
    CHECK(cpu_run(p, NULL, 0) == 0);
    const CpuTensor *gx = cpu_value(p, ad_grad_of(&g, x));
    const CpuTensor *l = cpu_output_named(p, "loss");
    CHECK(gx && l);
    if (gx && l) {
        for (int i = 0; i < 3; i++) CHECK_CLOSE(((double *)gx->data)[i], wv[i], 0, 0);
        // bf16 keeps 8 significant bits: 1.00390625 -> 1, 3.14159 -> 3.140625
        CHECK_CLOSE(((double *)l->data)[0], 0.5 * 1.0 + -1.5 * -2.5 + 2 * 3.140625, 1e-12, 0);
    }
    cpu_program_free(p);
    ir_graph_free(&g);
    diag_free(&d);
}

// A tiny llama block end to end: embed, rmsnorm, GQA attention with rope, SiLU MLP, lm_head,
// cross entropy with ignored positions; all weights trainable, B and T dynamic.
static IrId rmsnorm(IrGraph *g, IrId x, IrId w) {
    IrId ms = ir_reduce(g, IR_MEAN, ir_mul(g, x, x, L0), -1, L0);
    IrId r = ir_unary(g, IR_RSQRT, ir_add(g, ms, ir_scalar(g, 1e-5, L0), L0), L0);
    return ir_mul(g, w, ir_mul(g, x, r, L0), L0);
}

static IrId heads(IrGraph *g, IrId x, int64_t h, int64_t d) {   // (B,T,h*d) -> (B,h,T,d)
    IrId r = ir_reshape(g, x, ir_shape4(DB, DT, D(h), D(d)), L0);
    return ir_permute(g, r, (const int[]){0, 2, 1, 3}, L0);
}

static void block_case(void) {
    GC c;
    gc_begin(&c, "llama block (B=2,T=4) + CE", 2, 4);
    IrGraph *g = &c.g;
    const int64_t V = 11, H = 8, NH = 4, NKV = 2, HD = 2, I = 12;
    int32_t ids[8] = {1, 5, 7, 10, 0, 3, 3, 9}, lab[8] = {5, 7, 10, -100, 3, 3, 9, -100};
    int32_t pos[4] = {0, 1, 2, 3};
    IrId tok = gc_input(&c, IR_I32, ir_shape2(DB, DT), ids);
    IrId labels = gc_input(&c, IR_I32, ir_shape2(DB, DT), lab);
    IrId ps = gc_input(&c, IR_I32, ir_shape1(DT), pos);
    IrId emb = gc_var(&c, ir_shape2(D(V), D(H)), -1, 1);
    IrId n1 = gc_var(&c, ir_shape1(D(H)), 0.5, 1.5);
    IrId wq = gc_var(&c, ir_shape2(D(NH * HD), D(H)), -0.5, 0.5);
    IrId wk = gc_var(&c, ir_shape2(D(NKV * HD), D(H)), -0.5, 0.5);
    IrId wv = gc_var(&c, ir_shape2(D(NKV * HD), D(H)), -0.5, 0.5);
    IrId wo = gc_var(&c, ir_shape2(D(H), D(NH * HD)), -0.5, 0.5);
    IrId wg = gc_var(&c, ir_shape2(D(I), D(H)), -0.5, 0.5);
    IrId wu = gc_var(&c, ir_shape2(D(I), D(H)), -0.5, 0.5);
    // (8 vars max: down_proj and lm_head are frozen params, exercising frozen branches)
    IrId wd = ir_param(g, "down", IR_F64, ir_shape2(D(H), D(I)), false, L0);
    IrRope r = {.theta = 10000.0};
    IrId x = ir_embed(g, tok, emb, L0);
    IrId hn = rmsnorm(g, x, n1);
    IrId q = ir_rope(g, heads(g, ir_linear(g, hn, wq, L0), NH, HD), ps, r, L0);
    IrId k = ir_rope(g, heads(g, ir_linear(g, hn, wk, L0), NKV, HD), ps, r, L0);
    IrId v = heads(g, ir_linear(g, hn, wv, L0), NKV, HD);
    IrId a = ir_sdpa(g, q, k, v, true, 0, L0);
    a = ir_reshape(g, ir_permute(g, a, (const int[]){0, 2, 1, 3}, L0), ir_shape3(DB, DT, D(NH * HD)), L0);
    IrId h = ir_add(g, x, ir_linear(g, a, wo, L0), L0);
    IrId m = ir_mul(g, ir_unary(g, IR_SILU, ir_linear(g, h, wg, L0), L0), ir_linear(g, h, wu, L0), L0);
    IrId y = ir_add(g, h, ir_linear(g, m, wd, L0), L0);
    IrId logits = ir_linear(g, y, emb, L0);   // tied embeddings
    IrId ce = ir_cross_entropy(g, logits, labels, -100, 0.05, L0);
    // bind the frozen down_proj
    static double wdv[8 * 12];
    for (int i = 0; i < 8 * 12; i++) wdv[i] = gc_rand(&c) - 0.5;
    c.inp[c.ni] = wd;
    snprintf(c.iname[c.ni], sizeof c.iname[0], "down");
    c.idata[c.ni] = malloc(sizeof wdv);
    memcpy(c.idata[c.ni], wdv, sizeof wdv);
    c.ibytes[c.ni++] = sizeof wdv;
    gc_check(&c, ce, TOL);
}

int main(void) {
    unary_cases();
    binary_cases();
    reduce_cases();
    matmul_cases();
    softmax_cases();
    model_cases();
    layout_cases();
    stop_gradient_case();
    cast_case();
    block_case();
    return test_done("ir.grad");
}
