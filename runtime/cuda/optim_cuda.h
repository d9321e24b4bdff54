// optim_cuda.h — the trainer's optimizer on the device (`trlc run --device cuda`): the trainable
// params stay in the training program's device buffers (exec.h cuda_params_resident), their
// gradients are summed over the micro-steps of an update on the device, the global L2 norm is
// reduced there (8 bytes come back), and clipping and AdamW / SGD run as multi-tensor launches
// (kernels/adamw.cu) computing exactly what runtime/train/optim.c computes on the host. The
// state (exp_avg, exp_avg_sq / momentum buffers) lives on the device; host copies are made only
// on request (checkpoints, export, evaluation by generation, tr_grad).
// Not here: the loop, the schedule, non-finite handling (the trainer), the host optimizer
// (optim.c: the CPU path and the checkpoint format).
#ifndef TRLC_OPTIM_CUDA_H
#define TRLC_OPTIM_CUDA_H
#include "exec.h"
#include "optim.h"

typedef struct CudaOptim CudaOptim;

// An optimizer for the trainable params of program p (cfg as the host optimizer's; dev and cache:
// p's, to compile and load adamw.cu). NULL after reporting.
CudaOptim *cuda_optim_new(CudaProgram *p, RtCudaDevice *dev, RtCudaCache *cache, const OptConfig *cfg, Diag *d);
void cuda_optim_free(CudaOptim *o);
// Registers trainable param `leaf` of p (n fp32 values; its gradient is p's output grad_out;
// decay: weight decay applies) with zeroed state. Returns its index, or -1 after reporting.
int cuda_optim_add(CudaOptim *o, IrId leaf, int grad_out, int64_t n, bool decay);
// Around every run of p that computes gradients (a micro-step): before_run keeps the sum so far
// (the run overwrites its gradient buffers), after_run adds the run's gradients to it. With one
// micro-step per update nothing is copied: the update reads the run's own gradient buffers.
int cuda_optim_before_run(CudaOptim *o);
int cuda_optim_after_run(CudaOptim *o);
// Forgets the sum (the next micro-step starts a new one); its micro-step count.
void cuda_optim_zero_grad(CudaOptim *o);
int cuda_optim_micro_steps(const CudaOptim *o);
// The global L2 norm of the summed gradients times scale (each float g * scale squared and summed
// in double, as opt_grad_norm over the scaled gradients). 0 or -1 (reported).
int cuda_optim_grad_norm(CudaOptim *o, float scale, double *norm);
// One update of every param: gradient g * scale, clipped as opt_clip_grad_norm when max_norm > 0
// (coef = max_norm / (norm + 1e-6) in float, applied when < 1), then AdamW / SGD with learning
// rate lr; step is the 1-based update number (torch's state["step"] after the increment). *norm:
// the pre-clip norm. A non-finite norm is the caller's to handle (it should not call this).
int cuda_optim_step(CudaOptim *o, float scale, double max_norm, double lr, int64_t step, double *norm);
// Waits for the last update (it is queued on p's stream): before another program (evaluation, on
// its own stream) reads the params. 0 or -1 (reported).
int cuda_optim_wait(CudaOptim *o);
// Host copies of param i's summed gradient (n floats; zeros before any micro-step), its value and
// its state (m, v: NULL where the optimizer has none); and the state written back (a resume).
int cuda_optim_read_grad(CudaOptim *o, int i, float *g);
int cuda_optim_read_param(CudaOptim *o, int i, float *p);
int cuda_optim_read_state(CudaOptim *o, int i, float *m, float *v);
int cuda_optim_write_state(CudaOptim *o, int i, const float *m, const float *v);
// Device memory the optimizer holds (state, sums, tables).
int64_t cuda_optim_device_bytes(const CudaOptim *o);

#endif
