// codegen_cuda.c — renders the fused groups of a plan as CUDA C (see codegen_cuda.h).
// One kernel per unique group; the text is built from the group's first instance, and everything
// that differs between instances (buffers, B, T, dropout seeds) is a kernel argument.
// Kernel shape (reduce groups):
//   for o in outputs (one block each):      kept dims of D → i0.., R index o
//     for j in reduced elements (threads):  phase 1: prologue nodes, accumulate reductions
//     block reduction                       phase 2: epilogue nodes at R (thread 0 stores)
//     for j in reduced elements (threads):  phase 3: prologue recomputed, post nodes, stores
// Elementwise groups are one grid-stride loop. Not here: grouping (fuse.c), compiling (nvrtc.c).
#include "strbuf.h"
#include "codegen_cuda.h"
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>


// The library kernels' prelude (kernels/prelude.cuh: trlc_bf16, its load and store), without its
// include guard: the generated kernels start with it (kernels_embed.cmake embeds it).
extern const char *const cg_kernel_prelude;

// The generated kernels' own helpers, after cg_kernel_prelude.
static const char prelude[] =
    "// ---- codegen_cuda.c's helpers ----\n"
    "__device__ __forceinline__ float trlc_ld(int x) { return (float)x; }\n"
    "__device__ __forceinline__ void trlc_st(int *p, float v) {\n"
    "    *p = v != v ? 0 : v >= 2147483647.0f ? 2147483647 : v <= -2147483648.0f ? (-2147483647 - 1) : (int)v;\n"
    "}\n"
    "__device__ __forceinline__ float trlc_round_bf16(float v) { return trlc_ld(trlc_to_bf16(v)); }\n"
    "__device__ __forceinline__ float trlc_sigmoid(float x) {\n"
    "    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));\n"
    "    const float z = expf(x);\n"
    "    return z / (1.0f + z);\n"
    "}\n"
    "__device__ __forceinline__ float trlc_max(float a, float b) { return (a > b || a != a) ? a : b; }\n"
    "// dropout keep test: the same hash of (seed, salt, step, index) as the CPU backend\n"
    "__device__ __forceinline__ float trlc_dropout(float x, float p, unsigned long long seed, unsigned salt,\n"
    "                                              unsigned long long step, unsigned long long i) {\n"
    "    unsigned long long z = seed * 0x9E3779B97F4A7C15ull ^ ((unsigned long long)salt << 32 | salt) ^\n"
    "                           step * 0xD1B54A32D192ED03ull ^ i * 0xBF58476D1CE4E5B9ull;\n"
    "    for (int r = 0; r < 2; r++) {\n"
    "        z += 0x9E3779B97F4A7C15ull;\n"
    "        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;\n"
    "        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;\n"
    "        z ^= z >> 31;\n"
    "    }\n"
    "    const double u = (double)(z >> 11) * (1.0 / 9007199254740992.0);\n"
    "    return u >= (double)p ? x * (float)(1.0 / (1.0 - (double)p)) : 0.0f;\n"
    "}\n"
    "// block-wide reductions; blockDim.x is a multiple of 32 (at most 1024); every thread gets the result\n"
    "__device__ float trlc_block_sum(float v, float *sh) {\n"
    "    for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);\n"
    "    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;\n"
    "    __syncthreads();   // sh may still be read by the previous reduction\n"
    "    if (lane == 0) sh[w] = v;\n"
    "    __syncthreads();\n"
    "    v = lane < nw ? sh[lane] : 0.0f;\n"
    "    for (int s = 16; s > 0; s >>= 1) v += __shfl_xor_sync(0xffffffffu, v, s);\n"
    "    return v;\n"
    "}\n"
    "__device__ float trlc_block_max(float v, float *sh) {\n"
    "    for (int s = 16; s > 0; s >>= 1) v = trlc_max(v, __shfl_xor_sync(0xffffffffu, v, s));\n"
    "    const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;\n"
    "    __syncthreads();\n"
    "    if (lane == 0) sh[w] = v;\n"
    "    __syncthreads();\n"
    "    v = lane < nw ? sh[lane] : -__int_as_float(0x7f800000);\n"
    "    for (int s = 16; s > 0; s >>= 1) v = trlc_max(v, __shfl_xor_sync(0xffffffffu, v, s));\n"
    "    return v;\n"
    "}\n"
    "// ---- end of helpers ----\n";


static const char *ctype(IrDType t) {
    return t == IR_BF16 ? "trlc_bf16" : t == IR_I32 ? "int" : "float";
}

// A dim as a C expression: "32LL", "B", "(B*T*4LL)".
static void dim_expr(IrDim d, char *buf, size_t n) {
    bool b = d.syms & (1u << IR_SYM_B), t = d.syms & (1u << IR_SYM_T);
    if (!b && !t) {
        snprintf(buf, n, "%" PRId64 "LL", d.coef);
        return;
    }
    char c[40] = "";
    if (d.coef != 1) snprintf(c, sizeof c, "*%" PRId64 "LL", d.coef);
    snprintf(buf, n, "%s%s%s%s%s%s", (b && t) || c[0] ? "(" : "", b ? "B" : "", b && t ? "*" : "", t ? "T" : "", c,
             (b && t) || c[0] ? ")" : "");
}

