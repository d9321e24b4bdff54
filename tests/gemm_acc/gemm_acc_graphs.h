// gemm_acc_graphs.h — the graphs test_gemm_acc.c and test_gemm_acc_cuda.c build by hand (a
// LoRA layer, a chain of products, the batch paths of a product, biases, adds that must stay) and
// their helpers: each leaf's random values from its name, the normwise comparison of two outputs.
#ifndef TRLC_TEST_GEMM_ACC_GRAPHS_H
#define TRLC_TEST_GEMM_ACC_GRAPHS_H
#include "autocast.h"
#include "autodiff.h"
#include "ir.h"
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define L0 ((Loc){0, 0, 0})
enum { K = 24, N = 20, R = 4, M = 5 };

static inline IrShape bt(int64_t last) { return ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(last)); }

typedef void (*BuildFn)(IrGraph *g, int variant);

static inline int count_op(const IrGraph *g, IrOp op, int nin) {
    int c = 0;
    for (int i = 0; i < g->n; i++) c += g->nodes[i].op == op && (nin < 0 || g->nodes[i].nin == nin);
    return c;
}

static inline uint64_t hash_name(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static inline float frand(uint64_t *st) {
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*st >> 40) / (double)(1ull << 24)) * 2.0f - 1.0f;
}

// n values of the leaf named name (the same in every graph and program)
static inline float *leaf_values(const char *name, int64_t n) {
    float *v = malloc((size_t)(n > 0 ? n : 1) * sizeof *v);
    uint64_t st = hash_name(name);
    for (int64_t k = 0; v && k < n; k++) v[k] = frand(&st);
    return v;
}

// The values of leaf n: leaf_values, rounded to bf16 for a bf16 leaf (a frozen weight autocast
// retyped: the caller rounds, ac_round_bf16)
static inline float *leaf_values_of(const IrNode *n, int64_t ne) {
    float *v = leaf_values(n->name, ne);
    if (v && n->dtype == IR_BF16) ac_round_bf16(v, ne);
    return v;
}

// max |a - b| / max |b| (0 when both are all zeros; infinite with a NaN)
static inline double normwise(const float *a, const float *b, int64_t n) {
    double m = 0, s = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)a[i] - (double)b[i]);
        if (e != e) return INFINITY;   // a NaN on either side
        if (e > m) m = e;
        if (fabs((double)b[i]) > s) s = fabs((double)b[i]);
    }
    return s > 0 ? m / s : m;
}

// A LoRA layer: y = x Wᵀ + s (x Aᵀ) Bᵀ with the operands of the add and of the scaling mul in
// either order (variant bits 0 and 1); variant 4: differentiated (loss sum(y²), x itself a
// product h0 = x0 W0ᵀ with W0 trainable, so that the backward sums the products over x); bit 3
// (8): the output is -y (y read by a non-product, not an output itself: a linear output).
static inline void build_lora(IrGraph *g, int variant) {
    IrId x = ir_input(g, "x", IR_F32, bt(K), L0);
    if (variant & 4) x = ir_linear(g, x, ir_param(g, "W0", IR_F32, ir_shape2(ir_dim(K), ir_dim(K)), true, L0), L0);
    IrId W = ir_param(g, "W", IR_F32, ir_shape2(ir_dim(N), ir_dim(K)), false, L0);
    IrId A = ir_param(g, "A", IR_F32, ir_shape2(ir_dim(R), ir_dim(K)), true, L0);
    IrId Bm = ir_param(g, "B", IR_F32, ir_shape2(ir_dim(N), ir_dim(R)), true, L0);
    IrId base = ir_linear(g, x, W, L0);
    IrId h = ir_linear(g, ir_linear(g, x, A, L0), Bm, L0);
    IrId s = ir_scalar(g, 2.5, L0);
    IrId sh = variant & 1 ? ir_mul(g, s, h, L0) : ir_mul(g, h, s, L0);
    IrId y = variant & 2 ? ir_add(g, sh, base, L0) : ir_add(g, base, sh, L0);
    if (!(variant & 4)) {
        ir_add_output(g, variant & 8 ? ir_unary(g, IR_NEG, y, L0) : y, "y");
        return;
    }
    IrId loss = ir_reduce_all(g, IR_SUM, ir_unary(g, IR_SQUARE, y, L0), L0);
    ir_set_loss(g, ir_reshape(g, loss, ir_shape0(), L0));
    ad_backward(g, NULL, 0);
}

