// recompute.c — activation recomputation: see recompute.h for what is kept and what is recomputed.
// Each pass chooses the forward values the backward recomputes (train.recompute: by layer; the
// cheap pass: one-input elementwise values whose input is kept anyway), then one rebuild makes the
// new node order (forward nodes as they were, each recomputed value cloned right before its first
// backward reader, with its recomputed inputs cloned first).
#include "recompute.h"
#include "ir_internal.h"
#include <stdlib.h>
#include <string.h>

enum { NO_LAYER = -1 };

// Layer of each forward node: a param's from its name (ir_layer_of); a node reading params
// directly takes the highest layer among them (NO_LAYER when they all have none: the final norm,
// the head); any other node the highest layer among its inputs.
static void assign_layers(const IrGraph *g, int nfwd, int *layer) {
    for (int i = 0; i < nfwd; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == IR_PARAM) {
            layer[i] = ir_layer_of(n->name);
            continue;
        }
        int from_params = NO_LAYER, from_values = NO_LAYER;
        bool reads_param = false;
        for (int k = 0; k < n->nin; k++) {
            const IrNode *in = &g->nodes[n->in[k]];
            int l = layer[n->in[k]];
            if (in->op == IR_PARAM) {
                reads_param = true;
                if (l > from_params) from_params = l;
            } else if (l > from_values) {
                from_values = l;
            }
        }
        layer[i] = reads_param ? from_params : from_values;
    }
}

// Appends a copy of node src (inputs already mapped by the caller into ins) to the new order.
static void emit(IrGraph *g, IrNode *out, int *nout, const IrNode *src, const IrId *ins, bool backward) {
    IrNode c = *src;
    c.in = c.nin ? arena_alloc(&g->arena, (size_t)c.nin * sizeof *c.in) : NULL;
    for (int k = 0; k < c.nin; k++) c.in[k] = ins[k];
    c.backward = backward;
    c.recomputed = src->recomputed || (backward && !src->backward);   // a forward value's clone (ir.h)
    out[(*nout)++] = c;
}

// How many nodes lead the graph before its first backward node; -1 (reported) when a forward
// node follows a backward one.
static int forward_count(IrGraph *g) {
    int n = g->n, nfwd = 0;
    while (nfwd < n && !g->nodes[nfwd].backward) nfwd++;
    for (int i = nfwd; i < n; i++)
        if (!g->nodes[i].backward) {
            ir_report(g, g->nodes[i].loc, "internal: recompute: forward node %%%d follows the backward pass", i);
            return -1;
        }
    return nfwd;
}

// Marks in fwd_read the values a backward node reads; -1 (reported) on an input out of order.
static int mark_backward_reads(IrGraph *g, int nfwd, bool *fwd_read) {
    for (int i = 0; i < g->n; i++) {
        const IrNode *nd = &g->nodes[i];
        for (int k = 0; k < nd->nin; k++) {
            IrId in = nd->in[k];
            if (in < 0 || in >= i) {
                ir_report(g, nd->loc, "internal: recompute: node %%%d reads %%%d out of order", i, in);
                return -1;
            }
            if (i >= nfwd) fwd_read[in] = true;
        }
    }
    return 0;
}

