// fuse.c — the fusion pass (see fuse.h): one walk over the nodes in topological order. Each
// fusable node joins the group of one of its producers when the shapes and phases allow it (and
// forward and backward nodes stay apart), else
// the group opened last (for nodes whose inputs all come from memory, or when no working step
// follows that group: see place_fused), else it opens a new group.
// A node may only join group G when every input it reads from memory is computed by a step
// placed before G, so that the steps (in creation order) stay topologically ordered — or when G
// can be sunk: moved to the end of the steps made so far, past steps that read none of its
// members (SwiGLU's silu(gate) past the up projection's GEMMs into the mul that reads both).
// Sinking only delays a group; it never moves a step past a reader of its values, and never
// makes an input of the group live longer than it lives anyway (see sink_ok).
// Then merging: a kernel group next to a reduction group (views between at most) joins it when
// every member takes a level there (RMSNorm's backward: one kernel instead of four).
// Afterwards: each group's external inputs and outputs, its canonical form and hash, and the
// deduplicated kernel table. Not here: source text (codegen_cuda.c), evaluation (fuse_eval.c).
#include "env.h"
#include "linear_ce.h"
#include "strbuf.h"
#include "fuse.h"
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

uint64_t fuse_hash(const void *data, size_t n, uint64_t seed) {
    const unsigned char *s = data;
    uint64_t h = 0xcbf29ce484222325ull ^ seed;
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

// ---------------------------------------------------------------------------------------------
// classification

static bool dtype_ok(IrDType t) { return t == IR_F32 || t == IR_BF16 || t == IR_I32; }

static bool is_reduce_op(IrOp op) {
    return op == IR_SUM || op == IR_MEAN || op == IR_MAX || op == IR_SUM_TO;
}

// A node a generated kernel can compute (as a member or an inlined constant).
static bool node_fusable(const IrGraph *g, const IrNode *n) {
    if (!(ir_op_is_elementwise(n->op) || n->op == IR_BROADCAST || n->op == IR_FULL || n->op == IR_PERMUTE ||
          is_reduce_op(n->op)))
        return false;
    if (!dtype_ok(n->dtype)) return false;
    for (int i = 0; i < n->nin; i++) {
        const IrNode *x = ir_node(g, n->in[i]);
        if (!x || !dtype_ok(x->dtype)) return false;
    }
    return true;
}

const char *fuse_step_op(const FusePlan *p, int step) {
    if (step < 0 || step >= p->nsteps) return "?";
    const FuseStep *s = &p->steps[step];
    if (s->kind == FUSE_KERNEL) return "kernel";
    if (s->kind == FUSE_GEMM) return "gemm";
    const IrNode *n = ir_node(p->g, s->node);
    return n ? ir_op_name(n->op) : "?";
}

// ---------------------------------------------------------------------------------------------
// growing arrays

static int push_step(FusePlan *p, FuseStepKind kind, IrId node, int group) {
    if (p->nsteps == p->capsteps) {
        int cap = p->capsteps ? 2 * p->capsteps : 64;
        FuseStep *s = realloc(p->steps, (size_t)cap * sizeof *s);
        if (!s) return -1;
        p->steps = s;
        p->capsteps = cap;
    }
    p->steps[p->nsteps] = (FuseStep){kind, node, group};
    p->nsteps_kind[kind]++;
    return p->nsteps++;
}

static int new_group(FusePlan *p, const IrShape *dom) {
    if (p->ngroups == p->capgroups) {
        int cap = p->capgroups ? 2 * p->capgroups : 64;
        FuseGroup *gr = realloc(p->groups, (size_t)cap * sizeof *gr);
        if (!gr) return -1;
        p->groups = gr;
        p->capgroups = cap;
    }
    FuseGroup *gr = &p->groups[p->ngroups];
    memset(gr, 0, sizeof *gr);
    gr->dom = *dom;
    gr->nodes = arena_alloc(&p->arena, FUSE_MAX_MEMBERS * sizeof *gr->nodes);
    gr->kernel = -1;
    int gi = p->ngroups++;
    gr->step = push_step(p, FUSE_KERNEL, IR_NONE, gi);
    if (gr->step < 0) return -1;
    return gi;
}

static void add_member(FusePlan *p, int gi, IrId id, FuseLevel lv) {
    FuseGroup *gr = &p->groups[gi];
    gr->nodes[gr->nnodes++] = id;
    p->group_of[id] = gi;
    p->level[id] = (uint8_t)lv;
    p->step_of[id] = gr->step;
    p->steps[gr->step].node = id;
}

// ---------------------------------------------------------------------------------------------
// joining

static bool is_reduced_level(FuseLevel lv) { return lv == FUSE_LV_RED || lv == FUSE_LV_EPI; }

// The reduced axes of a reduction node over its input's shape (dom).
static uint32_t reduce_axes(const IrNode *n, const IrShape *dom) {
    if (n->op != IR_SUM_TO) return n->a.axes;
    uint32_t axes = 0;
    int lead = dom->rank - n->shape.rank;
    for (int i = 0; i < dom->rank; i++) {
        if (i < lead) axes |= 1u << i;
        else if (ir_dim_is_one(n->shape.d[i - lead]) && !ir_dim_is_one(dom->d[i])) axes |= 1u << i;
    }
    return axes;
}

static int count_reductions(const FusePlan *p, const FuseGroup *gr) {
    int k = 0;
    for (int i = 0; i < gr->nnodes; i++) k += p->level[gr->nodes[i]] == FUSE_LV_RED;
    return k;
}

// Distinct inputs group gi reads from memory if n joins it.
static int count_inputs_with(const FusePlan *p, int gi, const IrNode *n) {
    const FuseGroup *gr = &p->groups[gi];
    IrId seen[FUSE_MAX_INS + 4];
    int k = 0;
    for (int m = 0; m <= gr->nnodes && k <= FUSE_MAX_INS; m++) {
        const IrNode *x = m < gr->nnodes ? &p->g->nodes[gr->nodes[m]] : n;
        for (int i = 0; i < x->nin && k <= FUSE_MAX_INS; i++) {
            IrId y = x->in[i];
            if (fuse_member_src(p, gi, y) != IR_NONE || p->level[y] == FUSE_LV_CONST) continue;
            y = fuse_read_src(p, gi, y);
            bool dup = false;
            for (int j = 0; j < k && !dup; j++) dup = seen[j] == y;
            if (!dup) seen[k++] = y;
        }
    }
    return k;
}

// ---------------------------------------------------------------------------------------------
// sinking: a group moved to the end of the steps made so far, so that node `id` (whose inputs
// come from those later steps) can join it. Legal when no step after the group reads one of
// its members (the order stays topological: the group's own inputs are all earlier still), and
// worth it only when every value the group reads from memory is read at or after `id` anyway
// (by `id` itself, by a later node, or as a graph output): a large input is then held no longer
// than it was, while the group's values are written later (or, read only inside the merged
// group, not at all). At most FUSE_SINK_MAX_STEPS steps are passed over.

enum { FUSE_SINK_MAX_STEPS = 16 };

static bool step_reads_group(const FusePlan *p, int s, int gi) {
    const FuseStep *st = &p->steps[s];
    const IrGraph *g = p->g;
    if (st->kind != FUSE_KERNEL) {
        const IrNode *n = &g->nodes[st->node];
        for (int i = 0; i < n->nin; i++)
            if (p->group_of[n->in[i]] == gi) return true;
        return false;
    }
    const FuseGroup *gr = &p->groups[st->group];
    for (int m = 0; m < gr->nnodes; m++) {
        const IrNode *n = &g->nodes[gr->nodes[m]];
        for (int i = 0; i < n->nin; i++)
            if (p->group_of[n->in[i]] == gi) return true;
    }
    return false;
}

static bool sink_ok(const FusePlan *p, int gi, IrId id) {
    const FuseGroup *gr = &p->groups[gi];
    const IrGraph *g = p->g;
    if (!p->sink || p->nsteps - 1 - gr->step > FUSE_SINK_MAX_STEPS) return false;
    for (int s = gr->step + 1; s < p->nsteps; s++)
        if (step_reads_group(p, s, gi)) return false;
    const IrNode *n = &g->nodes[id];
    for (int m = 0; m < gr->nnodes; m++) {
        const IrNode *x = &g->nodes[gr->nodes[m]];
        for (int i = 0; i < x->nin; i++) {
            IrId y = x->in[i];
            if (p->group_of[y] == gi || p->level[y] == FUSE_LV_CONST || ir_is_leaf(&g->nodes[y])) continue;
            if (p->last_reader[y] > id) continue;   // graph outputs: g->n
            bool read_by_id = false;
            for (int k = 0; k < n->nin && !read_by_id; k++) read_by_id = n->in[k] == y;
            if (!read_by_id) return false;
        }
    }
    return true;
}

// Gives step s its index: the group's step and its members' (or the node's) step_of.
static void set_step_index(FusePlan *p, int s) {
    const FuseStep *st = &p->steps[s];
    if (st->kind != FUSE_KERNEL) {
        p->step_of[st->node] = s;
        return;
    }
    FuseGroup *gr = &p->groups[st->group];
    gr->step = s;
    for (int m = 0; m < gr->nnodes; m++) p->step_of[gr->nodes[m]] = s;
}

// Moves group gi's step to the end; the steps after it move up one.
static void sink_group(FusePlan *p, int gi) {
    int from = p->groups[gi].step, to = p->nsteps - 1;
    FuseStep moved = p->steps[from];
    for (int s = from; s < to; s++) {
        p->steps[s] = p->steps[s + 1];
        set_step_index(p, s);
    }
    p->steps[to] = moved;
    set_step_index(p, to);
    p->nsunk++;
}

// Whether elementwise node n, of a shape S other than group gi's domain D, may join gi over D's
// elements (fuse.h): S has D's element count, n reads a member (directly or through reshapes) or
// a reshape of a value gi reads, and S is one of at most FUSE_MAX_SPACES shapes of gi's members
// over D's elements. (The caller checks each member input's shape.)
static bool view_space_ok(const FusePlan *p, int gi, const IrNode *n) {
    const FuseGroup *gr = &p->groups[gi];
    const IrGraph *g = p->g;
    IrDim a, b;
    if (!ir_shape_numel_dim(&n->shape, &a) || !ir_shape_numel_dim(&gr->dom, &b) || !ir_dim_eq(a, b)) return false;
    bool touch = false;
    for (int i = 0; i < n->nin && !touch; i++) {
        IrId x = n->in[i], r = fuse_view_src(g, x);
        if (fuse_member_src(p, gi, x) != IR_NONE) touch = true;
        else if (r != x)   // a view of a value the group reads from memory
            for (int m = 0; m < gr->nnodes && !touch; m++) {
                const IrNode *y = &g->nodes[gr->nodes[m]];
                for (int k = 0; k < y->nin && !touch; k++) touch = fuse_view_src(g, y->in[k]) == r;
            }
    }
    if (!touch) return false;
    IrShape seen[FUSE_MAX_SPACES];
    int ns = 0;
    seen[ns++] = gr->dom;
    for (int m = 0; m < gr->nnodes; m++) {
        IrId id = gr->nodes[m];
        if (p->level[id] != FUSE_LV_PRO && p->level[id] != FUSE_LV_POST) continue;
        bool dup = false;
        for (int k = 0; k < ns && !dup; k++) dup = ir_shape_eq(&g->nodes[id].shape, &seen[k]);
        if (dup) continue;
        if (ns == FUSE_MAX_SPACES) return false;
        seen[ns++] = g->nodes[id].shape;
    }
    for (int k = 0; k < ns; k++)
        if (ir_shape_eq(&n->shape, &seen[k])) return true;
    return ns < FUSE_MAX_SPACES;
}

// The level n (node id) would have in group gi, or FUSE_LV_NONE when it cannot join. With
// `sink` given, n may also join when the group can be sunk first (*sink set: the caller sinks).
static FuseLevel join_level(const FusePlan *p, int gi, IrId id, bool *sink) {
    const FuseGroup *gr = &p->groups[gi];
    const IrGraph *g = p->g;
    const IrNode *n = &g->nodes[id];
    if (sink) *sink = false;
    if (gr->nnodes >= FUSE_MAX_MEMBERS || count_inputs_with(p, gi, n) > FUSE_MAX_INS) return FUSE_LV_NONE;
    // a backward node never joins a forward group: it would run in the forward pass, and a value
    // recomputed for the backward (recompute.h) would be computed early and held all along
    if (gr->nnodes > 0 && g->nodes[gr->nodes[0]].backward != n->backward) return FUSE_LV_NONE;
    if (!p->views)   // (TRLC_FUSE_VIEWS=0) no member read through a reshape
        for (int i = 0; i < n->nin; i++)
            if (fuse_member_src(p, gi, n->in[i]) != IR_NONE && p->group_of[n->in[i]] != gi) return FUSE_LV_NONE;
    // every input read from memory must come from a step placed before the group (or the group
    // is sunk below them all)
    for (int i = 0; i < n->nin; i++) {
        IrId x = n->in[i];
        if (fuse_member_src(p, gi, x) != IR_NONE || p->level[x] == FUSE_LV_CONST) continue;
        x = fuse_read_src(p, gi, x);
        if (p->step_of[x] >= gr->step) {
            if (!sink || !sink_ok(p, gi, id)) return FUSE_LV_NONE;
            *sink = true;
            break;
        }
    }
    if (is_reduce_op(n->op)) {
        IrId x = n->in[0];
        const IrNode *xn = ir_node(g, x);
        if (!ir_shape_eq(&xn->shape, &gr->dom)) return FUSE_LV_NONE;   // (through views too: D only)
        IrId mx = fuse_member_src(p, gi, x);
        if (mx != IR_NONE && p->level[mx] != FUSE_LV_PRO) return FUSE_LV_NONE;
        uint32_t axes = reduce_axes(n, &gr->dom);
        if (gr->has_reduce) {
            if (axes != gr->axes || !ir_shape_eq(&n->shape, &gr->rshape)) return FUSE_LV_NONE;
            if (count_reductions(p, gr) >= FUSE_MAX_REDUCE) return FUSE_LV_NONE;
        }
        return FUSE_LV_RED;
    }
    // a permute reads its input at permuted indexes: only from memory, only over the domain
    if (n->op == IR_PERMUTE) {
        if (fuse_member_src(p, gi, n->in[0]) != IR_NONE || !ir_shape_eq(&n->shape, &gr->dom)) return FUSE_LV_NONE;
        return FUSE_LV_PRO;
    }
    // elementwise (and broadcast): which levels do its member inputs have?
    bool any_red = false, any_full = false;
    for (int i = 0; i < n->nin; i++) {
        IrId mx = fuse_member_src(p, gi, n->in[i]);
        if (mx == IR_NONE) continue;
        FuseLevel lv = (FuseLevel)p->level[mx];
        if (is_reduced_level(lv)) any_red = true;
        else any_full = true;
    }
    if (gr->has_reduce && ir_shape_eq(&n->shape, &gr->rshape) && !any_full) return FUSE_LV_EPI;
    bool in_dom = ir_shape_eq(&n->shape, &gr->dom);
    if (!in_dom && !view_space_ok(p, gi, n)) return FUSE_LV_NONE;
    bool post = any_red;
    for (int i = 0; i < n->nin; i++) {
        IrId x = n->in[i], mx = fuse_member_src(p, gi, x);
        if (mx == IR_NONE) continue;
        if (p->level[mx] == FUSE_LV_POST) post = true;
        const IrNode *xn = ir_node(g, x);
        if (is_reduced_level((FuseLevel)p->level[mx])) {
            // a reduced value used over D must broadcast exactly along the reduced axes
            if (!in_dom || !ir_shape_eq(&xn->shape, &gr->rshape)) return FUSE_LV_NONE;
        } else if (!ir_shape_eq(&xn->shape, &n->shape)) {
            // a value over D's elements is read at the same linear index: of the reader's shape
            // (directly, or through reshapes)
            return FUSE_LV_NONE;
        }
    }
    return post ? FUSE_LV_POST : FUSE_LV_PRO;
}

// Bytes of a value at a nominal step (B = 8, T = 1024): only compared with another's.
static int64_t nominal_bytes(const IrNode *n) {
    static const int64_t sym[IR_NSYMS] = {8, 1024};
    int64_t k = ir_shape_numel(&n->shape, sym), e = n->dtype == IR_BF16 ? 2 : n->dtype == IR_U8 ? 1 : 4;
    return k < 0 || k > INT64_MAX / 8 ? INT64_MAX : k * e;
}

// Whether no step that does work (a GEMM, a library step, another kernel) follows group gi's.
static bool group_open(const FusePlan *p, int gi) {
    for (int s = p->groups[gi].step + 1; s < p->nsteps; s++)
        if (p->steps[s].kind != FUSE_VIEW) return false;
    return true;
}

// Whether node id, computed where a group placed before some working steps is, would hold no
// more bytes across them than it frees there: its value's bytes at most those of its inputs
// (not leaves or inlined constants) that id reads last; or its shape does not grow with B and T
// (a weight's bf16 copy).
static bool frees_own(const FusePlan *p, IrId id) {
    const IrGraph *g = p->g;
    const IrNode *n = &g->nodes[id];
    bool per_token = false;   // grows with B or T (else a weight-sized value: a weight's cast)
    for (int i = 0; i < n->shape.rank; i++) per_token |= n->shape.d[i].syms != 0;
    if (!per_token) return true;
    int64_t freed = 0;
    for (int i = 0; i < n->nin; i++) {
        IrId x = n->in[i];
        if (p->level[x] == FUSE_LV_CONST || ir_is_leaf(&g->nodes[x])) continue;
        if (p->last_reader[x] != id || fuse_view_src(g, x) != x) return false;   // (a view frees nothing)
        bool dup = false;
        for (int k = 0; k < i && !dup; k++) dup = n->in[k] == x;
        int64_t b = nominal_bytes(&g->nodes[x]);
        if (!dup) freed = freed > INT64_MAX - b ? INT64_MAX : freed + b;
    }
    return nominal_bytes(n) <= freed;
}

// Whether node id, which reads no member, may join the group made last (join_level decides
// whether it can): when no working step follows that group; past one, as it always could, but
// for a value recomputed for the backward (ir.h IrNode.recomputed: recompute.h places each copy
// just before its first reader) that would hold more than it frees (frees_own). Such a copy
// computed before those steps would be held across them for its readers after them: the
// backward's copies that SwiGLU's gradient reads after the down projection's GEMMs start a group
// there, which the gradient joins. Other nodes join as before (a LoRA dropout of a GEMM's output:
// the output dies where the dropout's value is born).
static bool may_join_last(const FusePlan *p, IrId id) {
    return group_open(p, p->ngroups - 1) || !p->g->nodes[id].recomputed || frees_own(p, id);
}

static int place_fused(FusePlan *p, IrId id) {
    const IrGraph *g = p->g;
    const IrNode *n = &g->nodes[id];
    int gi = -1;
    FuseLevel lv = FUSE_LV_NONE;
    bool has_member_input = false;
    for (int i = 0; i < n->nin && gi < 0; i++) {
        int cand = p->group_of[n->in[i]];
        if (cand >= 0) has_member_input = true;
        else if (p->views) cand = p->group_of[fuse_view_src(g, n->in[i])];   // a member read through reshapes
        if (cand < 0) continue;
        lv = join_level(p, cand, id, NULL);
        if (lv != FUSE_LV_NONE) gi = cand;
    }
    // a recomputed value whose producer's group has working steps after it: rather the open group
    // made last, when it would hold its value across those steps without freeing as many bytes
    // (frees_own: silu's copy beside gate's cast, read by up's gradient after the GEMMs)
    if (gi >= 0 && n->recomputed && !group_open(p, gi) && !frees_own(p, id)) {
        int last = p->ngroups - 1;
        FuseLevel l2 = last != gi && group_open(p, last) ? join_level(p, last, id, NULL) : FUSE_LV_NONE;
        if (l2 != FUSE_LV_NONE) gi = last, lv = l2;
    }
    // else a producer's group sunk below the node's other inputs
    for (int i = 0; i < n->nin && gi < 0; i++) {
        int cand = p->group_of[n->in[i]];
        bool sink = false;
        if (cand < 0) continue;
        lv = join_level(p, cand, id, &sink);
        if (lv == FUSE_LV_NONE) continue;
        gi = cand;
        if (sink) sink_group(p, gi);
    }
    // else the group made last: one with a member input when no working step follows it (the node
    // runs where a group of its own would: the gradients of gate and up in one kernel), else as
    // may_join_last says
    if (gi < 0 && p->ngroups > 0 && (has_member_input ? group_open(p, p->ngroups - 1) : may_join_last(p, id))) {
        int last = p->ngroups - 1;
        lv = join_level(p, last, id, NULL);
        if (lv != FUSE_LV_NONE) gi = last;
    }
    if (gi < 0) {
        const IrShape *dom = is_reduce_op(n->op) ? &g->nodes[n->in[0]].shape : &n->shape;
        gi = new_group(p, dom);
        if (gi < 0) return -1;
        lv = is_reduce_op(n->op) ? FUSE_LV_RED : FUSE_LV_PRO;
    }
    FuseGroup *gr = &p->groups[gi];
    if (lv == FUSE_LV_RED && !gr->has_reduce) {
        gr->has_reduce = true;
        gr->axes = reduce_axes(n, &gr->dom);
        gr->rshape = n->shape;
    }
    add_member(p, gi, id, lv);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// merging (after grouping): a group Y moves into an earlier reduction group X when every member
// of Y can take a level in X (join_level: EPI at X's reduced shape, PRO/POST over X's domain,
// reduced values broadcast exactly along X's axes; inputs from memory computed before X's step;
// X's limits on members and inputs; forward and backward apart). Y's members then run at X's
// step: X absorbs Y, Y's step goes. RMSNorm's backward: the [B,T,1] group of the recomputed
// rsqrt and the reduced terms, then the two [B,T,H] groups using them, all join the sum_to's
// reduction kernel. Only when no step that does work lies between X and Y (views may): the moved
// members' outputs are then written no earlier than they were, so no value lives longer, while
// the values only Y read from X stay in registers. Y must read a member of X and hold no
// reduction. The other way (pull_into): the group just before a reduction group, read by it,
// joins it and the union is levelled again (full fine-tuning's norm backward, where the weight
// gradient's reduction comes first). Dropout members keep their masks: the mask hashes (seed,
// salt, step, index), the index is the member's own linear index (over D at D's shape, over R at
// R's), as in Y's kernel.

static bool group_reads(const FusePlan *p, int yi, int xi) {
    const FuseGroup *y = &p->groups[yi];
    for (int m = 0; m < y->nnodes; m++) {
        const IrNode *n = &p->g->nodes[y->nodes[m]];
        for (int i = 0; i < n->nin; i++)
            if (p->group_of[n->in[i]] == xi) return true;
    }
    return false;
}

static bool relevel_into(FusePlan *p, int xi, int yi);

// Moves group yi's members into group xi, each at its join_level; on any refusal puts them back
// and returns false. When xi reads a member of yi (only as a widening cast's source,
// FusePlan.read_as), the union is levelled again in node order (relevel_into): yi's members
// would otherwise follow their readers.
static bool merge_into(FusePlan *p, int xi, int yi) {
    FuseGroup *x = &p->groups[xi], *y = &p->groups[yi];
    const IrGraph *g = p->g;
    if (!x->has_reduce || y->has_reduce || y->nnodes == 0 || x->nnodes + y->nnodes > FUSE_MAX_MEMBERS ||
        !group_reads(p, yi, xi))
        return false;
    for (int m = 0; m < y->nnodes; m++)
        if (g->nodes[y->nodes[m]].op == IR_FULL) return false;
    if (group_reads(p, xi, yi)) return relevel_into(p, xi, yi);
    int x0 = x->nnodes;
    IrId xlast = p->steps[x->step].node;
    uint8_t old_level[FUSE_MAX_MEMBERS];
    int moved = 0;
    for (; moved < y->nnodes; moved++) {
        IrId id = y->nodes[moved];
        old_level[moved] = p->level[id];
        FuseLevel lv = g->nodes[id].op == IR_FULL ? FUSE_LV_NONE : join_level(p, xi, id, NULL);
        if (lv == FUSE_LV_NONE || lv == FUSE_LV_RED) break;
        add_member(p, xi, id, lv);
    }
    if (moved == y->nnodes) return true;
    for (int m = 0; m < moved; m++) {   // back out
        IrId id = y->nodes[m];
        p->group_of[id] = yi;
        p->level[id] = old_level[m];
        p->step_of[id] = y->step;
    }
    x->nnodes = x0;
    p->steps[x->step].node = xlast;
    return false;
}

// The other way: group yi, just before the reduction group xi (only views between, none reading
// yi), moves into xi when xi reads one of its members; the union is levelled again in node order
// (a [B,T,1] member of yi becomes epi, and xi's members reading it post). yi's members then run
// later, at xi's step: their inputs are held across views only, their outputs written later.
static bool pull_into(FusePlan *p, int yi, int xi) {
    FuseGroup *x = &p->groups[xi], *y = &p->groups[yi];
    const IrGraph *g = p->g;
    if (!x->has_reduce || y->has_reduce || y->nnodes == 0 || x->nnodes + y->nnodes > FUSE_MAX_MEMBERS ||
        !group_reads(p, xi, yi))
        return false;
    for (int s = y->step + 1; s < x->step; s++)
        if (step_reads_group(p, s, yi)) return false;
    bool bwd = g->nodes[x->nodes[0]].backward;
    for (int m = 0; m < y->nnodes; m++)
        if (g->nodes[y->nodes[m]].op == IR_FULL || g->nodes[y->nodes[m]].backward != bwd) return false;
    return relevel_into(p, xi, yi);
}

// Moves the members of groups xi and yi into xi, levelled again in node order (a topological
// order); on any refusal puts them back and returns false.
static bool relevel_into(FusePlan *p, int xi, int yi) {
    FuseGroup *x = &p->groups[xi], *y = &p->groups[yi];
    IrId u[FUSE_MAX_MEMBERS], xn[FUSE_MAX_MEMBERS];
    uint8_t xl[FUSE_MAX_MEMBERS], yl[FUSE_MAX_MEMBERS];
    int nx = x->nnodes, nu = 0;
    IrId xlast = p->steps[x->step].node;
    for (int m = 0; m < nx; m++) u[nu++] = x->nodes[m];
    for (int m = 0; m < y->nnodes; m++) u[nu++] = y->nodes[m];
    for (int a = 1; a < nu; a++)   // node order is a topological order
        for (int b = a; b > 0 && u[b - 1] > u[b]; b--) {
            IrId t = u[b];
            u[b] = u[b - 1], u[b - 1] = t;
        }
    for (int m = 0; m < nx; m++) xn[m] = x->nodes[m], xl[m] = p->level[xn[m]];
    for (int m = 0; m < y->nnodes; m++) yl[m] = p->level[y->nodes[m]];
    for (int k = 0; k < nu; k++) p->group_of[u[k]] = -1;
    x->nnodes = 0;
    int k = 0;
    for (; k < nu; k++) {
        FuseLevel lv = join_level(p, xi, u[k], NULL);
        if (lv == FUSE_LV_NONE) break;
        add_member(p, xi, u[k], lv);
    }
    if (k == nu) return true;
    x->nnodes = nx;   // back out
    for (int m = 0; m < nx; m++) {
        x->nodes[m] = xn[m];
        p->group_of[xn[m]] = xi;
        p->level[xn[m]] = xl[m];
        p->step_of[xn[m]] = x->step;
    }
    for (int m = 0; m < y->nnodes; m++) {
        p->group_of[y->nodes[m]] = yi;
        p->level[y->nodes[m]] = yl[m];
        p->step_of[y->nodes[m]] = y->step;
    }
    p->steps[x->step].node = xlast;
    return false;
}

// Removes the emptied groups from the table (group indexes in group_of and steps renumbered).
static void compact_groups(FusePlan *p) {
    int k = 0;
    for (int gi = 0; gi < p->ngroups; gi++) {
        if (p->groups[gi].nnodes == 0) continue;
        if (k != gi) {
            p->groups[k] = p->groups[gi];
            for (int m = 0; m < p->groups[k].nnodes; m++) p->group_of[p->groups[k].nodes[m]] = k;
            p->steps[p->groups[k].step].group = k;
        }
        k++;
    }
    p->ngroups = k;
}

// Steps emptied by merging are marked dropped and removed in one pass at the end (removing each at
// once moved every later step: quadratic in depth). Indexes stay in step order meanwhile, which is
// all joining compares; a dropped step is an empty group, which reads nothing.
static int merge_groups(FusePlan *p) {
    bool *dropped = calloc((size_t)p->nsteps + 1, 1);
    if (!dropped) return -1;
    int first_drop = p->nsteps;
    for (int s = 1; s < p->nsteps; s++) {
        if (dropped[s] || p->steps[s].kind != FUSE_KERNEL) continue;
        int t = s - 1;   // the nearest earlier step that does work
        while (t >= 0 && (dropped[t] || p->steps[t].kind == FUSE_VIEW)) t--;
        if (t < 0 || p->steps[t].kind != FUSE_KERNEL) continue;
        int xi = p->steps[t].group, yi = p->steps[s].group;
        if (merge_into(p, xi, yi)) {
            p->groups[yi].nnodes = 0;
            dropped[s] = true;   // the step after s may merge too
            if (s < first_drop) first_drop = s;
            p->nsteps_kind[FUSE_KERNEL]--;
            p->nmerged++;
        } else if (pull_into(p, xi, yi)) {
            p->groups[xi].nnodes = 0;
            dropped[t] = true;
            if (t < first_drop) first_drop = t;
            p->nsteps_kind[FUSE_KERNEL]--;
            p->nmerged++;
            s--;   // the reduction at s may pull the group before it too
        }
    }
    int k = first_drop;
    for (int s = first_drop; s < p->nsteps; s++) {
        if (dropped[s]) continue;
        p->steps[k] = p->steps[s];
        set_step_index(p, k++);
    }
    p->nsteps = k;
    free(dropped);
    if (p->nmerged) compact_groups(p);
    return 0;
}

// ---------------------------------------------------------------------------------------------
// after grouping: inputs, outputs, canonical forms

static int local_index(const FuseGroup *gr, IrId id) {
    for (int i = 0; i < gr->nnodes; i++)
        if (gr->nodes[i] == id) return i;
    return -1;
}

static int input_index(const FuseGroup *gr, IrId id) {
    for (int i = 0; i < gr->nins; i++)
        if (gr->ins[i] == id) return i;
    return -1;
}


static int canonicalize(FusePlan *p, int gi, StrBuf *b) {
    const IrGraph *g = p->g;
    FuseGroup *gr = &p->groups[gi];
    char s1[96], s2[96];
    b->n = 0;
    if (b->s) b->s[0] = 0;
    sb_printf(b, "%s dom=%s", gr->has_reduce ? "reduce" : "elementwise", ir_shape_str(&gr->dom, s1, sizeof s1));
    if (gr->has_reduce)
        sb_printf(b, " axes=%" PRIx32 " r=%s", gr->axes, ir_shape_str(&gr->rshape, s2, sizeof s2));
    sb_printf(b, "\n");
    for (int k = 0; k < gr->nins; k++) {
        const IrNode *x = &g->nodes[gr->ins[k]];
        sb_printf(b, "in%d %s%s\n", k, ir_dtype_name(x->dtype), ir_shape_str(&x->shape, s1, sizeof s1));
    }
    for (int k = 0; k < gr->nnodes; k++) {
        const IrNode *n = &g->nodes[gr->nodes[k]];
        sb_printf(b, "m%d lv%d %s %s%s", k, p->level[gr->nodes[k]], ir_op_name(n->op), ir_dtype_name(n->dtype),
                ir_shape_str(&n->shape, s1, sizeof s1));
        if (n->op == IR_POW || n->op == IR_DROPOUT || n->op == IR_FULL) sb_printf(b, " v=%.17g", n->a.value);
        if (n->op == IR_SUM || n->op == IR_MEAN || n->op == IR_MAX) sb_printf(b, " axes=%" PRIx32, n->a.axes);
        if (n->op == IR_PERMUTE)
            for (int i = 0; i < n->shape.rank; i++) sb_printf(b, "%sp%d", i ? "," : " ", n->a.perm[i]);
        for (int i = 0; i < n->nin; i++) {
            IrId x = n->in[i];
            const IrNode *xn = &g->nodes[x];
            IrId mx = fuse_member_src(p, gi, x);
            if (mx != IR_NONE) sb_printf(b, " m%d", local_index(gr, mx));
            else if (p->level[x] == FUSE_LV_CONST) sb_printf(b, " c%.17g", xn->a.value);
            else sb_printf(b, " in%d", input_index(gr, fuse_read_src(p, gi, x)));
        }
        sb_printf(b, "\n");
    }
    sb_printf(b, "out");
    for (int k = 0; k < gr->nouts; k++) sb_printf(b, " m%d", local_index(gr, gr->outs[k]));
    sb_printf(b, "\n");
    return b->oom ? -1 : 0;
}

static int finish_groups(FusePlan *p) {
    const IrGraph *g = p->g;
    // uses: does anything outside the node's group read it? (A reshape is no reader: its
    // readers read the value it views, which a member of their own group may take in registers.)
    bool *ext_use = calloc((size_t)g->n + 1, sizeof *ext_use);
    if (!ext_use) return -1;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == IR_RESHAPE) continue;
        for (int k = 0; k < n->nin; k++) {
            IrId x = n->in[k];
            if (p->group_of[i] >= 0 && fuse_member_src(p, p->group_of[i], x) == IR_NONE)
                x = fuse_read_src(p, p->group_of[i], x);   // (through a widening cast: its source)
            IrId r = fuse_view_src(g, x);
            if (p->group_of[r] < 0) continue;
            if (p->group_of[i] < 0 || fuse_member_src(p, p->group_of[i], x) != r) ext_use[r] = true;
        }
    }
    for (int o = 0; o < g->nouts; o++)
        if (g->outs[o].id >= 0 && g->outs[o].id < g->n) ext_use[fuse_view_src(g, g->outs[o].id)] = true;
    StrBuf b = {0};
    int rc = 0;
    for (int gi = 0; gi < p->ngroups && rc == 0; gi++) {
        FuseGroup *gr = &p->groups[gi];
        gr->ins = arena_alloc(&p->arena, (size_t)(gr->nnodes * 3 + 1) * sizeof *gr->ins);
        gr->outs = arena_alloc(&p->arena, (size_t)(gr->nnodes + 1) * sizeof *gr->outs);
        for (int k = 0; k < gr->nnodes; k++) {
            const IrNode *n = &g->nodes[gr->nodes[k]];
            for (int i = 0; i < n->nin; i++) {
                IrId x = n->in[i];
                if (fuse_member_src(p, gi, x) != IR_NONE || p->level[x] == FUSE_LV_CONST) continue;
                x = fuse_read_src(p, gi, x);
                if (input_index(gr, x) < 0) gr->ins[gr->nins++] = x;
            }
            if (ext_use[gr->nodes[k]]) gr->outs[gr->nouts++] = gr->nodes[k];
        }
        // the spaces: D, then the other shapes of members over D's elements (view_space_ok)
        gr->spaces = arena_alloc(&p->arena, FUSE_MAX_SPACES * sizeof *gr->spaces);
        gr->space = arena_alloc(&p->arena, (size_t)gr->nnodes + 1);
        gr->spaces[0] = gr->dom;
        gr->nspaces = 1;
        for (int k = 0; k < gr->nnodes; k++) {
            const IrNode *n = &g->nodes[gr->nodes[k]];
            FuseLevel lv = (FuseLevel)p->level[gr->nodes[k]];
            int j = 0;
            if (lv == FUSE_LV_PRO || lv == FUSE_LV_POST) {
                while (j < gr->nspaces && !ir_shape_eq(&n->shape, &gr->spaces[j])) j++;
                if (j == gr->nspaces) {
                    if (j == FUSE_MAX_SPACES) { rc = -3; break; }   // (view_space_ok keeps to the limit)
                    gr->spaces[gr->nspaces++] = n->shape;
                }
            }
            gr->space[k] = (uint8_t)j;
        }
        if (rc) break;
        if (canonicalize(p, gi, &b) != 0) { rc = -1; break; }
        uint64_t h = fuse_hash(b.s, b.n, 0);
        int found = -1;
        for (int k = 0; k < p->nkernels && found < 0; k++)
            if (p->kernels[k].hash == h && !strcmp(p->kernels[k].canon, b.s)) found = k;
        if (found < 0) {
            if (p->nkernels == p->capkernels) {
                int cap = p->capkernels ? 2 * p->capkernels : 32;
                FuseKernel *kk = realloc(p->kernels, (size_t)cap * sizeof *kk);
                if (!kk) { rc = -1; break; }
                p->kernels = kk;
                p->capkernels = cap;
            }
            FuseKernel *k = &p->kernels[p->nkernels];
            memset(k, 0, sizeof *k);
            snprintf(k->name, sizeof k->name, "fk_%c%d_%016" PRIx64, gr->has_reduce ? 'r' : 'e', gr->nnodes, h);
            k->hash = h;
            k->canon = arena_strdup(&p->arena, b.s);
            k->first_group = gi;
            found = p->nkernels++;
        }
        p->kernels[found].ngroups++;
        gr->kernel = found;
        if (gr->nins + gr->nouts > FUSE_MAX_ARGS) rc = -2;
    }
    free(b.s);
    free(ext_use);
    return rc;
}

