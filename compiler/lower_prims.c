// lower_prims.c — the built-in functions of graph code and how each maps to IR builders:
// elementwise math, reductions (dims kept), softmax family, linear / embed on parameter paths,
// rope, sdpa, cross_entropy, layout ops. Arguments arrive bound to parameter names (lower.c);
// shape errors are reported by the IR builders at the call's location.
// Not here: defs written in .trl (stdlib), the interpreter (lower.c).
#include "lower_int.h"
#include <inttypes.h>
#include <math.h>
#include <string.h>

static LVal v_tensor(IrId t) { return (LVal){.kind = LV_TENSOR, .t = t}; }

// Wraps a builder's result: IR_NONE means it reported; add the call-stack notes.
static int done(Lower *L, IrId r, LVal *out) {
    if (r == IR_NONE) {
        lower_notes(L);
        return -1;
    }
    *out = v_tensor(r);
    return 0;
}

static int targ(Lower *L, const LArgs *a, int i, IrId *out) {
    const char *what = a->fn ? a->fn : "an argument";
    char buf[96];
    snprintf(buf, sizeof buf, "argument %d of `%s`", i + 1, what);
    return lower_as_tensor(L, &a->v[i], a->loc[i], buf, out);
}

static bool given(const LArgs *a, int i) { return a->v[i].kind != LV_NONE; }

static int iarg(Lower *L, const LArgs *a, int i, int64_t dflt, const char *what, int64_t *out) {
    if (!given(a, i)) {
        *out = dflt;
        return 0;
    }
    return lower_as_int(L, &a->v[i], a->loc[i], what, out);
}

static int narg(Lower *L, const LArgs *a, int i, double dflt, const char *what, double *out) {
    if (!given(a, i)) {
        *out = dflt;
        return 0;
    }
    return lower_as_num(L, &a->v[i], a->loc[i], what, out);
}

static int barg(Lower *L, const LArgs *a, int i, bool dflt, const char *what, bool *out) {
    if (!given(a, i)) {
        *out = dflt;
        return 0;
    }
    return lower_as_bool(L, &a->v[i], a->loc[i], what, out);
}

static int rank_of(Lower *L, IrId x) {
    const IrNode *n = ir_node(L->g, x);
    return n ? n->shape.rank : 0;
}

// ---------------------------------------------------------------------------------------------
// elementwise

// unary(x): math on compile-time numbers is folded
static int p_unary(Lower *L, const LArgs *a, LVal *out) {
    if (a->v[0].kind == LV_NUM) {
        double x = a->v[0].num, r = 0;
        bool folded = true;
        const char *f = a->fn;
        if (!strcmp(f, "exp")) r = exp(x);
        else if (!strcmp(f, "log")) r = log(x);
        else if (!strcmp(f, "sqrt")) r = sqrt(x);
        else if (!strcmp(f, "rsqrt")) r = 1 / sqrt(x);
        else if (!strcmp(f, "tanh")) r = tanh(x);
        else if (!strcmp(f, "sigmoid")) r = 1 / (1 + exp(-x));
        else if (!strcmp(f, "abs")) r = fabs(x);
        else if (!strcmp(f, "square")) r = x * x;
        else if (!strcmp(f, "relu")) r = x > 0 ? x : 0;
        else folded = false;
        if (folded) {
            if (!isfinite(r)) {
                lower_err(L, a->call, "`%s(%g)` is not a finite number", f, x);
                return -1;
            }
            *out = (LVal){.kind = LV_NUM, .num = r};
            return 0;
        }
    }
    const LPrim *p = lower_prim_find(a->fn);
    IrId x;
    if (targ(L, a, 0, &x)) return -1;
    return done(L, ir_unary(L->g, (IrOp)p->op, x, a->call), out);
}

static int p_binary(Lower *L, const LArgs *a, LVal *out) {
    const LPrim *p = lower_prim_find(a->fn);
    IrId x, y;
    if (targ(L, a, 0, &x) || targ(L, a, 1, &y)) return -1;
    return done(L, ir_binary(L->g, (IrOp)p->op, x, y, a->call), out);
}

// pow(x, exponent)
static int p_pow(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    double e;
    if (targ(L, a, 0, &x) || narg(L, a, 1, 1, "the exponent", &e)) return -1;
    return done(L, ir_pow(L->g, x, e, a->call), out);
}

