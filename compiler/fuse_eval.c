// fuse_eval.c — runs one fused group on the CPU exactly as its generated kernel is structured:
// the same phases (prologue + reductions, epilogue at the reduced shape, post), the same index
// arithmetic (kept/reduced dims, broadcast strides), the same float math and the same stores
// (bf16 outputs rounded, i32 truncated). Tests compare it with the unfused interpreter
// (runtime/cpu) on random inputs, which checks the grouping, the phases and the indexing.
// Not here: the CUDA text (codegen_cuda.c); speed (it is a reference, one element at a time).
#include "fuse.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

// Round to bf16, nearest even (what a bf16 store does on the GPU: __float2bfloat16_rn).
static float round_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return x;   // NaN stays NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    u &= 0xffff0000u;
    float r;
    memcpy(&r, &u, 4);
    return r;
}

static float sigm(float x) {
    if (x >= 0) return 1.0f / (1.0f + expf(-x));
    float z = expf(x);
    return z / (1.0f + z);
}

static uint64_t dropout_bits(uint64_t seed, uint32_t salt, uint64_t step, uint64_t i) {
    uint64_t z = seed * 0x9E3779B97F4A7C15ull ^ ((uint64_t)salt << 32 | (salt >> 0)) ^
                 step * 0xD1B54A32D192ED03ull ^ i * 0xBF58476D1CE4E5B9ull;
    for (int r = 0; r < 2; r++) {
        z += 0x9E3779B97F4A7C15ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
    }
    return z >> 11;
}

typedef struct Ev {
    const FusePlan *p;
    const FuseGroup *gr;
    const void *const *ins;
    void *const *outs;
    int r, rr;                          // ranks of D and R
    int64_t dim[IR_MAX_RANK], rdim[IR_MAX_RANK];
    int64_t sR[FUSE_MAX_ARGS][IR_MAX_RANK];
    int64_t (*sS)[FUSE_MAX_ARGS][IR_MAX_RANK];   // per space (0: D), input: broadcast strides
    int64_t sdim[FUSE_MAX_SPACES][IR_MAX_RANK];  // the spaces' dims (space 0: dim)
    int64_t idx[IR_MAX_RANK], ridx[IR_MAX_RANK];
    int64_t sidx[FUSE_MAX_SPACES][IR_MAX_RANK];  // lin's coordinates in spaces 1..
    int64_t lin, rlin;                  // linear index in D, in R
    uint64_t step;
    const int64_t *sym;
    float *val;                         // per member: its current value
} Ev;

// Broadcast strides of shape x against target (right-aligned), 0 along broadcast dims;
// false when x has more dims than target.
static bool bstrides(const IrShape *x, const int64_t *sym, int trank, int64_t *s) {
    if (x->rank > trank) return false;
    int64_t stv = 1;
    for (int i = trank - 1; i >= 0; i--) {
        int ix = i - (trank - x->rank);
        if (ix < 0) {
            s[i] = 0;
            continue;
        }
        int64_t dimv = ir_dim_value(x->d[ix], sym);
        s[i] = dimv == 1 ? 0 : stv;
        stv *= dimv;
    }
    return true;
}

// Input k at the current index: over R, or over space sp (D: its coordinates idx; a view of
// D's elements: the linear index's coordinates there).
static float load_in(const Ev *e, int k, bool reduced, int sp) {
    const IrNode *x = &e->p->g->nodes[e->gr->ins[k]];
    int64_t off = 0;
    if (reduced) for (int i = 0; i < e->rr; i++) off += e->ridx[i] * e->sR[k][i];
    else if (sp == 0) for (int i = 0; i < e->r; i++) off += e->idx[i] * e->sS[0][k][i];
    else for (int i = 0; i < e->gr->spaces[sp].rank; i++) off += e->sidx[sp][i] * e->sS[sp][k][i];
    if (x->dtype == IR_I32) return (float)((const int32_t *)e->ins[k])[off];
    return ((const float *)e->ins[k])[off];
}

