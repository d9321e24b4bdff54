// optim_cuda.c — the trainer's optimizer on the device (optim_cuda.h): per param the state
// buffers and, once a second micro-step needs it, a gradient sum; tables of chunks (64K elements
// of one param each) uploaded when their pointers change (the run's gradient buffers move with
// the (B, T) memory plan when they live in its arena); the launches of kernels/adamw.cu's
// multi-tensor kernels: accumulation, sum of squares + its reduction, AdamW / SGD.
// Not here: what the loop does with the norm (non-finite updates, logging), the schedule, host
// copies of the state the checkpoint writes (the trainer asks for them).
#include "optim_cuda.h"
#include "codegen_cuda.h"
#include "kernels_ref.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { OC_CHUNK = 1 << 16, OC_GRID = 512, OC_THREADS = 256, OC_MAX_BLOCKS = 65535 };

typedef struct OcChunk {   // adamw.cu's TrlcOptChunk
    RtCudaPtr p, g, m, v;
    long long n;
    int decay, pad;
} OcChunk;

typedef struct OcAcc {     // adamw.cu's TrlcAccChunk
    RtCudaPtr dst, src;
    long long n;
} OcAcc;

typedef struct OcParam {
    IrId leaf;
    int grad_out;
    int64_t n;
    bool decay;
    RtCudaPtr m, v;          // (n) adamw exp_avg, exp_avg_sq; sgd: m the momentum buffer or 0
    RtCudaPtr acc;           // (n) the sum over micro-steps (from the second one on), or 0
    RtCudaPtr grad;          // (n) the last run's gradient (in p's buffers)
} OcParam;

// A table of chunks on the device and the host copy last uploaded.
typedef struct OcTable {
    void *host;              // being built
    size_t bytes, cap;
    void *sent;              // what the device holds
    size_t sent_bytes, sent_cap;
    RtCudaPtr dev;
    size_t dev_cap;
    int n;                   // chunks
} OcTable;

struct CudaOptim {
    CudaProgram *p;
    RtCudaDevice *dev;
    Diag *d;
    OptConfig cfg;
    void *fn_acc, *fn_sumsq, *fn_sum, *fn_adamw, *fn_sgd;
    OcParam *ps;
    int np, cap;
    int micro;               // micro-steps summed since the last zero_grad
    OcTable opt, acc;
    RtCudaPtr partial;       // (OC_GRID + 1) doubles: per-block sums of squares, then the total
    bool pending;            // an update is queued on p's stream and not waited for
    bool norm_valid;
    float norm_scale;
    double norm;
    int64_t bytes;           // device memory held
};

static int load_kernels(CudaOptim *o, RtCudaCache *cache) {
    RtCudaProgram prog;
    memset(&prog, 0, sizeof prog);
    prog.name = "adamw.cu";
    prog.source = cg_library_source("adamw.cu");
    if (!prog.source) {
        diag_plain_error(o->d, "GPU: the library kernel file adamw.cu is not embedded in trlc");
        return -1;
    }
    int rc = rt_cuda_compile(cache, &prog, 1, cuda_arch(o->p), false, 0, o->d) ? -1 : 0;
    const char *names[] = {"trlc_accumulate_multi", "trlc_sumsq_multi", "trlc_sum_partials", "trlc_adamw_multi",
                           "trlc_sgd_multi"};
    void **fns[] = {&o->fn_acc, &o->fn_sumsq, &o->fn_sum, &o->fn_adamw, &o->fn_sgd};
    for (int i = 0; rc == 0 && i < 5; i++)
        if (rt_cuda_load_source(o->dev, prog.cubin, prog.source, names[i], fns[i]) != 0) rc = -1;
    rt_cuda_program_free(&prog);
    return rc;
}

static int dev_alloc(CudaOptim *o, size_t bytes, RtCudaPtr *ptr) {
    if (rt_cuda_alloc(o->dev, bytes + 4, ptr) != 0) {
        diag_hint(o->d, "the optimizer's state on the device (%.2f GiB so far) did not fit",
                  (double)o->bytes / (1 << 30));
        return -1;
    }
    o->bytes += (int64_t)bytes;
    return 0;
}

