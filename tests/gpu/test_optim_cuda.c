// test_optim_cuda.c — the trainer's optimizer on the device (runtime/cuda/optim_cuda.c) through the
// Trainer's public calls, against the same trainer on the CPU: the gradient sums tr_grad reads
// back after one micro-step (the run's own gradient buffers) and after three (the device's sum),
// the gradient norm and the update tr_apply makes (clipped), the values tr_param and the state
// tr_optimizer fetch afterwards, tr_zero_grad; for AdamW with LoRA (tests/run/lora.trl) and full
// fine-tuning (full.trl), and SGD with momentum. The device is the CUDA emulator in CI
// (TRLC_CUDA_DRIVER); without a device the test exits 77 (skipped).
// Usage: test_gpu_optim_cuda TESTS_RUN_DIR
#include "check.h"
#include "load.h"
#include "lower.h"
#include "test.h"
#include "trainer.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct Opened {
    Arena a;
    LoadedSpec spec;
    CheckedSpec cs;
    Trainer *t;
} Opened;

static const char *dir;

static Trainer *open_on(Diag *d, Opened *o, const char *name, const char *device, bool sgd) {
    memset(o, 0, sizeof *o);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (load_spec(d, &o->a, path, &o->spec) || check_spec(d, &o->a, &o->spec, &o->cs)) return NULL;
    if (sgd) {
        o->cs.train.optimizer = "sgd";
        o->cs.train.momentum = 0.9;
        o->cs.train.lr = 1e-2;
    }
    TrainerOptions opt = {0};
    opt.device = device;
    int st;
    o->t = tr_new(d, &o->a, &o->spec, &o->cs, &opt, &st);
    return o->t;
}

static void close_spec(Opened *o) {
    tr_free(o->t);
    arena_free(&o->a);
}

// Batch k: B rows of T tokens below V, labels the next token (the last ones ignored), rows padded
// differently per batch so that T varies and the device's buffers move.
typedef struct Batch {
    int B, T;
    int32_t tok[64], pos[64], lab[64];
    int64_t targets;
} Batch;

static void make_batch(Batch *b, int k, int64_t V) {
    b->B = 2, b->T = 7 + 3 * k;
    b->targets = 0;
    for (int r = 0; r < b->B; r++)
        for (int i = 0; i < b->T; i++) {
            int j = r * b->T + i;
            b->tok[j] = (int32_t)((j * 37 + k * 11 + 5) % V);
            b->pos[j] = i;
        }
    for (int r = 0; r < b->B; r++)
        for (int i = 0; i < b->T; i++) {
            int j = r * b->T + i;
            b->lab[j] = i + 1 < b->T && i >= 2 ? b->tok[j + 1] : LOWER_IGNORE_INDEX;
            b->targets += b->lab[j] != LOWER_IGNORE_INDEX;
        }
}

// Largest normwise relative difference of the trainable tensors fetched by get on x (the device)
// and y (the CPU).
static double compare(Trainer *x, Trainer *y, float *(*get)(Trainer *, const char *, int64_t *), int *n) {
    double worst = 0;
    *n = 0;
    for (int i = 0; i < tr_nparams(y); i++) {
        if (!tr_param_trainable(y, i)) continue;
        const char *name = tr_param_name(y, i);
        int64_t nx = 0, ny = 0;
        float *a = get(x, name, &nx), *b = get(y, name, &ny);
        if (!a || !b || nx != ny) {
            CHECK_MSG(false, "%s: no tensor (%lld vs %lld elements)", name, (long long)nx, (long long)ny);
            return INFINITY;
        }
        double dd = 0, bb = 0;
        for (int64_t k = 0; k < nx; k++) dd += ((double)a[k] - b[k]) * ((double)a[k] - b[k]), bb += (double)b[k] * b[k];
        double e = sqrt(dd) / (sqrt(bb) + 1e-30);
        if (!(e <= worst)) worst = e;
        (*n)++;
    }
    return worst;
}