// A float literal that survives any value.
static void flit(double v, char *buf, size_t n) {
    float f = (float)v;
    if (f != f) snprintf(buf, n, "__int_as_float(0x7fc00000)");
    else if (isinf(f)) snprintf(buf, n, "%s__int_as_float(0x7f800000)", f < 0 ? "-" : "");
    else snprintf(buf, n, "%.9gf", (double)f);
    if (strchr(buf, 'f') && !strchr(buf, '.') && !strchr(buf, 'e') && !strchr(buf, '_')) {
        size_t l = strlen(buf);   // "2f" is not C: make it "2.0f"
        if (l + 3 < n) {
            buf[l - 1] = 0;
            strcat(buf, ".0f");
        }
    }
}

typedef struct Cg {
    const FusePlan *p;
    const FuseGroup *gr;
    int gi;
    StrBuf *o;
    bool post;              // has post nodes
} Cg;

static int member_index(const FuseGroup *gr, IrId id) {
    for (int i = 0; i < gr->nnodes; i++)
        if (gr->nodes[i] == id) return i;
    return -1;
}

static int in_index(const FuseGroup *gr, IrId id) {
    for (int i = 0; i < gr->nins; i++)
        if (gr->ins[i] == id) return i;
    return -1;
}

static int out_index(const FuseGroup *gr, IrId id) {
    for (int i = 0; i < gr->nouts; i++)
        if (gr->outs[i] == id) return i;
    return -1;
}

// The coordinate names of a space: "i" (i0.. over D), "i1_" (i1_0.. over the group's space 1:
// a view of D's elements, fuse.h), "r" (r0.. over R).
static void coord_prefix(bool reduced, int space, char *buf, size_t n) {
    if (reduced) snprintf(buf, n, "r");
    else if (space == 0) snprintf(buf, n, "i");
    else snprintf(buf, n, "i%d_", space);
}

// The offset of input k's element at the current index of a full space (i; coordinates i0.. for
// D, i1_0.. for space 1, ...) or the reduced space (o, r0..): broadcast dims contribute nothing.
static void offset_expr(const Cg *c, int k, bool reduced, int space, char *buf, size_t n) {
    const IrShape *xs = &c->p->g->nodes[c->gr->ins[k]].shape;
    const IrShape *sp = reduced ? &c->gr->rshape : &c->gr->spaces[space];
    if (ir_shape_eq(xs, sp)) {
        snprintf(buf, n, reduced ? "o" : "i");
        return;
    }
    char pfx[16];
    coord_prefix(reduced, space, pfx, sizeof pfx);
    StrBuf e = {0};
    int lead = sp->rank - xs->rank;
    bool any = false;
    for (int ix = 0; ix < xs->rank; ix++) {
        if (ir_dim_is_one(xs->d[ix])) continue;
        sb_printf(&e, "%s%s%d", any ? " + " : "", pfx, ix + lead);
        for (int k2 = ix + 1; k2 < xs->rank; k2++) {
            char d[64];
            dim_expr(xs->d[k2], d, sizeof d);
            if (!ir_dim_is_one(xs->d[k2])) sb_printf(&e, " * %s", d);
        }
        any = true;
    }
    snprintf(buf, n, "%s", any && e.s ? e.s : "0");
    free(e.s);
}

// Operand x of a member in the given space: a member's register (read directly or through a
// reshape), an inlined constant, or the value loaded from input k (x<k> over D, x<k>_<j> over
// space j, y<k> over R).
static void arg_expr(const Cg *c, IrId x, bool reduced, int space, char *buf, size_t n) {
    IrId mx = fuse_member_src(c->p, c->gi, x);
    int m = mx != IR_NONE ? member_index(c->gr, mx) : -1;
    if (m >= 0) snprintf(buf, n, "v%d", m);
    else if (c->p->level[x] == FUSE_LV_CONST) flit(c->p->g->nodes[x].a.value, buf, n);
    else if (reduced || space == 0) snprintf(buf, n, "%c%d", reduced ? 'y' : 'x', in_index(c->gr, fuse_read_src(c->p, c->gi, x)));
    else snprintf(buf, n, "x%d_%d", in_index(c->gr, fuse_read_src(c->p, c->gi, x)), space);
}

// Index of dropout member m among the group's dropout members (its seed/salt arguments).
static int dropout_slot(const FuseGroup *gr, const IrGraph *g, int m) {
    int k = 0;
    for (int i = 0; i < m; i++) k += g->nodes[gr->nodes[i]].op == IR_DROPOUT;
    return k;
}