// where(mask, a, b)
static int p_where(Lower *L, const LArgs *a, LVal *out) {
    IrId m, x, y;
    if (targ(L, a, 0, &m) || targ(L, a, 1, &x) || targ(L, a, 2, &y)) return -1;
    return done(L, ir_where(L->g, m, x, y, a->call), out);
}

// stop_gradient(x)
static int p_stop_gradient(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    if (targ(L, a, 0, &x)) return -1;
    return done(L, ir_stop_gradient(L->g, x, a->call), out);
}

// dropout(x, p, seed = 0)
static int p_dropout(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    double p;
    int64_t seed;
    if (targ(L, a, 0, &x) || narg(L, a, 1, 0, "the dropout probability", &p) || iarg(L, a, 2, 0, "the seed", &seed))
        return -1;
    if (!(p >= 0 && p < 1)) {
        lower_err(L, a->loc[1], "the dropout probability must be in [0, 1), got %g", p);
        return -1;
    }
    if (p == 0) {
        *out = v_tensor(x);
        return 0;
    }
    return done(L, ir_dropout(L->g, x, p, (uint64_t)seed, a->call), out);
}

// cast(x, "f32" | "f64" | "bf16" | "f16" | "i32")
static int p_cast(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    if (targ(L, a, 0, &x)) return -1;
    if (a->v[1].kind != LV_STR) {
        lower_err(L, a->loc[1], "the dtype is a string: \"f32\", \"f64\", \"bf16\", \"f16\" or \"i32\"");
        return -1;
    }
    static const char *const names[] = {"f32", "f64", "bf16", "f16", "i32"};
    static const IrDType types[] = {IR_F32, IR_F64, IR_BF16, IR_F16, IR_I32};
    for (int i = 0; i < 5; i++)
        if (!strcmp(a->v[1].s, names[i])) return done(L, ir_cast(L->g, x, types[i], a->call), out);
    lower_err(L, a->loc[1], "unknown dtype \"%s\"", a->v[1].s);
    const char *s = suggest_word(a->v[1].s, names, 5);
    if (s) diag_hint(L->d, "did you mean \"%s\"?", s);
    return -1;
}

// zeros_like(x)
static int p_zeros_like(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    if (targ(L, a, 0, &x)) return -1;
    return done(L, ir_zeros_like(L->g, x, a->call), out);
}

// ---------------------------------------------------------------------------------------------
// reductions: sum(x), sum(x, axis = -1), sum(x, axis = [1, 2]); reduced dims are kept as 1

static int p_reduce(Lower *L, const LArgs *a, LVal *out) {
    const LPrim *p = lower_prim_find(a->fn);
    IrId x;
    if (targ(L, a, 0, &x)) return -1;
    if (!given(a, 1)) return done(L, ir_reduce_all(L->g, (IrOp)p->op, x, a->call), out);
    const LVal *ax = &a->v[1];
    if (ax->kind == LV_NUM) {
        int64_t i;
        if (lower_as_int(L, ax, a->loc[1], "the axis", &i)) return -1;
        if (i < -IR_MAX_RANK || i >= IR_MAX_RANK) {
            lower_err(L, a->loc[1], "axis %" PRId64 " is out of range", i);
            return -1;
        }
        return done(L, ir_reduce(L->g, (IrOp)p->op, x, (int)i, a->call), out);
    }
    if (ax->kind != LV_LIST) {
        lower_err(L, a->loc[1], "the axis is an integer or a list of integers");
        return -1;
    }
    int r = rank_of(L, x);
    uint32_t mask = 0;
    for (int k = 0; k < ax->nitems; k++) {
        int64_t i;
        if (lower_as_int(L, &ax->items[k], a->loc[1], "an axis", &i)) return -1;
        if (i < 0) i += r;
        if (i < 0 || i >= r) {
            lower_err(L, a->loc[1], "axis %" PRId64 " is out of range for a tensor of rank %d", ax->items[k].inum, r);
            return -1;
        }
        mask |= 1u << i;
    }
    return done(L, ir_reduce_axes(L->g, (IrOp)p->op, x, mask, a->call), out);
}

// softmax(x, axis = -1), log_softmax(x, axis = -1): the last axis only
static int p_softmax(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    int64_t axis;
    if (targ(L, a, 0, &x) || iarg(L, a, 1, -1, "the axis", &axis)) return -1;
    int r = rank_of(L, x);
    if (axis != -1 && axis != r - 1) {
        lower_err(L, a->loc[1], "`%s` works over the last axis only", a->fn);
        diag_hint(L->d, "transpose the axis to the end first");
        return -1;
    }
    bool log = !strcmp(a->fn, "log_softmax");
    return done(L, log ? ir_log_softmax(L->g, x, a->call) : ir_softmax(L->g, x, a->call), out);
}

