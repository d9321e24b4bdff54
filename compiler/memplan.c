// memplan.c — the static memory plan (see memplan.h): buffers from the fusion plan's steps,
// their live ranges over the steps, first-fit offsets in one arena, the peak per category.
// Not here: compiling a spec to a graph (memplan_spec.c), allocation (the CUDA runtime).
#include "memplan.h"
#include <stdlib.h>
#include <string.h>

enum { MP_ALIGN = 256 };

// Bytes per element of a value of dtype t: as the node says (mixed precision puts bf16 where it
// is stored in bf16: autocast.h).
static int64_t elem_bytes(IrDType t) {
    switch (t) {
    case IR_BF16: case IR_F16: return 2;
    case IR_F64: return 8;
    case IR_U8: return 1;
    default: return 4;
    }
}

static int64_t mul_ok(int64_t a, int64_t b) {   // -1 on overflow
    if (a < 0 || b < 0) return -1;
    if (a && b > INT64_MAX / a) return -1;
    return a * b;
}

static int by_size(const void *x, const void *y) {
    const MpBuffer *a = x, *b = y;
    if (a->bytes != b->bytes) return a->bytes > b->bytes ? -1 : 1;
    int la = a->last - a->first, lb = b->last - b->first;
    if (la != lb) return la > lb ? -1 : 1;
    return a->node < b->node ? -1 : a->node > b->node;
}

static int add_aux(MpPlan *out, IrId node, MpWhat what, int64_t numel, int s) {
    if (numel < 0 || numel > INT64_MAX / 8) return -1;
    MpBuffer *mb = &out->bufs[out->nbufs++];
    mb->node = node, mb->what = what, mb->first = mb->last = s, mb->alias = IR_NONE;
    mb->bytes = (numel * 4 + MP_ALIGN - 1) / MP_ALIGN * MP_ALIGN, mb->offset = -1;
    return 0;
}

// The state library step s keeps (MpWhat): fp32 rows of attention (B, Hq, Tq) or cross-entropy (N).
static int aux_buffers(const IrGraph *g, const FusePlan *fp, int s, const int64_t *sym, MpPlan *out) {
    const IrNode *n = &g->nodes[fp->steps[s].node];
    int64_t numel = ir_shape_numel(&n->shape, sym);
    if (numel < 0) return -1;
    switch (n->op) {
    case IR_SDPA: return add_aux(out, fp->steps[s].node, MP_LSE, numel / (n->shape.rank ? ir_dim_value(n->shape.d[n->shape.rank - 1], sym) : 1), s);
    case IR_CROSS_ENTROPY: return add_aux(out, fp->steps[s].node, MP_LSE, numel, s);
    case IR_CROSS_ENTROPY_BWD: {
        if (fp->lib_fwd[s] != IR_NONE) return 0;
        int64_t rows = ir_shape_numel(&g->nodes[n->in[2]].shape, sym);   // gloss: one per row
        return add_aux(out, fp->steps[s].node, MP_SCRATCH_LSE, rows, s) ||
               add_aux(out, fp->steps[s].node, MP_SCRATCH_OUT, rows, s);
    }
    case IR_SDPA_BWD_Q: case IR_SDPA_BWD_K: case IR_SDPA_BWD_V: {
        const IrNode *q = &g->nodes[n->in[0]];
        int64_t qn = ir_shape_numel(&q->shape, sym), D = ir_dim_value(q->shape.d[q->shape.rank - 1], sym);
        if (qn < 0 || D <= 0) return -1;
        if (add_aux(out, fp->steps[s].node, MP_DELTA, qn / D, s)) return -1;
        bool has[3] = {false, false, false};   // dq, dk, dv among the step's group
        int nled;
        const int *led = fuse_led_steps(fp, s, &nled);
        has[n->op - IR_SDPA_BWD_Q] = true;
        for (int i = 0; i < nled; i++) has[g->nodes[fp->steps[led[i]].node].op - IR_SDPA_BWD_Q] = true;
        int64_t kn = ir_shape_numel(&g->nodes[n->in[1]].shape, sym);
        if (!has[0] && add_aux(out, fp->steps[s].node, MP_SCRATCH_DQ, qn, s)) return -1;
        if (has[1] != has[2] && add_aux(out, fp->steps[s].node, MP_SCRATCH_DKV, kn, s)) return -1;
        if (fp->lib_fwd[s] != IR_NONE) return 0;
        int64_t on = q->dtype == IR_BF16 ? (qn + 1) / 2 : qn;   // the recomputed O: bf16 with bf16 q (exec.c)
        return add_aux(out, fp->steps[s].node, MP_SCRATCH_OUT, on, s) ||
               add_aux(out, fp->steps[s].node, MP_SCRATCH_LSE, qn / D, s);
    }
    case IR_LINEAR_ARGMAX: {
        int64_t V = ir_dim_value(g->nodes[n->in[1]].shape.d[0], sym), N = ir_shape_numel(&n->shape, sym);
        if (V < 0 || N < 0) return -1;
        return add_aux(out, fp->steps[s].node, MP_CHUNK, mp_lce_chunk_rows(V, N) * V, s);
    }
    case IR_LINEAR_CE: case IR_LINEAR_CE_BWD_X: case IR_LINEAR_CE_BWD_W: {
        int64_t V = ir_dim_value(g->nodes[n->in[1]].shape.d[0], sym), N = ir_shape_numel(&g->nodes[n->in[2]].shape, sym);
        if (V < 0 || N < 0) return -1;
        int64_t R = mp_lce_chunk_rows(V, N);
        int nled;   // a linear_ce that leads computes its backward ops too (fuse.c)
        fuse_led_steps(fp, s, &nled);
        bool leads = nled > 0;
        bool lowp = (n->op != IR_LINEAR_CE || leads) && g->nodes[n->in[0]].dtype == IR_BF16;
        return add_aux(out, fp->steps[s].node, MP_CHUNK, R * V, s) ||
               (lowp && add_aux(out, fp->steps[s].node, MP_CHUNK_LOWP, (R * V + 1) / 2, s)) ||
               add_aux(out, fp->steps[s].node, MP_CHUNK_ROWS, 2 * R, s);
    }
    default: return 0;
    }
}

