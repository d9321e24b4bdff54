// ir.c — the IR graph: names of dtypes and ops, symbolic shapes, the generic builders (leaves,
// elementwise, reductions, matmul/linear, layout) with dtype and shape inference and diagnostics at
// the node's spec location, dead-code elimination and a verifier.
// Not here: the model primitives' builders (ir_model.c), printing (ir_print.c), gradients
// (autodiff.c), execution (runtime/cpu).
#include "ir_internal.h"
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

// ---------------------------------------------------------------------------------------------
// names

const char *ir_dtype_name(IrDType t) {
    static const char *const names[IR_DTYPE_COUNT] = {"f32", "f64", "bf16", "f16", "i32", "u8"};
    return (t >= 0 && t < IR_DTYPE_COUNT) ? names[t] : "?";
}

const char *ir_sym_name(int sym) {
    static const char *const names[IR_NSYMS] = {"B", "T"};
    return (sym >= 0 && sym < IR_NSYMS) ? names[sym] : "?";
}

static const char *const op_names[IR_OP_COUNT] = {
    [IR_INPUT] = "input", [IR_PARAM] = "param", [IR_FULL] = "full", [IR_ARANGE] = "arange",
    [IR_NEG] = "neg", [IR_EXP] = "exp", [IR_LOG] = "log", [IR_SQRT] = "sqrt",
    [IR_RSQRT] = "rsqrt", [IR_TANH] = "tanh", [IR_SIGMOID] = "sigmoid", [IR_SILU] = "silu",
    [IR_GELU] = "gelu", [IR_RELU] = "relu", [IR_ABS] = "abs", [IR_SQUARE] = "square",
    [IR_POW] = "pow", [IR_LOG_SIGMOID] = "log_sigmoid", [IR_SOFTPLUS] = "softplus",
    [IR_CAST] = "cast", [IR_STOP_GRAD] = "stop_gradient", [IR_DROPOUT] = "dropout",
    [IR_ADD] = "add", [IR_SUB] = "sub", [IR_MUL] = "mul", [IR_DIV] = "div",
    [IR_MAXIMUM] = "maximum", [IR_MINIMUM] = "minimum", [IR_EQ] = "eq", [IR_NE] = "ne",
    [IR_LT] = "lt", [IR_LE] = "le", [IR_GT] = "gt", [IR_GE] = "ge", [IR_WHERE] = "where",
    [IR_SUM] = "sum", [IR_MEAN] = "mean", [IR_MAX] = "max", [IR_SUM_TO] = "sum_to",
    [IR_BROADCAST] = "broadcast", [IR_MATMUL] = "matmul", [IR_SOFTMAX] = "softmax",
    [IR_LOG_SOFTMAX] = "log_softmax", [IR_EMBED] = "embed", [IR_EMBED_BWD] = "embed_bwd",
    [IR_ROPE] = "rope", [IR_SDPA] = "sdpa", [IR_SDPA_BWD_Q] = "sdpa_bwd_q",
    [IR_SDPA_BWD_K] = "sdpa_bwd_k", [IR_SDPA_BWD_V] = "sdpa_bwd_v",
    [IR_CROSS_ENTROPY] = "cross_entropy", [IR_CROSS_ENTROPY_BWD] = "cross_entropy_bwd",
    [IR_LINEAR_CE] = "linear_ce", [IR_LINEAR_CE_BWD_X] = "linear_ce_bwd_x", [IR_LINEAR_CE_BWD_W] = "linear_ce_bwd_w",
    [IR_LINEAR_ARGMAX] = "linear_argmax",
    [IR_GATHER] = "gather", [IR_GATHER_BWD] = "gather_bwd", [IR_RESHAPE] = "reshape",
    [IR_PERMUTE] = "permute", [IR_CONCAT] = "concat", [IR_SLICE] = "slice", [IR_PAD] = "pad",
    [IR_DEQUANT_NF4] = "dequant_nf4", [IR_DEQUANT_MAP8] = "dequant_map8",
};

const char *ir_op_name(IrOp op) {
    return (op >= 0 && op < IR_OP_COUNT && op_names[op]) ? op_names[op] : "?";
}

bool ir_op_is_elementwise(IrOp op) {
    return (op >= IR_NEG && op <= IR_WHERE);
}

// ---------------------------------------------------------------------------------------------
// shapes

IrShape ir_shape0(void) {
    IrShape s;
    memset(&s, 0, sizeof s);
    return s;
}

IrShape ir_shape_of(int rank, const IrDim *dims) {
    IrShape s = ir_shape0();
    if (rank < 0) rank = 0;
    if (rank > IR_MAX_RANK) rank = IR_MAX_RANK;
    s.rank = rank;
    for (int i = 0; i < rank; i++) s.d[i] = dims[i];
    return s;
}

IrShape ir_shape1(IrDim a) { IrDim d[1] = {a}; return ir_shape_of(1, d); }
IrShape ir_shape2(IrDim a, IrDim b) { IrDim d[2] = {a, b}; return ir_shape_of(2, d); }
IrShape ir_shape3(IrDim a, IrDim b, IrDim c) { IrDim d[3] = {a, b, c}; return ir_shape_of(3, d); }
IrShape ir_shape4(IrDim a, IrDim b, IrDim c, IrDim d4) {
    IrDim d[4] = {a, b, c, d4};
    return ir_shape_of(4, d);
}

bool ir_shape_eq(const IrShape *a, const IrShape *b) {
    if (a->rank != b->rank) return false;
    for (int i = 0; i < a->rank; i++)
        if (!ir_dim_eq(a->d[i], b->d[i])) return false;
    return true;
}

// a * b as one Dim; false when a symbol would be squared or the constant overflows.
static bool dim_mul(IrDim a, IrDim b, IrDim *out) {
    if (a.syms & b.syms) return false;
    if (a.coef < 0 || b.coef < 0) return false;
    if (a.coef != 0 && b.coef > INT64_MAX / a.coef) return false;
    out->coef = a.coef * b.coef;
    out->syms = a.syms | b.syms;
    return true;
}

bool ir_shape_numel_dim(const IrShape *s, IrDim *out) {
    IrDim n = ir_dim(1);
    for (int i = 0; i < s->rank; i++)
        if (!dim_mul(n, s->d[i], &n)) return false;
    *out = n;
    return true;
}

int64_t ir_dim_value(IrDim d, const int64_t *sym_vals) {
    int64_t v = d.coef;
    if (v < 0) return -1;
    for (int i = 0; i < IR_NSYMS; i++) {
        if (!(d.syms & (1u << i))) continue;
        int64_t s = sym_vals ? sym_vals[i] : -1;
        if (s < 0) return -1;
        if (s != 0 && v > INT64_MAX / s) return -1;
        v *= s;
    }
    return v;
}

int64_t ir_shape_numel(const IrShape *s, const int64_t *sym_vals) {
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        int64_t v = ir_dim_value(s->d[i], sym_vals);
        if (v < 0) return -1;
        if (v != 0 && n > INT64_MAX / v) return -1;
        n *= v;
    }
    return n;
}

static void dim_str(IrDim d, char *buf, size_t n) {
    size_t k = 0;
    buf[0] = 0;
    if (d.coef != 1 || d.syms == 0) k += (size_t)snprintf(buf, n, "%" PRId64, d.coef);
    for (int i = 0; i < IR_NSYMS && k < n; i++) {
        if (!(d.syms & (1u << i))) continue;
        k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? "*" : "", ir_sym_name(i));
    }
}

