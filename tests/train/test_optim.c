// test_optim.c — AdamW / SGD updates and clip_grad_norm_ against torch (fixtures/optim.txt from
// gen_optim_fixtures.py): every parameter after every step, the pre-clip norms and the final
// optimizer state, within 1e-6 relative. Also the grouping rule, config validation and huge arrays
// (the OpenMP path) against the serial kernel.
#include "diag.h"
#include "optim.h"
#include "test.h"
#include "train/fixture.h"
#include <omp.h>
#include <stdint.h>

#define MAXP 8
#define MAXS 32
#define MAXN 64

typedef struct Case {
    char name[64], kind[16];
    int nsteps, np;
    double clip, beta1, beta2, eps, wd, momentum, dampening;
    int nesterov;
    char pname[MAXP][64];
    int n[MAXP], decay[MAXP];
    double init[MAXP][MAXN], grad[MAXS][MAXP][MAXN], after[MAXS][MAXP][MAXN];
    double lr[MAXS], norm[MAXS], m[MAXP][MAXN], v[MAXP][MAXN];
    int has_m[MAXP], has_v[MAXP];
} Case;

static int pidx(const Case *c, const char *name) {
    for (int i = 0; i < c->np; i++)
        if (strcmp(c->pname[i], name) == 0) return i;
    return -1;
}

// |a - b| / max(1, |b|): relative error, absolute near zero.
static double rel_err(double a, double b) {
    double s = fabs(b) > 1 ? fabs(b) : 1;
    return fabs(a - b) / s;
}

static void run_case(Case *c) {
    Diag d;
    diag_init(&d, stderr);
    OptConfig cfg = strcmp(c->kind, "adamw") == 0 ? opt_config_adamw() : opt_config_sgd();
    cfg.beta1 = c->beta1;
    cfg.beta2 = c->beta2;
    cfg.eps = c->eps;
    cfg.weight_decay = c->wd;
    cfg.momentum = c->momentum;
    cfg.dampening = c->dampening;
    cfg.nesterov = c->nesterov;
    cfg.lr = c->lr[0];
    Optimizer o;
    CHECK(opt_init(&d, &o, &cfg) == 0);
    static float p[MAXP][MAXN], g[MAXP][MAXN];
    for (int i = 0; i < c->np; i++) {
        for (int j = 0; j < c->n[i]; j++) p[i][j] = (float)c->init[i][j];
        CHECK(opt_add(&d, &o, c->pname[i], p[i], g[i], (size_t)c->n[i], c->decay[i]) == i);
    }
    double max_p = 0, max_norm = 0, max_state = 0;
    for (int s = 0; s < c->nsteps; s++) {
        for (int i = 0; i < c->np; i++)
            for (int j = 0; j < c->n[i]; j++) g[i][j] = (float)c->grad[s][i][j];
        if (c->clip >= 0) {
            double norm = opt_clip_grad_norm(&o, c->clip);
            double e = fabs(norm - c->norm[s]) / c->norm[s];
            if (e > max_norm) max_norm = e;
        }
        opt_step(&o, c->lr[s]);
        for (int i = 0; i < c->np; i++)
            for (int j = 0; j < c->n[i]; j++) {
                double e = rel_err(p[i][j], c->after[s][i][j]);
                if (e > max_p) max_p = e;
            }
    }
    CHECK(o.step == c->nsteps);
    // m and v: relative to the largest magnitude of each state tensor (elements of m near zero
    // come from cancellation and carry no relative precision)
    for (int i = 0; i < c->np; i++)
        for (int k = 0; k < 2; k++) {
            const double *want = k ? c->v[i] : c->m[i];
            const float *got = k ? o.params[i].v : o.params[i].m;
            if (!(k ? c->has_v[i] : c->has_m[i])) continue;
            CHECK(got != NULL);
            if (!got) continue;
            double scale = 0, e = 0;
            for (int j = 0; j < c->n[i]; j++) scale = fmax(scale, fabs(want[j]));
            for (int j = 0; j < c->n[i]; j++) e = fmax(e, fabs(got[j] - want[j]) / scale);
            if (e > max_state) max_state = e;
        }
    printf("%-22s %2d steps: params max rel err %.3g, pre-clip norm %.3g, final m/v %.3g\n",
           c->name, c->nsteps, max_p, max_norm, max_state);
    CHECK_MSG(max_p <= 1e-6, "%s: parameters differ from torch by %g", c->name, max_p);
    CHECK_MSG(max_norm <= 1e-6, "%s: grad norm differs from torch by %g", c->name, max_norm);
    CHECK_MSG(max_state <= 1e-6, "%s: optimizer state differs from torch by %g", c->name, max_state);
    opt_free(&o);
    diag_free(&d);
}

