// linear_ce.c — cross_entropy(x wᵀ) → linear_ce(x, w) (see linear_ce.h).
#include "linear_ce.h"
#include <stdlib.h>
#include <string.h>
#include "ir_internal.h"

bool ir_head_product(const IrGraph *g, IrId id, IrId *x, IrId *w) {
    if (!ir_valid(g, id)) return false;
    const IrNode *m = ir_nd(g, id);
    if (m->op != IR_MATMUL || m->nin != 2 || m->a.trans_a || !m->a.trans_b) return false;
    const IrNode *nx = ir_nd(g, m->in[0]), *nw = ir_nd(g, m->in[1]);
    if (nw->shape.rank != 2 || nx->shape.rank < 2 || nx->dtype != nw->dtype || nx->dtype != m->dtype ||
        nw->shape.d[0].syms)
        return false;
    *x = m->in[0], *w = m->in[1];
    return true;
}

int ir_fuse_linear_ce(IrGraph *g) {
    int *readers = ir_count_readers(g, "linear_ce");
    if (!readers) return -1;
    int fused = 0;
    for (int i = 0; i < g->n; i++) {
        IrNode *c = &g->nodes[i];
        if (c->op != IR_CROSS_ENTROPY || c->nin != 2 || !ir_valid(g, c->in[0])) continue;
        IrId mid = c->in[0], x, w, labels = c->in[1];
        if (readers[mid] != 1 || !ir_head_product(g, mid, &x, &w)) continue;
        IrNode *m = &g->nodes[mid];
        IrId *in = arena_alloc(&g->arena, 3 * sizeof *in);
        if (!in) {
            free(readers);
            ir_report(g, c->loc, "out of memory in the linear_ce pass");
            return -1;
        }
        in[0] = x, in[1] = w, in[2] = labels;
        c->op = IR_LINEAR_CE, c->in = in, c->nin = 3;   // dtype, shape and attributes stay
        // the product is read by nothing now: a dead scalar until dce (ids stay as they are)
        memset(&m->a, 0, sizeof m->a);
        m->op = IR_FULL, m->in = NULL, m->nin = 0, m->shape = ir_shape0(), m->a.shape = m->shape;
        fused++;
    }
    free(readers);
    return fused;
}

int ir_head_predictions(IrGraph *g, bool keep_logits) {
    int o = -1;
    for (int i = 0; i < g->nouts; i++)
        if (!strcmp(g->outs[i].name, "logits") && ir_valid(g, g->outs[i].id)) o = i;
    IrId x, w;
    if (o < 0 || !ir_head_product(g, g->outs[o].id, &x, &w)) return 0;
    IrId p = ir_linear_argmax(g, x, w, ir_nd(g, g->outs[o].id)->loc);
    if (p == IR_NONE || ir_add_output(g, p, "predictions") < 0) return -1;
    if (!keep_logits) {
        int k = 0;
        for (int i = 0; i < g->nouts; i++)
            if (i != o) g->outs[k++] = g->outs[i];
        g->nouts = k;
    }
    return 1;
}

// The backward of a head whose loss's gradient does not depend on the loss (sft, pretrain: the
// gradient of a sum is a constant) can run with its forward: one logits product per chunk serves
// the loss, dlogits, dx and dw (fuse.c pairs them; the recompute costs a head product per backward
// op otherwise: a third of the head's work in a LoRA step, two fifths in full fine-tuning).
bool ir_linear_ce_backward_of(const IrNode *f, const IrNode *b) {
    return (b->op == IR_LINEAR_CE_BWD_X || b->op == IR_LINEAR_CE_BWD_W) && b->nin == 4 && f->nin == 3 &&
           b->in[0] == f->in[0] && b->in[1] == f->in[1] && b->in[2] == f->in[2] && b->a.value == f->a.value &&
           b->a.ignore_index == f->a.ignore_index;
}

int ir_linear_ce_hoist_grads(IrGraph *g) {
    int n = g->n, hoisted = 0;
    bool *dep = calloc((size_t)(n ? n : 1), 1), *need = calloc((size_t)(n ? n : 1), 1);
    IrId *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!dep || !need || !order) {
        free(dep), free(need), free(order);
        ir_report(g, (Loc){0, 0, 0}, "out of memory in the linear_ce pass");
        return -1;
    }
    for (int f = 0; f < n; f++) {
        const IrNode *fn = &g->nodes[f];
        if (fn->op != IR_LINEAR_CE) continue;
        // what depends on f; then what the gradients of f's backward ops need from after f
        memset(dep, 0, (size_t)n), memset(need, 0, (size_t)n);
        dep[f] = true;
        for (int i = f + 1; i < n; i++)
            for (int k = 0; k < g->nodes[i].nin && !dep[i]; k++) dep[i] = g->nodes[i].in[k] >= f && dep[g->nodes[i].in[k]];
        int nneed = 0;
        for (int b = f + 1; b < n; b++) {
            const IrNode *bn = &g->nodes[b];
            if (!ir_linear_ce_backward_of(fn, bn) || bn->in[3] <= f || dep[bn->in[3]]) continue;
            need[bn->in[3]] = true;
        }
        for (int i = n - 1; i > f; i--) {
            if (!need[i]) continue;
            nneed++;
            for (int k = 0; k < g->nodes[i].nin; k++)
                if (g->nodes[i].in[k] > f) need[g->nodes[i].in[k]] = true;   // none depends on f: i does not
        }
        if (!nneed) continue;
        // the new order: before f, the needed nodes, f, the rest
        int m = 0;
        for (int i = 0; i < f; i++) order[m++] = i;
        for (int i = f + 1; i < n; i++)
            if (need[i]) order[m++] = i;
        for (int i = f; i < n; i++)
            if (!need[i]) order[m++] = i;
        IrId *map = malloc((size_t)n * sizeof *map);
        IrNode *nodes = malloc((size_t)n * sizeof *nodes);
        if (!map || !nodes) {
            free(map), free(nodes), free(dep), free(need), free(order);
            ir_report(g, fn->loc, "out of memory in the linear_ce pass");
            return -1;
        }
        for (int k = 0; k < n; k++) map[order[k]] = k;
        for (int k = 0; k < n; k++) {
            nodes[k] = g->nodes[order[k]];
            if (!nodes[k].nin) continue;
            IrId *in = arena_alloc(&g->arena, (size_t)nodes[k].nin * sizeof *in);
            if (!in) {
                free(map), free(nodes), free(dep), free(need), free(order);
                ir_report(g, fn->loc, "out of memory in the linear_ce pass");
                return -1;
            }
            for (int q = 0; q < nodes[k].nin; q++) in[q] = map[nodes[k].in[q]];
            nodes[k].in = in;
        }
        ir_install_nodes(g, nodes, n, &map);
        free(map);
        hoisted += nneed;
        f += nneed;   // f's new position
    }
    free(dep), free(need), free(order);
    return hoisted;
}