// A permute member: its (memory) input at the permuted index — out dim i is input dim perm[i].
static float load_permuted(const Ev *e, int m) {
    const IrNode *n = &e->p->g->nodes[e->gr->nodes[m]];
    IrId x = n->in[0];
    const IrNode *xn = &e->p->g->nodes[x];
    int k = 0;
    while (k < e->gr->nins && e->gr->ins[k] != x) k++;
    if (k == e->gr->nins) return NAN;
    int64_t stride[IR_MAX_RANK], stv = 1, off = 0;
    for (int i = xn->shape.rank - 1; i >= 0; i--) {
        stride[i] = stv;
        stv *= ir_dim_value(xn->shape.d[i], e->sym);
    }
    for (int i = 0; i < e->r; i++) off += e->idx[i] * stride[n->a.perm[i]];
    if (xn->dtype == IR_I32) return (float)((const int32_t *)e->ins[k])[off];
    return ((const float *)e->ins[k])[off];
}

static float arg(const Ev *e, int m, int a, bool reduced) {
    const IrGraph *g = e->p->g;
    IrId x = g->nodes[e->gr->nodes[m]].in[a];
    int gi = (int)(e->gr - e->p->groups);
    IrId mx = fuse_member_src(e->p, gi, x);   // a member, read directly or through reshapes
    if (mx != IR_NONE) {
        for (int k = 0; k < e->gr->nnodes; k++)
            if (e->gr->nodes[k] == mx) return e->val[k];
    }
    if (e->p->level[x] == FUSE_LV_CONST) return (float)g->nodes[x].a.value;
    x = fuse_read_src(e->p, gi, x);   // a widening cast's bf16 source (its values, as floats)
    for (int k = 0; k < e->gr->nins; k++)
        if (e->gr->ins[k] == x) return load_in(e, k, reduced, reduced ? 0 : e->gr->space[m]);
    return NAN;
}

// lin's coordinates in spaces 1.. (the views of D's elements).
static void set_space_idx(Ev *e) {
    for (int j = 1; j < e->gr->nspaces; j++) {
        int64_t i = e->lin;
        for (int k = e->gr->spaces[j].rank - 1; k >= 0; k--) {
            int64_t dv = e->sdim[j][k];
            e->sidx[j][k] = dv ? i % dv : 0;
            i = dv ? i / dv : 0;
        }
    }
}

// The value of member m at the current index (its inputs already computed).
static float compute(Ev *e, int m, bool reduced) {
    const IrNode *n = &e->p->g->nodes[e->gr->nodes[m]];
    // (a permute reads its input itself, at permuted indexes: no broadcast load of it here)
    float x = n->nin > 0 && n->op != IR_PERMUTE ? arg(e, m, 0, reduced) : 0.0f;
    float y = n->nin > 1 ? arg(e, m, 1, reduced) : 0.0f;
    float v;
    switch (n->op) {
    case IR_FULL: v = (float)n->a.value; break;
    case IR_NEG: v = -x; break;
    case IR_EXP: v = expf(x); break;
    case IR_LOG: v = logf(x); break;
    case IR_SQRT: v = sqrtf(x); break;
    case IR_RSQRT: v = 1.0f / sqrtf(x); break;
    case IR_TANH: v = tanhf(x); break;
    case IR_SIGMOID: v = sigm(x); break;
    case IR_SILU: v = x * sigm(x); break;
    case IR_GELU: v = 0.5f * x * (1.0f + tanhf(0.7978845608028654f * (x + 0.044715f * x * x * x))); break;
    case IR_RELU: v = x > 0 ? x : 0.0f; break;
    case IR_ABS: v = fabsf(x); break;
    case IR_SQUARE: v = x * x; break;
    case IR_POW: v = powf(x, (float)n->a.value); break;
    case IR_LOG_SIGMOID: v = (x < 0 ? x : 0.0f) - log1pf(expf(-fabsf(x))); break;
    case IR_SOFTPLUS: v = (x > 0 ? x : 0.0f) + log1pf(expf(-fabsf(x))); break;
    case IR_CAST:
        v = n->dtype == IR_BF16 ? round_bf16(x) : n->dtype == IR_I32 ? truncf(x) : x;
        break;
    case IR_STOP_GRAD: case IR_BROADCAST: v = x; break;
    case IR_PERMUTE: v = load_permuted(e, m); break;
    case IR_DROPOUT: {
        double pp = n->a.value;
        double u = (double)dropout_bits(n->a.seed, n->a.salt, e->step, (uint64_t)(reduced ? e->rlin : e->lin)) *
                   (1.0 / 9007199254740992.0);
        v = u >= pp ? x * (float)(1.0 / (1.0 - pp)) : 0.0f;
        break;
    }
    case IR_ADD: v = x + y; break;
    case IR_SUB: v = x - y; break;
    case IR_MUL: v = x * y; break;
    case IR_DIV: v = x / y; break;
    case IR_MAXIMUM: v = x >= y ? x : y; break;
    case IR_MINIMUM: v = x <= y ? x : y; break;
    case IR_EQ: v = (float)(x == y); break;
    case IR_NE: v = (float)(x != y); break;
    case IR_LT: v = (float)(x < y); break;
    case IR_LE: v = (float)(x <= y); break;
    case IR_GT: v = (float)(x > y); break;
    case IR_GE: v = (float)(x >= y); break;
    case IR_WHERE: v = x != 0 ? y : arg(e, m, 2, reduced); break;
    default: v = NAN; break;
    }
    return v;
}