char *ir_shape_str(const IrShape *s, char *buf, size_t n) {
    if (n == 0) return buf;
    size_t k = (size_t)snprintf(buf, n, "[");
    int rank = s->rank < 0 ? 0 : s->rank > IR_MAX_RANK ? IR_MAX_RANK : s->rank;
    for (int i = 0; i < rank && k < n; i++) {
        char d[48];
        dim_str(s->d[i], d, sizeof d);
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? "," : "", d);
    }
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

bool ir_broadcast_shapes(const IrShape *a, const IrShape *b, IrShape *out) {
    int r = a->rank > b->rank ? a->rank : b->rank;
    IrShape s = ir_shape0();
    s.rank = r;
    for (int i = 0; i < r; i++) {
        int ia = a->rank - r + i, ib = b->rank - r + i;
        IrDim da = ia >= 0 ? a->d[ia] : ir_dim(1);
        IrDim db = ib >= 0 ? b->d[ib] : ir_dim(1);
        if (ir_dim_eq(da, db) || ir_dim_is_one(db)) s.d[i] = da;
        else if (ir_dim_is_one(da)) s.d[i] = db;
        else return false;
    }
    *out = s;
    return true;
}

// ---------------------------------------------------------------------------------------------
// the graph

void ir_graph_init(IrGraph *g, Diag *d, IrDType float_dtype) {
    memset(g, 0, sizeof *g);
    g->diag = d;
    g->float_dtype = ir_dtype_is_float(float_dtype) ? float_dtype : IR_F32;
    g->loss = IR_NONE;
}

static void names_free(IrGraph *g);   // the leaf-name index (ir_find)

void ir_graph_free(IrGraph *g) {
    names_free(g);
    free(g->nodes);
    free(g->outs);
    free(g->renum);
    arena_free(&g->arena);
    memset(g, 0, sizeof *g);
    g->loss = IR_NONE;
}

void ir_report(IrGraph *g, Loc loc, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    g->errors++;
    if (!g->diag) return;
    if (loc.file) diag_error(g->diag, loc, "%s", msg);
    else diag_plain_error(g->diag, "%s", msg);
}

// Shape text of node id, in a rotating set of buffers (for messages).
const char *ir_shp(const IrGraph *g, IrId id) {
    static _Thread_local char bufs[4][160];
    static _Thread_local int k;
    char *b = bufs[k++ & 3];
    return ir_shape_str(&g->nodes[id].shape, b, 160);
}
const char *ir_shs(const IrShape *s) {
    static _Thread_local char bufs[4][160];
    static _Thread_local int k;
    char *b = bufs[k++ & 3];
    return ir_shape_str(s, b, 160);
}

IrId ir_append(IrGraph *g, IrOp op, IrDType dt, IrShape shape, const IrId *in, int nin,
               const IrAttrs *a, Loc loc) {
    if (nin < 0 || g->n >= INT32_MAX - 1) {
        ir_report(g, loc, "IR graph too large");
        return IR_NONE;
    }
    if (g->n == g->cap) {
        int cap = g->cap ? g->cap : 256;
        if (cap > INT32_MAX / 2) return IR_NONE;
        cap *= 2;
        IrNode *nn = realloc(g->nodes, (size_t)cap * sizeof *nn);
        if (!nn) {
            ir_report(g, loc, "out of memory building the IR graph");
            return IR_NONE;
        }
        g->nodes = nn;
        g->cap = cap;
    }
    IrNode *n = &g->nodes[g->n];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->dtype = dt;
    n->shape = shape;
    n->nin = nin;
    if (nin) {
        n->in = arena_alloc(&g->arena, (size_t)nin * sizeof(IrId));
        memcpy(n->in, in, (size_t)nin * sizeof(IrId));
    }
    if (a) n->a = *a;
    n->loc = loc;
    n->backward = g->in_backward;
    return g->n++;
}

int ir_layer_of(const char *name) {
    static const char pre[] = "model.layers.";
    if (!name || strncmp(name, pre, sizeof pre - 1)) return -1;
    const char *s = name + sizeof pre - 1;
    long v = 0;
    if (*s < '0' || *s > '9') return -1;
    while (*s >= '0' && *s <= '9' && v < INT_MAX / 10) v = v * 10 + (*s++ - '0');
    return (*s == '.' || *s == 0) ? (int)v : -1;
}

int ir_lowp_operands(IrOp op) {
    switch (op) {
    case IR_MATMUL: case IR_LINEAR_CE: case IR_LINEAR_CE_BWD_X: case IR_LINEAR_CE_BWD_W: case IR_LINEAR_ARGMAX: return 2;
    case IR_SDPA: case IR_SDPA_BWD_Q: case IR_SDPA_BWD_K: case IR_SDPA_BWD_V: return 3;
    default: return 0;
    }
}

// Leaf names -> ids (IrGraph.names), for ir_find: a scan per lookup made building a graph (every
// new leaf checks its name is new) and binding its parameters quadratic in depth. Open
// addressing over the leaves; nodes appended since the last lookup are indexed at the next one;
// renumbering the graph (ir_dce, ir_install_nodes) starts it again. The index is a cache, not part
// of the graph's value: a const graph's lookup may fill it.
struct IrNameIndex {
    IrId *slot;     // cap slots (a power of two), IR_NONE when empty
    int cap, used;
    int indexed;    // nodes [0, indexed) are in; -1: renumbered since, rebuild
};

