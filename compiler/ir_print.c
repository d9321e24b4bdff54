// ir_print.c — the IR as readable text, one node per line:
//   %12 = silu(%11) : f32[B,T,3072]  # qwen3.trl:14:22
// in sections: inputs, parameters (name, shape, trainable), forward, backward, outputs.
// Not here: parsing text back (the IR has no text format to read).
#include "ir.h"
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void print_loc(FILE *f, const Diag *d, Loc loc) {
    if (!d || loc.file == 0) return;
    const Source *s = diag_source(d, loc.file);
    if (!s) return;
    int line, col;
    diag_linecol(d, loc, &line, &col);
    const char *base = strrchr(s->path, '/');
    fprintf(f, "  # %s:%d:%d", base ? base + 1 : s->path, line, col);
}

static void print_dim(FILE *f, IrDim d) {
    char buf[160];
    IrShape s = ir_shape1(d);
    ir_shape_str(&s, buf, sizeof buf);
    buf[strlen(buf) - 1] = 0;   // drop "]"
    fputs(buf + 1, f);
}

// The shortest decimal that reads back as the same double (1e-06, not 9.9999999999999995e-07).
static void print_num(FILE *f, double v) {
    char buf[40];
    for (int prec = 6; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v || prec == 17) break;
    }
    fputs(buf, f);
}

static void print_attrs(FILE *f, const IrNode *n) {
    const IrAttrs *a = &n->a;
    char buf[160];
    switch (n->op) {
    case IR_FULL: print_num(f, a->value); break;
    case IR_POW:
        fputs(", ", f);
        print_num(f, a->value);
        break;
    case IR_DROPOUT:
        fprintf(f, ", p=%g, seed=%" PRIu64 ", salt=%u", a->value, a->seed, a->salt);
        break;
    case IR_SUM: case IR_MEAN: case IR_MAX: {
        fputs(", axes=[", f);
        int k = 0;
        for (int i = 0; i < 32; i++)
            if (a->axes & (1u << i)) fprintf(f, "%s%d", k++ ? "," : "", i);
        fputs("]", f);
        break;
    }
    case IR_SUM_TO: case IR_BROADCAST: case IR_RESHAPE: case IR_EMBED_BWD:
        fprintf(f, ", %s", ir_shape_str(&a->shape, buf, sizeof buf));
        break;
    case IR_GATHER_BWD:
        fprintf(f, ", axis=%d, %s", a->axis, ir_shape_str(&a->shape, buf, sizeof buf));
        break;
    case IR_MATMUL:
        if (a->trans_a) fputs(", trans_a", f);
        if (a->trans_b) fputs(", trans_b", f);
        if (n->nin == 3) fprintf(f, ", alpha=%g, accumulate", a->scale);
        break;
    case IR_ROPE:
        fprintf(f, ", theta=%g", a->rope.theta);
        if (a->rope.factor != 0)
            fprintf(f, ", llama3(factor=%g, low=%g, high=%g, original=%g)", a->rope.factor,
                    a->rope.low_freq_factor, a->rope.high_freq_factor, a->rope.original_max_pos);
        if (a->inverse) fputs(", inverse", f);
        break;
    case IR_SDPA: case IR_SDPA_BWD_Q: case IR_SDPA_BWD_K: case IR_SDPA_BWD_V:
        fprintf(f, ", causal=%s, scale=%g", a->causal ? "true" : "false", a->scale);
        if (a->segmented) fputs(", segmented", f);
        break;
    case IR_CROSS_ENTROPY: case IR_CROSS_ENTROPY_BWD:
        fprintf(f, ", ignore_index=%" PRId64, a->ignore_index);
        if (a->value != 0) fprintf(f, ", label_smoothing=%g", a->value);
        break;
    case IR_GATHER: case IR_CONCAT: fprintf(f, ", axis=%d", a->axis); break;
    case IR_PERMUTE:
        fputs(", [", f);
        for (int i = 0; i < n->shape.rank; i++) fprintf(f, "%s%d", i ? "," : "", a->perm[i]);
        fputs("]", f);
        break;
    case IR_SLICE:
        fprintf(f, ", axis=%d, start=", a->axis);
        print_dim(f, a->off);
        if (a->axis >= 0 && a->axis < n->shape.rank) {
            fputs(", len=", f);
            print_dim(f, n->shape.d[a->axis]);
        }
        break;
    case IR_PAD:
        fprintf(f, ", axis=%d, start=", a->axis);
        print_dim(f, a->off);
        fprintf(f, ", %s", ir_shape_str(&a->shape, buf, sizeof buf));
        break;
    case IR_DEQUANT_NF4:
        fprintf(f, ", block=%" PRId64 ", %s", a->block, ir_shape_str(&a->shape, buf, sizeof buf));
        break;
    case IR_DEQUANT_MAP8: fprintf(f, ", block=%" PRId64 ", offset=%.9g", a->block, a->value); break;
    default: break;
    }
}