static void emit_member(const Cg *c, int m, bool reduced, const char *ind) {
    const IrGraph *g = c->p->g;
    const IrNode *n = &g->nodes[c->gr->nodes[m]];
    char a[64] = "0.0f", b[64] = "0.0f", w[64] = "0.0f", e[512];
    int sp = reduced ? 0 : c->gr->space[m];
    if (n->nin > 0) arg_expr(c, n->in[0], reduced, sp, a, sizeof a);
    if (n->nin > 1) arg_expr(c, n->in[1], reduced, sp, b, sizeof b);
    if (n->nin > 2) arg_expr(c, n->in[2], reduced, sp, w, sizeof w);
    switch (n->op) {
    case IR_FULL: flit(n->a.value, e, sizeof e); break;
    case IR_NEG: snprintf(e, sizeof e, "-%s", a); break;
    case IR_EXP: snprintf(e, sizeof e, "expf(%s)", a); break;
    case IR_LOG: snprintf(e, sizeof e, "logf(%s)", a); break;
    case IR_SQRT: snprintf(e, sizeof e, "sqrtf(%s)", a); break;
    case IR_RSQRT: snprintf(e, sizeof e, "1.0f / sqrtf(%s)", a); break;
    case IR_TANH: snprintf(e, sizeof e, "tanhf(%s)", a); break;
    case IR_SIGMOID: snprintf(e, sizeof e, "trlc_sigmoid(%s)", a); break;
    case IR_SILU: snprintf(e, sizeof e, "%s * trlc_sigmoid(%s)", a, a); break;
    case IR_GELU:
        snprintf(e, sizeof e, "0.5f * %s * (1.0f + tanhf(0.7978845608028654f * (%s + 0.044715f * %s * %s * %s)))",
                 a, a, a, a, a);
        break;
    case IR_RELU: snprintf(e, sizeof e, "%s > 0.0f ? %s : 0.0f", a, a); break;
    case IR_ABS: snprintf(e, sizeof e, "fabsf(%s)", a); break;
    case IR_SQUARE: snprintf(e, sizeof e, "%s * %s", a, a); break;
    case IR_POW: {
        char pv[64];
        flit(n->a.value, pv, sizeof pv);
        snprintf(e, sizeof e, "powf(%s, %s)", a, pv);
        break;
    }
    case IR_LOG_SIGMOID: snprintf(e, sizeof e, "(%s < 0.0f ? %s : 0.0f) - log1pf(expf(-fabsf(%s)))", a, a, a); break;
    case IR_SOFTPLUS: snprintf(e, sizeof e, "(%s > 0.0f ? %s : 0.0f) + log1pf(expf(-fabsf(%s)))", a, a, a); break;
    case IR_CAST:
        if (n->dtype == IR_BF16) snprintf(e, sizeof e, "trlc_round_bf16(%s)", a);
        else if (n->dtype == IR_I32) snprintf(e, sizeof e, "truncf(%s)", a);
        else snprintf(e, sizeof e, "%s", a);
        break;
    case IR_STOP_GRAD: case IR_BROADCAST: snprintf(e, sizeof e, "%s", a); break;
    case IR_PERMUTE: {
        // out dim i is input dim perm[i]: offset = sum_i i_i * (input stride of dim perm[i])
        const IrNode *xn = &g->nodes[n->in[0]];
        StrBuf t = {0};
        for (int i = 0; i < n->shape.rank; i++) {
            sb_printf(&t, "%si%d", i ? " + " : "", i);
            for (int k2 = n->a.perm[i] + 1; k2 < xn->shape.rank; k2++) {
                char dd[64];
                dim_expr(xn->shape.d[k2], dd, sizeof dd);
                sb_printf(&t, " * %s", dd);
            }
        }
        snprintf(e, sizeof e, "trlc_ld(in%d[%s])", in_index(c->gr, n->in[0]), t.s && !t.oom ? t.s : "0");
        free(t.s);
        break;
    }
    case IR_DROPOUT: {
        char pv[64];
        flit(n->a.value, pv, sizeof pv);
        int k = dropout_slot(c->gr, g, m);
        snprintf(e, sizeof e, "trlc_dropout(%s, %s, seed%d, salt%d, step, (unsigned long long)%s)", a, pv, k, k,
                 reduced ? "o" : "i");
        break;
    }
    case IR_ADD: snprintf(e, sizeof e, "%s + %s", a, b); break;
    case IR_SUB: snprintf(e, sizeof e, "%s - %s", a, b); break;
    case IR_MUL: snprintf(e, sizeof e, "%s * %s", a, b); break;
    case IR_DIV: snprintf(e, sizeof e, "%s / %s", a, b); break;
    case IR_MAXIMUM: snprintf(e, sizeof e, "%s >= %s ? %s : %s", a, b, a, b); break;
    case IR_MINIMUM: snprintf(e, sizeof e, "%s <= %s ? %s : %s", a, b, a, b); break;
    case IR_EQ: snprintf(e, sizeof e, "(float)(%s == %s)", a, b); break;
    case IR_NE: snprintf(e, sizeof e, "(float)(%s != %s)", a, b); break;
    case IR_LT: snprintf(e, sizeof e, "(float)(%s < %s)", a, b); break;
    case IR_LE: snprintf(e, sizeof e, "(float)(%s <= %s)", a, b); break;
    case IR_GT: snprintf(e, sizeof e, "(float)(%s > %s)", a, b); break;
    case IR_GE: snprintf(e, sizeof e, "(float)(%s >= %s)", a, b); break;
    case IR_WHERE: snprintf(e, sizeof e, "%s != 0.0f ? %s : %s", a, b, w); break;
    default: snprintf(e, sizeof e, "0.0f /* %s: not fusable */", ir_op_name(n->op)); break;
    }
    sb_printf(c->o, "%sconst float v%d = %s;   // %%%d %s\n", ind, m, e, c->gr->nodes[m], ir_op_name(n->op));
}

static void emit_store(const Cg *c, int m, const char *idx, const char *ind) {
    int q = out_index(c->gr, c->gr->nodes[m]);
    if (q >= 0) sb_printf(c->o, "%strlc_st(out%d + %s, v%d);\n", ind, q, idx, m);
}

