// test_orpo.c — the `orpo` objective in the trainer against PyTorch + TRL's ORPO formula
// (fixtures/orpo.safetensors from gen_orpo_fixture.py; the model's final norm scaled so that the
// chosen responses have mean log-probs near -0.1, where log1p(-exp(x)) matters):
// (a) full fine-tuning (orpo-full.trl): one micro-step's loss (/ pairs) and every gradient;
// (b) LoRA (orpo.trl, the fixture's adapter values): loss and the 28 adapter gradients;
// (c) gradient accumulation: the pairs as two micro-batches of one pair give transformers'
//     Trainer's mean of the two micro-batch losses, and its gradient;
// (a), (b) also: TRL's logged metrics (rewards/chosen ... log_odds_chosen, tr_objective_metrics);
// (d) the batch's bookkeeping: orpo divides by pairs, and a batch of an odd row count is refused;
// (e) log1mexp (ORPO's log1p(-exp(x))) alone through log1mexp.trl: its sum and derivative at 260
//     probes from -1e-7 to -31.6 vs float64 (where fp32 1 - exp(x) would lose up to 19% near 0),
//     and x = 0 or a rounded-up +1e-7 give a finite loss and gradient (held at -1e-30).
// All fp32 against a float64 reference: max relative error <= 1e-4 (printed).
// usage: test_orpo DIR (tests/run: the specs and fixtures/)
#include "check.h"
#include "load.h"
#include "safetensors.h"
#include "test.h"
#include "trainer.h"
#include <math.h>
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

static Trainer *open_spec(Diag *d, Opened *o, const char *name) {
    memset(o, 0, sizeof *o);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (load_spec(d, &o->a, path, &o->spec) || check_spec(d, &o->a, &o->spec, &o->cs)) return NULL;
    int st;
    TrainerOptions to = {0};
    o->t = tr_new(d, &o->a, &o->spec, &o->cs, &to, &st);
    return o->t;
}

static void close_spec(Opened *o) {
    tr_free(o->t);
    arena_free(&o->a);
}

static float *fx_f32(const char *name, int64_t *numel) {
    const StTensor *t = st_find(fx, name);
    if (!t) return NULL;
    float *v = malloc((size_t)t->numel * sizeof *v + 1);
    if (v && st_to_f32(NULL, t, v)) {
        free(v);
        return NULL;
    }
    if (numel) *numel = t->numel;
    return v;
}

// A reference value stored as F64 (1,), read at full precision.
static double fx_scalar(const char *name) {
    const StTensor *t = st_find(fx, name);
    double x = NAN;
    if (t && t->dtype == ST_F64 && t->numel >= 1 && t->nbytes >= sizeof x) memcpy(&x, t->data, sizeof x);
    return x;
}

// max |a - b| / max |b| over a tensor (a divided by n first).
static double rel_err(const float *a, double n, const float *b, int64_t len) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < len; i++) {
        double dd = fabs((double)a[i] / n - b[i]);
        if (dd > md || isnan(dd)) md = isnan(dd) ? INFINITY : dd;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return mb > 0 ? md / mb : md;
}

// Every trainable parameter's accumulated gradient / n vs "<prefix>.grad.<name>"; returns how
// many were compared, the largest error in *worst.
static int check_grads(Trainer *t, const char *prefix, double n, double *worst) {
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
            double e = rel_err(g, n, ref, gn);
            if (e > *worst || isnan(e)) *worst = e;
            CHECK_MSG(e <= 1e-4, "%s gradient of %s: max rel error %.3g", prefix, name, e);
            checked++;
        }
        free(ref);
    }
    return checked;
}

// Reads an F64 fixture tensor of n values into out.
static bool fx_f64(const char *name, double *out, int64_t n) {
    const StTensor *t = st_find(fx, name);
    if (!t || t->dtype != ST_F64 || t->numel != n || t->nbytes != (size_t)n * sizeof *out) return false;
    memcpy(out, t->data, t->nbytes);
    return true;
}

// The fixture's scaled final norm, and for LoRA its adapter values, into t.
static int set_weights(Trainer *t, bool lora) {
    int set = 0;
    int64_t n = 0, rn = 0;
    float *p = tr_param(t, "model.norm.weight", &n), *ref = fx_f32("norm", &rn);
    CHECK(p && ref && n == rn);
    if (p && ref && n == rn) memcpy(p, ref, (size_t)n * sizeof *p), set++;
    free(ref);
    for (int i = 0; lora && i < tr_nparams(t); i++) {
        if (!tr_param_trainable(t, i)) continue;
        const char *name = tr_param_name(t, i);
        char key[512];
        snprintf(key, sizeof key, "lora.%s", name);
        float *v = fx_f32(key, &rn), *q = tr_param(t, name, &n);
        CHECK_MSG(v && q && n == rn, "adapter %s", name);
        if (v && q && n == rn) memcpy(q, v, (size_t)n * sizeof *q), set++;
        free(v);
    }
    return set;
}