static void print_node(FILE *f, const IrGraph *g, const Diag *d, IrId id) {
    const IrNode *n = &g->nodes[id];
    char buf[160];
    fprintf(f, "  %%%d = %s(", id, ir_op_name(n->op));
    for (int k = 0; k < n->nin; k++) fprintf(f, "%s%%%d", k ? ", " : "", n->in[k]);
    print_attrs(f, n);
    fprintf(f, ") : %s%s", ir_dtype_name(n->dtype), ir_shape_str(&n->shape, buf, sizeof buf));
    if (n->name) fprintf(f, "  \"%s\"", n->name);
    print_loc(f, d, n->loc);
    fputc('\n', f);
}

void ir_print(FILE *f, const IrGraph *g, const Diag *d) {
    char buf[160];
    int ninputs = 0, nparams = 0, nfwd = 0, nbwd = 0;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == IR_INPUT) ninputs++;
        else if (n->op == IR_PARAM) nparams++;
        else if (n->backward) nbwd++;
        else nfwd++;
    }
    fprintf(f, "inputs (%d):\n", ninputs);
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op != IR_INPUT) continue;
        fprintf(f, "  %%%d = input \"%s\" : %s%s", i, n->name, ir_dtype_name(n->dtype),
                ir_shape_str(&n->shape, buf, sizeof buf));
        print_loc(f, d, n->loc);
        fputc('\n', f);
    }
    fprintf(f, "parameters (%d, %d trainable):\n", nparams, ir_count_trainable(g));
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op != IR_PARAM) continue;
        fprintf(f, "  %%%d = param \"%s\" : %s%s%s", i, n->name, ir_dtype_name(n->dtype),
                ir_shape_str(&n->shape, buf, sizeof buf), n->trainable ? " trainable" : "");
        print_loc(f, d, n->loc);
        fputc('\n', f);
    }
    fprintf(f, "forward (%d):\n", nfwd);
    for (int i = 0; i < g->n; i++)
        if (!ir_is_leaf(&g->nodes[i]) && !g->nodes[i].backward)
            print_node(f, g, d, i);
    if (nbwd) {
        fprintf(f, "backward (%d):\n", nbwd);
        for (int i = 0; i < g->n; i++)
            if (!ir_is_leaf(&g->nodes[i]) && g->nodes[i].backward)
                print_node(f, g, d, i);
    }
    fprintf(f, "outputs (%d):\n", g->nouts);
    for (int i = 0; i < g->nouts; i++)
        fprintf(f, "  %s = %%%d\n", g->outs[i].name, g->outs[i].id);
}

void ir_print_after(FILE *f, const IrGraph *g, const Diag *d, const char *pass) {
    fprintf(f, "# IR after %s: %d nodes\n", pass ? pass : "lower", g->n);
    ir_print(f, g, d);
}
