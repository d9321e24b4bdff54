// lora.c — the LoRA rewrite (see lora.h): copies the lowered graph node by node into a fresh
// graph, inserting after each targeted linear product the low-rank branch
//     + scale * ((dropout(x) @ Aᵀ) @ Bᵀ)
// and remapping every id (outputs, loss, the LowerResult). The product node is the one lowering
// named with the module path (IrNode.name); a bias add, when present, follows it unchanged, so
// the result is PEFT's base_layer(x) + lora_B(lora_A(dropout(x))) * scaling.
// QLoRA (nf4): each linear weight but the output layer is copied as two frozen params (codes,
// absmax) feeding a dequant_nf4 node that every use of the weight reads instead.
// Not here: init values beyond lora_init_values, fp4/int8, double quantization, merging into W.
#include "lora.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

bool lora_matches(const LoraOptions *o, const char *module) {
    if (!module) return false;
    const char *last = strrchr(module, '.');
    last = last ? last + 1 : module;
    if (o->all_linear) return strcmp(last, "lm_head") != 0;
    for (int i = 0; i < o->ntargets; i++)
        if (o->targets[i] && !strcmp(o->targets[i], last)) return true;
    return false;
}

// A linear product lowering named: matmul(x, W, trans_b) with W a 2-D param that is not an
// embedding table (a tied output projection reuses model.embed_tokens: PEFT adapts nn.Linear
// layers only, and never the output layer).
static bool is_linear(const IrGraph *g, const IrNode *n, const bool *is_table) {
    if (n->op != IR_MATMUL || !n->name || n->nin != 2 || n->a.trans_a || !n->a.trans_b) return false;
    const IrNode *w = ir_node(g, n->in[1]);
    return w && !is_table[n->in[1]] && w->shape.rank == 2 && w->shape.d[0].syms == 0 && w->shape.d[1].syms == 0;
}

// Appends the branch for product node `n` of the old graph (already copied as `y` in the new
// one, x its remapped input). Returns the new output id (y + branch) or IR_NONE.
static IrId add_branch(IrGraph *ng, Arena *a, const IrGraph *og, const IrNode *n, IrId x, IrId y,
                       const LoraOptions *o, double scale, LoraModule *m) {
    const IrNode *w = ir_node(og, n->in[1]);
    int64_t out = w->shape.d[0].coef, in = w->shape.d[1].coef, r = o->rank;
    const char *an = arena_printf(a, "%s.lora_A.weight", n->name);
    const char *bn = arena_printf(a, "%s.lora_B.weight", n->name);
    IrDType dt = w->dtype == IR_F64 ? IR_F64 : IR_F32;
    IrId A = ir_param(ng, an, dt, ir_shape2(ir_dim(r), ir_dim(in)), true, n->loc);
    IrId B = ir_param(ng, bn, dt, ir_shape2(ir_dim(out), ir_dim(r)), true, n->loc);
    IrId h = x;
    if (o->train_dropout && o->dropout > 0) h = ir_dropout(ng, h, o->dropout, o->seed, n->loc);
    h = ir_matmul(ng, h, A, false, true, n->loc);
    h = ir_matmul(ng, h, B, false, true, n->loc);
    if (h == IR_NONE) return IR_NONE;
    ir_set_name(ng, h, arena_printf(a, "%s.lora", n->name));
    h = ir_mul(ng, h, ir_scalar(ng, scale, n->loc), n->loc);
    IrId s = ir_add(ng, y, h, n->loc);
    m->module = arena_strdup(a, n->name);
    m->in = in;
    m->out = out;
    m->A = A;
    m->B = B;
    return s;
}