// ---------------------------------------------------------------------------------------------
// linear algebra and model primitives

// linear(x, p.q_proj) uses p.q_proj.weight [out, in] and, when declared, p.q_proj.bias [out];
// linear(x, w) with a tensor w; linear(x, w, bias) with an explicit bias. The product node is
// named by the module path so that LoRA / quantization can rewrite it.
static int p_linear(Lower *L, const LArgs *a, LVal *out) {
    IrId x, w, b = IR_NONE;
    const char *module = NULL;
    if (targ(L, a, 0, &x)) return -1;
    const LVal *wv = &a->v[1];
    if (wv->kind == LV_PATH && lower_param_id(L, arena_printf(L->a, "%s.weight", wv->s)) != IR_NONE) {
        module = wv->s;
        w = lower_param_id(L, arena_printf(L->a, "%s.weight", wv->s));
        b = lower_param_id(L, arena_printf(L->a, "%s.bias", wv->s));
    } else {
        if (targ(L, a, 1, &w)) return -1;
        if (wv->kind == LV_PATH) {
            size_t n = strlen(wv->s);
            module = n > 7 && !strcmp(wv->s + n - 7, ".weight") ? arena_strndup(L->a, wv->s, n - 7) : wv->s;
        }
    }
    if (given(a, 2) && targ(L, a, 2, &b)) return -1;
    IrId y = ir_linear(L->g, x, w, a->call);
    if (y == IR_NONE) return done(L, y, out);
    if (module) ir_set_name(L->g, y, module);
    if (b != IR_NONE) {
        const IrNode *bn = ir_node(L->g, b), *wn = ir_node(L->g, w);
        if (bn->shape.rank != 1 || !ir_dim_eq(bn->shape.d[0], wn->shape.d[0])) {
            char s1[64], s2[64];
            lower_err(L, a->call, "linear: bias shape %s does not match the weight %s [out, in]",
                      ir_shape_str(&bn->shape, s1, sizeof s1), ir_shape_str(&wn->shape, s2, sizeof s2));
            return -1;
        }
        y = ir_add(L->g, y, b, a->call);
    }
    return done(L, y, out);
}

// matmul(a, b, trans_a = false, trans_b = false)
static int p_matmul(Lower *L, const LArgs *a, LVal *out) {
    IrId x, y;
    bool ta, tb;
    if (targ(L, a, 0, &x) || targ(L, a, 1, &y) || barg(L, a, 2, false, "trans_a", &ta) ||
        barg(L, a, 3, false, "trans_b", &tb))
        return -1;
    return done(L, ir_matmul(L->g, x, y, ta, tb, a->call), out);
}

// embed(ids, model.embed_tokens): rows of the table [V, H] → (..., H)
static int p_embed(Lower *L, const LArgs *a, LVal *out) {
    IrId ids, table;
    if (targ(L, a, 0, &ids) || targ(L, a, 1, &table)) return -1;
    return done(L, ir_embed(L->g, ids, table, a->call), out);
}

// rope(x (B, H, T, D), pos (B, T), cfg.rope | theta)
static int p_rope(Lower *L, const LArgs *a, LVal *out) {
    IrId x, pos;
    if (targ(L, a, 0, &x) || targ(L, a, 1, &pos)) return -1;
    IrRope r = {0};
    const LVal *t = &a->v[2];
    if (t->kind == LV_NUM) {
        r.theta = t->num;
    } else if (t->kind == LV_RECORD) {
        for (int i = 0; i < t->nfields; i++) {
            const LField *f = &t->fields[i];
            if (f->v.kind != LV_NUM) continue;
            if (!strcmp(f->name, "theta")) r.theta = f->v.num;
            else if (!strcmp(f->name, "factor")) r.factor = f->v.num;
            else if (!strcmp(f->name, "low_freq_factor")) r.low_freq_factor = f->v.num;
            else if (!strcmp(f->name, "high_freq_factor")) r.high_freq_factor = f->v.num;
            else if (!strcmp(f->name, "original_max_pos")) r.original_max_pos = f->v.num;
        }
    } else {
        lower_err(L, a->loc[2], "the third argument of `rope` is the base theta or `cfg.rope`, got a %s",
                  lower_kind_name(t->kind));
        return -1;
    }
    if (!(r.theta > 0) || !isfinite(r.theta)) {
        lower_err(L, a->loc[2], "the rope base theta must be positive, got %g", r.theta);
        return -1;
    }
    return done(L, ir_rope(L->g, x, pos, r, a->call), out);
}

