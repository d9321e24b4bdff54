// test_run.c — the trainer against PyTorch (fixtures/step.safetensors from gen_run_fixtures.py):
// (a) one step of the tiny Qwen3, full fine-tuning and LoRA: loss and every gradient vs
//     transformers / peft (max relative error <= 1e-4, fp32);
// (b) three AdamW updates (clip 1.0, no decay on norms): the losses vs torch.optim.AdamW, for full
//     fine-tuning and for LoRA (peft, with lora.trl's warmup + cosine-to-min_lr schedule);
//     rsLoRA's scale vs peft; frozen layers (freeze = layers[0:1]) get no gradient;
// (c) LoRA at initialisation (B = 0) gives exactly the base model's logits;
// (d) gradient accumulation: 2 micro-batches of 2 rows == 1 batch of 4 rows (uneven target
//     counts), the same update;
// QLoRA: NF4 codes as bitsandbytes quantizes, one step vs peft on the dequantized weights;
// (g) dpo (reference = the policy without adapters) and kd (the base model as teacher): loss and
//     adapter gradients vs peft with TRL's formulas;
// (f) an adapter `trlc run` exported, loaded by peft (gen_adapter_check.py), gives the same loss;
// (h) train.recompute = true (full, LoRA, LoRA with dropout; and under precision = bf16: full,
//     LoRA, the Qwen2 biased ones): the same loss and gradients, bit for bit, as without, with a
//     smaller peak of intermediates; the cheap pass's chains (recompute.h) the same way against
//     TRLC_RECOMPUTE_CHAINS=0 (fp32 and bf16: full, LoRA with dropout 0.1, Qwen2 LoRA in bf16),
//     and rope's copies (TRLC_RECOMPUTE_ROPE=1 vs 0: LoRA with dropout 0.1, fp32 and bf16);
// usage: test_run DIR (tests/run: the specs and fixtures/)
#include "check.h"
#include "load.h"
#include "memplan_spec.h"
#include "safetensors.h"
#include "test.h"
#include "trainer.h"
#include <stdlib.h>
#include <string.h>

static const char *dir;
static StFile *fx;

typedef struct Opened {
    Arena a;
    LoadedSpec spec;
    CheckedSpec cs;
    Trainer *t;
} Opened;

// recompute < 0: as the spec says; else train.recompute forced on (1) or off (0). dropout >= 0:
// the policy's LoRA dropout instead of the spec's.
static const char *force_precision;   // when set: train.precision instead of the spec's

static Trainer *open_spec_with(Diag *d, Opened *o, const char *name, int recompute, double dropout) {
    memset(o, 0, sizeof *o);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (load_spec(d, &o->a, path, &o->spec) || check_spec(d, &o->a, &o->spec, &o->cs)) return NULL;
    if (force_precision) o->cs.train.precision = force_precision;
    if (recompute >= 0) o->cs.train.recompute = recompute;
    if (dropout >= 0 && o->cs.policy >= 0) o->cs.models[o->cs.policy].lora_dropout = dropout;
    int st;
    TrainerOptions to = {.eval_logits = true};   // tests compare the evaluation's logits
    o->t = tr_new(d, &o->a, &o->spec, &o->cs, &to, &st);
    return o->t;
}

static Trainer *open_spec(Diag *d, Opened *o, const char *name) { return open_spec_with(d, o, name, -1, -1); }

static void close_spec(Opened *o) {
    tr_free(o->t);
    arena_free(&o->a);
}

static float *fx_f32(const char *name, int64_t *numel) {
    const StTensor *t = st_find(fx, name);
    if (!t) return NULL;
    float *v = malloc((size_t)t->numel * sizeof *v);
    if (v && st_to_f32(NULL, t, v)) {
        free(v);
        return NULL;
    }
    if (numel) *numel = t->numel;
    return v;
}

static int32_t *fx_i32(const char *name, int *B, int *T) {
    const StTensor *t = st_find(fx, name);
    if (!t || t->dtype != ST_I32 || t->ndim != 2) return NULL;
    int32_t *v = malloc(t->nbytes);
    memcpy(v, t->data, t->nbytes);
    *B = (int)t->shape[0];
    *T = (int)t->shape[1];
    return v;
}

static double fx_scalar(const char *name, int i) {
    int64_t n = 0;
    float *v = fx_f32(name, &n);
    double x = v && i < n ? v[i] : NAN;
    free(v);
    return x;
}

static int64_t count_targets(const int32_t *labels, size_t n) {
    int64_t c = 0;
    for (size_t i = 0; i < n; i++) c += labels[i] != -100;
    return c;
}

// max |a - b| / max |b| over a tensor.
static double rel_err(const float *a, const float *b, int64_t n) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        double dd = fabs((double)a[i] - b[i]);
        if (dd > md || isnan(dd)) md = isnan(dd) ? INFINITY : dd;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return mb > 0 ? md / mb : md;
}