// ---------------------------------------------------------------------------------------------
// the pass

// Library steps that share work (see FusePlan.lib_leader / lib_fwd). Attention's backward nodes
// hold q, k, v, gout then the forward's extra inputs (key mask, segments); the forward holds q,
// k, v then the same extras.
// Inputs are compared as values (canon: same_values below), so a backward reading recomputed
// copies of the forward's q, k, v pairs with it.
static bool same_attention(const IrNode *f, const IrNode *b, const IrId *canon) {
    if (f->a.causal != b->a.causal || f->a.scale != b->a.scale || f->a.segmented != b->a.segmented) return false;
    if (b->nin != f->nin + 1) return false;
    for (int k = 0; k < 3; k++)
        if (canon[f->in[k]] != canon[b->in[k]]) return false;
    for (int k = 3; k < f->nin; k++)
        if (canon[f->in[k]] != canon[b->in[k + 1]]) return false;
    return true;
}

static bool is_attention_bwd(IrOp op) { return op == IR_SDPA_BWD_Q || op == IR_SDPA_BWD_K || op == IR_SDPA_BWD_V; }

// Ops whose value depends only on their inputs and attributes (dropout: its mask hashes seed,
// salt, step and element), which the recompute passes clone: elementwise ops, views, rope and
// constants. Two such nodes with the same op, dtype, shape and attributes over the same values
// compute the same bits.
static bool same_value_op(IrOp op) {
    return ir_op_is_elementwise(op) || op == IR_RESHAPE || op == IR_PERMUTE || op == IR_ROPE || op == IR_FULL ||
           op == IR_ARANGE || op == IR_BROADCAST;
}

