// optim.h — optimizers over flat float32 arrays: AdamW exactly as torch.optim.AdamW (decoupled
// weight decay p *= 1 - lr*wd before the Adam step, bias correction, eps added to sqrt(v_hat), fp32
// m/v), SGD with momentum / dampening / Nesterov exactly as torch.optim.SGD, per-parameter weight
// decay on/off (norms and biases off — the caller says which, opt_default_decay suggests), and
// clipping by the global L2 norm exactly as torch.nn.utils.clip_grad_norm_.
// The optimizer does not own parameters or gradients; it owns the state (m, v) it allocates.
// Does not: AMSGrad, fused low-precision states, sparse gradients, per-parameter lr groups.
#ifndef TRLC_OPTIM_H
#define TRLC_OPTIM_H
#include "diag.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum OptKind { OPT_ADAMW, OPT_SGD } OptKind;

typedef struct OptConfig {
    OptKind kind;
    double lr;             // base lr (the schedule multiplies it)
    double beta1, beta2;   // adamw
    double eps;            // adamw
    double weight_decay;   // for params added with decay = true (adamw: decoupled; sgd: L2 in grad)
    double momentum;       // sgd
    double dampening;      // sgd
    bool nesterov;         // sgd (needs momentum > 0 and dampening == 0, as torch)
} OptConfig;

typedef struct OptParam {
    char *name;    // owned copy
    float *p;      // (n) the parameter, updated in place (not owned)
    float *g;      // (n) its gradient (not owned; clipping scales it in place)
    float *m;      // (n) adamw exp_avg / sgd momentum_buffer (owned; NULL for sgd without momentum)
    float *v;      // (n) adamw exp_avg_sq (owned; NULL for sgd)
    size_t n;
    bool decay;    // weight decay applies
} OptParam;

typedef struct Optimizer {
    OptConfig cfg;
    int64_t step;          // updates done so far (torch's state["step"])
    OptParam *params;
    size_t nparams, cap;
} Optimizer;

// torch's defaults: AdamW lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight_decay 1e-2;
// SGD lr 1e-3, no momentum, no decay.
OptConfig opt_config_adamw(void);
OptConfig opt_config_sgd(void);
// Validates cfg (ranges as torch checks them). Returns 0, or -1 after reporting.
int opt_init(Diag *d, Optimizer *o, const OptConfig *cfg);
void opt_free(Optimizer *o);
// Registers a parameter of n elements; allocates its zeroed state. Returns its index, or -1 after
// reporting (duplicate name, n == 0, allocation failure).
int opt_add(Diag *d, Optimizer *o, const char *name, float *p, float *g, size_t n, bool decay);
// Index of a parameter by name, or -1.
int opt_find(const Optimizer *o, const char *name);
// The usual grouping: no decay for names containing "bias", "layernorm", "rmsnorm", or a path
// component ending in "norm" ("model.norm.weight", "q_norm"); decay for the rest.
bool opt_default_decay(const char *name);
// Bytes of optimizer state (m and v).
size_t opt_state_bytes(const Optimizer *o);

// The global L2 norm of all gradients (accumulated in double).
double opt_grad_norm(const Optimizer *o);
// clip_grad_norm_(params, max_norm): coef = max_norm / (norm + 1e-6); gradients are multiplied by
// it when coef < 1. Returns the pre-clip norm. A non-finite norm leaves the gradients untouched
// (the caller should skip the step — see met_check_finite).
double opt_clip_grad_norm(Optimizer *o, double max_norm);
// One update of every parameter with learning rate lr (base lr * schedule). Increments o->step.
void opt_step(Optimizer *o, double lr);
void opt_zero_grad(Optimizer *o);

// The single-array kernels behind opt_step (plain C references for other backends).
// step is the 1-based update number (after incrementing).
void opt_adamw_update(float *p, const float *g, float *m, float *v, size_t n /* all (n) */,
                      double lr, double weight_decay, double beta1, double beta2, double eps,
                      int64_t step);
// first: the momentum buffer does not exist yet (torch initialises it to the gradient).
void opt_sgd_update(float *p, const float *g, float *buf, size_t n /* all (n); buf may be NULL */,
                    double lr, double weight_decay, double momentum, double dampening,
                    bool nesterov, bool first);

#endif