// Loads of the inputs the members of the given levels read, at the top of a loop body (once per
// input and space of its readers).
static void emit_loads(const Cg *c, unsigned levels, bool reduced, const char *ind) {
    const IrGraph *g = c->p->g;
    bool done[FUSE_MAX_ARGS][FUSE_MAX_SPACES] = {{false}};
    for (int m = 0; m < c->gr->nnodes; m++) {
        IrId id = c->gr->nodes[m];
        if (!(levels & (1u << c->p->level[id]))) continue;
        const IrNode *n = &g->nodes[id];
        if (n->op == IR_PERMUTE) continue;   // reads its input itself, at permuted indexes
        int sp = reduced ? 0 : c->gr->space[m];
        for (int a = 0; a < n->nin; a++) {
            int k = in_index(c->gr, fuse_read_src(c->p, c->gi, n->in[a]));
            if (k < 0 || done[k][sp] || fuse_member_src(c->p, c->gi, n->in[a]) != IR_NONE) continue;
            done[k][sp] = true;
            char off[512], name[32];
            offset_expr(c, k, reduced, sp, off, sizeof off);
            arg_expr(c, n->in[a], reduced, sp, name, sizeof name);
            sb_printf(c->o, "%sconst float %s = trlc_ld(in%d[%s]);\n", ind, name, k, off);
        }
    }
}

// Whether the members over space sp (not reduced) need the current index's coordinates there:
// an input read at broadcast offsets, or (D) a permute.
static bool space_needs_coords(const Cg *c, int sp) {
    const IrGraph *g = c->p->g;
    const FuseGroup *gr = c->gr;
    for (int m = 0; m < gr->nnodes; m++) {
        FuseLevel lv = (FuseLevel)c->p->level[gr->nodes[m]];
        if (gr->space[m] != sp || (lv != FUSE_LV_PRO && lv != FUSE_LV_POST)) continue;
        const IrNode *n = &g->nodes[gr->nodes[m]];
        if (n->op == IR_PERMUTE) return true;
        for (int a = 0; a < n->nin; a++) {
            int k = in_index(gr, fuse_read_src(c->p, c->gi, n->in[a]));
            if (k >= 0 && fuse_member_src(c->p, c->gi, n->in[a]) == IR_NONE &&
                !ir_shape_eq(&g->nodes[gr->ins[k]].shape, &gr->spaces[sp]))
                return true;
        }
    }
    return false;
}

// var's coordinates over dims: pfx0.. of index type ity, dividing by dpfx0.. (the dims' sizes)
static void emit_decompose(StrBuf *o, const char *var, const char *pfx, const int *dims, int nd, const char *ity,
                           const char *dpfx, const char *ind) {
    if (nd == 0) return;
    sb_printf(o, "%s%s %s_t = %s;\n", ind, ity, pfx, var);
    for (int k = nd - 1; k >= 0; k--) {
        if (k > 0)
            sb_printf(o, "%sconst %s %s%d = %s_t %% %s%d; %s_t /= %s%d;\n", ind, ity, pfx, dims[k], pfx, dpfx, dims[k], pfx,
                      dpfx, dims[k]);
        else sb_printf(o, "%sconst %s %s%d = %s_t;\n", ind, ity, pfx, dims[k], pfx);
    }
}

// The coordinates of i in spaces 1.. where needed (dims S<j>_0.. of index type ity).
static void emit_space_coords(const Cg *c, const char *ity, const char *dpfx, const char *ind) {
    for (int j = 1; j < c->gr->nspaces; j++) {
        if (!space_needs_coords(c, j)) continue;
        int all[IR_MAX_RANK];
        for (int i = 0; i < c->gr->spaces[j].rank; i++) all[i] = i;
        char pfx[16], dp[16];
        coord_prefix(false, j, pfx, sizeof pfx);
        snprintf(dp, sizeof dp, "%s%d_", dpfx, j);
        emit_decompose(c->o, "i", pfx, all, c->gr->spaces[j].rank, ity, dp, ind);
    }
}

// The elementwise kernel's grid-stride loop with index type ity (the dims' sizes in dpfx0..).
static void emit_elementwise_loop(const Cg *c, const char *ity, const char *dpfx, const char *ind) {
    const FuseGroup *gr = c->gr;
    const IrShape *D = &gr->dom;
    char in2[32];
    snprintf(in2, sizeof in2, "%s    ", ind);
    sb_printf(c->o, "%sfor (%s i = blockIdx.x * (%s)blockDim.x + threadIdx.x; i < (%s)n; i += (%s)gridDim.x * blockDim.x) {\n",
              ind, ity, ity, ity, ity);
    int all[IR_MAX_RANK];
    for (int i = 0; i < D->rank; i++) all[i] = i;
    if (space_needs_coords(c, 0)) emit_decompose(c->o, "i", "i", all, D->rank, ity, dpfx, in2);
    emit_space_coords(c, ity, dpfx, in2);
    emit_loads(c, 1u << FUSE_LV_PRO, false, in2);
    for (int m = 0; m < gr->nnodes; m++) {
        emit_member(c, m, false, in2);
        emit_store(c, m, "i", in2);
    }
    sb_printf(c->o, "%s}\n", ind);
}

