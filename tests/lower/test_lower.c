// test_lower.c — the stdlib architectures lowered and run on the CPU backend in float64:
//  1. forward logits and the summed SFT loss against Hugging Face transformers (fixtures written by
//     gen_fixtures.py: tiny llama, qwen2 with q/k/v biases, qwen3 with q/k norms, tied embeddings
//     and label smoothing, llama with Llama-3 RoPE scaling);
//  2. the gradient of the loss w.r.t. EVERY parameter against central finite differences
//     (a few sampled entries per parameter), max relative error printed and asserted;
//  3. frozen layers (freeze = layers[0:1]) are not trainable and get no gradient output;
//  4. DPO (sigmoid, hinge, ipo), GRPO, distillation, sequence / per-token log-probs against torch, with
//     gradients;
//  5. an arch without `param` declarations (LANGUAGE.md's llama) equals the stdlib llama;
//  6. the forward of the tiny Qwen3 checkpoint in tests/fixtures/tiny-qwen3 (written by the io
//     tests from transformers, float32) against its reference logits.
// usage: test_lower FIXTURE_DIR [CHECKPOINT_DIR]
#include "autodiff.h"
#include "cpu.h"
#include "fixture.h"
#include "lower.h"
#include "test.h"
#include <math.h>
#include <string.h>

enum { B = 2, T = 8, SAMPLES = 3 };

typedef struct Case {
    Diag d;
    Arena a;
    LoadedSpec spec;
    IrGraph g;
    LowerResult res;
    CpuProgram *p;
    double **w;        // bound parameter buffers (res.nparams)
    int64_t *wn;
    int32_t tokens[B * T], pos[B * T], labels[B * T];
    double ref_logp[B * T];                                  // dpo: (B); grpo: (B, T)
    double old_logp[B * T], adv[B], weight[B * T];          // grpo
    double *teacher;                                        // kd: (B, T, V)
    int64_t bsym;      // the value bound to the symbol B: rows, or pairs for dpo
    HfConfig hf;       // the Llama-3 rope scaling when the fixture has one
} Case;

static CheckedConfig tiny_cfg(double theta, bool tie) {
    CheckedConfig c = {.vocab = 64, .hidden = 32, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 8,
                       .ffn = 48, .max_pos = 64, .eps = 1e-6, .rope_theta = theta, .init_std = 0.02, .tie = tie};
    return c;
}

