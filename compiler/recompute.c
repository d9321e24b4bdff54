// recompute.c — activation recomputation: see recompute.h for what is kept and what is recomputed.
// Three passes over the graph: the layer of every forward node, which of them the backward pass
// recomputes, then the new node order (forward nodes as they were, each recomputed value cloned
// right before its first backward reader, with its recomputed inputs cloned first).
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
    out[(*nout)++] = c;
}

int ir_recompute(IrGraph *g, RecomputeStats *stats) {
    RecomputeStats st = {0, 0, 0};
    int n = g->n, nfwd = 0;
    while (nfwd < n && !g->nodes[nfwd].backward) nfwd++;
    for (int i = nfwd; i < n; i++)
        if (!g->nodes[i].backward) {
            ir_report(g, g->nodes[i].loc, "internal: recompute: forward node %%%d follows the backward pass", i);
            return -1;
        }
    size_t sz = (size_t)(n ? n : 1);
    int *layer = malloc(sz * sizeof *layer);
    bool *redo = calloc(sz, sizeof *redo);        // forward value recomputed in the backward pass
    bool *fwd_read = calloc(sz, sizeof *fwd_read); // read by a backward node
    IrId *map = malloc(sz * sizeof *map);         // old id → new id
    IrId *clone = malloc(sz * sizeof *clone);     // forward id → its recomputed copy, or IR_NONE
    IrId *stack = malloc(sz * sizeof *stack);
    int *next_in = malloc(sz * sizeof *next_in);
    IrNode *nodes = NULL;
    int rc = -1;
    if (!layer || !redo || !fwd_read || !map || !clone || !stack || !next_in) goto oom;

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
    // ... not read by a forward node of another layer; and read by the backward pass at all
    for (int i = 0; i < n; i++) {
        const IrNode *nd = &g->nodes[i];
        for (int k = 0; k < nd->nin; k++) {
            IrId in = nd->in[k];
            if (in < 0 || in >= i) {
                ir_report(g, nd->loc, "internal: recompute: node %%%d reads %%%d out of order", i, in);
                goto out;
            }
            if (i < nfwd && layer[in] != layer[i]) redo[in] = false;
            if (i >= nfwd) fwd_read[in] = true;
        }
    }
    // A candidate the backward does not read itself is still recomputed when a recomputed value
    // needs it (cloned on demand below): reading it from the forward pass instead would hold it
    // to the backward (a frozen projection's output, read only to recompute its activation).
    int wanted = 0;
    for (int i = 0; i < nfwd; i++) {
        if (ir_is_leaf(&g->nodes[i]) || layer[i] == NO_LAYER) redo[i] = false;
        if (!fwd_read[i] || ir_is_leaf(&g->nodes[i]) || layer[i] == NO_LAYER) continue;
        if (redo[i]) wanted++;
        else st.kept++;
    }
    if (wanted == 0) {   // nothing to gain: leave the graph as it is
        rc = 0;
        goto out;
    }

    // The new order. Every clone is one more node: at most nfwd of them.
    size_t cap = (size_t)n + (size_t)nfwd;
    nodes = malloc(cap * sizeof *nodes);
    if (!nodes) goto oom;
    int m = 0;
    IrId ins[64], *insp = ins;
    int maxin = 0;
    for (int i = 0; i < n; i++)
        if (g->nodes[i].nin > maxin) maxin = g->nodes[i].nin;
    if (maxin > 64 && !(insp = malloc((size_t)maxin * sizeof *insp))) goto oom;
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
    if (insp != ins) free(insp);
    for (int i = 0; i < nfwd; i++) st.recomputed += clone[i] != IR_NONE;

    ir_install_nodes(g, nodes, m, &map);
    nodes = NULL;
    rc = 0;
    goto out;
oom:
    ir_report(g, (Loc){0, 0, 0}, "out of memory in the recompute pass");
out:
    if (stats) *stats = st;
    free(layer);
    free(redo);
    free(fwd_read);
    free(map);
    free(clone);
    free(stack);
    free(next_in);
    free(nodes);
    return rc;
}
