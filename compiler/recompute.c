// recompute.c — activation recomputation: see recompute.h for what is kept and what is recomputed.
// Each pass chooses the forward values the backward recomputes (train.recompute: by layer; the
// cheap pass: short chains of elementwise ops and views over values the backward keeps anyway),
// then one rebuild makes the new node order (forward nodes as they were, each recomputed value
// cloned right before its first backward reader, with its recomputed inputs cloned first). Not
// here: deciding what fuses with the copies (fuse.c) or where buffers go (memplan.c).
#include "recompute.h"
#include "ir_internal.h"
#include "env.h"
#include <limits.h>
#include <stdint.h>
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
// clones. A value in fwd_in_chain (may be NULL) is cloned for the backward nodes that read it, but
// a clone that reads it reads the forward's value. With `fresh`, a reader a kernel computes reads
// clones made after the last kernel_barrier before it (stale ones are cloned again). Returns how
// many forward values were cloned, or -1 (reported) when out of memory.
// A backward node the fuser cannot put in a generated kernel (a product, a library op): a copy
// made before it and read by a kernel after it is written by one kernel and read back by another.
static bool kernel_barrier(IrOp op) {
    return !(ir_op_is_elementwise(op) || op == IR_RESHAPE || op == IR_PERMUTE || op == IR_BROADCAST ||
             op == IR_FULL || op == IR_SUM || op == IR_MEAN || op == IR_MAX || op == IR_SUM_TO);
}

// A copy made before a kernel barrier and read after it by an op a generated kernel computes: with
// `fresh`, made again for that reader (rebuild); only copies of ops a kernel computes.
static bool stale_copy(const IrGraph *g, const IrId *clone, IrId v, int barrier) {
    return clone[v] != IR_NONE && clone[v] < barrier && !kernel_barrier(g->nodes[v].op);
}

// Doubles the new order's array (node ids stay below INT_MAX); 0, or -1 when out of memory.
static int grow_nodes(IrNode **nodes, size_t *cap) {
    if (*cap > (size_t)INT_MAX / 2) return -1;
    IrNode *t = realloc(*nodes, 2 * *cap * sizeof *t);
    if (!t) return -1;
    *nodes = t;
    *cap *= 2;
    return 0;
}

