// ir_validate.c — checks that every node of a graph is exactly what the builders would make of its
// inputs and attributes, by replaying the graph through the builders into a scratch graph and
// comparing dtype and shape node by node. Passes that append nodes directly (ir_append: LoRA,
// fusion, ...) are checked this way before a backend trusts the graph's shapes.
// Not here: the builders themselves (ir.c, ir_model.c).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "ir_internal.h"

// The builder call that produces node n from the replayed inputs in[], or IR_NONE.
static IrId replay(IrGraph *s, const IrNode *n, const IrId *in, int idx) {
    const IrAttrs *a = &n->a;
    const Loc l = {0, 0, 0};
    IrId x = n->nin > 0 ? in[0] : IR_NONE, y = n->nin > 1 ? in[1] : IR_NONE;
    IrId z = n->nin > 2 ? in[2] : IR_NONE, w = n->nin > 3 ? in[3] : IR_NONE;
    char name[24];
    switch (n->op) {
    case IR_INPUT: case IR_PARAM:
        if (n->nin) return IR_NONE;
        snprintf(name, sizeof name, "%%%d", idx);
        return ir_input(s, name, n->dtype, n->shape, l);
    case IR_FULL: return n->nin ? IR_NONE : ir_full(s, a->value, n->dtype, a->shape, l);
    case IR_ARANGE: return n->nin || a->shape.rank != 1 ? IR_NONE : ir_arange(s, a->shape.d[0], l);
    case IR_NEG: case IR_EXP: case IR_LOG: case IR_SQRT: case IR_RSQRT: case IR_TANH:
    case IR_SIGMOID: case IR_SILU: case IR_GELU: case IR_RELU: case IR_ABS: case IR_SQUARE:
    case IR_LOG_SIGMOID: case IR_SOFTPLUS: case IR_STOP_GRAD:
        return n->nin == 1 ? ir_unary(s, n->op, x, l) : IR_NONE;
    case IR_POW: return n->nin == 1 ? ir_pow(s, x, a->value, l) : IR_NONE;
    case IR_CAST: return n->nin == 1 ? ir_cast(s, x, n->dtype, l) : IR_NONE;
    case IR_DROPOUT:
        return n->nin == 1 && a->value > 0 ? ir_dropout(s, x, a->value, a->seed, l) : IR_NONE;
    case IR_ADD: case IR_SUB: case IR_MUL: case IR_DIV: case IR_MAXIMUM: case IR_MINIMUM:
    case IR_EQ: case IR_NE: case IR_LT: case IR_LE: case IR_GT: case IR_GE:
        return n->nin == 2 ? ir_binary(s, n->op, x, y, l) : IR_NONE;
    case IR_WHERE: return n->nin == 3 ? ir_where(s, x, y, z, l) : IR_NONE;
    case IR_SUM: case IR_MEAN: case IR_MAX:
        return n->nin == 1 && a->axes ? ir_reduce_axes(s, n->op, x, a->axes, l) : IR_NONE;
    case IR_SUM_TO: return n->nin == 1 ? ir_sum_to(s, x, a->shape, l) : IR_NONE;
    case IR_BROADCAST: return n->nin == 1 ? ir_broadcast_to(s, x, a->shape, l) : IR_NONE;
    case IR_MATMUL:
        if (n->nin == 3) return ir_matmul_acc(s, x, y, a->trans_a, a->trans_b, n->dtype, z, a->scale, l);
        return n->nin == 2 ? ir_matmul_to(s, x, y, a->trans_a, a->trans_b, n->dtype, l) : IR_NONE;
    case IR_SOFTMAX: return n->nin == 1 ? ir_softmax(s, x, l) : IR_NONE;
    case IR_LOG_SOFTMAX: return n->nin == 1 ? ir_log_softmax(s, x, l) : IR_NONE;
    case IR_EMBED: return n->nin == 2 ? ir_embed(s, x, y, l) : IR_NONE;
    case IR_EMBED_BWD: return n->nin == 2 ? ir_embed_bwd(s, x, y, a->shape, l) : IR_NONE;
    case IR_ROPE:
        if (n->nin != 2) return IR_NONE;
        return ir_rope_to(s, x, y, a->rope, a->inverse, n->dtype, l);
    case IR_SDPA: {   // q, k, v [, key mask] [, seg]
        int nm = n->nin - 3 - (a->segmented ? 1 : 0);
        if (nm != 0 && nm != 1) return IR_NONE;
        return ir_sdpa_to(s, x, y, z, nm ? in[3] : IR_NONE, a->segmented ? in[n->nin - 1] : IR_NONE,
                          a->causal, a->scale, n->dtype, l);
    }
    case IR_SDPA_BWD_Q: case IR_SDPA_BWD_K: case IR_SDPA_BWD_V: {   // q, k, v, gout [, mask] [, seg]
        int nm = n->nin - 4 - (a->segmented ? 1 : 0);
        if (nm != 0 && nm != 1) return IR_NONE;
        return ir_sdpa_bwd_seg(s, n->op, x, y, z, w, nm ? in[4] : IR_NONE,
                               a->segmented ? in[n->nin - 1] : IR_NONE, a->causal, a->scale, l);
    }
    case IR_CROSS_ENTROPY:
        return n->nin == 2 ? ir_cross_entropy(s, x, y, a->ignore_index, a->value, l) : IR_NONE;
    case IR_CROSS_ENTROPY_BWD:
        return n->nin == 3 ? ir_cross_entropy_bwd(s, x, y, z, a->ignore_index, a->value, l) : IR_NONE;
    case IR_LINEAR_CE: return n->nin == 3 ? ir_linear_ce(s, x, y, z, a->ignore_index, a->value, l) : IR_NONE;
    case IR_LINEAR_ARGMAX: return n->nin == 2 ? ir_linear_argmax(s, x, y, l) : IR_NONE;
    case IR_LINEAR_CE_BWD_X: case IR_LINEAR_CE_BWD_W:
        return n->nin == 4 ? ir_linear_ce_bwd(s, n->op, x, y, z, w, a->ignore_index, a->value, l) : IR_NONE;
    case IR_GATHER: return n->nin == 2 ? ir_gather(s, x, y, a->axis, l) : IR_NONE;
    case IR_GATHER_BWD: return n->nin == 2 ? ir_gather_bwd(s, x, y, a->axis, a->shape, l) : IR_NONE;
    case IR_RESHAPE: return n->nin == 1 ? ir_reshape(s, x, a->shape, l) : IR_NONE;
    case IR_PERMUTE: return n->nin == 1 ? ir_permute(s, x, a->perm, l) : IR_NONE;
    case IR_CONCAT: return n->nin >= 1 ? ir_concat(s, in, n->nin, a->axis, l) : IR_NONE;
    case IR_SLICE:
        if (n->nin != 1 || a->axis < 0 || a->axis >= n->shape.rank) return IR_NONE;
        return ir_slice_dim(s, x, a->axis, a->off, n->shape.d[a->axis], l);
    case IR_PAD: return n->nin == 1 ? ir_pad(s, x, a->axis, a->off, a->shape, l) : IR_NONE;
    case IR_DEQUANT_NF4: return n->nin == 2 ? ir_dequant_nf4_to(s, x, y, a->block, a->shape, n->dtype, l) : IR_NONE;
    case IR_DEQUANT_MAP8:
        return n->nin == 3 ? ir_dequant_map8(s, x, y, z, a->block, a->value, l) : IR_NONE;
    case IR_OP_COUNT: break;
    }
    return IR_NONE;
}