// A LoRA layer under precision = bf16 (autocast.h's linear outputs): build_lora's (variant bits 0,
// 1: operand orders; 4: differentiated; y read by a non-product) after ir_autocast_bf16: the base
// product writes bf16, the f32 sum with the LoRA product is rounded by a cast, which
// ir_fuse_gemm_accumulate folds into one product with bf16 C (the base) and D.
static inline void build_lowp_lora(IrGraph *g, int variant) {
    build_lora(g, variant | 8);
    ir_autocast_bf16(g, NULL);
}

// y = (m1 + m2) + m3, three products of x
static inline void build_chain(IrGraph *g, int variant) {
    (void)variant;
    IrId x = ir_input(g, "x", IR_F32, bt(K), L0);
    IrId m[3];
    for (int i = 0; i < 3; i++) {
        char nm[8];
        snprintf(nm, sizeof nm, "W%d", i);
        m[i] = ir_linear(g, x, ir_param(g, nm, IR_F32, ir_shape2(ir_dim(N), ir_dim(K)), false, L0), L0);
    }
    ir_add_output(g, ir_add(g, ir_add(g, m[0], m[1], L0), m[2], L0), "y");
}

// The batch paths: 0 a (2, 3, M, K) @ b (K, N) (one product of 6M rows), 1 strided batches
// (2, 3, ...) both, 2 broadcast batches a (2, 1, M, K)ᵀ @ b (1, 3, N, K)ᵀ, 3 one row per batch
// (M = 1: matrix-vector), 4 a (3, K, M)ᵀ @ b (K, N) (batched, a transposed), 5 as 1 on bf16
// operands (mixed precision: an f32 product of bf16 casts), 6 and 7 as 2 with an inner dimension
// of 3, f32 and bf16: the broadcast path's per-batch views of a then start 60 (f32) or 30 (bf16)
// bytes apart, less aligned than cuBLASLt's default assumption; y = c + 0.3 m.
static inline void build_batch(IrGraph *g, int variant) {
    IrShape sa, sb;
    bool ta = false, tb = false;
    switch (variant) {
    case 0: sa = ir_shape4(ir_dim(2), ir_dim(3), ir_dim(M), ir_dim(K)), sb = ir_shape2(ir_dim(K), ir_dim(N)); break;
    case 1: case 5:
        sa = ir_shape4(ir_dim(2), ir_dim(3), ir_dim(M), ir_dim(K)), sb = ir_shape4(ir_dim(2), ir_dim(3), ir_dim(N), ir_dim(K));
        tb = true;
        break;
    case 2: case 6: case 7: {
        int64_t k = variant == 2 ? K : 3;
        sa = ir_shape4(ir_dim(2), ir_dim(1), ir_dim(k), ir_dim(M)), sb = ir_shape4(ir_dim(1), ir_dim(3), ir_dim(N), ir_dim(k));
        ta = tb = true;
        break;
    }
    case 3: sa = ir_shape3(ir_dim(3), ir_dim(1), ir_dim(K)), sb = ir_shape3(ir_dim(3), ir_dim(K), ir_dim(N)); break;
    default: sa = ir_shape3(ir_dim(3), ir_dim(K), ir_dim(M)), sb = ir_shape2(ir_dim(K), ir_dim(N)), ta = true; break;
    }
    IrId a = ir_input(g, "a", IR_F32, sa, L0), b = ir_input(g, "b", IR_F32, sb, L0);
    IrId m = variant == 5 || variant == 7 ? ir_matmul_to(g, ir_cast(g, a, IR_BF16, L0), ir_cast(g, b, IR_BF16, L0), ta, tb, IR_F32, L0)
                          : ir_matmul(g, a, b, ta, tb, L0);
    IrId c = ir_input(g, "c", IR_F32, g->nodes[m].shape, L0);
    ir_add_output(g, ir_add(g, c, ir_mul(g, ir_scalar(g, 0.3, L0), m, L0), L0), "y");
}