// sdpa(q, k, v, causal = false, scale = 1/sqrt(head_dim), key_mask = none, segments = none):
// key_mask (B, T), 0 = a padding key nobody attends to; segments (B, T) i32, query i sees key j
// only where segments[i] == segments[j]. When the graph packs rows (L->seq), a causal
// self-attention without explicit segments uses the input `seq`.
static int p_sdpa(Lower *L, const LArgs *a, LVal *out) {
    IrId q, k, v, mask = IR_NONE, seg = IR_NONE;
    bool causal;
    double scale;
    if (targ(L, a, 0, &q) || targ(L, a, 1, &k) || targ(L, a, 2, &v) || barg(L, a, 3, false, "causal", &causal) ||
        narg(L, a, 4, 0, "the scale", &scale) || (given(a, 5) && targ(L, a, 5, &mask)) ||
        (given(a, 6) && targ(L, a, 6, &seg)))
        return -1;
    if (seg == IR_NONE && causal && L->seq != IR_NONE) {
        const IrNode *nq = ir_node(L->g, q), *nk = ir_node(L->g, k);
        if (nq && nk && nq->shape.rank == 4 && nk->shape.rank == 4 && ir_dim_eq(nq->shape.d[2], nk->shape.d[2]))
            seg = L->seq;
    }
    if (seg != IR_NONE) return done(L, ir_sdpa_seg(L->g, q, k, v, mask, seg, causal, scale, a->call), out);
    if (mask != IR_NONE) return done(L, ir_sdpa_masked(L->g, q, k, v, mask, causal, scale, a->call), out);
    return done(L, ir_sdpa(L->g, q, k, v, causal, scale, a->call), out);
}

// cross_entropy(logits (..., V), labels i32 (...), ignore_index = -100, label_smoothing = 0) → (...)
static int p_cross_entropy(Lower *L, const LArgs *a, LVal *out) {
    IrId x, y;
    int64_t ig;
    double ls;
    if (targ(L, a, 0, &x) || targ(L, a, 1, &y) || iarg(L, a, 2, LOWER_IGNORE_INDEX, "ignore_index", &ig) ||
        narg(L, a, 3, 0, "label_smoothing", &ls))
        return -1;
    if (!(ls >= 0 && ls <= 1)) {
        lower_err(L, a->loc[3], "label_smoothing must be in [0, 1], got %g", ls);
        return -1;
    }
    return done(L, ir_cross_entropy(L->g, x, y, ig, ls, a->call), out);
}

// gather(x, idx, axis)
static int p_gather(Lower *L, const LArgs *a, LVal *out) {
    IrId x, idx;
    int64_t axis;
    if (targ(L, a, 0, &x) || targ(L, a, 1, &idx) || iarg(L, a, 2, -1, "the axis", &axis)) return -1;
    if (axis < -IR_MAX_RANK || axis >= IR_MAX_RANK) {
        lower_err(L, a->loc[2], "axis %" PRId64 " is out of range", axis);
        return -1;
    }
    return done(L, ir_gather(L->g, x, idx, (int)axis, a->call), out);
}

// ---------------------------------------------------------------------------------------------
// layout

// reshape(x, [0, 0, n, -1]): 0 keeps the input's dim at that place (symbolic B, T included),
// -1 is inferred, other sizes are constants.
static int p_reshape(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    if (targ(L, a, 0, &x)) return -1;
    const LVal *s = &a->v[1];
    if (s->kind != LV_LIST || s->nitems > IR_MAX_RANK) {
        lower_err(L, a->loc[1], "the shape of `reshape` is a list of at most %d sizes", IR_MAX_RANK);
        return -1;
    }
    const IrNode *xn = ir_node(L->g, x);
    IrShape sh = {.rank = s->nitems};
    for (int i = 0; i < s->nitems; i++) {
        int64_t n;
        if (lower_as_int(L, &s->items[i], a->loc[1], "a size in `reshape`", &n)) return -1;
        if (n == 0) {
            if (i >= xn->shape.rank) {
                lower_err(L, a->loc[1], "`0` at place %d keeps an input dim, but the input has rank %d", i,
                          xn->shape.rank);
                return -1;
            }
            sh.d[i] = xn->shape.d[i];
        } else if (n == -1) {
            sh.d[i] = (IrDim){-1, 0};
        } else if (n > 0 && n <= ((int64_t)1 << 40)) {
            sh.d[i] = ir_dim(n);
        } else {
            lower_err(L, a->loc[1], "size %" PRId64 " in `reshape`: expected 0 (keep), -1 (infer) or a positive size", n);
            return -1;
        }
    }
    return done(L, ir_reshape(L->g, x, sh, a->call), out);
}