static void emit_header(const Cg *c, int kidx, const Diag *d) {
    const FusePlan *p = c->p;
    const IrGraph *g = p->g;
    const FuseKernel *k = &p->kernels[kidx];
    const FuseGroup *gr = c->gr;
    char s1[96], s2[96], loc[256];
    sb_printf(c->o, "// %s — generated by trlc (compiler/codegen_cuda.c); do not edit.\n", k->name);
    if (gr->has_reduce)
        sb_printf(c->o, "// reduction over %s -> %s; one block per reduced element\n", ir_shape_str(&gr->dom, s1, sizeof s1),
            ir_shape_str(&gr->rshape, s2, sizeof s2));
    else
        sb_printf(c->o, "// elementwise over %s; grid-stride loop\n", ir_shape_str(&gr->dom, s1, sizeof s1));
    sb_printf(c->o, "// launched by %d step%s:", k->ngroups, k->ngroups == 1 ? "" : "s");
    int shown = 0;
    for (int i = 0; i < p->ngroups && shown < 32; i++) {
        if (p->groups[i].kernel != kidx) continue;
        sb_printf(c->o, " %d", p->groups[i].step);
        shown++;
    }
    sb_printf(c->o, "%s\n", k->ngroups > shown ? " ..." : "");
    sb_printf(c->o, "// fuses (step %d; phases: pro = before the reduction, red, epi = at the reduced shape, post):\n",
        gr->step);
    static const char *lvname[] = {"-", "pro", "red", "epi", "post", "const"};
    for (int m = 0; m < gr->nnodes; m++) {
        const IrNode *n = &g->nodes[gr->nodes[m]];
        sb_printf(c->o, "//   v%-3d %%%-6d %-12s %s%-16s %-5s %s\n", m, gr->nodes[m], ir_op_name(n->op), ir_dtype_name(n->dtype),
            ir_shape_str(&n->shape, s1, sizeof s1), lvname[p->level[gr->nodes[m]] % 6], fuse_loc_str(d, n->loc, loc, sizeof loc));
    }
}