// Compares the gradient of every trainable param of t, divided by n, with the fixture's
// "<prefix>.grad.<name>" (normwise relative error) within tol; *worst receives the largest error.
// Returns how many gradients were compared.
static int check_grads(Trainer *t, const char *prefix, double n, double tol, double *worst) {
    int checked = 0;
    *worst = 0;
    for (int i = 0; i < tr_nparams(t); i++) {
        if (!tr_param_trainable(t, i)) continue;
        const char *name = tr_param_name(t, i);
        char key[512];
        snprintf(key, sizeof key, "%s.grad.%s", prefix, name);
        int64_t rn = 0, gn = 0;
        float *ref = fx_f32(key, &rn), *g = tr_grad(t, name, &gn);
        CHECK_MSG(ref && g && rn == gn, "%s gradient of %s", prefix, name);
        if (ref && g && rn == gn) {
            float *sc = malloc((size_t)gn * sizeof *sc + 1);
            for (int64_t k = 0; k < gn; k++) sc[k] = (float)(g[k] / n);
            double e = rel_err(sc, ref, gn);
            if (e > *worst) *worst = e;
            CHECK_MSG(e <= tol, "%s gradient of %s: max rel error %.3g", prefix, name, e);
            free(sc);
            checked++;
        }
        free(ref);
    }
    return checked;
}

static void test_full_step(Diag *d, const int32_t *tok, const int32_t *pos, const int32_t *lab, int B, int T) {
    Opened o;
    Trainer *t = open_spec(d, &o, "full.trl");
    CHECK(t != NULL);
    if (!t) return;
    double ls;
    CHECK(tr_micro_step(t, tok, pos, lab, B, T, 0, &ls) == 0);
    int64_t n = count_targets(lab, (size_t)B * T);
    CHECK_CLOSE(ls / (double)n, fx_scalar("full.loss", 0), 0, 1e-5);
    double worst;
    int checked = check_grads(t, "full", (double)n, 1e-4, &worst);
    printf("full FT: %d gradients vs transformers, max rel error %.2e\n", checked, worst);
    CHECK(checked >= 20);
    close_spec(&o);
}

// Copies the adapter values peft used (fixture <prefix>.<name>) into t; returns how many were set.
static int set_adapter_from(Trainer *t, const char *prefix) {
    int set = 0;
    for (int i = 0; i < tr_nparams(t); i++) {
        if (!tr_param_trainable(t, i)) continue;
        const char *name = tr_param_name(t, i);
        char key[512];
        snprintf(key, sizeof key, "%s.%s", prefix, name);
        int64_t rn = 0, pn = 0;
        float *ref = fx_f32(key, &rn);
        float *p = tr_param(t, name, &pn);
        CHECK_MSG(ref && p && rn == pn, "adapter %s", name);
        if (ref && p && rn == pn) memcpy(p, ref, (size_t)pn * sizeof *p), set++;
        free(ref);
    }
    return set;
}

static int set_adapter(Trainer *t) { return set_adapter_from(t, "lora"); }

static void test_lora_step(Diag *d, const int32_t *tok, const int32_t *pos, const int32_t *lab, int B, int T) {
    Opened o;
    Trainer *t = open_spec(d, &o, "lora.trl");
    CHECK(t != NULL);
    if (!t) return;
    CHECK(set_adapter(t) == 2 * 7 * 2);   // 2 layers x 7 projections x (A, B)
    double ls;
    CHECK(tr_micro_step(t, tok, pos, lab, B, T, 0, &ls) == 0);
    int64_t n = count_targets(lab, (size_t)B * T);
    CHECK_CLOSE(ls / (double)n, fx_scalar("lora.loss", 0), 0, 1e-5);
    for (int i = 0; i < tr_nparams(t); i++)
        if (!tr_param_trainable(t, i)) CHECK(tr_grad(t, tr_param_name(t, i), NULL) == NULL);   // the base is frozen
    double worst;
    CHECK(check_grads(t, "lora", (double)n, 1e-4, &worst) == 28);
    printf("LoRA: 28 adapter gradients vs peft, max rel error %.2e\n", worst);
    close_spec(&o);
}

// bf16 mixed precision (compiler/autocast.h) against PyTorch doing the same independently
// (gen_bf16_fixture.py: every linear on bf16-rounded operands, forward and backward, fp32
// accumulation; attention with flash attention's rounding points): full fine-tuning and LoRA,
// loss and every gradient.
static void test_bf16(Diag *d, const int32_t *tok, const int32_t *pos, const int32_t *lab, int B, int T) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/bf16.safetensors", dir);
    StFile *ref = st_open(d, path), *step = fx;
    CHECK(ref != NULL);
    if (!ref) return;
    int64_t n = count_targets(lab, (size_t)B * T);
    for (int lora = 0; lora < 2; lora++) {
        Opened o;
        force_precision = "bf16";
        Trainer *t = open_spec(d, &o, lora ? "lora.trl" : "full.trl");
        force_precision = NULL;
        CHECK(t != NULL);
        if (!t) continue;
        if (lora) CHECK(set_adapter(t) == 2 * 7 * 2);
        double ls;
        CHECK(tr_micro_step(t, tok, pos, lab, B, T, 0, &ls) == 0);
        fx = ref;   // the references now
        const char *what = lora ? "lora" : "full";
        char key[512];
        snprintf(key, sizeof key, "%s.loss", what);
        double want = fx_scalar(key, 0), fp32 = 0;
        CHECK_CLOSE(ls / (double)n, want, 0, 2e-5);
        double worst;
        // full fine-tuning: 6e-3. Flash attention's bf16 rounding of P, dO and dS makes the full
        // model's gradients sensitive to fp32 summation order: the same PyTorch reference with its
        // products in float64 differs from itself in float32 by 2.9e-3 (trlc: 2.9e-3); LoRA's
        // gradients (the base frozen) agree to ~3e-6.
        int checked = check_grads(t, what, (double)n, lora ? 5e-4 : 6e-3, &worst);
        fx = step;
        fp32 = fx_scalar(lora ? "lora.loss" : "full.loss", 0);
        printf("bf16 %s: loss %.7f (PyTorch %.7f; fp32 %.7f), %d gradients, max rel error %.2e\n", what, ls / (double)n,
               want, fp32, checked, worst);
        CHECK(checked >= (lora ? 28 : 20));
        close_spec(&o);
    }
    st_close(ref);
}