CudaOptim *cuda_optim_new(CudaProgram *p, RtCudaDevice *dev, RtCudaCache *cache, const OptConfig *cfg, Diag *d) {
    CudaOptim *o = calloc(1, sizeof *o);
    if (!o) {
        diag_plain_error(d, "GPU: out of memory");
        return NULL;
    }
    o->p = p, o->dev = dev, o->d = d, o->cfg = *cfg;
    if (load_kernels(o, cache) != 0 || dev_alloc(o, (OC_GRID + 1) * sizeof(double), &o->partial) != 0) {
        cuda_optim_free(o);
        return NULL;
    }
    return o;
}

static void table_free(CudaOptim *o, OcTable *t) {
    free(t->host);
    free(t->sent);
    if (t->dev) rt_cuda_free(o->dev, t->dev);
}

void cuda_optim_free(CudaOptim *o) {
    if (!o) return;
    for (int i = 0; i < o->np; i++) {
        RtCudaPtr b[] = {o->ps[i].m, o->ps[i].v, o->ps[i].acc};
        for (int k = 0; k < 3; k++)
            if (b[k]) rt_cuda_free(o->dev, b[k]);
    }
    free(o->ps);
    table_free(o, &o->opt);
    table_free(o, &o->acc);
    if (o->partial) rt_cuda_free(o->dev, o->partial);
    free(o);
}

int cuda_optim_add(CudaOptim *o, IrId leaf, int grad_out, int64_t n, bool decay) {
    if (n < 1 || (uint64_t)n > SIZE_MAX / 8) {
        diag_plain_error(o->d, "GPU optimizer: a parameter of %lld elements", (long long)n);
        return -1;
    }
    if (o->np == o->cap) {
        int cap = o->cap ? o->cap * 2 : 64;
        OcParam *np = realloc(o->ps, (size_t)cap * sizeof *np);
        if (!np) {
            diag_plain_error(o->d, "GPU optimizer: out of memory");
            return -1;
        }
        o->ps = np, o->cap = cap;
    }
    OcParam *q = &o->ps[o->np];
    memset(q, 0, sizeof *q);
    q->leaf = leaf, q->grad_out = grad_out, q->n = n, q->decay = decay;
    size_t bytes = (size_t)n * sizeof(float);
    bool need_m = o->cfg.kind == OPT_ADAMW || o->cfg.momentum != 0, need_v = o->cfg.kind == OPT_ADAMW;
    if ((need_m && (dev_alloc(o, bytes, &q->m) || rt_cuda_zero(o->dev, q->m, bytes))) ||
        (need_v && (dev_alloc(o, bytes, &q->v) || rt_cuda_zero(o->dev, q->v, bytes)))) {
        if (q->m) rt_cuda_free(o->dev, q->m);
        if (q->v) rt_cuda_free(o->dev, q->v);
        return -1;
    }
    return o->np++;
}

// ---- tables

static int table_add(CudaOptim *o, OcTable *t, const void *row, size_t size) {
    if (t->bytes + size > t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 64 * size;
        while (cap < t->bytes + size) cap *= 2;
        void *nh = realloc(t->host, cap);
        if (!nh) {
            diag_plain_error(o->d, "GPU optimizer: out of memory");
            return -1;
        }
        t->host = nh, t->cap = cap;
    }
    memcpy((char *)t->host + t->bytes, row, size);
    t->bytes += size;
    t->n++;
    return 0;
}

// Uploads the table built in t->host unless the device holds the same one already.
static int table_send(CudaOptim *o, OcTable *t) {
    if (t->bytes == t->sent_bytes && t->sent && !memcmp(t->host, t->sent, t->bytes)) return 0;
    if (t->bytes > t->dev_cap) {
        if (t->dev) rt_cuda_free(o->dev, t->dev);
        t->dev = 0, t->dev_cap = 0;
        if (dev_alloc(o, t->bytes, &t->dev) != 0) return -1;
        t->dev_cap = t->bytes;
    }
    if (t->bytes > t->sent_cap) {
        void *ns = realloc(t->sent, t->bytes);
        if (!ns) {
            diag_plain_error(o->d, "GPU optimizer: out of memory");
            return -1;
        }
        t->sent = ns, t->sent_cap = t->bytes;
    }
    if (cuda_upload(o->p, t->dev, t->host, t->bytes) != 0) return -1;
    memcpy(t->sent, t->host, t->bytes);
    t->sent_bytes = t->bytes;
    return 0;
}

// The summed gradient of param q: the last run's buffer after one micro-step, else the sum.
static RtCudaPtr grad_of(const CudaOptim *o, const OcParam *q) { return o->micro >= 2 ? q->acc : q->grad; }