static int rebuild(IrGraph *g, int nfwd, const bool *redo, const bool *fwd_in_chain, bool fresh) {
    int n = g->n, rc = -1;
    size_t sz = (size_t)(n ? n : 1);
    IrId *map = malloc(sz * sizeof *map);         // old id → new id
    IrId *clone = malloc(sz * sizeof *clone);     // forward id → its recomputed copy, or IR_NONE
    IrId *stack = malloc(sz * sizeof *stack);
    int *next_in = malloc(sz * sizeof *next_in);
    // every clone is one more node: at most nfwd of them, or more with `fresh` (grown then)
    size_t cap = (size_t)n + (size_t)nfwd + 1;
    IrNode *nodes = malloc(cap * sizeof *nodes);
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
    int barrier = -1;   // the new id of the last backward kernel_barrier node
    for (int i = nfwd; i < n; i++) {
        const IrNode *nd = &g->nodes[i];
        // with `fresh`, an op a kernel computes reads copies made after the last barrier, when
        // it reads a value made after them (else the fuser may put it beside the copy)
        bool renew = fresh && !kernel_barrier(nd->op) && nd->op != IR_RESHAPE;
        int latest = -1;   // the new id of its latest input that is no copy
        for (int k = 0; renew && k < nd->nin; k++)
            if (!redo[nd->in[k]] && map[nd->in[k]] > latest) latest = map[nd->in[k]];
        // clone every recomputed input first: depth-first over recomputed inputs, explicit stack
        for (int k = 0; k < nd->nin; k++) {
            IrId r = nd->in[k];
            bool again = renew && stale_copy(g, clone, r, barrier) && latest > clone[r];
            if (!redo[r] || (clone[r] != IR_NONE && !again)) continue;
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
                    if (redo[u] && !(fwd_in_chain && fwd_in_chain[u]) &&
                        (clone[u] == IR_NONE || (renew && stale_copy(g, clone, u, barrier)))) {   // pushed once each
                        stack[sp] = u;
                        next_in[sp++] = 0;
                    }
                    continue;
                }
                for (int q = 0; q < vn->nin; q++) {
                    IrId u = vn->in[q];
                    insp[q] = redo[u] && !(fwd_in_chain && fwd_in_chain[u]) ? clone[u] : map[u];
                }
                if ((size_t)m + 1 >= cap && grow_nodes(&nodes, &cap) != 0) {
                    ir_report(g, (Loc){0, 0, 0}, "out of memory in the recompute pass");
                    goto out;
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
        if ((size_t)m + 1 >= cap && grow_nodes(&nodes, &cap) != 0) {
            ir_report(g, (Loc){0, 0, 0}, "out of memory in the recompute pass");
            goto out;
        }
        map[i] = m;
        if (kernel_barrier(nd->op)) barrier = m;
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
        int made = rebuild(g, nfwd, redo, NULL, false);
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

// Chains (RecomputeCheapOptions.chains): every elementwise op (ir.h: unary, binary, where, cast,
// dropout), reshape and permute; rope with o->rope. Never a reduction, product or attention.
static bool chain_op(IrOp op, const RecomputeCheapOptions *o) {
    return ir_op_is_elementwise(op) || op == IR_RESHAPE || op == IR_PERMUTE || (op == IR_ROPE && o->rope);
}

// The forward attention node f shares its saved state (output, row statistics) with backward node
// b (fuse.c pairs them when b reads f's q, k, v and extras): the backward keeps f's output anyway.
static bool pairs_with(const IrNode *f, const IrNode *b) {
    if ((b->op != IR_SDPA_BWD_Q && b->op != IR_SDPA_BWD_K && b->op != IR_SDPA_BWD_V) || b->nin != f->nin + 1 ||
        f->a.causal != b->a.causal || f->a.scale != b->a.scale || f->a.segmented != b->a.segmented)
        return false;
    for (int k = 0; k < 3; k++)
        if (f->in[k] != b->in[k]) return false;
    for (int k = 3; k < f->nin; k++)
        if (f->in[k] != b->in[k + 1]) return false;
    return true;
}

// The chain pass's choice, in forward order: a value is recomputed (redo) when its op is cheap,
// it is not an output, not an operand of a paired library op (pinned), not blocked, each input is
// kept (a leaf, an output, a value the backward reads and does not recompute, paired attention's
// output) or recomputed itself, and the longest recomputed path under it is at most o->max_chain
// ops.
// Constants (full, arange) read by no backward node are recomputed (no inputs). A held value is
// recomputed for its own backward readers, but counts as kept for the values that read it (their
// copies read the forward's). Returns how many recomputed values the backward reads; the others
// are cloned on demand by rebuild when one of those needs them.
static int choose_chains(const IrGraph *g, int nfwd, const RecomputeCheapOptions *o, const bool *fwd_read,
                         const bool *out_val, const bool *paired, const bool *pinned, const bool *hold,
                         const bool *block, bool *kept, bool *redo, int *depth) {
    int wanted = 0;
    for (int i = 0; i < nfwd; i++) {
        const IrNode *nd = &g->nodes[i];
        redo[i] = false, depth[i] = 0;
        kept[i] = ir_is_leaf(nd) || out_val[i];
        if (kept[i]) continue;
        bool can = !pinned[i] && !block[i] && (nd->nin == 0 ? !fwd_read[i] : chain_op(nd->op, o));
        int d = 0;
        for (int k = 0; can && k < nd->nin; k++) {
            IrId u = nd->in[k];
            if (kept[u]) continue;
            if (redo[u]) {
                if (depth[u] > d) d = depth[u];
            } else {
                can = false;
            }
        }
        if (can && nd->nin > 0 && d + 1 > o->max_chain) can = false;
        if (can) {
            redo[i] = true;
            depth[i] = nd->nin ? d + 1 : 0;
            wanted += fwd_read[i];
            kept[i] = hold[i];
            continue;
        }
        // paired attention's output, also when its q, k or v is recomputed: the copies compute
        // the same bits, and fuse.c pairs the backward reading them with this forward
        kept[i] = fwd_read[i] || (nd->op == IR_SDPA && paired[i]);
    }
    return wanted;
}

// The forward twin of a backward library node that fuse.c pairs with it (the backward reads the
// forward's saved state or shares its work when both read the same inputs): IR_SDPA for
// attention's backward, IR_LINEAR_CE and IR_CROSS_ENTROPY for the head's; else IR_OP_COUNT.
static IrOp forward_twin(IrOp op) {
    switch (op) {
    case IR_SDPA_BWD_Q: case IR_SDPA_BWD_K: case IR_SDPA_BWD_V: return IR_SDPA;
    case IR_LINEAR_CE_BWD_X: case IR_LINEAR_CE_BWD_W: return IR_LINEAR_CE;
    case IR_CROSS_ENTROPY_BWD: return IR_CROSS_ENTROPY;
    default: return IR_OP_COUNT;
    }
}

// Elements of a shape with B = 8, T = 1024 (a typical step): only compared with another's.
static int64_t nominal_numel(const IrShape *s) {
    static const int64_t sym[IR_NSYMS] = {8, 1024};
    return ir_shape_numel(s, sym);
}

// Blocks (block[i] = true) each recomputed value whose copy would read kept values after the
// backward's last read of them (its copy is placed at the first backward reader of the earliest
// recomputed value that needs it) when those are together larger than the value itself: from
// their last read to the copy, they are held where the value was before (kept from the forward),
// so no larger is never more memory. last[u]: the backward's last read of u (for paired
// attention's output, its backward's). Returns how many values it blocked; need is scratch.
static int block_extensions(const IrGraph *g, int nfwd, const bool *fwd_read, const bool *out_val, const bool *redo,
                            const bool *hold, const int *first, const int *last, int *need, bool *block) {
    int n = g->n, blocked = 0;
    for (int i = nfwd - 1; i >= 0; i--) {   // readers come after their inputs
        if (!redo[i]) continue;
        if (fwd_read[i] && first[i] < need[i]) need[i] = first[i];
        for (int k = 0; k < g->nodes[i].nin; k++) {
            IrId u = g->nodes[i].in[k];
            if (redo[u] && !hold[u] && need[i] < need[u]) need[u] = need[i];
        }
    }
    for (int i = 0; i < nfwd; i++) {
        if (!redo[i] || need[i] >= n) continue;
        int64_t held = 0, own = nominal_numel(&g->nodes[i].shape);
        for (int k = 0; k < g->nodes[i].nin; k++) {
            IrId u = g->nodes[i].in[k];
            if ((redo[u] && !hold[u]) || ir_is_leaf(&g->nodes[u]) || out_val[u] || last[u] >= need[i]) continue;
            int64_t nu = nominal_numel(&g->nodes[u].shape);
            held = nu < 0 || held > INT64_MAX - nu ? INT64_MAX : held + nu;
        }
        if (held > 0 && (own < 0 || held > own)) block[i] = true, blocked++;
    }
    return blocked;
}

int ir_recompute_cheap_opts(IrGraph *g, const RecomputeCheapOptions *o, int *recomputed) {
    int n = g->n, nfwd = forward_count(g);
    if (recomputed) *recomputed = 0;
    if (nfwd < 0) return -1;
    size_t sz = (size_t)(n ? n : 1);
    bool *redo = calloc(sz, sizeof *redo);
    bool *fwd_read = calloc(sz, sizeof *fwd_read);
    bool *out_val = calloc(sz, sizeof *out_val);    // a graph output or the loss: stays
    bool *kept = calloc(sz, sizeof *kept);          // there in the backward anyway (chains)
    bool *paired = calloc(sz, sizeof *paired);      // attention whose backward reads its saved state
    bool *pinned = calloc(sz, sizeof *pinned);      // an input of a paired library op (not recomputed)
    bool *hold = calloc(sz, sizeof *hold);          // recomputed; its readers' copies read the forward's
    int *depth = calloc(sz, sizeof *depth);         // recomputed ops on the longest path down to kept values
    bool *block = calloc(sz, sizeof *block);        // not recomputed: its copy would hold a value longer
    int *first = malloc(sz * sizeof *first);        // the first / last backward node reading a value
    int *last = malloc(sz * sizeof *last);
    int *need = malloc(sz * sizeof *need);          // where a value's copy goes (block_extensions)
    int rc = -1;
    if (!redo || !fwd_read || !out_val || !kept || !paired || !pinned || !hold || !depth || !block || !first ||
        !last || !need) {
        ir_report(g, (Loc){0, 0, 0}, "out of memory in the recompute pass");
        goto out;
    }
    if (mark_backward_reads(g, nfwd, fwd_read) != 0) goto out;
    for (int k = 0; k < g->nouts; k++)
        if (ir_valid(g, g->outs[k].id)) out_val[g->outs[k].id] = true;
    if (ir_valid(g, g->loss)) out_val[g->loss] = true;
    int wanted = 0;
    if (!o->chains) {
        // a value the backward reads, of a cheap op whose input is there in the backward anyway: a
        // leaf, a value the backward reads itself, or one recomputed the same way
        for (int i = 0; i < nfwd; i++) {
            const IrNode *nd = &g->nodes[i];
            if (!cheap_unary(nd->op) || nd->nin != 1 || out_val[i] || !fwd_read[i]) continue;
            IrId x = nd->in[0];
            if (!(ir_is_leaf(&g->nodes[x]) || fwd_read[x] || redo[x])) continue;
            redo[i] = true;
            wanted++;
        }
    } else {
        // A library op whose backward pairs with its forward through the same inputs (attention:
        // the backward reads the forward's output and row statistics; the head's linear_ce: one
        // logits product for both, linear_ce.h): the inputs both read stay as they are (pinned),
        // else the backward would read copies and redo the forward's work. Attention's output is
        // then kept for the backward: a chain may start there (merge_heads(o) -> dropout). With
        // o->rope, q and k (rope) may be recomputed: the backward reads the copies, which fuse.c
        // pairs with the forward as the values they are (its output stays kept).
        for (int i = 0; i < n; i++) first[i] = n, last[i] = -1;
        for (int b = nfwd; b < n; b++)
            for (int k = 0; k < g->nodes[b].nin; k++) {
                IrId u = g->nodes[b].in[k];
                if (first[u] > b) first[u] = b;
                last[u] = b;
            }
        for (int b = nfwd; b < n; b++) {
            const IrNode *bn = &g->nodes[b];
            IrOp twin = forward_twin(bn->op);
            IrId f0 = bn->nin > 0 ? bn->in[0] : IR_NONE;   // the forward reading the same first input
            for (int i = f0 + 1; twin != IR_OP_COUNT && f0 >= 0 && i < nfwd; i++) {
                const IrNode *f = &g->nodes[i];
                if (f->op != twin || f->in[0] != f0) continue;
                if (twin == IR_SDPA) {
                    if (!pairs_with(f, bn)) continue;
                    paired[i] = true;
                    if (last[i] < b) last[i] = b;   // its output is read there (the saved state)
                    if (o->rope) break;
                }
                for (int k = 0; k < f->nin; k++)
                    for (int j = 0; j < bn->nin; j++)
                        if (bn->in[j] == f->in[k]) pinned[f->in[k]] = true;
                break;
            }
        }
        wanted = choose_chains(g, nfwd, o, fwd_read, out_val, paired, pinned, hold, block, kept, redo, depth);
        // A small value the backward reads (rmsnorm's rstd (B, T, 1)) that a larger recomputed
        // value reads too (x * rstd) is held: the larger one's copy reads the forward's value,
        // and its own backward readers (the norm's backward) a copy of their own, which the fuser
        // puts in their kernel. One shared copy would be a kernel launch of its own, for a few
        // bytes.
        bool again = false;
        for (int j = 0; j < nfwd; j++) {
            if (!redo[j]) continue;
            int64_t nj = nominal_numel(&g->nodes[j].shape);
            for (int k = 0; k < g->nodes[j].nin; k++) {
                IrId u = g->nodes[j].in[k];
                if (!redo[u] || !fwd_read[u] || hold[u] || g->nodes[u].nin == 0) continue;
                int64_t nu = nominal_numel(&g->nodes[u].shape);
                if (nu >= 0 && nj >= 0 && nu <= nj / 8) hold[u] = again = true;
            }
        }
        if (again)
            wanted = choose_chains(g, nfwd, o, fwd_read, out_val, paired, pinned, hold, block, kept, redo, depth);
        // Never hold more bytes than before: block the values whose copies would hold larger kept
        // values past their last read (none in the decoders of tests/gpu/specs and tests/run; a
        // value blocked is kept, which may make another's copy hold it, so repeat; a graph that
        // still has some after 16 rounds stays as it is).
        for (int round = 0;; round++) {
            for (int i = 0; i < nfwd; i++) need[i] = n;
            if (block_extensions(g, nfwd, fwd_read, out_val, redo, hold, first, last, need, block) == 0) break;
            if (round == 16) {
                wanted = 0;
                break;
            }
            wanted = choose_chains(g, nfwd, o, fwd_read, out_val, paired, pinned, hold, block, kept, redo, depth);
        }
    }
    rc = 0;
    if (wanted > 0) {
        int made = rebuild(g, nfwd, redo, o->chains ? hold : NULL, o->chains);
        if (made < 0) rc = -1;
        else if (recomputed) *recomputed = made;
    }
out:
    free(redo);
    free(fwd_read);
    free(out_val);
    free(kept);
    free(paired);
    free(pinned);
    free(hold);
    free(depth);
    free(block);
    free(first);
    free(last);
    free(need);
    return rc;
}

int ir_recompute_cheap(IrGraph *g, int *recomputed) {
    // TRLC_RECOMPUTE_CHAINS=0: one-input values only (to compare); TRLC_RECOMPUTE_ROPE=1: rope too
    static const char *const on_off[] = {"0", "1", NULL};
    int chains = env_choice(g->diag, "TRLC_RECOMPUTE_CHAINS", on_off, 1);
    int rope = env_choice(g->diag, "TRLC_RECOMPUTE_ROPE", on_off, 0);
    if (recomputed) *recomputed = 0;
    if (chains < 0 || rope < 0) return -1;
    RecomputeCheapOptions o = {.chains = chains == 1, .rope = rope == 1, .max_chain = RECOMPUTE_MAX_CHAIN};
    return ir_recompute_cheap_opts(g, &o, recomputed);
}