// bf16 mixed precision on biased linear layers (the tiny Qwen2's q, k, v; autocast.h: x Wᵀ +
// bf16(b) rounded once, LoRA's sum over that base rounded again) against gen_bf16_fixture.py's
// PyTorch on its own batch (vocabulary 256): full fine-tuning (the biases' gradients too) and LoRA.
static void test_bf16_qwen2(Diag *d) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/bf16.safetensors", dir);
    StFile *ref = st_open(d, path), *step = fx;
    CHECK(ref != NULL);
    if (!ref) return;
    fx = ref;
    int B, T, b2, t2;
    int32_t *tok = fx_i32("qwen2.batch.tokens", &B, &T), *pos = fx_i32("qwen2.batch.pos", &b2, &t2),
            *lab = fx_i32("qwen2.batch.labels", &b2, &t2);
    CHECK(tok && pos && lab);
    for (int lora = 0; tok && pos && lab && lora < 2; lora++) {
        Opened o;
        force_precision = "bf16";
        Trainer *t = open_spec(d, &o, lora ? "qwen2-lora.trl" : "qwen2-full.trl");
        force_precision = NULL;
        CHECK(t != NULL);
        if (!t) continue;
        if (lora) CHECK(set_adapter_from(t, "qwen2.lora") == 2 * 7 * 2);
        double ls;
        int64_t n = count_targets(lab, (size_t)B * T);
        CHECK(tr_micro_step(t, tok, pos, lab, B, T, 0, &ls) == 0);
        const char *what = lora ? "qwen2.lora" : "qwen2.full";
        char key[512];
        snprintf(key, sizeof key, "%s.loss", what);
        double want = fx_scalar(key, 0), worst;
        CHECK_CLOSE(ls / (double)n, want, 0, 2e-5);
        // within ~5e-7 here; the bounds leave room for another BLAS's summation order (flash
        // attention's rounding points make the full model's gradients sensitive to it, test_bf16)
        // and still fail the old rule (the bias added after the rounding: full 8.0e-3, LoRA 0.28)
        int checked = check_grads(t, what, (double)n, lora ? 5e-4 : 1e-3, &worst);
        printf("bf16 %s (biased q, k, v): loss %.7f (PyTorch %.7f), %d gradients, max rel error %.2e\n", what,
               ls / (double)n, want, checked, worst);
        CHECK(checked >= (lora ? 28 : 27));   // full: 2 layers x 12 (q, k, v biases among them) + 3
        close_spec(&o);
    }
    free(tok);
    free(pos);
    free(lab);
    fx = step;
    st_close(ref);
}

// (b) a few optimizer updates: full FT (full.trl) or LoRA from peft's adapter values (lora.trl,
// with its warmup + cosine schedule), losses vs torch.
static void test_adamw(Diag *d, const char *spec, const char *key, bool lora) {
    int B, T, b2, t2;
    int32_t *tok = fx_i32("adamw.batch.tokens", &B, &T), *pos = fx_i32("adamw.batch.pos", &b2, &t2),
            *lab = fx_i32("adamw.batch.labels", &b2, &t2);
    CHECK(tok && pos && lab && B == 4);
    Opened o;
    Trainer *t = tok && pos && lab ? open_spec(d, &o, spec) : NULL;
    CHECK(t != NULL);
    if (t) {
        if (lora) CHECK(set_adapter(t) == 28);
        double worst = 0;
        for (int step = 0; step < 4; step++) {
            size_t off = (size_t)(step % 2 ? 2 : 0) * (size_t)T;
            double ls, gn, lr;
            CHECK(tr_micro_step(t, tok + off, pos + off, lab + off, 2, T, (uint64_t)step, &ls) == 0);
            int64_t n = count_targets(lab + off, 2 * (size_t)T);
            double ref = fx_scalar(key, step), got = ls / (double)n;
            CHECK_CLOSE(got, ref, 0, 1e-4);
            if (fabs(got - ref) / fabs(ref) > worst) worst = fabs(got - ref) / fabs(ref);
            if (step < 3) CHECK(tr_apply(t, n, &gn, &lr) == 0 && (lora || lr == 1e-3));
        }
        printf("%s: 3 AdamW updates, losses vs torch max rel error %.2e\n", spec, worst);
        close_spec(&o);
    }
    free(tok);
    free(pos);
    free(lab);
}

