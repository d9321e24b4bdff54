// gen.c — KV-cached decoding (gen.h). The forward graph is copied node by node into a decode
// graph of cache capacity S (a constant; T = the tokens of this call), each causal sdpa replaced
// by attention over the layer's cache merged with the new keys:
//   K_all (B, Hkv, S, D) = past_k * keep + place @ k_new     place (B, 1, S, T) one-hot slots,
//                                                             keep  (B, 1, S, 1) = 1 - placed
//   scores = (q @ K_allᵀ) * scale, masked to the slots s <= pos of each query (mask (B,1,1,T,S))
// and its new keys and values k_new, v_new (B, Hkv, T, D) handed out as outputs "gen.k.<layer>"
// / "gen.v.<layer>", which gen_generate writes into the cache. Slot = position: a row's prompt
// fills slots [0, len) (right padding is never visible: queries see only slots <= their own
// position, and a padding slot is overwritten by the row's next token). Grouped-query heads are
// handled by viewing q (B, Hq, T, D) as (B, Hkv, G*T, D). The output projection runs on each
// row's last position only (gathered by "gen.last"), so a prefill makes (B, 1, V) logits.
// Also: the reference path without a cache (the whole forward re-run per token, one row at a
// time), and loading an HF model directory (+ PEFT adapter) into a forward graph.
// Not here: sampling (sample.c), evaluation (eval.c).
#include "gen.h"
#include "cpu.h"
#include "check.h"
#include "export.h"
#include "load.h"
#include "lora.h"
#include "lower.h"
#include "safetensors.h"
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct GenLayer {
    int64_t hkv, d;             // kv heads, head dim
    float *k, *v;               // (B, Hkv, S, D) caches of the current generate call
} GenLayer;

typedef struct GenOwnedParam {
    const char *name;
    float *data;                // (numel)
    int64_t numel;
} GenOwnedParam;

struct GenModel {
    Diag *d;
    const IrGraph *fwd;         // the forward graph (== &own when loaded here)
    GenParamFn get;
    void *ctx;
    int64_t vocab;
    // the decode graph for capacity S
    IrGraph dec;
    bool has_dec;
    int64_t S;
    CpuProgram *dprog;
    GenLayer *layers;
    int nlayers;
    bool last_only;             // the decode graph computes the logits of one position per row
    int64_t last_h;             // ... gathered from the hidden states (B, T, H) by "gen.last"
    int32_t *last_idx;          // (B, 1, H) its index buffer
    CpuProgram *fprog;          // the forward graph as it is (no cache)
    // gen_model_open
    Arena a;
    IrGraph own;
    bool has_own;
    HfConfig hf;
    bool has_hf;
    GenOwnedParam *ps;
    int np;
    Tokenizer *tok;
    bool own_tok;
    int32_t eos[HF_MAX_EOS];
    int neos;
};

void gen_options_init(GenOptions *o) {
    memset(o, 0, sizeof *o);
    o->max_new = 64;
    o->temperature = 1.0;
    o->top_p = 1.0;
}

void gen_result_free(GenResult *r) {
    if (!r) return;
    for (int b = 0; r->ids && b < r->B; b++) free(r->ids[b]);
    free(r->ids);
    free(r->len);
    memset(r, 0, sizeof *r);
}

const Tokenizer *gen_model_tokenizer(const GenModel *m) { return m ? m->tok : NULL; }
const HfConfig *gen_model_config(const GenModel *m) { return m && m->has_hf ? &m->hf : NULL; }
int64_t gen_model_vocab(const GenModel *m) { return m ? m->vocab : 0; }
int gen_model_eos(const GenModel *m, int32_t *ids, int cap) {
    int n = 0;
    for (int i = 0; m && i < m->neos && n < cap; i++) ids[n++] = m->eos[i];
    return n;
}
void gen_model_add_eos(GenModel *m, int32_t id) {
    if (!m || id < 0 || m->neos >= HF_MAX_EOS) return;
    for (int i = 0; i < m->neos; i++)
        if (m->eos[i] == id) return;
    m->eos[m->neos++] = id;
}
Diag *gen_model_diag(GenModel *m) { return m ? m->d : NULL; }
void gen_model_set_tokenizer(GenModel *m, const Tokenizer *tok) {
    if (!m) return;
    if (m->own_tok) tok_free(m->tok);
    m->tok = (Tokenizer *)tok;
    m->own_tok = false;
}

// ---------------------------------------------------------------------------------------------
// binding parameters

static int bind_params(GenModel *m, CpuProgram *p, const IrGraph *g) {
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op != IR_PARAM) continue;
        int64_t numel = 0;
        float *data = m->get(m->ctx, n->name, &numel);
        int64_t want = ir_shape_numel(&n->shape, (const int64_t[IR_NSYMS]){1, 1});
        if (!data || numel != want) {
            diag_plain_error(m->d, "generation: no values for parameter `%s`%s", n->name,
                             data ? " of its declared size" : "");
            return -1;
        }
        if (cpu_bind(p, (IrId)i, data, (size_t)numel * sizeof(float))) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// the decode graph

static IrShape shape5(IrDim a, IrDim b, IrDim c, IrDim d, IrDim e) {
    IrDim dims[5] = {a, b, c, d, e};
    return ir_shape_of(5, dims);
}

typedef struct Shared {
    bool made;
    IrId place, keep, mask, ninf;
} Shared;