static uint64_t name_hash(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void names_reset(IrGraph *g) {
    if (g->names) g->names->indexed = -1;
}

static void names_free(IrGraph *g) {
    if (g->names) free(g->names->slot);
    free(g->names);
    g->names = NULL;
}

// The slot of name: its id's, or the empty one where it goes.
static int names_probe(const struct IrNameIndex *x, const IrGraph *g, const char *name) {
    int i = (int)(name_hash(name) & (uint64_t)(x->cap - 1));
    while (x->slot[i] != IR_NONE && !(g->nodes[x->slot[i]].name && !strcmp(g->nodes[x->slot[i]].name, name)))
        i = (i + 1) & (x->cap - 1);
    return i;
}

static int names_rehash(struct IrNameIndex *x, const IrGraph *g, int cap) {
    IrId *old = x->slot;
    int oldcap = x->cap;
    x->slot = malloc((size_t)cap * sizeof *x->slot);
    if (!x->slot) {
        x->slot = old;
        return -1;
    }
    x->cap = cap;
    for (int i = 0; i < cap; i++) x->slot[i] = IR_NONE;
    for (int i = 0; i < oldcap; i++)
        if (old[i] != IR_NONE && g->nodes[old[i]].name) x->slot[names_probe(x, g, g->nodes[old[i]].name)] = old[i];
    free(old);
    return 0;
}

// g's index, brought up to date; NULL when out of memory (ir_find then scans).
static struct IrNameIndex *names_of(const IrGraph *cg) {
    IrGraph *g = (IrGraph *)cg;   // the cache only (see above)
    if (!g->names) {
        g->names = calloc(1, sizeof *g->names);
        if (!g->names) return NULL;
    }
    struct IrNameIndex *x = g->names;
    if (x->indexed < 0 || x->indexed > g->n || !x->slot) {   // renumbered (or new): start again
        if (!x->slot && names_rehash(x, g, 64)) return NULL;
        for (int i = 0; i < x->cap; i++) x->slot[i] = IR_NONE;
        x->used = 0, x->indexed = 0;
    }
    for (; x->indexed < g->n; x->indexed++) {
        const IrNode *n = &g->nodes[x->indexed];
        if (!ir_is_leaf(n) || !n->name) continue;
        if (x->used >= x->cap / 2 && (x->cap > INT_MAX / 2 || names_rehash(x, g, 2 * x->cap))) {
            names_free(g);
            return NULL;
        }
        int i = names_probe(x, g, n->name);
        if (x->slot[i] == IR_NONE) x->slot[i] = x->indexed, x->used++;   // the first of a name answers
    }
    return x;
}

IrId ir_find(const IrGraph *g, const char *name) {
    if (!name) return IR_NONE;
    const struct IrNameIndex *x = names_of(g);
    if (x) {
        IrId id = x->slot[names_probe(x, g, name)];
        // a leaf changed in place since it was indexed (no pass does that): scan
        if (id == IR_NONE || (ir_is_leaf(&g->nodes[id]) && g->nodes[id].name && !strcmp(g->nodes[id].name, name)))
            return id;
    }
    for (int i = 0; i < g->n; i++)
        if (ir_is_leaf(&g->nodes[i]) && g->nodes[i].name &&
            strcmp(g->nodes[i].name, name) == 0)
            return i;
    return IR_NONE;
}

static int add_output(IrGraph *g, IrId id, const char *name, IrId grad_of) {
    if (!ir_valid(g, id)) return -1;
    if (g->nouts == g->capouts) {
        int cap = g->capouts ? g->capouts * 2 : 16;
        IrOutput *no = realloc(g->outs, (size_t)cap * sizeof *no);
        if (!no) return -1;
        g->outs = no;
        g->capouts = cap;
    }
    g->outs[g->nouts].id = id;
    g->outs[g->nouts].name = arena_strdup(&g->arena, name ? name : "");
    g->outs[g->nouts].grad_of = grad_of;
    return g->nouts++;
}

int ir_add_output(IrGraph *g, IrId id, const char *name) { return add_output(g, id, name, IR_NONE); }

int ir_add_grad_output(IrGraph *g, IrId id, const char *name, IrId grad_of) {
    return add_output(g, id, name, grad_of);
}

static bool is_scalar_shape(const IrShape *s) {
    for (int i = 0; i < s->rank; i++)
        if (!ir_dim_is_one(s->d[i])) return false;
    return true;
}

void ir_set_loss(IrGraph *g, IrId id) {
    if (!ir_valid(g, id)) return;
    const IrNode *n = ir_nd(g, id);
    if (!is_scalar_shape(&n->shape)) {
        ir_report(g, n->loc, "the loss must be a scalar, but this has shape %s", ir_shp(g, id));
        return;
    }
    if (!ir_dtype_is_float(n->dtype)) {
        ir_report(g, n->loc, "the loss must be a floating-point value, not %s", ir_dtype_name(n->dtype));
        return;
    }
    g->loss = id;
    add_output(g, id, "loss", IR_NONE);
}

void ir_set_name(IrGraph *g, IrId id, const char *name) {
    if (!ir_valid(g, id) || ir_is_leaf(&g->nodes[id])) return;
    g->nodes[id].name = name ? arena_strdup(&g->arena, name) : NULL;
}

int ir_count_trainable(const IrGraph *g) {
    int k = 0;
    for (int i = 0; i < g->n; i++) k += g->nodes[i].op == IR_PARAM && g->nodes[i].trainable;
    return k;
}

int *ir_count_readers(IrGraph *g, const char *pass) {
    int *readers = calloc((size_t)g->n + 1, sizeof *readers);
    if (!readers) {
        ir_report(g, (Loc){0, 0, 0}, "out of memory in the %s pass", pass);
        return NULL;
    }
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->nodes[i].nin; k++)
            if (ir_valid(g, g->nodes[i].in[k])) readers[g->nodes[i].in[k]]++;
    for (int o = 0; o < g->nouts; o++)
        if (ir_valid(g, g->outs[o].id)) readers[g->outs[o].id]++;
    if (ir_valid(g, g->loss)) readers[g->loss]++;
    return readers;
}

// ---------------------------------------------------------------------------------------------
// builders: leaves

// The product of the constant factors of all dims fits in int64 (symbols may repeat: a (T, T)
// mask is a fine tensor, only its element count is not one Dim).
bool ir_const_numel_ok(const IrShape *s) {
    int64_t n = 1;
    for (int i = 0; i < s->rank; i++) {
        int64_t c = s->d[i].coef;
        if (c < 0 || (c != 0 && n > INT64_MAX / c)) return false;
        n *= c;
    }
    return true;
}

bool ir_shape_ok(IrGraph *g, const IrShape *s, Loc loc, const char *what) {
    if (s->rank < 0 || s->rank > IR_MAX_RANK) {
        ir_report(g, loc, "%s: rank %d is out of range (at most %d)", what, s->rank, IR_MAX_RANK);
        return false;
    }
    for (int i = 0; i < s->rank; i++)
        if (s->d[i].coef < 0 || (s->d[i].syms >> IR_NSYMS)) {
            ir_report(g, loc, "%s: invalid dimension %d", what, i);
            return false;
        }
    if (!ir_const_numel_ok(s)) {
        ir_report(g, loc, "%s: shape %s is too large", what, ir_shs(s));
        return false;
    }
    return true;
}

static IrId leaf(IrGraph *g, IrOp op, const char *name, IrDType dt, IrShape shape, bool trainable,
                 Loc loc) {
    const char *what = op == IR_PARAM ? "parameter" : "input";
    if (!name || !*name) {
        ir_report(g, loc, "%s without a name", what);
        return IR_NONE;
    }
    if (dt < 0 || dt >= IR_DTYPE_COUNT) {
        ir_report(g, loc, "%s `%s`: invalid dtype", what, name);
        return IR_NONE;
    }
    if (!ir_shape_ok(g, &shape, loc, what)) return IR_NONE;
    if (ir_find(g, name) != IR_NONE) {
        ir_report(g, loc, "%s `%s` is defined twice", what, name);
        return IR_NONE;
    }
    if (op == IR_PARAM && trainable && !ir_dtype_is_float(dt)) {
        ir_report(g, loc, "parameter `%s` of dtype %s cannot be trainable", name, ir_dtype_name(dt));
        return IR_NONE;
    }
    IrId id = ir_append(g, op, dt, shape, NULL, 0, NULL, loc);
    if (id == IR_NONE) return id;
    g->nodes[id].name = arena_strdup(&g->arena, name);
    g->nodes[id].trainable = op == IR_PARAM && trainable;
    return id;
}

IrId ir_input(IrGraph *g, const char *name, IrDType dt, IrShape shape, Loc loc) {
    return leaf(g, IR_INPUT, name, dt, shape, false, loc);
}

IrId ir_param(IrGraph *g, const char *name, IrDType dt, IrShape shape, bool trainable, Loc loc) {
    return leaf(g, IR_PARAM, name, dt, shape, trainable, loc);
}