// all_linear on a tied model: the 14 projections (= peft's all-linear), not the output layer
// that reuses the embedding table; and the step equals the explicit seven-name list's.
static void test_all_linear(Diag *d, const int32_t *tok, const int32_t *pos, const int32_t *lab, int B, int T) {
    Opened o;
    Trainer *t = open_spec(d, &o, "lora-all.trl");
    CHECK(t != NULL);
    if (!t) return;
    int trainable = 0;
    for (int i = 0; i < tr_nparams(t); i++) trainable += tr_param_trainable(t, i);
    CHECK_MSG(trainable == 28, "%d trainable tensors", trainable);
    CHECK(tr_param(t, "model.embed_tokens.lora_A.weight", NULL) == NULL);
    CHECK(set_adapter(t) == 28);
    double ls;
    CHECK(tr_micro_step(t, tok, pos, lab, B, T, 0, &ls) == 0);
    CHECK_CLOSE(ls / (double)count_targets(lab, (size_t)B * T), fx_scalar("lora.loss", 0), 0, 1e-5);
    close_spec(&o);
}

static void test_rslora(Diag *d, const int32_t *tok, const int32_t *pos, const int32_t *lab, int B, int T) {
    Opened o;
    Trainer *t = open_spec(d, &o, "lora-rs.trl");
    CHECK(t != NULL);
    if (!t) return;
    CHECK(set_adapter(t) == 28);
    double ls;
    CHECK(tr_eval_batch(t, tok, pos, lab, B, T, &ls) == 0);
    CHECK_CLOSE(ls / (double)count_targets(lab, (size_t)B * T), fx_scalar("rslora.loss", 0), 0, 1e-5);
    close_spec(&o);
}

// freeze = layers[0:1]: layer 0 gets no gradient and does not move; the rest matches full FT.
static void test_freeze(Diag *d, const int32_t *tok, const int32_t *pos, const int32_t *lab, int B, int T) {
    Opened o;
    Trainer *t = open_spec(d, &o, "freeze.trl");
    CHECK(t != NULL);
    if (!t) return;
    double ls, gn, lr;
    CHECK(tr_micro_step(t, tok, pos, lab, B, T, 0, &ls) == 0);
    int64_t n = count_targets(lab, (size_t)B * T);
    int frozen = 0, trained = 0;
    int64_t qn = 0;
    float *q0 = tr_param(t, "model.layers.0.self_attn.q_proj.weight", &qn);
    CHECK(q0 && qn == 32 * 32);
    float *before = malloc((size_t)qn * sizeof *before + 1);
    if (q0) memcpy(before, q0, (size_t)qn * sizeof *before);
    for (int i = 0; i < tr_nparams(t); i++) {
        const char *name = tr_param_name(t, i);
        bool l0 = !strncmp(name, "model.layers.0.", 15);
        CHECK_MSG(tr_param_trainable(t, i) == !l0, "%s", name);
        if (l0) {
            frozen++;
            CHECK(tr_grad(t, name, NULL) == NULL);
            continue;
        }
        trained++;
        char key[512];
        snprintf(key, sizeof key, "full.grad.%s", name);
        int64_t rn = 0, gn_ = 0;
        float *ref = fx_f32(key, &rn), *g = tr_grad(t, name, &gn_);
        CHECK_MSG(ref && g && rn == gn_, "gradient of %s", name);
        if (ref && g && rn == gn_) {
            float *s = malloc((size_t)gn_ * sizeof *s);
            for (int64_t k = 0; k < gn_; k++) s[k] = g[k] / (float)n;
            CHECK_MSG(rel_err(s, ref, gn_) <= 1e-4, "frozen run: gradient of %s", name);
            free(s);
        }
        free(ref);
    }
    CHECK(frozen == 11 && trained == 13);
    CHECK(tr_apply(t, n, &gn, &lr) == 0);
    CHECK(q0 && memcmp(before, q0, (size_t)qn * sizeof *before) == 0);
    free(before);
    close_spec(&o);
}

