// test_recompute_cheap.c — ir_recompute_cheap (recompute.h): on a small differentiated graph with
// SwiGLU's silu(gate) * up, an exp and a tanh whose inputs the backward keeps anyway, the pass
// moves those values' computation into the backward (no backward node reads the forward's silu,
// tanh or that exp any more; dropout's backward never read its output) and the CPU backend gives the same loss and bit-identical gradients
// with and without it. A value whose input the backward does not keep stays as it is.
#include "autodiff.h"
#include "cpu.h"
#include "recompute.h"
#include "test.h"
#include <string.h>

#define L0 ((Loc){0, 0, 0})
enum { N = 5, H = 8, F = 12 };

// x (N, H) → gate = x w1ᵀ, up = x w2ᵀ (F); y = silu(gate) * up + exp(up) * 0.01 + dropout(gate);
// out = y w3ᵀ (H); loss = sum(out²) + sum(tanh(gate)) (tanh of a value the backward keeps: moved)
// + sum(exp(gate + up)) (the sum is not kept: that exp stays).
static void build(IrGraph *g) {
    IrId x = ir_input(g, "x", IR_F32, ir_shape2(ir_dim(N), ir_dim(H)), L0);
    IrId w1 = ir_param(g, "w1", IR_F32, ir_shape2(ir_dim(F), ir_dim(H)), true, L0);
    IrId w2 = ir_param(g, "w2", IR_F32, ir_shape2(ir_dim(F), ir_dim(H)), true, L0);
    IrId w3 = ir_param(g, "w3", IR_F32, ir_shape2(ir_dim(H), ir_dim(F)), true, L0);
    IrId gate = ir_linear(g, x, w1, L0), up = ir_linear(g, x, w2, L0);
    IrId y = ir_mul(g, ir_unary(g, IR_SILU, gate, L0), up, L0);
    y = ir_add(g, y, ir_mul(g, ir_unary(g, IR_EXP, up, L0), ir_scalar(g, 0.01, L0), L0), L0);
    y = ir_add(g, y, ir_dropout(g, gate, 0.25, 7, L0), L0);
    IrId out = ir_linear(g, y, w3, L0);
    IrId loss = ir_reduce_all(g, IR_SUM, ir_mul(g, out, out, L0), L0);
    loss = ir_add(g, loss, ir_reduce_all(g, IR_SUM, ir_unary(g, IR_TANH, gate, L0), L0), L0);
    IrId e = ir_unary(g, IR_EXP, ir_add(g, gate, up, L0), L0);
    loss = ir_add(g, loss, ir_reduce_all(g, IR_SUM, e, L0), L0);
    ir_set_loss(g, ir_reshape(g, loss, ir_shape0(), L0));
}

// How many forward nodes of op a backward node reads.
static int read_by_backward(const IrGraph *g, IrOp op) {
    int count = 0;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->backward || n->op != op) continue;
        bool read = false;
        for (int j = i + 1; j < g->n && !read; j++)
            for (int k = 0; k < g->nodes[j].nin; k++) read = read || (g->nodes[j].backward && g->nodes[j].in[k] == i);
        count += read;
    }
    return count;
}

int main(void) {
    Diag d;
    diag_init(&d, stderr);
    IrGraph plain, cheap;
    ir_graph_init(&plain, &d, IR_F32);
    ir_graph_init(&cheap, &d, IR_F32);
    build(&plain);
    build(&cheap);
    CHECK(ad_backward(&plain, NULL, 0) == 0 && ad_backward(&cheap, NULL, 0) == 0);
    CHECK(read_by_backward(&plain, IR_SILU) == 1 && read_by_backward(&plain, IR_EXP) == 2 &&
          read_by_backward(&plain, IR_TANH) == 1 &&
          read_by_backward(&plain, IR_DROPOUT) == 0);   // dropout's backward regenerates its mask
    int made = -1;
    CHECK(ir_recompute_cheap(&cheap, &made) == 0 && ir_verify(&cheap));
    CHECK_MSG(made == 3, "%d values recomputed (silu, exp, tanh)", made);
    CHECK(read_by_backward(&cheap, IR_SILU) == 0 && read_by_backward(&cheap, IR_TANH) == 0);
    CHECK(read_by_backward(&cheap, IR_EXP) == 1);   // exp(gate + up) stays: the sum is not kept
    int nsilu = 0;
    for (int i = 0; i < cheap.n; i++) nsilu += cheap.nodes[i].op == IR_SILU;
    CHECK_MSG(nsilu == 2, "silu in the forward and its copy in the backward: %d", nsilu);
    // the same numbers
    float xv[N * H], w1[F * H], w2[F * H], w3[H * F];
    uint32_t s = 12345;
    float *bufs[4] = {xv, w1, w2, w3};
    int sizes[4] = {N * H, F * H, F * H, H * F};
    for (int b = 0; b < 4; b++)
        for (int i = 0; i < sizes[b]; i++) {
            s = s * 1664525u + 1013904223u;
            bufs[b][i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * (b ? 0.6f : 2.0f);
        }
    CpuProgram *p[2] = {cpu_program_new(&plain, IR_F32, &d), cpu_program_new(&cheap, IR_F32, &d)};
    const char *names[4] = {"x", "w1", "w2", "w3"};
    for (int k = 0; k < 2; k++) {
        CHECK(p[k] != NULL);
        if (!p[k]) continue;
        for (int b = 0; b < 4; b++) CHECK(cpu_bind_name(p[k], names[b], bufs[b], (size_t)sizes[b] * 4) == 0);
        CHECK(cpu_run(p[k], NULL, 3) == 0);
    }
    if (p[0] && p[1]) {
        const char *outs[4] = {"loss", "grad:w1", "grad:w2", "grad:w3"};
        for (int o = 0; o < 4; o++) {
            const CpuTensor *a = cpu_output_named(p[0], outs[o]), *b = cpu_output_named(p[1], outs[o]);
            CHECK_MSG(a && b && a->numel == b->numel && !memcmp(a->data, b->data, (size_t)a->numel * 4),
                      "%s differs with the cheap values recomputed", outs[o]);
        }
        const CpuTensor *l = cpu_output_named(p[0], "loss");
        if (l) printf("loss %.9g; %d values recomputed; gradients bit-identical\n", ((float *)l->data)[0], made);
    }
    for (int k = 0; k < 2; k++) cpu_program_free(p[k]);
    ir_graph_free(&plain);
    ir_graph_free(&cheap);
    diag_free(&d);
    return test_done("ir.recompute_cheap");
}