// A bias (N) added to a product (the bias epilogue): 0 add(m, b), 1 add(b, m), 2 b (1, 1, N),
// 3 add(0.5 m, b) (alpha and a bias), 4 LoRA + bias as lora.c lowers it: (m + s h) + b, 5 LoRA +
// bias the other way: (m + b) + s h; the batch paths (as build_batch): 6 strided batches, 7
// broadcast batches with a (1, 1, 1, N) bias, 8 one row per batch, 9 bf16 operands; 10 a linear
// layer with a trainable bias, differentiated (loss sum(y²)). Bit 5 (32): the output is -y (y read
// by a non-product, not an output itself: a linear output under precision = bf16).
static inline void build_bias(IrGraph *g, int variant) {
    bool neg = variant & 32;
    variant &= 31;
    IrId x = ir_input(g, "x", IR_F32, bt(K), L0);
    IrId W = ir_param(g, "W", IR_F32, ir_shape2(ir_dim(N), ir_dim(K)), false, L0);
    IrId b = ir_param(g, "bias", IR_F32, ir_shape1(ir_dim(N)), variant == 10, L0);
    IrId m = ir_linear(g, x, W, L0), y = IR_NONE;
    switch (variant) {
    case 0: case 10: y = ir_add(g, m, b, L0); break;
    case 1: y = ir_add(g, b, m, L0); break;
    case 2: y = ir_add(g, m, ir_param(g, "b3", IR_F32, ir_shape3(ir_dim(1), ir_dim(1), ir_dim(N)), false, L0), L0); break;
    case 3: y = ir_add(g, ir_mul(g, m, ir_scalar(g, 0.5, L0), L0), b, L0); break;
    case 4: case 5: {
        IrId A = ir_param(g, "A", IR_F32, ir_shape2(ir_dim(R), ir_dim(K)), true, L0);
        IrId Bm = ir_param(g, "B", IR_F32, ir_shape2(ir_dim(N), ir_dim(R)), true, L0);
        IrId sh = ir_mul(g, ir_scalar(g, 2.5, L0), ir_linear(g, ir_linear(g, x, A, L0), Bm, L0), L0);
        y = variant == 4 ? ir_add(g, ir_add(g, m, sh, L0), b, L0) : ir_add(g, ir_add(g, m, b, L0), sh, L0);
        break;
    }
    default: {   // 6..9: the batch paths
        IrShape sa, sb;
        bool ta = false, tb = false;
        if (variant == 6 || variant == 9)
            sa = ir_shape4(ir_dim(2), ir_dim(3), ir_dim(M), ir_dim(K)), sb = ir_shape4(ir_dim(2), ir_dim(3), ir_dim(N), ir_dim(K)), tb = true;
        else if (variant == 7)
            sa = ir_shape4(ir_dim(2), ir_dim(1), ir_dim(K), ir_dim(M)), sb = ir_shape4(ir_dim(1), ir_dim(3), ir_dim(N), ir_dim(K)), ta = tb = true;
        else sa = ir_shape3(ir_dim(3), ir_dim(1), ir_dim(K)), sb = ir_shape3(ir_dim(3), ir_dim(K), ir_dim(N));
        IrId a = ir_input(g, "a", IR_F32, sa, L0), bb = ir_input(g, "b", IR_F32, sb, L0);
        IrId mm = variant == 9 ? ir_matmul_to(g, ir_cast(g, a, IR_BF16, L0), ir_cast(g, bb, IR_BF16, L0), ta, tb, IR_F32, L0)
                               : ir_matmul(g, a, bb, ta, tb, L0);
        IrId bias = variant == 7 ? ir_param(g, "b4", IR_F32, ir_shape4(ir_dim(1), ir_dim(1), ir_dim(1), ir_dim(N)), false, L0) : b;
        ir_add_output(g, m, "m");   // the (B, T, N) product stays, read by this output alone
        y = ir_add(g, mm, bias, L0);
        break;
    }
    }
    if (variant != 10) {
        ir_add_output(g, neg ? ir_unary(g, IR_NEG, y, L0) : y, "y");
        return;
    }
    IrId loss = ir_reduce_all(g, IR_SUM, ir_unary(g, IR_SQUARE, y, L0), L0);
    ir_set_loss(g, ir_reshape(g, loss, ir_shape0(), L0));
    ad_backward(g, NULL, 0);
}