char *cg_cuda_kernel(const FusePlan *p, int kidx, const Diag *d) {
    if (kidx < 0 || kidx >= p->nkernels) return NULL;
    const IrGraph *g = p->g;
    StrBuf o = {0};
    Cg c = {p, &p->groups[p->kernels[kidx].first_group], p->kernels[kidx].first_group, &o, false};
    const FuseGroup *gr = c.gr;
    for (int m = 0; m < gr->nnodes; m++) c.post |= p->level[gr->nodes[m]] == FUSE_LV_POST;
    char s1[96], dbuf[64];
    emit_header(&c, kidx, d);
    sb_printf(&o, "// ---- kernels/prelude.cuh ----%s%s\n", cg_kernel_prelude, prelude);
    sb_printf(&o, "extern \"C\" __global__ void __launch_bounds__(256) %s(\n", p->kernels[kidx].name);
    for (int q = 0; q < gr->nouts; q++) {
        const IrNode *n = &g->nodes[gr->outs[q]];
        sb_printf(&o, "    %s *__restrict__ out%d,   // %s%s (v%d)\n", ctype(n->dtype), q, ir_dtype_name(n->dtype),
            ir_shape_str(&n->shape, s1, sizeof s1), member_index(gr, gr->outs[q]));
    }
    for (int k = 0; k < gr->nins; k++) {
        const IrNode *n = &g->nodes[gr->ins[k]];
        sb_printf(&o, "    const %s *__restrict__ in%d,   // %s%s\n", ctype(n->dtype), k, ir_dtype_name(n->dtype),
            ir_shape_str(&n->shape, s1, sizeof s1));
    }
    int ndrop = 0;
    for (int m = 0; m < gr->nnodes; m++)
        if (g->nodes[gr->nodes[m]].op == IR_DROPOUT) {
            sb_printf(&o, "    unsigned long long seed%d, unsigned salt%d,   // dropout v%d\n", ndrop, ndrop, m);
            ndrop++;
        }
    sb_printf(&o, "    long long B, long long T, unsigned long long step)\n{\n");
    sb_printf(&o, "    (void)B; (void)T; (void)step;\n");
    const IrShape *D = &gr->dom;
    for (int i = 0; i < D->rank; i++) {
        dim_expr(D->d[i], dbuf, sizeof dbuf);
        sb_printf(&o, "    const long long D%d = %s;\n", i, dbuf);
    }
    for (int j = 1; j < gr->nspaces; j++)   // the other shapes of D's elements (views)
        for (int i = 0; i < gr->spaces[j].rank; i++) {
            dim_expr(gr->spaces[j].d[i], dbuf, sizeof dbuf);
            sb_printf(&o, "    const long long D%d_%d = %s; (void)D%d_%d;\n", j, i, dbuf, j, i);
        }
    sb_printf(&o, "    const long long n = 1LL");
    for (int i = 0; i < D->rank; i++) sb_printf(&o, " * D%d", i);
    sb_printf(&o, ";\n");
    if (!gr->has_reduce) {
        // 32-bit index arithmetic when the elements fit (below 2^31, so i plus the grid's stride,
        // at most 2^28: cg_launch_dims, stays below 2^32): the coordinates of a broadcast or
        // permuted operand take a division per dim, and a 64-bit one costs several times a
        // 32-bit one — a memory-bound kernel would be bound by it
        sb_printf(&o, "    " CG_INDEX32_TEST " {\n");
        for (int i = 0; i < D->rank; i++) sb_printf(&o, "        const unsigned U%d = (unsigned)D%d; (void)U%d;\n", i, i, i);
        for (int j = 1; j < gr->nspaces; j++)
            for (int i = 0; i < gr->spaces[j].rank; i++)
                sb_printf(&o, "        const unsigned U%d_%d = (unsigned)D%d_%d; (void)U%d_%d;\n", j, i, j, i, j, i);
        emit_elementwise_loop(&c, "unsigned", "U", "        ");
        sb_printf(&o, "    } else {\n");
        emit_elementwise_loop(&c, "long long", "D", "        ");
        sb_printf(&o, "    }\n}\n");
        return o.oom ? (free(o.s), NULL) : o.s;
    }
    // reduction kernel
    const IrShape *R = &gr->rshape;
    for (int i = 0; i < R->rank; i++) {
        dim_expr(R->d[i], dbuf, sizeof dbuf);
        sb_printf(&o, "    const long long R%d = %s; (void)R%d;\n", i, dbuf, i);
    }
    int kept[IR_MAX_RANK], red[IR_MAX_RANK], nk = 0, nr = 0;
    for (int i = 0; i < D->rank; i++) {
        if (gr->axes & (1u << i)) red[nr++] = i;
        else kept[nk++] = i;
    }
    sb_printf(&o, "    const long long nout = 1LL");
    for (int i = 0; i < R->rank; i++) sb_printf(&o, " * R%d", i);
    sb_printf(&o, ";\n    const long long nred = nout > 0 ? n / nout : 0;\n");
    sb_printf(&o, "    __shared__ float sh[32];\n");
    sb_printf(&o, "    for (long long o = blockIdx.x; o < nout; o += gridDim.x) {\n");
    // kept dims from o
    if (nk) {
        sb_printf(&o, "        long long o_t = o;\n");
        for (int k = nk - 1; k >= 0; k--) {
            if (k > 0) sb_printf(&o, "        const long long i%d = o_t %% D%d; o_t /= D%d;\n", kept[k], kept[k], kept[k]);
            else sb_printf(&o, "        const long long i%d = o_t;\n", kept[k]);
        }
    }
    for (int m = 0; m < gr->nnodes; m++) {
        const IrNode *n = &g->nodes[gr->nodes[m]];
        if (p->level[gr->nodes[m]] == FUSE_LV_RED)
            sb_printf(&o, "        float a%d = %s;\n", m, n->op == IR_MAX ? "-__int_as_float(0x7f800000)" : "0.0f");
    }
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            // phase 2
            for (int m = 0; m < gr->nnodes; m++) {
                const IrNode *n = &g->nodes[gr->nodes[m]];
                if (p->level[gr->nodes[m]] != FUSE_LV_RED) continue;
                sb_printf(&o, "        const float v%d = %s(a%d, sh)%s;   // %%%d %s\n", m,
                    n->op == IR_MAX ? "trlc_block_max" : "trlc_block_sum", m, n->op == IR_MEAN ? " / (float)nred" : "",
                    gr->nodes[m], ir_op_name(n->op));
            }
            // the index in R, where an epilogue input is broadcast
            bool need_r = false;
            for (int m = 0; m < gr->nnodes; m++) {
                if (p->level[gr->nodes[m]] != FUSE_LV_EPI) continue;
                const IrNode *n = &g->nodes[gr->nodes[m]];
                for (int a = 0; a < n->nin; a++)
                    if (in_index(gr, fuse_read_src(p, c.gi, n->in[a])) >= 0 && !ir_shape_eq(&g->nodes[n->in[a]].shape, R))
                        need_r = true;
            }
            if (need_r && R->rank) {
                sb_printf(&o, "        long long r_t = o;\n");
                for (int k = R->rank - 1; k >= 0; k--) {
                    if (k > 0) sb_printf(&o, "        const long long r%d = r_t %% R%d; r_t /= R%d;\n", k, k, k);
                    else sb_printf(&o, "        const long long r%d = r_t;\n", k);
                }
            }
            emit_loads(&c, 1u << FUSE_LV_EPI, true, "        ");
            for (int m = 0; m < gr->nnodes; m++)
                if (p->level[gr->nodes[m]] == FUSE_LV_EPI) emit_member(&c, m, true, "        ");
            bool any_store = false;
            for (int m = 0; m < gr->nnodes; m++) {
                FuseLevel lv = (FuseLevel)p->level[gr->nodes[m]];
                if ((lv == FUSE_LV_RED || lv == FUSE_LV_EPI) && out_index(gr, gr->nodes[m]) >= 0) any_store = true;
            }
            if (any_store) {
                sb_printf(&o, "        if (threadIdx.x == 0) {\n");
                for (int m = 0; m < gr->nnodes; m++) {
                    FuseLevel lv = (FuseLevel)p->level[gr->nodes[m]];
                    if (lv == FUSE_LV_RED || lv == FUSE_LV_EPI) emit_store(&c, m, "o", "            ");
                }
                sb_printf(&o, "        }\n");
            }
            if (!c.post) break;
        }
        sb_printf(&o, "        for (long long j = threadIdx.x; j < nred; j += blockDim.x) {   // phase %d\n", pass ? 3 : 1);
        if (nr) {
            sb_printf(&o, "            long long j_t = j;\n");
            for (int k = nr - 1; k >= 0; k--) {
                if (k > 0) sb_printf(&o, "            const long long i%d = j_t %% D%d; j_t /= D%d;\n", red[k], red[k], red[k]);
                else sb_printf(&o, "            const long long i%d = j_t;\n", red[k]);
            }
        }
        sb_printf(&o, "            const long long i = ");
        for (int k = 0; k < D->rank; k++) sb_printf(&o, "%s", "(");
        sb_printf(&o, "0LL");
        for (int k = 0; k < D->rank; k++) sb_printf(&o, " * D%d + i%d)", k, k);
        sb_printf(&o, "; (void)i;\n");
        emit_space_coords(&c, "long long", "D", "            ");
        unsigned lv = pass == 0 ? (1u << FUSE_LV_PRO | 1u << FUSE_LV_RED) : (1u << FUSE_LV_PRO | 1u << FUSE_LV_POST);
        emit_loads(&c, lv, false, "            ");
        for (int m = 0; m < gr->nnodes; m++) {
            IrId id = gr->nodes[m];
            FuseLevel l = (FuseLevel)p->level[id];
            if (l == FUSE_LV_PRO || (pass == 1 && l == FUSE_LV_POST)) {
                emit_member(&c, m, false, "            ");
                if ((l == FUSE_LV_PRO) == (pass == 0)) emit_store(&c, m, "i", "            ");
            } else if (pass == 0 && l == FUSE_LV_RED) {
                char a[64];
                arg_expr(&c, g->nodes[id].in[0], false, 0, a, sizeof a);
                if (g->nodes[id].op == IR_MAX) sb_printf(&o, "            a%d = trlc_max(%s, a%d);\n", m, a, m);
                else sb_printf(&o, "            a%d += %s;\n", m, a);
            }
        }
        sb_printf(&o, "        }\n");
    }
    sb_printf(&o, "    }\n}\n");
    if (o.oom) {
        free(o.s);
        return NULL;
    }
    return o.s;
}