// The attention of forward node n over the layer's cache; q, k, v already mapped into ng.
static IrId cached_sdpa(GenModel *m, IrGraph *ng, const IrNode *n, IrId q, IrId k, IrId v, Shared *sh) {
    const IrGraph *g = m->fwd;
    const IrNode *qn = ir_node(g, n->in[0]), *kn = ir_node(g, n->in[1]);
    IrDim B = ir_dim_b(), T = ir_dim_t();
    Loc loc = n->loc;
    if (n->nin != 3 || !n->a.causal || !qn || !kn || qn->shape.rank != 4 || kn->shape.rank != 4 ||
        !ir_dim_eq(qn->shape.d[0], B) || !ir_dim_eq(qn->shape.d[2], T) || !ir_dim_eq(kn->shape.d[2], T) ||
        qn->shape.d[1].syms || kn->shape.d[1].syms || qn->shape.d[3].syms || kn->shape.d[1].coef <= 0 ||
        qn->shape.d[1].coef % kn->shape.d[1].coef) {
        diag_error(m->d, loc, "generation supports causal self-attention over (B, heads, T, head_dim) only");
        return IR_NONE;
    }
    int64_t hq = qn->shape.d[1].coef, hkv = kn->shape.d[1].coef, D = qn->shape.d[3].coef, G = hq / hkv;
    IrDim S = ir_dim(m->S);
    IrDType dt = n->dtype;
    if (!sh->made) {
        sh->made = true;
        sh->place = ir_input(ng, "gen.place", dt, ir_shape4(B, ir_dim(1), S, T), loc);
        sh->keep = ir_input(ng, "gen.keep", dt, ir_shape4(B, ir_dim(1), S, ir_dim(1)), loc);
        sh->mask = ir_input(ng, "gen.mask", dt, shape5(B, ir_dim(1), ir_dim(1), T, S), loc);
        sh->ninf = ir_full(ng, -INFINITY, dt, ir_shape0(), loc);
    }
    char name[64];
    int l = m->nlayers;
    GenLayer *nl = realloc(m->layers, (size_t)(l + 1) * sizeof *nl);
    if (!nl) {
        diag_plain_error(m->d, "out of memory");
        return IR_NONE;
    }
    m->layers = nl;
    m->layers[l] = (GenLayer){.hkv = hkv, .d = D};
    m->nlayers++;
    snprintf(name, sizeof name, "gen.past_k.%d", l);
    IrId pk = ir_input(ng, name, dt, ir_shape4(B, ir_dim(hkv), S, ir_dim(D)), loc);
    snprintf(name, sizeof name, "gen.past_v.%d", l);
    IrId pv = ir_input(ng, name, dt, ir_shape4(B, ir_dim(hkv), S, ir_dim(D)), loc);
    // One node-creating call per argument list (argument order is unspecified in C).
    IrId knew = ir_matmul(ng, sh->place, k, false, false, loc);
    IrId kall = ir_add(ng, ir_mul(ng, pk, sh->keep, loc), knew, loc);
    IrId vnew = ir_matmul(ng, sh->place, v, false, false, loc);
    IrId vall = ir_add(ng, ir_mul(ng, pv, sh->keep, loc), vnew, loc);
    IrDim gt = {G, (uint8_t)(1u << IR_SYM_T)};
    IrId q4 = ir_reshape(ng, q, ir_shape4(B, ir_dim(hkv), gt, ir_dim(D)), loc);           // (B, Hkv, G*T, D)
    IrId sc = ir_matmul(ng, q4, kall, false, true, loc);                                  // (B, Hkv, G*T, S)
    double scale = n->a.scale > 0 ? n->a.scale : 1.0 / sqrt((double)D);
    sc = ir_mul(ng, sc, ir_scalar(ng, scale, loc), loc);
    sc = ir_reshape(ng, sc, shape5(B, ir_dim(hkv), ir_dim(G), T, S), loc);               // (B, Hkv, G, T, S)
    IrId p = ir_softmax(ng, ir_where(ng, sh->mask, sc, sh->ninf, loc), loc);
    p = ir_reshape(ng, p, ir_shape4(B, ir_dim(hkv), gt, S), loc);
    IrId o = ir_matmul(ng, p, vall, false, false, loc);                                   // (B, Hkv, G*T, D)
    o = ir_reshape(ng, o, ir_shape4(B, ir_dim(hq), T, ir_dim(D)), loc);                  // (B, Hq, T, D)
    snprintf(name, sizeof name, "gen.k.%d", l);
    if (k != IR_NONE) ir_add_output(ng, k, name);
    snprintf(name, sizeof name, "gen.v.%d", l);
    if (v != IR_NONE) ir_add_output(ng, v, name);
    return o;
}

static void free_decode(GenModel *m) {
    cpu_program_free(m->dprog);
    m->dprog = NULL;
    if (m->has_dec) ir_graph_free(&m->dec);
    m->has_dec = false;
    free(m->layers);
    m->layers = NULL;
    m->nlayers = 0;
    m->last_only = false;
    free(m->last_idx);
    m->last_idx = NULL;
}

// The output projection x (B, T, H) @ W(V, H)ᵀ computed for one position per row only (the
// next token's logits): x is gathered at "gen.last" first, so the prefill of long prompts does
// not materialise (B, T, V) logits. Returns false (nothing built) when the logits node has
// another form (e.g. LoRA on lm_head): then every position's logits are computed.
static bool last_logits(GenModel *m, IrGraph *ng, const IrNode *n, const IrId *in, IrId *out) {
    const IrNode *x = ir_node(m->fwd, n->nin == 2 ? n->in[0] : IR_NONE);
    if (n->op != IR_MATMUL || n->nin != 2 || n->a.trans_a || !n->a.trans_b || !x || x->shape.rank != 3 ||
        !ir_dim_eq(x->shape.d[0], ir_dim_b()) || !ir_dim_eq(x->shape.d[1], ir_dim_t()) || x->shape.d[2].syms ||
        x->shape.d[2].coef <= 0)
        return false;
    int64_t H = x->shape.d[2].coef;
    IrId idx = ir_input(ng, "gen.last", IR_I32, ir_shape3(ir_dim_b(), ir_dim(1), ir_dim(H)), n->loc);
    IrId xs = ir_gather(ng, in[0], idx, 1, n->loc);                         // (B, 1, H)
    *out = ir_matmul(ng, xs, in[1], false, true, n->loc);                   // (B, 1, V)
    m->last_only = true;
    m->last_h = H;
    return true;
}