// (f) an adapter exported by `trlc run` (fixtures/trlc-adapter) loaded into the trainer gives
// the loss peft computes with PeftModel.from_pretrained on the same adapter directory.
static void test_exported_adapter(Diag *d, const int32_t *tok, const int32_t *pos, const int32_t *lab, int B, int T) {
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/trlc-adapter/adapter_model.safetensors", dir);
    StFile *ad = st_open(d, path);
    snprintf(path, sizeof path, "%s/fixtures/trlc_adapter.safetensors", dir);
    StFile *ref = st_open(d, path);
    Opened o;
    Trainer *t = ad && ref ? open_spec(d, &o, "lora.trl") : NULL;
    CHECK(t != NULL);
    if (t) {
        int set = 0;
        for (size_t i = 0; i < st_count(ad); i++) {
            const StTensor *x = st_tensor(ad, i);
            const char *pre = "base_model.model.";
            CHECK(!strncmp(x->name, pre, strlen(pre)));
            int64_t n = 0;
            float *p = tr_param(t, x->name + strlen(pre), &n);
            CHECK_MSG(p && n == x->numel, "%s", x->name);
            if (p && n == x->numel && st_to_f32(d, x, p) == 0) set++;
        }
        CHECK(set == 28);
        double ls, want = NAN;
        const StTensor *l = st_find(ref, "loss");
        float lf;
        if (l && l->numel == 1 && st_to_f32(d, l, &lf) == 0) want = lf;
        CHECK(tr_eval_batch(t, tok, pos, lab, B, T, &ls) == 0);
        CHECK_CLOSE(ls / (double)count_targets(lab, (size_t)B * T), want, 0, 1e-5);
        printf("exported adapter: loss %.6f, peft %.6f\n", ls / (double)count_targets(lab, (size_t)B * T), want);
        close_spec(&o);
    }
    st_close(ad);
    st_close(ref);
}

// dpo (reference = the policy without adapters) and kd (teacher = the base model): one step's
// loss and adapter gradients vs peft + TRL's formulas.
static void test_aux_objective(Diag *d, const char *spec, const char *prefix, const char *batch, bool pairs) {
    int B, T, b2, t2;
    char k1[64], k2[64], k3[64];
    snprintf(k1, sizeof k1, "%s.tokens", batch);
    snprintf(k2, sizeof k2, "%s.pos", batch);
    snprintf(k3, sizeof k3, "%s.labels", batch);
    int32_t *tok = fx_i32(k1, &B, &T), *pos = fx_i32(k2, &b2, &t2), *lab = fx_i32(k3, &b2, &t2);
    Opened o;
    Trainer *t = tok && pos && lab ? open_spec(d, &o, spec) : NULL;
    CHECK(t != NULL);
    if (t) {
        CHECK(tr_loss_per_pair(t) == pairs);
        CHECK(set_adapter(t) == 28);
        double ls;
        CHECK(tr_micro_step(t, tok, pos, lab, B, T, 0, &ls) == 0);
        double n = pairs ? B / 2 : (double)count_targets(lab, (size_t)B * T);
        char key[512];
        snprintf(key, sizeof key, "%s.loss", prefix);
        double want = fx_scalar(key, 0);
        CHECK_CLOSE(ls / n, want, 1e-7, 1e-5);
        double worst;
        int checked = check_grads(t, prefix, n, 1e-4, &worst);
        printf("%s: loss %.6f vs %.6f, %d adapter gradients, max rel error %.2e\n", prefix, ls / n, want, checked,
               worst);
        close_spec(&o);
    }
    free(tok);
    free(pos);
    free(lab);
}

// QLoRA: lora_quantize_nf4 gives bitsandbytes' codes and absmax byte for byte, and one step with
// NF4 base weights gives peft's loss and adapter gradients on the bitsandbytes-dequantized weights.
static void test_qlora(Diag *d, const int32_t *tok, const int32_t *pos, const int32_t *lab, int B, int T) {
    const StTensor *pk = st_find(fx, "qlora.q_proj0.packed"), *am = st_find(fx, "qlora.q_proj0.absmax");
    Opened o;
    Trainer *t = open_spec(d, &o, "qlora.trl");
    CHECK(t != NULL && pk && am);
    if (!t || !pk || !am) {
        if (t) close_spec(&o);
        return;
    }
    // the codes the trainer stored for layer 0's q_proj vs bitsandbytes'
    int64_t n = 0, na = 0;
    const uint8_t *codes = (const uint8_t *)tr_param(t, "model.layers.0.self_attn.q_proj.weight:nf4", &n);
    const float *absmax = tr_param(t, "model.layers.0.self_attn.q_proj.weight:absmax", &na);
    CHECK(codes && absmax && n == pk->numel && na == am->numel);
    if (codes && absmax && n == pk->numel && na == am->numel) {
        CHECK(memcmp(codes, pk->data, (size_t)n) == 0);
        float *ref = malloc((size_t)na * sizeof *ref);
        if (st_to_f32(d, am, ref) == 0) CHECK(memcmp(ref, absmax, (size_t)na * sizeof *ref) == 0);
        free(ref);
    }
    CHECK(tr_param(t, "model.layers.0.self_attn.q_proj.weight", NULL) == NULL);   // no fp32 copy kept
    CHECK(set_adapter(t) == 28);
    double ls;
    CHECK(tr_micro_step(t, tok, pos, lab, B, T, 0, &ls) == 0);
    double nt = (double)count_targets(lab, (size_t)B * T), want = fx_scalar("qlora.loss", 0);
    CHECK_CLOSE(ls / nt, want, 0, 1e-5);
    double worst;
    CHECK(check_grads(t, "qlora", nt, 1e-4, &worst) == 28);
    printf("qlora: NF4 codes = bitsandbytes'; loss %.6f vs %.6f; adapter gradients max rel error %.2e\n", ls / nt, want,
           worst);
    close_spec(&o);
}

