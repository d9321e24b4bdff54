// schedule.c — lr multipliers, transcribed from transformers/optimization.py (the _lr_lambda
// helpers) so that every step gives the same double. See schedule.h. Does not: own the base lr.
#include "schedule.h"
#include <math.h>
#include <string.h>

static const char *const KIND_NAMES[] = {"constant", "linear", "cosine"};

const char *sched_kind_name(SchedKind k) {
    return (unsigned)k < 3 ? KIND_NAMES[k] : "?";
}

int sched_kind_from_name(const char *name) {
    for (int i = 0; i < 3; i++)
        if (name && strcmp(name, KIND_NAMES[i]) == 0) return i;
    return -1;
}

SchedConfig sched_config_default(void) {
    SchedConfig c = {SCHED_CONSTANT, 0, 0, 0.0, 0.5, -1.0, -1.0, 0.0};
    return c;
}

int64_t sched_warmup_from_ratio(int64_t total_steps, double ratio) {
    if (!(ratio > 0) || total_steps <= 0) return 0;
    double w = ceil((double)total_steps * ratio);   // Python: math.ceil(num_training_steps * ratio)
    return w >= (double)total_steps ? total_steps : (int64_t)w;   // ratio > 1 caps at total
}

int sched_init(Diag *d, Schedule *s, const SchedConfig *c) {
    memset(s, 0, sizeof *s);
    if ((unsigned)c->kind > SCHED_COSINE) {
        diag_plain_error(d, "schedule: unknown kind %d", (int)c->kind);
        return -1;
    }
    if (c->total_steps < 0 || (c->kind != SCHED_CONSTANT && c->total_steps == 0)) {
        diag_plain_error(d, "schedule: %s needs a positive number of training steps (got %lld)",
                         sched_kind_name(c->kind), (long long)c->total_steps);
        return -1;
    }
    int64_t warmup = c->warmup_steps;
    if (warmup < 0) {
        if (!(c->warmup_ratio >= 0 && c->warmup_ratio <= 1)) {
            diag_plain_error(d, "schedule: warmup ratio %g is outside [0, 1]", c->warmup_ratio);
            return -1;
        }
        warmup = sched_warmup_from_ratio(c->total_steps, c->warmup_ratio);
    }
    double cycles = c->num_cycles == 0 ? 0.5 : c->num_cycles;
    if (!(cycles > 0) || !isfinite(cycles)) {
        diag_plain_error(d, "schedule: num_cycles must be positive (got %g)", c->num_cycles);
        return -1;
    }
    double rate = 0;
    if (c->min_lr >= 0 && c->min_lr_rate >= 0) {
        diag_plain_error(d, "schedule: give min_lr or min_lr_rate, not both");
        return -1;
    }
    if (c->min_lr >= 0) {
        if (!(c->base_lr > 0) || !isfinite(c->min_lr)) {
            diag_plain_error(d, "schedule: min_lr %g needs a positive base lr (got %g)", c->min_lr,
                             c->base_lr);
            return -1;
        }
        rate = c->min_lr / c->base_lr;   // transformers: min_lr / optimizer.defaults["lr"]
    } else if (c->min_lr_rate >= 0) {
        if (!isfinite(c->min_lr_rate)) {
            diag_plain_error(d, "schedule: min_lr_rate must be finite");
            return -1;
        }
        rate = c->min_lr_rate;
    }
    if (rate != 0 && c->kind != SCHED_COSINE) {
        diag_plain_error(d, "schedule: min_lr applies to the cosine schedule only, not %s",
                         sched_kind_name(c->kind));
        return -1;
    }
    s->kind = c->kind;
    s->warmup_steps = warmup;
    s->total_steps = c->total_steps;
    s->num_cycles = cycles;
    s->min_lr_rate = rate;
    return 0;
}

static double max1(int64_t x) { return x > 1 ? (double)x : 1.0; }

double sched_mult(const Schedule *s, int64_t step) {
    if (step < 0) step = 0;   // not a step transformers can see; treat as the first
    if (step < s->warmup_steps) return (double)step / max1(s->warmup_steps);
    switch (s->kind) {
    case SCHED_CONSTANT:
        return 1.0;
    case SCHED_LINEAR: {
        double f = (double)(s->total_steps - step) / max1(s->total_steps - s->warmup_steps);
        return f > 0.0 ? f : 0.0;
    }
    case SCHED_COSINE: {
        double progress = (double)(step - s->warmup_steps) / max1(s->total_steps - s->warmup_steps);
        double f = 0.5 * (1.0 + cos(M_PI * s->num_cycles * 2.0 * progress));
        f = f * (1 - s->min_lr_rate) + s->min_lr_rate;
        return f > 0.0 ? f : 0.0;
    }
    }
    return 1.0;
}