// First-fit placement over live ranges, in O(n log^2 n) rather than a scan of every placed buffer
// per buffer (quadratic: the forward's saved activations are all alive at once in the middle of a
// step, so a 4000-layer model took minutes). A segment tree over the steps 0..nsteps keeps, per
// node, the offset ranges of the placed buffers whose live range covers the node (own) and of those
// stored anywhere in its subtree (sub), each as a sorted list of disjoint ranges (merged: a union).
// The buffers alive at once with [f, l] are exactly those stored at a node covered by [f, l] or its
// subtree (sub of the cover nodes) or at a proper ancestor of a cover node (own): the union of those
// few lists is what the lowest fitting offset must avoid. The offsets are those of the plain scan
// (the lowest offset that fits is 0 or the end of a conflicting range; the union does not change
// which offsets of a non-empty buffer conflict; an empty buffer goes at 0 and blocks nothing).
typedef struct MpSpan { int64_t s, e; } MpSpan;   // [s, e) in the arena
typedef struct MpSpans { MpSpan *v; int n, cap; } MpSpans;

// The first range of l that ends after x (l->n when none).
static int spans_after(const MpSpans *l, int64_t x) {
    int lo = 0, hi = l->n;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (l->v[mid].e > x) hi = mid;
        else lo = mid + 1;
    }
    return lo;
}

// Adds [s, e) to l, merged with the ranges it overlaps or touches. -1 when out of memory.
static int spans_add(MpSpans *l, int64_t s, int64_t e) {
    int i = spans_after(l, s - 1);   // first range with end >= s (touching included)
    int j = i;
    while (j < l->n && l->v[j].s <= e) j++;   // ranges [i, j) overlap or touch [s, e)
    if (i < j) {
        if (l->v[i].s < s) s = l->v[i].s;
        if (l->v[j - 1].e > e) e = l->v[j - 1].e;
        l->v[i] = (MpSpan){s, e};
        memmove(&l->v[i + 1], &l->v[j], (size_t)(l->n - j) * sizeof *l->v);
        l->n -= j - i - 1;
        return 0;
    }
    if (l->n == l->cap) {
        int cap = l->cap ? l->cap * 2 : 4;
        MpSpan *v = realloc(l->v, (size_t)cap * sizeof *v);
        if (!v) return -1;
        l->v = v, l->cap = cap;
    }
    memmove(&l->v[i + 1], &l->v[i], (size_t)(l->n - i) * sizeof *l->v);
    l->v[i] = (MpSpan){s, e};
    l->n++;
    return 0;
}

