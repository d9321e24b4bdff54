// schedule.h — learning-rate schedules: the multiplier of the base lr at optimizer step s, exactly as
// transformers' get_constant_schedule_with_warmup, get_linear_schedule_with_warmup,
// get_cosine_schedule_with_warmup and get_cosine_with_min_lr_schedule_with_warmup (LambdaLR: the lr
// used by the update numbered s, counting from 0, is base_lr * sched_mult(s)).
// Warmup is a step count or a ratio of the total (transformers' TrainingArguments: ceil(total *
// ratio)). Does not: implement polynomial / inverse-sqrt / restarts schedules, or ReduceLROnPlateau.
#ifndef TRLC_SCHEDULE_H
#define TRLC_SCHEDULE_H
#include "diag.h"
#include <stdint.h>

typedef enum SchedKind { SCHED_CONSTANT, SCHED_LINEAR, SCHED_COSINE } SchedKind;

typedef struct Schedule {
    SchedKind kind;
    int64_t warmup_steps;   // linear ramp 0 → 1 over these steps
    int64_t total_steps;    // num_training_steps (linear and cosine)
    double num_cycles;      // cosine: 0.5 = one half-cosine from 1 down to the floor
    double min_lr_rate;     // cosine: the floor as a fraction of the base lr (0 = plain cosine)
} Schedule;

// What a spec says. warmup_ratio is used when warmup_steps < 0. min_lr (absolute, needs base_lr)
// is used when min_lr >= 0, else min_lr_rate (>= 0); both negative means 0.
typedef struct SchedConfig {
    SchedKind kind;
    int64_t total_steps;
    int64_t warmup_steps;   // < 0: use warmup_ratio
    double warmup_ratio;    // in [0, 1]
    double num_cycles;      // 0 means the default 0.5
    double min_lr;          // absolute floor, < 0 when not given
    double min_lr_rate;     // relative floor, < 0 when not given
    double base_lr;         // the optimizer's lr (to turn min_lr into a rate)
} SchedConfig;

// A SchedConfig with the defaults: constant, no warmup, num_cycles 0.5, no floor.
SchedConfig sched_config_default(void);
// Validates cfg and fills s. Returns 0, or -1 after reporting (`trlc: error: schedule: ...`).
int sched_init(Diag *d, Schedule *s, const SchedConfig *cfg);
// ceil(total * ratio) as transformers computes it (0 for ratio <= 0).
int64_t sched_warmup_from_ratio(int64_t total_steps, double ratio);
// The lr multiplier for optimizer step `step` (0-based; a negative step counts as 0).
double sched_mult(const Schedule *s, int64_t step);
// "constant" | "linear" | "cosine"; sched_kind_from_name returns -1 for an unknown name.
const char *sched_kind_name(SchedKind k);
int sched_kind_from_name(const char *name);

#endif
