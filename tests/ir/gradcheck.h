// gradcheck.h — a small harness for the IR tests: build a graph in float64 whose differentiable
// leaves ("vars") hold random values, reduce the result y to loss = sum(y * R) with a fixed random
// R, differentiate with ad_backward, run on the CPU backend, and compare every analytic gradient
// element (up to a cap) with a central finite difference. The error reported is
// max|analytic - numeric| / max(max|numeric|, 1e-12) over each var.
#ifndef TRLC_TEST_GRADCHECK_H
#define TRLC_TEST_GRADCHECK_H
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "autodiff.h"
#include "cpu.h"
#include "test.h"

#define GC_MAXV 8
#define GC_MAXI 8

typedef struct GC {
    const char *name;
    Diag d;
    IrGraph g;
    int64_t syms[IR_NSYMS];
    int nv, ni;
    IrId var[GC_MAXV];
    double *vdata[GC_MAXV];
    int64_t vn[GC_MAXV];
    IrId inp[GC_MAXI];
    char iname[GC_MAXI][32];
    void *idata[GC_MAXI];
    size_t ibytes[GC_MAXI];
    uint64_t rng;
} GC;

static inline double gc_rand(GC *c) {   // uniform [0, 1)
    c->rng ^= c->rng << 13;
    c->rng ^= c->rng >> 7;
    c->rng ^= c->rng << 17;
    return (double)(c->rng >> 11) * (1.0 / 9007199254740992.0);
}

static inline void gc_begin(GC *c, const char *name, int64_t B, int64_t T) {
    memset(c, 0, sizeof *c);
    c->name = name;
    diag_init(&c->d, stderr);
    ir_graph_init(&c->g, &c->d, IR_F64);
    c->syms[IR_SYM_B] = B;
    c->syms[IR_SYM_T] = T;
    c->rng = 0x9E3779B97F4A7C15ull ^ (uint64_t)strlen(name) * 1234567ull;
    for (const char *p = name; *p; p++) c->rng = c->rng * 31 + (unsigned char)*p;
    if (!c->rng) c->rng = 1;
}

// A differentiable leaf with values uniform in [lo, hi): a trainable param when the shape is
// constant, an input differentiated through `wrt` when it holds B or T.
static inline IrId gc_var(GC *c, IrShape s, double lo, double hi) {
    char name[32];
    snprintf(name, sizeof name, "v%d", c->nv);
    bool sym = false;
    for (int i = 0; i < s.rank; i++) sym = sym || s.d[i].syms;
    IrId id = sym ? ir_input(&c->g, name, IR_F64, s, (Loc){0, 0, 0})
                  : ir_param(&c->g, name, IR_F64, s, true, (Loc){0, 0, 0});
    int64_t n = ir_shape_numel(&s, c->syms);
    double *v = malloc((size_t)(n ? n : 1) * sizeof *v);
    for (int64_t i = 0; i < n; i++) v[i] = lo + (hi - lo) * gc_rand(c);
    c->var[c->nv] = id;
    c->vdata[c->nv] = v;
    c->vn[c->nv] = n;
    c->nv++;
    return id;
}

// A non-differentiable input with caller data (copied): i32 or f64.
static inline IrId gc_input(GC *c, IrDType dt, IrShape s, const void *data) {
    char *name = c->iname[c->ni];
    snprintf(name, sizeof c->iname[0], "in%d", c->ni);
    IrId id = ir_input(&c->g, name, dt, s, (Loc){0, 0, 0});
    int64_t n = ir_shape_numel(&s, c->syms);
    size_t bytes = (size_t)n * (dt == IR_I32 ? 4 : 8);
    c->idata[c->ni] = malloc(bytes ? bytes : 1);
    memcpy(c->idata[c->ni], data, bytes);
    c->ibytes[c->ni] = bytes;
    c->inp[c->ni] = id;
    c->ni++;
    return id;
}

static inline double gc_loss(GC *c, CpuProgram *p) {
    if (cpu_run(p, c->syms, 7) != 0) return NAN;
    const CpuTensor *t = cpu_output_named(p, "loss");
    return t ? ((const double *)t->data)[0] : NAN;
}

