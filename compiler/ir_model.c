// ir_model.c — builders of the model-level primitives: softmax family, embed, rope, sdpa (GQA,
// key mask) and its backward ops, cross_entropy, gather, and the quantized-weight dequantizers.
// Shape and dtype checks report at the node's spec location and return IR_NONE.
// Not here: the generic builders and the graph itself (ir.c), their gradients (autodiff.c).
#include <inttypes.h>
#include <math.h>
#include <string.h>
#include "ir_internal.h"

// ---------------------------------------------------------------------------------------------
// builders: softmax, model primitives

static IrId softmax_like(IrGraph *g, IrOp op, IrId x, Loc loc) {
    if (!ir_valid(g, x)) return IR_NONE;
    if (!ir_dtype_is_float(ir_nd(g, x)->dtype) || ir_nd(g, x)->shape.rank < 1) {
        ir_report(g, loc, "%s needs a floating-point tensor of rank >= 1, got %s %s", ir_op_name(op),
               ir_dtype_name(ir_nd(g, x)->dtype), ir_shp(g, x));
        return IR_NONE;
    }
    return ir_unary_node(g, op, x, NULL, loc);
}

IrId ir_softmax(IrGraph *g, IrId x, Loc loc) { return softmax_like(g, IR_SOFTMAX, x, loc); }
IrId ir_log_softmax(IrGraph *g, IrId x, Loc loc) { return softmax_like(g, IR_LOG_SOFTMAX, x, loc); }

IrId ir_embed(IrGraph *g, IrId ids, IrId table, Loc loc) {
    if (!ir_valid(g, ids) || !ir_valid(g, table)) return IR_NONE;
    const IrNode *ni = ir_nd(g, ids), *nt = ir_nd(g, table);
    if (ni->dtype != IR_I32) {
        ir_report(g, loc, "embed: token ids must be i32, not %s", ir_dtype_name(ni->dtype));
        return IR_NONE;
    }
    if (nt->shape.rank != 2 || !ir_dtype_is_float(nt->dtype)) {
        ir_report(g, loc, "embed: the table must be a floating-point (vocab, hidden) matrix, got %s %s",
               ir_dtype_name(nt->dtype), ir_shp(g, table));
        return IR_NONE;
    }
    if (ni->shape.rank + 1 > IR_MAX_RANK) {
        ir_report(g, loc, "embed: ids rank too large");
        return IR_NONE;
    }
    IrShape s = ni->shape;
    s.d[s.rank++] = nt->shape.d[1];
    if (!ir_const_numel_ok(&s)) {
        ir_report(g, loc, "embed: result shape %s is too large", ir_shs(&s));
        return IR_NONE;
    }
    IrId in[2] = {ids, table};
    // a bf16 table (mixed precision: a frozen table stored in bf16) gives its rows widened to f32
    return ir_append(g, IR_EMBED, nt->dtype == IR_BF16 ? IR_F32 : nt->dtype, s, in, 2, NULL, loc);
}

static bool rope_check(IrGraph *g, IrId x, IrId pos, const IrRope *r, Loc loc) {
    const IrNode *nx = ir_nd(g, x), *np = ir_nd(g, pos);
    if (nx->shape.rank != 4 || !ir_dtype_is_float(nx->dtype)) {
        ir_report(g, loc, "rope: x must be a floating-point (B, H, T, D) tensor, got %s %s",
               ir_dtype_name(nx->dtype), ir_shp(g, x));
        return false;
    }
    IrDim dd = nx->shape.d[3];
    if (dd.syms || dd.coef % 2) {
        ir_report(g, loc, "rope: the head dimension must be a constant even number, got %s", ir_shp(g, x));
        return false;
    }
    if (np->dtype != IR_I32) {
        ir_report(g, loc, "rope: positions must be i32, not %s", ir_dtype_name(np->dtype));
        return false;
    }
    bool ok = (np->shape.rank == 1 && ir_dim_eq(np->shape.d[0], nx->shape.d[2])) ||
              (np->shape.rank == 2 && ir_dim_eq(np->shape.d[0], nx->shape.d[0]) &&
               ir_dim_eq(np->shape.d[1], nx->shape.d[2]));
    if (!ok) {
        ir_report(g, loc, "rope: positions %s do not match x %s (expected (T) or (B, T))", ir_shp(g, pos),
               ir_shp(g, x));
        return false;
    }
    if (!(r->theta > 0) || !isfinite(r->theta)) {
        ir_report(g, loc, "rope: theta must be positive, got %g", r->theta);
        return false;
    }
    if (r->factor != 0) {
        if (!(r->factor > 0) || !(r->low_freq_factor > 0) || !(r->high_freq_factor > r->low_freq_factor) ||
            !(r->original_max_pos > 0)) {
            ir_report(g, loc, "rope: invalid llama3 scaling (factor %g, low %g, high %g, original max %g)",
                   r->factor, r->low_freq_factor, r->high_freq_factor, r->original_max_pos);
            return false;
        }
    }
    return true;
}