typedef struct MpTree {
    MpSpans *own, *sub;     // per node (1-based heap order over steps [0, size))
    const MpSpans **hits;   // the lists a query gathers
    int nhits, size;
} MpTree;

static void tree_gather(MpTree *t, int node, int lo, int hi, int f, int l) {
    if (l < lo || hi < f) return;
    if (f <= lo && hi <= l) {
        if (t->sub[node].n) t->hits[t->nhits++] = &t->sub[node];
        return;
    }
    if (t->own[node].n) t->hits[t->nhits++] = &t->own[node];
    int mid = lo + (hi - lo) / 2;
    tree_gather(t, 2 * node, lo, mid, f, l);
    tree_gather(t, 2 * node + 1, mid + 1, hi, f, l);
}

static int tree_add(MpTree *t, int node, int lo, int hi, int f, int l, int64_t s, int64_t e) {
    if (l < lo || hi < f) return 0;
    if (spans_add(&t->sub[node], s, e)) return -1;
    if (f <= lo && hi <= l) return spans_add(&t->own[node], s, e);
    int mid = lo + (hi - lo) / 2;
    return tree_add(t, 2 * node, lo, mid, f, l, s, e) || tree_add(t, 2 * node + 1, mid + 1, hi, f, l, s, e);
}

// Places every buffer of out (in its order) that does not alias another; the peak, -1 when out of
// memory.
static int64_t place_first_fit(MpPlan *out, int nsteps) {
    MpTree t = {0};
    t.size = 1;
    while (t.size < nsteps + 1) t.size *= 2;
    int depth = 0;
    for (int x = t.size; x > 1; x /= 2) depth++;
    t.own = calloc((size_t)t.size * 2, sizeof *t.own);
    t.sub = calloc((size_t)t.size * 2, sizeof *t.sub);
    t.hits = malloc(((size_t)depth + 2) * 4 * sizeof *t.hits);   // four per level at most
    int64_t peak = 0;
    if (!t.own || !t.sub || !t.hits) peak = -1;
    for (int i = 0; i < out->nbufs && peak >= 0; i++) {
        MpBuffer *b = &out->bufs[i];
        if (b->alias != IR_NONE) continue;   // placed with the buffer it overwrites
        int f = b->first < 0 ? 0 : b->first, l = b->last > nsteps ? nsteps : b->last;
        if (b->bytes <= 0 || f > l) {   // fits at 0 whatever is placed; blocks nothing
            b->offset = 0;
            continue;
        }
        t.nhits = 0;
        tree_gather(&t, 1, 0, t.size - 1, f, l);
        int64_t cur = 0;   // no offset below cur fits
        for (bool moved = true; moved;) {
            moved = false;
            for (int k = 0; k < t.nhits; k++) {
                const MpSpans *h = t.hits[k];
                int j = spans_after(h, cur);
                if (j < h->n && h->v[j].s < cur + b->bytes) cur = h->v[j].e, moved = true;
            }
        }
        b->offset = cur;
        if (cur + b->bytes > peak) peak = cur + b->bytes;
        if (tree_add(&t, 1, 0, t.size - 1, f, l, cur, cur + b->bytes)) peak = -1;
    }
    for (int i = 0; t.own && t.sub && i < t.size * 2; i++) free(t.own[i].v), free(t.sub[i].v);
    free(t.own), free(t.sub), free(t.hits);
    return peak;
}

