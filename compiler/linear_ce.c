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