// Lowers arch with the fixture's settings; binds weights and the batch from fx.
static int setup(Case *c, const Fx *fx, const char *arch, int freeze_hi, const char *objective, const char *dpo) {
    memset(c, 0, sizeof *c);
    diag_init(&c->d, stderr);
    const char *text = "trl 1;\n";
    if (load_spec_text(&c->d, &c->a, "test.trl", text, strlen(text), &c->spec)) return -1;
    LowerModel m = {.name = "tiny", .arch = arch,
                    .cfg = tiny_cfg(atof(fx_meta(fx, "rope_theta")), !strcmp(fx_meta(fx, "tie"), "1")),
                    .freeze_lo = 0, .freeze_hi = freeze_hi};
    const char *rs = fx_meta(fx, "rope_scaling");
    double f, lo, hi, orig;
    if (rs && sscanf(rs, "%lf %lf %lf %lf", &f, &lo, &hi, &orig) == 4) {
        c->hf.rope = (HfRope){.type = HF_ROPE_LLAMA3, .theta = m.cfg.rope_theta, .factor = f, .low_freq_factor = lo,
                              .high_freq_factor = hi, .original_max_position_embeddings = (int64_t)orig};
        m.hf = &c->hf;
    }
    LowerOptions o;
    lower_options_init(&o);
    o.objective = objective;
    o.label_smoothing = strcmp(objective, "dpo") ? atof(fx_meta(fx, "label_smoothing")) : 0;
    bool grpo = !strcmp(objective, "grpo");
    o.beta = grpo ? 0.04 : 0.1;
    o.clip = 0.2;
    o.temperature = grpo || !strcmp(objective, "token_logp") ? 0.9 : !strcmp(objective, "kd") ? 2 : 1;
    o.alpha = 0.5;
    o.dpo_loss = dpo;
    c->bsym = strcmp(objective, "dpo") ? B : B / 2;
    ir_graph_init(&c->g, &c->d, IR_F64);
    if (lower_graph(&c->d, &c->a, &c->spec, &m, &o, &c->g, &c->res)) return -1;
    if (c->res.loss != IR_NONE && ad_backward(&c->g, NULL, 0)) return -1;
    c->p = cpu_program_new(&c->g, IR_F64, &c->d);
    if (!c->p) return -1;
    c->w = calloc((size_t)c->res.nparams, sizeof *c->w);
    c->wn = calloc((size_t)c->res.nparams, sizeof *c->wn);
    for (int i = 0; i < c->res.nparams; i++) {
        int64_t n;
        const float *src = fx_get(fx, c->res.params[i].name, "F32", &n);
        CHECK_MSG(src != NULL, "fixture lacks %s", c->res.params[i].name);
        if (!src) return -1;
        const IrNode *pn = ir_node(&c->g, c->res.params[i].id);
        CHECK_MSG(ir_shape_numel(&pn->shape, (const int64_t[IR_NSYMS]){B, T}) == n, "%s: %lld elements in the fixture", c->res.params[i].name,
                  (long long)n);
        c->w[i] = malloc((size_t)n * sizeof(double));
        c->wn[i] = n;
        for (int64_t k = 0; k < n; k++) {
            float v;
            memcpy(&v, (const char *)src + 4 * k, 4);
            c->w[i][k] = v;
        }
        if (cpu_bind(c->p, c->res.params[i].id, c->w[i], (size_t)n * sizeof(double))) return -1;
    }
    int64_t n;
    const void *tk = fx_get(fx, "test.tokens", "I32", &n), *ps = fx_get(fx, "test.pos", "I32", &n),
               *lb = fx_get(fx, "test.labels", "I32", &n);
    if (!tk || !ps || !lb || n != B * T) return -1;
    memcpy(c->tokens, tk, sizeof c->tokens);
    memcpy(c->pos, ps, sizeof c->pos);
    memcpy(c->labels, lb, sizeof c->labels);
    if (cpu_bind_name(c->p, LOWER_INPUT_TOKENS, c->tokens, sizeof c->tokens) ||
        cpu_bind_name(c->p, LOWER_INPUT_POS, c->pos, sizeof c->pos) ||
        cpu_bind_name(c->p, LOWER_INPUT_LABELS, c->labels, sizeof c->labels))
        return -1;
    if (c->res.ref_logp != IR_NONE) {
        const void *r = fx_get(fx, grpo ? "test.grpo_ref_logp" : "test.ref_logp", "F64", &n);
        if (!r || n != (grpo ? B * T : B)) return -1;
        memcpy(c->ref_logp, r, (size_t)n * sizeof(double));
        if (cpu_bind(c->p, c->res.ref_logp, c->ref_logp, (size_t)n * sizeof(double))) return -1;
    }
    if (c->res.teacher_logits != IR_NONE) {
        const void *tl = fx_get(fx, "test.kd_teacher", "F64", &n);
        if (!tl) return -1;
        c->teacher = malloc((size_t)n * sizeof(double));
        memcpy(c->teacher, tl, (size_t)n * sizeof(double));
        if (cpu_bind(c->p, c->res.teacher_logits, c->teacher, (size_t)n * sizeof(double))) return -1;
    }
    if (grpo) {
        const void *ol = fx_get(fx, "test.grpo_old_logp", "F64", &n);
        if (!ol || n != B * T) return -1;
        memcpy(c->old_logp, ol, sizeof c->old_logp);
        const void *wt = fx_get(fx, "test.grpo_weight", "F64", &n);
        if (!wt || n != B * T) return -1;
        memcpy(c->weight, wt, sizeof c->weight);
        const void *ad = fx_get(fx, "test.grpo_adv", "F64", &n);
        if (!ad || n != B) return -1;
        memcpy(c->adv, ad, sizeof c->adv);
        if (cpu_bind(c->p, c->res.old_logp, c->old_logp, sizeof c->old_logp) ||
            cpu_bind(c->p, c->res.weight, c->weight, sizeof c->weight) ||
            cpu_bind(c->p, c->res.advantages, c->adv, sizeof c->adv))
            return -1;
    }
    return 0;
}