static int run_fixtures(const char *path) {
    char *text = fx_read(path);
    CHECK(text != NULL);
    if (!text) return 0;
    static Case c;
    char *cur = text, *line;
    int ncases = 0;
    double vals[MAXN + 2];
    while ((line = fx_line(&cur))) {
        char word[16], name[64];
        int step;
        if (line[0] == '#' || !*line || sscanf(line, "%15s", word) != 1) continue;
        if (strcmp(word, "case") == 0) {
            memset(&c, 0, sizeof c);
            CHECK(sscanf(line, "case %63s %15s %d %lf %lf %lf %lf %lf %lf %lf %d", c.name, c.kind,
                         &c.nsteps, &c.clip, &c.beta1, &c.beta2, &c.eps, &c.wd, &c.momentum,
                         &c.dampening, &c.nesterov) == 11);
            CHECK(c.nsteps > 0 && c.nsteps <= MAXS);
        } else if (strcmp(word, "param") == 0) {
            CHECK(c.np < MAXP);
            CHECK(sscanf(line, "param %63s %d %d", c.pname[c.np], &c.n[c.np], &c.decay[c.np]) == 3);
            CHECK(c.n[c.np] > 0 && c.n[c.np] <= MAXN);
            c.np++;
        } else if (strcmp(word, "init") == 0) {
            sscanf(line, "init %63s", name);
            int i = pidx(&c, name);
            CHECK(i >= 0 && fx_doubles(fx_skip(line, 2), c.init[i], MAXN) == c.n[i]);
        } else if (strcmp(word, "lr") == 0) {
            CHECK(sscanf(line, "lr %d %lf", &step, &vals[0]) == 2 && step >= 0 && step < MAXS);
            c.lr[step] = vals[0];
        } else if (strcmp(word, "norm") == 0) {
            CHECK(sscanf(line, "norm %d %lf", &step, &vals[0]) == 2 && step >= 0 && step < MAXS);
            c.norm[step] = vals[0];
        } else if (strcmp(word, "grad") == 0 || strcmp(word, "after") == 0) {
            CHECK(sscanf(line, "%*s %d %63s", &step, name) == 2 && step >= 0 && step < MAXS);
            int i = pidx(&c, name);
            CHECK(i >= 0);
            double *dst = word[0] == 'g' ? c.grad[step][i] : c.after[step][i];
            CHECK(fx_doubles(fx_skip(line, 3), dst, MAXN) == c.n[i]);
        } else if (strcmp(word, "state") == 0) {
            char which[4];
            CHECK(sscanf(line, "state %63s %3s", name, which) == 2);
            int i = pidx(&c, name);
            CHECK(i >= 0);
            bool is_m = which[0] == 'm';
            CHECK(fx_doubles(fx_skip(line, 3), is_m ? c.m[i] : c.v[i], MAXN) == c.n[i]);
            if (is_m) c.has_m[i] = 1;
            else c.has_v[i] = 1;
        } else if (strcmp(word, "end") == 0) {
            run_case(&c);
            ncases++;
        }
    }
    free(text);
    return ncases;
}

static void test_grouping(void) {
    CHECK(opt_default_decay("model.layers.0.self_attn.q_proj.weight"));
    CHECK(opt_default_decay("model.embed_tokens.weight"));
    CHECK(opt_default_decay("lm_head.weight"));
    CHECK(opt_default_decay("model.layers.3.mlp.down_proj.lora_A.weight"));
    CHECK(!opt_default_decay("model.layers.0.self_attn.q_proj.bias"));
    CHECK(!opt_default_decay("model.layers.0.input_layernorm.weight"));
    CHECK(!opt_default_decay("model.layers.0.post_attention_layernorm.weight"));
    CHECK(!opt_default_decay("model.layers.0.self_attn.q_norm.weight"));
    CHECK(!opt_default_decay("model.norm.weight"));
    CHECK(!opt_default_decay("transformer.ln_f.RMSNorm.weight"));
    CHECK(opt_default_decay("model.normalizer_proj.weight"));   // "norm" inside a word only
}

