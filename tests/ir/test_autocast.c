// test_autocast.c — the bf16 mixed-precision pass (compiler/autocast.c) on the training graphs of
// real specs (full fine-tuning, LoRA, QLoRA, DPO): every f32 product reads bf16 operands; each value
// is cast at most once, also when a product reads it through a reshape (the weight gradients read
// the forward's activations as (B*T, H)): no cast reads an f32 reshape, the reshape of the forward's
// cast serves instead — so the f32 value is not kept for the backward pass for that. The
// arithmetic is checked elsewhere (run.step: whole bf16 steps against PyTorch). A product whose
// result only products read (LoRA's x A) writes it in bf16 itself: no cast of it remains. The
// casts of LoRA's factors come first, by shape, and the fuser puts them in a few kernels.
// Biased linear layers (Qwen2's q, k, v; autocast.h): every forward add of a bias (a rank-1
// param) becomes one bf16 output — cast_bf16(add(P, cast_f32(b'))) with b' the bias's bf16 value
// (a retyped frozen bias, or the cast of a trainable one), with LoRA over it add(cast_f32(that),
// s·lora) rounded again — and no f32 product plus bias is left in the forward.
// usage: test_ir_autocast SPEC...
#include "autocast.h"
#include "check.h"
#include "fuse.h"
#include "load.h"
#include "memplan_spec.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