static void teardown(Case *c) {
    for (int i = 0; c->w && i < c->res.nparams; i++) free(c->w[i]);
    free(c->w);
    free(c->wn);
    free(c->teacher);
    if (c->p) cpu_program_free(c->p);
    ir_graph_free(&c->g);
    arena_free(&c->a);
    diag_free(&c->d);
}

static int run(Case *c, double *loss) {
    int64_t syms[IR_NSYMS] = {c->bsym, T};
    if (cpu_run(c->p, syms, 0)) return -1;
    const CpuTensor *l = cpu_output_named(c->p, "loss");
    if (!l || l->numel != 1) return -1;
    *loss = ((const double *)l->data)[0];
    return 0;
}

static uint64_t rng = 88172645463325252ull;
static uint64_t next_rand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

// The gradient of the loss w.r.t. every parameter against central differences at SAMPLES
// entries each; prints and asserts the max relative error.
static void check_grads(Case *c, const char *arch) {
    double loss = 0;
    double maxrel = 0;
    const char *worst = "";
    int nchecked = 0;
    for (int i = 0; i < c->res.nparams; i++) {
        const LowerParam *pp = &c->res.params[i];
        char gname[256];
        snprintf(gname, sizeof gname, "grad:%s", pp->name);
        if (run(c, &loss)) break;
        const CpuTensor *gt = cpu_output_named(c->p, gname);
        CHECK_MSG(gt && gt->numel == c->wn[i], "no gradient output for %s", pp->name);
        if (!gt) continue;
        double an[SAMPLES];
        int64_t idx[SAMPLES];
        for (int s = 0; s < SAMPLES; s++) {
            idx[s] = (int64_t)(next_rand() % (uint64_t)c->wn[i]);
            an[s] = ((const double *)gt->data)[idx[s]];
        }
        for (int s = 0; s < SAMPLES; s++) {
            const double h = 1e-5;
            double keep = c->w[i][idx[s]], lp = 0, lm = 0;
            c->w[i][idx[s]] = keep + h;
            int e1 = run(c, &lp);
            c->w[i][idx[s]] = keep - h;
            int e2 = run(c, &lm);
            c->w[i][idx[s]] = keep;
            CHECK(e1 == 0 && e2 == 0);
            double fd = (lp - lm) / (2 * h);
            double rel = fabs(fd - an[s]) / fmax(fabs(an[s]), 1e-2);
            nchecked++;
            if (rel > maxrel) {
                maxrel = rel;
                worst = pp->name;
            }
        }
    }
    printf("%s: gradient check of %d parameters (%d entries): max rel error %.3g (%s)\n", arch, c->res.nparams,
           nchecked, maxrel, worst);
    CHECK_MSG(nchecked == SAMPLES * c->res.nparams, "%s: %d entries checked", arch, nchecked);
    CHECK_MSG(maxrel < 1e-6, "%s: gradient rel error %g at %s", arch, maxrel, worst);
}

// Opens the fixture dir/<name>.safetensors: 0, or -1 (a failed check) where it cannot be read.
static int open_fx(Fx *fx, const char *dir, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, name);
    int rc = fx_open(fx, path);
    if (rc) CHECK_MSG(0, "cannot read %s", path);
    return rc;
}

// One objective on the fixture against its value in torch: lowered (dpo: DPO's loss kind) and
// run; its loss divided by div within atol (and 1e-6 relative) of the fixture's F64 scalar
// ref_name; its loss_per equal to per (NULL: not checked); its gradients by finite differences.
static void check_loss(const Fx *fx, const char *arch, const char *objective, const char *dpo, const char *ref_name,
                       double div, double atol, const char *per, const char *what) {
    Case c;
    int rc = setup(&c, fx, arch, 0, objective, dpo);
    CHECK_MSG(rc == 0, "%s: lowering failed", what);
    double loss = 0, ref = 0;
    if (rc == 0) rc = run(&c, &loss);
    CHECK(rc == 0);
    int64_t n;
    const void *r = fx_get(fx, ref_name, "F64", &n);
    CHECK(r != NULL);
    if (r) memcpy(&ref, r, 8);
    printf("%s: loss%s %.12g vs torch %.12g (summed per %s)\n", what, div != 1 ? " / B" : "", loss / div, ref,
           c.res.loss_per ? c.res.loss_per : "?");
    CHECK_CLOSE(loss / div, ref, atol, 1e-6);
    if (per) CHECK(c.res.loss_per && !strcmp(c.res.loss_per, per));
    if (rc == 0) check_grads(&c, what);
    teardown(&c);
}

