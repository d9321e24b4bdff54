// cpu.c — the CPU interpreter: binds B/T and the leaf buffers, computes each node's concrete shape
// (with overflow checks), places its output in the program's arena, and runs its kernel
// (cpu_ops.inc). The arena is laid out once per (B, T) by a static plan: each value lives from
// its node to its last reader (outputs to the end of the run), dead space is reused first-fit,
// and reshapes are views of their input (no copy; the input lives as long as its views). The
// arena stays allocated across runs, so a training step neither mallocs nor faults in fresh pages.
// Outputs stay valid until the next run.
// Not here: the kernels themselves (cpu_ops.inc), graph construction (compiler/ir.c).
#include "cpu_internal.h"
#include "env.h"
#include <cblas.h>
#include <dirent.h>
#include <stdio.h>
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
    const void **bind;       // (n) leaf bindings
    size_t *bind_bytes;      // (n)
    int *last_use;           // (n) index of the last node reading it, -1 if none
    bool *is_out;            // (n)
    int64_t peak_bytes;      // the plan's peak of live intermediates (views not counted)
    // the arena plan for plan_sym (valid when planned)
    bool planned;
    int64_t plan_sym[IR_NSYMS];
    int *root;               // (n) the node whose bytes it uses: itself, or a view's source's root
    int *lead;               // (n) sdpa_bwd_q/k/v with the same inputs run as one group: the
                             // group's first node (its leader), or -1; see group_attention_grads
    int (*members)[3];       // (n) for a leader: its group's q, k, v nodes (-1 where absent)
    int *end;                // (n) per root: the last node after which its bytes are dead
    int64_t *offset;         // (n) per owned root: byte offset in the arena
    int64_t arena_bytes;     // the plan's arena size
    char *arena;             // 64-byte aligned, arena_cap bytes, kept across runs
    int64_t arena_cap;
    int (*exec_f32)(CpuExec *);   // the float kernels for this CPU (pick_f32_kernels)
    int64_t sdpa_block_max, lce_chunk_bytes;   // cpu_ops.inc's limits ($TRLC_CPU_SDPA_BLOCK_MAX, ...)
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

static void release(CpuProgram *p, int i) { p->t[i].data = NULL; }

static void release_all(CpuProgram *p) {
    for (int i = 0; i < p->g->n; i++) release(p, i);
}

// A reshape is a view: the same bytes under another shape (row-major, same element type).
static bool is_view(const IrNode *n) { return n->op == IR_RESHAPE; }

static bool is_sdpa_bwd(IrOp op) { return op == IR_SDPA_BWD_Q || op == IR_SDPA_BWD_K || op == IR_SDPA_BWD_V; }