// Finishes the graph with y, checks all gradients; returns the max relative error (or 1e9).
static inline double gc_check(GC *c, IrId y, double tol) {
    double worst = 1e9;
    CpuProgram *p = NULL;
    double *r = NULL;
    char vname[32];
    if (y == IR_NONE) {
        CHECK_MSG(0, "%s: graph construction failed", c->name);
        goto done;
    }
    {
        IrShape ys = c->g.nodes[y].shape;
        int64_t n = ir_shape_numel(&ys, c->syms);
        r = malloc((size_t)(n ? n : 1) * sizeof *r);
        for (int64_t i = 0; i < n; i++) r[i] = gc_rand(c) * 2 - 1;
        IrId rid = ir_input(&c->g, "R", IR_F64, ys, (Loc){0, 0, 0});
        IrId l = ir_reduce_all(&c->g, IR_SUM, ir_mul(&c->g, y, rid, (Loc){0, 0, 0}), (Loc){0, 0, 0});
        l = ir_reshape(&c->g, l, ir_shape0(), (Loc){0, 0, 0});
        ir_set_loss(&c->g, l);
        IrId wrt[GC_MAXV];
        int nw = 0;
        for (int i = 0; i < c->nv; i++)
            if (c->g.nodes[c->var[i]].op == IR_INPUT) wrt[nw++] = c->var[i];
        if (c->g.errors || ad_backward(&c->g, wrt, nw) != 0) {
            CHECK_MSG(0, "%s: autodiff failed", c->name);
            goto done;
        }
        ir_cse(&c->g);
        ir_dce(&c->g);   // renumbers: find the leaves again by name
        for (int i = 0; i < c->nv; i++) {
            snprintf(vname, sizeof vname, "v%d", i);
            c->var[i] = ir_find(&c->g, vname);
        }
        for (int i = 0; i < c->ni; i++) {
            const char *nm = c->iname[i];
            c->inp[i] = ir_find(&c->g, nm);
        }
        p = cpu_program_new(&c->g, IR_F64, &c->d);
        if (!p) {
            CHECK_MSG(0, "%s: cpu program", c->name);
            goto done;
        }
        for (int i = 0; i < c->nv; i++)
            cpu_bind(p, c->var[i], c->vdata[i], (size_t)c->vn[i] * sizeof(double));
        for (int i = 0; i < c->ni; i++) cpu_bind(p, c->inp[i], c->idata[i], c->ibytes[i]);
        cpu_bind_name(p, "R", r, (size_t)n * sizeof(double));
        if (cpu_run(p, c->syms, 7) != 0) {
            CHECK_MSG(0, "%s: run failed", c->name);
            goto done;
        }
        worst = 0;
        double *an[GC_MAXV] = {NULL};   // analytic gradients of the unperturbed point, copied
        for (int i = 0; i < c->nv; i++) {
            const CpuTensor *gt = NULL;
            IrId gid = ad_grad_of(&c->g, c->var[i]);
            for (int k = 0; k < c->g.nouts; k++)
                if (c->g.outs[k].id == gid && c->g.outs[k].grad_of == c->var[i]) gt = cpu_output(p, k);
            if (!gt || gt->numel != c->vn[i]) continue;
            an[i] = malloc((size_t)(gt->numel ? gt->numel : 1) * sizeof *an[i]);
            memcpy(an[i], gt->data, (size_t)gt->numel * sizeof *an[i]);
        }
        for (int i = 0; i < c->nv; i++) {
            if (!an[i]) {
                CHECK_MSG(0, "%s: no gradient for var %d", c->name, i);
                worst = 1e9;
                continue;
            }
            int64_t step = c->vn[i] > 96 ? c->vn[i] / 96 + 1 : 1;
            double maxdiff = 0, maxnum = 0;
            for (int64_t k = 0; k < c->vn[i]; k += step) {
                double v0 = c->vdata[i][k], h = 1e-6 * (fabs(v0) > 1 ? fabs(v0) : 1);
                c->vdata[i][k] = v0 + h;
                double lp = gc_loss(c, p);
                c->vdata[i][k] = v0 - h;
                double lm = gc_loss(c, p);
                c->vdata[i][k] = v0;
                double num = (lp - lm) / (2 * h);
                double diff = fabs(num - an[i][k]);
                if (!(diff <= maxdiff)) maxdiff = diff;   // NaN-safe
                if (fabs(num) > maxnum) maxnum = fabs(num);
            }
            free(an[i]);
            double rel = maxdiff / (maxnum > 1e-12 ? maxnum : 1e-12);
            if (!(rel <= worst)) worst = rel;
        }
        cpu_run(p, c->syms, 7);   // leave outputs of the unperturbed point
    }
    printf("  %-34s max rel err %.3e\n", c->name, worst);
    CHECK_MSG(worst <= tol, "%s: gradient error %.3e > %.1e", c->name, worst, tol);
done:
    cpu_program_free(p);
    free(r);
    for (int i = 0; i < c->nv; i++) free(c->vdata[i]);
    for (int i = 0; i < c->ni; i++) free(c->idata[i]);
    ir_graph_free(&c->g);
    diag_free(&c->d);
    return worst;
}

#endif
