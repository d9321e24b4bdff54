// cpu.c — the CPU interpreter: binds B/T and the leaf buffers, computes each node's concrete shape
// (with overflow checks), allocates its output, runs its kernel (cpu_ops.inc), and frees every
// intermediate right after its last reader has run. Outputs stay alive until the next run.
// Not here: the kernels themselves (cpu_ops.inc), graph construction (compiler/ir.c).
#include "cpu_internal.h"
#include <cblas.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CPU_MAX_BYTES ((int64_t)1 << 40)   // refuse single tensors above 1 TiB
#define CPU_MAX_SYM ((int64_t)1 << 31)

struct CpuProgram {
    const IrGraph *g;
    IrDType real;
    Diag *d;
    CpuTensor *t;            // (n) per node; data NULL when not alive
    bool *owned;             // (n) data was allocated by the run
    const void **bind;       // (n) leaf bindings
    size_t *bind_bytes;      // (n)
    int *last_use;           // (n) index of the last node reading it, -1 if none
    bool *is_out;            // (n)
    int64_t live_bytes, peak_bytes;
    int64_t *bytes;          // (n) allocated bytes per owned tensor
    bool check_finite;       // cpu_set_check_finite
    bool profile;            // TRLC_CPU_PROFILE set: per-op times on stderr after each run
    double op_secs[IR_OP_COUNT];
    int op_calls[IR_OP_COUNT];
};