static void check_spec_graph(const char *path) {
    Diag d;
    diag_init(&d, stderr);
    Arena a;
    LoadedSpec spec;
    CheckedSpec *cs;
    IrGraph g;
    bool ok = mp_open_spec_file(&d, &a, path, &spec, &cs, &g) == 0;
    CHECK_MSG(ok, "%s: the training graph", path);
    if (!ok) goto out;
    if (cs->train.precision && !strcmp(cs->train.precision, "bf16")) {   // the graph is autocast already:
        ir_graph_free(&g);                                                  // build it again in fp32
        ir_graph_init(&g, &d, IR_F32);
        cs->train.precision = "fp32";
        ok = mp_compile_training_graph(&d, &a, &spec, cs, &g) == 0;
        CHECK_MSG(ok, "%s: the fp32 training graph", path);
        if (!ok) goto out;
    }
    int before = g.n, products = 0, bias_adds = 0;
    for (int i = 0; i < g.n; i++) {   // products: matmuls and the head's linear_ce
        const IrNode *x = &g.nodes[i];
        products += (x->op == IR_MATMUL && x->nin == 2) || x->op == IR_LINEAR_CE;
        if (x->op == IR_ADD && !x->backward)   // a linear layer's bias: a rank-1 param added to a matrix
            for (int k = 0; k < 2; k++)
                bias_adds += g.nodes[x->in[k]].op == IR_PARAM && g.nodes[x->in[k]].shape.rank == 1 &&
                             g.nodes[x->in[1 - k]].shape.rank >= 2;
    }
    AutocastStats st;
    CHECK(ir_autocast_bf16(&g, &st) == 0 && ir_verify(&g));
    CHECK_MSG(st.products == products, "%s: %d of %d products on bf16 operands", path, st.products, products);
    CHECK_MSG(st.reshaped > 0, "%s: the weight gradients read activations through reshapes", path);
    int *casts = calloc((size_t)g.n, sizeof *casts), *readers = calloc((size_t)g.n, sizeof *readers);
    for (int i = 0; readers && i < g.n; i++)
        for (int k = 0; k < g.nodes[i].nin; k++) readers[g.nodes[i].in[k]]++;
    for (int o = 0; readers && o < g.nouts; o++) readers[g.outs[o].id]++;
    int twice = 0, of_reshape = 0, f32_operands = 0, of_product = 0, lowp_products = 0;
    for (int i = 0; casts && readers && i < g.n; i++) {
        const IrNode *n = &g.nodes[i];
        if (n->op == IR_CAST && n->dtype == IR_BF16) {
            const IrNode *src = &g.nodes[n->in[0]];
            if (casts[n->in[0]]++) twice++;
            if (src->op == IR_RESHAPE && src->dtype == IR_F32) of_reshape++;
            // a product whose result only this cast reads should have written bf16 itself
            if (src->op == IR_MATMUL && readers[n->in[0]] == 1) of_product++;
        }
        if (n->op == IR_MATMUL)
            for (int k = 0; k < 2; k++) f32_operands += g.nodes[n->in[k]].dtype != IR_BF16;
        lowp_products += n->op == IR_MATMUL && n->dtype == IR_BF16;
    }
    CHECK_MSG(casts && readers && twice == 0, "%s: %d values cast twice", path, twice);
    CHECK_MSG(of_reshape == 0, "%s: %d casts of an f32 reshape", path, of_reshape);
    CHECK_MSG(of_product == 0, "%s: %d casts of a product nothing else reads", path, of_product);
    CHECK_MSG(f32_operands == 0, "%s: %d f32 operands left", path, f32_operands);
    // bf16 results: the products only products read (LoRA's x A) and, since linear outputs are
    // bf16 (autocast.h), every forward product something else reads — but LoRA's B product,
    // whose f32 result the LoRA sum adds before rounding
    CHECK_MSG(lowp_products == st.lowp_results + st.lowp_linear, "%s: %d bf16 products, %d + %d counted", path,
              lowp_products, st.lowp_results, st.lowp_linear);
    // biased linear layers: each bias add is a bf16 output, the bias read as its bf16 value widened
    int biased_out = 0, f32_biased = 0;
    for (int i = 0; i < g.n; i++) {
        const IrNode *n = &g.nodes[i];
        if (n->op == IR_CAST && n->dtype == IR_BF16 && g.nodes[n->in[0]].op == IR_ADD) {
            const IrNode *ad = &g.nodes[n->in[0]];
            for (int k = 0; k < 2; k++) {
                const IrNode *w = &g.nodes[ad->in[k]], *p = &g.nodes[ad->in[1 - k]];
                bool wide_bias = w->op == IR_CAST && w->dtype == IR_F32 && g.nodes[w->in[0]].dtype == IR_BF16 &&
                                 w->shape.rank == 1 && ad->shape.rank >= 2;
                biased_out += wide_bias && p->op == IR_MATMUL && p->dtype == IR_F32;
            }
        }
        if (n->op == IR_ADD && !n->backward)   // an f32 bias not rounded to bf16 first
            for (int k = 0; k < 2; k++) {
                const IrNode *b = &g.nodes[n->in[k]];
                f32_biased += b->shape.rank == 1 && b->dtype == IR_F32 && g.nodes[n->in[1 - k]].op == IR_MATMUL &&
                              !(b->op == IR_CAST && g.nodes[b->in[0]].dtype == IR_BF16);
            }
    }
    CHECK_MSG(st.lowp_biased == bias_adds && biased_out == bias_adds && f32_biased == 0,
              "%s: %d bias adds: %d bf16 biased outputs (%d counted), %d f32 product + bias left", path, bias_adds,
              biased_out, st.lowp_biased, f32_biased);
    printf("%s: %d -> %d nodes; %d products (%d with bf16 results, %d linear outputs), %d LoRA sums, %d biased, "
           "%d casts, %d widened, %d reshaped operands, %d weights retyped\n", path, before, g.n, st.products,
           st.lowp_results, st.lowp_linear, st.lowp_sums, st.lowp_biased, st.casts, st.widened, st.reshaped, st.retyped);
    // LoRA's factors (trainable params of at most 2^20 elements) are cast at the start, each
    // shape's casts side by side, so the fuser makes a few kernels of them, not one a factor
    int early = 0, early_late = 0, shapes = 0, groups = 0;
    bool seen_other = false;
    IrShape last = {0};
    for (int i = 0; i < g.n; i++) {
        const IrNode *n = &g.nodes[i];
        bool ec = n->op == IR_CAST && g.nodes[n->in[0]].op == IR_PARAM && g.nodes[n->in[0]].trainable &&
                  ir_shape_numel(&n->shape, (int64_t[]){1, 1}) <= (1 << 20);
        if (ec) {
            early++, early_late += seen_other;
            if (!ir_shape_eq(&n->shape, &last)) shapes++, last = n->shape;
        } else if (!ir_is_leaf(n)) {
            seen_other = true;
        }
    }
    FusePlan fp;
    memset(&fp, 0, sizeof fp);
    if (fuse_plan(&g, &d, &fp) == 0) {
        int *cast_group = calloc((size_t)(fp.ngroups + 1), sizeof *cast_group);
        for (int i = 0; cast_group && i < g.n; i++) {
            const IrNode *n = &g.nodes[i];
            if (n->op == IR_CAST && g.nodes[n->in[0]].op == IR_PARAM && g.nodes[n->in[0]].trainable &&
                fp.group_of[i] >= 0 && !cast_group[fp.group_of[i]]++)
                groups++;
        }
        free(cast_group);
        fuse_plan_free(&fp);
    } else {
        CHECK_MSG(false, "%s: the fusion plan", path);
    }
    CHECK_MSG(early_late == 0, "%s: %d of %d small params' casts after the first computation", path, early_late, early);
    CHECK_MSG(groups <= shapes + early / 32, "%s: %d casts of %d shapes in %d kernels", path, early, shapes, groups);
    printf("  %d casts of small trainable params (%d shapes) in %d kernels\n", early, shapes, groups);
    free(casts);
    free(readers);
out:
    ir_graph_free(&g);
    arena_free(&a);
    diag_free(&d);
}

int main(int argc, char **argv) {
    CHECK_MSG(argc > 1, "usage: test_ir_autocast SPEC...");
    // the fp32 graph autocast sees, as the trainer has it: before products accumulate (gemm_acc.h)
    setenv("TRLC_GEMM_ACC", "0", 1);
    for (int i = 1; i < argc; i++) check_spec_graph(argv[i]);
    return test_done("ir.autocast");
}