int mp_plan(const IrGraph *g, const FusePlan *fp, const int64_t *sym, const char *precision, MpPlan *out,
            Diag *d) {
    memset(out, 0, sizeof *out);
    out->sym[0] = sym[0], out->sym[1] = sym[1];
    out->act_bytes = precision && (!strcmp(precision, "bf16") || !strcmp(precision, "fp16")) ? 2 : 4;
    out->workspace = MP_GEMM_WORKSPACE;
    // the buffer that holds each node's value: views alias their input's
    int *root = malloc(((size_t)g->n + 1) * sizeof *root);
    int *bufof = malloc(((size_t)g->n + 1) * sizeof *bufof);
    bool *is_grad = calloc((size_t)g->n + 1, 1), *is_out = calloc((size_t)g->n + 1, 1);
    int *lse = NULL, *lse_next = NULL;
    IrId bad = IR_NONE;   // the value whose buffer overflows: the error's location
    out->bufs = malloc(((size_t)g->n * 6 + 1) * sizeof *out->bufs);   // values + at most 5 aux per node
    if (!root || !bufof || !is_grad || !is_out || !out->bufs) goto oom;
    for (int i = 0; i < g->nouts; i++) {
        IrId id = g->outs[i].id;
        if (id < 0 || id >= g->n) continue;
        IrId of = g->outs[i].grad_of;   // gradients of params live in the grads buffers
        if (of >= 0 && of < g->n && g->nodes[of].op == IR_PARAM && !ir_is_leaf(&g->nodes[id]) &&
            g->nodes[id].op != IR_RESHAPE)
            is_grad[id] = true;
        else is_out[id] = true;
    }
    // parameters: weights, grads, optimizer
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        root[i] = i, bufof[i] = -1;
        if (n->op != IR_PARAM) continue;
        int64_t numel = ir_shape_numel(&n->shape, sym);
        int64_t w = mul_ok(numel, elem_bytes(n->dtype));
        if (numel < 0 || w < 0) {
            bad = i;
            goto overflow;
        }
        out->weights += w;   // trainable params are fp32: the master weights themselves
        if (n->trainable) {
            out->grads += numel * 4;
            out->optimizer += numel * 8;
        }
    }
    // buffers, in step order
    for (int s = 0; s < fp->nsteps; s++) {
        const FuseStep *st = &fp->steps[s];
        IrId written[FUSE_MAX_MEMBERS];
        int nw = 0;
        if (st->kind == FUSE_VIEW) {
            IrId x = g->nodes[st->node].in[0];
            root[st->node] = root[x];
            continue;
        }
        if (!fuse_step_runs(fp, s)) continue;   // its leader wrote it
        if (st->kind == FUSE_KERNEL) {
            const FuseGroup *gr = &fp->groups[st->group];
            for (int k = 0; k < gr->nouts; k++) written[nw++] = gr->outs[k];
        } else {
            written[nw++] = st->node;
            int nled;
            const int *led = fuse_led_steps(fp, s, &nled);
            for (int i = 0; i < nled; i++) written[nw++] = fp->steps[led[i]].node;
            if (aux_buffers(g, fp, s, sym, out) != 0) {
                bad = st->node;
                goto overflow;
            }
        }
        for (int k = 0; k < nw; k++) {
            IrId id = written[k];
            if (is_grad[id]) continue;   // written into the grads buffers
            int64_t numel = ir_shape_numel(&g->nodes[id].shape, sym);
            int64_t b = mul_ok(numel, elem_bytes(g->nodes[id].dtype));
            if (numel < 0 || b < 0 || b > INT64_MAX / 4) {
                bad = id;
                goto overflow;
            }
            b = (b + MP_ALIGN - 1) / MP_ALIGN * MP_ALIGN;
            MpBuffer *mb = &out->bufs[out->nbufs];
            mb->node = id, mb->what = MP_VALUE, mb->first = s, mb->last = is_out[id] ? fp->nsteps : s, mb->bytes = b;
            mb->alias = IR_NONE;
            mb->offset = -1;
            bufof[id] = out->nbufs++;
        }
    }
    // graph inputs (tokens, labels, ...) live through the whole step
    for (int i = 0; i < g->n; i++) {
        if (g->nodes[i].op != IR_INPUT) continue;
        int64_t numel = ir_shape_numel(&g->nodes[i].shape, sym);
        int64_t b = mul_ok(numel, elem_bytes(g->nodes[i].dtype));
        if (numel < 0 || b < 0 || b > INT64_MAX / 4) {
            bad = i;
            goto overflow;
        }
        MpBuffer *mb = &out->bufs[out->nbufs];
        mb->node = i, mb->what = MP_VALUE, mb->first = 0, mb->last = fp->nsteps, mb->alias = IR_NONE;
        mb->bytes = (b + MP_ALIGN - 1) / MP_ALIGN * MP_ALIGN;
        mb->offset = -1;
        bufof[i] = out->nbufs++;
    }
    // each node's log-sum-exp buffers (a list through lse_next), not a scan of all per step
    lse = malloc(((size_t)g->n + 1) * sizeof *lse);
    lse_next = malloc(((size_t)out->nbufs + 1) * sizeof *lse_next);
    if (!lse || !lse_next) goto oom;
    for (int i = 0; i < g->n; i++) lse[i] = -1;
    for (int i = out->nbufs - 1; i >= 0; i--) {
        lse_next[i] = -1;
        const MpBuffer *b = &out->bufs[i];
        if (b->what == MP_LSE && b->node >= 0 && b->node < g->n) lse_next[i] = lse[b->node], lse[b->node] = i;
    }
    // last uses: every input a step reads
    for (int s = 0; s < fp->nsteps; s++) {
        const FuseStep *st = &fp->steps[s];
        if (!fuse_step_runs(fp, s)) continue;
        if (fp->lib_fwd[s] != IR_NONE) {   // the forward's saved state (and attention's output)
            IrId f = fp->lib_fwd[s];
            for (int i = lse[f]; i >= 0; i = lse_next[i])
                if (out->bufs[i].last < s) out->bufs[i].last = s;
            int b = g->nodes[f].op == IR_SDPA ? bufof[root[f]] : -1;
            if (b >= 0 && out->bufs[b].last < s) out->bufs[b].last = s;
        }
        const IrId *ins;
        int nin;
        if (st->kind == FUSE_KERNEL) ins = fp->groups[st->group].ins, nin = fp->groups[st->group].nins;
        else ins = g->nodes[st->node].in, nin = g->nodes[st->node].nin;
        for (int k = 0; k < nin; k++) {
            int b = bufof[root[ins[k]]];
            if (b >= 0 && out->bufs[b].last < s) out->bufs[b].last = s;
        }
        int nled = 0;   // what the steps it leads read (linear_ce's gradient)
        const int *led = NULL;
        if (st->kind == FUSE_LIBRARY) led = fuse_led_steps(fp, s, &nled);
        for (int i = 0; i < nled; i++) {
            const IrNode *m = &g->nodes[fp->steps[led[i]].node];
            for (int k = 0; k < m->nin; k++) {
                int b = bufof[root[m->in[k]]];
                if (b >= 0 && out->bufs[b].last < s) out->bufs[b].last = s;
            }
        }
    }
    // a graph output reached through a view keeps its root alive
    for (int i = 0; i < g->nouts; i++) {
        IrId id = g->outs[i].id;
        if (id >= 0 && id < g->n && bufof[root[id]] >= 0) out->bufs[bufof[root[id]]].last = fp->nsteps;
    }
    for (int i = 0; i < out->nbufs; i++) {
        if (out->naive > INT64_MAX - out->bufs[i].bytes) goto overflow;
        out->naive += out->bufs[i].bytes;
    }
    // cross-entropy's backward writes its gradient over the logits when nothing reads them later
    // (the kernel allows it): one (rows, V) buffer instead of two, the largest of a step
    for (int s = 0; s < fp->nsteps; s++) {
        const FuseStep *st = &fp->steps[s];
        if (st->kind != FUSE_LIBRARY || g->nodes[st->node].op != IR_CROSS_ENTROPY_BWD) continue;
        IrId x = root[g->nodes[st->node].in[0]];
        int bx = bufof[x], bd = bufof[st->node];
        if (bx < 0 || bd < 0 || is_out[x] || g->nodes[x].op == IR_INPUT || out->bufs[bx].last != s ||
            out->bufs[bx].bytes != out->bufs[bd].bytes || g->nodes[x].dtype != g->nodes[st->node].dtype)
            continue;
        out->bufs[bx].last = out->bufs[bd].last;
        out->bufs[bd].alias = x;
    }
    // first fit, largest first: the lowest offset not overlapping a placed buffer alive at once
    qsort(out->bufs, (size_t)out->nbufs, sizeof *out->bufs, by_size);
    int64_t peak = place_first_fit(out, fp->nsteps);
    if (peak < 0) goto oom;
    for (int i = 0; i < out->nbufs; i++)
        if (out->bufs[i].alias != IR_NONE) {
            const MpBuffer *a = mp_find(out, out->bufs[i].alias, MP_VALUE);
            out->bufs[i].offset = a ? a->offset : -1;
        }
    out->activations = peak;
    int64_t cat[5] = {out->weights, out->grads, out->optimizer, out->activations, out->workspace};
    out->total = 0;
    for (int i = 0; i < 5; i++) {   // every category is bounded; their sum must be representable too
        if (cat[i] < 0 || cat[i] > INT64_MAX - out->total) goto total_overflow;
        out->total += cat[i];
    }
    free(root), free(bufof), free(is_grad), free(is_out), free(lse), free(lse_next);
    return 0;
