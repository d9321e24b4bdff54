// gemm_acc.c — add(product, other) → matmul(a, b, other, alpha) (see gemm_acc.h).
#include "gemm_acc.h"
#include "env.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "ir_internal.h"

typedef struct Cand {
    IrId m;          // the product matmul(a, b)
    IrId mul;        // the mul scaling it, or IR_NONE
    double alpha;
} Cand;

static bool is_f32_like(const IrGraph *g, IrId id, const IrShape *s) {
    const IrNode *n = ir_nd(g, id);
    return n->dtype == IR_F32 && ir_shape_eq(&n->shape, s);
}

// A product read once (by its add or its mul), f32, not an output, two inputs, of shape s.
static bool lone_product(const IrGraph *g, const int *readers, IrId id, const IrShape *s) {
    const IrNode *n = ir_nd(g, id);
    if (n->op != IR_MATMUL || n->nin != 2 || readers[id] != 1 || !is_f32_like(g, id, s)) return false;
    const IrShape *sa = &ir_nd(g, n->in[0])->shape;   // an empty inner dimension: a zero fill, not a product
    return sa->rank >= 2 && sa->d[sa->rank - (n->a.trans_a ? 2 : 1)].coef != 0;
}

// A constant of one element (rank 0 or all dims 1): its value.
static bool scalar_const(const IrGraph *g, IrId id, double *v) {
    const IrNode *n = ir_nd(g, id);
    if (n->op != IR_FULL || n->nin != 0 || n->dtype != IR_F32) return false;
    for (int k = 0; k < n->shape.rank; k++)
        if (!ir_dim_is_one(n->shape.d[k])) return false;
    *v = n->a.value;
    return true;
}

// A bias for a product of shape s (ir_bias_shape), f32, not s itself (that is a full addend).
static bool bias_like(const IrGraph *g, IrId id, const IrShape *s) {
    const IrNode *n = ir_nd(g, id);
    return n->dtype == IR_F32 && s->rank >= 2 && ir_bias_shape(&n->shape, s) && !ir_shape_eq(&n->shape, s);
}

// Whether side x of an add of shape s is a product (or a scaled one) the add may absorb.
static bool candidate(const IrGraph *g, const int *readers, IrId x, const IrShape *s, Cand *c) {
    if (lone_product(g, readers, x, s)) {
        c->m = x, c->mul = IR_NONE, c->alpha = 1.0;
        return true;
    }
    const IrNode *n = ir_nd(g, x);
    if (n->op != IR_MUL || n->nin != 2 || readers[x] != 1 || !is_f32_like(g, x, s)) return false;
    for (int k = 0; k < 2; k++) {
        double v;
        if (lone_product(g, readers, n->in[k], s) && scalar_const(g, n->in[1 - k], &v) && isfinite((float)v)) {
            c->m = n->in[k], c->mul = x, c->alpha = v;
            return true;
        }
    }
    return false;
}

// LoRA + bias: add(add(m, y), b) with b a bias, m a product read there alone and y a (scaled)
// product (lora.c puts the bias add after the LoRA branch's) becomes add(add(m, b), y), so that
// below m takes the bias and y accumulates into it. Returns the adds reassociated.
static int reassociate_bias(IrGraph *g, const int *readers) {
    int count = 0;
    for (int i = 0; i < g->n; i++) {
        IrNode *ad = &g->nodes[i];
        if (ad->op != IR_ADD || ad->nin != 2 || ad->dtype != IR_F32) continue;
        for (int s = 0; s < 2; s++) {
            IrId j = ad->in[s], b = ad->in[1 - s];
            if (!ir_valid(g, j) || !ir_valid(g, b) || j >= i || b >= j || readers[j] != 1) continue;
            IrNode *jn = &g->nodes[j];
            if (jn->op != IR_ADD || jn->nin != 2 || !is_f32_like(g, j, &ad->shape) || !bias_like(g, b, &ad->shape))
                continue;
            int k = 0;
            Cand c;
            while (k < 2 && !(lone_product(g, readers, jn->in[k], &ad->shape) && jn->in[1 - k] != jn->in[k] &&
                              candidate(g, readers, jn->in[1 - k], &ad->shape, &c)))
                k++;
            if (k == 2) continue;
            IrId m = jn->in[k], y = jn->in[1 - k];
            IrId *jin = arena_alloc(&g->arena, 2 * sizeof *jin), *iin = arena_alloc(&g->arena, 2 * sizeof *iin);
            jin[0] = m, jin[1] = b, iin[0] = j, iin[1] = y;
            jn->in = jin, ad->in = iin;
            count++;
            break;
        }
    }
    return count;
}