static void test_arch(const char *dir, const char *fixture) {
    Fx fx;
    if (open_fx(&fx, dir, fixture)) return;
    const char *arch = fx_meta(&fx, "arch");
    Case c;
    int rc = setup(&c, &fx, arch, 0, "sft", NULL);
    CHECK_MSG(rc == 0, "%s: lowering failed", arch);
    double loss = 0;
    if (rc == 0) rc = run(&c, &loss);
    CHECK_MSG(rc == 0, "%s: run failed", arch);
    if (rc) {
        teardown(&c);
        fx_close(&fx);
        return;
    }
    // 0. every linear product carries its module path (what LoRA / quantization match)
    int named = 0;
    bool down1 = false;
    for (int i = 0; i < c.g.n; i++) {
        const IrNode *nd = &c.g.nodes[i];
        if (nd->op != IR_MATMUL || nd->backward || !nd->name) continue;
        named++;
        down1 |= !strcmp(nd->name, "model.layers.1.mlp.down_proj");
    }
    CHECK_MSG(named == 2 * 7 + 1 && down1, "%s: %d named linear products", arch, named);

    // 1. forward against transformers
    int64_t n;
    const double *ref = fx_get(&fx, "test.logits", "F64", &n);
    const CpuTensor *lg = cpu_output_named(c.p, "logits");
    CHECK(ref && lg && lg->numel == n);
    double maxd = 0, maxv = 0;
    for (int64_t i = 0; ref && lg && i < n && i < lg->numel; i++) {
        double r;
        memcpy(&r, (const char *)ref + 8 * i, 8);
        double dd = fabs(((const double *)lg->data)[i] - r);
        if (dd > maxd) maxd = dd;
        if (fabs(r) > maxv) maxv = fabs(r);
    }
    const double *rl = fx_get(&fx, "test.loss", "F64", &n);
    double rloss = 0;
    if (rl) memcpy(&rloss, rl, 8);
    printf("%s: %d params, logits max |diff| %.3g (max |logit| %.3g), loss %.12g vs transformers %.12g\n", fixture,
           c.res.nparams, maxd, maxv, loss, rloss);
    // transformers runs RMSNorm's variance and the RoPE tables in float32 even in a float64 model,
    // so agreement is to float32 precision (measured: ~1e-6 on logits of magnitude ~4).
    CHECK_MSG(maxd < 1e-5 * (1 + maxv), "%s: logits differ from transformers by %g", arch, maxd);
    CHECK_CLOSE(loss, rloss, 1e-5, 1e-6);

    // 2. gradients of every parameter against central differences
    check_grads(&c, arch);
    teardown(&c);

    // 3. frozen layer 0: its parameters are not trainable and have no gradient
    rc = setup(&c, &fx, arch, 1, "sft", NULL);
    CHECK(rc == 0);
    if (rc == 0) {
        int frozen = 0;
        for (int i = 0; i < c.res.nparams; i++) {
            const LowerParam *pp = &c.res.params[i];
            bool layer0 = !strncmp(pp->name, "model.layers.0.", 15);
            CHECK(pp->trainable == !layer0);
            CHECK(ir_node(&c.g, pp->id)->trainable == !layer0);
            frozen += layer0;
            CHECK((ad_grad_of(&c.g, pp->id) == IR_NONE) == layer0);
        }
        CHECK(frozen > 0);
        CHECK(ir_count_trainable(&c.g) == c.res.nparams - frozen);
    }
    teardown(&c);
    fx_close(&fx);
}