// (c) LoRA at init == the base model, bit for bit.
static void test_lora_identity(Diag *d, const int32_t *tok, const int32_t *pos, const int32_t *lab, int B, int T) {
    Opened a, b;
    Trainer *base = open_spec(d, &a, "full.trl"), *lora = open_spec(d, &b, "lora.trl");
    CHECK(base && lora);
    if (base && lora) {
        double l1, l2;
        CHECK(tr_eval_batch(base, tok, pos, lab, B, T, &l1) == 0);
        int64_t n1, n2;
        const float *x1 = tr_eval_logits(base, &n1);
        float *copy = malloc((size_t)n1 * sizeof *copy);
        memcpy(copy, x1, (size_t)n1 * sizeof *copy);
        CHECK(tr_eval_batch(lora, tok, pos, lab, B, T, &l2) == 0);
        const float *x2 = tr_eval_logits(lora, &n2);
        CHECK(n1 == n2 && n1 == (int64_t)B * T * 384);
        int64_t diff = 0;
        for (int64_t i = 0; i < n1 && i < n2; i++) diff += copy[i] != x2[i];
        CHECK_MSG(diff == 0, "%lld logits differ", (long long)diff);
        CHECK(l1 == l2);
        // ... and the A matrices are not zero (PEFT's kaiming-uniform init, within its bound)
        int64_t na;
        float *A = tr_param(lora, "model.layers.0.self_attn.q_proj.lora_A.weight", &na);
        double bound = 1 / sqrt(32.0), mx = 0;
        for (int64_t i = 0; A && i < na; i++) mx = fmax(mx, fabs(A[i]));
        CHECK(A && na == 4 * 32 && mx > 0.5 * bound && mx <= bound);
        free(copy);
    }
    if (base) close_spec(&a);
    if (lora) close_spec(&b);
}

// (d) accumulation: micro-batches (rows 0-1, rows 2-3) vs one batch (rows 0-3).
static void test_accum(Diag *d) {
    int B, T, b2, t2;
    int32_t *tok = fx_i32("adamw.batch.tokens", &B, &T), *pos = fx_i32("adamw.batch.pos", &b2, &t2),
            *lab = fx_i32("adamw.batch.labels", &b2, &t2);
    Opened a, b;
    Trainer *x = tok ? open_spec(d, &a, "lora.trl") : NULL, *y = tok ? open_spec(d, &b, "lora.trl") : NULL;
    CHECK(x && y && B == 4);
    if (x && y) {
        size_t h = 2 * (size_t)T;
        int64_t n0 = count_targets(lab, h), n1 = count_targets(lab + h, h);
        CHECK(n0 != n1);   // uneven: a mean of micro-batch means would differ
        double l0, l1, l, gx, gy, lr;
        CHECK(tr_micro_step(x, tok, pos, lab, 2, T, 0, &l0) == 0);
        CHECK(tr_micro_step(x, tok + h, pos + h, lab + h, 2, T, 1, &l1) == 0);
        CHECK(tr_micro_step(y, tok, pos, lab, 4, T, 0, &l) == 0);
        CHECK_CLOSE(l0 + l1, l, 0, 1e-5);
        // the summed gradients agree (the normalisation by n0 + n1 is then the same division)
        double worst = 0;
        for (int i = 0; i < tr_nparams(x); i++) {
            if (!tr_param_trainable(x, i)) continue;
            int64_t n;
            const char *name = tr_param_name(x, i);
            float *gx_ = tr_grad(x, name, &n), *gy_ = tr_grad(y, name, NULL);
            double e = rel_err(gx_, gy_, n);
            if (e > worst) worst = e;
        }
        CHECK_MSG(worst <= 1e-5, "accumulated vs one batch: gradients differ by %.3g (rel)", worst);
        CHECK(tr_apply(x, n0 + n1, &gx, &lr) == 0);
        CHECK(tr_apply(y, n0 + n1, &gy, &lr) == 0);
        CHECK_CLOSE(gx, gy, 0, 1e-5);
        // a mean of the micro-batch means (the transformers bug) would weight the rows differently
        double naive = 0.5 * (l0 / (double)n0 + l1 / (double)n1), right = (l0 + l1) / (double)(n0 + n1);
        CHECK(fabs(naive - right) > 1e-4);
        double pw = 0;
        for (int i = 0; i < tr_nparams(x); i++) {
            if (!tr_param_trainable(x, i)) continue;
            int64_t n;
            const char *name = tr_param_name(x, i);
            float *px = tr_param(x, name, &n), *py = tr_param(y, name, NULL);
            double e = rel_err(px, py, n);
            if (e > pw) pw = e;
        }
        CHECK(pw <= 1e-5);
        printf("grad accumulation 2x2 vs 4 (%lld + %lld targets): gradients differ by %.2e, params by %.2e (rel)\n",
               (long long)n0, (long long)n1, worst, pw);
    }
    if (x) close_spec(&a);
    if (y) close_spec(&b);
    free(tok);
    free(pos);
    free(lab);
}