static void check_case(const char *spec, bool sgd) {
    Diag d;
    diag_init(&d, stderr);
    Opened oc, og;
    Trainer *c = open_on(&d, &oc, spec, "cpu", sgd), *g = open_on(&d, &og, spec, "cuda", sgd);
    CHECK_MSG(c && g, "%s: trainers", spec);
    if (!c || !g) {
        if (c) close_spec(&oc);
        if (g) close_spec(&og);
        diag_free(&d);
        return;
    }
    int64_t V = oc.cs.models[oc.cs.policy].cfg.vocab;
    const char *what = sgd ? "sgd" : "adamw";
    for (int step = 0; step < 2; step++) {
        int micro = step == 0 ? 3 : 1;   // three micro-steps: the device sums; one: the run's buffers
        int64_t targets = 0;
        for (int k = 0; k < micro; k++) {
            Batch b;
            make_batch(&b, k + step, V);
            double lc = 0, lg = 0;
            int rc = tr_micro_step(c, b.tok, b.pos, b.lab, b.B, b.T, (uint64_t)(step * 3 + k), &lc);
            rc |= tr_micro_step(g, b.tok, b.pos, b.lab, b.B, b.T, (uint64_t)(step * 3 + k), &lg);
            CHECK_MSG(rc == 0, "%s: micro-step", spec);
            CHECK_CLOSE(lg, lc, 1e-6, 1e-5);
            targets += b.targets;
            int n;
            double e = compare(g, c, tr_grad, &n);
            printf("%s %s: update %d, micro-step %d: %d gradient sums, device vs cpu %.2g normwise\n", spec, what, step + 1,
                   k + 1, n, e);
            CHECK(n > 0 && e < 1e-5);
        }
        double nc = 0, ng = 0, lrc = 0, lrg = 0;
        CHECK(tr_apply(c, targets, &nc, &lrc) == 0 && tr_apply(g, targets, &ng, &lrg) == 0);
        CHECK_CLOSE(ng, nc, 1e-6, 1e-5);
        CHECK(lrg == lrc);
        int n;
        double e = compare(g, c, tr_param, &n);
        printf("%s %s: update %d: grad norm %.9g (cpu) %.9g (device); %d params, device vs cpu %.2g normwise\n", spec,
               what, step + 1, nc, ng, n, e);
        CHECK(n > 0 && e < 1e-5);
        // the state the checkpoint writes
        Optimizer *xc = tr_optimizer(c), *xg = tr_optimizer(g);
        CHECK(xc && xg && xc->nparams == xg->nparams && xc->step == xg->step && xc->step == step + 1);
        double wm = 0;   // normwise per tensor, m and v
        for (size_t i = 0; xc && xg && i < xc->nparams && i < xg->nparams; i++) {
            const OptParam *a = &xg->params[i], *b = &xc->params[i];
            CHECK((a->m == NULL) == (b->m == NULL) && (a->v == NULL) == (b->v == NULL) && a->n == b->n);
            const float *sa[2] = {a->m, a->v}, *sb[2] = {b->m, b->v};
            for (int w = 0; w < 2; w++) {
                double dd = 0, bb = 0;
                for (size_t k = 0; sa[w] && sb[w] && k < a->n; k++)
                    dd += ((double)sa[w][k] - sb[w][k]) * ((double)sa[w][k] - sb[w][k]), bb += (double)sb[w][k] * sb[w][k];
                double e = bb > 0 ? sqrt(dd / bb) : sqrt(dd);
                if (!(e <= wm)) wm = e;
            }
        }
        printf("%s %s: update %d: optimizer state (m, v), device vs cpu: %.2g normwise\n", spec, what, step + 1, wm);
        CHECK(wm < 1e-5);
    }
    // no micro-step since the last update: the sums read back as zeros
    tr_zero_grad(g);
    int zeros = 1;
    for (int i = 0; i < tr_nparams(g); i++) {
        if (!tr_param_trainable(g, i)) continue;
        int64_t n = 0;
        const float *x = tr_grad(g, tr_param_name(g, i), &n);
        for (int64_t k = 0; x && k < n; k++) zeros &= x[k] == 0;
    }
    CHECK(zeros);
    close_spec(&oc);
    close_spec(&og);
    diag_free(&d);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_gpu_optim_cuda TESTS_RUN_DIR\n");
        return 2;
    }
    dir = argv[1];
    Diag d;
    diag_init(&d, stderr);
    Opened probe;
    Trainer *t = open_on(&d, &probe, "full.trl", "cuda", false);
    if (!t) {
        printf("gpu.optim_cuda: no CUDA device (nor $TRLC_CUDA_DRIVER): skipped\n");
        arena_free(&probe.a);
        diag_free(&d);
        return 77;
    }
    close_spec(&probe);
    diag_free(&d);
    check_case("lora.trl", false);
    check_case("full.trl", false);
    check_case("full.trl", true);
    return test_done("gpu.optim_cuda");
}