// The update's table: every param in chunks (p, g, m, v).
static int build_opt(CudaOptim *o) {
    OcTable *t = &o->opt;
    t->bytes = 0, t->n = 0;
    for (int i = 0; i < o->np; i++) {
        OcParam *q = &o->ps[i];
        size_t pb = 0;
        RtCudaPtr p = cuda_param_ptr(o->p, q->leaf, &pb), g = grad_of(o, q);
        if (!p || pb != (size_t)q->n * 4 || !g) {
            diag_plain_error(o->d, "GPU optimizer (internal): parameter %d has no %s on the device", i,
                             !p || pb != (size_t)q->n * 4 ? "fp32 buffer" : "gradient");
            return -1;
        }
        for (int64_t at = 0; at < q->n; at += OC_CHUNK) {
            RtCudaPtr off = (RtCudaPtr)at * 4;
            OcChunk c = {p + off, g + off, q->m ? q->m + off : 0, q->v ? q->v + off : 0,
                         q->n - at < OC_CHUNK ? q->n - at : OC_CHUNK, q->decay, 0};
            if (table_add(o, t, &c, sizeof c) != 0) return -1;
        }
    }
    return table_send(o, t);
}

// The accumulation's table: acc (allocated now when missing) and the last run's gradient.
static int build_acc(CudaOptim *o) {
    OcTable *t = &o->acc;
    t->bytes = 0, t->n = 0;
    for (int i = 0; i < o->np; i++) {
        OcParam *q = &o->ps[i];
        if (!q->acc && dev_alloc(o, (size_t)q->n * 4, &q->acc) != 0) return -1;
        for (int64_t at = 0; at < q->n; at += OC_CHUNK) {
            RtCudaPtr off = (RtCudaPtr)at * 4;
            OcAcc c = {q->acc + off, q->grad + off, q->n - at < OC_CHUNK ? q->n - at : OC_CHUNK};
            if (table_add(o, t, &c, sizeof c) != 0) return -1;
        }
    }
    return table_send(o, t);
}

static unsigned blocks(int nchunks, int cap) { return (unsigned)(nchunks < cap ? nchunks : cap); }

static int accumulate(CudaOptim *o, int first) {
    if (build_acc(o) != 0) return -1;
    int nc = o->acc.n;
    void *args[] = {&o->acc.dev, &nc, &first};
    return cuda_launch_fn(o->p, o->fn_acc, blocks(nc, OC_MAX_BLOCKS), OC_THREADS, args, "trlc_accumulate_multi");
}

// ---- micro-steps

int cuda_optim_before_run(CudaOptim *o) {
    // a second micro-step: the first one's gradients move into the sum before the run overwrites them
    return o->micro == 1 ? accumulate(o, 1) : 0;
}

int cuda_optim_after_run(CudaOptim *o) {
    for (int i = 0; i < o->np; i++) {
        OcParam *q = &o->ps[i];
        q->grad = cuda_output_ptr(o->p, q->grad_out);
        if (!q->grad) {
            diag_plain_error(o->d, "GPU optimizer (internal): gradient output %d is not on the device", q->grad_out);
            return -1;
        }
    }
    o->norm_valid = false;
    if (o->micro >= 1 && accumulate(o, 0) != 0) return -1;
    o->micro++;
    return 0;
}

void cuda_optim_zero_grad(CudaOptim *o) {
    o->micro = 0;
    o->norm_valid = false;
}

int cuda_optim_micro_steps(const CudaOptim *o) { return o->micro; }

int cuda_optim_grad_norm(CudaOptim *o, float scale, double *norm) {
    if (o->norm_valid && o->norm_scale == scale) {
        *norm = o->norm;
        return 0;
    }
    if (o->micro == 0) {
        *norm = 0;
        return 0;
    }
    if (build_opt(o) != 0) return -1;
    int nc = o->opt.n, grid = (int)blocks(nc, OC_GRID);
    RtCudaPtr total = o->partial + OC_GRID * sizeof(double);
    void *a1[] = {&o->partial, &o->opt.dev, &nc, &scale};
    void *a2[] = {&total, &o->partial, &grid};
    double s = 0;
    if (cuda_launch_fn(o->p, o->fn_sumsq, (unsigned)grid, OC_THREADS, a1, "trlc_sumsq_multi") != 0 ||
        cuda_launch_fn(o->p, o->fn_sum, 1, OC_THREADS, a2, "trlc_sum_partials") != 0 ||
        cuda_download(o->p, &s, total, sizeof s) != 0)
        return -1;
    o->norm = sqrt(s), o->norm_scale = scale, o->norm_valid = true;
    *norm = o->norm;
    return 0;
}