overflow:
    if (bad >= 0 && bad < g->n && g->nodes[bad].loc.file > 0) {   // where the value comes from, and what it is
        char sh[128];
        const IrNode *n = &g->nodes[bad];
        diag_error(d, n->loc, "memory plan: a buffer's size overflows for B=%lld, T=%lld: %s %s%s", (long long)sym[0],
                   (long long)sym[1], ir_op_name(n->op), ir_dtype_name(n->dtype), ir_shape_str(&n->shape, sh, sizeof sh));
    } else
        diag_plain_error(d, "memory plan: a buffer's size overflows for B=%lld, T=%lld", (long long)sym[0],
                         (long long)sym[1]);
    goto fail;
total_overflow:
    diag_plain_error(d, "memory plan: the total overflows for B=%lld, T=%lld", (long long)sym[0], (long long)sym[1]);
    goto fail;
oom:
    diag_plain_error(d, "memory plan: out of memory");
fail:
    free(root), free(bufof), free(is_grad), free(is_out), free(lse), free(lse_next);
    mp_plan_free(out);
    return -1;
}

const MpBuffer *mp_find(const MpPlan *p, IrId node, MpWhat what) {
    for (int i = 0; i < p->nbufs; i++)
        if (p->bufs[i].node == node && p->bufs[i].what == what) return &p->bufs[i];
    return NULL;
}