static double now_secs(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_profile(CpuProgram *p) {
    double total = 0;
    for (int i = 0; i < IR_OP_COUNT; i++) total += p->op_secs[i];
    fprintf(stderr, "trlc cpu profile: %.3f s in kernels, peak %.1f MB of intermediates\n", total,
            (double)p->peak_bytes / 1e6);
    for (int i = 0; i < IR_OP_COUNT; i++)
        if (p->op_calls[i])
            fprintf(stderr, "  %-18s %6d calls %9.3f ms\n", ir_op_name((IrOp)i), p->op_calls[i],
                    1e3 * p->op_secs[i]);
}

size_t cpu_elem_size(IrDType t, IrDType real) {
    if (t == IR_I32) return 4;
    if (t == IR_U8) return 1;
    return real == IR_F64 ? sizeof(double) : sizeof(float);
}

static void release(CpuProgram *p, int i) {
    if (p->owned[i]) {
        free(p->t[i].data);
        p->live_bytes -= p->bytes[i];
    }
    p->t[i].data = NULL;
    p->owned[i] = false;
    p->bytes[i] = 0;
}

static void release_all(CpuProgram *p) {
    for (int i = 0; i < p->g->n; i++) release(p, i);
    p->live_bytes = 0;
}

// OpenBLAS's pthread pool and our OpenMP pool fought over the cores (each spins or yields while
// waiting for work: ~30% of a training step went to waiting). BLAS runs single-threaded; the
// kernels thread large products themselves over OpenMP (exec_matmul).
static void blas_single_thread(void) {
    static bool done;
    if (done) return;
    done = true;
    openblas_set_num_threads(1);
}

void cpu_prefer_passive_wait(char **argv) {
    if (!argv || !argv[0] || getenv("OMP_WAIT_POLICY")) return;
    if (setenv("OMP_WAIT_POLICY", "PASSIVE", 0) != 0) return;
    execv("/proc/self/exe", argv);   // returns only on failure: run on with the default policy
}

CpuProgram *cpu_program_new(const IrGraph *g, IrDType real, Diag *d) {
    blas_single_thread();
    if (real != IR_F32 && real != IR_F64) {
        if (d) diag_plain_error(d, "the CPU backend computes in f32 or f64, not %s", ir_dtype_name(real));
        return NULL;
    }
    if (!ir_validate(g, d)) return NULL;   // kernels rely on the builders' shape rules
    CpuProgram *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->g = g;
    p->real = real;
    p->d = d;
    const char *prof = getenv("TRLC_CPU_PROFILE");
    p->profile = prof && *prof && strcmp(prof, "0") != 0;
    size_t n = (size_t)(g->n ? g->n : 1);
    p->t = calloc(n, sizeof *p->t);
    p->owned = calloc(n, sizeof *p->owned);
    p->bind = calloc(n, sizeof *p->bind);
    p->bind_bytes = calloc(n, sizeof *p->bind_bytes);
    p->last_use = malloc(n * sizeof *p->last_use);
    p->is_out = calloc(n, sizeof *p->is_out);
    p->bytes = calloc(n, sizeof *p->bytes);
    if (!p->t || !p->owned || !p->bind || !p->bind_bytes || !p->last_use || !p->is_out || !p->bytes) {
        if (d) diag_plain_error(d, "out of memory preparing the CPU program");
        cpu_program_free(p);
        return NULL;
    }
    for (int i = 0; i < g->n; i++) {
        p->last_use[i] = -1;
        const IrNode *nd = &g->nodes[i];
        for (int k = 0; k < nd->nin; k++) {
            IrId in = nd->in[k];
            if (in < 0 || in >= i) {
                if (d) diag_plain_error(d, "CPU backend: IR node %%%d uses %%%d out of order", i, in);
                cpu_program_free(p);
                return NULL;
            }
            p->last_use[in] = i;
        }
    }
    for (int i = 0; i < g->nouts; i++) {
        IrId id = g->outs[i].id;
        if (id < 0 || id >= g->n) {
            if (d) diag_plain_error(d, "CPU backend: output `%s` has no node", g->outs[i].name);
            cpu_program_free(p);
            return NULL;
        }
        p->is_out[id] = true;
    }
    return p;
}

void cpu_program_free(CpuProgram *p) {
    if (!p) return;
    if (p->t && p->owned && p->bytes) release_all(p);
    free(p->t);
    free(p->owned);
    free(p->bind);
    free(p->bind_bytes);
    free(p->last_use);
    free(p->is_out);
    free(p->bytes);
    free(p);
}

void cpu_set_check_finite(CpuProgram *p, bool on) { p->check_finite = on; }

// Index of the first non-finite element of a real tensor, or -1.
static int64_t first_nonfinite(const CpuTensor *t, double *val) {
    if (t->dtype == IR_F64) {
        const double *v = t->data;
        for (int64_t i = 0; i < t->numel; i++)
            if (!isfinite(v[i])) {
                *val = v[i];
                return i;
            }
    } else if (t->dtype == IR_F32) {
        const float *v = t->data;
        for (int64_t i = 0; i < t->numel; i++)
            if (!isfinite(v[i])) {
                *val = v[i];
                return i;
            }
    }
    return -1;
}

int cpu_bind(CpuProgram *p, IrId leaf, const void *data, size_t nbytes) {
    if (leaf < 0 || leaf >= p->g->n ||
        (p->g->nodes[leaf].op != IR_INPUT && p->g->nodes[leaf].op != IR_PARAM)) {
        if (p->d) diag_plain_error(p->d, "CPU backend: node %%%d is not an input or parameter", leaf);
        return -1;
    }
    p->bind[leaf] = data;
    p->bind_bytes[leaf] = nbytes;
    return 0;
}

int cpu_bind_name(CpuProgram *p, const char *name, const void *data, size_t nbytes) {
    IrId id = ir_find(p->g, name);
    if (id == IR_NONE) {
        if (p->d) diag_plain_error(p->d, "CPU backend: no input or parameter named `%s`", name);
        return -1;
    }
    return cpu_bind(p, id, data, nbytes);
}

static int runtime_error(CpuProgram *p, int i, const char *msg) {
    const IrNode *n = &p->g->nodes[i];
    const char *what = n->name ? n->name : ir_op_name(n->op);
    if (!p->d) return -1;
    if (n->loc.file) diag_error(p->d, n->loc, "runtime error in %s (%%%d): %s", what, i, msg);
    else diag_plain_error(p->d, "runtime error in %s (%%%d): %s", what, i, msg);
    return -1;
}

int cpu_run(CpuProgram *p, const int64_t *sym_vals, uint64_t step) {
    const IrGraph *g = p->g;
    char msg[320];
    release_all(p);
    p->peak_bytes = 0;
    memset(p->op_secs, 0, sizeof p->op_secs);
    memset(p->op_calls, 0, sizeof p->op_calls);
    int64_t syms[IR_NSYMS];
    for (int s = 0; s < IR_NSYMS; s++) {
        syms[s] = sym_vals ? sym_vals[s] : 1;
        if (syms[s] < 1 || syms[s] > CPU_MAX_SYM) {
            if (p->d) diag_plain_error(p->d, "CPU backend: %s = %" PRId64 " is out of range",
                                       ir_sym_name(s), syms[s]);
            return -1;
        }
    }
    const CpuTensor *small_in[16];
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        CpuTensor *t = &p->t[i];
        memset(t, 0, sizeof *t);
        t->dtype = (n->dtype == IR_I32 || n->dtype == IR_U8) ? n->dtype : p->real;
        t->rank = n->shape.rank;
        for (int d = 0; d < t->rank; d++) {
            t->shape[d] = ir_dim_value(n->shape.d[d], syms);
            if (t->shape[d] < 0) goto too_big;
        }
        t->numel = ir_shape_numel(&n->shape, syms);
        size_t es = cpu_elem_size(n->dtype, p->real);
        if (t->numel < 0 || t->numel > CPU_MAX_BYTES / (int64_t)es) goto too_big;
        int64_t bytes = t->numel * (int64_t)es;

        if (n->op == IR_INPUT || n->op == IR_PARAM) {
            if (!p->bind[i]) {
                snprintf(msg, sizeof msg, "%s `%s` is not bound to a buffer",
                         n->op == IR_PARAM ? "parameter" : "input", n->name);
                release_all(p);
                return runtime_error(p, i, msg);
            }
            if ((int64_t)p->bind_bytes[i] != bytes) {
                char sh[160];
                ir_shape_str(&n->shape, sh, sizeof sh);
                snprintf(msg, sizeof msg,
                         "`%s` is bound to %zu bytes, but %s%s with B=%" PRId64 ", T=%" PRId64
                         " needs %" PRId64, n->name, p->bind_bytes[i], ir_dtype_name(n->dtype), sh,
                         syms[IR_SYM_B], syms[IR_SYM_T], bytes);
                release_all(p);
                return runtime_error(p, i, msg);
            }
            t->data = (void *)p->bind[i];
            continue;
        }

        t->data = malloc((size_t)(bytes ? bytes : 1));
        if (!t->data) {
            snprintf(msg, sizeof msg, "out of memory allocating %" PRId64 " bytes", bytes);
            release_all(p);
            return runtime_error(p, i, msg);
        }
        p->owned[i] = true;
        p->bytes[i] = bytes;
        p->live_bytes += bytes;
        if (p->live_bytes > p->peak_bytes) p->peak_bytes = p->live_bytes;

        const CpuTensor **ins = small_in;
        if (n->nin > 16) {
            ins = malloc((size_t)n->nin * sizeof *ins);
            if (!ins) {
                release_all(p);
                return runtime_error(p, i, "out of memory");
            }
        }
        for (int k = 0; k < n->nin; k++) ins[k] = &p->t[n->in[k]];
        CpuExec e;
        memset(&e, 0, sizeof e);
        e.n = n;
        e.out = t;
        e.in = ins;
        e.step = step;
        e.off = (n->op == IR_SLICE || n->op == IR_PAD) ? ir_dim_value(n->a.off, syms) : 0;
        double t0 = p->profile ? now_secs() : 0;
        int rc = p->real == IR_F64 ? cpu_exec_f64(&e) : cpu_exec_f32(&e);
        if (p->profile) {
            p->op_secs[n->op] += now_secs() - t0;
            p->op_calls[n->op]++;
        }
        if (ins != small_in) free(ins);
        if (rc != 0) {
            snprintf(msg, sizeof msg, "%s", e.err);
            release_all(p);
            return runtime_error(p, i, msg);
        }
        double bad;
        int64_t at = p->check_finite ? first_nonfinite(t, &bad) : -1;
        if (at >= 0) {
            snprintf(msg, sizeof msg, "%s at element %" PRId64 " of the result (%s)",
                     isnan(bad) ? "NaN" : "infinity", at, n->backward ? "backward" : "forward");
            release_all(p);
            return runtime_error(p, i, msg);
        }
        for (int k = 0; k < n->nin; k++) {
            IrId in = n->in[k];
            if (p->last_use[in] == i && !p->is_out[in] && p->owned[in]) release(p, in);
        }
        if (p->last_use[i] < 0 && !p->is_out[i]) release(p, i);
        continue;
    too_big:
        release_all(p);
        return runtime_error(p, i, "tensor size overflows (check B and T)");
    }
    if (p->profile) print_profile(p);
    return 0;
}