IrId ir_full(IrGraph *g, double value, IrDType dt, IrShape shape, Loc loc) {
    if (!ir_shape_ok(g, &shape, loc, "full")) return IR_NONE;
    if (dt < 0 || dt >= IR_DTYPE_COUNT) dt = g->float_dtype;
    if (!isfinite(value) && !ir_dtype_is_float(dt)) {
        ir_report(g, loc, "a non-finite constant cannot be %s", ir_dtype_name(dt));
        return IR_NONE;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.value = value;
    a.shape = shape;
    return ir_append(g, IR_FULL, dt, shape, NULL, 0, &a, loc);
}

IrId ir_scalar(IrGraph *g, double value, Loc loc) {
    return ir_full(g, value, g->float_dtype, ir_shape0(), loc);
}

IrId ir_zeros_like(IrGraph *g, IrId x, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    return ir_full(g, 0.0, ir_nd(g, x)->dtype, ir_nd(g, x)->shape, loc);
}

IrId ir_arange(IrGraph *g, IrDim n, Loc loc) {
    IrShape s = ir_shape1(n);
    if (!ir_shape_ok(g, &s, loc, "arange")) return IR_NONE;
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.shape = s;
    return ir_append(g, IR_ARANGE, IR_I32, s, NULL, 0, &a, loc);
}

// ---------------------------------------------------------------------------------------------
// builders: elementwise

IrId ir_unary_node(IrGraph *g, IrOp op, IrId x, const IrAttrs *a, Loc loc) {
    return ir_append(g, op, ir_nd(g, x)->dtype, ir_nd(g, x)->shape, &x, 1, a, loc);
}

IrId ir_unary(IrGraph *g, IrOp op, IrId x, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    if (!((op >= IR_NEG && op <= IR_SOFTPLUS && op != IR_POW) || op == IR_STOP_GRAD)) {
        ir_report(g, loc, "internal: %s is not a unary op", ir_op_name(op));
        return IR_NONE;
    }
    IrDType dt = ir_nd(g, x)->dtype;
    bool int_ok = op == IR_NEG || op == IR_ABS || op == IR_RELU || op == IR_SQUARE ||
                  op == IR_STOP_GRAD;
    if (!ir_dtype_is_float(dt) && !(int_ok && dt == IR_I32)) {
        ir_report(g, loc, "%s needs a floating-point tensor, not %s", ir_op_name(op), ir_dtype_name(dt));
        return IR_NONE;
    }
    return ir_unary_node(g, op, x, NULL, loc);
}

IrId ir_pow(IrGraph *g, IrId x, double exponent, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    if (!ir_dtype_is_float(ir_nd(g, x)->dtype) || !isfinite(exponent)) {
        ir_report(g, loc, "pow needs a floating-point tensor and a finite exponent");
        return IR_NONE;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.value = exponent;
    return ir_unary_node(g, IR_POW, x, &a, loc);
}

IrId ir_cast(IrGraph *g, IrId x, IrDType dt, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    if (dt < 0 || dt >= IR_DTYPE_COUNT || dt == IR_U8 || ir_nd(g, x)->dtype == IR_U8) {
        ir_report(g, loc, "cannot cast %s to %s", ir_dtype_name(ir_nd(g, x)->dtype), ir_dtype_name(dt));
        return IR_NONE;
    }
    if (ir_nd(g, x)->dtype == dt) return x;
    return ir_append(g, IR_CAST, dt, ir_nd(g, x)->shape, &x, 1, NULL, loc);
}

IrId ir_stop_gradient(IrGraph *g, IrId x, Loc loc) { return ir_unary(g, IR_STOP_GRAD, x, loc); }

IrId ir_dropout(IrGraph *g, IrId x, double p, uint64_t seed, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    if (!(p >= 0.0 && p < 1.0)) {
        ir_report(g, loc, "dropout probability must be in [0, 1), got %g", p);
        return IR_NONE;
    }
    if (!ir_dtype_is_float(ir_nd(g, x)->dtype)) {
        ir_report(g, loc, "dropout needs a floating-point tensor");
        return IR_NONE;
    }
    if (p == 0.0) return x;
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.value = p;
    a.seed = seed;
    a.salt = g->next_salt++;
    return ir_unary_node(g, IR_DROPOUT, x, &a, loc);
}

static int float_rank(IrDType t) {
    switch (t) {
    case IR_F64: return 4;
    case IR_F32: return 3;
    case IR_BF16: case IR_F16: return 2;
    default: return 0;
    }
}

static bool is_const_scalar(const IrGraph *g, IrId x) {
    return ir_nd(g, x)->op == IR_FULL && ir_nd(g, x)->shape.rank == 0;
}

// The common dtype of two operands; rank-0 constants adopt the other operand's dtype (re-created).
static bool unify(IrGraph *g, IrId *a, IrId *b, IrDType *out, const char *what, Loc loc) {
    IrDType ta = ir_nd(g, *a)->dtype, tb = ir_nd(g, *b)->dtype;
    if (ta == tb) { *out = ta; return true; }
    if (is_const_scalar(g, *a) && !is_const_scalar(g, *b)) {
        *a = ir_full(g, ir_nd(g, *a)->a.value, tb, ir_shape0(), ir_nd(g, *a)->loc);
        *out = tb;
        return *a != IR_NONE;
    }
    if (is_const_scalar(g, *b)) {
        *b = ir_full(g, ir_nd(g, *b)->a.value, ta, ir_shape0(), ir_nd(g, *b)->loc);
        *out = ta;
        return *b != IR_NONE;
    }
    if (ir_dtype_is_float(ta) && ir_dtype_is_float(tb)) {
        int ra = float_rank(ta), rb = float_rank(tb);
        *out = ra > rb ? ta : rb > ra ? tb : IR_F32;   // bf16 with f16 → f32
        IrId *lo = ra < rb ? a : b;
        if (ra == rb) {
            *a = ir_cast(g, *a, IR_F32, loc);
            *b = ir_cast(g, *b, IR_F32, loc);
            return *a != IR_NONE && *b != IR_NONE;
        }
        *lo = ir_cast(g, *lo, *out, loc);
        return *lo != IR_NONE;
    }
    ir_report(g, loc, "%s: operand dtypes differ (%s and %s)", what, ir_dtype_name(ta), ir_dtype_name(tb));
    if (g->diag) diag_hint(g->diag, "use cast(x, ...) to convert one of them");
    return false;
}

IrId ir_binary(IrGraph *g, IrOp op, IrId a, IrId b, Loc loc) {
    if (!ir_valid(g, a) || !ir_valid(g, b)) return IR_NONE;
    if (!(op >= IR_ADD && op <= IR_GE)) {
        ir_report(g, loc, "internal: %s is not a binary op", ir_op_name(op));
        return IR_NONE;
    }
    IrDType dt;
    if (!unify(g, &a, &b, &dt, ir_op_name(op), loc)) return IR_NONE;
    if (!ir_dtype_is_float(dt) && dt != IR_I32) {
        ir_report(g, loc, "%s: unsupported dtype %s", ir_op_name(op), ir_dtype_name(dt));
        return IR_NONE;
    }
    IrShape s;
    if (!ir_broadcast_shapes(&ir_nd(g, a)->shape, &ir_nd(g, b)->shape, &s)) {
        ir_report(g, loc, "shapes %s and %s cannot be broadcast together in %s", ir_shp(g, a), ir_shp(g, b),
               ir_op_name(op));
        return IR_NONE;
    }
    if (!ir_const_numel_ok(&s)) {
        ir_report(g, loc, "%s: result shape %s is too large", ir_op_name(op), ir_shs(&s));
        return IR_NONE;
    }
    bool cmp = op >= IR_EQ && op <= IR_GE;
    if (cmp && !ir_dtype_is_float(dt)) dt = g->float_dtype;
    IrId in[2] = {a, b};
    return ir_append(g, op, dt, s, in, 2, NULL, loc);
}

IrId ir_add(IrGraph *g, IrId a, IrId b, Loc loc) { return ir_binary(g, IR_ADD, a, b, loc); }
IrId ir_sub(IrGraph *g, IrId a, IrId b, Loc loc) { return ir_binary(g, IR_SUB, a, b, loc); }
IrId ir_mul(IrGraph *g, IrId a, IrId b, Loc loc) { return ir_binary(g, IR_MUL, a, b, loc); }
IrId ir_div(IrGraph *g, IrId a, IrId b, Loc loc) { return ir_binary(g, IR_DIV, a, b, loc); }

IrId ir_where(IrGraph *g, IrId mask, IrId a, IrId b, Loc loc) {
    if (!ir_valid(g, mask) || !ir_valid(g, a) || !ir_valid(g, b)) return IR_NONE;
    IrDType dt;
    if (!unify(g, &a, &b, &dt, "where", loc)) return IR_NONE;
    if (ir_nd(g, mask)->dtype == IR_U8) {
        ir_report(g, loc, "where: the mask cannot be u8");
        return IR_NONE;
    }
    IrShape s, s2;
    if (!ir_broadcast_shapes(&ir_nd(g, a)->shape, &ir_nd(g, b)->shape, &s) ||
        !ir_broadcast_shapes(&ir_nd(g, mask)->shape, &s, &s2)) {
        ir_report(g, loc, "where: shapes %s, %s and %s cannot be broadcast together", ir_shp(g, mask),
               ir_shp(g, a), ir_shp(g, b));
        return IR_NONE;
    }
    if (!ir_const_numel_ok(&s2)) {
        ir_report(g, loc, "where: result shape %s is too large", ir_shs(&s2));
        return IR_NONE;
    }
    IrId in[3] = {mask, a, b};
    return ir_append(g, IR_WHERE, dt, s2, in, 3, NULL, loc);
}

// ---------------------------------------------------------------------------------------------
// builders: reductions and broadcasting

bool ir_norm_axis(IrGraph *g, int axis, int rank, int *out, const char *what, Loc loc) {
    int a = axis < 0 ? axis + rank : axis;
    if (a < 0 || a >= rank) {
        ir_report(g, loc, "%s: axis %d is out of range for a tensor of rank %d", what, axis, rank);
        return false;
    }
    *out = a;
    return true;
}

IrId ir_reduce_axes(IrGraph *g, IrOp op, IrId x, uint32_t axes, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    if (op != IR_SUM && op != IR_MEAN && op != IR_MAX) {
        ir_report(g, loc, "internal: %s is not a reduction", ir_op_name(op));
        return IR_NONE;
    }
    const IrNode *n = ir_nd(g, x);
    if (!ir_dtype_is_float(n->dtype)) {
        ir_report(g, loc, "%s needs a floating-point tensor, not %s", ir_op_name(op),
               ir_dtype_name(n->dtype));
        return IR_NONE;
    }
    if (n->shape.rank < 32 && (axes >> n->shape.rank)) {
        ir_report(g, loc, "%s: axis out of range for a tensor of rank %d", ir_op_name(op), n->shape.rank);
        return IR_NONE;
    }
    IrShape s = n->shape;
    for (int i = 0; i < s.rank; i++)
        if (axes & (1u << i)) {
            if (op == IR_MAX && s.d[i].coef == 0) {
                ir_report(g, loc, "max over an empty axis");
                return IR_NONE;
            }
            s.d[i] = ir_dim(1);
        }
    if (axes == 0) return x;
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.axes = axes;
    return ir_append(g, op, n->dtype, s, &x, 1, &a, loc);
}

IrId ir_reduce(IrGraph *g, IrOp op, IrId x, int axis, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    int ax;
    if (!ir_norm_axis(g, axis, ir_nd(g, x)->shape.rank, &ax, ir_op_name(op), loc)) return IR_NONE;
    return ir_reduce_axes(g, op, x, 1u << ax, loc);
}

IrId ir_reduce_all(IrGraph *g, IrOp op, IrId x, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    int r = ir_nd(g, x)->shape.rank;
    return ir_reduce_axes(g, op, x, r ? (uint32_t)((1u << r) - 1) : 0, loc);
}

IrId ir_sum_to(IrGraph *g, IrId x, IrShape shape, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    const IrNode *n = ir_nd(g, x);
    IrShape b;
    if (!ir_shape_ok(g, &shape, loc, "sum_to")) return IR_NONE;
    if (!ir_dtype_is_float(n->dtype)) {
        ir_report(g, loc, "sum_to needs a floating-point tensor, not %s", ir_dtype_name(n->dtype));
        return IR_NONE;
    }
    if (!ir_broadcast_shapes(&shape, &n->shape, &b) || !ir_shape_eq(&b, &n->shape)) {
        ir_report(g, loc, "sum_to: %s does not broadcast to %s", ir_shs(&shape), ir_shp(g, x));
        return IR_NONE;
    }
    if (ir_shape_eq(&shape, &n->shape)) return x;
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.shape = shape;
    return ir_append(g, IR_SUM_TO, n->dtype, shape, &x, 1, &a, loc);
}

IrId ir_broadcast_to(IrGraph *g, IrId x, IrShape shape, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    const IrNode *n = ir_nd(g, x);
    IrShape b;
    if (!ir_shape_ok(g, &shape, loc, "broadcast")) return IR_NONE;
    if (!ir_broadcast_shapes(&n->shape, &shape, &b) || !ir_shape_eq(&b, &shape)) {
        ir_report(g, loc, "cannot broadcast %s to %s", ir_shp(g, x), ir_shs(&shape));
        return IR_NONE;
    }
    if (ir_shape_eq(&shape, &n->shape)) return x;
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.shape = shape;
    return ir_append(g, IR_BROADCAST, n->dtype, shape, &x, 1, &a, loc);
}

// ---------------------------------------------------------------------------------------------
// builders: matmul, linear

IrId ir_matmul(IrGraph *g, IrId a, IrId b, bool trans_a, bool trans_b, Loc loc) {
    return ir_matmul_to(g, a, b, trans_a, trans_b, IR_DTYPE_COUNT, loc);
}

// ir_matmul_to, and with c != IR_NONE ir_matmul_acc: the addend c must be f32 of exactly the
// result's shape or a bias (ir.h), the result f32.
static IrId matmul_build(IrGraph *g, IrId a, IrId b, bool trans_a, bool trans_b, IrDType out, IrId c, double alpha,
                         Loc loc) {
    if (!ir_valid(g, a) || !ir_valid(g, b)) return IR_NONE;
    IrDType dt;
    if (!unify(g, &a, &b, &dt, "matmul", loc)) return IR_NONE;
    if (!ir_dtype_is_float(dt)) {
        ir_report(g, loc, "matmul needs floating-point tensors, not %s", ir_dtype_name(dt));
        return IR_NONE;
    }
    const IrShape *sa = &ir_nd(g, a)->shape, *sb = &ir_nd(g, b)->shape;
    if (sa->rank < 2 || sb->rank < 2) {
        ir_report(g, loc, "matmul needs tensors of rank >= 2, got %s and %s", ir_shp(g, a), ir_shp(g, b));
        return IR_NONE;
    }
    IrDim m = sa->d[sa->rank - (trans_a ? 1 : 2)], ka = sa->d[sa->rank - (trans_a ? 2 : 1)];
    IrDim kb = sb->d[sb->rank - (trans_b ? 1 : 2)], nn = sb->d[sb->rank - (trans_b ? 2 : 1)];
    if (!ir_dim_eq(ka, kb)) {
        ir_report(g, loc, "shape mismatch in matmul: %s%s @ %s%s (inner dimensions differ)", ir_shp(g, a),
               trans_a ? "ᵀ" : "", ir_shp(g, b), trans_b ? "ᵀ" : "");
        return IR_NONE;
    }
    IrShape ba = *sa, bb = *sb, bs;
    ba.rank -= 2;
    bb.rank -= 2;
    if (!ir_broadcast_shapes(&ba, &bb, &bs)) {
        ir_report(g, loc, "matmul: batch dimensions of %s and %s cannot be broadcast", ir_shp(g, a),
               ir_shp(g, b));
        return IR_NONE;
    }
    if (bs.rank + 2 > IR_MAX_RANK) {
        ir_report(g, loc, "matmul: result rank too large");
        return IR_NONE;
    }
    bs.d[bs.rank++] = m;
    bs.d[bs.rank++] = nn;
    if (!ir_const_numel_ok(&bs)) {
        ir_report(g, loc, "matmul: result shape %s is too large", ir_shs(&bs));
        return IR_NONE;
    }
    IrAttrs at;
    memset(&at, 0, sizeof at);
    at.trans_a = trans_a;
    at.trans_b = trans_b;
    if (out != IR_DTYPE_COUNT && out != dt) {
        if (out != IR_F32 || (dt != IR_BF16 && dt != IR_F16)) {
            ir_report(g, loc, "matmul: a %s result of %s operands (only f32 over bf16 or f16)", ir_dtype_name(out),
                      ir_dtype_name(dt));
            return IR_NONE;
        }
        dt = out;
    }
    if (c != IR_NONE) {
        // f32 result and addend, or bf16 ones (a bf16 linear output: a full addend or a bias)
        const IrShape *sc = &ir_nd(g, c)->shape;
        bool lowp = dt == IR_BF16 && ir_nd(g, c)->dtype == IR_BF16;
        if ((dt != IR_F32 || ir_nd(g, c)->dtype != IR_F32) && !lowp) {
            ir_report(g, loc, "matmul: an accumulating product needs an f32 result and addend (or bf16 ones), "
                      "not %s and %s", ir_dtype_name(dt), ir_dtype_name(ir_nd(g, c)->dtype));
            return IR_NONE;
        }
        // the result's shape, or a bias: (N) or (1, ..., 1, N), rank <= the result's
        if (!ir_bias_shape(sc, &bs) && !ir_shape_eq(sc, &bs)) {
            ir_report(g, loc, "matmul: the addend %s is neither the result's shape %s nor a bias (a vector of its "
                      "last dimension)", ir_shp(g, c), ir_shs(&bs));
            return IR_NONE;
        }
        if (!isfinite(alpha)) {
            ir_report(g, loc, "matmul: the product's scale is not finite");
            return IR_NONE;
        }
        at.scale = alpha;
    }
    IrId in[3] = {a, b, c};
    return ir_append(g, IR_MATMUL, dt, bs, in, c != IR_NONE ? 3 : 2, &at, loc);
}

IrId ir_matmul_to(IrGraph *g, IrId a, IrId b, bool trans_a, bool trans_b, IrDType out, Loc loc) {
    return matmul_build(g, a, b, trans_a, trans_b, out, IR_NONE, 1.0, loc);
}

IrId ir_matmul_acc(IrGraph *g, IrId a, IrId b, bool trans_a, bool trans_b, IrDType out, IrId c, double alpha,
                   Loc loc) {
    if (!ir_valid(g, c)) return IR_NONE;
    return matmul_build(g, a, b, trans_a, trans_b, out, c, alpha, loc);
}

IrId ir_linear(IrGraph *g, IrId x, IrId w, Loc loc) {
    if (!ir_valid(g, x) || !ir_valid(g, w)) return IR_NONE;
    const IrShape *sx = &ir_nd(g, x)->shape, *sw = &ir_nd(g, w)->shape;
    if (sw->rank != 2) {
        ir_report(g, loc, "linear: the weight must have rank 2 [out, in], got %s", ir_shp(g, w));
        return IR_NONE;
    }
    if (sx->rank < 1 || !ir_dim_eq(sx->d[sx->rank - 1], sw->d[1])) {
        char k[48];
        if (sx->rank >= 1) dim_str(sx->d[sx->rank - 1], k, sizeof k);
        else snprintf(k, sizeof k, "none");
        ir_report(g, loc, "shape mismatch in linear: input %s has %s features, weight %s [out, in] expects "
               "%" PRId64, ir_shp(g, x), k, ir_shp(g, w), sw->d[1].coef);
        return IR_NONE;
    }
    if (sx->rank == 1) {
        IrId x2 = ir_reshape(g, x, ir_shape2(ir_dim(1), sx->d[0]), loc);
        IrId y = ir_matmul(g, x2, w, false, true, loc);
        return ir_reshape(g, y, ir_shape1(sw->d[0]), loc);
    }
    return ir_matmul(g, x, w, false, true, loc);
}

IrId ir_linear_bias(IrGraph *g, IrId x, IrId w, IrId b, Loc loc) {
    IrId y = ir_linear(g, x, w, loc);
    if (y == IR_NONE || !ir_valid(g, b)) return IR_NONE;
    const IrShape *sb = &ir_nd(g, b)->shape, *sw = &ir_nd(g, w)->shape;
    if (sb->rank != 1 || !ir_dim_eq(sb->d[0], sw->d[0])) {
        ir_report(g, loc, "linear: bias shape %s does not match the weight's %s outputs", ir_shp(g, b),
               ir_shp(g, w));
        return IR_NONE;
    }
    return ir_add(g, y, b, loc);
}

// ---------------------------------------------------------------------------------------------
// builders: layout

IrId ir_reshape(IrGraph *g, IrId x, IrShape shape, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    if (shape.rank < 0 || shape.rank > IR_MAX_RANK) {
        ir_report(g, loc, "reshape: rank %d is out of range", shape.rank);
        return IR_NONE;
    }
    const IrNode *n = ir_nd(g, x);
    IrDim src, known = ir_dim(1);
    if (!ir_shape_numel_dim(&n->shape, &src)) {
        ir_report(g, loc, "reshape: %s repeats a dynamic dimension, so its element count is not a "
               "product of B and T; it cannot be reshaped", ir_shp(g, x));
        return IR_NONE;
    }
    int infer = -1;
    for (int i = 0; i < shape.rank; i++) {
        if (shape.d[i].coef == -1 && shape.d[i].syms == 0) {
            if (infer >= 0) {
                ir_report(g, loc, "reshape: only one dimension can be -1");
                return IR_NONE;
            }
            infer = i;
            continue;
        }
        if (shape.d[i].coef < 0 || (shape.d[i].syms >> IR_NSYMS) ||
            !dim_mul(known, shape.d[i], &known)) {
            ir_report(g, loc, "reshape: invalid target shape %s", ir_shs(&shape));
            return IR_NONE;
        }
    }
    if (infer >= 0) {
        bool ok = known.coef != 0 && (known.syms & ~src.syms) == 0 && src.coef % known.coef == 0;
        if (!ok) {
            ir_report(g, loc, "reshape: cannot infer the -1 dimension of %s from %s", ir_shs(&shape),
                   ir_shp(g, x));
            return IR_NONE;
        }
        shape.d[infer].coef = src.coef / known.coef;
        shape.d[infer].syms = (uint8_t)(src.syms & ~known.syms);
        known = src;
    }
    if (!ir_dim_eq(known, src)) {
        ir_report(g, loc, "reshape: %s and %s have different element counts", ir_shp(g, x), ir_shs(&shape));
        return IR_NONE;
    }
    if (ir_shape_eq(&shape, &n->shape)) return x;
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.shape = shape;
    return ir_append(g, IR_RESHAPE, n->dtype, shape, &x, 1, &a, loc);
}

IrId ir_permute(IrGraph *g, IrId x, const int *perm, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    const IrNode *n = ir_nd(g, x);
    int r = n->shape.rank;
    bool seen[IR_MAX_RANK] = {false};
    IrAttrs a;
    memset(&a, 0, sizeof a);
    IrShape s = n->shape;
    bool ident = true;
    for (int i = 0; i < r; i++) {
        int p = perm[i] < 0 ? perm[i] + r : perm[i];
        if (p < 0 || p >= r || seen[p]) {
            ir_report(g, loc, "permute: not a permutation of the %d axes of %s", r, ir_shp(g, x));
            return IR_NONE;
        }
        seen[p] = true;
        a.perm[i] = p;
        s.d[i] = n->shape.d[p];
        ident = ident && p == i;
    }
    if (ident) return x;
    return ir_append(g, IR_PERMUTE, n->dtype, s, &x, 1, &a, loc);
}

IrId ir_transpose(IrGraph *g, IrId x, int axis0, int axis1, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    int r = ir_nd(g, x)->shape.rank, a0, a1;
    if (!ir_norm_axis(g, axis0, r, &a0, "transpose", loc) || !ir_norm_axis(g, axis1, r, &a1, "transpose", loc))
        return IR_NONE;
    int perm[IR_MAX_RANK];
    for (int i = 0; i < r; i++) perm[i] = i;
    perm[a0] = a1;
    perm[a1] = a0;
    return ir_permute(g, x, perm, loc);
}

// a + b when both are multiples of the same symbols (or zero); false otherwise.
static bool dim_add(IrDim a, IrDim b, IrDim *out) {
    if (a.coef == 0) { *out = b; return true; }
    if (b.coef == 0) { *out = a; return true; }
    if (a.syms != b.syms || a.coef > INT64_MAX - b.coef) return false;
    out->coef = a.coef + b.coef;
    out->syms = a.syms;
    return true;
}

// a <= b provably (same symbols, or a zero).
static bool dim_le(IrDim a, IrDim b) {
    if (a.coef == 0) return true;
    return a.syms == b.syms && a.coef <= b.coef;
}

IrId ir_concat(IrGraph *g, const IrId *xs, int n, int axis, Loc loc) {
    if (n < 1) {
        ir_report(g, loc, "concat of no tensors");
        return IR_NONE;
    }
    for (int i = 0; i < n; i++)
        if (!ir_valid(g, xs[i])) return IR_NONE;
    if (n == 1) return xs[0];
    const IrNode *n0 = ir_nd(g, xs[0]);
    int ax;
    if (!ir_norm_axis(g, axis, n0->shape.rank, &ax, "concat", loc)) return IR_NONE;
    IrShape s = n0->shape;
    for (int i = 1; i < n; i++) {
        const IrNode *ni = ir_nd(g, xs[i]);
        bool ok = ni->dtype == n0->dtype && ni->shape.rank == s.rank;
        for (int d = 0; ok && d < s.rank; d++)
            if (d != ax && !ir_dim_eq(ni->shape.d[d], s.d[d])) ok = false;
        if (!ok) {
            ir_report(g, loc, "concat: %s %s and %s %s differ outside axis %d", ir_dtype_name(n0->dtype),
                   ir_shp(g, xs[0]), ir_dtype_name(ni->dtype), ir_shp(g, xs[i]), axis);
            return IR_NONE;
        }
        if (!dim_add(s.d[ax], ni->shape.d[ax], &s.d[ax])) {
            ir_report(g, loc, "concat: cannot add dimensions of %s and %s along axis %d", ir_shp(g, xs[0]),
                   ir_shp(g, xs[i]), axis);
            return IR_NONE;
        }
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.axis = ax;
    return ir_append(g, IR_CONCAT, n0->dtype, s, xs, n, &a, loc);
}

IrId ir_slice_dim(IrGraph *g, IrId x, int axis, IrDim start, IrDim len, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    const IrNode *n = ir_nd(g, x);
    int ax;
    if (!ir_norm_axis(g, axis, n->shape.rank, &ax, "slice", loc)) return IR_NONE;
    IrDim end;
    if (start.coef < 0 || len.coef <= 0 || !dim_add(start, len, &end) || !dim_le(end, n->shape.d[ax])) {
        char a[48], b[48];
        dim_str(start, a, sizeof a);
        dim_str(len, b, sizeof b);
        ir_report(g, loc, "slice: [%s, %s + %s) is not a non-empty range inside axis %d of %s", a, a, b,
               axis, ir_shp(g, x));
        return IR_NONE;
    }
    if (start.coef == 0 && ir_dim_eq(len, n->shape.d[ax])) return x;
    IrShape s = n->shape;
    s.d[ax] = len;
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.axis = ax;
    a.off = start.coef == 0 ? ir_dim(0) : start;
    return ir_append(g, IR_SLICE, n->dtype, s, &x, 1, &a, loc);
}

IrId ir_slice(IrGraph *g, IrId x, int axis, int64_t start, int64_t end, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    const IrNode *n = ir_nd(g, x);
    int ax;
    if (!ir_norm_axis(g, axis, n->shape.rank, &ax, "slice", loc)) return IR_NONE;
    IrDim d = n->shape.d[ax];
    if (d.syms) {
        ir_report(g, loc, "slice: axis %d of %s is dynamic; slice only constant dimensions", axis,
               ir_shp(g, x));
        if (g->diag) diag_hint(g->diag, "shift labels in the data instead of slicing the sequence axis");
        return IR_NONE;
    }
    int64_t len = d.coef;
    if (start < 0) start += len;
    if (end < 0) end += len;
    if (start < 0) start = 0;
    if (end > len) end = len;
    if (start >= end) {
        ir_report(g, loc, "slice: the range is empty for axis %d of %s", axis, ir_shp(g, x));
        return IR_NONE;
    }
    return ir_slice_dim(g, x, ax, ir_dim(start), ir_dim(end - start), loc);
}

IrId ir_pad(IrGraph *g, IrId x, int axis, IrDim off, IrShape shape, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    const IrNode *n = ir_nd(g, x);
    bool ok = shape.rank == n->shape.rank && axis >= 0 && axis < shape.rank;
    for (int d = 0; ok && d < shape.rank; d++)
        if (d != axis && !ir_dim_eq(shape.d[d], n->shape.d[d])) ok = false;
    IrDim end;
    if (ok) ok = dim_add(off, n->shape.d[axis], &end) && dim_le(end, shape.d[axis]);
    if (!ok) {
        ir_report(g, loc, "pad: %s does not fit into %s along axis %d", ir_shp(g, x), ir_shs(&shape), axis);
        return IR_NONE;
    }
    if (ir_shape_eq(&shape, &n->shape)) return x;
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.axis = axis;
    a.off = off;
    a.shape = shape;
    return ir_append(g, IR_PAD, n->dtype, shape, &x, 1, &a, loc);
}

// ---------------------------------------------------------------------------------------------
// passes

static uint64_t hash_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

// Copies with every padding byte zero, so that equal values compare and hash equal bytewise.
static void canon_shape(const IrShape *s, IrShape *c) {
    memset(c, 0, sizeof *c);
    c->rank = s->rank;
    for (int i = 0; i < s->rank && i < IR_MAX_RANK; i++) {
        c->d[i].coef = s->d[i].coef;
        c->d[i].syms = s->d[i].syms;
    }
}

static void canon_attrs(const IrAttrs *a, IrAttrs *c) {
    memset(c, 0, sizeof *c);
    c->value = a->value;
    c->scale = a->scale;
    c->axes = a->axes;
    c->axis = a->axis;
    c->off.coef = a->off.coef;
    c->off.syms = a->off.syms;
    c->ignore_index = a->ignore_index;
    memcpy(c->perm, a->perm, sizeof c->perm);
    c->trans_a = a->trans_a;
    c->trans_b = a->trans_b;
    c->causal = a->causal;
    c->segmented = a->segmented;
    c->inverse = a->inverse;
    c->seed = a->seed;
    c->salt = a->salt;
    c->rope.theta = a->rope.theta;
    c->rope.factor = a->rope.factor;
    c->rope.low_freq_factor = a->rope.low_freq_factor;
    c->rope.high_freq_factor = a->rope.high_freq_factor;
    c->rope.original_max_pos = a->rope.original_max_pos;
    canon_shape(&a->shape, &c->shape);
    c->block = a->block;
}

// Same computation: op, dtype, shape, inputs and attributes.
static bool same_node(const IrNode *a, const IrNode *b) {
    if (a->op != b->op || a->dtype != b->dtype || a->nin != b->nin || a->name || b->name ||
        !ir_shape_eq(&a->shape, &b->shape))
        return false;
    for (int k = 0; k < a->nin; k++)
        if (a->in[k] != b->in[k]) return false;
    IrAttrs ca, cb;
    canon_attrs(&a->a, &ca);
    canon_attrs(&b->a, &cb);
    return memcmp(&ca, &cb, sizeof ca) == 0;
}

int ir_cse(IrGraph *g) {
    if (g->n == 0) return 0;
    size_t cap = 16;
    while (cap < (size_t)g->n * 2) cap *= 2;
    IrId *table = malloc(cap * sizeof *table);
    IrId *map = malloc((size_t)g->n * sizeof *map);
    if (!table || !map) {
        free(table);
        free(map);
        return 0;
    }
    for (size_t i = 0; i < cap; i++) table[i] = IR_NONE;
    int merged = 0;
    for (int i = 0; i < g->n; i++) {
        IrNode *n = &g->nodes[i];
        map[i] = i;
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] >= 0 && n->in[k] < i) n->in[k] = map[n->in[k]];
        if (ir_is_leaf(n) || n->name) continue;
        IrShape cs;
        IrAttrs ca;
        canon_shape(&n->shape, &cs);
        canon_attrs(&n->a, &ca);
        uint64_t h = 0xcbf29ce484222325ull;
        h = hash_bytes(h, &n->op, sizeof n->op);
        h = hash_bytes(h, &n->dtype, sizeof n->dtype);
        h = hash_bytes(h, &cs, sizeof cs);
        h = hash_bytes(h, n->in, (size_t)n->nin * sizeof *n->in);
        h = hash_bytes(h, &ca, sizeof ca);
        size_t slot = (size_t)h & (cap - 1);
        while (table[slot] != IR_NONE && !same_node(&g->nodes[table[slot]], n)) slot = (slot + 1) & (cap - 1);
        if (table[slot] == IR_NONE) table[slot] = i;
        else {
            map[i] = table[slot];
            merged++;
        }
    }
    for (int i = 0; i < g->nouts; i++)
        if (ir_valid(g, g->outs[i].id)) g->outs[i].id = map[g->outs[i].id];
    if (ir_valid(g, g->loss)) g->loss = map[g->loss];
    free(table);
    free(map);
    return merged;
}

int ir_dce(IrGraph *g) {
    if (g->n == 0) return 0;
    bool *live = calloc((size_t)g->n, sizeof *live);
    IrId *map = malloc((size_t)g->n * sizeof *map);
    if (!live || !map) {
        free(live);
        free(map);
        return 0;
    }
    for (int i = 0; i < g->nouts; i++)
        if (ir_valid(g, g->outs[i].id)) live[g->outs[i].id] = true;
    if (ir_valid(g, g->loss)) live[g->loss] = true;
    for (int i = 0; i < g->n; i++)
        if (ir_is_leaf(&g->nodes[i])) live[i] = true;
    for (int i = g->n - 1; i >= 0; i--) {
        if (!live[i]) continue;
        for (int k = 0; k < g->nodes[i].nin; k++) {
            IrId in = g->nodes[i].in[k];
            if (in >= 0 && in < i) live[in] = true;
        }
    }
    int m = 0;
    for (int i = 0; i < g->n; i++) {
        if (!live[i]) {
            map[i] = IR_NONE;
            continue;
        }
        map[i] = m;
        IrNode nd = g->nodes[i];
        for (int k = 0; k < nd.nin; k++) nd.in[k] = map[nd.in[k]];
        g->nodes[m++] = nd;
    }
    int removed = g->n - m;
    for (int i = 0; i < g->nouts; i++) {
        g->outs[i].id = ir_valid(g, g->outs[i].id) ? map[g->outs[i].id] : IR_NONE;
        if (g->outs[i].grad_of != IR_NONE && ir_valid(g, g->outs[i].grad_of))
            g->outs[i].grad_of = map[g->outs[i].grad_of];
    }
    if (ir_valid(g, g->loss)) g->loss = map[g->loss];
    if (g->renum) {   // compose: ids of before the first renumbering keep answering
        for (int k = 0; k < g->nrenum; k++)
            if (g->renum[k] >= 0 && g->renum[k] < g->n) g->renum[k] = map[g->renum[k]];
        free(map);
    } else {
        g->renum = map;
        g->nrenum = g->n;
    }
    g->n = m;
    names_reset(g);
    free(live);
    return removed;
}

void ir_install_nodes(IrGraph *g, IrNode *nodes, int m, IrId **map) {
    int n = g->n;
    IrId *mp = *map;
    for (int o = 0; o < g->nouts; o++) {
        if (ir_valid(g, g->outs[o].id)) g->outs[o].id = mp[g->outs[o].id];
        if (ir_valid(g, g->outs[o].grad_of)) g->outs[o].grad_of = mp[g->outs[o].grad_of];
    }
    if (ir_valid(g, g->loss)) g->loss = mp[g->loss];
    if (g->renum) {
        for (int k = 0; k < g->nrenum; k++)
            if (g->renum[k] >= 0 && g->renum[k] < n) g->renum[k] = mp[g->renum[k]];
    } else {
        g->renum = mp;
        g->nrenum = n;
        *map = NULL;
    }
    free(g->nodes);
    IrNode *shrunk = m > 0 ? realloc(nodes, (size_t)m * sizeof *shrunk) : NULL;   // give back the unused tail
    g->nodes = shrunk ? shrunk : nodes;
    g->n = g->cap = m;
    names_reset(g);
}

IrId ir_renumbered(const IrGraph *g, IrId id) {
    if (!g->renum) return id;
    return (id >= 0 && id < g->nrenum) ? g->renum[id] : IR_NONE;
}

bool ir_verify(IrGraph *g) {
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op < 0 || n->op >= IR_OP_COUNT || n->dtype < 0 || n->dtype >= IR_DTYPE_COUNT ||
            n->shape.rank < 0 || n->shape.rank > IR_MAX_RANK) {
            ir_report(g, n->loc, "internal: IR node %%%d is malformed", i);
            return false;
        }
        for (int k = 0; k < n->nin; k++)
            if (n->in[k] < 0 || n->in[k] >= i) {
                ir_report(g, n->loc, "internal: IR node %%%d (%s) uses %%%d out of order", i,
                       ir_op_name(n->op), n->in[k]);
                return false;
            }
    }
    for (int i = 0; i < g->nouts; i++)
        if (!ir_valid(g, g->outs[i].id)) {
            ir_report(g, (Loc){0, 0, 0}, "internal: IR output `%s` has no node", g->outs[i].name);
            return false;
        }
    return true;
}