int cuda_optim_step(CudaOptim *o, float scale, double max_norm, double lr, int64_t step, double *norm) {
    if (o->micro == 0) {
        diag_plain_error(o->d, "GPU optimizer (internal): an update without gradients");
        return -1;
    }
    double gn;
    if (cuda_optim_grad_norm(o, scale, &gn) != 0 || build_opt(o) != 0) return -1;
    if (norm) *norm = gn;
    // opt_clip_grad_norm: in float, total_norm + 1e-6, max_norm / that, applied when < 1
    float coef = max_norm > 0 ? (float)max_norm / ((float)gn + 1e-6f) : 1.0f;
    int clip = max_norm > 0 && isfinite(gn) && coef < 1.0f;
    int nc = o->opt.n;
    unsigned grid = blocks(nc, OC_MAX_BLOCKS);
    const OptConfig *c = &o->cfg;
    int rc;
    if (c->kind == OPT_ADAMW) {
        TrlcAdamw s;
        trlc_adamw_setup(&s, lr, c->weight_decay, c->beta1, c->beta2, c->eps, step);
        void *args[] = {&o->opt.dev, &nc, &scale, &coef, &clip, &s};
        rc = cuda_launch_fn(o->p, o->fn_adamw, grid, OC_THREADS, args, "trlc_adamw_multi");
    } else {
        TrlcSgd s;
        trlc_sgd_setup(&s, lr, c->weight_decay, c->momentum, c->dampening, c->nesterov, step == 1);
        void *args[] = {&o->opt.dev, &nc, &scale, &coef, &clip, &s};
        rc = cuda_launch_fn(o->p, o->fn_sgd, grid, OC_THREADS, args, "trlc_sgd_multi");
    }
    o->norm_valid = false;
    o->pending = rc == 0;
    return rc;
}

int cuda_optim_wait(CudaOptim *o) {
    if (!o->pending) return 0;
    o->pending = false;
    return rt_cuda_stream_sync(o->dev, cuda_stream(o->p), "the optimizer step");
}

// ---- host copies

static bool bad_index(CudaOptim *o, int i) {
    if (i >= 0 && i < o->np) return false;
    diag_plain_error(o->d, "GPU optimizer (internal): no parameter %d", i);
    return true;
}

int cuda_optim_read_grad(CudaOptim *o, int i, float *g) {
    if (bad_index(o, i)) return -1;
    const OcParam *q = &o->ps[i];
    if (o->micro == 0) {
        memset(g, 0, (size_t)q->n * sizeof *g);
        return 0;
    }
    return cuda_download(o->p, g, grad_of(o, q), (size_t)q->n * sizeof *g);
}

int cuda_optim_read_param(CudaOptim *o, int i, float *p) {
    if (bad_index(o, i)) return -1;
    size_t pb = 0;
    RtCudaPtr d = cuda_param_ptr(o->p, o->ps[i].leaf, &pb);
    if (!d || pb != (size_t)o->ps[i].n * sizeof *p) {
        diag_plain_error(o->d, "GPU optimizer (internal): parameter %d is not on the device", i);
        return -1;
    }
    return cuda_download(o->p, p, d, pb);
}

int cuda_optim_read_state(CudaOptim *o, int i, float *m, float *v) {
    if (bad_index(o, i)) return -1;
    size_t b = (size_t)o->ps[i].n * sizeof(float);
    if (m && o->ps[i].m && cuda_download(o->p, m, o->ps[i].m, b) != 0) return -1;
    if (v && o->ps[i].v && cuda_download(o->p, v, o->ps[i].v, b) != 0) return -1;
    return 0;
}

int cuda_optim_write_state(CudaOptim *o, int i, const float *m, const float *v) {
    if (bad_index(o, i)) return -1;
    size_t b = (size_t)o->ps[i].n * sizeof(float);
    if (m && o->ps[i].m && cuda_upload(o->p, o->ps[i].m, m, b) != 0) return -1;
    if (v && o->ps[i].v && cuda_upload(o->p, o->ps[i].v, v, b) != 0) return -1;
    return 0;
}

int64_t cuda_optim_device_bytes(const CudaOptim *o) { return o ? o->bytes : 0; }