// DPO on the fixture's two rows as one pair (row 0 chosen, row 1 rejected), sigmoid and hinge,
// against TRL's formulas in torch; gradients by finite differences. And the "logp" objective
// (what the reference model computes) against the fixture's sequence log-probs.
static void test_dpo(const char *dir, const char *arch) {
    Fx fx;
    if (open_fx(&fx, dir, arch)) return;
    static const char *const kinds[] = {"sigmoid", "hinge", "ipo"};
    for (int k = 0; k < 3; k++) {
        char what[64], name[64];
        snprintf(what, sizeof what, "%s dpo %s", arch, kinds[k]);
        snprintf(name, sizeof name, "test.dpo_%s", kinds[k]);
        check_loss(&fx, arch, "dpo", kinds[k], name, 1, 1e-6, "pair", what);
    }
    Case c;
    int rc = setup(&c, &fx, arch, 0, "logp", NULL);
    CHECK(rc == 0 && c.res.logp != IR_NONE && c.res.loss == IR_NONE);
    int64_t syms[IR_NSYMS] = {B, T}, n;
    if (rc == 0) CHECK(cpu_run(c.p, syms, 0) == 0);
    const CpuTensor *lp = rc == 0 ? cpu_output_named(c.p, "logp") : NULL;
    const void *r = fx_get(&fx, "test.logp", "F64", &n);
    CHECK(lp && r && lp->numel == B && n == B);
    for (int i = 0; lp && r && i < B && i < lp->numel; i++) {
        double want;
        memcpy(&want, (const char *)r + 8 * i, 8);
        CHECK_CLOSE(((const double *)lp->data)[i], want, 1e-5, 1e-6);
    }
    teardown(&c);
    fx_close(&fx);
}

// GRPO (TRL's loss_type "grpo", temperature 0.9, beta 0.04, clip 0.2) from given old / ref
// per-token log-probs and advantages: our weighted sum / B against TRL's mean; gradients by finite
// differences. And the per-token log-probs ("token_logp") against torch.
static void test_grpo(const char *dir, const char *arch) {
    Fx fx;
    if (open_fx(&fx, dir, arch)) return;
    char what[64];
    snprintf(what, sizeof what, "%s grpo", arch);   // TRL's formula (a mean) in torch
    check_loss(&fx, arch, "grpo", NULL, "test.grpo_loss", B, 1e-6, "weight", what);
    // knowledge distillation
    snprintf(what, sizeof what, "%s kd", arch);
    check_loss(&fx, arch, "kd", NULL, "test.kd_loss", 1, 1e-5, NULL, what);
    Case c;
    int rc = setup(&c, &fx, arch, 0, "token_logp", NULL);
    CHECK(rc == 0 && c.res.logp != IR_NONE);
    int64_t syms[IR_NSYMS] = {B, T};
    if (rc == 0) CHECK(cpu_run(c.p, syms, 0) == 0);
    const CpuTensor *lp = rc == 0 ? cpu_output_named(c.p, "token_logp") : NULL;
    int64_t n;
    const void *r = fx_get(&fx, "test.token_logp", "F64", &n);
    CHECK(lp && r && lp->numel == B * T && n == B * T);
    double maxd = 0;
    for (int i = 0; lp && r && i < B * T && i < lp->numel; i++) {
        double want;
        memcpy(&want, (const char *)r + 8 * i, 8);
        maxd = fmax(maxd, fabs(((const double *)lp->data)[i] - want));
    }
    printf("%s token_logp: max |diff| %.3g vs torch\n", arch, maxd);
    CHECK(maxd < 1e-5);
    teardown(&c);
    fx_close(&fx);
}

// LANGUAGE.md's llama, written in the spec without `param` declarations and without importing
// nn.trl (heads / merge_heads come from the prelude): its parameters are declared on use with the
// decoder's names and shapes, and with the llama fixture's weights it computes the same loss.
static const char implicit_spec[] =
    "trl 1;\n"
    "def rmsnorm(x, w, eps) = w * x * rsqrt(mean(x * x, axis = -1) + eps);\n"
    "def mlp(x, p) = linear(silu(linear(x, p.gate_proj)) * linear(x, p.up_proj), p.down_proj);\n"
    "def attention(x, p, cfg, pos) {\n"
    "    q = rope(heads(linear(x, p.q_proj), cfg.heads), pos, cfg.rope);\n"
    "    k = rope(heads(linear(x, p.k_proj), cfg.kv_heads), pos, cfg.rope);\n"
    "    v = heads(linear(x, p.v_proj), cfg.kv_heads);\n"
    "    return linear(merge_heads(sdpa(q, k, v, causal = true)), p.o_proj);\n"
    "}\n"
    "arch mini(cfg) {\n"
    "    forward(tokens, pos) {\n"
    "        x = embed(tokens, model.embed_tokens);\n"
    "        for i in 0 .. cfg.layers {\n"
    "            p = model.layers[i];\n"
    "            h = x + attention(rmsnorm(x, p.input_layernorm, cfg.eps), p.self_attn, cfg, pos);\n"
    "            x = h + mlp(rmsnorm(h, p.post_attention_layernorm, cfg.eps), p.mlp);\n"
    "        }\n"
    "        return linear(rmsnorm(x, model.norm, cfg.eps), lm_head);\n"
    "    }\n"
    "}\n";