// The new order: forward nodes as they were, each value in redo cloned right before its first
// backward reader (its redo inputs cloned first, depth-first); the backward readers read the
// clones. Returns how many values were cloned, or -1 (reported) when out of memory.
static int rebuild(IrGraph *g, int nfwd, const bool *redo) {
    int n = g->n, rc = -1;
    size_t sz = (size_t)(n ? n : 1);
    IrId *map = malloc(sz * sizeof *map);         // old id → new id
    IrId *clone = malloc(sz * sizeof *clone);     // forward id → its recomputed copy, or IR_NONE
    IrId *stack = malloc(sz * sizeof *stack);
    int *next_in = malloc(sz * sizeof *next_in);
    // every clone is one more node: at most nfwd of them
    IrNode *nodes = malloc(((size_t)n + (size_t)nfwd + 1) * sizeof *nodes);
    IrId ins[64], *insp = ins;
    int maxin = 0;
    for (int i = 0; i < n; i++)
        if (g->nodes[i].nin > maxin) maxin = g->nodes[i].nin;
    if (!map || !clone || !stack || !next_in || !nodes || (maxin > 64 && !(insp = malloc((size_t)maxin * sizeof *insp)))) {
        ir_report(g, (Loc){0, 0, 0}, "out of memory in the recompute pass");
        goto out;
    }
    int m = 0;
    for (int i = 0; i < n; i++) clone[i] = IR_NONE;
    for (int i = 0; i < nfwd; i++) {
        const IrNode *nd = &g->nodes[i];
        for (int k = 0; k < nd->nin; k++) insp[k] = map[nd->in[k]];
        map[i] = m;
        emit(g, nodes, &m, nd, insp, false);
    }
    for (int i = nfwd; i < n; i++) {
        const IrNode *nd = &g->nodes[i];
        // clone every recomputed input first: depth-first over recomputed inputs, explicit stack
        for (int k = 0; k < nd->nin; k++) {
            IrId r = nd->in[k];
            if (!redo[r] || clone[r] != IR_NONE) continue;
            int sp = 0;
            stack[sp] = r;
            next_in[sp++] = 0;
            while (sp) {
                IrId v = stack[sp - 1];
                const IrNode *vn = &g->nodes[v];
                int j = next_in[sp - 1];
                if (j < vn->nin) {
                    next_in[sp - 1]++;
                    IrId u = vn->in[j];
                    if (redo[u] && clone[u] == IR_NONE) {   // sp < nfwd: each value is pushed once
                        stack[sp] = u;
                        next_in[sp++] = 0;
                    }
                    continue;
                }
                for (int q = 0; q < vn->nin; q++) {
                    IrId u = vn->in[q];
                    insp[q] = redo[u] ? clone[u] : map[u];
                }
                clone[v] = m;
                emit(g, nodes, &m, vn, insp, true);
                sp--;
            }
        }
        for (int k = 0; k < nd->nin; k++) {
            IrId r = nd->in[k];
            insp[k] = redo[r] ? clone[r] : map[r];
        }
        map[i] = m;
        emit(g, nodes, &m, nd, insp, true);
    }
    rc = 0;
    for (int i = 0; i < nfwd; i++) rc += clone[i] != IR_NONE;
    ir_install_nodes(g, nodes, m, &map);
    nodes = NULL;
out:
    if (insp != ins) free(insp);
    free(map);
    free(clone);
    free(stack);
    free(next_in);
    free(nodes);
    return rc;
}

