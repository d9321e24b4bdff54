// test_fuzz.c — random graphs: random ops on random operands with random axes and shapes (many of
// them invalid), then autodiff, DCE and a CPU run with random data (ids sometimes out of range);
// half of the graphs also get raw nodes appended without checks, as a buggy pass might.
// Asserts that nothing crashes (run it under ASan/UBSan), that every builder refusal was reported,
// that every CPU failure was reported, and that only graphs with raw nodes are refused.
#include <stdlib.h>
#include <string.h>
#include "autodiff.h"
#include "cpu.h"
#include "test.h"

#define L0 ((Loc){0, 0, 0})

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static int ri(int n) { return (int)(rnd() % (uint64_t)n); }

static IrDim rdim(void) {
    switch (ri(6)) {
    case 0: return ir_dim_b();
    case 1: return ir_dim_t();
    case 2: return ir_dim(1);
    default: return ir_dim(1 + ri(4));
    }
}

static IrShape rshape(void) {
    IrDim d[4];
    int r = ri(5);
    for (int i = 0; i < r; i++) d[i] = rdim();
    return ir_shape_of(r, d);
}

static IrId pick(IrId *pool, int n) { return n ? pool[ri(n)] : IR_NONE; }

static IrId random_node(IrGraph *g, IrId *pool, int n) {
    IrId a = pick(pool, n), b = pick(pool, n), c = pick(pool, n);
    int ax = ri(7) - 3;
    switch (ri(22)) {
    case 0: return ir_unary(g, (IrOp)(IR_NEG + ri(IR_SOFTPLUS - IR_NEG + 1)), a, L0);
    case 1: return ir_binary(g, (IrOp)(IR_ADD + ri(IR_GE - IR_ADD + 1)), a, b, L0);
    case 2: return ir_where(g, a, b, c, L0);
    case 3: return ir_reduce(g, (IrOp)(IR_SUM + ri(3)), a, ax, L0);
    case 4: return ir_matmul(g, a, b, ri(2), ri(2), L0);
    case 5: return ir_linear(g, a, b, L0);
    case 6: return ri(2) ? ir_softmax(g, a, L0) : ir_log_softmax(g, a, L0);
    case 7: return ir_embed(g, a, b, L0);
    case 8: return ir_rope(g, a, b, (IrRope){.theta = 100.0 * ri(3)}, L0);
    case 9: return ir_sdpa(g, a, b, c, ri(2), 0, L0);
    case 10: return ir_cross_entropy(g, a, b, -100, ri(2) * 0.1, L0);
    case 11: return ir_gather(g, a, b, ax, L0);
    case 12: return ir_reshape(g, a, rshape(), L0);
    case 13: {
        int perm[IR_MAX_RANK];
        for (int i = 0; i < IR_MAX_RANK; i++) perm[i] = ri(4);
        return ir_permute(g, a, perm, L0);
    }
    case 14: return ir_transpose(g, a, ax, ri(4) - 2, L0);
    case 15: {
        IrId xs[3] = {a, b, c};
        return ir_concat(g, xs, 1 + ri(3), ax, L0);
    }
    case 16: return ir_slice(g, a, ax, ri(4) - 1, ri(5) - 1, L0);
    case 17: return ir_cast(g, a, (IrDType)ri(IR_DTYPE_COUNT), L0);
    case 18: return ir_sum_to(g, a, rshape(), L0);
    case 19: return ir_broadcast_to(g, a, rshape(), L0);
    case 20: return ir_dropout(g, a, ri(3) * 0.4, 3, L0);
    default: return ir_pow(g, a, ri(5) - 2, L0);
    }
}