static bool same_attrs(const IrAttrs *a, const IrAttrs *b) {
    if (a->value != b->value || a->scale != b->scale || a->axes != b->axes || a->axis != b->axis ||
        !ir_dim_eq(a->off, b->off) || a->ignore_index != b->ignore_index || a->trans_a != b->trans_a ||
        a->trans_b != b->trans_b || a->causal != b->causal || a->segmented != b->segmented ||
        a->inverse != b->inverse || a->seed != b->seed || a->salt != b->salt || a->block != b->block ||
        a->rope.theta != b->rope.theta || a->rope.factor != b->rope.factor ||
        a->rope.low_freq_factor != b->rope.low_freq_factor || a->rope.high_freq_factor != b->rope.high_freq_factor ||
        a->rope.original_max_pos != b->rope.original_max_pos || !ir_shape_eq(&a->shape, &b->shape))
        return false;
    for (int k = 0; k < IR_MAX_RANK; k++)
        if (a->perm[k] != b->perm[k]) return false;
    return true;
}

static uint64_t same_value_hash(const IrNode *n, const IrId *canon) {
    uint64_t h = 1469598103934665603ull;
    uint64_t part[4] = {(uint64_t)n->op, (uint64_t)n->dtype, (uint64_t)n->nin, n->a.salt};
    for (int k = 0; k < 4; k++) h = (h ^ part[k]) * 1099511628211ull;
    for (int k = 0; k < n->nin; k++) h = (h ^ (uint64_t)(uint32_t)canon[n->in[k]]) * 1099511628211ull;
    return h ^ (h >> 29);
}