// transpose(x, axis0, axis1)
static int p_transpose(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    int64_t i, j;
    if (targ(L, a, 0, &x) || iarg(L, a, 1, 0, "the first axis", &i) || iarg(L, a, 2, 0, "the second axis", &j))
        return -1;
    if (i < -IR_MAX_RANK || i >= IR_MAX_RANK || j < -IR_MAX_RANK || j >= IR_MAX_RANK) {
        lower_err(L, a->call, "transpose: axis out of range");
        return -1;
    }
    return done(L, ir_transpose(L->g, x, (int)i, (int)j, a->call), out);
}

// permute(x, [perm])
static int p_permute(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    if (targ(L, a, 0, &x)) return -1;
    const LVal *p = &a->v[1];
    int r = rank_of(L, x);
    if (p->kind != LV_LIST || p->nitems != r) {
        lower_err(L, a->loc[1], "permute needs a list of %d axes", r);
        return -1;
    }
    int perm[IR_MAX_RANK];
    for (int i = 0; i < r; i++) {
        int64_t k;
        if (lower_as_int(L, &p->items[i], a->loc[1], "an axis", &k)) return -1;
        if (k < 0 || k >= r) {
            lower_err(L, a->loc[1], "axis %" PRId64 " is out of range for rank %d", k, r);
            return -1;
        }
        perm[i] = (int)k;
    }
    return done(L, ir_permute(L->g, x, perm, a->call), out);
}

// concat([xs], axis)
static int p_concat(Lower *L, const LArgs *a, LVal *out) {
    const LVal *xs = &a->v[0];
    int64_t axis;
    if (xs->kind != LV_LIST || xs->nitems < 1) {
        lower_err(L, a->loc[0], "concat takes a non-empty list of tensors");
        return -1;
    }
    if (iarg(L, a, 1, 0, "the axis", &axis)) return -1;
    if (axis < -IR_MAX_RANK || axis >= IR_MAX_RANK) {
        lower_err(L, a->loc[1], "axis %" PRId64 " is out of range", axis);
        return -1;
    }
    IrId *ids = arena_alloc(L->a, (size_t)xs->nitems * sizeof *ids);
    for (int i = 0; i < xs->nitems; i++)
        if (lower_as_tensor(L, &xs->items[i], a->loc[0], "an element of the list", &ids[i])) return -1;
    return done(L, ir_concat(L->g, ids, xs->nitems, (int)axis, a->call), out);
}

// slice(x, axis, start, end): python-style, on a constant dim
static int p_slice(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    int64_t axis, s, e;
    if (targ(L, a, 0, &x) || iarg(L, a, 1, 0, "the axis", &axis) || iarg(L, a, 2, 0, "the start", &s) ||
        iarg(L, a, 3, 0, "the end", &e))
        return -1;
    if (axis < -IR_MAX_RANK || axis >= IR_MAX_RANK) {
        lower_err(L, a->loc[1], "axis %" PRId64 " is out of range", axis);
        return -1;
    }
    return done(L, ir_slice(L->g, x, (int)axis, s, e, a->call), out);
}

// batch_half(x, 0 | 1): the first or second half of axis 0 — the chosen and rejected rows of a
// preference batch of 2B rows (symbolic: (2B, ...) → (B, ...)).
static int p_batch_half(Lower *L, const LArgs *a, LVal *out) {
    IrId x;
    int64_t which;
    if (targ(L, a, 0, &x) || iarg(L, a, 1, 0, "the half (0 or 1)", &which)) return -1;
    const IrNode *n = ir_node(L->g, x);
    if (which != 0 && which != 1) {
        lower_err(L, a->loc[1], "batch_half takes 0 (the first half) or 1 (the second), got %" PRId64, which);
        return -1;
    }
    if (n->shape.rank < 1 || n->shape.d[0].coef % 2) {
        char buf[64];
        lower_err(L, a->call, "batch_half needs an even first dim, got %s", ir_shape_str(&n->shape, buf, sizeof buf));
        return -1;
    }
    IrDim len = {n->shape.d[0].coef / 2, n->shape.d[0].syms};
    IrDim start = which ? len : ir_dim(0);
    return done(L, ir_slice_dim(L->g, x, 0, start, len, a->call), out);
}