int main(void) {
    int built = 0, refused = 0, ran = 0, failed_runs = 0, refused_graphs = 0;
    int iters = getenv("IR_FUZZ_ITERS") ? atoi(getenv("IR_FUZZ_ITERS")) : 400;
    if (getenv("IR_FUZZ_SEED")) rng ^= strtoull(getenv("IR_FUZZ_SEED"), NULL, 10) * 0x9E3779B97F4A7C15ull;
    for (int it = 0; it < iters; it++) {
        FILE *devnull = fopen("/dev/null", "w");
        Diag d;
        diag_init(&d, devnull);
        IrGraph g;
        ir_graph_init(&g, &d, ri(2) ? IR_F32 : IR_F64);
        IrId pool[64];
        int n = 0;
        for (int i = 0; i < 3; i++) {
            char name[16];
            snprintf(name, sizeof name, "p%d", i);
            pool[n] = ir_param(&g, name, g.float_dtype, rshape(), true, L0);
            n += pool[n] != IR_NONE;   // (a shape repeating B or T is refused)
        }
        pool[n] = ir_input(&g, "ids", IR_I32, rshape(), L0);
        n += pool[n] != IR_NONE;
        pool[n] = ir_input(&g, "x", g.float_dtype, rshape(), L0);
        n += pool[n] != IR_NONE;
        for (int k = 0; k < 25; k++) {
            int before = g.errors;
            IrId y = random_node(&g, pool, n);
            if (y == IR_NONE) {
                refused++;
                CHECK_MSG(g.errors > before, "iteration %d: a refusal without a diagnostic", it);
            } else {
                built++;
                if (n < 64) pool[n++] = y;
            }
        }
        // loss: sum of the last float node
        IrId last = IR_NONE;
        for (int i = n - 1; i >= 0 && last == IR_NONE; i--)
            if (ir_dtype_is_float(g.nodes[pool[i]].dtype)) last = pool[i];
        IrId loss = ir_reshape(&g, ir_reduce_all(&g, IR_SUM, ir_cast(&g, last, g.float_dtype, L0), L0),
                               ir_shape0(), L0);
        if (loss != IR_NONE) ir_set_loss(&g, loss);
        if (g.loss != IR_NONE) ad_backward(&g, NULL, 0);
        ir_dce(&g);
        CHECK(ir_verify(&g));
        // half of the graphs also get raw nodes (as a buggy pass might append): random op, inputs,
        // dtype, shape and attributes; the backend must refuse them or run them safely
        int raw = 0;
        if (it % 2) {
            for (int k = 0; k < 4; k++) {
                IrAttrs at;
                memset(&at, 0, sizeof at);
                at.axes = (uint32_t)ri(16);
                at.axis = ri(5) - 1;
                at.off = ir_dim(ri(3));
                at.shape = rshape();
                at.block = ri(70) - 2;
                at.value = ri(3) * 0.3;
                at.scale = 0.5;
                at.rope.theta = 100;
                for (int q = 0; q < IR_MAX_RANK; q++) at.perm[q] = ri(5);
                IrId ins[3] = {pick(pool, n), pick(pool, n), pick(pool, n)};
                IrId y = ir_append(&g, (IrOp)ri(IR_OP_COUNT), (IrDType)ri(IR_DTYPE_COUNT), rshape(), ins,
                                   ri(4), &at, L0);
                if (y != IR_NONE && n < 64) pool[n++] = y;
                raw++;
            }
        }
        for (int k = 0; k < n && k < 8; k++) ir_add_output(&g, pool[k], "o");
        ir_print(devnull, &g, &d);   // printing copes with malformed nodes too
        IrDType real = ri(2) ? IR_F32 : IR_F64;
        int errs0 = d.errors;
        CpuProgram *p = cpu_program_new(&g, real, &d);
        if (!p) {
            refused_graphs++;
            CHECK_MSG(raw > 0 && d.errors > errs0, "iteration %d: a builder-made graph was refused", it);
            ir_graph_free(&g);
            diag_free(&d);
            fclose(devnull);
            continue;
        }
        int64_t syms[IR_NSYMS] = {1 + ri(3), 1 + ri(4)};
        void *bufs[64];
        int nb = 0;
        for (int i = 0; i < g.n && nb < 64; i++) {
            const IrNode *nd = &g.nodes[i];
            if (nd->op != IR_INPUT && nd->op != IR_PARAM) continue;
            int64_t cnt = ir_shape_numel(&nd->shape, syms);
            size_t es = cpu_elem_size(nd->dtype, real);
            size_t bytes = (size_t)cnt * es;
            if (ri(10) == 0) bytes += es;   // sometimes a wrong size
            void *b = malloc(bytes ? bytes : 1);
            for (size_t k = 0; k < bytes / es; k++) {
                if (nd->dtype == IR_I32) ((int32_t *)b)[k] = ri(6) - (ri(8) == 0 ? 3 : 0);
                else if (es == 8) ((double *)b)[k] = (double)ri(1000) / 250 - 2;
                else ((float *)b)[k] = (float)ri(1000) / 250 - 2;
            }
            bufs[nb++] = b;
            cpu_bind(p, i, b, bytes);
        }
        int errs = d.errors;
        int rc = cpu_run(p, syms, (uint64_t)it);
        if (rc == 0) ran++;
        else {
            failed_runs++;
            CHECK_MSG(d.errors > errs, "iteration %d: a failed run without a diagnostic", it);
        }
        cpu_program_free(p);
        for (int i = 0; i < nb; i++) free(bufs[i]);
        ir_graph_free(&g);
        diag_free(&d);
        fclose(devnull);
    }
    printf("  %d nodes built, %d refused with a diagnostic; %d runs ok, %d failed with a diagnostic;"
           " %d graphs with raw nodes refused\n", built, refused, ran, failed_runs, refused_graphs);
    CHECK(built > 1000 && refused > 1000 && ran > 50);
    return test_done("ir.fuzz");
}
