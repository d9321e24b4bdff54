// test_gemm_acc.c — ir_fuse_gemm_accumulate (gemm_acc.h) on small graphs built by hand
// (gemm_acc_graphs.h): a LoRA layer (base product + scaled low-rank product, both operand orders),
// a chain of three products summed, the batch paths of a product (one folded product, strided
// batches, broadcast batches, a row vector, transposes, bf16 operands) and a differentiated LoRA
// layer whose backward sums products over x; biases (N) / (1, .., 1, N) taken by the product
// (either operand order, with alpha, LoRA + bias in both association orders: the base product
// takes the bias and the LoRA product accumulates into it, the batch paths, bf16 operands, a
// trained bias), and under precision = bf16 (a LoRA sum's bf16 C and D; a biased linear layer's
// bf16 bias and D, with LoRA accumulating into it). Each is built twice; the pass rewrites one; the node kinds and counts are checked
// and the CPU runs both on the same random inputs: every output equal within 1e-6 (normwise
// relative).
// Cases that must stay as they are: a product that is also an output or read elsewhere (with a
// full addend or a bias), a broadcasting add that is no bias ((B, 1, N), a bias of higher rank),
// a bf16 product, a product scaled by a tensor, add(m, m). Also: the builder's checks of the
// addend, ir_validate of a rewritten graph, autodiff refusing an accumulating matmul,
// TRLC_GEMM_ACC=0 and =nobias.
#include "cpu.h"
#include "gemm_acc.h"
#include "gemm_acc_graphs.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

// Runs g on the CPU (B = 2, T = 3) with each leaf's values from its name; returns the outputs as
// malloc'd copies (outs[i], n[i] elements), or false.
static bool run_cpu(const IrGraph *g, Diag *d, float **outs, int64_t *n) {
    const int64_t sym[IR_NSYMS] = {2, 3};
    CpuProgram *p = cpu_program_new(g, IR_F32, d);
    if (!p) return false;
    float **bufs = calloc((size_t)g->n, sizeof *bufs);
    bool ok = bufs != NULL;
    for (int i = 0; ok && i < g->n; i++) {
        const IrNode *nd = &g->nodes[i];
        if (!ir_is_leaf(nd)) continue;
        int64_t ne = ir_shape_numel(&nd->shape, sym);
        bufs[i] = leaf_values_of(nd, ne);
        ok = bufs[i] && cpu_bind(p, i, bufs[i], (size_t)ne * sizeof(float)) == 0;
    }
    ok = ok && cpu_run(p, sym, 0) == 0;
    for (int o = 0; ok && o < g->nouts; o++) {
        const CpuTensor *t = cpu_output(p, o);
        ok = t != NULL && (outs[o] = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float))) != NULL;
        if (ok) memcpy(outs[o], t->data, (size_t)t->numel * sizeof(float)), n[o] = t->numel;
    }
    for (int i = 0; bufs && i < g->n; i++) free(bufs[i]);
    free(bufs);
    cpu_program_free(p);
    return ok;
}