static void test_validation(void) {
    FILE *err = tmpfile();
    Diag d;
    diag_init(&d, err);
    Optimizer o;
    OptConfig c = opt_config_adamw();
    c.beta1 = 1.0;
    CHECK(opt_init(&d, &o, &c) == -1);
    c = opt_config_adamw();
    c.lr = -1;
    CHECK(opt_init(&d, &o, &c) == -1);
    c = opt_config_adamw();
    c.eps = NAN;
    CHECK(opt_init(&d, &o, &c) == -1);
    c = opt_config_sgd();
    c.nesterov = true;   // without momentum
    CHECK(opt_init(&d, &o, &c) == -1);
    c = opt_config_adamw();
    CHECK(opt_init(&d, &o, &c) == 0);
    float p[4] = {0}, g[4] = {0};
    CHECK(opt_add(&d, &o, "w", p, g, 4, true) == 0);
    CHECK(opt_add(&d, &o, "w", p, g, 4, true) == -1);   // duplicate
    CHECK(opt_add(&d, &o, "z", p, g, 0, true) == -1);   // empty
    CHECK(opt_find(&o, "w") == 0 && opt_find(&o, "nope") == -1);
    CHECK(opt_state_bytes(&o) == 2 * 4 * sizeof(float));
    // a non-finite gradient: norm reported, gradients left alone
    g[1] = INFINITY;
    double n = opt_clip_grad_norm(&o, 1.0);
    CHECK(isinf(n) && isinf(g[1]));
    g[1] = NAN;
    CHECK(isnan(opt_clip_grad_norm(&o, 1.0)));
    g[1] = 0;
    opt_zero_grad(&o);
    CHECK(g[0] == 0 && g[1] == 0);
    CHECK(d.errors == 6);
    rewind(err);
    char buf[512] = {0};
    CHECK(fread(buf, 1, sizeof buf - 1, err) > 0);
    CHECK(strstr(buf, "trlc: error: optimizer: beta1 must be in [0, 1)") != NULL);
    CHECK(strstr(buf, "parameter `w` added twice") != NULL);
    opt_free(&o);
    diag_free(&d);
    fclose(err);
}

// The OpenMP path (n above the threshold) gives exactly the serial result element by element,
// and the norm agrees with a plain double sum.
static void test_large(void) {
    size_t n = 200003;
    float *p = malloc(n * sizeof *p), *g = malloc(n * sizeof *g), *m = calloc(n, sizeof *m),
          *v = calloc(n, sizeof *v);
    float *p2 = malloc(n * sizeof *p), *m2 = calloc(n, sizeof *m), *v2 = calloc(n, sizeof *v);
    CHECK(p && g && m && v && p2 && m2 && v2);
    if (!(p && g && m && v && p2 && m2 && v2)) return;
    uint32_t x = 12345;
    double ss = 0;
    for (size_t i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        p[i] = p2[i] = (float)((x >> 8) / 16777216.0 - 0.5);
        g[i] = (float)(((x >> 4) & 1023) / 1024.0 - 0.5);
        ss += (double)g[i] * g[i];
    }
    for (int s = 1; s <= 3; s++) {
        opt_adamw_update(p, g, m, v, n, 1e-3, 0.01, 0.9, 0.999, 1e-8, s);
        for (size_t i = 0; i < n; i += 4096) {   // the serial kernel on single elements
            opt_adamw_update(p2 + i, g + i, m2 + i, v2 + i, 1, 1e-3, 0.01, 0.9, 0.999, 1e-8, s);
        }
    }
    int same = 1;
    for (size_t i = 0; i < n; i += 4096) same &= p[i] == p2[i] && m[i] == m2[i] && v[i] == v2[i];
    CHECK(same);
    Diag d;
    diag_init(&d, stderr);
    Optimizer o;
    OptConfig c = opt_config_adamw();
    CHECK(opt_init(&d, &o, &c) == 0);
    CHECK(opt_add(&d, &o, "big", p, g, n, true) == 0);
    double norm = opt_grad_norm(&o);
    CHECK_CLOSE(norm, sqrt(ss), 0, 1e-12);
    // the same bits with 1 and 2 threads (an OpenMP reduction would add in another order)
    int saved = omp_get_max_threads();
    double by_threads[2];
    for (int t = 1; t <= 2; t++) {
        omp_set_num_threads(t);
        by_threads[t - 1] = opt_grad_norm(&o);
    }
    omp_set_num_threads(saved);
    CHECK(memcmp(&by_threads[0], &by_threads[1], sizeof(double)) == 0 && by_threads[0] == norm);
    double pre = opt_clip_grad_norm(&o, 1.0);
    CHECK_CLOSE(pre, sqrt(ss), 0, 1e-12);
    CHECK_CLOSE(opt_grad_norm(&o), 1.0, 0, 1e-6);
    opt_free(&o);
    diag_free(&d);
    free(p), free(g), free(m), free(v), free(p2), free(m2), free(v2);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_optim fixtures/optim.txt\n");
        return 2;
    }
    int ncases = run_fixtures(argv[1]);
    CHECK(ncases == 6);
    test_grouping();
    test_validation();
    test_large();
    return test_done("train.optim");
}