// The bf16 LoRA sum autocast makes (autocast.h): cast_bf16(add(cast_f32(P), Y)) with P a bf16
// product of the add's shape (the base linear output), Y a lone f32 product or a scaled one (the
// LoRA product) and the add read by the cast alone → the cast becomes matmul(Y's a, b, P) with a
// bf16 result: cuBLASLt's A/B bf16, C/D bf16, fp32 compute and scale, D = bf16(alpha·acc + P) —
// the sum rounded once, as the cast did. Before the f32 adds below (which would otherwise fold Y
// into an f32 result over cast_f32(P)). With biases: a biased linear layer's output autocast
// leaves as cast_bf16(add(P, cast_f32(bb))), P a lone f32 product on bf16 operands and bb a bf16
// bias ((N) or (1, ..., 1, N)), becomes matmul(P's a, b, bb) with a bf16 result: cuBLASLt's bias
// epilogue with a bf16 D and a bf16 bias, D = bf16(acc + bb) — rounded once, as the cast did (a
// LoRA sum over it then folds as above: its base is this bf16 product). Returns the casts
// rewritten.
static int fold_lowp_sums(IrGraph *g, int *readers, bool biases, GemmAccStats *st) {
    int count = 0;
    for (int i = 0; i < g->n; i++) {
        IrNode *cs = &g->nodes[i];
        if (cs->op != IR_CAST || cs->dtype != IR_BF16 || cs->nin != 1 || !ir_valid(g, cs->in[0])) continue;
        IrId a = cs->in[0];
        const IrNode *ad = ir_nd(g, a);
        if (ad->op != IR_ADD || ad->nin != 2 || ad->dtype != IR_F32 || readers[a] != 1 || ad->in[0] == ad->in[1])
            continue;
        for (int s = 0; s < 2; s++) {
            IrId w = ad->in[s], y = ad->in[1 - s];
            if (!ir_valid(g, w) || !ir_valid(g, y) || w >= a || y >= a) continue;
            const IrNode *wn = ir_nd(g, w);
            if (wn->op != IR_CAST || wn->dtype != IR_F32 || wn->nin != 1 || !ir_valid(g, wn->in[0])) continue;
            IrId base = wn->in[0];
            const IrNode *bn = ir_nd(g, base);
            bool bias = biases && bn->dtype == IR_BF16 && ir_bias_shape(&wn->shape, &ad->shape) &&
                        !ir_shape_eq(&wn->shape, &ad->shape) && ir_shape_eq(&bn->shape, &wn->shape);
            if (!bias && (!is_f32_like(g, w, &ad->shape) || bn->op != IR_MATMUL || bn->dtype != IR_BF16 ||
                          !ir_shape_eq(&bn->shape, &ad->shape)))
                continue;
            Cand c;
            if (!candidate(g, readers, y, &ad->shape, &c)) continue;
            const IrNode *m = ir_nd(g, c.m);
            if (ir_nd(g, m->in[0])->dtype != IR_BF16 || ir_nd(g, m->in[1])->dtype != IR_BF16) continue;
            IrId *in = arena_alloc(&g->arena, 3 * sizeof *in);
            if (!in) {
                ir_report(g, cs->loc, "out of memory in the accumulating-product pass");
                return -1;
            }
            in[0] = m->in[0], in[1] = m->in[1], in[2] = base;
            IrAttrs at;
            memset(&at, 0, sizeof at);
            at.trans_a = m->a.trans_a, at.trans_b = m->a.trans_b, at.scale = c.alpha;
            cs->op = IR_MATMUL, cs->in = in, cs->nin = 3, cs->a = at;   // bf16 and the shape stay
            cs->loc = m->loc;
            if (!cs->name) cs->name = m->name;
            readers[a] = 0, readers[c.m] = 0;
            if (c.mul != IR_NONE) readers[c.mul] = 0;
            if (--readers[w] == 0) readers[base]--;
            readers[base]++;
            count++;
            st->rewritten++, st->lowp++;
            if (c.mul != IR_NONE) st->scaled++;
            if (bias) st->bias++;
            break;
        }
    }
    return count;
}