int lora_apply(Diag *d, Arena *a, IrGraph *g, LowerResult *res, const LoraOptions *o, LoraResult *out) {
    memset(out, 0, sizeof *out);
    if (o->rank < 1 || o->rank > (1 << 20) || !(o->alpha > 0) || !(o->dropout >= 0 && o->dropout < 1)) {
        diag_plain_error(d, "lora: rank must be >= 1, alpha > 0 and dropout in [0, 1) (got rank %d, alpha %g, dropout %g)",
                         o->rank, o->alpha, o->dropout);
        return -1;
    }
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].backward) {
            diag_plain_error(d, "lora: the pass runs before autodiff (the graph already has a backward)");
            return -1;
        }
    bool *is_table = calloc((size_t)g->n + 1, sizeof *is_table);   // (n) params used by embed
    if (!is_table) {
        diag_plain_error(d, "lora: out of memory");
        return -1;
    }
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == IR_EMBED && g->nodes[i].nin == 2 && g->nodes[i].in[1] >= 0 && g->nodes[i].in[1] < g->n)
            is_table[g->nodes[i].in[1]] = true;
    int nmatch = 0, nq = 0;
    uint8_t *quant = calloc((size_t)g->n + 1, 1);   // (n) params to store as NF4
    if (!quant) {
        free(is_table);
        diag_plain_error(d, "lora: out of memory");
        return -1;
    }
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (!is_linear(g, n, is_table)) continue;
        if (lora_matches(o, n->name)) nmatch++;
        const IrNode *w = ir_node(g, n->in[1]);
        const char *last = strrchr(n->name, '.');
        bool head = !strcmp(last ? last + 1 : n->name, "lm_head");
        if (o->nf4 && !head && w->op == IR_PARAM && w->dtype == IR_F32 && !quant[n->in[1]]) {
            quant[n->in[1]] = 1;
            nq++;
        }
    }
    if (o->nf4 && (o->quant_block < 1 || o->quant_block > (1 << 20))) {
        free(is_table);
        free(quant);
        diag_plain_error(d, "quantize: bad block size %lld", (long long)o->quant_block);
        return -1;
    }
    if (nmatch == 0) {
        free(is_table);
        free(quant);
        diag_plain_error(d, "lora: no linear layer of the model matches the targets");
        return -1;
    }
    double scale = o->rslora ? o->alpha / sqrt((double)o->rank) : o->alpha / o->rank;
    IrId *map = malloc((size_t)g->n * sizeof *map);
    if (!map) {
        free(is_table);
        free(quant);
        diag_plain_error(d, "lora: out of memory");
        return -1;
    }
    LoraModule *mods = arena_alloc(a, (size_t)nmatch * sizeof *mods);
    LoraQuant *qs = arena_alloc(a, (size_t)(nq + 1) * sizeof *qs);
    IrId *qid = arena_alloc(a, (size_t)(2 * nq + 1) * sizeof *qid);   // new packed / absmax ids
    int nm = 0, nqd = 0;
    IrGraph ng;
    ir_graph_init(&ng, g->diag, g->float_dtype);
    ng.next_salt = g->next_salt;
    int rc = 0;
    for (int i = 0; i < g->n && rc == 0; i++) {
        const IrNode *n = &g->nodes[i];
        IrId in[16], *inp = in;
        if (n->nin > 16) inp = arena_alloc(a, (size_t)n->nin * sizeof *inp);
        for (int k = 0; k < n->nin; k++) inp[k] = map[n->in[k]];
        if (quant[i]) {   // W → dequant_nf4(W:nf4, W:absmax)
            int64_t rows = n->shape.d[0].coef, cols = n->shape.d[1].coef, numel = rows * cols, blk = o->quant_block;
            IrId pq = ir_param(&ng, arena_printf(a, "%s:nf4", n->name), IR_U8, ir_shape1(ir_dim(numel / 2 + numel % 2)),
                               false, n->loc);
            IrId pa = ir_param(&ng, arena_printf(a, "%s:absmax", n->name), IR_F32,
                               ir_shape1(ir_dim(numel / blk + (numel % blk != 0))), false, n->loc);
            IrId dq = ir_dequant_nf4(&ng, pq, pa, blk, n->shape, n->loc);
            if (dq == IR_NONE) {
                rc = -1;
                break;
            }
            LoraQuant *lq = &qs[nqd];
            lq->weight = arena_strdup(a, n->name);
            lq->shape[0] = rows;
            lq->shape[1] = cols;
            lq->numel = numel;
            lq->block = blk;
            qid[2 * nqd] = pq;
            qid[2 * nqd + 1] = pa;
            nqd++;
            map[i] = dq;
            continue;
        }
        IrId id = ir_append(&ng, n->op, n->dtype, n->shape, inp, n->nin, &n->a, n->loc);
        if (id == IR_NONE) {
            rc = -1;
            break;
        }
        if (n->name) ng.nodes[id].name = arena_strdup(&ng.arena, n->name);
        ng.nodes[id].trainable = n->op == IR_PARAM ? false : n->trainable;   // base weights freeze
        map[i] = id;
        if (is_linear(g, n, is_table) && lora_matches(o, n->name)) {
            IrId s = add_branch(&ng, a, g, n, inp[0], id, o, scale, &mods[nm]);
            if (s == IR_NONE) rc = -1;
            else map[i] = s, nm++;
        }
    }
    if (rc == 0 && ng.errors) rc = -1;
    for (int i = 0; i < g->nouts && rc == 0; i++) {
        const IrOutput *op = &g->outs[i];
        if (op->id == g->loss) continue;   // re-added by ir_set_loss
        if (ir_add_output(&ng, map[op->id], op->name) < 0) rc = -1;
    }
    if (rc == 0 && g->loss != IR_NONE) ir_set_loss(&ng, map[g->loss]);
    if (rc != 0 || ng.errors) {
        if (!d->errors) diag_plain_error(d, "lora: could not rewrite the graph");
        ir_graph_free(&ng);
        free(map);
        free(is_table);
        free(quant);
        return -1;
    }
    // The LowerResult: remap, freeze (quantized weights become their codes + absmax), append the
    // adapters.
    LowerParam *ps = arena_alloc(a, (size_t)(res->nparams + nqd + 2 * nm + 1) * sizeof *ps);
    int np = 0, kq = 0;
    for (int i = 0; i < res->nparams; i++) {
        LowerParam p = res->params[i];
        if (p.id < 0 || p.id >= g->n) {
            kq = -1;   // reported below
            break;
        }
        bool q = quant[p.id] != 0;
        p.id = map[p.id];
        p.trainable = false;
        if (!q) {
            ps[np++] = p;
            continue;
        }
        for (int k = 0; k < nqd; k++) {   // the entry of this weight
            if (strcmp(qs[k].weight, p.name)) continue;
            for (int h = 0; h < 2; h++) {
                LowerParam e = p;
                e.id = qid[2 * k + h];
                e.name = ng.nodes[e.id].name;
                e.init = LOWER_INIT_NONE;
                if (h) qs[k].pa = np;
                else qs[k].pq = np;
                ps[np++] = e;
            }
            kq++;
        }
    }
    if (kq != nqd) {
        diag_plain_error(d, "lora: internal: the lowered parameters do not match the graph (%d of %d quantized weights found)",
                         kq, nqd);
        ir_graph_free(&ng);
        free(map);
        free(is_table);
        free(quant);
        return -1;
    }
    for (int i = 0; i < nm; i++) {
        for (int k = 0; k < 2; k++) {
            LowerParam *p = &ps[np];
            memset(p, 0, sizeof *p);
            p->id = k ? mods[i].B : mods[i].A;
            p->name = ng.nodes[p->id].name;
            p->init = k ? LOWER_INIT_ZEROS : LOWER_INIT_NONE;
            p->layer = -1;
            p->trainable = true;
            p->loc = ng.nodes[p->id].loc;
            if (k) mods[i].pB = np;
            else mods[i].pA = np;
            np++;
        }
    }
    res->params = ps;
    res->nparams = np;
    if (res->tokens != IR_NONE) res->tokens = map[res->tokens];
    if (res->pos != IR_NONE) res->pos = map[res->pos];
    if (res->labels != IR_NONE) res->labels = map[res->labels];
    if (res->logits != IR_NONE) res->logits = map[res->logits];
    if (res->loss != IR_NONE) res->loss = map[res->loss];
    free(map);
    free(is_table);
    free(quant);
    ir_graph_free(g);
    *g = ng;
    out->mods = mods;
    out->nmods = nm;
    out->scale = scale;
    out->quant = qs;
    out->nquant = nqd;
    return 0;
}