// The value each node computes, as a node id (canon[i]): a backward node of a same_value_op with
// the same op, dtype, shape and attributes as an earlier node, over the same values, computes the
// same bits as it (the recompute passes' clones of q and k, and their casts) and takes its value;
// any other node is its own. Attention's backward pairs with its forward through these (the
// saved output and row statistics were computed from the same bits). A malloc'd array of g->n
// ids, or NULL when out of memory.
static IrId *same_values(const IrGraph *g) {
    size_t cap = 16;
    while (cap < 2 * (size_t)g->n) cap *= 2;
    IrId *canon = malloc(((size_t)g->n + 1) * sizeof *canon);
    IrId *table = malloc(cap * sizeof *table);   // open addressing: representatives by hash
    if (!canon || !table) {
        free(canon), free(table);
        return NULL;
    }
    for (size_t k = 0; k < cap; k++) table[k] = IR_NONE;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        canon[i] = i;
        if (!same_value_op(n->op)) continue;
        size_t slot = (size_t)same_value_hash(n, canon) & (cap - 1);
        for (; table[slot] != IR_NONE; slot = (slot + 1) & (cap - 1)) {
            const IrNode *m = &g->nodes[table[slot]];
            bool same = m->op == n->op && m->dtype == n->dtype && m->nin == n->nin &&
                        ir_shape_eq(&m->shape, &n->shape) && same_attrs(&m->a, &n->a);
            for (int k = 0; same && k < n->nin; k++) same = canon[m->in[k]] == canon[n->in[k]];
            if (same) break;
        }
        if (table[slot] == IR_NONE) table[slot] = i;   // the first of its value
        else if (n->backward) canon[i] = table[slot];
    }
    free(table);
    return canon;
}