void mp_plan_free(MpPlan *p) {
    free(p->bufs);
    p->bufs = NULL;
    p->nbufs = 0;
}

void mp_bytes_str(char *buf, size_t n, int64_t b) {
    if (b >= ((int64_t)1 << 30)) snprintf(buf, n, "%.2f GiB", (double)b / (double)((int64_t)1 << 30));
    else if (b >= (1 << 20)) snprintf(buf, n, "%.1f MiB", (double)b / (double)(1 << 20));
    else snprintf(buf, n, "%.1f KiB", (double)b / 1024.0);
}

void mp_print(FILE *f, const MpPlan *p) {
    char s[5][32], t[32], nv[32];
    mp_bytes_str(s[0], sizeof s[0], p->weights);
    mp_bytes_str(s[1], sizeof s[1], p->grads);
    mp_bytes_str(s[2], sizeof s[2], p->optimizer);
    mp_bytes_str(s[3], sizeof s[3], p->activations);
    mp_bytes_str(s[4], sizeof s[4], p->workspace);
    mp_bytes_str(t, sizeof t, p->total);
    mp_bytes_str(nv, sizeof nv, p->naive);
    fprintf(f, "memory plan for B=%lld, T=%lld (%s):\n", (long long)p->sym[0], (long long)p->sym[1],
            p->act_bytes == 2 ? "bf16 products and frozen weights, the rest fp32" : "fp32");
    fprintf(f, "  weights      %12s\n  grads        %12s\n  optimizer    %12s\n", s[0], s[1], s[2]);
    fprintf(f, "  activations  %12s   (%d buffers in one arena; %s without reuse)\n", s[3], p->nbufs, nv);
    fprintf(f, "  workspace    %12s\n  total        %12s\n", s[4], t);
}

// ---- what the peak holds ----------------------------------------------------------------------

// Two buffers fall in one group when they hold the same kind of value: the same what, op, dtype,
// shape, size, direction and spec location (one per layer, typically).
static bool same_kind(const IrGraph *g, const MpBuffer *a, const MpBuffer *b) {
    if (a->what != b->what || a->bytes != b->bytes) return false;
    const IrNode *x = &g->nodes[a->node], *y = &g->nodes[b->node];
    if (x->op != y->op || x->dtype != y->dtype || x->backward != y->backward || x->loc.file != y->loc.file ||
        x->loc.off != y->loc.off || x->shape.rank != y->shape.rank)
        return false;
    return memcmp(x->shape.d, y->shape.d, (size_t)x->shape.rank * sizeof x->shape.d[0]) == 0;
}

static int by_group_bytes(const void *x, const void *y) {
    const MpPeakGroup *a = x, *b = y;
    if (a->bytes != b->bytes) return a->bytes > b->bytes ? -1 : 1;
    return a->node < b->node ? -1 : a->node > b->node;
}

