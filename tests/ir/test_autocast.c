// test_autocast.c — the bf16 mixed-precision pass (compiler/autocast.c) on the training graphs of
// real specs (full fine-tuning, LoRA, QLoRA, DPO): every f32 product reads bf16 operands; each value
// is cast at most once, also when a product reads it through a reshape (the weight gradients read
// the forward's activations as (B*T, H)): no cast reads an f32 reshape, the reshape of the forward's
// cast serves instead — so the f32 value is not kept for the backward pass for that. The
// arithmetic is checked elsewhere (run.step: whole bf16 steps against PyTorch).
// usage: test_ir_autocast SPEC...
#include "autocast.h"
#include "check.h"
#include "load.h"
#include "memplan_spec.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

static void check_spec_graph(const char *path) {
    Diag d;
    diag_init(&d, stderr);
    Arena a = {0};
    LoadedSpec spec = {0};
    CheckedSpec *cs = arena_alloc(&a, sizeof *cs);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    bool ok = cs && mp_compile_spec_file(&d, &a, path, &spec, cs, &g) == 0;
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
    int before = g.n, products = 0;
    for (int i = 0; i < g.n; i++)   // products: matmuls and the head's linear_ce
        products += (g.nodes[i].op == IR_MATMUL && g.nodes[i].nin == 2) || g.nodes[i].op == IR_LINEAR_CE;
    AutocastStats st;
    CHECK(ir_autocast_bf16(&g, &st) == 0 && ir_verify(&g));
    CHECK_MSG(st.products == products, "%s: %d of %d products on bf16 operands", path, st.products, products);
    CHECK_MSG(st.reshaped > 0, "%s: the weight gradients read activations through reshapes", path);
    int *casts = calloc((size_t)g.n, sizeof *casts);
    int twice = 0, of_reshape = 0, f32_operands = 0;
    for (int i = 0; casts && i < g.n; i++) {
        const IrNode *n = &g.nodes[i];
        if (n->op == IR_CAST && n->dtype == IR_BF16) {
            const IrNode *src = &g.nodes[n->in[0]];
            if (casts[n->in[0]]++) twice++;
            if (src->op == IR_RESHAPE && src->dtype == IR_F32) of_reshape++;
        }
        if (n->op == IR_MATMUL && n->dtype == IR_F32)
            for (int k = 0; k < 2; k++) f32_operands += g.nodes[n->in[k]].dtype != IR_BF16;
    }
    CHECK_MSG(casts && twice == 0, "%s: %d values cast twice", path, twice);
    CHECK_MSG(of_reshape == 0, "%s: %d casts of an f32 reshape", path, of_reshape);
    CHECK_MSG(f32_operands == 0, "%s: %d f32 operands left", path, f32_operands);
    printf("%s: %d -> %d nodes; %d products, %d casts, %d reshaped operands, %d weights retyped\n", path, before, g.n,
           st.products, st.casts, st.reshaped, st.retyped);
    free(casts);
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