// FusePlan.lib_members from lib_leader: each leader's led steps, grouped by leader (a counting
// sort, so that each group is in step order).
static int list_members(FusePlan *p) {
    p->lib_member_start = calloc((size_t)p->nsteps + 2, sizeof *p->lib_member_start);
    p->lib_members = malloc(((size_t)p->nsteps + 1) * sizeof *p->lib_members);
    if (!p->lib_member_start || !p->lib_members) return -1;
    for (int t = 0; t < p->nsteps; t++)
        if (p->lib_leader[t] >= 0 && p->lib_leader[t] != t) p->lib_member_start[p->lib_leader[t] + 2]++;
    for (int s = 0; s < p->nsteps; s++) p->lib_member_start[s + 2] += p->lib_member_start[s + 1];
    // start[s + 1] is now where s's members begin; filling advances it to where they end
    for (int t = 0; t < p->nsteps; t++)
        if (p->lib_leader[t] >= 0 && p->lib_leader[t] != t) p->lib_members[p->lib_member_start[p->lib_leader[t] + 1]++] = t;
    return 0;
}

// Library steps by their first input, in step order: attention's backward steps and forwards and
// cross-entropy forwards only ever pair with steps of the same first input (q, or the logits), so
// each looks through its own few instead of every step (quadratic in depth).
typedef struct LibIndex {
    int *head, *next;   // head[node]: the first step whose node's in[0] is node; next[step]
} LibIndex;