void cg_launch_shape(const FusePlan *p, int group, char *buf, size_t n) {
    if (group < 0 || group >= p->ngroups) {
        snprintf(buf, n, "?");
        return;
    }
    const FuseGroup *gr = &p->groups[group];
    char s1[96], s2[96];
    IrDim dn, rn;
    if (!ir_shape_numel_dim(&gr->dom, &dn)) dn = ir_dim(0);
    IrShape one = ir_shape1(dn);
    if (!gr->has_reduce) {
        snprintf(buf, n, "grid-stride over %s elements, 256 threads per block", ir_shape_str(&one, s1, sizeof s1));
        return;
    }
    if (!ir_shape_numel_dim(&gr->rshape, &rn)) rn = ir_dim(0);
    IrShape r1 = ir_shape1(rn);
    snprintf(buf, n, "one block per %s outputs (reducing %s elements), 32..256 threads",
             ir_shape_str(&r1, s2, sizeof s2), ir_shape_str(&one, s1, sizeof s1));
}

void cg_launch_dims(const FusePlan *p, int group, const int64_t *sym, unsigned grid[3], unsigned block[3]) {
    grid[0] = grid[1] = grid[2] = block[0] = block[1] = block[2] = 1;
    if (group < 0 || group >= p->ngroups) return;
    const FuseGroup *gr = &p->groups[group];
    int64_t n = ir_shape_numel(&gr->dom, sym);
    if (n <= 0) return;
    if (!gr->has_reduce) {
        int64_t blocks = (n + 255) / 256;
        grid[0] = (unsigned)(blocks < (1 << 20) ? blocks : (1 << 20));
        block[0] = 256;
        return;
    }
    int64_t nout = ir_shape_numel(&gr->rshape, sym);
    if (nout <= 0) return;
    int64_t nred = n / nout, threads = (nred + 31) / 32 * 32;
    grid[0] = (unsigned)(nout < (1 << 20) ? nout : (1 << 20));
    block[0] = (unsigned)(threads < 32 ? 32 : threads > 256 ? 256 : threads);
}

void cg_kernel_args(const FusePlan *p, int group, char *buf, size_t n) {
    if (group < 0 || group >= p->ngroups) {
        snprintf(buf, n, "?");
        return;
    }
    const FuseGroup *gr = &p->groups[group];
    const IrGraph *g = p->g;
    StrBuf o = {0};
    char s1[96];
    for (int q = 0; q < gr->nouts; q++)
        sb_printf(&o, "out%d %%%d %s%s, ", q, gr->outs[q], ir_dtype_name(g->nodes[gr->outs[q]].dtype),
            ir_shape_str(&g->nodes[gr->outs[q]].shape, s1, sizeof s1));
    for (int k = 0; k < gr->nins; k++)
        sb_printf(&o, "in%d %%%d %s%s, ", k, gr->ins[k], ir_dtype_name(g->nodes[gr->ins[k]].dtype),
            ir_shape_str(&g->nodes[gr->ins[k]].shape, s1, sizeof s1));
    for (int m = 0; m < gr->nnodes; m++)
        if (g->nodes[gr->nodes[m]].op == IR_DROPOUT) sb_printf(&o, "seed/salt of %%%d, ", gr->nodes[m]);
    sb_printf(&o, "B, T, step");
    snprintf(buf, n, "%s", o.s && !o.oom ? o.s : "?");
    free(o.s);
}

// ---------------------------------------------------------------------------------------------
// library kernels

typedef struct CgLibraryEntry {
    const char *file;
    const char *text;
    size_t len;
} CgLibraryEntry;
extern const CgLibraryEntry cg_library_table[];   // kernels_embed.c (generated)
extern const int cg_library_table_count;

// Whether the attention backward node id (sdpa_bwd_q) has a dk or dv sibling on the same inputs:
// then exec.c runs the three as flash-attention 2's fused kernel (unless $TRLC_ATTN_BWD=split).
static bool sdpa_bwd_has_kv(const IrGraph *g, IrId id) {
    const IrNode *n = &g->nodes[id];
    for (IrId i = 0; i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        if ((x->op != IR_SDPA_BWD_K && x->op != IR_SDPA_BWD_V) || x->nin != n->nin) continue;
        bool same = true;
        for (int k = 0; k < n->nin && same; k++) same = x->in[k] == n->in[k];
        if (same) return true;
    }
    return false;
}