// Builds the graph twice, rewrites one: want rewrites (scaled of them with alpha != 1, bias of them
// with a bias; want < 0: at least -want; want_scaled / want_bias < 0: not checked), no IR_ADD left
// when none_left; the outputs equal on the CPU within tol (normwise).
static void compare_b(const char *name, BuildFn build, int variant, int want, int want_scaled, int want_bias,
                      bool none_left, double tol) {
    Diag d;
    diag_init(&d, stderr);
    IrGraph a, b;
    ir_graph_init(&a, &d, IR_F32);
    ir_graph_init(&b, &d, IR_F32);
    build(&a, variant);
    build(&b, variant);
    CHECK_MSG(a.errors == 0 && b.errors == 0, "%s/%d: builds", name, variant);
    int mm_before = count_op(&b, IR_MATMUL, -1), add_before = count_op(&b, IR_ADD, -1);
    GemmAccStats st;
    int got = ir_fuse_gemm_accumulate(&b, &st);
    bool count_ok = want >= 0 ? got == want : got >= -want;
    CHECK_MSG(count_ok && st.rewritten == got, "%s/%d: %d rewrites, want %d", name, variant, got, want);
    if (want_scaled >= 0) CHECK_MSG(st.scaled == want_scaled, "%s/%d: %d scaled, want %d", name, variant, st.scaled, want_scaled);
    if (want_bias >= 0) CHECK_MSG(st.bias == want_bias, "%s/%d: %d biases, want %d", name, variant, st.bias, want_bias);
    int nbias = 0;
    for (int i = 0; i < b.n; i++) nbias += ir_matmul_bias(&b, &b.nodes[i]);
    CHECK_MSG(nbias == st.bias, "%s/%d: %d products with a bias, %d counted", name, variant, nbias, st.bias);
    CHECK_MSG(count_op(&b, IR_MATMUL, 3) == got && count_op(&b, IR_MATMUL, -1) == mm_before &&
                  count_op(&b, IR_ADD, -1) == add_before - got,
              "%s/%d: %d matmuls (%d accumulating), %d adds; before %d, %d", name, variant, count_op(&b, IR_MATMUL, -1),
              count_op(&b, IR_MATMUL, 3), count_op(&b, IR_ADD, -1), mm_before, add_before);
    if (got > 0) CHECK_MSG(st.removed >= got, "%s/%d: %d nodes removed", name, variant, st.removed);
    if (none_left) CHECK_MSG(count_op(&b, IR_ADD, -1) == 0, "%s/%d: adds left", name, variant);
    CHECK_MSG(ir_verify(&b) && ir_validate(&b, &d), "%s/%d: the rewritten graph validates", name, variant);
    CHECK(a.nouts == b.nouts);
    float *oa[16] = {0}, *ob[16] = {0};
    int64_t na[16] = {0}, nb[16] = {0};
    bool ran = a.nouts <= 16 && run_cpu(&a, &d, oa, na) && run_cpu(&b, &d, ob, nb);
    CHECK_MSG(ran, "%s/%d: runs", name, variant);
    double worst = 0;
    for (int o = 0; ran && o < a.nouts; o++) {
        CHECK_MSG(na[o] == nb[o] && na[o] > 0, "%s/%d: output %d sizes", name, variant, o);
        if (na[o] != nb[o]) continue;
        double e = normwise(ob[o], oa[o], na[o]);
        CHECK_MSG(e <= tol, "%s/%d: output %s differs by %.3g", name, variant, a.outs[o].name, e);
        if (!(e <= worst)) worst = e;
    }
    if (build == build_lowp_lora) {   // bf16 C and D: the forward's sum; the backward's stay f32
        int lowp = 0;
        for (int i = 0; i < b.n; i++)
            lowp += b.nodes[i].op == IR_MATMUL && b.nodes[i].nin == 3 && b.nodes[i].dtype == IR_BF16 &&
                    b.nodes[b.nodes[i].in[2]].dtype == IR_BF16 && b.nodes[b.nodes[i].in[2]].op == IR_MATMUL;
        CHECK_MSG(st.lowp == 1 && lowp == 1, "%s/%d: %d bf16 sums (%d counted), want 1", name, variant, lowp, st.lowp);
    }
    if (build == build_lowp_bias) {   // a bf16 bias and result: the forward's biased product
        int lowp = 0, sums = 0;
        for (int i = 0; i < b.n; i++) {
            const IrNode *x = &b.nodes[i];
            if (x->op != IR_MATMUL || x->nin != 3 || x->dtype != IR_BF16 || b.nodes[x->in[2]].dtype != IR_BF16) continue;
            lowp += ir_matmul_bias(&b, x);
            // LoRA + bias as lowered (4): the LoRA product accumulates into the bf16 biased product
            sums += !ir_matmul_bias(&b, x) && b.nodes[x->in[2]].op == IR_MATMUL && ir_matmul_bias(&b, &b.nodes[x->in[2]]);
        }
        CHECK_MSG(lowp == 1 && sums == (variant == 4) && st.lowp == lowp + sums,
                  "%s/%d: %d bf16 biased products, %d bf16 LoRA sums over one (%d counted)", name, variant, lowp, sums,
                  st.lowp);
    }
    printf("%-12s variant %d: %d rewrites (%d scaled, %d biases, %d bf16), %d nodes removed; outputs within %.2g\n",
           name, variant, got, st.scaled, st.bias, st.lowp, st.removed, worst);
    for (int o = 0; o < 16; o++) free(oa[o]), free(ob[o]);
    ir_graph_free(&a);
    ir_graph_free(&b);
    diag_free(&d);
}