typedef struct Rows {
    int32_t *tok, *pos, *lab;   // (B, T)
    int B, T;
} Rows;

static bool load_rows(Rows *r) {
    const StTensor *a = st_find(fx, "tokens"), *b = st_find(fx, "pos"), *c = st_find(fx, "labels");
    if (!a || !b || !c || a->dtype != ST_I32 || a->ndim != 2 || a->nbytes != b->nbytes || a->nbytes != c->nbytes ||
        b->dtype != ST_I32 || c->dtype != ST_I32)
        return false;
    r->B = (int)a->shape[0], r->T = (int)a->shape[1];
    r->tok = malloc(a->nbytes), r->pos = malloc(a->nbytes), r->lab = malloc(a->nbytes);
    if (!r->tok || !r->pos || !r->lab) return false;
    memcpy(r->tok, a->data, a->nbytes);
    memcpy(r->pos, b->data, a->nbytes);
    memcpy(r->lab, c->data, a->nbytes);
    return true;
}

// (a), (b): one micro-step on both pairs.
static void test_step(Diag *d, const Rows *r, const char *spec, const char *prefix, int want_grads) {
    Opened o;
    Trainer *t = open_spec(d, &o, spec);
    CHECK(t != NULL);
    if (!t) return;
    bool lora = !strcmp(prefix, "lora");
    CHECK(set_weights(t, lora) == 1 + (lora ? 28 : 0));
    CHECK(tr_loss_per_pair(t));
    double ls;
    CHECK(tr_micro_step(t, r->tok, r->pos, r->lab, r->B, r->T, 0, &ls) == 0);
    double pairs = r->B / 2, want = fx_scalar(!strcmp(prefix, "lora") ? "lora.loss" : "full.loss");
    CHECK_CLOSE(ls / pairs, want, 0, 1e-5);
    double worst;
    int checked = check_grads(t, prefix, pairs, &worst);
    CHECK_MSG(checked == want_grads, "%s: %d gradients compared, want %d", prefix, checked, want_grads);
    printf("orpo %s: loss %.8f vs TRL %.8f (rel %.1e), %d gradients, max rel error %.2e\n", prefix, ls / pairs, want,
           fabs(ls / pairs - want) / fabs(want), checked, worst);
    // TRL's logged metrics of the batch
    const char *names[9];
    double mv[9], mw[9];
    char key[64];
    snprintf(key, sizeof key, "%s.metrics", prefix);
    CHECK(tr_objective_metrics(t, false, names, mv, 9) == 9 && fx_f64(key, mw, 9));
    double mworst = 0;
    for (int k = 0; k < 9; k++) {
        double e = fabs(mv[k] - mw[k]) / fmax(fabs(mw[k]), 1e-3);
        if (e > mworst) mworst = e;
        CHECK_MSG(e <= 1e-5, "%s: %s %.9g, TRL %.9g", prefix, names[k], mv[k], mw[k]);
    }
    CHECK(tr_objective_metrics(t, false, names, mv, 9) == 0);   // reset: nothing since
    printf("orpo %s: TRL's 9 metrics (rewards/chosen %.6f, nll_loss %.6f, log_odds_ratio %.6f ...), max rel error %.1e\n",
           prefix, mw[0], mw[6], mw[7], mworst);
    // the evaluation graph gives the same loss without the backward
    double le;
    CHECK(tr_eval_batch(t, r->tok, r->pos, r->lab, r->B, r->T, &le) == 0);
    CHECK_CLOSE(le / pairs, want, 0, 1e-5);
    // ... and the same metrics, on their own (evaluation) sums
    double me[9];
    CHECK(tr_objective_metrics(t, true, names, me, 9) == 9);
    for (int k = 0; k < 9; k++) CHECK_MSG(fabs(me[k] - mw[k]) <= 1e-5 * fmax(fabs(mw[k]), 1e-3), "eval %s", names[k]);
    CHECK(tr_objective_metrics(t, false, names, me, 9) == 0);   // the evaluation added nothing to training's
    close_spec(&o);
}