// (h) one micro-step with and without train.recompute: identical loss and gradients (the
// recomputed values come from the same kernels on the same inputs), lower peak memory.
// A batch of 8 rows of 96 tokens below vocab (activations outweigh the gradients, so the peak
// can fall). Under precision = bf16 the recomputed linear outputs must be rounded as the
// forward's are (autocast.h: a recomputed node follows the forward's rules), else the backward
// reads f32 values the forward never had and the gradients differ.
// (h2) the cheap pass's chains (recompute.h: dropout(rmsnorm(x)), dropout(silu(gate) * up), the
// norm's output under full fine-tuning ...) against the pass's first version
// (TRLC_RECOMPUTE_CHAINS=0): one micro-step gives the same loss and bit-identical gradients, with
// a peak of intermediates no higher (lower where LoRA's dropout outputs were kept); the same with
// rope recomputed too (TRLC_RECOMPUTE_ROPE=1 vs 0, chains on in both).
typedef struct RecomputeCase {
    const char *spec;
    double dropout;   // the policy's LoRA dropout, or -1: the spec's
    uint32_t vocab;   // the batch's tokens are below it
    bool bf16;        // under precision = bf16
    bool chains;      // (h2): TRLC_RECOMPUTE_CHAINS=0 vs 1 (train.recompute off); else (h): recompute off vs on
    bool rope;        // (h2) with chains on in both: TRLC_RECOMPUTE_ROPE=0 vs 1 instead
} RecomputeCase;

static const RecomputeCase recompute_cases[] = {
    {"full.trl", -1, 350, false, false, false},
    {"lora.trl", -1, 350, false, false, false},
    {"lora.trl", 0.1, 350, false, false, false},
    {"full.trl", -1, 350, false, true, false},
    {"lora.trl", 0.1, 350, false, true, false},
    {"full.trl", -1, 350, true, true, false},
    {"lora.trl", 0.1, 350, true, true, false},
    {"qwen2-lora.trl", 0.1, 256, true, true, false},
    {"full.trl", -1, 350, true, false, false},
    {"lora.trl", 0.1, 350, true, false, false},
    {"qwen2-full.trl", -1, 256, true, false, false},
    {"qwen2-lora.trl", -1, 256, true, false, false},
    {"lora.trl", 0.1, 350, false, true, true},
    {"lora.trl", 0.1, 350, true, true, true},
};

static void test_recompute(Diag *d, const RecomputeCase *c) {
    enum { B = 8, T = 96 };
    static int32_t tok[B * T], pos[B * T], lab[B * T];
    const char *spec = c->spec;
    uint32_t x = c->chains ? 54321 : 12345;
    for (int i = 0; i < B * T; i++) {
        x = x * 1664525u + 1013904223u;
        tok[i] = (int32_t)((x >> 8) % c->vocab);
        pos[i] = i % T;
    }
    for (int i = 0; i < B * T; i++) lab[i] = i % T == T - 1 ? -100 : tok[i + 1];
    force_precision = c->bf16 ? "bf16" : NULL;
    Opened o[2];
    double loss[2] = {NAN, NAN};
    int64_t peak[2] = {0, 0};
    for (int r = 0; r < 2; r++) {
        if (c->chains) setenv(c->rope ? "TRLC_RECOMPUTE_ROPE" : "TRLC_RECOMPUTE_CHAINS", r ? "1" : "0", 1);
        Trainer *t = open_spec_with(d, &o[r], spec, c->chains ? 0 : r, c->dropout);
        CHECK_MSG(t != NULL, "%s %s=%d", spec, c->chains ? "chains" : "recompute", r);
        if (!t) {
            if (r) close_spec(&o[0]);
            unsetenv("TRLC_RECOMPUTE_CHAINS");
            unsetenv("TRLC_RECOMPUTE_ROPE");
            force_precision = NULL;
            return;
        }
        // (h2) LoRA's B is 0 at initialisation, and with it every lora_A gradient (the only
        // readers of the dropout outputs): small values instead, the same in both
        for (int i = 0; c->chains && i < tr_nparams(t); i++) {
            const char *name = tr_param_name(t, i);
            int64_t np = 0;
            float *w = strstr(name, "lora_B") ? tr_param(t, name, &np) : NULL;
            for (int64_t j = 0; w && j < np; j++) w[j] = 0.01f * (float)((j * 7 + i) % 13 - 6);
        }
        CHECK(tr_micro_step(t, tok, pos, lab, B, T, c->chains ? 5 : 3, &loss[r]) == 0);
        peak[r] = tr_peak_bytes(t);
    }
    unsetenv("TRLC_RECOMPUTE_CHAINS");
    unsetenv("TRLC_RECOMPUTE_ROPE");
    CHECK_MSG(memcmp(&loss[0], &loss[1], sizeof loss[0]) == 0, "%s: loss %.9g vs %.9g", spec, loss[0], loss[1]);
    int same = 0, n = 0;
    for (int i = 0; i < tr_nparams(o[0].t); i++) {
        if (!tr_param_trainable(o[0].t, i)) continue;
        const char *name = tr_param_name(o[0].t, i);
        int64_t n0 = 0, n1 = 0;
        float *g0 = tr_grad(o[0].t, name, &n0), *g1 = tr_grad(o[1].t, name, &n1);
        n++;
        bool eq = g0 && g1 && n0 == n1 && memcmp(g0, g1, (size_t)n0 * sizeof *g0) == 0;
        same += eq;
        CHECK_MSG(eq, "%s: gradient of %s differs with %s", spec, name,
                  c->rope ? "rope recomputed" : c->chains ? "the recomputed chains" : "recompute");
    }
    char lossmsg[48] = "loss equal";
    if (c->chains) snprintf(lossmsg, sizeof lossmsg, "loss %.9g equal", loss[0]);
    printf("  recompute %s%s%s%s: %s, %d/%d gradients bit-identical; peak intermediates %lld -> %lld bytes (%.0f%%)\n",
           c->rope ? "rope " : c->chains ? "chains " : "", spec, force_precision ? " (bf16)" : "", c->dropout > 0 ? " (LoRA dropout 0.1)" : "",
           lossmsg, same, n, (long long)peak[0], (long long)peak[1],
           peak[0] ? 100.0 * (double)peak[1] / (double)peak[0] : 0);
    if (c->chains) {
        CHECK(n > 0 && peak[1] > 0 && peak[1] <= peak[0]);
        if (c->dropout > 0 && !c->rope) CHECK_MSG(peak[1] < peak[0], "%s: the dropout outputs are no longer kept", spec);
    } else {
        CHECK(n > 0 && peak[1] > 0 && peak[1] < peak[0]);
    }
    force_precision = NULL;
    close_spec(&o[0]);
    close_spec(&o[1]);
}

