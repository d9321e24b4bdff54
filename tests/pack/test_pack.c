// test_pack.c — packed rows must not attend across sequences (area `pack`). Through the trainer
// API on the tiny Qwen3 (tests/fixtures/tiny-qwen3, spec pack.trl): two examples packed into one
// row with segment ids (tr_micro_step_seq / tr_eval_batch_seq) give the same per-token logits,
// summed loss and every gradient as the same two examples in separate rows; without the segment
// ids (all one sequence) the second example's logits differ (the check can fail).
// usage: test_pack DIR (tests/pack)
#include "check.h"
#include "load.h"
#include "test.h"
#include "trainer.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { L0 = 7, L1 = 5, TP = L0 + L1, TS = L0, V = 384 };

// max |a - b| / max |b|
static double rel_err(const float *a, const float *b, int64_t n) {
    double md = 0, mb = 0;
    for (int64_t i = 0; i < n; i++) {
        double dd = fabs((double)a[i] - b[i]);
        if (dd > md || isnan(dd)) md = isnan(dd) ? INFINITY : dd;
        if (fabs(b[i]) > mb) mb = fabs(b[i]);
    }
    return mb > 0 ? md / mb : md;
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    Diag d;
    diag_init(&d, stderr);
    Arena a = {0};
    LoadedSpec spec;
    CheckedSpec cs;
    char path[1024];
    snprintf(path, sizeof path, "%s/pack.trl", argv[1]);
    int st = 0;
    Trainer *t = NULL;
    TrainerOptions to = {.eval_logits = true};   // the test compares the evaluation's logits
    if (!load_spec(&d, &a, path, &spec) && !check_spec(&d, &a, &spec, &cs)) t = tr_new(&d, &a, &spec, &cs, &to, &st);
    CHECK(t != NULL);
    if (!t) return test_done("pack.trainer");

    // two examples: tokens, next-token labels (the last of each learns nothing)
    int32_t ex[2][L0] = {{5, 17, 200, 33, 91, 4, 250}, {301, 8, 77, 150, 12}};
    int len[2] = {L0, L1};
    // packed: one row of TP tokens, positions restart, seq 0 then 1
    int32_t ptok[TP], ppos[TP], pseq[TP], plab[TP];
    // separate: two rows of TS, right-padded (pad 0, labels -100, seq -1)
    int32_t stok[2 * TS], spos[2 * TS], slab[2 * TS];
    for (int e = 0, o = 0; e < 2; o += len[e], e++)
        for (int i = 0; i < len[e]; i++) {
            ptok[o + i] = ex[e][i];
            ppos[o + i] = i;
            pseq[o + i] = e;
            plab[o + i] = i + 1 < len[e] ? ex[e][i + 1] : -100;
        }
    for (int e = 0; e < 2; e++)
        for (int i = 0; i < TS; i++) {
            stok[e * TS + i] = i < len[e] ? ex[e][i] : 0;
            spos[e * TS + i] = i < len[e] ? i : 0;
            slab[e * TS + i] = i + 1 < len[e] ? ex[e][i + 1] : -100;
        }

    // per-token logits (eval graph)
    double lp = NAN, ls = NAN, lnoseq = NAN;
    int64_t n = 0;
    float *lg_p = malloc((size_t)TP * V * sizeof(float)), *lg_s = malloc((size_t)2 * TS * V * sizeof(float));
    float *lg_n = malloc((size_t)TP * V * sizeof(float));
    CHECK(tr_eval_batch_seq(t, ptok, ppos, pseq, plab, 1, TP, &lp) == 0);
    const float *x = tr_eval_logits(t, &n);
    CHECK(x && n == (int64_t)TP * V);
    if (x) memcpy(lg_p, x, (size_t)TP * V * sizeof(float));
    CHECK(tr_eval_batch_seq(t, stok, spos, NULL, slab, 2, TS, &ls) == 0);
    x = tr_eval_logits(t, &n);
    CHECK(x && n == (int64_t)2 * TS * V);
    if (x) memcpy(lg_s, x, (size_t)2 * TS * V * sizeof(float));
    CHECK(tr_eval_batch(t, ptok, ppos, plab, 1, TP, &lnoseq) == 0);   // seq NULL: one sequence
    x = tr_eval_logits(t, &n);
    if (x) memcpy(lg_n, x, (size_t)TP * V * sizeof(float));
    double e0 = rel_err(lg_p, lg_s, (int64_t)L0 * V);                            // example 0
    double e1 = rel_err(lg_p + (size_t)L0 * V, lg_s + (size_t)TS * V, (int64_t)L1 * V);   // example 1
    double en = rel_err(lg_n + (size_t)L0 * V, lg_s + (size_t)TS * V, (int64_t)L1 * V);
    printf("logits: example 0 rel err %.3g, example 1 %.3g; unmasked example 1 %.3g\n", e0, e1, en);
    CHECK(e0 < 1e-5 && e1 < 1e-5);
    CHECK(en > 1e-2);   // attending across the boundary changes the second example
    printf("eval loss packed %.7g separate %.7g unmasked %.7g\n", lp, ls, lnoseq);
    CHECK(fabs(lp - ls) < 1e-5 * fabs(ls));
    CHECK(fabs(lnoseq - ls) > 1e-4 * fabs(ls));

    // loss and every gradient of a training micro-step
    double sp = NAN, ss = NAN;
    tr_zero_grad(t);
    CHECK(tr_micro_step_seq(t, ptok, ppos, pseq, plab, 1, TP, 0, &sp) == 0);
    int np = tr_nparams(t);
    float **gp = calloc((size_t)np, sizeof *gp);
    for (int i = 0; i < np; i++) {
        int64_t m = 0;
        const float *g = tr_param_trainable(t, i) ? tr_grad(t, tr_param_name(t, i), &m) : NULL;
        if (!g) continue;
        gp[i] = malloc((size_t)m * sizeof(float));
        memcpy(gp[i], g, (size_t)m * sizeof(float));
    }
    tr_zero_grad(t);
    CHECK(tr_micro_step(t, stok, spos, slab, 2, TS, 0, &ss) == 0);
    CHECK(fabs(sp - ss) < 1e-5 * fabs(ss));
    double worst = 0;
    int ngrads = 0;
    for (int i = 0; i < np; i++) {
        int64_t m = 0;
        const float *g = gp[i] ? tr_grad(t, tr_param_name(t, i), &m) : NULL;
        if (!g) continue;
        double e = rel_err(gp[i], g, m);
        if (e > worst || isnan(e)) worst = e;
        ngrads++;
        free(gp[i]);
    }
    printf("train loss packed %.7g separate %.7g; %d gradients, worst rel err %.3g\n", sp, ss, ngrads, worst);
    CHECK(ngrads > 10 && worst < 1e-4);
    free(gp);
    free(lg_p);
    free(lg_s);
    free(lg_n);
    tr_free(t);
    arena_free(&a);
    diag_free(&d);
    return test_done("pack.trainer");
}