// (c): pair 0 then pair 1 as micro-batches of 2 rows (chosen, rejected), summed and divided by
// the 2 pairs: transformers' Trainer's mean of the micro-batch losses.
static void test_accum(Diag *d, const Rows *r) {
    Opened o;
    Trainer *t = open_spec(d, &o, "orpo.trl");
    CHECK(t != NULL);
    if (!t) return;
    CHECK(set_weights(t, true) == 29);
    int T = r->T, np = r->B / 2;
    int32_t *tk = malloc(2 * (size_t)T * sizeof *tk), *ps = malloc(2 * (size_t)T * sizeof *ps),
            *lb = malloc(2 * (size_t)T * sizeof *lb);
    double total = 0;
    for (int p = 0; tk && ps && lb && p < np; p++) {
        for (int side = 0; side < 2; side++) {   // row p (chosen) and row np + p (rejected)
            size_t src = (size_t)(side * np + p) * T, dst = (size_t)side * T;
            memcpy(tk + dst, r->tok + src, (size_t)T * sizeof *tk);
            memcpy(ps + dst, r->pos + src, (size_t)T * sizeof *ps);
            memcpy(lb + dst, r->lab + src, (size_t)T * sizeof *lb);
        }
        double ls;
        CHECK(tr_micro_step(t, tk, ps, lb, 2, T, (uint64_t)p, &ls) == 0);
        total += ls;
    }
    double want = fx_scalar("accum.loss"), worst;
    CHECK_CLOSE(total / np, want, 0, 1e-5);
    int checked = check_grads(t, "accum", np, &worst);
    CHECK(checked == 28);
    printf("orpo accumulation (2 micro-batches of 1 pair): loss %.8f vs %.8f, %d gradients, max rel error %.2e\n",
           total / np, want, checked, worst);
    // an odd number of rows is not a batch of pairs (the trainer reports "bad batch shape 1 x 12")
    double ls;
    CHECK(tr_micro_step(t, tk, ps, lb, 1, T, 9, &ls) != 0);
    free(tk);
    free(ps);
    free(lb);
    close_spec(&o);
}

// (e) the probes in row 0 of log1mexp.trl's table, read by token 0: loss = sum log1mexp(x_i).
static void test_log1mexp(Diag *d) {
    enum { N = 260 };
    Opened o;
    Trainer *t = open_spec(d, &o, "log1mexp.trl");
    CHECK(t != NULL);
    if (!t) return;
    int64_t n = 0, xn = 0;
    float *table = tr_param(t, "model.embed_tokens.weight", &n), *x = fx_f32("log1mexp.x", &xn);
    static double y[N], gy[N];
    bool ok = table && n == (int64_t)N * N && x && xn == N && fx_f64("log1mexp.y", y, N) && fx_f64("log1mexp.grad", gy, N);
    CHECK(ok);
    if (ok) {
        memcpy(table, x, N * sizeof *x);   // row 0
        for (int i = 0; i < N; i++) table[N + i] = i % 2 ? 0.0f : 1e-7f;   // row 1: probability 1, or above
        int32_t tok = 0, pos = 0, lab = -100;
        double ls, want = 0;
        CHECK(tr_micro_step(t, &tok, &pos, &lab, 1, 1, 0, &ls) == 0);
        for (int i = 0; i < N; i++) want += y[i];
        CHECK_CLOSE(ls, want, 0, 1e-6);
        int64_t gn = 0;
        const float *g = tr_grad(t, "model.embed_tokens.weight", &gn);
        double worst = 0;
        int bad = 0;
        for (int i = 0; g && gn == (int64_t)N * N && i < N; i++) {
            double e = fabs(g[i] - gy[i]) / fabs(gy[i]);
            if (!(e <= 1e-5)) bad++;
            if (e > worst || isnan(e)) worst = e;
        }
        CHECK(g && gn == (int64_t)N * N);
        CHECK_MSG(bad == 0, "log1mexp: %d of %d derivatives off by more than 1e-5 (worst %.3g)", bad, N, worst);
        printf("log1mexp: sum %.9g vs %.9g (rel %.1e), %d derivatives, max rel error %.2e\n", ls, want,
               fabs(ls - want) / fabs(want), N, worst);
        tr_zero_grad(t);
        tok = 1;
        CHECK(tr_micro_step(t, &tok, &pos, &lab, 1, 1, 1, &ls) == 0);
        CHECK_CLOSE(ls, N * log(1e-30), 0, 1e-5);   // held at -1e-30: no -inf
        g = tr_grad(t, "model.embed_tokens.weight", &gn);
        int finite = 0;
        for (int i = 0; g && gn == (int64_t)N * N && i < N; i++) finite += g[N + i] == 0;
        CHECK_MSG(finite == N, "log1mexp at x >= 0: %d of %d gradients are 0", finite, N);
    }
    free(x);
    close_spec(&o);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_orpo DIR\n");
        return 2;
    }
    dir = argv[1];
    Diag d;
    diag_init(&d, stderr);
    char path[1024];
    snprintf(path, sizeof path, "%s/fixtures/orpo.safetensors", dir);
    fx = st_open(&d, path);
    CHECK(fx != NULL);
    if (!fx) return test_done("run.orpo");
    Rows r = {0};
    CHECK(load_rows(&r));
    if (r.tok && r.pos && r.lab) {
        test_step(&d, &r, "orpo-full.trl", "full", 24);   // 2 layers x 11 + embed + norm
        test_step(&d, &r, "orpo.trl", "lora", 28);
        test_accum(&d, &r);
    }
    test_log1mexp(&d);
    free(r.tok);
    free(r.pos);
    free(r.lab);
    st_close(fx);
    diag_free(&d);
    return test_done("run.orpo");
}