int mp_peak(const MpPlan *p, const IrGraph *g, int nsteps, MpPeak *out) {
    memset(out, 0, sizeof *out);
    int64_t *live = calloc((size_t)nsteps + 2, sizeof *live);
    out->groups = malloc(((size_t)p->nbufs + 1) * sizeof *out->groups);
    if (!live || !out->groups) {
        free(live), free(out->groups);
        out->groups = NULL;
        return -1;
    }
    for (int i = 0; i < p->nbufs; i++) {   // bytes live at each step: a difference array
        const MpBuffer *b = &p->bufs[i];
        int lo = b->first < 0 ? 0 : b->first, hi = b->last > nsteps ? nsteps : b->last;
        if (b->alias != IR_NONE || b->bytes <= 0 || lo > hi) continue;
        live[lo] += b->bytes, live[hi + 1] -= b->bytes;
    }
    int64_t run = 0;
    out->bytes = -1;
    for (int s = 0; s <= nsteps; s++) {
        run += live[s];
        if (run > out->bytes) out->bytes = run, out->step = s;
    }
    const MpBuffer **rep = malloc(((size_t)p->nbufs + 1) * sizeof *rep);   // each group's first buffer
    if (!rep) {
        free(live), mp_peak_free(out);
        return -1;
    }
    for (int i = 0; i < p->nbufs; i++) {
        const MpBuffer *b = &p->bufs[i];
        if (b->alias != IR_NONE || b->bytes <= 0 || b->first > out->step || b->last < out->step) continue;
        int k = 0;
        while (k < out->ngroups && !same_kind(g, rep[k], b)) k++;   // tens of kinds: a scan is enough
        if (k == out->ngroups) {
            rep[k] = b;
            out->groups[out->ngroups++] = (MpPeakGroup){b->node, b->what, 0, 0};
        }
        out->groups[k].count++, out->groups[k].bytes += b->bytes;
    }
    free(rep), free(live);
    qsort(out->groups, (size_t)out->ngroups, sizeof *out->groups, by_group_bytes);
    return 0;
}

void mp_peak_free(MpPeak *pk) {
    free(pk->groups);
    pk->groups = NULL;
    pk->ngroups = 0;
}

static const char *what_label(MpWhat w) {   // the state a library step keeps (memplan.h)
    switch (w) {
    case MP_LSE: return "log-sum-exp rows";
    case MP_DELTA: return "attention delta rows";
    case MP_CHUNK: return "fp32 logits of a chunk of rows";
    case MP_CHUNK_LOWP: return "logit gradients of a chunk of rows";
    case MP_CHUNK_ROWS: return "per-row values of a chunk";
    default: return "scratch";
    }
}

int mp_print_peak(FILE *f, const MpPlan *p, const IrGraph *g, const FusePlan *fp, const Diag *d, int top) {
    MpPeak pk;
    if (mp_peak(p, g, fp->nsteps, &pk) != 0) return -1;
    char h[32], sh[96];
    mp_bytes_str(h, sizeof h, pk.bytes);
    const char *when = pk.step >= fp->nsteps                          ? "after the last"
                       : g->nodes[fp->steps[pk.step].node].backward ? "in the backward"
                                                                     : "in the forward";
    fprintf(f, "  peak: step %d of %d (%s), %s live in %d kinds of buffer; the largest:\n", pk.step, fp->nsteps,
            when, h, pk.ngroups);
    for (int k = 0; k < pk.ngroups && k < top; k++) {
        const IrNode *n = &g->nodes[pk.groups[k].node];
        int line = 0, col = 0;
        const Source *src = n->loc.file ? diag_source(d, n->loc.file) : NULL;
        if (src) diag_linecol(d, n->loc, &line, &col);
        const char *base = src ? strrchr(src->path, '/') : NULL;
        base = base ? base + 1 : src ? src->path : "?";
        mp_bytes_str(h, sizeof h, pk.groups[k].bytes);
        fprintf(f, "    %10s  %4d x %s ", h, pk.groups[k].count, ir_op_name(n->op));
        if (pk.groups[k].what == MP_VALUE)
            fprintf(f, "%s%s%s", ir_dtype_name(n->dtype), ir_shape_str(&n->shape, sh, sizeof sh),
                    n->backward ? " (backward)" : "");
        else fprintf(f, "(%s)", what_label(pk.groups[k].what));
        if (src) fprintf(f, "  # %s:%d:%d", base, line, col);
        fputc('\n', f);
    }
    mp_peak_free(&pk);
    return 0;
}