// (Re)builds the decode graph and program for capacity S.
static int build_decode(GenModel *m, int64_t S) {
    if (m->has_dec && m->S == S) return 0;
    free_decode(m);
    m->S = S;
    const IrGraph *g = m->fwd;
    IrGraph *ng = &m->dec;
    ir_graph_init(ng, m->d, IR_F32);
    m->has_dec = true;
    IrId *map = calloc((size_t)g->n + 1, sizeof *map);
    IrId *in = NULL;
    uint8_t *live = NULL;
    int cap = 0;
    if (!map) goto oom;
    Shared sh = {0};
    // only what the logits need: a training or evaluation graph's labels and loss are left out
    live = calloc((size_t)g->n + 1, 1);
    if (!live) goto oom;
    IrId logits_id = IR_NONE;
    for (int i = 0; i < g->nouts; i++)
        if (!strcmp(g->outs[i].name, "logits") && g->outs[i].id >= 0 && g->outs[i].id < g->n)
            live[logits_id = g->outs[i].id] = 1;
    for (int i = g->n - 1; i >= 0; i--)
        for (int k = 0; live[i] && k < g->nodes[i].nin; k++)
            if (g->nodes[i].in[k] >= 0 && g->nodes[i].in[k] < i) live[g->nodes[i].in[k]] = 1;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        map[i] = IR_NONE;
        if (!live[i]) continue;
        if (n->nin > cap) {
            cap = n->nin;
            IrId *ni = realloc(in, (size_t)cap * sizeof *ni);
            if (!ni) goto oom;
            in = ni;
        }
        for (int k = 0; k < n->nin; k++) in[k] = n->in[k] >= 0 && n->in[k] < i ? map[n->in[k]] : IR_NONE;
        if (i == logits_id && last_logits(m, ng, n, in, &map[i])) {
            if (map[i] == IR_NONE) goto fail;
            continue;
        }
        switch (n->op) {
        case IR_INPUT: map[i] = ir_input(ng, n->name, n->dtype, n->shape, n->loc); break;
        case IR_PARAM: map[i] = ir_param(ng, n->name, n->dtype, n->shape, false, n->loc); break;
        case IR_SDPA: map[i] = cached_sdpa(m, ng, n, in[0], in[1], in[2], &sh); break;
        default:
            if (n->backward || n->op == IR_DROPOUT) {
                diag_error(m->d, n->loc, "generation needs a forward graph without %s",
                           n->backward ? "the backward" : "dropout");
                map[i] = IR_NONE;
                break;
            }
            map[i] = ir_append(ng, n->op, n->dtype, n->shape, in, n->nin, &n->a, n->loc);
        }
        if (map[i] == IR_NONE) goto fail;
    }
    for (int i = 0; i < g->nouts; i++)
        if (!strcmp(g->outs[i].name, "logits")) ir_add_output(ng, map[g->outs[i].id], "logits");
    if (m->nlayers == 0) {
        diag_plain_error(m->d, "generation: the forward graph has no attention to cache");
        goto fail;
    }
    if (ng->errors || !ir_validate(ng, m->d)) goto fail;
    free(live);
    free(map);
    free(in);
    m->dprog = cpu_program_new(ng, IR_F32, m->d);
    if (!m->dprog || bind_params(m, m->dprog, ng)) {
        free_decode(m);
        return -1;
    }
    return 0;
oom:
    diag_plain_error(m->d, "out of memory building the decode graph");
fail:
    free(live);
    free(map);
    free(in);
    free_decode(m);
    return -1;
}

// ---------------------------------------------------------------------------------------------
// models

// A zeroed GenModel reporting to d, or NULL after reporting.
static GenModel *gen_model_alloc(Diag *d) {
    GenModel *m = calloc(1, sizeof *m);
    if (!m) {
        diag_plain_error(d, "out of memory");
        return NULL;
    }
    m->d = d;
    return m;
}

GenModel *gen_model_from_graph(Diag *d, const IrGraph *g, GenParamFn get, void *ctx) {
    IrId tok = ir_find(g, LOWER_INPUT_TOKENS), pos = ir_find(g, LOWER_INPUT_POS);
    const IrNode *logits = NULL;
    for (int i = 0; i < g->nouts; i++)
        if (!strcmp(g->outs[i].name, "logits")) logits = ir_node(g, g->outs[i].id);
    if (tok == IR_NONE || pos == IR_NONE || !logits || logits->shape.rank != 3 || logits->shape.d[2].syms ||
        logits->shape.d[2].coef <= 0) {
        diag_plain_error(d, "generation needs a forward graph with inputs `tokens`, `pos` and an output `logits` (B, T, V)");
        return NULL;
    }
    GenModel *m = gen_model_alloc(d);
    if (!m) return NULL;
    m->fwd = g;
    m->get = get;
    m->ctx = ctx;
    m->vocab = logits->shape.d[2].coef;
    return m;
}

void gen_model_free(GenModel *m) {
    if (!m) return;
    free_decode(m);
    cpu_program_free(m->fprog);
    if (m->has_own) ir_graph_free(&m->own);
    for (int i = 0; i < m->np; i++) free(m->ps[i].data);
    free(m->ps);
    if (m->own_tok) tok_free(m->tok);
    arena_free(&m->a);
    free(m);
}

static float *own_param(void *ctx, const char *name, int64_t *numel) {
    GenModel *m = ctx;
    for (int i = 0; i < m->np; i++)
        if (!strcmp(m->ps[i].name, name)) {
            *numel = m->ps[i].numel;
            return m->ps[i].data;
        }
    return NULL;
}