int ir_fuse_gemm_accumulate(IrGraph *g, GemmAccStats *st) {
    GemmAccStats local;
    memset(&local, 0, sizeof local);
    if (st) *st = local;
    // 0: off (to compare plans and runs with and without); nobias: full addends only (A/B of the
    // bias epilogue); 1 (the default): on
    static const char *const modes[] = {"0", "nobias", "1", NULL};
    int mode = env_choice(g->diag, "TRLC_GEMM_ACC", modes, 2);
    if (mode < 0) {
        g->errors++;
        return -1;
    }
    if (mode == 0) return 0;
    bool biases = mode == 2;
    // readers: uses as an input, as an output (several count), as the loss: a product that is any
    // of those besides its one add is kept
    int *readers = ir_count_readers(g, "accumulating-product");
    if (!readers) return -1;
    if (biases) reassociate_bias(g, readers);
    if (fold_lowp_sums(g, readers, biases, &local) < 0) {
        free(readers);
        return -1;
    }
    for (int i = 0; i < g->n; i++) {
        IrNode *ad = &g->nodes[i];
        if (ad->op != IR_ADD || ad->nin != 2 || ad->dtype != IR_F32) continue;
        IrId p = ad->in[0], q = ad->in[1];
        if (!ir_valid(g, p) || !ir_valid(g, q) || p >= i || q >= i || p == q) continue;
        // both sides of the add's shape (a full addend), or one of them and a bias on the other
        int bias = -1;   // the side that is a bias
        bool fp = is_f32_like(g, p, &ad->shape), fq = is_f32_like(g, q, &ad->shape);
        if (biases && fp && !fq && bias_like(g, q, &ad->shape)) bias = 1;
        else if (biases && fq && !fp && bias_like(g, p, &ad->shape)) bias = 0;
        else if (!fp || !fq) continue;
        Cand c[2];
        bool ok[2] = {bias != 0 && candidate(g, readers, p, &ad->shape, &c[0]),
                      bias != 1 && candidate(g, readers, q, &ad->shape, &c[1])};
        if (!ok[0] && !ok[1]) continue;
        // the scaled side (the LoRA branch) first, else the product computed last (its operands'
        // lives are extended the least: it now runs at the add's place)
        int side;
        if (ok[0] != ok[1]) side = ok[0] ? 0 : 1;
        else if ((c[0].mul != IR_NONE) != (c[1].mul != IR_NONE)) side = c[0].mul != IR_NONE ? 0 : 1;
        else side = c[0].m > c[1].m ? 0 : 1;
        const Cand *cd = &c[side];
        IrId other = ad->in[1 - side];
        const IrNode *m = ir_nd(g, cd->m);
        IrId *in = arena_alloc(&g->arena, 3 * sizeof *in);
        in[0] = m->in[0], in[1] = m->in[1], in[2] = other;
        IrAttrs at;
        memset(&at, 0, sizeof at);
        at.trans_a = m->a.trans_a, at.trans_b = m->a.trans_b, at.scale = cd->alpha;
        ad->op = IR_MATMUL, ad->in = in, ad->nin = 3, ad->a = at;   // dtype and shape stay
        ad->loc = m->loc;                                           // where the product was written
        if (!ad->name) ad->name = m->name;
        // the product's operands are read here now instead; the product and the mul by nobody
        readers[cd->m] = 0;
        if (cd->mul != IR_NONE) readers[cd->mul] = 0;
        local.rewritten++;
        if (cd->mul != IR_NONE) local.scaled++;
        if (bias >= 0) local.bias++;
    }
    free(readers);
    if (local.rewritten > 0) local.removed = ir_dce(g);
    if (st) *st = local;
    return local.rewritten;
}