IrId ir_rope_to(IrGraph *g, IrId x, IrId pos, IrRope rope, bool inverse, IrDType out, Loc loc) {
    if (!ir_valid(g, x) || !ir_valid(g, pos)) return IR_NONE;
    if (!rope_check(g, x, pos, &rope, loc)) return IR_NONE;
    IrDType dt = ir_nd(g, x)->dtype;
    if (out != IR_DTYPE_COUNT && out != dt) {
        if (out != IR_BF16 || dt != IR_F32) {
            ir_report(g, loc, "rope: a %s result of %s x (only bf16 over f32)", ir_dtype_name(out), ir_dtype_name(dt));
            return IR_NONE;
        }
        dt = out;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.rope = rope;
    a.inverse = inverse;
    IrId in[2] = {x, pos};
    return ir_append(g, IR_ROPE, dt, ir_nd(g, x)->shape, in, 2, &a, loc);
}

IrId ir_rope(IrGraph *g, IrId x, IrId pos, IrRope rope, Loc loc) {
    return ir_rope_to(g, x, pos, rope, false, IR_DTYPE_COUNT, loc);
}
IrId ir_rope_inverse(IrGraph *g, IrId x, IrId pos, IrRope rope, Loc loc) {
    return ir_rope_to(g, x, pos, rope, true, IR_DTYPE_COUNT, loc);
}

static bool sdpa_check(IrGraph *g, IrId q, IrId k, IrId v, Loc loc) {
    const IrShape *sq = &ir_nd(g, q)->shape, *sk = &ir_nd(g, k)->shape, *sv = &ir_nd(g, v)->shape;
    if (sq->rank != 4 || sk->rank != 4 || sv->rank != 4) {
        ir_report(g, loc, "sdpa: q, k, v must be (B, H, T, D), got %s, %s, %s", ir_shp(g, q), ir_shp(g, k),
               ir_shp(g, v));
        return false;
    }
    if (!ir_dtype_is_float(ir_nd(g, q)->dtype) || ir_nd(g, q)->dtype != ir_nd(g, k)->dtype ||
        ir_nd(g, q)->dtype != ir_nd(g, v)->dtype) {
        ir_report(g, loc, "sdpa: q, k, v must share one floating-point dtype");
        return false;
    }
    if (!ir_shape_eq(sk, sv)) {
        ir_report(g, loc, "sdpa: k %s and v %s must have the same shape", ir_shp(g, k), ir_shp(g, v));
        return false;
    }
    if (!ir_dim_eq(sq->d[0], sk->d[0]) || !ir_dim_eq(sq->d[3], sk->d[3])) {
        ir_report(g, loc, "sdpa: q %s and k %s differ in batch or head dimension", ir_shp(g, q), ir_shp(g, k));
        return false;
    }
    IrDim hq = sq->d[1], hk = sk->d[1];
    if (hq.syms || hk.syms || hk.coef == 0 || hq.coef % hk.coef) {
        ir_report(g, loc, "sdpa: query heads (%s) must be a multiple of key/value heads (%s)", ir_shp(g, q),
               ir_shp(g, k));
        return false;
    }
    return true;
}

// bf16 operands (mixed precision) give fp32 results, as a product's do; any other dtype its own.
static IrDType sdpa_result_dtype(IrDType operands) { return operands == IR_BF16 ? IR_F32 : operands; }

static double sdpa_scale(const IrShape *sq, double scale) {
    if (scale > 0) return scale;
    double d = (double)sq->d[3].coef;
    return d > 0 ? 1.0 / sqrt(d) : 1.0;
}

static bool mask_check(IrGraph *g, IrId q, IrId k, IrId m, Loc loc) {
    const IrNode *nm = ir_nd(g, m);
    const IrShape *sq = &ir_nd(g, q)->shape, *sk = &ir_nd(g, k)->shape;
    if (nm->dtype == IR_U8 || nm->shape.rank != 2 || !ir_dim_eq(nm->shape.d[0], sq->d[0]) ||
        !ir_dim_eq(nm->shape.d[1], sk->d[2])) {
        ir_report(g, loc, "sdpa: the key mask must be a float or i32 (B, T) tensor matching k %s, got %s%s",
               ir_shp(g, k), ir_dtype_name(nm->dtype), ir_shp(g, m));
        return false;
    }
    return true;
}

static bool seg_check(IrGraph *g, IrId q, IrId k, IrId s, Loc loc) {
    const IrNode *ns = ir_nd(g, s);
    const IrShape *sq = &ir_nd(g, q)->shape, *sk = &ir_nd(g, k)->shape;
    if (ns->dtype != IR_I32 || ns->shape.rank != 2 || !ir_dim_eq(ns->shape.d[0], sq->d[0]) ||
        !ir_dim_eq(ns->shape.d[1], sk->d[2])) {
        ir_report(g, loc, "sdpa: the segment ids must be an i32 (B, T) tensor matching k %s, got %s%s",
               ir_shp(g, k), ir_dtype_name(ns->dtype), ir_shp(g, s));
        return false;
    }
    return true;
}

IrId ir_sdpa_seg(IrGraph *g, IrId q, IrId k, IrId v, IrId key_mask, IrId seg, bool causal, double scale,
                 Loc loc) {
    return ir_sdpa_to(g, q, k, v, key_mask, seg, causal, scale, IR_DTYPE_COUNT, loc);
}

IrId ir_sdpa_to(IrGraph *g, IrId q, IrId k, IrId v, IrId key_mask, IrId seg, bool causal, double scale,
                IrDType out, Loc loc) {
    if (!ir_valid(g, q) || !ir_valid(g, k) || !ir_valid(g, v)) return IR_NONE;
    if ((key_mask != IR_NONE && !ir_valid(g, key_mask)) || (seg != IR_NONE && !ir_valid(g, seg))) return IR_NONE;
    if (!sdpa_check(g, q, k, v, loc)) return IR_NONE;
    if (key_mask != IR_NONE && !mask_check(g, q, k, key_mask, loc)) return IR_NONE;
    if (seg != IR_NONE && !seg_check(g, q, k, seg, loc)) return IR_NONE;
    if (!isfinite(scale)) {
        ir_report(g, loc, "sdpa: the scale must be finite");
        return IR_NONE;
    }
    IrDType dt = sdpa_result_dtype(ir_nd(g, q)->dtype);
    if (out != IR_DTYPE_COUNT && out != dt) {   // bf16 over bf16 q, k, v: the f32 result rounded
        if (out != IR_BF16 || ir_nd(g, q)->dtype != IR_BF16) {
            ir_report(g, loc, "sdpa: a %s result of %s q, k, v (only bf16 or f32 over bf16)", ir_dtype_name(out),
                      ir_dtype_name(ir_nd(g, q)->dtype));
            return IR_NONE;
        }
        dt = out;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.causal = causal;
    a.segmented = seg != IR_NONE;
    a.scale = sdpa_scale(&ir_nd(g, q)->shape, scale);
    IrId in[5] = {q, k, v};
    int nin = 3;
    if (key_mask != IR_NONE) in[nin++] = key_mask;
    if (seg != IR_NONE) in[nin++] = seg;
    return ir_append(g, IR_SDPA, dt, ir_nd(g, q)->shape, in, nin, &a, loc);
}

IrId ir_sdpa_masked(IrGraph *g, IrId q, IrId k, IrId v, IrId key_mask, bool causal, double scale,
                    Loc loc) {
    if (!ir_valid(g, key_mask)) return IR_NONE;
    return ir_sdpa_seg(g, q, k, v, key_mask, IR_NONE, causal, scale, loc);
}

IrId ir_sdpa(IrGraph *g, IrId q, IrId k, IrId v, bool causal, double scale, Loc loc) {
    return ir_sdpa_seg(g, q, k, v, IR_NONE, IR_NONE, causal, scale, loc);
}

IrId ir_sdpa_bwd_seg(IrGraph *g, IrOp which, IrId q, IrId k, IrId v, IrId gout, IrId key_mask, IrId seg,
                     bool causal, double scale, Loc loc) {
    if (!ir_valid(g, q) || !ir_valid(g, k) || !ir_valid(g, v) || !ir_valid(g, gout)) return IR_NONE;
    if ((key_mask != IR_NONE && !ir_valid(g, key_mask)) || (seg != IR_NONE && !ir_valid(g, seg))) return IR_NONE;
    if (which != IR_SDPA_BWD_Q && which != IR_SDPA_BWD_K && which != IR_SDPA_BWD_V) {
        ir_report(g, loc, "internal: %s is not an sdpa backward op", ir_op_name(which));
        return IR_NONE;
    }
    if (!sdpa_check(g, q, k, v, loc)) return IR_NONE;
    if (key_mask != IR_NONE && !mask_check(g, q, k, key_mask, loc)) return IR_NONE;
    if (seg != IR_NONE && !seg_check(g, q, k, seg, loc)) return IR_NONE;
    IrDType rt = sdpa_result_dtype(ir_nd(g, q)->dtype);
    if (!ir_shape_eq(&ir_nd(g, gout)->shape, &ir_nd(g, q)->shape) || ir_nd(g, gout)->dtype != rt) {
        ir_report(g, loc, "sdpa backward: gradient %s does not match q %s", ir_shp(g, gout), ir_shp(g, q));
        return IR_NONE;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.causal = causal;
    a.segmented = seg != IR_NONE;
    a.scale = sdpa_scale(&ir_nd(g, q)->shape, scale);
    IrId like = which == IR_SDPA_BWD_Q ? q : which == IR_SDPA_BWD_K ? k : v;
    IrId in[6] = {q, k, v, gout};
    int nin = 4;
    if (key_mask != IR_NONE) in[nin++] = key_mask;
    if (seg != IR_NONE) in[nin++] = seg;
    return ir_append(g, which, rt, ir_nd(g, like)->shape, in, nin, &a, loc);
}

IrId ir_sdpa_bwd_masked(IrGraph *g, IrOp which, IrId q, IrId k, IrId v, IrId gout, IrId key_mask,
                        bool causal, double scale, Loc loc) {
    return ir_sdpa_bwd_seg(g, which, q, k, v, gout, key_mask, IR_NONE, causal, scale, loc);
}

IrId ir_sdpa_bwd(IrGraph *g, IrOp which, IrId q, IrId k, IrId v, IrId gout, bool causal,
                 double scale, Loc loc) {
    return ir_sdpa_bwd_masked(g, which, q, k, v, gout, IR_NONE, causal, scale, loc);
}

static bool ce_check(IrGraph *g, IrId logits, IrId labels, double ls, Loc loc) {
    const IrNode *nl = ir_nd(g, logits), *nb = ir_nd(g, labels);
    if (!ir_dtype_is_float(nl->dtype) || nl->shape.rank < 1) {
        ir_report(g, loc, "cross_entropy: logits must be a floating-point (..., V) tensor, got %s %s",
               ir_dtype_name(nl->dtype), ir_shp(g, logits));
        return false;
    }
    if (nb->dtype != IR_I32) {
        ir_report(g, loc, "cross_entropy: labels must be i32, not %s", ir_dtype_name(nb->dtype));
        return false;
    }
    IrShape pre = nl->shape;
    pre.rank--;
    if (!ir_shape_eq(&pre, &nb->shape)) {
        ir_report(g, loc, "cross_entropy: labels %s must have the logits' shape %s without the last axis",
               ir_shp(g, labels), ir_shp(g, logits));
        return false;
    }
    if (!(ls >= 0.0 && ls < 1.0)) {
        ir_report(g, loc, "cross_entropy: label smoothing must be in [0, 1), got %g", ls);
        return false;
    }
    return true;
}

IrId ir_cross_entropy(IrGraph *g, IrId logits, IrId labels, int64_t ignore_index,
                      double label_smoothing, Loc loc) {
    if (!ir_valid(g, logits) || !ir_valid(g, labels)) return IR_NONE;
    if (!ce_check(g, logits, labels, label_smoothing, loc)) return IR_NONE;
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.ignore_index = ignore_index;
    a.value = label_smoothing;
    IrId in[2] = {logits, labels};
    return ir_append(g, IR_CROSS_ENTROPY, ir_nd(g, logits)->dtype, ir_nd(g, labels)->shape, in, 2, &a, loc);
}

IrId ir_cross_entropy_bwd(IrGraph *g, IrId logits, IrId labels, IrId gloss, int64_t ignore_index,
                          double label_smoothing, Loc loc) {
    if (!ir_valid(g, logits) || !ir_valid(g, labels) || !ir_valid(g, gloss)) return IR_NONE;
    if (!ce_check(g, logits, labels, label_smoothing, loc)) return IR_NONE;
    if (!ir_shape_eq(&ir_nd(g, gloss)->shape, &ir_nd(g, labels)->shape)) {
        ir_report(g, loc, "cross_entropy backward: gradient %s does not match labels %s", ir_shp(g, gloss),
               ir_shp(g, labels));
        return IR_NONE;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.ignore_index = ignore_index;
    a.value = label_smoothing;
    IrId in[3] = {logits, labels, gloss};
    return ir_append(g, IR_CROSS_ENTROPY_BWD, ir_nd(g, logits)->dtype, ir_nd(g, logits)->shape, in, 3, &a,
                     loc);
}

// A head's operands: x (..., H) and w (V, H), V constant, of one float dtype.
static bool head_check(IrGraph *g, IrId x, IrId w, const char *what, Loc loc) {
    const IrNode *nx = ir_nd(g, x), *nw = ir_nd(g, w);
    if (!ir_dtype_is_float(nx->dtype) || nx->dtype != nw->dtype || nx->shape.rank < 1 || nw->shape.rank != 2 ||
        !ir_dim_eq(nx->shape.d[nx->shape.rank - 1], nw->shape.d[1]) || nw->shape.d[0].syms) {
        ir_report(g, loc, "%s: x (..., H) and w (V, H) must share a float dtype and H, got %s %s, %s %s", what,
                  ir_dtype_name(nx->dtype), ir_shp(g, x), ir_dtype_name(nw->dtype), ir_shp(g, w));
        return false;
    }
    return true;
}

// head_check, and labels i32 (...) matching x without its last axis.
static bool linear_ce_check(IrGraph *g, IrId x, IrId w, IrId labels, double ls, Loc loc) {
    if (!head_check(g, x, w, "linear_ce", loc)) return false;
    const IrNode *nx = ir_nd(g, x), *nl = ir_nd(g, labels);
    IrShape pre = nx->shape;
    pre.rank--;
    if (nl->dtype != IR_I32 || !ir_shape_eq(&pre, &nl->shape)) {
        ir_report(g, loc, "linear_ce: labels must be i32 %s, got %s %s", ir_shs(&pre), ir_dtype_name(nl->dtype),
                  ir_shp(g, labels));
        return false;
    }
    if (!(ls >= 0.0 && ls < 1.0)) {
        ir_report(g, loc, "linear_ce: label smoothing must be in [0, 1), got %g", ls);
        return false;
    }
    return true;
}

IrId ir_linear_ce(IrGraph *g, IrId x, IrId w, IrId labels, int64_t ignore_index, double label_smoothing,
                  Loc loc) {
    if (!ir_valid(g, x) || !ir_valid(g, w) || !ir_valid(g, labels)) return IR_NONE;
    if (!linear_ce_check(g, x, w, labels, label_smoothing, loc)) return IR_NONE;
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.ignore_index = ignore_index;
    a.value = label_smoothing;
    IrId in[3] = {x, w, labels};
    IrDType dt = ir_nd(g, x)->dtype == IR_BF16 ? IR_F32 : ir_nd(g, x)->dtype;
    return ir_append(g, IR_LINEAR_CE, dt, ir_nd(g, labels)->shape, in, 3, &a, loc);
}

IrId ir_linear_argmax(IrGraph *g, IrId x, IrId w, Loc loc) {
    if (!ir_valid(g, x) || !ir_valid(g, w) || !head_check(g, x, w, "linear_argmax", loc)) return IR_NONE;
    IrShape s = ir_nd(g, x)->shape;
    s.rank--;
    IrId in[2] = {x, w};
    return ir_append(g, IR_LINEAR_ARGMAX, IR_I32, s, in, 2, NULL, loc);
}

IrId ir_linear_ce_bwd(IrGraph *g, IrOp which, IrId x, IrId w, IrId labels, IrId gloss, int64_t ignore_index,
                      double label_smoothing, Loc loc) {
    if (!ir_valid(g, x) || !ir_valid(g, w) || !ir_valid(g, labels) || !ir_valid(g, gloss)) return IR_NONE;
    if (which != IR_LINEAR_CE_BWD_X && which != IR_LINEAR_CE_BWD_W) {
        ir_report(g, loc, "internal: %s is not a linear_ce backward op", ir_op_name(which));
        return IR_NONE;
    }
    if (!linear_ce_check(g, x, w, labels, label_smoothing, loc)) return IR_NONE;
    IrDType dt = ir_nd(g, x)->dtype == IR_BF16 ? IR_F32 : ir_nd(g, x)->dtype;
    if (!ir_shape_eq(&ir_nd(g, gloss)->shape, &ir_nd(g, labels)->shape) || ir_nd(g, gloss)->dtype != dt) {
        ir_report(g, loc, "linear_ce backward: gradient %s %s does not match labels %s", ir_dtype_name(ir_nd(g, gloss)->dtype),
                  ir_shp(g, gloss), ir_shp(g, labels));
        return IR_NONE;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.ignore_index = ignore_index;
    a.value = label_smoothing;
    IrId in[4] = {x, w, labels, gloss};
    IrId like = which == IR_LINEAR_CE_BWD_X ? x : w;
    return ir_append(g, which, dt, ir_nd(g, like)->shape, in, 4, &a, loc);
}

IrId ir_embed_bwd(IrGraph *g, IrId ids, IrId gout, IrShape table_shape, Loc loc) {
    if (!ir_valid(g, ids) || !ir_valid(g, gout)) return IR_NONE;
    IrShape s = ir_nd(g, ids)->shape;
    if (table_shape.rank != 2 || s.rank + 1 > IR_MAX_RANK) {
        ir_report(g, loc, "embed backward: bad table shape");
        return IR_NONE;
    }
    s.d[s.rank++] = table_shape.d[1];
    if (!ir_shape_eq(&s, &ir_nd(g, gout)->shape)) {
        ir_report(g, loc, "embed backward: gradient %s does not match %s", ir_shp(g, gout), ir_shs(&s));
        return IR_NONE;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.shape = table_shape;
    IrId in[2] = {ids, gout};
    return ir_append(g, IR_EMBED_BWD, ir_nd(g, gout)->dtype, table_shape, in, 2, &a, loc);
}

IrId ir_gather(IrGraph *g, IrId x, IrId idx, int axis, Loc loc) {
    if (!ir_valid(g, x) || !ir_valid(g, idx)) return IR_NONE;
    const IrNode *nx = ir_nd(g, x), *ni = ir_nd(g, idx);
    if (ni->dtype != IR_I32) {
        ir_report(g, loc, "gather: indices must be i32, not %s", ir_dtype_name(ni->dtype));
        return IR_NONE;
    }
    if (!ir_dtype_is_float(nx->dtype)) {
        ir_report(g, loc, "gather: x must be a floating-point tensor, not %s", ir_dtype_name(nx->dtype));
        return IR_NONE;
    }
    int ax;
    if (!ir_norm_axis(g, axis, nx->shape.rank, &ax, "gather", loc)) return IR_NONE;
    bool ok = nx->shape.rank == ni->shape.rank;
    for (int i = 0; ok && i < nx->shape.rank; i++)
        if (i != ax && !ir_dim_eq(nx->shape.d[i], ni->shape.d[i])) ok = false;
    if (!ok) {
        ir_report(g, loc, "gather: indices %s must match x %s in every dimension but axis %d",
               ir_shp(g, idx), ir_shp(g, x), axis);
        return IR_NONE;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.axis = ax;
    IrId in[2] = {x, idx};
    return ir_append(g, IR_GATHER, nx->dtype, ni->shape, in, 2, &a, loc);
}

IrId ir_gather_bwd(IrGraph *g, IrId idx, IrId gout, int axis, IrShape x_shape, Loc loc) {
    if (!ir_valid(g, idx) || !ir_valid(g, gout)) return IR_NONE;
    if (!ir_shape_eq(&ir_nd(g, idx)->shape, &ir_nd(g, gout)->shape) || axis < 0 || axis >= x_shape.rank) {
        ir_report(g, loc, "gather backward: gradient %s does not match indices %s", ir_shp(g, gout),
               ir_shp(g, idx));
        return IR_NONE;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.axis = axis;
    a.shape = x_shape;
    IrId in[2] = {idx, gout};
    return ir_append(g, IR_GATHER_BWD, ir_nd(g, gout)->dtype, x_shape, in, 2, &a, loc);
}

// ---------------------------------------------------------------------------------------------
// builders: quantized weights

double ir_nf4_value(int code) {
    static const double nf4[16] = {
        -1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453,
        -0.28444138169288635, -0.18477343022823334, -0.09105003625154495, 0.0,
        0.07958029955625534, 0.16093020141124725, 0.24611230194568634, 0.33791524171829224,
        0.44070982933044434, 0.5626170039176941, 0.7229568362236023, 1.0,
    };
    return (code >= 0 && code < 16) ? nf4[code] : 0.0;
}

// x is a constant 1-D tensor of dtype dt with n elements.
static bool is_vec(const IrGraph *g, IrId x, IrDType dt, int64_t n) {
    const IrNode *nd = ir_nd(g, x);
    bool float_ok = dt == IR_F32 && ir_dtype_is_float(nd->dtype);
    return (nd->dtype == dt || float_ok) && nd->shape.rank == 1 && nd->shape.d[0].syms == 0 &&
           nd->shape.d[0].coef == n;
}

IrId ir_dequant_nf4(IrGraph *g, IrId packed, IrId absmax, int64_t block, IrShape shape, Loc loc) {
    return ir_dequant_nf4_to(g, packed, absmax, block, shape, IR_DTYPE_COUNT, loc);
}

IrId ir_dequant_nf4_to(IrGraph *g, IrId packed, IrId absmax, int64_t block, IrShape shape, IrDType out, Loc loc) {
    if (!ir_valid(g, packed) || !ir_valid(g, absmax)) return IR_NONE;
    if (!ir_shape_ok(g, &shape, loc, "dequant_nf4")) return IR_NONE;
    IrDim nd;
    if (!ir_shape_numel_dim(&shape, &nd) || nd.syms || block <= 0) {
        ir_report(g, loc, "dequant_nf4: shape %s must be constant and the block size positive",
               ir_shs(&shape));
        return IR_NONE;
    }
    int64_t n = nd.coef, nbytes = n / 2 + n % 2, nblocks = n / block + (n % block != 0);
    if (!is_vec(g, packed, IR_U8, nbytes) || !is_vec(g, absmax, IR_F32, nblocks)) {
        ir_report(g, loc, "dequant_nf4: expected u8[%" PRId64 "] codes and f32[%" PRId64 "] absmax, got "
               "%s%s and %s%s", nbytes, nblocks, ir_dtype_name(ir_nd(g, packed)->dtype),
               ir_shp(g, packed), ir_dtype_name(ir_nd(g, absmax)->dtype), ir_shp(g, absmax));
        return IR_NONE;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.block = block;
    a.shape = shape;
    IrId in[2] = {packed, absmax};
    IrDType dt = ir_nd(g, absmax)->dtype;
    if (out != IR_DTYPE_COUNT) {
        if (!ir_dtype_is_float(out)) {
            ir_report(g, loc, "dequant_nf4: the weight must be a float dtype, not %s", ir_dtype_name(out));
            return IR_NONE;
        }
        dt = out;
    }
    return ir_append(g, IR_DEQUANT_NF4, dt, shape, in, 2, &a, loc);
}

IrId ir_dequant_map8(IrGraph *g, IrId q, IrId map, IrId scale, int64_t block, double offset, Loc loc) {
    if (!ir_valid(g, q) || !ir_valid(g, map) || !ir_valid(g, scale)) return IR_NONE;
    const IrShape *sq = &ir_nd(g, q)->shape;
    int64_t n = sq->rank == 1 && !sq->d[0].syms ? sq->d[0].coef : -1;
    int64_t nblocks = block > 0 && n >= 0 ? n / block + (n % block != 0) : -1;
    if (n < 0 || ir_nd(g, q)->dtype != IR_U8 || block <= 0 || !is_vec(g, map, IR_F32, 256) ||
        !is_vec(g, scale, IR_F32, nblocks) || !isfinite(offset)) {
        ir_report(g, loc, "dequant_map8: expected u8[n] codes, a f32[256] map and f32[ceil(n/%" PRId64
               ")] scales, got %s, %s and %s", block, ir_shp(g, q), ir_shp(g, map), ir_shp(g, scale));
        return IR_NONE;
    }
    IrAttrs a;
    memset(&a, 0, sizeof a);
    a.block = block;
    a.value = offset;
    IrId in[3] = {q, map, scale};
    return ir_append(g, IR_DEQUANT_MAP8, ir_nd(g, scale)->dtype, ir_shape1(ir_dim(n)), in, 3, &a, loc);
}