static void store(const Ev *e, int m, int64_t off) {
    IrId id = e->gr->nodes[m];
    for (int k = 0; k < e->gr->nouts; k++) {
        if (e->gr->outs[k] != id) continue;
        IrDType t = e->p->g->nodes[id].dtype;
        float v = e->val[m];
        if (t == IR_I32) {
            int32_t iv = !(v == v) ? 0 : v >= 2147483647.0f ? INT32_MAX : v <= -2147483648.0f ? INT32_MIN : (int32_t)v;
            ((int32_t *)e->outs[k])[off] = iv;
        } else {
            ((float *)e->outs[k])[off] = t == IR_BF16 ? round_bf16(v) : v;
        }
    }
}

static void set_idx(Ev *e, int64_t i) {
    e->lin = i;
    for (int k = e->r - 1; k >= 0; k--) {
        e->idx[k] = e->dim[k] ? i % e->dim[k] : 0;
        i = e->dim[k] ? i / e->dim[k] : 0;
    }
    set_space_idx(e);
}

int fuse_eval_group(const FusePlan *p, int group, const int64_t *sym, uint64_t step,
                    const void *const *ins, void *const *outs, Diag *d) {
    if (group < 0 || group >= p->ngroups) {
        diag_plain_error(d, "fuse_eval: no group %d", group);
        return -1;
    }
    const FuseGroup *gr = &p->groups[group];
    Ev e;
    memset(&e, 0, sizeof e);
    e.p = p, e.gr = gr, e.ins = ins, e.outs = outs, e.step = step, e.sym = sym;
    e.r = gr->dom.rank;
    int64_t total = ir_shape_numel(&gr->dom, sym);
    if (total < 0) {
        diag_plain_error(d, "fuse_eval: the domain's size overflows");
        return -1;
    }
    for (int i = 0; i < e.r; i++) e.dim[i] = ir_dim_value(gr->dom.d[i], sym);
    e.rr = gr->has_reduce ? gr->rshape.rank : 0;
    for (int i = 0; i < e.rr; i++) e.rdim[i] = ir_dim_value(gr->rshape.d[i], sym);
    e.sS = calloc(FUSE_MAX_SPACES, sizeof *e.sS);
    if (!e.sS) {
        diag_plain_error(d, "fuse_eval: out of memory");
        return -1;
    }
    for (int j = 1; j < gr->nspaces; j++)
        for (int i = 0; i < gr->spaces[j].rank; i++) e.sdim[j][i] = ir_dim_value(gr->spaces[j].d[i], sym);
    for (int k = 0; k < gr->nins; k++) {
        const IrShape *s = &p->g->nodes[gr->ins[k]].shape;
        for (int j = 0; j < gr->nspaces; j++) bstrides(s, sym, gr->spaces[j].rank, e.sS[j][k]);
        if (gr->has_reduce) bstrides(s, sym, e.rr, e.sR[k]);
    }
    float val[FUSE_MAX_MEMBERS];
    e.val = val;
    for (int m = 0; m < gr->nnodes; m++) val[m] = 0;
    if (!gr->has_reduce) {
        for (int64_t i = 0; i < total; i++) {
            set_idx(&e, i);
            for (int m = 0; m < gr->nnodes; m++) {
                val[m] = compute(&e, m, false);
                store(&e, m, i);
            }
        }
        free(e.sS);
        return 0;
    }
    // reduce: kept dims enumerate the outputs, reduced dims the elements of each
    int kept[IR_MAX_RANK], red[IR_MAX_RANK], nk = 0, nr = 0;
    for (int i = 0; i < e.r; i++) {
        if (gr->axes & (1u << i)) red[nr++] = i;
        else kept[nk++] = i;
    }
    int64_t nout = ir_shape_numel(&gr->rshape, sym);
    int64_t nred = nout > 0 ? total / nout : 0;
    for (int64_t o = 0; o < nout; o++) {
        int64_t t = o;
        for (int k = nk - 1; k >= 0; k--) {
            e.idx[kept[k]] = t % e.dim[kept[k]];
            t /= e.dim[kept[k]];
        }
        float acc[FUSE_MAX_MEMBERS];
        for (int m = 0; m < gr->nnodes; m++) {
            IrOp op = p->g->nodes[gr->nodes[m]].op;
            acc[m] = op == IR_MAX ? -INFINITY : 0.0f;
        }
        for (int pass = 0; pass < 2; pass++) {   // phase 1, then phase 3
            if (pass == 1) {
                // phase 2: the reductions' values, then the epilogue at R
                e.rlin = o;
                int64_t u = o;
                for (int k = e.rr - 1; k >= 0; k--) {
                    e.ridx[k] = e.rdim[k] ? u % e.rdim[k] : 0;
                    u = e.rdim[k] ? u / e.rdim[k] : 0;
                }
                for (int m = 0; m < gr->nnodes; m++) {
                    FuseLevel lv = (FuseLevel)p->level[gr->nodes[m]];
                    if (lv == FUSE_LV_RED) {
                        IrOp op = p->g->nodes[gr->nodes[m]].op;
                        val[m] = op == IR_MEAN ? acc[m] / (float)(nred ? nred : 1) : acc[m];
                    } else if (lv == FUSE_LV_EPI) {
                        val[m] = compute(&e, m, true);
                    } else {
                        continue;
                    }
                    store(&e, m, o);
                }
            }
            for (int64_t j = 0; j < nred; j++) {
                int64_t u = j;
                for (int k = nr - 1; k >= 0; k--) {
                    e.idx[red[k]] = u % e.dim[red[k]];
                    u /= e.dim[red[k]];
                }
                int64_t lin = 0;
                for (int k = 0; k < e.r; k++) lin = lin * e.dim[k] + e.idx[k];
                e.lin = lin;
                set_space_idx(&e);
                for (int m = 0; m < gr->nnodes; m++) {
                    IrId id = gr->nodes[m];
                    FuseLevel lv = (FuseLevel)p->level[id];
                    if (lv == FUSE_LV_PRO || (pass == 1 && lv == FUSE_LV_POST)) {
                        val[m] = compute(&e, m, false);
                        if ((lv == FUSE_LV_PRO) == (pass == 0)) store(&e, m, lin);
                    } else if (pass == 0 && lv == FUSE_LV_RED) {
                        float x = arg(&e, m, 0, false);
                        IrOp op = p->g->nodes[id].op;
                        if (op == IR_MAX) acc[m] = (x > acc[m] || x != x) ? x : acc[m];
                        else acc[m] += x;
                    }
                }
            }
        }
    }
    free(e.sS);
    return 0;
}