int ir_recompute(IrGraph *g, RecomputeStats *stats) {
    RecomputeStats st = {0, 0, 0};
    int n = g->n, nfwd = forward_count(g);
    if (nfwd < 0) return -1;
    size_t sz = (size_t)(n ? n : 1);
    int *layer = malloc(sz * sizeof *layer);
    bool *redo = calloc(sz, sizeof *redo);        // forward value recomputed in the backward pass
    bool *fwd_read = calloc(sz, sizeof *fwd_read); // read by a backward node
    int rc = -1;
    if (!layer || !redo || !fwd_read) {
        ir_report(g, (Loc){0, 0, 0}, "out of memory in the recompute pass");
        goto out;
    }
    if (mark_backward_reads(g, nfwd, fwd_read) != 0) goto out;
    assign_layers(g, nfwd, layer);
    int maxl = NO_LAYER;
    for (int i = 0; i < nfwd; i++)
        if (g->nodes[i].op == IR_PARAM && layer[i] > maxl) maxl = layer[i];
    st.layers = maxl + 1;
    // candidates: forward values of a layer, not leaves, not outputs ...
    for (int i = 0; i < nfwd; i++) redo[i] = !ir_is_leaf(&g->nodes[i]) && layer[i] != NO_LAYER;
    for (int o = 0; o < g->nouts; o++)
        if (ir_valid(g, g->outs[o].id)) redo[g->outs[o].id] = false;
    if (ir_valid(g, g->loss)) redo[g->loss] = false;
    // ... not read by a forward node of another layer
    for (int i = 0; i < nfwd; i++)
        for (int k = 0; k < g->nodes[i].nin; k++)
            if (layer[g->nodes[i].in[k]] != layer[i]) redo[g->nodes[i].in[k]] = false;
    // A candidate the backward does not read itself is still recomputed when a recomputed value
    // needs it (cloned on demand): reading it from the forward pass instead would hold it to the
    // backward (a frozen projection's output, read only to recompute its activation).
    int wanted = 0;
    for (int i = 0; i < nfwd; i++) {
        if (!fwd_read[i] || ir_is_leaf(&g->nodes[i]) || layer[i] == NO_LAYER) continue;
        if (redo[i]) wanted++;
        else st.kept++;
    }
    rc = 0;
    if (wanted > 0) {   // else nothing to gain: the graph stays as it is
        int made = rebuild(g, nfwd, redo);
        if (made < 0) rc = -1;
        else st.recomputed = made;
    }
out:
    if (stats) *stats = st;
    free(layer);
    free(redo);
    free(fwd_read);
    return rc;
}

// Elementwise ops of one input that cost less to redo than to keep their result: a few flops per
// element against a stored value read back. Dropout regenerates the same mask.
static bool cheap_unary(IrOp op) {
    switch (op) {
    case IR_NEG: case IR_EXP: case IR_LOG: case IR_SQRT: case IR_RSQRT: case IR_TANH: case IR_SIGMOID:
    case IR_SILU: case IR_GELU: case IR_RELU: case IR_ABS: case IR_SQUARE: case IR_POW: case IR_LOG_SIGMOID:
    case IR_SOFTPLUS: case IR_DROPOUT:
        return true;
    default:
        return false;
    }
}

int ir_recompute_cheap(IrGraph *g, int *recomputed) {
    int n = g->n, nfwd = forward_count(g);
    if (recomputed) *recomputed = 0;
    if (nfwd < 0) return -1;
    size_t sz = (size_t)(n ? n : 1);
    bool *redo = calloc(sz, sizeof *redo);
    bool *fwd_read = calloc(sz, sizeof *fwd_read);
    bool *out_val = calloc(sz, sizeof *out_val);   // a graph output or the loss: stays
    int rc = -1;
    if (!redo || !fwd_read || !out_val) {
        ir_report(g, (Loc){0, 0, 0}, "out of memory in the recompute pass");
        goto out;
    }
    if (mark_backward_reads(g, nfwd, fwd_read) != 0) goto out;
    for (int o = 0; o < g->nouts; o++)
        if (ir_valid(g, g->outs[o].id)) out_val[g->outs[o].id] = true;
    if (ir_valid(g, g->loss)) out_val[g->loss] = true;
    // a value the backward reads, of a cheap op whose input is there in the backward anyway: a
    // leaf, a value the backward reads itself, or one recomputed the same way
    int wanted = 0;
    for (int i = 0; i < nfwd; i++) {
        const IrNode *nd = &g->nodes[i];
        if (!cheap_unary(nd->op) || nd->nin != 1 || out_val[i] || !fwd_read[i]) continue;
        IrId x = nd->in[0];
        if (!(ir_is_leaf(&g->nodes[x]) || fwd_read[x] || redo[x])) continue;
        redo[i] = true;
        wanted++;
    }
    rc = 0;
    if (wanted > 0) {
        int made = rebuild(g, nfwd, redo);
        if (made < 0) rc = -1;
        else if (recomputed) *recomputed = made;
    }
out:
    free(redo);
    free(fwd_read);
    free(out_val);
    return rc;
}