void lora_quantize_nf4(const float *w, int64_t n, int64_t block, uint8_t *packed, float *absmax) {
    float mid[15];
    for (int j = 0; j < 15; j++) mid[j] = ((float)ir_nf4_value(j) + (float)ir_nf4_value(j + 1)) / 2.0f;
    memset(packed, 0, (size_t)(n / 2 + n % 2));
    for (int64_t b0 = 0, bi = 0; b0 < n; b0 += block, bi++) {
        int64_t b1 = b0 + block < n ? b0 + block : n;
        float am = 0;
        for (int64_t i = b0; i < b1; i++) am = fabsf(w[i]) > am ? fabsf(w[i]) : am;
        absmax[bi] = am;
        float amc = am > 1e-38f ? am : 1e-38f, inv = 1.0f / amc;
        bool partial = b1 - b0 < block;   // bitsandbytes divides in its trailing partial block
        for (int64_t i = b0; i < b1; i++) {
            float s = partial ? w[i] / amc : w[i] * inv;
            s = s < -1.0f ? -1.0f : s > 1.0f ? 1.0f : s;
            int q = 0;
            while (q < 15 && mid[q] < s) q++;   // torch.bucketize(right=False)
            packed[i / 2] |= (uint8_t)(i % 2 ? q : q << 4);
        }
    }
}

void lora_dequantize_nf4(const uint8_t *packed, const float *absmax, int64_t n, int64_t block, float *w) {
    for (int64_t i = 0; i < n; i++) {
        int q = i % 2 ? packed[i / 2] & 0xF : packed[i / 2] >> 4;
        w[i] = (float)ir_nf4_value(q) * absmax[i / block];
    }
}

void lora_init_values(float *A, float *B, int64_t r, int64_t in, int64_t out,
                      double (*uniform)(void *ctx), void *ctx) {
    double bound = 1.0 / sqrt((double)in);
    for (int64_t i = 0; i < r * in; i++) A[i] = (float)((2.0 * uniform(ctx) - 1.0) * bound);
    memset(B, 0, (size_t)(out * r) * sizeof *B);
}