static void compare(const char *name, BuildFn build, int variant, int want, int want_scaled, bool none_left) {
    compare_b(name, build, variant, want, want_scaled, 0, none_left, 1e-6);
}

static void check_builder(void) {
    FILE *null = fopen("/dev/null", "w");
    Diag d;
    diag_init(&d, null ? null : stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    IrId x = ir_input(&g, "x", IR_F32, ir_shape2(ir_dim(M), ir_dim(K)), L0);
    IrId w = ir_param(&g, "w", IR_F32, ir_shape2(ir_dim(N), ir_dim(K)), true, L0);
    IrId c = ir_input(&g, "c", IR_F32, ir_shape2(ir_dim(M), ir_dim(N)), L0);
    IrId row = ir_input(&g, "row", IR_F32, ir_shape2(ir_dim(1), ir_dim(N)), L0);
    IrId ok = ir_matmul_acc(&g, x, w, false, true, IR_DTYPE_COUNT, c, 0.25, L0);
    CHECK(ok != IR_NONE && g.nodes[ok].nin == 3 && ir_matmul_alpha(&g.nodes[ok]) == 0.25 && g.errors == 0);
    CHECK(ir_matmul_alpha(&g.nodes[ir_matmul(&g, x, w, false, true, L0)]) == 1.0);
    // biases: (N) and (1, N) are; a column (M, 1), (2, N) and a (1, 1, N) of higher rank are not
    IrId vec = ir_input(&g, "vec", IR_F32, ir_shape1(ir_dim(N)), L0);
    IrId rb = ir_matmul_acc(&g, x, w, false, true, IR_DTYPE_COUNT, row, 1.0, L0);
    IrId vb = ir_matmul_acc(&g, x, w, false, true, IR_DTYPE_COUNT, vec, 0.5, L0);
    CHECK(rb != IR_NONE && vb != IR_NONE && ir_matmul_bias(&g, &g.nodes[rb]) && ir_matmul_bias(&g, &g.nodes[vb]) &&
          !ir_matmul_bias(&g, &g.nodes[ok]) && g.errors == 0);
    IrId col = ir_input(&g, "col", IR_F32, ir_shape2(ir_dim(M), ir_dim(1)), L0);
    IrId two = ir_input(&g, "two", IR_F32, ir_shape2(ir_dim(2), ir_dim(N)), L0);
    IrId r3 = ir_input(&g, "r3", IR_F32, ir_shape3(ir_dim(1), ir_dim(1), ir_dim(N)), L0);
    CHECK(ir_matmul_acc(&g, x, w, false, true, IR_DTYPE_COUNT, col, 1.0, L0) == IR_NONE && g.errors == 1);
    CHECK(ir_matmul_acc(&g, x, w, false, true, IR_DTYPE_COUNT, two, 1.0, L0) == IR_NONE && g.errors == 2);
    CHECK(ir_matmul_acc(&g, x, w, false, true, IR_DTYPE_COUNT, r3, 1.0, L0) == IR_NONE && g.errors == 3);
    IrId cb = ir_cast(&g, c, IR_BF16, L0);
    CHECK(ir_matmul_acc(&g, x, w, false, true, IR_DTYPE_COUNT, cb, 1.0, L0) == IR_NONE && g.errors == 4);
    CHECK(ir_matmul_acc(&g, x, w, false, true, IR_DTYPE_COUNT, ir_cast(&g, vec, IR_BF16, L0), 1.0, L0) == IR_NONE &&
          g.errors == 5);
    CHECK(ir_matmul_acc(&g, x, w, false, true, IR_DTYPE_COUNT, c, NAN, L0) == IR_NONE && g.errors == 6);
    CHECK(ir_matmul_acc(&g, x, w, false, true, IR_DTYPE_COUNT, IR_NONE, 1.0, L0) == IR_NONE && g.errors == 6);
    // autodiff refuses a graph that holds one (the pass runs after it)
    ir_set_loss(&g, ir_reshape(&g, ir_reduce_all(&g, IR_SUM, ok, L0), ir_shape0(), L0));
    int before = g.errors;
    CHECK(ad_backward(&g, NULL, 0) != 0 && g.errors > before);
    ir_graph_free(&g);
    diag_free(&d);
    if (null) fclose(null);
}

static void check_off(void) {   // TRLC_GEMM_ACC=0: nothing rewritten
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    build_chain(&g, 0);
    setenv("TRLC_GEMM_ACC", "0", 1);
    CHECK(ir_fuse_gemm_accumulate(&g, NULL) == 0 && count_op(&g, IR_ADD, -1) == 2);
    unsetenv("TRLC_GEMM_ACC");
    CHECK(ir_fuse_gemm_accumulate(&g, NULL) == 2 && count_op(&g, IR_ADD, -1) == 0);
    // the chain: m3 accumulating into (m2 accumulating into m1)
    const IrNode *y = &g.nodes[g.outs[0].id];
    bool shape = y->op == IR_MATMUL && y->nin == 3;
    if (shape) {
        const IrNode *inner = &g.nodes[y->in[2]];
        shape = inner->op == IR_MATMUL && inner->nin == 3 && g.nodes[inner->in[2]].op == IR_MATMUL &&
                g.nodes[inner->in[2]].nin == 2;
    }
    CHECK_MSG(shape, "the chain nests its products");
    ir_graph_free(&g);
    // TRLC_GEMM_ACC=nobias: LoRA + bias keeps the bias add (the LoRA branch still accumulates)
    ir_graph_init(&g, &d, IR_F32);
    build_bias(&g, 4);
    setenv("TRLC_GEMM_ACC", "nobias", 1);
    GemmAccStats st;
    CHECK(ir_fuse_gemm_accumulate(&g, &st) == 1 && st.bias == 0 && count_op(&g, IR_ADD, -1) == 1);
    unsetenv("TRLC_GEMM_ACC");
    ir_graph_free(&g);
    diag_free(&d);
}

int main(void) {
    for (int v = 0; v < 4; v++) compare("lora", build_lora, v, 1, 1, true);
    // trained: the forward add, and the backward's sums over x (at least base + LoRA's dx)
    compare("lora+grad", build_lora, 4, -2, -1, false);
    compare("lora+grad", build_lora, 7, -2, -1, false);
    compare("chain", build_chain, 0, 2, 0, true);
    for (int v = 0; v < 8; v++) compare("batch", build_batch, v, 1, 1, true);
    for (int v = 0; v < 8; v++) compare("keep", build_keep, v, 0, 0, false);
    // biases: one rewrite each (0.5 m + b: scaled); LoRA + bias: the base product takes the bias,
    // the LoRA branch accumulates into it, in either association order; a trained bias: at least
    // the forward's
    for (int v = 0; v < 10; v++)
        compare_b("bias", build_bias, v, v == 4 || v == 5 ? 2 : 1, v == 3 || v == 4 || v == 5 ? 1 : 0, 1, v < 6, 1e-6);
    compare_b("bias+grad", build_bias, 10, -1, -1, 1, false, 1e-6);
    // bf16 linear outputs (autocast.h): the LoRA sum folded with bf16 C and D against the unfused
    // autocast graph (base bf16; f32 add; cast): the fused sum rounds alpha·acc + C once in fp32,
    // the unfused rounds the f32 sum of the same terms: at most one bf16 ulp apart (2^-8 of the
    // largest |y|; the backward's gradients through it: 2 ulps)
    for (int v = 0; v < 4; v++) compare_b("lowp-lora", build_lowp_lora, v, 1, 1, 0, false, 1.0 / 256);
    compare_b("lowp+grad", build_lowp_lora, 4, -2, -1, 0, false, 2.0 / 256);
    // biased linear layers in bf16 (autocast.h): the bias epilogue with a bf16 bias and D against the
    // unfused graph (f32 product + widened bf16 bias, cast): the same terms rounded once, at most
    // one ulp apart; LoRA + bias (4): the LoRA product then accumulates into the bf16 biased
    // product (bf16 C and D); the other association (5, not how lora.c lowers it): the biased
    // product alone (s·lora is no LoRA sum there: the LoRA product is a bf16 linear output itself)
    static const int lowp_bias[] = {0, 1, 2, 4, 5};
    for (int k = 0; k < 5; k++) {
        int v = lowp_bias[k];
        compare_b("lowp-bias", build_lowp_bias, v, v == 4 ? 2 : 1, v == 4 ? 1 : 0, 1, false, 1.0 / 256);
    }
    compare_b("lowp-bias+grad", build_lowp_bias, 10, -1, -1, 1, false, 2.0 / 256);
    check_builder();
    check_off();
    return test_done("gemm_acc");
}