const CpuTensor *cpu_output(const CpuProgram *p, int i) {
    if (i < 0 || i >= p->g->nouts) return NULL;
    const CpuTensor *t = &p->t[p->g->outs[i].id];
    return t->data ? t : NULL;
}

const CpuTensor *cpu_output_named(const CpuProgram *p, const char *name) {
    for (int i = 0; i < p->g->nouts; i++)
        if (strcmp(p->g->outs[i].name, name) == 0) return cpu_output(p, i);
    return NULL;
}

const CpuTensor *cpu_value(const CpuProgram *p, IrId id) {
    if (id < 0 || id >= p->g->n || !p->t[id].data) return NULL;
    return &p->t[id];
}

int64_t cpu_peak_bytes(const CpuProgram *p) { return p->peak_bytes; }

int64_t cpu_plan_peak_bytes(const CpuProgram *p, const int64_t *sym_vals) {
    const IrGraph *g = p->g;
    int64_t *size = calloc((size_t)(g->n ? g->n : 1), sizeof *size);
    if (!size) return -1;
    int64_t live = 0, peak = 0;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == IR_INPUT || n->op == IR_PARAM) continue;
        int64_t cnt = ir_shape_numel(&n->shape, sym_vals);
        int64_t es = (int64_t)cpu_elem_size(n->dtype, p->real);
        if (cnt < 0 || cnt > CPU_MAX_BYTES / es) {
            free(size);
            return -1;
        }
        size[i] = cnt * es;
        live += size[i];
        if (live > peak) peak = live;
        for (int k = 0; k < n->nin; k++) {
            IrId in = n->in[k];
            if (p->last_use[in] == i && !p->is_out[in] && size[in]) {
                live -= size[in];
                size[in] = 0;
            }
        }
        if (p->last_use[i] < 0 && !p->is_out[i]) {
            live -= size[i];
            size[i] = 0;
        }
    }
    free(size);
    return peak;
}

double cpu_round_float(double x, int bits, int emin, double maxv) {
    if (!(x == x) || x == 0 || isinf(x)) return x;
    double ax = fabs(x);
    int e;
    frexp(ax, &e);                  // ax = m * 2^e, m in [0.5, 1)
    int q = e - bits;               // quantum exponent for `bits` significant bits
    if (q < emin - bits + 1) q = emin - bits + 1;   // subnormals: fixed quantum
    double r = ldexp(nearbyint(ldexp(ax, -q)), q);
    if (r > maxv) r = INFINITY;
    return x < 0 ? -r : r;
}