const char *cg_library_kernel(const IrGraph *g, IrId id, const char **file) {
    const IrNode *n = &g->nodes[id];
    const char *f = NULL, *k = NULL;
    bool bf = n->nin > 0 && n->dtype == IR_BF16;
    // attention on bf16 q, k, v (mixed precision): the tensor-core kernels
    bool tc = n->nin > 0 && g->nodes[n->in[0]].dtype == IR_BF16;
    switch (n->op) {
    case IR_SDPA:
        f = tc ? "attention_tc.cu" : "attention.cu", k = tc ? "trlc_attention_tc_forward" : "trlc_attention_forward";
        if (tc && bf) k = "trlc_attention_tc_forward_bf16";   // mixed precision's bf16 output
        break;
    case IR_SDPA_BWD_Q:
        f = tc ? "attention_tc.cu" : "attention.cu";
        k = tc ? "trlc_attention_tc_backward_dq" : "trlc_attention_backward_dq";
        if (tc && sdpa_bwd_has_kv(g, id)) {   // exec.c's default: delta, then one kernel for dq, dk, dv
            k = "trlc_attention_tc_backward_fused";
        } else if (tc) {   // the dq kernel reads the forward's O: bf16 unless an f32 forward of these q, k, v (exec.c)
            bool f32_fwd = false;
            for (IrId i = 0; i < id && !f32_fwd; i++) {
                const IrNode *x = &g->nodes[i];
                f32_fwd = x->op == IR_SDPA && x->dtype != IR_BF16 && x->nin == n->nin - 1 && x->in[0] == n->in[0] &&
                          x->in[1] == n->in[1] && x->in[2] == n->in[2];
            }
            if (!f32_fwd) k = "trlc_attention_tc_backward_dq_bf16";
        }
        break;
    case IR_SDPA_BWD_K: case IR_SDPA_BWD_V:   // tensor cores: the fused kernel ($TRLC_ATTN_BWD=split: dkdv)
        f = tc ? "attention_tc.cu" : "attention.cu";
        k = tc ? "trlc_attention_tc_backward_fused" : "trlc_attention_backward_dkdv";
        break;
    case IR_CROSS_ENTROPY:
        f = "cross_entropy.cu", k = bf ? "trlc_cross_entropy_forward_bf16" : "trlc_cross_entropy_forward_f32";
        break;
    case IR_CROSS_ENTROPY_BWD:
        f = "cross_entropy.cu", k = bf ? "trlc_cross_entropy_backward_bf16" : "trlc_cross_entropy_backward_f32";
        break;
    case IR_ROPE: f = "rope.cu", k = bf ? "trlc_rope_forward_bf16" : "trlc_rope_forward"; break;   // bf16: q, k
    case IR_LINEAR_CE:   // the head's products through cuBLASLt, a chunk of rows at a time (exec.c)
        f = "cross_entropy.cu", k = "trlc_cross_entropy_forward_f32";
        break;
    case IR_LINEAR_ARGMAX: f = "cross_entropy.cu", k = "trlc_row_argmax_f32"; break;
    case IR_LINEAR_CE_BWD_X: case IR_LINEAR_CE_BWD_W:
        f = "cross_entropy.cu";
        k = g->nodes[n->in[0]].dtype == IR_BF16 ? "trlc_cross_entropy_backward_f32_bf16" : "trlc_cross_entropy_backward_f32";
        break;
    case IR_EMBED:   // a bf16 table: mixed precision's frozen tables
        f = "embed.cu", k = g->nodes[n->in[1]].dtype == IR_BF16 ? "trlc_embed_forward_bf16" : "trlc_embed_forward";
        break;
    case IR_EMBED_BWD: f = "embed.cu", k = "trlc_embed_backward"; break;
    case IR_PERMUTE: case IR_SLICE: case IR_PAD: case IR_CONCAT: f = "layout.cu", k = "trlc_strided_copy"; break;
    case IR_ARANGE: f = "layout.cu", k = "trlc_arange"; break;
    case IR_SOFTMAX: case IR_LOG_SOFTMAX: f = "softmax.cu", k = "trlc_softmax_forward"; break;
    case IR_GATHER: f = "gather.cu", k = bf ? "trlc_gather_forward_bf16" : "trlc_gather_forward_f32"; break;
    case IR_GATHER_BWD: f = "gather.cu", k = bf ? "trlc_gather_backward_bf16" : "trlc_gather_backward_f32"; break;
    case IR_DEQUANT_NF4: f = "quant.cu", k = bf ? "trlc_dequant_nf4_bf16" : "trlc_dequant_nf4_f32"; break;
    case IR_DEQUANT_MAP8: f = "quant.cu", k = bf ? "trlc_dequant_map8_bf16" : "trlc_dequant_map8_f32"; break;
    default: break;
    }
    if (file) *file = f;
    return k;
}

int cg_library_count(void) { return cg_library_table_count; }

const char *cg_library_name(int i) {
    return i >= 0 && i < cg_library_table_count ? cg_library_table[i].file : NULL;
}

const char *cg_library_source(const char *file) {
    for (int i = 0; file && i < cg_library_table_count; i++)
        if (!strcmp(cg_library_table[i].file, file)) return cg_library_table[i].text;
    return NULL;
}