static bool is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}
static bool is_file(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

// generation_config.json's eos_token_id (int or list), when the file exists and says.
static void read_generation_eos(GenModel *m, const char *dir) {
    char path[HF_PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (!is_file(path)) return;
    json_error_t err;
    json_t *root = json_load_file(path, 0, &err);
    if (!root) return;   // config.json's ids stay
    json_t *e = json_object_get(root, "eos_token_id");
    int n = 0;
    int32_t ids[HF_MAX_EOS];
    if (json_is_integer(e) && json_integer_value(e) >= 0 && json_integer_value(e) < INT32_MAX)
        ids[n++] = (int32_t)json_integer_value(e);
    else if (json_is_array(e))
        for (size_t i = 0; i < json_array_size(e) && n < HF_MAX_EOS; i++) {
            json_t *x = json_array_get(e, i);
            if (json_is_integer(x) && json_integer_value(x) >= 0 && json_integer_value(x) < INT32_MAX)
                ids[n++] = (int32_t)json_integer_value(x);
        }
    if (n) {
        memcpy(m->eos, ids, (size_t)n * sizeof *ids);
        m->neos = n;
    }
    json_decref(root);
}

// Applies the PEFT adapter: the LoRA pass with its rank/alpha/targets, A and B from its tensors.
static int apply_adapter(GenModel *m, const char *adapter_dir, LowerResult *res) {
    ExLoraAdapter ad;
    if (!is_dir(adapter_dir)) {
        diag_plain_error(m->d, "adapter directory `%s` does not exist", adapter_dir);
        return -1;
    }
    if (ex_load_peft_adapter(m->d, adapter_dir, &ad)) return -1;
    LoraOptions lo = {0};
    lo.rank = ad.cfg.r;
    lo.alpha = ad.cfg.lora_alpha;
    lo.rslora = ad.cfg.use_rslora;
    lo.train_dropout = false;
    const char **targets = arena_alloc(&m->a, (size_t)(ad.n_mods + 1) * sizeof *targets);
    int nt = 0;
    for (int i = 0; i < ad.n_mods; i++) {   // the modules' last components: exactly what was adapted
        const char *last = strrchr(ad.mods[i].module, '.');
        last = last ? last + 1 : ad.mods[i].module;
        bool seen = false;
        for (int k = 0; k < nt; k++) seen = seen || !strcmp(targets[k], last);
        if (!seen) targets[nt++] = arena_strdup(&m->a, last);
    }
    lo.targets = targets;
    lo.ntargets = nt;
    LoraResult lr;
    int rc = lora_apply(m->d, &m->a, &m->own, res, &lo, &lr);
    if (rc == 0 && lr.nmods != ad.n_mods) {
        diag_plain_error(m->d, "%s: the adapter has %d modules, %d linear layers of the model match its targets",
                         adapter_dir, ad.n_mods, lr.nmods);
        rc = -1;
    }
    for (int i = 0; rc == 0 && i < lr.nmods; i++) {
        const LoraModule *lm = &lr.mods[i];
        const ExLoraModule *em = NULL;
        for (int k = 0; k < ad.n_mods; k++)
            if (!strcmp(ad.mods[k].module, lm->module)) em = &ad.mods[k];
        if (!em || em->in != lm->in || em->out != lm->out) {
            diag_plain_error(m->d, "%s: the adapter does not fit `%s` of the model (in %lld, out %lld)%s", adapter_dir,
                             lm->module, (long long)lm->in, (long long)lm->out,
                             em ? "" : ": no weights for it");
            diag_hint(m->d, "was the adapter trained on this base model?");
            rc = -1;
            break;
        }
        // the params were appended to res; fill their buffers after allocation (below) by name
        for (int w = 0; w < 2; w++) {
            const LowerParam *lp = &res->params[w ? lm->pB : lm->pA];
            GenOwnedParam *p = NULL;
            for (int k = 0; k < m->np; k++)
                if (!strcmp(m->ps[k].name, lp->name)) p = &m->ps[k];
            int64_t numel = (int64_t)ad.cfg.r * (w ? lm->out : lm->in);
            float *data = malloc((size_t)numel * sizeof(float));
            if (!data || p) {
                free(data);
                diag_plain_error(m->d, "%s", p ? "internal: adapter parameter twice" : "out of memory");
                rc = -1;
                break;
            }
            memcpy(data, w ? em->B : em->A, (size_t)numel * sizeof(float));
            m->ps[m->np++] = (GenOwnedParam){.name = lp->name, .data = data, .numel = numel};
        }
    }
    ex_lora_adapter_free(&ad);
    return rc;
}

GenModel *gen_model_from_spec(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, GenParamFn get,
                              void *ctx) {
    if (cs->policy < 0 || cs->policy >= cs->nmodels) {
        diag_plain_error(d, "the spec has no policy model to generate with");
        return NULL;
    }
    const CheckedModel *cm = &cs->models[cs->policy];
    if (cm->quantized) {
        diag_error(d, cm->loc, "generation with a quantized model is not supported yet");
        return NULL;
    }
    GenModel *m = gen_model_alloc(d);
    if (!m) return NULL;
    ir_graph_init(&m->own, d, IR_F32);
    m->has_own = true;
    LowerOptions lo;
    lower_options_init(&lo);
    lo.objective = "none";
    LowerResult res;
    if (lower_model_opts(d, a, spec, cs, -1, &lo, &m->own, &res)) goto fail;
    if (cm->has_lora) {   // as the trainer's evaluation graph: the same pass, without dropout
        LoraOptions o = lora_options_of(cm);   // train_dropout false
        LoraResult lr;
        if (lora_apply(d, a, &m->own, &res, &o, &lr)) goto fail;
    }
    if (cm->has_hf) {
        m->hf = cm->hf;
        m->has_hf = true;
        for (int i = 0; i < m->hf.n_eos && i < HF_MAX_EOS; i++)
            if (m->hf.eos_token_ids[i] >= 0 && m->hf.eos_token_ids[i] < INT32_MAX)
                m->eos[m->neos++] = (int32_t)m->hf.eos_token_ids[i];
        if (cm->from) read_generation_eos(m, cm->from);
    }
    m->fwd = &m->own;
    m->get = get;
    m->ctx = ctx;
    m->vocab = cm->cfg.vocab;
    return m;
fail:
    gen_model_free(m);
    return NULL;
}

GenModel *gen_model_open(Diag *d, const char *model_dir, const char *adapter_dir) {
    if (!model_dir || !is_dir(model_dir)) {
        diag_plain_error(d, "model directory `%s` does not exist", model_dir ? model_dir : "(null)");
        return NULL;
    }
    GenModel *m = gen_model_alloc(d);
    if (!m) return NULL;
    if (hf_config_load(d, model_dir, &m->hf)) goto fail;
    m->has_hf = true;
    for (int i = 0; i < m->hf.n_eos && i < HF_MAX_EOS; i++)
        if (m->hf.eos_token_ids[i] >= 0 && m->hf.eos_token_ids[i] < INT32_MAX) m->eos[m->neos++] = (int32_t)m->hf.eos_token_ids[i];
    read_generation_eos(m, model_dir);
    LoadedSpec spec = {0};
    const char *text = "trl 1;\n";
    if (load_spec_text(d, &m->a, "generate.trl", text, strlen(text), &spec)) goto fail;
    const HfConfig *hf = &m->hf;
    LowerModel lm = {.name = "model", .arch = hf_arch_name(hf->arch), .hf = hf, .frozen = true};
    lm.cfg = (CheckedConfig){.vocab = hf->vocab_size, .hidden = hf->hidden_size, .layers = hf->num_hidden_layers,
                             .heads = hf->num_attention_heads, .kv_heads = hf->num_key_value_heads,
                             .head_dim = hf->head_dim, .ffn = hf->intermediate_size,
                             .max_pos = hf->max_position_embeddings, .eps = hf->rms_norm_eps,
                             .rope_theta = hf->rope.theta, .init_std = 0.02, .tie = hf->tie_word_embeddings};
    LowerOptions lo;
    lower_options_init(&lo);
    lo.objective = "none";
    ir_graph_init(&m->own, d, IR_F32);
    m->has_own = true;
    LowerResult res;
    if (lower_graph(d, &m->a, &spec, &lm, &lo, &m->own, &res)) goto fail;
    // the base weights
    StCheckpoint *ck = st_checkpoint_open(d, model_dir);
    if (!ck) goto fail;
    if (hf_config_check_checkpoint(d, hf, ck)) {
        st_checkpoint_close(ck);
        goto fail;
    }
    m->ps = calloc((size_t)res.nparams * 3 + 1, sizeof *m->ps);   // room for LoRA A/B
    if (!m->ps) {
        st_checkpoint_close(ck);
        diag_plain_error(d, "out of memory");
        goto fail;
    }
    for (int i = 0; i < res.nparams; i++) {
        const IrNode *n = ir_node(&m->own, res.params[i].id);
        int64_t shape[IR_MAX_RANK], numel = 1;
        for (int k = 0; n && k < n->shape.rank; k++) {
            shape[k] = n->shape.d[k].coef;
            numel *= shape[k];
        }
        float *data = n ? malloc((size_t)(numel ? numel : 1) * sizeof(float)) : NULL;
        if (!data) {
            st_checkpoint_close(ck);
            diag_plain_error(d, "out of memory loading `%s`", res.params[i].name);
            goto fail;
        }
        m->ps[m->np++] = (GenOwnedParam){.name = res.params[i].name, .data = data, .numel = numel};
        if (st_checkpoint_read_f32(d, ck, res.params[i].name, n->shape.rank, shape, data)) {
            st_checkpoint_close(ck);
            goto fail;
        }
    }
    st_checkpoint_close(ck);
    if (adapter_dir && apply_adapter(m, adapter_dir, &res)) goto fail;
    char tpath[HF_PATH_MAX + 32];
    snprintf(tpath, sizeof tpath, "%s/tokenizer.json", model_dir);
    if (is_file(tpath)) {
        m->tok = tok_load(d, tpath);
        if (!m->tok) goto fail;
        m->own_tok = true;
    }
    m->fwd = &m->own;
    m->get = own_param;
    m->ctx = m;
    m->vocab = hf->vocab_size;
    return m;
fail:
    gen_model_free(m);
    return NULL;
}

// ---------------------------------------------------------------------------------------------
// generation

// Appends token t to row b and decides whether the row stops.
static void push_token(GenModel *m, const GenOptions *o, GenResult *out, int b, int32_t t) {
    out->ids[b][out->len[b]++] = t;
    bool stop = out->len[b] >= o->max_new;
    for (int i = 0; i < o->nstop_ids && i < GEN_MAX_STOP; i++) stop = stop || t == o->stop_ids[i];
    if (!stop && o->nstop_strings > 0 && m->tok) {
        size_t n = 0;
        char *txt = tok_decode(m->tok, out->ids[b], (size_t)out->len[b], false, &n);
        for (int i = 0; txt && i < o->nstop_strings && i < GEN_MAX_STOP; i++)
            stop = stop || (o->stop_strings[i] && o->stop_strings[i][0] && strstr(txt, o->stop_strings[i]));
        free(txt);
    }
    if (stop) out->len[b] = -out->len[b] - 1;   // marked done (decoded back by the caller)
}
static bool row_done(const GenResult *out, int b) { return out->len[b] < 0; }
static int row_len(const GenResult *out, int b) { return out->len[b] < 0 ? -out->len[b] - 1 : out->len[b]; }

// Picks the next token from logits (V), copied to tmp first (picking warps in place).
static void pick(GenModel *m, const GenOptions *o, Rng *rng, const float *logits, float *tmp, int32_t *t) {
    memcpy(tmp, logits, (size_t)m->vocab * sizeof *tmp);
    *t = gen_pick(tmp, m->vocab, o, rng);
}

// The reference: the whole forward re-run for each new token, one row at a time.
static int generate_no_cache(GenModel *m, const int32_t *const *prompts, const int *plens, int B,
                             const GenOptions *o, GenResult *out, Rng *rng, float *tmp) {
    if (!m->fprog) {
        m->fprog = cpu_program_new(m->fwd, IR_F32, m->d);
        if (!m->fprog || bind_params(m, m->fprog, m->fwd)) {
            cpu_program_free(m->fprog);
            m->fprog = NULL;
            return -1;
        }
    }
    int64_t maxlen = 0;
    for (int b = 0; b < B; b++) maxlen = plens[b] + o->max_new > maxlen ? plens[b] + o->max_new : maxlen;
    int32_t *seq = malloc((size_t)maxlen * sizeof *seq), *pos = malloc((size_t)maxlen * sizeof *pos);
    int32_t *labels = malloc((size_t)maxlen * sizeof *labels);   // for graphs with a loss: all ignored
    bool has_labels = ir_find(m->fwd, LOWER_INPUT_LABELS) != IR_NONE;
    int rc = seq && pos && labels ? 0 : -1;
    if (rc) diag_plain_error(m->d, "out of memory");
    for (int k = 0; k < maxlen && pos && labels; k++) {
        pos[k] = k;
        labels[k] = LOWER_IGNORE_INDEX;
    }
    // rows in turn would draw differently from the batched path; draw per step across rows instead
    for (int step = 0; rc == 0 && step < o->max_new; step++) {
        for (int b = 0; rc == 0 && b < B; b++) {
            if (row_done(out, b)) continue;
            int n = plens[b];
            memcpy(seq, prompts[b], (size_t)n * sizeof *seq);
            memcpy(seq + n, out->ids[b], (size_t)out->len[b] * sizeof *seq);
            n += out->len[b];
            size_t nb = (size_t)n * sizeof(int32_t);
            if (cpu_bind_name(m->fprog, LOWER_INPUT_TOKENS, seq, nb) || cpu_bind_name(m->fprog, LOWER_INPUT_POS, pos, nb) ||
                (has_labels && cpu_bind_name(m->fprog, LOWER_INPUT_LABELS, labels, nb)) ||
                cpu_run(m->fprog, (const int64_t[IR_NSYMS]){1, n}, 0)) {
                rc = -1;
                break;
            }
            const CpuTensor *lg = cpu_output_named(m->fprog, "logits");
            if (!lg || lg->numel != (int64_t)n * m->vocab) {
                diag_plain_error(m->d, "internal: the forward returned no logits");
                rc = -1;
                break;
            }
            int32_t t;
            pick(m, o, rng, (const float *)lg->data + (size_t)(n - 1) * (size_t)m->vocab, tmp, &t);
            push_token(m, o, out, b, t);
        }
    }
    free(seq);
    free(pos);
    free(labels);
    return rc;
}

// One call of the decode program: T new tokens per row. tok/pos (B, T); valid[b*T + t] says
// whether the token is real (it is then written to slot pos). Afterwards the caches hold the new
// keys and values; the logits (B, T, V) are returned.
static const float *decode_call(GenModel *m, int B, int T, const int32_t *tok, const int32_t *pos,
                                const uint8_t *valid, const int *last, float *place, float *keep, float *mask) {
    int64_t S = m->S;
    size_t nplace = (size_t)B * (size_t)S * (size_t)T;
    memset(place, 0, nplace * sizeof *place);
    for (size_t i = 0; i < (size_t)B * (size_t)S; i++) keep[i] = 1.0f;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) {
            int32_t p = pos[(size_t)b * T + t];
            float *mrow = mask + ((size_t)b * T + t) * (size_t)S;    // (B, 1, 1, T, S)
            for (int64_t s = 0; s < S; s++) mrow[s] = s <= p ? 1.0f : 0.0f;
            if (!valid[(size_t)b * T + t]) continue;
            place[((size_t)b * S + (size_t)p) * T + t] = 1.0f;      // (B, 1, S, T)
            keep[(size_t)b * S + (size_t)p] = 0.0f;                 // (B, 1, S, 1)
        }
    CpuProgram *pr = m->dprog;
    if (m->last_only) {   // (B, 1, H): each row's last position, repeated along H
        for (int b = 0; b < B; b++)
            for (int64_t h = 0; h < m->last_h; h++) m->last_idx[(size_t)b * (size_t)m->last_h + (size_t)h] = last[b];
        if (cpu_bind_name(pr, "gen.last", m->last_idx, (size_t)B * (size_t)m->last_h * sizeof(int32_t))) return NULL;
    }
    size_t nt = (size_t)B * T * sizeof(int32_t);
    if (cpu_bind_name(pr, LOWER_INPUT_TOKENS, tok, nt) || cpu_bind_name(pr, LOWER_INPUT_POS, pos, nt) ||
        cpu_bind_name(pr, "gen.place", place, nplace * sizeof(float)) ||
        cpu_bind_name(pr, "gen.keep", keep, (size_t)B * S * sizeof(float)) ||
        cpu_bind_name(pr, "gen.mask", mask, nplace * sizeof(float)))
        return NULL;
    char name[64];
    for (int l = 0; l < m->nlayers; l++) {
        size_t nb = (size_t)B * (size_t)m->layers[l].hkv * (size_t)S * (size_t)m->layers[l].d * sizeof(float);
        snprintf(name, sizeof name, "gen.past_k.%d", l);
        if (cpu_bind_name(pr, name, m->layers[l].k, nb)) return NULL;
        snprintf(name, sizeof name, "gen.past_v.%d", l);
        if (cpu_bind_name(pr, name, m->layers[l].v, nb)) return NULL;
    }
    if (cpu_run(pr, (const int64_t[IR_NSYMS]){B, T}, 0)) return NULL;
    for (int l = 0; l < m->nlayers; l++) {
        int64_t H = m->layers[l].hkv, D = m->layers[l].d;
        for (int w = 0; w < 2; w++) {
            snprintf(name, sizeof name, w ? "gen.v.%d" : "gen.k.%d", l);
            const CpuTensor *nk = cpu_output_named(pr, name);   // (B, Hkv, T, D)
            if (!nk || nk->numel != (int64_t)B * H * T * D) {
                diag_plain_error(m->d, "internal: decode output `%s` missing", name);
                return NULL;
            }
            const float *src = nk->data;
            float *cache = w ? m->layers[l].v : m->layers[l].k;   // (B, Hkv, S, D)
            for (int b = 0; b < B; b++)
                for (int t = 0; t < T; t++) {
                    if (!valid[(size_t)b * T + t]) continue;
                    int64_t s = pos[(size_t)b * T + t];
                    for (int64_t h = 0; h < H; h++)
                        memcpy(cache + (((size_t)b * H + h) * S + s) * D, src + (((size_t)b * H + h) * T + t) * D,
                               (size_t)D * sizeof(float));
                }
        }
    }
    const CpuTensor *lg = cpu_output_named(pr, "logits");
    if (!lg || lg->numel != (int64_t)B * (m->last_only ? 1 : T) * m->vocab) {
        diag_plain_error(m->d, "internal: the decode graph returned no logits");
        return NULL;
    }
    return lg->data;
}

// Row b's next-token logits (V) in what decode_call returned.
static const float *row_logits(const GenModel *m, const float *lg, int b, int T, const int *last) {
    size_t r = m->last_only ? (size_t)b : (size_t)b * (size_t)T + (size_t)last[b];
    return lg + r * (size_t)m->vocab;
}

// Decodes B rows whose caches (m->layers[l].k / v, (B, Hkv, S, D) for the built program's S)
// already hold slots [0, starts[b]) of row b: prefills prompts[b][starts[b] .. plens[b]) (at least
// one token each), then one token per call.
static int run_decode(GenModel *m, const int32_t *const *prompts, const int *plens, const int *starts, int B,
                      const GenOptions *o, GenResult *out, Rng *rng, float *tmp) {
    int64_t S = m->S;
    int maxt = 0;   // the prefill's T: the longest part not cached yet
    for (int b = 0; b < B; b++) maxt = plens[b] - starts[b] > maxt ? plens[b] - starts[b] : maxt;
    int rc = -1;
    size_t nbt = (size_t)B * (size_t)maxt;
    int32_t *tok = malloc(nbt * sizeof *tok), *pos = malloc(nbt * sizeof *pos);
    uint8_t *valid = calloc(nbt, 1);
    float *place = malloc(nbt * (size_t)S * sizeof *place), *mask = malloc(nbt * (size_t)S * sizeof *mask);
    float *keep = malloc((size_t)B * (size_t)S * sizeof *keep);
    int *last = calloc((size_t)B, sizeof *last);
    bool ok = tok && pos && valid && place && mask && keep && last;
    if (ok && m->last_only) {
        free(m->last_idx);
        ok = (m->last_idx = malloc((size_t)B * (size_t)m->last_h * sizeof(int32_t))) != NULL;
    }
    if (!ok) {
        diag_plain_error(m->d, "out of memory for decoding");
        goto done;
    }
    // prefill: what each row has not cached, right-padded to maxt
    for (int b = 0; b < B; b++)
        for (int t = 0; t < maxt; t++) {
            size_t i = (size_t)b * maxt + t;
            int p = starts[b] + t;
            valid[i] = p < plens[b];
            tok[i] = p < plens[b] ? prompts[b][p] : 0;
            pos[i] = p;
        }
    for (int b = 0; b < B; b++) last[b] = plens[b] - starts[b] - 1;
    const float *lg = decode_call(m, B, maxt, tok, pos, valid, last, place, keep, mask);
    if (!lg) goto done;
    int32_t t;
    for (int b = 0; b < B; b++) {
        pick(m, o, rng, row_logits(m, lg, b, maxt, last), tmp, &t);
        push_token(m, o, out, b, t);
    }
    for (int b = 0; b < B; b++) last[b] = 0;
    // one token per call
    for (int step = 1; step < o->max_new; step++) {
        bool any = false;
        for (int b = 0; b < B; b++) {
            int n = row_len(out, b);
            any = any || !row_done(out, b);
            tok[b] = out->ids[b][n - 1];
            pos[b] = plens[b] + n - 1;
            valid[b] = !row_done(out, b);
        }
        if (!any) break;
        lg = decode_call(m, B, 1, tok, pos, valid, last, place, keep, mask);
        if (!lg) goto done;
        for (int b = 0; b < B; b++) {
            if (row_done(out, b)) continue;
            pick(m, o, rng, row_logits(m, lg, b, 1, last), tmp, &t);
            push_token(m, o, out, b, t);
        }
    }
    rc = 0;
done:
    free(tok);
    free(pos);
    free(valid);
    free(place);
    free(mask);
    free(keep);
    free(last);
    return rc;
}

// Capacity for prompts of up to maxp tokens plus max_new, refused when the buffers would be huge.
static int64_t capacity(GenModel *m, int B, int maxp, int max_new) {
    int64_t S = ((int64_t)maxp + max_new + 15) / 16 * 16;
    // the largest buffers: place and mask (B, T, S), each cache (B, Hkv, S, D)
    if ((double)B * (double)maxp * (double)S > (double)((int64_t)1 << 36)) {
        diag_plain_error(m->d, "generation: %d prompts of up to %d tokens with %d new tokens need too much memory", B,
                         maxp, max_new);
        return -1;
    }
    return S;
}

static int generate_cached(GenModel *m, const int32_t *const *prompts, const int *plens, int B,
                           const GenOptions *o, GenResult *out, Rng *rng, float *tmp) {
    int maxp = 0;
    for (int b = 0; b < B; b++) maxp = plens[b] > maxp ? plens[b] : maxp;
    int64_t S = capacity(m, B, maxp, o->max_new);
    if (S < 0 || build_decode(m, S)) return -1;
    int rc = -1;
    int *starts = calloc((size_t)B, sizeof *starts);
    bool ok = starts != NULL;
    for (int l = 0; ok && l < m->nlayers; l++) {
        size_t n = (size_t)B * (size_t)m->layers[l].hkv * (size_t)S * (size_t)m->layers[l].d;
        m->layers[l].k = calloc(n, sizeof(float));
        m->layers[l].v = calloc(n, sizeof(float));
        ok = m->layers[l].k && m->layers[l].v;
    }
    if (!ok) diag_plain_error(m->d, "out of memory for the KV cache");
    else rc = run_decode(m, prompts, plens, starts, B, o, out, rng, tmp);
    for (int l = 0; l < m->nlayers; l++) {
        free(m->layers[l].k);
        free(m->layers[l].v);
        m->layers[l].k = m->layers[l].v = NULL;
    }
    free(starts);
    return rc;
}

// Checks a request and allocates the result rows and the logits scratch (*tmp). 0 or -1 (reported).
static int prepare(GenModel *m, const int32_t *const *prompts, const int *plens, int B, const GenOptions *o,
                   GenResult *out, float **tmp) {
    memset(out, 0, sizeof *out);
    if (!m || !o || B <= 0 || !prompts || !plens) {
        if (m) diag_plain_error(m->d, "generation: no prompts");
        return -1;
    }
    if (o->max_new <= 0 || o->max_new > (1 << 20)) {
        diag_plain_error(m->d, "generation: max_new must be in [1, 1048576], got %d", o->max_new);
        return -1;
    }
    if (o->sample && (!(o->temperature > 0) || !(o->top_p > 0) || o->top_p > 1 || o->top_k < 0)) {
        diag_plain_error(m->d, "generation: temperature must be > 0, top_p in (0, 1] and top_k >= 0");
        return -1;
    }
    int64_t window = m->has_hf ? m->hf.sliding_window : 0;   // layers that attend to a window only
    for (int b = 0; b < B; b++) {
        if (window > 0 && prompts[b] && (int64_t)plens[b] + o->max_new > window) {
            diag_plain_error(m->d, "generation: prompt %d plus %d new tokens exceeds the model's sliding window (%lld "
                             "positions), which generation does not implement", b, o->max_new, (long long)window);
            return -1;
        }
        if (!prompts[b] || plens[b] <= 0) {
            diag_plain_error(m->d, "generation: prompt %d is empty", b);
            return -1;
        }
        if ((int64_t)plens[b] + o->max_new > (int64_t)1 << 24) {
            diag_plain_error(m->d, "generation: prompt %d is too long (%d tokens)", b, plens[b]);
            return -1;
        }
        for (int t = 0; t < plens[b]; t++)
            if (prompts[b][t] < 0 || prompts[b][t] >= m->vocab) {
                diag_plain_error(m->d, "generation: prompt %d holds token id %d, outside the vocabulary [0, %lld)", b,
                                 prompts[b][t], (long long)m->vocab);
                return -1;
            }
    }
    out->B = B;
    out->ids = calloc((size_t)B, sizeof *out->ids);
    out->len = calloc((size_t)B, sizeof *out->len);
    *tmp = malloc((size_t)m->vocab * sizeof **tmp);
    bool ok = out->ids && out->len && *tmp;
    for (int b = 0; ok && b < B; b++) ok = (out->ids[b] = malloc((size_t)o->max_new * sizeof(int32_t))) != NULL;
    if (!ok) {
        free(*tmp);
        *tmp = NULL;
        gen_result_free(out);
        diag_plain_error(m->d, "out of memory");
        return -1;
    }
    return 0;
}

// The row lengths as the caller sees them; the result is freed on failure.
static int finish(GenResult *out, float *tmp, int rc) {
    free(tmp);
    for (int b = 0; b < out->B; b++) out->len[b] = row_len(out, b);
    if (rc) gen_result_free(out);
    return rc;
}

int gen_generate(GenModel *m, const int32_t *const *prompts, const int *plens, int B, const GenOptions *o,
                 GenResult *out) {
    float *tmp = NULL;
    if (prepare(m, prompts, plens, B, o, out, &tmp)) return -1;
    Rng rng;
    rng_seed(&rng, o->seed);
    int rc = o->no_cache ? generate_no_cache(m, prompts, plens, B, o, out, &rng, tmp)
                         : generate_cached(m, prompts, plens, B, o, out, &rng, tmp);
    return finish(out, tmp, rc);
}

// ---------------------------------------------------------------------------------------------
// sessions: one conversation whose cache outlives a call

struct GenSession {
    GenModel *m;
    int32_t *ids;               // the tokens whose keys and values the cache holds (slots 0 .. n-1)
    int n, cap;
    int64_t S;                  // the caches' capacity (0: none yet)
    float **k, **v;             // per layer (1, Hkv, S, D)
    int nlayers;
};

GenSession *gen_session_new(GenModel *m) {
    GenSession *s = m ? calloc(1, sizeof *s) : NULL;
    if (s) s->m = m;
    else if (m) diag_plain_error(m->d, "out of memory");
    return s;
}

static void session_drop_cache(GenSession *s) {
    for (int l = 0; l < s->nlayers; l++) {
        free(s->k[l]);
        free(s->v[l]);
    }
    free(s->k);
    free(s->v);
    s->k = s->v = NULL;
    s->nlayers = 0;
    s->S = 0;
    s->n = 0;
}

int gen_session_cached(const GenSession *s) { return s ? s->n : 0; }

void gen_session_free(GenSession *s) {
    if (!s) return;
    session_drop_cache(s);
    free(s->ids);
    free(s);
}

// Caches of capacity S holding the first `keep` slots of the old ones.
static int session_grow(GenSession *s, int64_t S, int keep) {
    GenModel *m = s->m;
    float **k = calloc((size_t)m->nlayers + 1, sizeof *k), **v = calloc((size_t)m->nlayers + 1, sizeof *v);
    bool ok = k && v;
    for (int l = 0; ok && l < m->nlayers; l++) {
        int64_t H = m->layers[l].hkv, D = m->layers[l].d;
        k[l] = calloc((size_t)(H * S * D), sizeof(float));
        v[l] = calloc((size_t)(H * S * D), sizeof(float));
        ok = k[l] && v[l];
        for (int64_t h = 0; ok && h < H && l < s->nlayers && keep > 0; h++) {   // (1, H, S, D) rows kept
            memcpy(k[l] + (size_t)(h * S * D), s->k[l] + (size_t)(h * s->S * D), (size_t)keep * (size_t)D * sizeof(float));
            memcpy(v[l] + (size_t)(h * S * D), s->v[l] + (size_t)(h * s->S * D), (size_t)keep * (size_t)D * sizeof(float));
        }
    }
    if (!ok) {
        for (int l = 0; k && v && l < m->nlayers; l++) {
            free(k[l]);
            free(v[l]);
        }
        free(k);
        free(v);
        diag_plain_error(m->d, "out of memory for the KV cache");
        return -1;
    }
    int n = keep;
    session_drop_cache(s);
    s->k = k;
    s->v = v;
    s->nlayers = m->nlayers;
    s->S = S;
    s->n = n;
    return 0;
}

int gen_session_generate(GenSession *s, const int32_t *prompt, int plen, const GenOptions *o, GenResult *out) {
    if (!s) return -1;
    GenModel *m = s->m;
    float *tmp = NULL;
    if (prepare(m, &prompt, &plen, 1, o, out, &tmp)) return -1;
    if (o->no_cache) {   // the reference path keeps nothing
        Rng rng;
        rng_seed(&rng, o->seed);
        return finish(out, tmp, generate_no_cache(m, &prompt, &plen, 1, o, out, &rng, tmp));
    }
    // the cached prefix this prompt shares (at least the last prompt token is run again)
    int common = 0;
    while (common < s->n && common < plen - 1 && s->ids[common] == prompt[common]) common++;
    int64_t need = capacity(m, 1, plen, o->max_new);
    if (need < 0) return finish(out, tmp, -1);
    int64_t S = s->S >= need ? s->S : (need > 2 * s->S ? need : 2 * s->S);
    if (build_decode(m, S)) return finish(out, tmp, -1);
    if ((S != s->S || s->nlayers != m->nlayers) && session_grow(s, S, s->nlayers == m->nlayers ? common : 0))
        return finish(out, tmp, -1);
    if (s->nlayers != m->nlayers) common = 0;
    for (int l = 0; l < m->nlayers; l++) {
        m->layers[l].k = s->k[l];
        m->layers[l].v = s->v[l];
    }
    Rng rng;
    rng_seed(&rng, o->seed);
    int rc = run_decode(m, &prompt, &plen, &common, 1, o, out, &rng, tmp);
    for (int l = 0; l < m->nlayers; l++) m->layers[l].k = m->layers[l].v = NULL;
    rc = finish(out, tmp, rc);
    s->n = 0;   // on failure the cache content is unknown
    if (rc) return rc;
    // cached now: the prompt and every generated token but the last (never fed back)
    int n = plen + out->len[0] - 1;
    if (n > s->cap) {
        int32_t *ni = realloc(s->ids, (size_t)n * sizeof *ni);
        if (!ni) return 0;   // the cache is just not reused
        s->ids = ni;
        s->cap = n;
    }
    memcpy(s->ids, prompt, (size_t)plen * sizeof *prompt);
    memcpy(s->ids + plen, out->ids[0], (size_t)(out->len[0] - 1) * sizeof *prompt);
    s->n = n;
    return 0;
}