static int lib_index(const FusePlan *p, bool (*want)(IrOp), const IrId *canon, LibIndex *ix) {
    const IrGraph *g = p->g;
    ix->head = malloc(((size_t)g->n + 1) * sizeof *ix->head);
    ix->next = malloc(((size_t)p->nsteps + 1) * sizeof *ix->next);
    if (!ix->head || !ix->next) return -1;
    for (int i = 0; i < g->n; i++) ix->head[i] = -1;
    for (int t = p->nsteps - 1; t >= 0; t--) {
        ix->next[t] = -1;
        const IrNode *m = &g->nodes[p->steps[t].node];
        if (p->steps[t].kind != FUSE_LIBRARY || !want(m->op) || m->nin < 1) continue;
        IrId x = canon ? canon[m->in[0]] : m->in[0];   // by value (attention: copies of q too)
        ix->next[t] = ix->head[x], ix->head[x] = t;
    }
    return 0;
}

static bool is_attention_op(IrOp op) { return op == IR_SDPA || is_attention_bwd(op); }
static bool is_ce_op(IrOp op) { return op == IR_CROSS_ENTROPY; }

static int pair_library(FusePlan *p) {
    const IrGraph *g = p->g;
    p->lib_leader = malloc(((size_t)p->nsteps + 1) * sizeof *p->lib_leader);
    p->lib_fwd = malloc(((size_t)p->nsteps + 1) * sizeof *p->lib_fwd);
    LibIndex att = {0}, ce = {0};
    IrId *canon = same_values(g);
    int rc = -1;
    if (!p->lib_leader || !p->lib_fwd || !canon || lib_index(p, is_attention_op, canon, &att) ||
        lib_index(p, is_ce_op, NULL, &ce))
        goto done;
    for (int s = 0; s < p->nsteps; s++) p->lib_leader[s] = -1, p->lib_fwd[s] = IR_NONE;
    for (int s = 0; s < p->nsteps; s++) {
        const FuseStep *st = &p->steps[s];
        if (st->kind != FUSE_LIBRARY) continue;
        const IrNode *n = &g->nodes[st->node];
        if (is_attention_bwd(n->op)) {
            if (p->lib_leader[s] < 0) {   // the first of its group: lead the later ones
                p->lib_leader[s] = s;
                for (int t = att.next[s]; t >= 0; t = att.next[t]) {
                    const IrNode *m = &g->nodes[p->steps[t].node];
                    if (!is_attention_bwd(m->op) || m->op == n->op || p->lib_leader[t] >= 0 || m->nin != n->nin ||
                        m->a.causal != n->a.causal || m->a.scale != n->a.scale || m->a.segmented != n->a.segmented)
                        continue;
                    bool same = true;
                    for (int k = 0; k < n->nin && same; k++) same = m->in[k] == n->in[k];
                    if (!same) continue;
                    bool dup = false;   // at most one dq, one dk and one dv per group
                    for (int u = att.next[s]; u >= 0 && u < t && !dup; u = att.next[u])
                        dup = p->lib_leader[u] == s && g->nodes[p->steps[u].node].op == m->op;
                    if (dup) continue;
                    p->lib_leader[t] = s;
                    p->step_of[p->steps[t].node] = s;
                }
            }
            // the last forward of the same values before it (train.recompute: the layer's copy)
            for (int t = att.head[canon[n->in[0]]]; t >= 0 && t < s; t = att.next[t]) {
                const IrNode *f = &g->nodes[p->steps[t].node];
                if (f->op == IR_SDPA && same_attention(f, n, canon)) p->lib_fwd[s] = p->steps[t].node;
            }
        } else if (n->op == IR_LINEAR_CE && p->lib_leader[s] < 0) {
            // its dx and dw (one of each) when their upstream gradient is computed before it
            // (linear_ce.h ir_linear_ce_hoist_grads): it leads them, one logits product per chunk
            bool have[2] = {false, false};
            for (int t = s + 1; t < p->nsteps; t++) {
                const IrNode *m = &g->nodes[p->steps[t].node];
                if (p->steps[t].kind != FUSE_LIBRARY || p->lib_leader[t] >= 0 || !ir_linear_ce_backward_of(n, m)) continue;
                IrId gl = m->in[3];
                bool ready = ir_is_leaf(&g->nodes[gl]) || p->level[gl] == FUSE_LV_CONST ||
                             (p->step_of[gl] >= 0 && p->step_of[gl] < s);
                int slot = m->op == IR_LINEAR_CE_BWD_W;
                if (!ready || have[slot]) continue;
                have[slot] = true;
                p->lib_leader[s] = s, p->lib_leader[t] = s;
                p->step_of[p->steps[t].node] = s;
            }
        } else if (n->op == IR_CROSS_ENTROPY_BWD) {
            for (int t = ce.head[n->in[0]]; t >= 0 && t < s; t = ce.next[t]) {
                const IrNode *fn = &g->nodes[p->steps[t].node];
                if (fn->in[1] == n->in[1] && fn->a.value == n->a.value && fn->a.ignore_index == n->a.ignore_index)
                    p->lib_fwd[s] = p->steps[t].node;
            }
        }
    }
    rc = list_members(p);
done:
    free(att.head), free(att.next), free(ce.head), free(ce.next), free(canon);
    return rc;
}

