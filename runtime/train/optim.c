// optim.c — AdamW and SGD updates and global-norm clipping over flat float32 arrays, following
// torch/optim/adam.py (_single_tensor_adam, decoupled) and sgd.py (_single_tensor_sgd) operation by
// operation in float32 with double scalars, as torch's CPU kernels do. OpenMP over elements for
// large arrays, SIMD within a thread (built with -fno-math-errno so that sqrtf vectorizes; vector
// sqrt and division are correctly rounded, so results equal the scalar ones). See optim.h.
// Does not: touch the schedule (the caller passes the step's lr).
#include "optim.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define OPT_PAR_MIN 32768   // below this, threads cost more than they save

OptConfig opt_config_adamw(void) {
    OptConfig c = {OPT_ADAMW, 1e-3, 0.9, 0.999, 1e-8, 1e-2, 0.0, 0.0, false};
    return c;
}

OptConfig opt_config_sgd(void) {
    OptConfig c = {OPT_SGD, 1e-3, 0.9, 0.999, 1e-8, 0.0, 0.0, 0.0, false};
    return c;
}

int opt_init(Diag *d, Optimizer *o, const OptConfig *c) {
    memset(o, 0, sizeof *o);
    const char *bad = NULL;
    if (!(c->lr >= 0) || !isfinite(c->lr)) bad = "lr must be a finite value >= 0";
    else if (!(c->weight_decay >= 0) || !isfinite(c->weight_decay))
        bad = "weight_decay must be a finite value >= 0";
    else if (c->kind == OPT_ADAMW) {
        if (!(c->beta1 >= 0 && c->beta1 < 1)) bad = "beta1 must be in [0, 1)";
        else if (!(c->beta2 >= 0 && c->beta2 < 1)) bad = "beta2 must be in [0, 1)";
        else if (!(c->eps >= 0) || !isfinite(c->eps)) bad = "eps must be a finite value >= 0";
    } else if (c->kind == OPT_SGD) {
        if (!(c->momentum >= 0) || !isfinite(c->momentum)) bad = "momentum must be >= 0";
        else if (!(c->dampening >= 0) || !isfinite(c->dampening)) bad = "dampening must be >= 0";
        else if (c->nesterov && (c->momentum <= 0 || c->dampening != 0))
            bad = "nesterov momentum requires a momentum and zero dampening";
    } else
        bad = "unknown optimizer kind";
    if (bad) {
        diag_plain_error(d, "optimizer: %s", bad);
        return -1;
    }
    o->cfg = *c;
    return 0;
}

void opt_free(Optimizer *o) {
    for (size_t i = 0; i < o->nparams; i++) {
        free(o->params[i].name);
        free(o->params[i].m);
        free(o->params[i].v);
    }
    free(o->params);
    memset(o, 0, sizeof *o);
}

int opt_find(const Optimizer *o, const char *name) {
    for (size_t i = 0; i < o->nparams; i++)
        if (strcmp(o->params[i].name, name) == 0) return (int)i;
    return -1;
}

int opt_add(Diag *d, Optimizer *o, const char *name, float *p, float *g, size_t n, bool decay) {
    if (!name || !*name || !p || !g || n == 0) {
        diag_plain_error(d, "optimizer: parameter `%s` has no name, data or elements",
                         name ? name : "");
        return -1;
    }
    if (opt_find(o, name) >= 0) {
        diag_plain_error(d, "optimizer: parameter `%s` added twice", name);
        return -1;
    }
    if (n > SIZE_MAX / sizeof(float) || o->nparams >= (size_t)INT32_MAX) {
        diag_plain_error(d, "optimizer: parameter `%s` is too large (%zu elements)", name, n);
        return -1;
    }
    if (o->nparams == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        OptParam *np = realloc(o->params, cap * sizeof *np);
        if (!np) goto oom;
        o->params = np;
        o->cap = cap;
    }
    OptParam q = {0};
    q.name = strdup(name);
    q.p = p;
    q.g = g;
    q.n = n;
    q.decay = decay;
    bool need_m = o->cfg.kind == OPT_ADAMW || o->cfg.momentum != 0;
    if (need_m) q.m = calloc(n, sizeof(float));
    if (o->cfg.kind == OPT_ADAMW) q.v = calloc(n, sizeof(float));
    if (!q.name || (need_m && !q.m) || (o->cfg.kind == OPT_ADAMW && !q.v)) {
        free(q.name);
        free(q.m);
        free(q.v);
        goto oom;
    }
    o->params[o->nparams] = q;
    return (int)o->nparams++;
oom:
    diag_plain_error(d, "optimizer: out of memory for the state of `%s` (%zu elements)", name, n);
    return -1;
}

// True when `c` ends a path component that ends in "norm" ("norm", "q_norm", "ln_norm").
static bool component_ends_norm(const char *s) {
    size_t len = strlen(s);
    for (size_t i = 0; i + 4 <= len; i++) {
        if (strncmp(s + i, "norm", 4) == 0 && (s[i + 4] == '.' || s[i + 4] == 0)) return true;
    }
    return false;
}

bool opt_default_decay(const char *name) {
    char low[512];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof low; i++)
        low[i] = (char)((name[i] >= 'A' && name[i] <= 'Z') ? name[i] + 32 : name[i]);
    low[i] = 0;
    if (strstr(low, "bias") || strstr(low, "layernorm") || strstr(low, "rmsnorm")) return false;
    return !component_ends_norm(low);
}

size_t opt_state_bytes(const Optimizer *o) {
    size_t b = 0;
    for (size_t i = 0; i < o->nparams; i++)
        b += o->params[i].n * sizeof(float) * ((o->params[i].m != NULL) + (o->params[i].v != NULL));
    return b;
}