bool ir_validate(const IrGraph *g, Diag *d) {
    IrGraph s;
    ir_graph_init(&s, NULL, g->float_dtype);
    IrId *map = malloc((size_t)(g->n ? g->n : 1) * sizeof *map);
    IrId small[8], *in = small;
    bool ok = map != NULL;
    for (int i = 0; ok && i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        char why[256] = "";
        if (n->op < 0 || n->op >= IR_OP_COUNT || n->dtype < 0 || n->dtype >= IR_DTYPE_COUNT ||
            n->nin < 0 || n->shape.rank < 0 || n->shape.rank > IR_MAX_RANK || (n->nin && !n->in)) {
            snprintf(why, sizeof why, "a bad op, dtype, rank or input list");
        } else {
            if (n->nin > 8) in = malloc((size_t)n->nin * sizeof *in);
            if (!in) {
                ok = false;
                break;
            }
            for (int k = 0; k < n->nin && !why[0]; k++) {
                if (n->in[k] < 0 || n->in[k] >= i) snprintf(why, sizeof why, "input %d out of order", k);
                else in[k] = map[n->in[k]];
            }
            IrId r = why[0] ? IR_NONE : replay(&s, n, in, i);
            if (!why[0] && r == IR_NONE) snprintf(why, sizeof why, "its inputs or attributes are invalid");
            else if (!why[0] && (s.nodes[r].dtype != n->dtype || !ir_shape_eq(&s.nodes[r].shape, &n->shape))) {
                char want[80], have[80];
                ir_shape_str(&s.nodes[r].shape, want, sizeof want);
                ir_shape_str(&n->shape, have, sizeof have);
                snprintf(why, sizeof why, "it should be %s%s, not %s%s", ir_dtype_name(s.nodes[r].dtype),
                         want, ir_dtype_name(n->dtype), have);
            }
            map[i] = r;
            if (in != small) free(in);
            in = small;
        }
        if (why[0]) {
            if (d) {
                if (n->loc.file) diag_error(d, n->loc, "internal: malformed IR node %%%d (%s): %s", i,
                                            ir_op_name(n->op), why);
                else diag_plain_error(d, "internal: malformed IR node %%%d (%s): %s", i,
                                      ir_op_name(n->op), why);
            }
            ok = false;
        }
    }
    for (int i = 0; ok && i < g->nouts; i++)
        if (!ir_valid(g, g->outs[i].id)) {
            if (d) diag_plain_error(d, "internal: IR output `%s` has no node", g->outs[i].name);
            ok = false;
        }
    free(map);
    ir_graph_free(&s);
    return ok;
}