// (i) the training graph computes the head and its loss as linear_ce (linear_ce.h): no
// cross_entropy over a (B, T, vocab) product is left, and the backward has dx, plus dw when the
// head's weight trains (full fine-tuning); every step above ran through it, against the peers.
// (run.step_chunked runs this program again with chunks of 3 rows: dw summed over 7 chunks.)
static void test_linear_ce_graph(const char *spec, int want_bwd_w) {
    Diag d;
    diag_init(&d, stderr);
    Arena a;
    LoadedSpec ls;
    CheckedSpec *cs;
    IrGraph g;
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, spec);
    CHECK_MSG(mp_open_spec_file(&d, &a, path, &ls, &cs, &g) == 0, "%s compiles", spec);
    int count[IR_OP_COUNT] = {0};
    for (int i = 0; i < g.n; i++) count[g.nodes[i].op]++;
    CHECK_MSG(count[IR_LINEAR_CE] == 1 && count[IR_LINEAR_CE_BWD_X] == 1 && count[IR_LINEAR_CE_BWD_W] == want_bwd_w &&
                  count[IR_CROSS_ENTROPY] == 0 && count[IR_CROSS_ENTROPY_BWD] == 0,
              "%s: linear_ce %d, bwd_x %d, bwd_w %d (want %d), cross_entropy %d", spec, count[IR_LINEAR_CE],
              count[IR_LINEAR_CE_BWD_X], count[IR_LINEAR_CE_BWD_W], want_bwd_w, count[IR_CROSS_ENTROPY]);
    printf("%s: the head's loss is linear_ce (backward: dx%s)\n", spec, want_bwd_w ? ", dw" : "");
    ir_graph_free(&g);
    arena_free(&a);
    diag_free(&d);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_run DIR\n");
        return 2;
    }
    dir = argv[1];
    Diag d;
    diag_init(&d, stderr);
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/step.safetensors", dir);
    fx = st_open(&d, path);
    CHECK(fx != NULL);
    if (!fx) return test_done("run.step");
    int B, T, b2, t2;
    int32_t *tok = fx_i32("batch.tokens", &B, &T), *pos = fx_i32("batch.pos", &b2, &t2),
            *lab = fx_i32("batch.labels", &b2, &t2);
    CHECK(tok && pos && lab);
    if (tok && pos && lab) {
        test_full_step(&d, tok, pos, lab, B, T);
        test_lora_step(&d, tok, pos, lab, B, T);
        test_lora_identity(&d, tok, pos, lab, B, T);
        test_rslora(&d, tok, pos, lab, B, T);
        test_all_linear(&d, tok, pos, lab, B, T);
        test_qlora(&d, tok, pos, lab, B, T);
        test_freeze(&d, tok, pos, lab, B, T);
        test_exported_adapter(&d, tok, pos, lab, B, T);
        test_linear_ce_graph("full.trl", 1);
        test_linear_ce_graph("lora.trl", 0);
        for (size_t i = 0; i < sizeof recompute_cases / sizeof recompute_cases[0]; i++)
            test_recompute(&d, &recompute_cases[i]);
        test_bf16(&d, tok, pos, lab, B, T);
        test_bf16_qwen2(&d);
    }
    test_adamw(&d, "full.trl", "adamw.losses", false);
    test_adamw(&d, "lora.trl", "lora_adamw.losses", true);
    test_accum(&d);
    test_aux_objective(&d, "dpo.trl", "dpo", "dpo", true);
    test_aux_objective(&d, "kd.trl", "kd", "batch", false);
    free(tok);
    free(pos);
    free(lab);
    st_close(fx);
    diag_free(&d);
    return test_done("run.step");
}