static void test_implicit(const char *dir) {
    Fx fx;
    if (open_fx(&fx, dir, "llama")) return;
    Case ref;
    int rc = setup(&ref, &fx, "llama", 0, "sft", NULL);
    double want = 0, got = 0;
    CHECK(rc == 0 && run(&ref, &want) == 0);
    Case c;
    memset(&c, 0, sizeof c);
    diag_init(&c.d, stderr);
    rc = load_spec_text(&c.d, &c.a, "mini.trl", implicit_spec, strlen(implicit_spec), &c.spec);
    CHECK(rc == 0);
    LowerModel m = {.name = "mini", .arch = "mini", .cfg = tiny_cfg(10000, false)};
    LowerOptions o;
    lower_options_init(&o);
    ir_graph_init(&c.g, &c.d, IR_F64);
    if (rc == 0) rc = lower_graph(&c.d, &c.a, &c.spec, &m, &o, &c.g, &c.res);
    CHECK_MSG(rc == 0, "the arch without params does not lower");
    CHECK(c.res.nparams == ref.res.nparams);
    for (int i = 0; rc == 0 && i < ref.res.nparams; i++) {
        IrId id = ir_find(&c.g, ref.res.params[i].name);
        CHECK_MSG(id != IR_NONE, "`%s` not declared on use", ref.res.params[i].name);
        if (id == IR_NONE) continue;
        const IrNode *a = ir_node(&c.g, id), *b = ir_node(&ref.g, ref.res.params[i].id);
        CHECK(ir_shape_eq(&a->shape, &b->shape) && a->trainable);
    }
    if (rc == 0) {
        c.p = cpu_program_new(&c.g, IR_F64, &c.d);
        CHECK(c.p != NULL);
        for (int i = 0; c.p && i < ref.res.nparams; i++) {
            IrId id = ir_find(&c.g, ref.res.params[i].name);
            if (id != IR_NONE) CHECK(cpu_bind(c.p, id, ref.w[i], (size_t)ref.wn[i] * sizeof(double)) == 0);
        }
        CHECK(c.p && cpu_bind_name(c.p, LOWER_INPUT_TOKENS, ref.tokens, sizeof ref.tokens) == 0);
        CHECK(c.p && cpu_bind_name(c.p, LOWER_INPUT_POS, ref.pos, sizeof ref.pos) == 0);
        CHECK(c.p && cpu_bind_name(c.p, LOWER_INPUT_LABELS, ref.labels, sizeof ref.labels) == 0);
        c.bsym = B;
        CHECK(c.p && run(&c, &got) == 0);
        printf("implicit-param llama (LANGUAGE.md): loss %.12g vs stdlib llama %.12g\n", got, want);
        CHECK_CLOSE(got, want, 1e-10, 1e-12);
    }
    teardown(&c);
    teardown(&ref);
    fx_close(&fx);
}