bool fuse_step_runs(const FusePlan *p, int s) {
    if (s < 0 || s >= p->nsteps || p->steps[s].kind == FUSE_VIEW) return false;
    return !p->lib_leader || p->lib_leader[s] < 0 || p->lib_leader[s] == s;
}

int fuse_plan(const IrGraph *g, Diag *d, FusePlan *p) {
    // TRLC_FUSE_SINK=0 / TRLC_FUSE_MERGE=0: plans without sinking / merging, to compare
    static const char *const on_off[] = {"0", "1", NULL};
    int sink = env_choice(d, "TRLC_FUSE_SINK", on_off, 1), merge = env_choice(d, "TRLC_FUSE_MERGE", on_off, 1);
    int views = env_choice(d, "TRLC_FUSE_VIEWS", on_off, 1);
    if (sink < 0 || merge < 0 || views < 0) {
        memset(p, 0, sizeof *p);
        return -1;
    }
    FuseOptions o = {.no_sink = sink == 0, .no_merge = merge == 0, .no_views = views == 0};
    return fuse_plan_with(g, &o, d, p);
}

int fuse_plan_with(const IrGraph *g, const FuseOptions *o, Diag *d, FusePlan *p) {
    memset(p, 0, sizeof *p);
    p->g = g;
    p->sink = !(o && o->no_sink);
    p->merge = !(o && o->no_merge);
    p->views = !(o && o->no_views);
    if (g->float_dtype != IR_F32) {
        diag_plain_error(d, "fusion: the graph computes in %s; GPU kernels are generated for f32 graphs",
                         ir_dtype_name(g->float_dtype));
        return -1;
    }
    size_t n = (size_t)g->n + 1;
    p->group_of = malloc(n * sizeof *p->group_of);
    p->level = calloc(n, 1);
    p->step_of = malloc(n * sizeof *p->step_of);
    if (!p->group_of || !p->level || !p->step_of) {
        diag_plain_error(d, "fusion: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) p->group_of[i] = -1, p->step_of[i] = -1;
    {   // last readers, for sink_ok and may_join_last (graph outputs: read after every node)
        p->last_reader = malloc(n * sizeof *p->last_reader);
        if (!p->last_reader) {
            diag_plain_error(d, "fusion: out of memory");
            return -1;
        }
        for (size_t i = 0; i < n; i++) p->last_reader[i] = -1;
        for (int i = 0; i < g->n; i++)
            for (int k = 0; k < g->nodes[i].nin; k++) p->last_reader[g->nodes[i].in[k]] = i;
        for (int o2 = 0; o2 < g->nouts; o2++)
            if (g->outs[o2].id >= 0 && g->outs[o2].id < g->n) p->last_reader[g->outs[o2].id] = g->n;
    }

    // widening casts read through their source (FusePlan.read_as): f32 casts of bf16 values that
    // only kernel members other than permutes read
    p->read_as = malloc(n * sizeof *p->read_as);
    if (!p->read_as) {
        diag_plain_error(d, "fusion: out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        const IrNode *x = i < (size_t)g->n ? &g->nodes[i] : NULL;
        p->read_as[i] = x && x->op == IR_CAST && x->nin == 1 && x->dtype == IR_F32 &&
                        g->nodes[x->in[0]].dtype == IR_BF16 && g->nodes[x->in[0]].op != IR_FULL   // (inlined)
                            ? x->in[0] : IR_NONE;
    }
    for (int i = 0; i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        bool kernel = node_fusable(g, x) && x->op != IR_PERMUTE && x->op != IR_FULL;
        for (int k = 0; k < x->nin && !kernel; k++) p->read_as[x->in[k]] = IR_NONE;
    }
    for (int o = 0; o < g->nouts; o++)
        if (g->outs[o].id >= 0 && g->outs[o].id < g->n) p->read_as[g->outs[o].id] = IR_NONE;

    // constants are inlined into fused users; materialised by a fill kernel when anything else
    // (a library step, a GEMM, a graph output) reads them
    bool *needs_fill = calloc(n, 1);
    if (!needs_fill) {
        diag_plain_error(d, "fusion: out of memory");
        return -1;
    }
    for (int i = 0; i < g->n; i++) {
        const IrNode *x = &g->nodes[i];
        for (int k = 0; k < x->nin; k++)
            if (g->nodes[x->in[k]].op == IR_FULL && !node_fusable(g, x)) needs_fill[x->in[k]] = true;
    }
    for (int o = 0; o < g->nouts; o++)
        if (g->outs[o].id >= 0 && g->outs[o].id < g->n && g->nodes[g->outs[o].id].op == IR_FULL)
            needs_fill[g->outs[o].id] = true;

    int rc = 0;
    for (IrId id = 0; id < g->n && rc == 0; id++) {
        const IrNode *x = &g->nodes[id];
        if (ir_is_leaf(x)) continue;
        if (x->op == IR_FULL && node_fusable(g, x)) {
            p->level[id] = FUSE_LV_CONST;
            if (needs_fill[id]) {
                int gi = new_group(p, &x->shape);
                if (gi < 0) rc = -1;
                else {
                    add_member(p, gi, id, FUSE_LV_PRO);
                    p->level[id] = FUSE_LV_PRO;
                }
            }
            continue;
        }
        if (node_fusable(g, x)) {
            rc = place_fused(p, id);
            continue;
        }
        FuseStepKind kind = x->op == IR_MATMUL ? FUSE_GEMM : x->op == IR_RESHAPE ? FUSE_VIEW : FUSE_LIBRARY;
        int s = push_step(p, kind, id, -1);
        if (s < 0) rc = -1;
        p->step_of[id] = s;
    }
    free(needs_fill);
    free(p->last_reader);
    p->last_reader = NULL;
    if (rc == 0 && p->merge) rc = merge_groups(p);
    if (rc == 0) rc = finish_groups(p);
    if (rc == 0) rc = pair_library(p);
    if (rc == -2) {
        diag_plain_error(d, "fusion: a fused group has more than %d arguments", FUSE_MAX_ARGS);
        return -1;
    }
    if (rc == -3) {
        diag_plain_error(d, "fusion (internal): a fused group has more than %d shapes", FUSE_MAX_SPACES);
        return -1;
    }
    if (rc != 0) {
        diag_plain_error(d, "fusion: out of memory");
        return -1;
    }
    return fuse_verify(p, d) == 0 ? 0 : -1;
}

int fuse_verify(const FusePlan *p, Diag *d) {
    const IrGraph *g = p->g;
    int bad = 0;
    int *done = malloc(((size_t)g->n + 1) * sizeof *done);   // step that writes the node, or -1
    if (!done) return 1;
    for (int i = 0; i < g->n; i++) done[i] = -1;
#define VIOLATION(...)                                                            \
    do {                                                                          \
        if (bad++ < 5) diag_plain_error(d, "fusion (internal): " __VA_ARGS__);   \
    } while (0)
    for (int s = 0; s < p->nsteps; s++) {
        const FuseStep *st = &p->steps[s];
        const IrId *reads;
        int nreads;
        IrId one[1];
        if (st->kind == FUSE_KERNEL) {
            const FuseGroup *gr = &p->groups[st->group];
            reads = gr->ins, nreads = gr->nins;
            for (int m = 0; m < gr->nnodes; m++) {
                IrId id = gr->nodes[m];
                if (done[id] >= 0) VIOLATION("node %%%d computed by steps %d and %d", id, done[id], s);
                done[id] = s;
                // members read only members, inlined constants and the group's inputs
                const IrNode *n = &g->nodes[id];
                for (int k = 0; k < n->nin; k++) {
                    IrId x = n->in[k];
                    if (fuse_member_src(p, st->group, x) != IR_NONE || p->level[x] == FUSE_LV_CONST) continue;
                    x = fuse_read_src(p, st->group, x);
                    bool listed = false;
                    for (int q = 0; q < gr->nins && !listed; q++) listed = gr->ins[q] == x;
                    if (!listed) VIOLATION("step %d reads %%%d without listing it as an input", s, x);
                }
            }
        } else if (p->lib_leader && p->lib_leader[s] >= 0 && p->lib_leader[s] != s) {
            // computed by its leader: an earlier step of the same kind reading the same inputs
            int l = p->lib_leader[s];
            if (l > s || p->steps[l].kind != FUSE_LIBRARY || p->lib_leader[l] != l)
                VIOLATION("step %d is led by step %d, which does not lead", s, l);
            else if (done[st->node] != l)
                VIOLATION("node %%%d is not computed by its leader step %d", st->node, l);
            continue;
        } else {
            one[0] = st->node;
            if (st->kind == FUSE_VIEW) {   // no work: its input computed before (written: by its readers)
                IrId x = g->nodes[st->node].in[0];
                if (!ir_is_leaf(&g->nodes[x]) && p->level[x] != FUSE_LV_CONST && (done[x] < 0 || done[x] >= s))
                    VIOLATION("step %d reads %%%d before it is computed", s, x);
                if (done[st->node] >= 0) VIOLATION("node %%%d computed by steps %d and %d", st->node, done[st->node], s);
                done[st->node] = s;
                continue;
            }
            if (done[st->node] >= 0) VIOLATION("node %%%d computed by steps %d and %d", st->node, done[st->node], s);
            done[st->node] = s;
            int nled;
            const int *led = fuse_led_steps(p, s, &nled);
            for (int i = 0; i < nled; i++) {
                int t = led[i];
                IrId m = p->steps[t].node;
                if (done[m] >= 0) VIOLATION("node %%%d computed by steps %d and %d", m, done[m], s);
                done[m] = s;
                for (int k = 0; k < g->nodes[m].nin; k++) {   // what a led step reads, computed before
                    IrId x = g->nodes[m].in[k];
                    if (!ir_is_leaf(&g->nodes[x]) && p->level[x] != FUSE_LV_CONST && (done[x] < 0 || done[x] >= s))
                        VIOLATION("step %d (led by step %d) reads %%%d before it is computed", t, s, x);
                }
            }
            if (p->lib_fwd && p->lib_fwd[s] != IR_NONE && (done[p->lib_fwd[s]] < 0 || done[p->lib_fwd[s]] >= s))
                VIOLATION("step %d reads the saved state of %%%d before it is computed", s, p->lib_fwd[s]);
            reads = g->nodes[st->node].in, nreads = g->nodes[st->node].nin;
            (void)one;
        }
        for (int k = 0; k < nreads; k++) {
            IrId x = reads[k];
            const IrNode *xn = &g->nodes[x];
            if (ir_is_leaf(xn) || p->level[x] == FUSE_LV_CONST) continue;
            if (done[x] < 0 || done[x] >= s) {
                VIOLATION("step %d reads %%%d before it is computed", s, x);
                continue;
            }
            IrId r = fuse_view_src(g, x);   // a view reads the buffer of the value it views
            int w = p->group_of[r];
            if (w >= 0) {
                bool out = false;
                for (int q = 0; q < p->groups[w].nouts && !out; q++) out = p->groups[w].outs[q] == r;
                if (!out) VIOLATION("step %d reads %%%d, which step %d does not write out", s, r, done[r]);
            }
        }
    }
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (ir_is_leaf(n) || p->level[i] == FUSE_LV_CONST) continue;
        if (done[i] < 0) VIOLATION("node %%%d (%s) is computed by no step", i, ir_op_name(n->op));
    }
    for (int o = 0; o < g->nouts; o++) {
        IrId id = g->outs[o].id;
        if (id < 0 || id >= g->n) continue;
        id = fuse_view_src(g, id);
        int w = p->group_of[id];
        if (w >= 0) {
            bool out = false;
            for (int q = 0; q < p->groups[w].nouts && !out; q++) out = p->groups[w].outs[q] == id;
            if (!out) VIOLATION("graph output %%%d is not written by its kernel", id);
        }
    }
#undef VIOLATION
    free(done);
    return bad;
}

void fuse_plan_free(FusePlan *p) {
    free(p->steps);
    free(p->groups);
    free(p->kernels);
    free(p->group_of);
    free(p->level);
    free(p->step_of);
    free(p->lib_leader);
    free(p->lib_members);
    free(p->lib_member_start);
    free(p->lib_fwd);
    free(p->last_reader);
    free(p->read_as);
    arena_free(&p->arena);
    memset(p, 0, sizeof *p);
}

// ---------------------------------------------------------------------------------------------
// printing

const char *fuse_loc_str(const Diag *d, Loc loc, char *buf, size_t n) {
    const Source *s = d ? diag_source(d, loc.file) : NULL;
    if (!s) {
        snprintf(buf, n, "?");
        return buf;
    }
    int line, col;
    diag_linecol(d, loc, &line, &col);
    const char *base = strrchr(s->path, '/');
    snprintf(buf, n, "%s:%d:%d", base ? base + 1 : s->path, line, col);
    return buf;
}

static void print_loc(FILE *f, const Diag *d, Loc loc) {
    char b[256];
    if (d && diag_source(d, loc.file)) fprintf(f, "  # %s", fuse_loc_str(d, loc, b, sizeof b));
}

void fuse_print(FILE *f, const FusePlan *p, const Diag *d) {
    const IrGraph *g = p->g;
    char s[96];
    fprintf(f, "# plan: %d steps (%d kernel launches, %d gemm, %d library, %d views); %d unique kernels\n",
            p->nsteps, p->nsteps_kind[FUSE_KERNEL], p->nsteps_kind[FUSE_GEMM], p->nsteps_kind[FUSE_LIBRARY],
            p->nsteps_kind[FUSE_VIEW], p->nkernels);
    for (int i = 0; i < p->nsteps; i++) {
        const FuseStep *st = &p->steps[i];
        if (st->kind != FUSE_KERNEL) {
            const IrNode *n = &g->nodes[st->node];
            fprintf(f, "%4d %-7s %-18s %%%d : %s%s", i,
                    st->kind == FUSE_GEMM ? "gemm" : st->kind == FUSE_VIEW ? "view" : "library",
                    ir_op_name(n->op), st->node, ir_dtype_name(n->dtype), ir_shape_str(&n->shape, s, sizeof s));
            if (p->lib_leader && p->lib_leader[i] >= 0 && p->lib_leader[i] != i)
                fprintf(f, " (computed by step %d)", p->lib_leader[i]);
            if (p->lib_fwd && p->lib_fwd[i] != IR_NONE) fprintf(f, " (reads %%%d's saved state)", p->lib_fwd[i]);
            if (st->kind == FUSE_GEMM && n->nin == 3) {   // an accumulating product (ir.h)
                fprintf(f, " (%%%d @ %%%d", n->in[0], n->in[1]);
                if (ir_matmul_alpha(n) != 1.0) fprintf(f, " * %g", ir_matmul_alpha(n));
                fprintf(f, " + %s%%%d)", ir_matmul_bias(g, n) ? "bias " : "", n->in[2]);
            }
            print_loc(f, d, n->loc);
            fputc('\n', f);
            continue;
        }
        const FuseGroup *gr = &p->groups[st->group];
        fprintf(f, "%4d kernel  %-24s over %s", i, p->kernels[gr->kernel].name, ir_shape_str(&gr->dom, s, sizeof s));
        if (gr->has_reduce) fprintf(f, " -> %s", ir_shape_str(&gr->rshape, s, sizeof s));
        fprintf(f, ":");
        for (int k = 0; k < gr->nnodes; k++)
            fprintf(f, " %s%%%d", ir_op_name(g->nodes[gr->nodes[k]].op), gr->nodes[k]);
        fprintf(f, " | in");
        for (int k = 0; k < gr->nins; k++) fprintf(f, " %%%d", gr->ins[k]);
        fprintf(f, " | out");
        for (int k = 0; k < gr->nouts; k++) fprintf(f, " %%%d", gr->outs[k]);
        fputc('\n', f);
    }
}