// Sum of squares in fixed chunks added in order, so the result (and gradient clipping) does not
// depend on the number of threads, as an OpenMP reduction's would.
enum { SUMSQ_CHUNK = 1 << 14 };

static double sumsq(const float *x, size_t n) {
    long long nchunks = (long long)((n + SUMSQ_CHUNK - 1) / SUMSQ_CHUNK);
    double small[64], *part = nchunks <= 64 ? small : malloc((size_t)nchunks * sizeof *part);
    if (!part) {   // out of memory: one thread, same order
        double s = 0;
        for (size_t i = 0; i < n; i++) s += (double)x[i] * x[i];
        return s;
    }
#pragma omp parallel for schedule(static) if (n >= OPT_PAR_MIN)
    for (long long c = 0; c < nchunks; c++) {
        size_t lo = (size_t)c * SUMSQ_CHUNK, hi = lo + SUMSQ_CHUNK < n ? lo + SUMSQ_CHUNK : n;
        double s = 0;
        for (size_t i = lo; i < hi; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    double s = 0;
    for (long long c = 0; c < nchunks; c++) s += part[c];
    if (part != small) free(part);
    return s;
}

static void scale(float *x, size_t n, float c) {
    long long nn = (long long)n;
#pragma omp parallel for simd schedule(static) if (n >= OPT_PAR_MIN)
    for (long long i = 0; i < nn; i++) x[i] *= c;
}

double opt_grad_norm(const Optimizer *o) {
    // torch: the 2-norm of the per-tensor 2-norms; in exact arithmetic the same as one sum.
    double total = 0;
    for (size_t i = 0; i < o->nparams; i++) total += sumsq(o->params[i].g, o->params[i].n);
    return sqrt(total);
}

double opt_clip_grad_norm(Optimizer *o, double max_norm) {
    double norm = opt_grad_norm(o);
    if (!isfinite(norm)) return norm;
    // torch computes in float32: total_norm (f32) + 1e-6, max_norm / that, clamped at 1.
    float coef = (float)max_norm / ((float)norm + 1e-6f);
    if (coef < 1.0f)
        for (size_t i = 0; i < o->nparams; i++) scale(o->params[i].g, o->params[i].n, coef);
    return norm;
}

void opt_zero_grad(Optimizer *o) {
    for (size_t i = 0; i < o->nparams; i++) memset(o->params[i].g, 0, o->params[i].n * sizeof(float));
}

void opt_adamw_update(float *p, const float *g, float *m, float *v, size_t n, double lr,
                      double weight_decay, double beta1, double beta2, double eps, int64_t step) {
    // param.mul_(1 - lr * wd); torch skips it when wd == 0, and x * 1.0f == x exactly
    float decay = weight_decay != 0 ? (float)(1 - lr * weight_decay) : 1.0f;
    float w1 = (float)(1 - beta1), b2 = (float)beta2, w2 = (float)(1 - beta2);
    double bc1 = 1 - pow(beta1, (double)step), bc2 = 1 - pow(beta2, (double)step);
    float neg_step_size = (float)(-(lr / bc1));
    float bc2_sqrt = (float)sqrt(bc2), feps = (float)eps;
    long long nn = (long long)n;
#pragma omp parallel for simd schedule(static) if (n >= OPT_PAR_MIN)
    for (long long i = 0; i < nn; i++) {
        float gi = g[i], pi = p[i] * decay;
        float mi = m[i] + w1 * (gi - m[i]);                        // exp_avg.lerp_(grad, 1 - b1)
        float vi = v[i] * b2 + w2 * (gi * gi);                     // mul_(b2).addcmul_(g, g, 1-b2)
        float denom = sqrtf(vi) / bc2_sqrt + feps;                 // (sqrt(v) / bc2_sqrt) + eps
        p[i] = pi + neg_step_size * (mi / denom);                  // addcdiv_(m, denom, -step_size)
        m[i] = mi;
        v[i] = vi;
    }
}

void opt_sgd_update(float *p, const float *g, float *buf, size_t n, double lr, double weight_decay,
                    double momentum, double dampening, bool nesterov, bool first) {
    float wd = (float)weight_decay, mom = (float)momentum, damp = (float)(1 - dampening);
    float neg_lr = (float)(-lr);
    bool use_buf = momentum != 0 && buf;
    long long nn = (long long)n;
#pragma omp parallel for simd schedule(static) if (n >= OPT_PAR_MIN)
    for (long long i = 0; i < nn; i++) {
        float gi = g[i];
        if (wd != 0) gi = gi + wd * p[i];                          // grad.add(param, alpha=wd)
        if (use_buf) {
            float b = first ? gi : buf[i] * mom + damp * gi;       // clone(grad) | mul_.add_
            buf[i] = b;
            gi = nesterov ? gi + mom * b : b;
        }
        p[i] = p[i] + neg_lr * gi;                                 // param.add_(grad, alpha=-lr)
    }
}

void opt_step(Optimizer *o, double lr) {
    o->step++;
    const OptConfig *c = &o->cfg;
    for (size_t i = 0; i < o->nparams; i++) {
        OptParam *q = &o->params[i];
        double wd = q->decay ? c->weight_decay : 0.0;
        if (c->kind == OPT_ADAMW)
            opt_adamw_update(q->p, q->g, q->m, q->v, q->n, lr, wd, c->beta1, c->beta2, c->eps,
                             o->step);
        else
            opt_sgd_update(q->p, q->g, q->m, q->n, lr, wd, c->momentum, c->dampening, c->nesterov,
                           o->step == 1);
    }
}