// Biased linear layers under precision = bf16 (autocast.h): build_bias's (0, 1 operand orders, 2 a
// (1, 1, N) bias, 4 LoRA + bias as lora.c lowers it, 5 the other association, 10 a trained bias,
// differentiated; y read by a non-product) after ir_autocast_bf16: bf16(x Wᵀ + bf16(b)) is the f32
// product plus the widened bf16 bias rounded by a cast, which ir_fuse_gemm_accumulate folds into
// one product with a bf16 bias and a bf16 result (cuBLASLt's bias epilogue with a bf16 D); with
// LoRA (4) the LoRA product then accumulates into that bf16 result (bf16 C and D).
static inline void build_lowp_bias(IrGraph *g, int variant) {
    build_bias(g, variant | 32);
    ir_autocast_bf16(g, NULL);
}

// Adds that must stay: 0 the product is an output too, 1 the product is read elsewhere as well,
// 2 a broadcasting add that is no bias (a (B, 1, N) addend), 3 a bf16 product and add, 4 a
// product scaled by a tensor, 5 add(m, m), 6 a (1, 1, 1, N) "bias" of a higher rank than the
// product (the add's result is not the product's shape), 7 a bias added to a product read
// elsewhere as well
static inline void build_keep(IrGraph *g, int variant) {
    IrId x = ir_input(g, "x", IR_F32, bt(K), L0);
    IrId W = ir_param(g, "W", IR_F32, ir_shape2(ir_dim(N), ir_dim(K)), false, L0);
    IrId c = ir_input(g, "c", IR_F32, bt(N), L0);
    IrId m = ir_linear(g, x, W, L0), y = IR_NONE;
    switch (variant) {
    case 0: y = ir_add(g, m, c, L0), ir_add_output(g, m, "m"); break;
    case 1: y = ir_add(g, m, c, L0), ir_add_output(g, ir_unary(g, IR_EXP, m, L0), "e"); break;
    case 2: y = ir_add(g, m, ir_input(g, "bb", IR_F32, ir_shape3(ir_dim_b(), ir_dim(1), ir_dim(N)), L0), L0); break;
    case 3: {
        IrId mb = ir_linear(g, ir_cast(g, x, IR_BF16, L0), ir_cast(g, W, IR_BF16, L0), L0);
        y = ir_cast(g, ir_add(g, mb, ir_cast(g, c, IR_BF16, L0), L0), IR_F32, L0);
        break;
    }
    case 4: y = ir_add(g, ir_mul(g, m, ir_input(g, "v", IR_F32, ir_shape0(), L0), L0), c, L0); break;
    case 5: y = ir_add(g, m, m, L0); break;
    case 6: y = ir_add(g, m, ir_input(g, "row", IR_F32, ir_shape4(ir_dim(1), ir_dim(1), ir_dim(1), ir_dim(N)), L0), L0); break;
    default:
        y = ir_add(g, m, ir_param(g, "bias", IR_F32, ir_shape1(ir_dim(N)), false, L0), L0);
        ir_add_output(g, ir_unary(g, IR_EXP, m, L0), "e");
        break;
    }
    ir_add_output(g, y, "y");
}

#endif