// tests/fixtures/tiny-qwen3: config.json (vocab 384, hidden 32, 2 layers, 4/2 heads, head_dim 8,
// ffn 64, rope_theta 1e6, tied), model.safetensors, reference.safetensors (input_ids (32) I64,
// logits (32, 384) F32 from transformers in float32).
static void test_checkpoint(const char *dir) {
    char path[1024];
    Fx w, ref;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    int ok = fx_open(&w, path) == 0;
    snprintf(path, sizeof path, "%s/reference.safetensors", dir);
    ok = ok && fx_open(&ref, path) == 0;
    CHECK_MSG(ok, "cannot read the checkpoint in %s", dir);
    if (!ok) return;
    Diag d;
    diag_init(&d, stderr);
    Arena a = {0};
    LoadedSpec spec = {0};
    const char *text = "trl 1;\n";
    CHECK(load_spec_text(&d, &a, "test.trl", text, strlen(text), &spec) == 0);
    CheckedConfig cfg = {.vocab = 384, .hidden = 32, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 8,
                         .ffn = 64, .max_pos = 512, .eps = 1e-6, .rope_theta = 1e6, .tie = true};
    LowerModel m = {.name = "tiny", .arch = "qwen3", .cfg = cfg};
    LowerOptions o;
    lower_options_init(&o);
    o.objective = "none";
    IrGraph g;
    ir_graph_init(&g, &d, IR_F64);
    LowerResult res;
    int rc = lower_graph(&d, &a, &spec, &m, &o, &g, &res);
    CHECK(rc == 0 && res.loss == IR_NONE && res.labels == IR_NONE);
    CpuProgram *p = rc == 0 ? cpu_program_new(&g, IR_F64, &d) : NULL;
    CHECK(p != NULL);
    double **bufs = calloc((size_t)res.nparams + 1, sizeof *bufs);
    for (int i = 0; p && i < res.nparams; i++) {
        int64_t n;
        const void *src = fx_get(&w, res.params[i].name, "F32", &n);
        CHECK_MSG(src != NULL, "checkpoint lacks %s", res.params[i].name);
        if (!src) continue;
        bufs[i] = malloc((size_t)n * sizeof(double));
        for (int64_t k = 0; k < n; k++) {
            float v;
            memcpy(&v, (const char *)src + 4 * k, 4);
            bufs[i][k] = v;
        }
        CHECK(cpu_bind(p, res.params[i].id, bufs[i], (size_t)n * sizeof(double)) == 0);
    }
    int64_t n = 0, nl = 0;
    const void *ids = fx_get(&ref, "input_ids", "I64", &n);
    const void *logits = fx_get(&ref, "logits", "F32", &nl);
    CHECK(ids && logits && n == 32 && nl == 32 * 384);
    if (p && ids && logits && n == 32) {
        int32_t tokens[32], pos[32];
        for (int i = 0; i < 32; i++) {
            int64_t v;
            memcpy(&v, (const char *)ids + 8 * i, 8);
            tokens[i] = (int32_t)v;
            pos[i] = i;
        }
        CHECK(cpu_bind_name(p, LOWER_INPUT_TOKENS, tokens, sizeof tokens) == 0);
        CHECK(cpu_bind_name(p, LOWER_INPUT_POS, pos, sizeof pos) == 0);
        int64_t syms[IR_NSYMS] = {1, 32};
        CHECK(cpu_run(p, syms, 0) == 0);
        const CpuTensor *out = cpu_output_named(p, "logits");
        CHECK(out && out->numel == nl);
        double maxd = 0, maxv = 0;
        for (int64_t i = 0; out && i < nl && i < out->numel; i++) {
            float r;
            memcpy(&r, (const char *)logits + 4 * i, 4);
            maxd = fmax(maxd, fabs(((const double *)out->data)[i] - r));
            maxv = fmax(maxv, fabs(r));
        }
        printf("tiny-qwen3 checkpoint: logits max |diff| %.3g vs transformers (float32), max |logit| %.3g\n", maxd, maxv);
        CHECK_MSG(maxd < 1e-4 * (1 + maxv), "checkpoint logits differ by %g", maxd);
    }
    for (int i = 0; i < res.nparams; i++) free(bufs[i]);
    free(bufs);
    if (p) cpu_program_free(p);
    ir_graph_free(&g);
    arena_free(&a);
    diag_free(&d);
    fx_close(&w);
    fx_close(&ref);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "fixtures";
    test_arch(dir, "llama");
    test_arch(dir, "qwen2");
    test_arch(dir, "qwen3");
    test_arch(dir, "llama3");
    test_dpo(dir, "qwen3");
    test_grpo(dir, "qwen3");
    test_implicit(dir);
    if (argc > 2) test_checkpoint(argv[2]);
    return test_done("lower.archs");
}