// Attention's three backward ops (dQ, dK, dV) read the same inputs and each recompute the
// probabilities: the ones with identical inputs and attributes form a group that the leader (the
// first in order) computes in one call; the arena places all of them from the leader on.
static void group_attention_grads(CpuProgram *p) {
    const IrGraph *g = p->g;
    for (int i = 0; i < g->n; i++) {
        p->lead[i] = -1;
        p->members[i][0] = p->members[i][1] = p->members[i][2] = -1;
    }
    for (int i = 0; i < g->n; i++) {
        const IrNode *a = &g->nodes[i];
        if (!is_sdpa_bwd(a->op) || p->lead[i] >= 0) continue;
        p->lead[i] = i;
        p->members[i][a->op - IR_SDPA_BWD_Q] = i;
        for (int j = i + 1; j < g->n; j++) {
            const IrNode *b = &g->nodes[j];
            int slot = b->op - IR_SDPA_BWD_Q;
            if (!is_sdpa_bwd(b->op) || p->lead[j] >= 0 || p->members[i][slot] >= 0 || b->nin != a->nin ||
                b->a.causal != a->a.causal || b->a.scale != a->a.scale || b->a.segmented != a->a.segmented ||
                memcmp(b->in, a->in, (size_t)a->nin * sizeof *a->in) != 0)
                continue;
            p->lead[j] = i;
            p->members[i][slot] = j;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The arena plan: first-fit placement in execution order over a sorted list of free spans.

enum { ARENA_ALIGN = 64 };

typedef struct Span {
    int64_t off, size;
} Span;

typedef struct Spans {
    Span *s;
    int n;
    int64_t top, high;       // current extent, its high-water mark (the arena size)
} Spans;

// Placed size: a multiple of ARENA_ALIGN, and never 0 (an empty tensor still gets its own address).
static int64_t aligned(int64_t bytes) {
    return bytes ? (bytes + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN : ARENA_ALIGN;
}

static int64_t span_alloc(Spans *f, int64_t size) {
    for (int k = 0; k < f->n; k++) {
        if (f->s[k].size < size) continue;
        int64_t off = f->s[k].off;
        f->s[k].off += size;
        f->s[k].size -= size;
        if (f->s[k].size == 0) {
            memmove(&f->s[k], &f->s[k + 1], (size_t)(f->n - k - 1) * sizeof *f->s);
            f->n--;
        }
        return off;
    }
    int64_t off = f->top;
    f->top += size;
    if (f->top > f->high) f->high = f->top;
    return off;
}

// The spans array has room for one span per node (frees never outnumber allocations).
static void span_free(Spans *f, int64_t off, int64_t size) {
    int k = 0;
    while (k < f->n && f->s[k].off < off) k++;
    memmove(&f->s[k + 1], &f->s[k], (size_t)(f->n - k) * sizeof *f->s);
    f->s[k] = (Span){off, size};
    f->n++;
    if (k + 1 < f->n && f->s[k].off + f->s[k].size == f->s[k + 1].off) {   // merge with next
        f->s[k].size += f->s[k + 1].size;
        memmove(&f->s[k + 1], &f->s[k + 2], (size_t)(f->n - k - 2) * sizeof *f->s);
        f->n--;
    }
    if (k > 0 && f->s[k - 1].off + f->s[k - 1].size == f->s[k].off) {      // merge with previous
        f->s[k - 1].size += f->s[k].size;
        memmove(&f->s[k], &f->s[k + 1], (size_t)(f->n - k - 1) * sizeof *f->s);
        f->n--;
        k--;
    }
    if (f->s[k].off + f->s[k].size == f->top) {   // the last span gives the space back
        f->top = f->s[k].off;
        f->n--;
    }
}

// Lays out every owned value of the step for syms: offset[i] for roots, *arena (bytes) and *peak
// (live intermediate bytes at once, unaligned). Returns 0, -1 when node *bad's size overflows,
// -2 out of memory.
static int layout(const CpuProgram *p, const int64_t *syms, int64_t *offset, int64_t *arena,
                  int64_t *peak, int *bad) {
    const IrGraph *g = p->g;
    size_t n = (size_t)(g->n ? g->n : 1);
    int64_t *size = calloc(n, sizeof *size);
    int *head = malloc(n * sizeof *head), *next = malloc(n * sizeof *next);
    Spans f = {malloc(n * sizeof(Span)), 0, 0, 0};
    if (!size || !head || !next || !f.s) {
        free(size), free(head), free(next), free(f.s);
        return -2;
    }
    for (int i = 0; i < g->n; i++) head[i] = -1;
    int rc = 0;
    int64_t live = 0;
    *peak = 0;
    for (int i = 0; i < g->n && rc == 0; i++) {
        // the values node i brings to life: its own, or with an attention group its members'
        int placed[3] = {i, -1, -1}, nplaced = 1;
        if (p->lead[i] >= 0) {
            nplaced = 0;
            if (p->lead[i] == i)
                for (int k = 0; k < 3; k++)
                    if (p->members[i][k] >= 0) placed[nplaced++] = p->members[i][k];
        }
        for (int k = 0; k < nplaced; k++) {
            int v = placed[k];
            const IrNode *nd = &g->nodes[v];
            if (ir_is_leaf(nd) || p->root[v] != v) continue;
            int64_t cnt = ir_shape_numel(&nd->shape, syms);
            int64_t es = (int64_t)cpu_elem_size(nd->dtype, p->real);
            if (cnt < 0 || cnt > CPU_MAX_BYTES / es) {
                *bad = v;
                rc = -1;
                break;
            }
            size[v] = cnt * es;
            offset[v] = span_alloc(&f, aligned(size[v]));
            live += size[v];
            if (live > *peak) *peak = live;
            int e = p->end[v];
            if (e < g->n) {   // else an output (or a view's source that is one): kept to the end
                next[v] = head[e];
                head[e] = v;
            }
        }
        for (int r = head[i]; r >= 0; r = next[r]) {   // dead once node i ran
            span_free(&f, offset[r], aligned(size[r]));
            live -= size[r];
        }
    }
    *arena = f.high;
    free(size), free(head), free(next), free(f.s);
    return rc;
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

// This process's threads that are running or runnable now (state R in /proc/self/task/*/stat):
// OpenBLAS's pool, started before main, may be spinning. -1 when /proc cannot be read.
static long own_running_threads(void) {
    DIR *dir = opendir("/proc/self/task");
    if (!dir) return -1;
    long n = 0;
    for (struct dirent *e; (e = readdir(dir));) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/self/task/%.20s/stat", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f) continue;   // the thread ended
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[k] = 0;
        const char *rp = strrchr(buf, ')');   // "pid (comm) S ...": comm may hold spaces and ')'
        if (rp && rp[1] == ' ' && rp[2] == 'R') n++;
    }
    closedir(dir);
    return n;
}

// Whether other work would leave our OpenMP team fewer cores than threads (cpu.h): the fewest
// runnable tasks /proc/loadavg shows over 5 samples 1 ms apart, less this process's own running
// threads (the reader, and OpenBLAS's pool if it spins), plus our threads (OMP_NUM_THREADS's
// first number, else one a core) exceed the cores. (Not the 1-minute load average: it counts
// our own previous run, e.g. the quickstart's first part when the second starts.) false when
// /proc cannot be read.
static bool machine_busy(void) {
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu < 1) return false;
    long threads = ncpu;
    const char *nt = getenv("OMP_NUM_THREADS");
    if (nt) {
        char *end;
        long v = strtol(nt, &end, 10);
        if (end != nt && v >= 1 && v < threads) threads = v;
    }
    long fewest = LONG_MAX;
    for (int i = 0; i < 5; i++) {
        FILE *f = fopen("/proc/loadavg", "r");
        if (!f) return false;
        long running, total;
        int k = fscanf(f, "%*f %*f %*f %ld/%ld", &running, &total);
        fclose(f);
        long own = own_running_threads();
        if (k != 2 || own < 0) return false;
        long others = running > own ? running - own : 0;
        if (others < fewest) fewest = others;
        if (i < 4) nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    return fewest + threads > ncpu;
}

void cpu_prefer_short_spin(char **argv) {
    if (!argv || !argv[0] || getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (machine_busy() ? setenv("OMP_WAIT_POLICY", "PASSIVE", 0) != 0 : setenv("GOMP_SPINCOUNT", CPU_SPIN_COUNT, 0) != 0)
        return;
    execv("/proc/self/exe", argv);   // returns only on failure: run on with the default policy
}

// The float kernels built for the widest ISA this CPU has (all builds round alike: see
// runtime/CMakeLists.txt); TRLC_CPU_ISA=base|avx2|avx512 asks for one (never one the CPU lacks).
// TRLC_CPU_ISA: base, avx2 or avx512 (the widest this CPU has, at most the one named; unset: the
// widest); anything else is reported (when d is not NULL) and -1
static const char *const cpu_isas[] = {"base", "avx2", "avx512", NULL};
static int cpu_isa_wanted(Diag *d) { return env_choice(d, "TRLC_CPU_ISA", cpu_isas, 2); }

static int (*pick_f32_kernels(int want))(CpuExec *) {   // want: an index into cpu_isas
#ifdef TRLC_CPU_ISA_CLONES
    __builtin_cpu_init();
    bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                __builtin_cpu_supports("bmi2");
    bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                  __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
    if (want == 0) avx2 = avx512 = false;
    if (want == 1) avx512 = false;
    if (avx512) return cpu_exec_f32_avx512;
    if (avx2) return cpu_exec_f32_avx2;
#else
    (void)want;
#endif
    return cpu_exec_f32;
}

const char *cpu_isa_name(void) {
    int want = cpu_isa_wanted(NULL);
    int (*k)(CpuExec *) = pick_f32_kernels(want < 0 ? 2 : want);
#ifdef TRLC_CPU_ISA_CLONES
    if (k == cpu_exec_f32_avx512) return "avx512";
    if (k == cpu_exec_f32_avx2) return "avx2";
#endif
    return k == cpu_exec_f32 ? "base" : "?";
}

CpuProgram *cpu_program_new(const IrGraph *g, IrDType real, Diag *d) {
    blas_single_thread();
    if (real != IR_F32 && real != IR_F64) {
        if (d) diag_plain_error(d, "the CPU backend computes in f32 or f64, not %s", ir_dtype_name(real));
        return NULL;
    }
    if (!ir_validate(g, d)) return NULL;   // kernels rely on the builders' shape rules
    int isa = cpu_isa_wanted(d), profile = env_flag(d, "TRLC_CPU_PROFILE");
    int64_t block_max, chunk_bytes;   // test hooks: small values take the other paths
    if (isa < 0 || profile < 0 || env_count(d, "TRLC_CPU_SDPA_BLOCK_MAX", CPU_SDPA_BLOCK_MAX_BYTES, 0, &block_max) ||
        env_count(d, "TRLC_CPU_LCE_CHUNK_BYTES", CPU_LCE_CHUNK_BYTES, 1, &chunk_bytes))
        return NULL;
    CpuProgram *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->g = g;
    p->real = real;
    p->d = d;
    p->exec_f32 = pick_f32_kernels(isa);
    p->profile = profile == 1;
    p->sdpa_block_max = block_max, p->lce_chunk_bytes = chunk_bytes;
    size_t n = (size_t)(g->n ? g->n : 1);
    p->t = calloc(n, sizeof *p->t);
    p->bind = calloc(n, sizeof *p->bind);
    p->bind_bytes = calloc(n, sizeof *p->bind_bytes);
    p->last_use = malloc(n * sizeof *p->last_use);
    p->is_out = calloc(n, sizeof *p->is_out);
    p->root = malloc(n * sizeof *p->root);
    p->end = malloc(n * sizeof *p->end);
    p->offset = calloc(n, sizeof *p->offset);
    p->lead = malloc(n * sizeof *p->lead);
    p->members = malloc(n * sizeof *p->members);
    if (!p->t || !p->bind || !p->bind_bytes || !p->last_use || !p->is_out ||
        !p->root || !p->end || !p->offset || !p->lead || !p->members) {
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
    // Views share their source's bytes: a root lives until its last view's last reader.
    for (int i = 0; i < g->n; i++) {
        const IrNode *nd = &g->nodes[i];
        p->root[i] = is_view(nd) ? p->root[nd->in[0]] : i;
        p->end[i] = -1;
    }
    for (int i = 0; i < g->n; i++) {
        int e = p->is_out[i] ? g->n : p->last_use[i] < 0 ? i : p->last_use[i];
        int r = p->root[i];
        if (e > p->end[r]) p->end[r] = e;
    }
    group_attention_grads(p);
    return p;
}

void cpu_program_free(CpuProgram *p) {
    if (!p) return;
    free(p->t);
    free(p->bind);
    free(p->bind_bytes);
    free(p->last_use);
    free(p->is_out);
    free(p->root);
    free(p->end);
    free(p->offset);
    free(p->lead);
    free(p->members);
    free(p->arena);
    free(p);
}

void cpu_set_check_finite(CpuProgram *p, bool on) { p->check_finite = on; }

// Index of the first non-finite element of a real tensor, or -1.
// A node of a 16-bit float dtype holds its values rounded to that dtype (as the GPU stores them):
// every op's result is rounded here, once, except a cast's (exec_cast rounds as it converts).
static void round_to_dtype(CpuTensor *t, IrDType dt, IrDType real) {
    if (dt == IR_BF16 && real == IR_F32) {   // round to nearest even on the bits; inf and NaN stay
        uint32_t *u = t->data;
        for (int64_t i = 0; i < t->numel; i++)
            if ((u[i] & 0x7f800000u) != 0x7f800000u) u[i] = (u[i] + 0x7fffu + ((u[i] >> 16) & 1u)) & 0xffff0000u;
        return;
    }
    int bits = dt == IR_BF16 ? 8 : 11, emin = dt == IR_BF16 ? -126 : -14;
    double maxv = dt == IR_BF16 ? 3.3895313892515355e38 : 65504.0;
    for (int64_t i = 0; i < t->numel; i++) {
        if (real == IR_F32) ((float *)t->data)[i] = (float)cpu_round_float(((float *)t->data)[i], bits, emin, maxv);
        else ((double *)t->data)[i] = cpu_round_float(((double *)t->data)[i], bits, emin, maxv);
    }
}

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
        !ir_is_leaf(&p->g->nodes[leaf])) {
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
    if (!p->planned || memcmp(p->plan_sym, syms, sizeof syms) != 0) {
        p->planned = false;
        int bad = -1;
        int rc = layout(p, syms, p->offset, &p->arena_bytes, &p->peak_bytes, &bad);
        if (rc == -1) return runtime_error(p, bad, "tensor size overflows (check B and T)");
        if (rc == 0 && p->arena_bytes > p->arena_cap) {
            free(p->arena);
            p->arena_cap = 0;
            p->arena = aligned_alloc(ARENA_ALIGN, (size_t)p->arena_bytes);
            if (p->arena) p->arena_cap = p->arena_bytes;
            else rc = -2;
        }
        if (rc != 0) {
            if (p->d) diag_plain_error(p->d, "CPU backend: out of memory allocating %.1f MB for a step",
                                       (double)p->arena_bytes / 1e6);
            return -1;
        }
        memcpy(p->plan_sym, syms, sizeof syms);
        p->planned = true;
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

        if (ir_is_leaf(n)) {
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

        if (is_view(n)) {   // the same bytes as its input, which the plan keeps alive
            t->data = p->t[n->in[0]].data;
            goto ran;
        }
        t->data = p->arena + p->offset[i];

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
        e.bf16_operands = n->op != IR_MATMUL && ir_lowp_operands(n->op) > 0 && p->g->nodes[n->in[0]].dtype == IR_BF16;
        e.sdpa_block_max = p->sdpa_block_max, e.lce_chunk_bytes = p->lce_chunk_bytes;
        if (p->lead[i] == i)   // an attention group: the leader writes its members' outputs too
            for (int k = 0; k < 3; k++) {
                int m = p->members[i][k];
                if (m >= 0 && m != i) e.sdpa_grads[k] = p->arena + p->offset[m];
            }
        double t0 = p->profile ? now_secs() : 0;
        // a member after its leader: computed already (in its place in the arena)
        int rc = p->lead[i] >= 0 && p->lead[i] != i ? 0
                 : p->real == IR_F64                ? cpu_exec_f64(&e)
                                                    : p->exec_f32(&e);
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
        if ((n->dtype == IR_BF16 || n->dtype == IR_F16) && n->op != IR_CAST) round_to_dtype(t, n->dtype, p->real);
        double bad;
        int64_t at = p->check_finite ? first_nonfinite(t, &bad) : -1;
        if (at >= 0) {
            snprintf(msg, sizeof msg, "%s at element %" PRId64 " of the result (%s)",
                     isnan(bad) ? "NaN" : "infinity", at, n->backward ? "backward" : "forward");
            release_all(p);
            return runtime_error(p, i, msg);
        }
    ran:
        for (int k = 0; k < n->nin; k++) {
            IrId in = n->in[k];
            if (p->last_use[in] == i && !p->is_out[in] && !ir_is_leaf(&g->nodes[in])) release(p, in);
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
    int64_t *offset = calloc((size_t)(p->g->n ? p->g->n : 1), sizeof *offset);
    int64_t arena, peak;
    int bad;
    int rc = offset ? layout(p, sym_vals, offset, &arena, &peak, &bad) : -2;
    free(offset);
    return rc == 0 ? peak : -1;
}

int64_t cpu_arena_bytes(const CpuProgram *p) { return p->planned ? p->arena_bytes : 0; }

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