// ---------------------------------------------------------------------------------------------
// the table

static const LPrim prims[] = {
    {"exp", 1, {"x"}, p_unary, IR_EXP},
    {"log", 1, {"x"}, p_unary, IR_LOG},
    {"sqrt", 1, {"x"}, p_unary, IR_SQRT},
    {"rsqrt", 1, {"x"}, p_unary, IR_RSQRT},
    {"tanh", 1, {"x"}, p_unary, IR_TANH},
    {"sigmoid", 1, {"x"}, p_unary, IR_SIGMOID},
    {"silu", 1, {"x"}, p_unary, IR_SILU},
    {"gelu", 1, {"x"}, p_unary, IR_GELU},
    {"relu", 1, {"x"}, p_unary, IR_RELU},
    {"abs", 1, {"x"}, p_unary, IR_ABS},
    {"square", 1, {"x"}, p_unary, IR_SQUARE},
    {"log_sigmoid", 1, {"x"}, p_unary, IR_LOG_SIGMOID},
    {"softplus", 1, {"x"}, p_unary, IR_SOFTPLUS},
    {"pow", 2, {"x", "exponent"}, p_pow, 0},
    {"maximum", 2, {"a", "b"}, p_binary, IR_MAXIMUM},
    {"minimum", 2, {"a", "b"}, p_binary, IR_MINIMUM},
    {"equal", 2, {"a", "b"}, p_binary, IR_EQ},
    {"not_equal", 2, {"a", "b"}, p_binary, IR_NE},
    {"less", 2, {"a", "b"}, p_binary, IR_LT},
    {"less_equal", 2, {"a", "b"}, p_binary, IR_LE},
    {"greater", 2, {"a", "b"}, p_binary, IR_GT},
    {"greater_equal", 2, {"a", "b"}, p_binary, IR_GE},
    {"where", 3, {"mask", "a", "b"}, p_where, 0},
    {"stop_gradient", 1, {"x"}, p_stop_gradient, 0},
    {"dropout", 2, {"x", "p", "seed"}, p_dropout, 0},
    {"cast", 2, {"x", "dtype"}, p_cast, 0},
    {"zeros_like", 1, {"x"}, p_zeros_like, 0},
    {"sum", 1, {"x", "axis"}, p_reduce, IR_SUM},
    {"mean", 1, {"x", "axis"}, p_reduce, IR_MEAN},
    {"max", 1, {"x", "axis"}, p_reduce, IR_MAX},
    {"softmax", 1, {"x", "axis"}, p_softmax, 0},
    {"log_softmax", 1, {"x", "axis"}, p_softmax, 0},
    {"linear", 2, {"x", "w", "bias"}, p_linear, 0},
    {"matmul", 2, {"a", "b", "trans_a", "trans_b"}, p_matmul, 0},
    {"embed", 2, {"ids", "table"}, p_embed, 0},
    {"rope", 3, {"x", "pos", "theta"}, p_rope, 0},
    {"sdpa", 3, {"q", "k", "v", "causal", "scale", "key_mask", "segments"}, p_sdpa, 0},
    {"cross_entropy", 2, {"logits", "labels", "ignore_index", "label_smoothing"}, p_cross_entropy, 0},
    {"gather", 3, {"x", "idx", "axis"}, p_gather, 0},
    {"reshape", 2, {"x", "shape"}, p_reshape, 0},
    {"transpose", 3, {"x", "axis0", "axis1"}, p_transpose, 0},
    {"permute", 2, {"x", "perm"}, p_permute, 0},
    {"concat", 2, {"xs", "axis"}, p_concat, 0},
    {"slice", 4, {"x", "axis", "start", "end"}, p_slice, 0},
    {"batch_half", 2, {"x", "half"}, p_batch_half, 0},
};
enum { NPRIMS = sizeof prims / sizeof prims[0] };

const LPrim *lower_prim_find(const char *name) {
    for (int i = 0; i < NPRIMS; i++)
        if (!strcmp(prims[i].name, name)) return &prims[i];
    return NULL;
}
int lower_prim_count(void) { return NPRIMS; }
const char *lower_prim_name(int i) { return i >= 0 && i < NPRIMS ? prims[i].name : NULL; }
