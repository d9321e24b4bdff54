// exec.c — the GPU backend (exec.h): walks the fusion plan's steps on one device. Fused groups
// launch their generated kernel (arguments: outputs, inputs, dropout seed/salt pairs, B, T, step —
// the order codegen_cuda.c writes); matrix products become one cuBLASLt call (or one per batch
// element when the batch dimensions broadcast in a way one stride cannot express); the other
// library steps launch the hand-written kernels of kernels/*.cu with the argument lists and launch
// shapes their header comments give. Buffers: one arena per (B, T) laid out by mp_plan, params
// and gradients in their own allocations. Everything goes on the program's stream; after a
// shape's warm-up run its steps are captured as a CUDA graph and replayed ("CUDA graphs" below).
// Not here: deciding what fuses (fuse.c), kernel source (codegen_cuda.c, kernels/), compiling
// (nvrtc.c), the driver (device.c), cuBLASLt (blas.c).
#include "exec.h"
#include "codegen_cuda.h"
#include "env.h"
#include "fuse.h"
#include "kernels_ref.h"
#include "memplan.h"
#include <stdlib.h>
#include <string.h>

enum { EXEC_MAX_LIB = 32 };

// A captured fused kernel that reads the dropout step: its graph node, updated when the step changes.
typedef struct GraphDrop {
    void *node;
    int step;                   // the plan step it launches
} GraphDrop;

// One batch shape's CUDA graph (exec.h: EXEC_GRAPH_SHAPES of them, least recently used replaced).
typedef struct ShapeGraph {
    int64_t B, T;
    uint64_t sig;               // the buffer layout it was made for (layout_sig)
    bool warm;                  // one run of this shape (and layout) has run step by step
    RtCudaGraph *graph;         // the captured run, instantiated (NULL: not captured yet)
    uint64_t step;              // the dropout step its kernel nodes hold
    GraphDrop *drop;
    int ndrop, capdrop;
    int launches;               // launches the captured run made
    uint64_t used;              // LRU clock
} ShapeGraph;

typedef struct LibFn {
    const char *name;
    void *fn;
} LibFn;

typedef struct Leaf {
    const void *host;       // bound host buffer (NULL: unbound)
    size_t nbytes;
    RtCudaPtr dev;          // params: their own buffer (inputs live in the arena)
    size_t dev_bytes;
    const void *uploaded;   // frozen params: the host buffer last uploaded
    struct Leaf *shared;    // a param whose buffer is another program's leaf (cuda_share_params)
    bool resident;          // a trainable param the device owns (cuda_params_resident): not re-uploaded
    struct CudaProgram *src;   // an input bound to src's output src_out (cuda_bind_output): copied on the device
    int src_out;
} Leaf;

struct CudaProgram {
    const IrGraph *g;
    Diag *d;
    RtCudaDevice *dev;
    RtCudaCache *cache;
    RtBlas *blas;
    RtCudaStream stream;        // all of a run's work (created per program)
    bool graphs_on;             // capture and replay CUDA graphs ($TRLC_CUDA_GRAPHS != 0, driver support)
    bool attn_split;            // tensor-core attention backward as the dq and dkdv kernels ($TRLC_ATTN_BWD=split)
    ShapeGraph graphs[EXEC_GRAPH_SHAPES];
    int ngraphs;
    uint64_t graph_clock;
    ShapeGraph *capturing;      // during a capture: where run_fused records its dropout nodes
    int graph_launches;         // graphs launched since the program was made
    char arch[16];
    FusePlan plan;
    void **kfn;                 // per unique fused kernel
    LibFn lib[EXEC_MAX_LIB];
    int nlib;
    Leaf *leaf;                 // per node
    RtCudaPtr *grad;            // per node: its gradient buffer when it is a gradient output, else 0
    RtCudaPtr *rope_freq;       // per node: a rope node's inv_freq (double, D/2)
    RtCudaPtr workspace, bad;   // cuBLASLt's workspace; embed's out-of-range flag (one int per node)
    // the plan for the last (B, T)
    MpPlan mp;
    bool planned;
    int64_t sym[IR_NSYMS];
    RtCudaPtr arena;
    int64_t arena_bytes;
    int64_t *off[MP_NWHAT];     // per node: offset in the arena, -1 when none
    // outputs of the last run, downloaded on demand
    CpuTensor *outs;
    size_t *out_cap;            // bytes allocated for each
    bool *out_ready;
    bool *used;                 // per node: read by some node or a graph output (leaves to upload)
    bool ran;
    int launches;
    int64_t fixed_bytes;        // params, grads, rope tables, workspace
    CudaProgram *owner;         // cuda_share_params: whose param buffers to use
    int64_t transfer_bytes;     // host<->device bytes moved (cuda_transfer_bytes)
};

static bool is_float(IrDType t) { return t == IR_F32 || t == IR_BF16 || t == IR_F16 || t == IR_F64; }

static size_t esize(IrDType t) { return t == IR_U8 ? 1 : t == IR_BF16 ? 2 : 4; }

static uint16_t to_bf16(float f) {   // round to nearest even, as the kernels' trlc_bf16 conversion
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7f800000u) == 0x7f800000u) return (uint16_t)((u >> 16) | ((u & 0xffffu) ? 0x40u : 0));   // inf, NaN
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static const char *where(const CudaProgram *p, IrId id, char *buf, size_t n) {
    char loc[200];
    snprintf(buf, n, "%s %%%d at %s", ir_op_name(p->g->nodes[id].op), id, fuse_loc_str(p->d, p->g->nodes[id].loc, loc, sizeof loc));
    return buf;
}

// ---------------------------------------------------------------------------------------------
// building: what the plan needs, checked before anything is compiled

// The library kernel file and function a LIBRARY step needs, or NULL with a reason.
static const char *unsupported(const IrGraph *g, IrId id) {
    const IrNode *n = &g->nodes[id];
    switch (n->op) {
    case IR_SDPA: case IR_SDPA_BWD_Q: case IR_SDPA_BWD_K: case IR_SDPA_BWD_V: {
        const IrNode *q = &g->nodes[n->in[0]], *k = &g->nodes[n->in[1]];
        if (q->shape.rank != 4 || k->shape.rank != 4 || !ir_dim_eq(q->shape.d[2], k->shape.d[2]))
            return "attention with fewer queries than keys (a KV cache) has no GPU kernel yet";
        IrDim D = q->shape.d[3];
        if (D.syms || D.coef > 128 || D.coef < 1) return "attention's GPU kernel needs a head dim of at most 128";
        return NULL;
    }
    case IR_LINEAR_CE: case IR_LINEAR_CE_BWD_X: case IR_LINEAR_CE_BWD_W: case IR_LINEAR_ARGMAX:
        return g->nodes[n->in[1]].shape.d[0].syms ? "linear_ce needs a constant vocabulary" : NULL;
    case IR_CROSS_ENTROPY: case IR_CROSS_ENTROPY_BWD: case IR_ROPE: case IR_EMBED: case IR_EMBED_BWD:
    case IR_ARANGE: case IR_SOFTMAX: case IR_LOG_SOFTMAX: case IR_GATHER: case IR_GATHER_BWD:
    case IR_DEQUANT_NF4: case IR_DEQUANT_MAP8: return NULL;
    case IR_PERMUTE: case IR_SLICE: case IR_PAD: case IR_CONCAT:
        return n->dtype == IR_U8 ? "a layout copy of bytes has no GPU kernel yet" : NULL;
    default: return "this op has no GPU kernel yet";
    }
}

static int check_graph(CudaProgram *p) {
    const IrGraph *g = p->g;
    int bad = 0;
    char w[256];
    // dtypes: fp32 everywhere, and bf16 where mixed precision (autocast.h) puts it: casts and other
    // fused nodes (bf16 storage), frozen params, dequantized weights, matrix-product operands,
    // ropes of f32 x that only attention reads (q, k), and attention's output over bf16 q, k, v
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        bool ok = n->dtype != IR_F16 && n->dtype != IR_F64;
        if (n->op == IR_SDPA && n->dtype == IR_BF16 && g->nodes[n->in[0]].dtype != IR_BF16) {   // ir_sdpa_to forbids it
            diag_error(p->d, n->loc, "GPU (internal): %s writes bf16 over %s q: only the tensor-core kernels "
                       "(bf16 q, k, v) write a bf16 output", where(p, i, w, sizeof w), ir_dtype_name(g->nodes[n->in[0]].dtype));
            return -1;
        }
        if (ok && p->plan.steps && p->plan.step_of[i] >= 0 && p->plan.steps[p->plan.step_of[i]].kind != FUSE_KERNEL) {
            const FuseStep *st = &p->plan.steps[p->plan.step_of[i]];
            if (st->kind == FUSE_GEMM) {
                IrDType a = g->nodes[n->in[0]].dtype, b = g->nodes[n->in[1]].dtype;
                ok = a == b && (a == IR_F32 || a == IR_BF16) && (n->dtype == IR_F32 || n->dtype == a);
                // an addend of the result's type (f32 or bf16: a LoRA sum's bf16 C/D, a biased linear
                // output's bf16 bias and D; cuBLASLt's bias is of D's type): the result's shape or a
                // bias of its last dim (ir.h)
                if (ok && n->nin == 3) {
                    const IrShape *sc = &g->nodes[n->in[2]].shape;
                    IrDType ct = g->nodes[n->in[2]].dtype;
                    ok = (n->dtype == IR_F32 || n->dtype == IR_BF16) && ct == n->dtype &&
                         (ir_shape_eq(sc, &n->shape) || ir_bias_shape(sc, &n->shape));
                }
            } else if (st->kind == FUSE_LIBRARY && n->op != IR_DEQUANT_NF4) {
                // attention and linear_ce may read bf16 operands (ir_lowp_operands: the tensor-core
                // kernels, the head's products), all alike; embed a bf16 table
                int lowp = g->nodes[n->in[0]].dtype == IR_BF16 ? ir_lowp_operands(n->op) : 0;
                ok = n->dtype != IR_BF16 || (n->op == IR_ROPE && g->nodes[n->in[0]].dtype == IR_F32) ||   // rope: bf16 q, k
                     (n->op == IR_SDPA && lowp);   // attention's bf16 output
                for (int k = 0; k < n->nin && ok; k++)
                    ok = k < lowp ? g->nodes[n->in[k]].dtype == IR_BF16
                                  : g->nodes[n->in[k]].dtype != IR_BF16 || (n->op == IR_EMBED && k == 1);
            }
        }
        if (!ok) {
            diag_error(p->d, n->loc, "the GPU backend cannot run %s in %s yet (fp32, or bf16 products: precision = bf16)",
                       where(p, i, w, sizeof w), ir_dtype_name(n->dtype));
            return -1;
        }
    }
    for (int s = 0; s < p->plan.nsteps; s++) {
        const FuseStep *st = &p->plan.steps[s];
        if (st->kind != FUSE_LIBRARY) continue;
        const char *why = unsupported(g, st->node);
        if (why && bad++ < 5) diag_error(p->d, g->nodes[st->node].loc, "%s: %s", where(p, st->node, w, sizeof w), why);
    }
    return bad ? -1 : 0;
}

// Whether attention's backward step s reads a bf16 O: its forward's output (ir.h IR_SDPA), or with
// bf16 q, k, v and no forward in the plan the bf16 O it recomputes.
static bool attention_o_bf16(const CudaProgram *p, int s) {
    const IrGraph *g = p->g;
    IrId f = p->plan.lib_fwd[s];
    if (f != IR_NONE) return g->nodes[f].dtype == IR_BF16;
    return g->nodes[g->nodes[p->plan.steps[s].node].in[0]].dtype == IR_BF16;
}

static void *lib_fn(CudaProgram *p, const char *name) {
    for (int i = 0; i < p->nlib; i++)
        if (!strcmp(p->lib[i].name, name)) return p->lib[i].fn;
    return NULL;
}

// Compiles the library files the plan uses and loads the functions it launches.
static int load_library(CudaProgram *p) {
    const IrGraph *g = p->g;
    const char *files[16];
    int nfiles = 0;
    const char *fns[EXEC_MAX_LIB], *fn_file[EXEC_MAX_LIB];
    int nfns = 0;
#define NEED(file_, fn_)                                                              \
    do {                                                                              \
        bool seen_ = false;                                                           \
        for (int q_ = 0; q_ < nfns && !seen_; q_++) seen_ = !strcmp(fns[q_], (fn_));  \
        if (!seen_ && nfns < EXEC_MAX_LIB) fn_file[nfns] = (file_), fns[nfns++] = (fn_); \
    } while (0)
    for (int s = 0; s < p->plan.nsteps; s++) {
        const FuseStep *st = &p->plan.steps[s];
        if (st->kind != FUSE_LIBRARY) continue;
        const IrNode *n = &g->nodes[st->node];
        const char *file = NULL, *k = cg_library_kernel(g, st->node, &file);
        if (!k || !file) continue;
        NEED(file, k);
        if (n->op == IR_SDPA_BWD_Q || n->op == IR_SDPA_BWD_K || n->op == IR_SDPA_BWD_V) {
            bool tc = g->nodes[n->in[0]].dtype == IR_BF16;
            bool o16 = attention_o_bf16(p, s);
            if (p->plan.lib_fwd[s] == IR_NONE)   // the forward is not in the plan: recomputed
                NEED(file, tc ? "trlc_attention_tc_forward_bf16" : "trlc_attention_forward");
            NEED(file, o16 ? "trlc_attention_tc_backward_dq_bf16" : tc ? "trlc_attention_tc_backward_dq" : "trlc_attention_backward_dq");
            NEED(file, tc ? "trlc_attention_tc_backward_dkdv" : "trlc_attention_backward_dkdv");
            if (tc) {   // the fused backward (run_attention_bwd): delta, then one kernel
                NEED(file, o16 ? "trlc_attention_tc_backward_delta_bf16" : "trlc_attention_tc_backward_delta");
                NEED(file, "trlc_attention_tc_backward_fused");
            }
        }
        if (n->op == IR_CROSS_ENTROPY_BWD || n->op == IR_LINEAR_CE_BWD_X || n->op == IR_LINEAR_CE_BWD_W)
            NEED(file, "trlc_cross_entropy_forward_f32");
        if (n->op == IR_PAD) NEED("layout.cu", "trlc_fill");
    }
#undef NEED
    for (int i = 0; i < nfns; i++) {
        bool seen = false;
        for (int f = 0; f < nfiles && !seen; f++) seen = !strcmp(files[f], fn_file[i]);
        if (!seen && nfiles < 16) files[nfiles++] = fn_file[i];
    }
    RtCudaProgram progs[16];
    memset(progs, 0, sizeof progs);
    for (int f = 0; f < nfiles; f++) {
        progs[f].name = files[f];
        progs[f].source = cg_library_source(files[f]);
        if (!progs[f].source) {
            diag_plain_error(p->d, "GPU: the library kernel file %s is not embedded in trlc", files[f]);
            return -1;
        }
    }
    int rc = nfiles ? rt_cuda_compile(p->cache, progs, nfiles, p->arch, false, 0, p->d) : 0;
    for (int i = 0; rc == 0 && i < nfns; i++) {
        int f = 0;
        while (strcmp(files[f], fn_file[i])) f++;
        void *fn = NULL;
        if (rt_cuda_load_source(p->dev, progs[f].cubin, progs[f].source, fns[i], &fn) != 0) rc = -1;
        else p->lib[p->nlib].name = fns[i], p->lib[p->nlib++].fn = fn;
    }
    for (int f = 0; f < nfiles; f++) rt_cuda_program_free(&progs[f]);
    return rc ? -1 : 0;
}

static int load_fused(CudaProgram *p) {
    int nk = p->plan.nkernels;
    p->kfn = calloc((size_t)nk + 1, sizeof *p->kfn);
    RtCudaProgram *progs = calloc((size_t)nk + 1, sizeof *progs);
    char **src = calloc((size_t)nk + 1, sizeof *src);
    int rc = p->kfn && progs && src ? 0 : -1;
    if (rc) diag_plain_error(p->d, "GPU: out of memory");
    for (int k = 0; rc == 0 && k < nk; k++) {
        src[k] = cg_cuda_kernel(&p->plan, k, p->d);
        if (!src[k]) {
            diag_plain_error(p->d, "GPU: out of memory generating kernel %s", p->plan.kernels[k].name);
            rc = -1;
        }
        progs[k].name = p->plan.kernels[k].name;
        progs[k].source = src[k];
        progs[k].no_fma = true;
    }
    if (rc == 0 && nk > 0 && rt_cuda_compile(p->cache, progs, nk, p->arch, false, 0, p->d) != 0) rc = -1;
    for (int k = 0; rc == 0 && k < nk; k++)
        if (rt_cuda_load_source(p->dev, progs[k].cubin, src[k], p->plan.kernels[k].name, &p->kfn[k]) != 0) rc = -1;
    for (int k = 0; progs && k < nk; k++) rt_cuda_program_free(&progs[k]);
    for (int k = 0; src && k < nk; k++) free(src[k]);
    free(progs);
    free(src);
    return rc;
}

CudaProgram *cuda_program_new(const IrGraph *g, RtCudaDevice *dev, RtCudaCache *cache, Diag *d) {
    int graphs = env_choice(d, "TRLC_CUDA_GRAPHS", (const char *const[]){"0", "1", NULL}, 1);   // 0: step by step
    if (graphs < 0) return NULL;
    int attn_bwd = env_choice(d, "TRLC_ATTN_BWD", (const char *const[]){"fused", "split", NULL}, 0);
    if (attn_bwd < 0) return NULL;
    CudaProgram *p = calloc(1, sizeof *p);
    if (!p) {
        diag_plain_error(d, "GPU: out of memory");
        return NULL;
    }
    p->g = g, p->d = d, p->dev = dev, p->cache = cache;
    if (!rt_cuda_device_arch(0, p->arch, sizeof p->arch)) snprintf(p->arch, sizeof p->arch, "sm_90");
    size_t n = (size_t)g->n + 1;
    p->leaf = calloc(n, sizeof *p->leaf);
    p->grad = calloc(n, sizeof *p->grad);
    p->rope_freq = calloc(n, sizeof *p->rope_freq);
    p->outs = calloc((size_t)g->nouts + 1, sizeof *p->outs);
    p->out_ready = calloc((size_t)g->nouts + 1, 1);
    p->out_cap = calloc((size_t)g->nouts + 1, sizeof *p->out_cap);
    p->used = calloc(n, 1);
    for (int w = 0; w < MP_NWHAT; w++) p->off[w] = malloc(n * sizeof *p->off[w]);
    bool ok = p->leaf && p->grad && p->rope_freq && p->outs && p->out_ready && p->out_cap && p->used;
    for (int w = 0; w < MP_NWHAT; w++) ok = ok && p->off[w];
    if (!ok) {
        diag_plain_error(d, "GPU: out of memory");
        cuda_program_free(p);
        return NULL;
    }
    for (int i = 0; p->used && i < g->n; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) p->used[g->nodes[i].in[k]] = true;
    for (int o = 0; p->used && o < g->nouts; o++)
        if (g->outs[o].id >= 0 && g->outs[o].id < g->n) p->used[g->outs[o].id] = true;
    if (fuse_plan(g, d, &p->plan) != 0 || check_graph(p) != 0 || load_fused(p) != 0 || load_library(p) != 0) {
        cuda_program_free(p);
        return NULL;
    }
    // fixed buffers: cuBLASLt's workspace, embed flags, gradients (fp32, one per gradient output)
    size_t ws = MP_GEMM_WORKSPACE;
    if (rt_cuda_alloc(dev, ws, &p->workspace) != 0 || rt_cuda_alloc(dev, n * sizeof(int), &p->bad) != 0) {
        cuda_program_free(p);
        return NULL;
    }
    p->fixed_bytes = (int64_t)ws + (int64_t)(n * sizeof(int));
    p->blas = rt_blas_open(p->workspace, ws, d);
    if (!p->blas || rt_cuda_stream_new(dev, &p->stream) != 0) {
        cuda_program_free(p);
        return NULL;
    }
    rt_blas_set_stream(p->blas, p->stream);
    p->graphs_on = graphs == 1 && rt_cuda_graphs_supported(dev);
    p->attn_split = attn_bwd == 1;
    for (int o = 0; o < g->nouts; o++) {
        IrId id = g->outs[o].id;
        IrId of = g->outs[o].grad_of;
        // gradients of params (memplan's grads); those of inputs are planned with the activations
        if (of < 0 || of >= g->n || g->nodes[of].op != IR_PARAM || id < 0 || id >= g->n || p->grad[id]) continue;
        const IrNode *x = &g->nodes[id];
        if (ir_is_leaf(x) || x->op == IR_RESHAPE) continue;   // views live in the arena (memplan)
        int64_t numel = ir_shape_numel(&x->shape, (const int64_t[IR_NSYMS]){1, 1});
        if (numel < 0) continue;
        if (rt_cuda_alloc(dev, (size_t)numel * 4 + 4, &p->grad[id]) != 0) {
            cuda_program_free(p);
            return NULL;
        }
        p->fixed_bytes += numel * 4;
    }
    return p;
}

void cuda_program_free(CudaProgram *p) {
    if (!p) return;
    const IrGraph *g = p->g;
    for (int i = 0; p->leaf && i < g->n; i++)
        if (p->leaf[i].dev && !p->leaf[i].shared) rt_cuda_free(p->dev, p->leaf[i].dev);
    for (int i = 0; p->grad && i < g->n; i++)
        if (p->grad[i]) rt_cuda_free(p->dev, p->grad[i]);
    for (int i = 0; p->rope_freq && i < g->n; i++)
        if (p->rope_freq[i]) rt_cuda_free(p->dev, p->rope_freq[i]);
    if (p->arena) rt_cuda_free(p->dev, p->arena);
    if (p->workspace) rt_cuda_free(p->dev, p->workspace);
    if (p->bad) rt_cuda_free(p->dev, p->bad);
    for (int i = 0; i < p->ngraphs; i++) {
        rt_cuda_graph_free(p->dev, p->graphs[i].graph);
        free(p->graphs[i].drop);
    }
    rt_blas_close(p->blas);
    rt_cuda_stream_free(p->dev, p->stream);
    for (int o = 0; p->outs && o < g->nouts; o++) free(p->outs[o].data);
    free(p->outs);
    free(p->out_cap);
    free(p->out_ready);
    free(p->used);
    free(p->kfn);
    free(p->leaf);
    free(p->grad);
    free(p->rope_freq);
    for (int w = 0; w < MP_NWHAT; w++) free(p->off[w]);
    mp_plan_free(&p->mp);
    if (p->plan.g) fuse_plan_free(&p->plan);
    free(p);
}

void cuda_share_params(CudaProgram *p, CudaProgram *owner) { p->owner = owner != p ? owner : NULL; }

int cuda_bind(CudaProgram *p, IrId leaf, const void *data, size_t nbytes) {
    if (leaf < 0 || leaf >= p->g->n || !ir_is_leaf(&p->g->nodes[leaf])) {
        diag_plain_error(p->d, "GPU: node %d is not an input or param", leaf);
        return -1;
    }
    p->leaf[leaf].host = data, p->leaf[leaf].nbytes = nbytes;
    p->leaf[leaf].src = NULL;   // back to host uploads
    return 0;
}

int cuda_bind_name(CudaProgram *p, const char *name, const void *data, size_t nbytes) {
    IrId id = ir_find(p->g, name);
    if (id == IR_NONE) {
        diag_plain_error(p->d, "GPU: the program has no input or param named '%s'", name);
        return -1;
    }
    return cuda_bind(p, id, data, nbytes);
}

// A shape's element count as the monomial c * B^b * T^t (every dim is coef * B^x * T^y); false
// where c overflows.
static bool numel_monomial(const IrShape *s, int64_t *c, int *b, int *t) {
    *c = 1, *b = 0, *t = 0;
    for (int k = 0; k < s->rank; k++) {
        if (s->d[k].coef < 0 || (s->d[k].coef && *c > INT64_MAX / s->d[k].coef)) return false;
        *c *= s->d[k].coef;
        *b += (s->d[k].syms >> IR_SYM_B) & 1, *t += (s->d[k].syms >> IR_SYM_T) & 1;
    }
    return true;
}

int cuda_bind_output(CudaProgram *p, const char *input, CudaProgram *src, int out_index) {
    if (!p) return -1;
    IrId id = input ? ir_find(p->g, input) : IR_NONE;
    if (id == IR_NONE) {
        diag_plain_error(p->d, "GPU: the program has no input named '%s' to bind to another program's output",
                         input ? input : "(none)");
        return -1;
    }
    const IrNode *n = &p->g->nodes[id];
    if (n->op != IR_INPUT) {
        diag_error(p->d, n->loc, "GPU: '%s' is a %s, not an input: only an input can read another program's output",
                   input, n->op == IR_PARAM ? "param" : "computed value");
        return -1;
    }
    if (!src || src == p || src->dev != p->dev) {
        diag_error(p->d, n->loc, "GPU: input '%s' cannot read an output of %s", input,
                   !src ? "no program" : src == p ? "its own program" : "a program on another device");
        return -1;
    }
    if (out_index < 0 || out_index >= src->g->nouts) {
        diag_error(p->d, n->loc, "GPU: input '%s' cannot read output %d of the other program: it has %d output%s", input,
                   out_index, src->g->nouts, src->g->nouts == 1 ? "" : "s");
        return -1;
    }
    const IrOutput *o = &src->g->outs[out_index];
    if (o->id < 0 || o->id >= src->g->n) {
        diag_error(p->d, n->loc, "GPU: input '%s' cannot read output %d ('%s') of the other program: it has no value",
                   input, out_index, o->name ? o->name : "?");
        return -1;
    }
    const IrNode *on = &src->g->nodes[o->id];
    if (on->dtype != n->dtype) {
        diag_error(p->d, n->loc, "GPU: input '%s' (%s) cannot read the other program's output '%s' (%s): the dtypes differ",
                   input, ir_dtype_name(n->dtype), o->name, ir_dtype_name(on->dtype));
        return -1;
    }
    // element counts that differ at every (B, T): refused now (equal ones are checked again at each
    // run, at the two programs' own B and T)
    int64_t c1, c2;
    int b1, b2, t1, t2;
    if (numel_monomial(&n->shape, &c1, &b1, &t1) && numel_monomial(&on->shape, &c2, &b2, &t2) &&
        (c1 != c2 || b1 != b2 || t1 != t2)) {
        char s1[128], s2[128];
        diag_error(p->d, n->loc, "GPU: input '%s' %s cannot read the other program's output '%s' %s: the sizes differ",
                   input, ir_shape_str(&n->shape, s1, sizeof s1), o->name, ir_shape_str(&on->shape, s2, sizeof s2));
        return -1;
    }
    Leaf *l = &p->leaf[id];
    l->host = NULL, l->nbytes = 0, l->src = src, l->src_out = out_index;
    return 0;
}

// ---------------------------------------------------------------------------------------------
// running

// The device address of node id's value (views: their input's).
static RtCudaPtr addr(const CudaProgram *p, IrId id) {
    const IrGraph *g = p->g;
    while (g->nodes[id].op == IR_RESHAPE) id = g->nodes[id].in[0];
    if (g->nodes[id].op == IR_PARAM) return p->leaf[id].dev;
    if (p->grad[id]) return p->grad[id];
    int64_t o = p->off[MP_VALUE][id];
    return o >= 0 ? p->arena + (RtCudaPtr)o : 0;
}

static RtCudaPtr aux(const CudaProgram *p, IrId id, MpWhat w) {
    int64_t o = p->off[w][id];
    return o >= 0 ? p->arena + (RtCudaPtr)o : 0;
}

static int64_t dimv(const CudaProgram *p, const IrShape *s, int k) { return ir_dim_value(s->d[k], p->sym); }
static int64_t numel_of(const CudaProgram *p, IrId id) { return ir_shape_numel(&p->g->nodes[id].shape, p->sym); }

static int plan_for(CudaProgram *p, const int64_t *sym) {
    if (p->planned && p->sym[0] == sym[0] && p->sym[1] == sym[1]) return 0;
    mp_plan_free(&p->mp);
    p->planned = false;
    p->ran = false;   // the last run's outputs are gone with its layout (cuda_output, cuda_bind_output)
    if (mp_plan(p->g, &p->plan, sym, "fp32", &p->mp, p->d) != 0) return -1;
    for (int w = 0; w < MP_NWHAT; w++)
        for (int i = 0; i < p->g->n; i++) p->off[w][i] = -1;
    for (int i = 0; i < p->mp.nbufs; i++) p->off[p->mp.bufs[i].what][p->mp.bufs[i].node] = p->mp.bufs[i].offset;
    if (p->mp.activations > p->arena_bytes) {
        if (p->arena) rt_cuda_free(p->dev, p->arena);
        p->arena = 0, p->arena_bytes = 0;
        if (rt_cuda_alloc(p->dev, (size_t)p->mp.activations, &p->arena) != 0) {
            size_t fr = 0, tot = 0;
            bool known = rt_cuda_mem_info(p->dev, &fr, &tot);
            diag_hint(p->d, "the step at B=%lld, T=%lld needs %.2f GiB of activations (the memory plan) beside %.2f GiB "
                      "of weights, gradients and workspace held already; %s%.2f GiB of %.2f GiB free. `trlc check "
                      "SPEC --memory` shows the plan; a smaller batch or max_len, or `recompute = true`, lowers it",
                      (long long)sym[0], (long long)sym[1], (double)p->mp.activations / (1 << 30),
                      (double)p->fixed_bytes / (1 << 30), known ? "the device has " : "unknown: ",
                      (double)fr / (1 << 30), (double)tot / (1 << 30));
            mp_print_peak(p->d->out, &p->mp, p->g, &p->plan, p->d, 5);   // what fills it, with spec lines
            return -1;
        }
        p->arena_bytes = p->mp.activations;
    }
    p->sym[0] = sym[0], p->sym[1] = sym[1];
    p->planned = true;
    return 0;
}

int cuda_reserve(CudaProgram *p, const int64_t *sym) {
    if (sym[0] < 1 || sym[1] < 1) return 0;
    return plan_for(p, sym);
}

// Input id bound to another program's output (cuda_bind_output): copied on the device, on p's
// stream (the source's run has finished: cuda_run waits for its stream).
static int copy_bound_output(CudaProgram *p, IrId id, size_t want) {
    const IrNode *n = &p->g->nodes[id];
    const CudaProgram *s = p->leaf[id].src;
    const IrOutput *o = &s->g->outs[p->leaf[id].src_out];
    if (!s->ran) {
        diag_error(p->d, n->loc, "GPU: input '%s' reads output '%s' of another program, which has not run since it "
                   "last planned (or its run failed)", n->name, o->name);
        return -1;
    }
    int64_t numel = numel_of(s, o->id);
    size_t have = numel < 0 ? 0 : (size_t)numel * esize(s->g->nodes[o->id].dtype);
    RtCudaPtr from = cuda_output_ptr(s, p->leaf[id].src_out), to = addr(p, id);
    if (numel < 0 || have != want) {
        diag_error(p->d, n->loc, "GPU: input '%s' needs %zu bytes at B=%lld, T=%lld; output '%s' of the other "
                   "program's last run (B=%lld, T=%lld) holds %zu", n->name, want, (long long)p->sym[0],
                   (long long)p->sym[1], o->name, (long long)s->sym[0], (long long)s->sym[1], have);
        return -1;
    }
    if (want && (!from || !to)) {
        diag_error(p->d, n->loc, "GPU: input '%s': output '%s' of the other program has no device buffer", n->name, o->name);
        return -1;
    }
    return rt_cuda_copy_async(p->dev, p->stream, to, from, want);
}

// Uploads a leaf's host data (floats for a bf16 leaf, rounded by the caller: sent as bf16 bits)
// to dst, want bytes on the device.
static int upload_leaf(CudaProgram *p, const IrNode *n, RtCudaPtr dst, const void *host, int64_t numel, size_t want) {
    if (n->dtype != IR_BF16) return cuda_upload(p, dst, host, want);
    uint16_t *half = malloc(want + 2);
    if (!half) {
        diag_plain_error(p->d, "GPU: out of memory");
        return -1;
    }
    for (int64_t k = 0; k < numel; k++) half[k] = to_bf16(((const float *)host)[k]);
    int rc = cuda_upload(p, dst, half, want);   // consumed on return
    free(half);
    return rc;
}

// Uploads bound leaves: inputs into the arena (or copies them from another program's output on
// the device), params into their buffers (frozen ones once).
static int upload_leaves(CudaProgram *p) {
    const IrGraph *g = p->g;
    char w[256];
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (!ir_is_leaf(n)) continue;
        Leaf *l = &p->leaf[i];
        int64_t numel = numel_of(p, i);
        size_t want = (size_t)numel * esize(n->dtype), host_bytes = (size_t)numel * (n->dtype == IR_BF16 ? 4 : esize(n->dtype));
        if (!p->used[i]) continue;
        if (n->op == IR_INPUT && l->src) {
            if (numel < 0 || copy_bound_output(p, i, want) != 0) return -1;
            continue;
        }
        if (!l->host) {
            diag_error(p->d, n->loc, "GPU: %s '%s' is not bound to data", n->op == IR_PARAM ? "param" : "input",
                       n->name ? n->name : where(p, i, w, sizeof w));
            return -1;
        }
        if (numel < 0 || l->nbytes != host_bytes) {
            diag_error(p->d, n->loc, "GPU: '%s' is bound to %zu bytes, its shape needs %zu", n->name ? n->name : "?",
                       l->nbytes, host_bytes);
            return -1;
        }
        if (n->op == IR_INPUT) {
            if (upload_leaf(p, n, addr(p, i), l->host, numel, want) != 0) return -1;
            continue;
        }
        if (!l->dev && p->owner) {   // the owner's buffer for the same host data: allocated there
            IrId o = n->name ? ir_find(p->owner->g, n->name) : IR_NONE;
            Leaf *ol = o != IR_NONE ? &p->owner->leaf[o] : NULL;
            if (ol && !ol->shared && ol->host == l->host && ol->nbytes == l->nbytes && p->owner->g->nodes[o].dtype == n->dtype) {
                if (!ol->dev) {
                    if (rt_cuda_alloc(p->dev, want + 4, &ol->dev) != 0) return -1;
                    ol->dev_bytes = want;
                    p->owner->fixed_bytes += (int64_t)want;
                }
                l->dev = ol->dev, l->dev_bytes = want, l->shared = ol;
            }
            if (n->trainable && ol && ol->resident && !l->shared) {   // its host copy is stale
                diag_error(p->d, n->loc, "GPU (internal): trainable param '%s' cannot use the training program's "
                           "device buffer", n->name);
                return -1;
            }
        }
        if (!l->dev) {
            if (rt_cuda_alloc(p->dev, want + 4, &l->dev) != 0) return -1;
            l->dev_bytes = want;
            p->fixed_bytes += (int64_t)want;
        }
        const void **uploaded = l->shared ? &l->shared->uploaded : &l->uploaded;
        bool resident = l->shared ? l->shared->resident : l->resident;
        if ((n->trainable && !resident) || *uploaded != l->host) {
            if (upload_leaf(p, n, l->dev, l->host, numel, want) != 0) return -1;
            *uploaded = l->host;
        }
    }
    return 0;
}

// A failed launch or product (rc != 0, already reported with the call) also names the node it
// computes and its spec line; built only then, not on every launch.
static int located(CudaProgram *p, int rc, IrId id) {
    if (rc != 0) {
        char w[256];
        diag_hint(p->d, "computing %s", where(p, id, w, sizeof w));
    }
    return rc;
}

static int launch(CudaProgram *p, const char *fn_name, unsigned gx, unsigned gy, unsigned gz, unsigned threads,
                  void **args, IrId id) {
    void *fn = lib_fn(p, fn_name);
    if (!fn) {
        diag_plain_error(p->d, "GPU: kernel %s is not loaded", fn_name);
        return located(p, -1, id);
    }
    if (gx == 0 || gy == 0 || gz == 0) return 0;   // an empty tensor: nothing to do
    unsigned grid[3] = {gx, gy, gz}, block[3] = {threads, 1, 1};
    p->launches++;
    return located(p, rt_cuda_launch_on(p->dev, p->stream, fn, grid, block, 0, args, fn_name), id);
}

static unsigned blocks_for(int64_t n, int64_t per, int64_t cap) {
    int64_t b = (n + per - 1) / per;
    return (unsigned)(b < 1 ? 1 : b > cap ? cap : b);
}

// A fused kernel's launch: arguments in codegen_cuda.c's order (outputs, inputs, dropout seed/salt
// pairs, B, T, step) and shape. args point into the struct itself: not to be copied.
typedef struct FusedLaunch {
    RtCudaPtr ptr[FUSE_MAX_ARGS];
    unsigned long long seeds[FUSE_MAX_MEMBERS];
    unsigned salts[FUSE_MAX_MEMBERS];
    long long B, T;
    unsigned long long step;
    void *args[FUSE_MAX_ARGS + 2 * FUSE_MAX_MEMBERS + 3];
    int ndrop;                  // dropout members (the kernel reads step only then)
    unsigned grid[3], block[3];
} FusedLaunch;

static void fused_launch(const CudaProgram *p, int s, uint64_t step, FusedLaunch *L) {
    const FuseGroup *gr = &p->plan.groups[p->plan.steps[s].group];
    const IrGraph *g = p->g;
    int na = 0, nd = 0;
    for (int q = 0; q < gr->nouts; q++) L->ptr[na] = addr(p, gr->outs[q]), L->args[na] = &L->ptr[na], na++;
    for (int q = 0; q < gr->nins; q++) L->ptr[na] = addr(p, gr->ins[q]), L->args[na] = &L->ptr[na], na++;
    for (int m = 0; m < gr->nnodes; m++) {
        const IrNode *n = &g->nodes[gr->nodes[m]];
        if (n->op != IR_DROPOUT) continue;
        L->seeds[nd] = n->a.seed, L->salts[nd] = n->a.salt;
        L->args[na++] = &L->seeds[nd];
        L->args[na++] = &L->salts[nd];
        nd++;
    }
    L->B = p->sym[0], L->T = p->sym[1], L->step = step, L->ndrop = nd;
    L->args[na++] = &L->B, L->args[na++] = &L->T, L->args[na++] = &L->step;
    cg_launch_dims(&p->plan, p->plan.steps[s].group, p->sym, L->grid, L->block);
}

static int run_fused(CudaProgram *p, int s, uint64_t step) {
    const FuseGroup *gr = &p->plan.groups[p->plan.steps[s].group];
    FusedLaunch L;
    fused_launch(p, s, step, &L);
    const FuseKernel *k = &p->plan.kernels[gr->kernel];
    if (L.grid[0] == 0) return 0;
    p->launches++;
    IrId last = gr->nodes[gr->nnodes - 1];
    int rc = located(p, rt_cuda_launch_on(p->dev, p->stream, p->kfn[gr->kernel], L.grid, L.block, 0, L.args, k->name), last);
    ShapeGraph *sg = p->capturing;
    if (rc != 0 || !sg || L.ndrop == 0) return rc;
    // captured: remember the node, whose step argument changes from run to run
    if (sg->ndrop == sg->capdrop) {
        int cap = sg->capdrop ? 2 * sg->capdrop : 16;
        GraphDrop *nd = realloc(sg->drop, (size_t)cap * sizeof *nd);
        if (!nd) {
            diag_plain_error(p->d, "GPU: out of memory");
            return -1;
        }
        sg->drop = nd, sg->capdrop = cap;
    }
    sg->drop[sg->ndrop].step = s;
    if (rt_cuda_capture_last_node(p->dev, p->stream, &sg->drop[sg->ndrop].node) != 0) return located(p, -1, last);
    sg->ndrop++;
    return 0;
}

// matmul: row-major out (batch..., M, N) = op(a) op(b). In column-major terms outᵀ = op(b)ᵀ op(a)ᵀ:
// cuBLASLt's A is b's storage, its B is a's, m = N, n = M. An accumulating matmul (3 inputs,
// ir.h) out = alpha op(a) op(b) + c: cuBLASLt's C is c (laid out as out), D the node's buffer,
// beta 1, on every path below; with a bias c (N) (ir_matmul_bias): beta 0, the bias epilogue
// (cuBLASLt's bias has m = N elements, added to every column of outᵀ: every row of out), the
// same vector for every batch element (CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE's default 0).
static int run_gemm(CudaProgram *p, IrId id) {
    const IrGraph *g = p->g;
    const IrNode *n = &g->nodes[id];
    const IrShape *sa = &g->nodes[n->in[0]].shape, *sb = &g->nodes[n->in[1]].shape, *so = &n->shape;
    int ra = sa->rank, rb = sb->rank, ro = so->rank;
    bool ta = n->a.trans_a, tb = n->a.trans_b;
    int64_t M = dimv(p, sa, ra - (ta ? 1 : 2)), K = dimv(p, sa, ra - (ta ? 2 : 1)), N = dimv(p, sb, rb - (tb ? 2 : 1));
    // batch dims, right-aligned with the output's; an operand's batch is either the output's
    // (stride: one matrix) or all ones (stride 0); anything else loops
    int nbd = ro - 2;
    int64_t obat[IR_MAX_RANK], abat[IR_MAX_RANK], bbat[IR_MAX_RANK];
    int64_t nbatch = 1, na = 1, nb = 1;
    for (int i = 0; i < nbd; i++) {
        obat[i] = dimv(p, so, i);
        int ia = i - (nbd - (ra - 2)), ib = i - (nbd - (rb - 2));
        abat[i] = ia >= 0 ? dimv(p, sa, ia) : 1;
        bbat[i] = ib >= 0 ? dimv(p, sb, ib) : 1;
        nbatch *= obat[i], na *= abat[i], nb *= bbat[i];
    }
    RtGemm gm;
    memset(&gm, 0, sizeof gm);
    gm.type_ab = g->nodes[n->in[0]].dtype == IR_BF16 ? IR_BF16 : IR_F32;   // both alike (check_graph)
    gm.type_c = n->dtype == IR_BF16 ? IR_BF16 : IR_F32;
    const int64_t eab = (int64_t)esize(gm.type_ab), ec = (int64_t)esize(gm.type_c);
    gm.ta = tb, gm.tb = ta;
    gm.m = N, gm.k = K;
    gm.lda = tb ? K : N, gm.ldb = ta ? M : K, gm.ldc = N;
    gm.alpha = (float)ir_matmul_alpha(n);
    bool bias = ir_matmul_bias(g, n), acc = n->nin == 3 && !bias;
    RtCudaPtr A = addr(p, n->in[1]), Bm = addr(p, n->in[0]), C = addr(p, id);
    RtCudaPtr Cin = acc ? addr(p, n->in[2]) : C;   // the addend (the node's shape and dtype: check_graph)
    if (acc) gm.beta = 1.0f;
    if (bias) gm.bias = addr(p, n->in[2]);          // (N) of the result's type: check_graph
    // located() adds the node and its spec line
    const char *what = acc ? "an accumulating matmul" : bias ? "a matmul with a bias" : "a matmul";
    if (M == 0 || N == 0 || nbatch == 0) return 0;
    if (K == 0 && n->nin == 3) {   // gemm_acc.h leaves such products alone
        diag_error(p->d, n->loc, "internal: an accumulating matmul with an empty inner dimension");
        return -1;
    }
    if (K == 0) return located(p, rt_cuda_zero_async(p->dev, p->stream, C, (size_t)(nbatch * M * N * ec)), id);
    p->launches++;
    if (nb == 1 && !ta) {   // b shared by every batch element, a contiguous: one product of nbatch*M rows
        gm.n = nbatch * M, gm.batch = 1, gm.a = A, gm.b = Bm, gm.c = Cin, gm.d = C;
        return located(p, rt_blas_gemm(p->blas, &gm, what), id);
    }
    bool a_full = true, b_full = true;
    for (int i = 0; i < nbd; i++) a_full = a_full && abat[i] == obat[i], b_full = b_full && bbat[i] == obat[i];
    if ((a_full || na == 1) && (b_full || nb == 1) && nbatch <= 0x7fffffff) {
        gm.n = M, gm.batch = (int)nbatch, gm.a = A, gm.b = Bm, gm.c = Cin, gm.d = C;
        gm.stride_a = nb == 1 ? 0 : K * N, gm.stride_b = na == 1 ? 0 : M * K, gm.stride_c = M * N;
        return located(p, rt_blas_gemm(p->blas, &gm, what), id);
    }
    // general broadcast: one product per output batch element
    gm.n = M, gm.batch = 1;
    for (int64_t e = 0; e < nbatch; e++) {
        int64_t t = e, ao = 0, bo = 0, as = 1, bs = 1;
        for (int i = nbd - 1; i >= 0; i--) {
            int64_t c = t % obat[i];
            t /= obat[i];
            ao += (abat[i] == 1 ? 0 : c) * as, bo += (bbat[i] == 1 ? 0 : c) * bs;
            as *= abat[i], bs *= bbat[i];
        }
        gm.a = A + (RtCudaPtr)(bo * K * N * eab), gm.b = Bm + (RtCudaPtr)(ao * M * K * eab);
        gm.c = Cin + (RtCudaPtr)(e * M * N * ec), gm.d = C + (RtCudaPtr)(e * M * N * ec);
        if (rt_blas_gemm(p->blas, &gm, what) != 0) return located(p, -1, id);
    }
    return 0;
}

// The layout struct of layout.cu (same member order and types).
typedef struct TrlcLayout {
    int rank;
    long long dims[8];
    long long src_stride[8];
    long long dst_stride[8];
    long long src_base, dst_base;
} TrlcLayout;

static void strides_of(const CudaProgram *p, const IrShape *s, long long *st) {
    long long m = 1;
    for (int k = s->rank - 1; k >= 0; k--) st[k] = m, m *= dimv(p, s, k);
}

static int copy(CudaProgram *p, IrId id, RtCudaPtr dst, RtCudaPtr src, TrlcLayout *L) {
    long long n = 1;
    for (int k = 0; k < L->rank; k++) n *= L->dims[k];
    if (n == 0) return 0;
    if (L->rank == 0) L->rank = 1, L->dims[0] = 1, L->src_stride[0] = L->dst_stride[0] = 1;
    void *args[] = {&dst, &src, &n, L};
    return launch(p, "trlc_strided_copy", blocks_for(n, 256, 1 << 20), 1, 1, 256, args, id);
}

static int run_layout(CudaProgram *p, IrId id) {
    const IrNode *n = &p->g->nodes[id];
    const IrShape *si = &p->g->nodes[n->in[0]].shape, *so = &n->shape;
    long long ist[IR_MAX_RANK], ost[IR_MAX_RANK];
    TrlcLayout L;
    memset(&L, 0, sizeof L);
    RtCudaPtr out = addr(p, id);
    switch (n->op) {
    case IR_PERMUTE:
        strides_of(p, si, ist), strides_of(p, so, ost);
        L.rank = so->rank;
        for (int k = 0; k < so->rank; k++)
            L.dims[k] = dimv(p, so, k), L.src_stride[k] = ist[n->a.perm[k]], L.dst_stride[k] = ost[k];
        return copy(p, id, out, addr(p, n->in[0]), &L);
    case IR_SLICE:
        strides_of(p, si, ist), strides_of(p, so, ost);
        L.rank = so->rank;
        for (int k = 0; k < so->rank; k++) L.dims[k] = dimv(p, so, k), L.src_stride[k] = ist[k], L.dst_stride[k] = ost[k];
        L.src_base = ir_dim_value(n->a.off, p->sym) * ist[n->a.axis];
        return copy(p, id, out, addr(p, n->in[0]), &L);
    case IR_PAD: {
        long long total = numel_of(p, id);
        float zero = 0.0f;
        void *fa[] = {&out, &total, &zero};
        if (total > 0 && launch(p, "trlc_fill", blocks_for(total, 256, 1 << 20), 1, 1, 256, fa, id) != 0) return -1;
        strides_of(p, si, ist), strides_of(p, so, ost);
        L.rank = si->rank;
        for (int k = 0; k < si->rank; k++) L.dims[k] = dimv(p, si, k), L.src_stride[k] = ist[k], L.dst_stride[k] = ost[k];
        L.dst_base = ir_dim_value(n->a.off, p->sym) * ost[n->a.axis];
        return copy(p, id, out, addr(p, n->in[0]), &L);
    }
    case IR_CONCAT: {
        strides_of(p, so, ost);
        long long at = 0;
        for (int i = 0; i < n->nin; i++) {
            const IrShape *sx = &p->g->nodes[n->in[i]].shape;
            strides_of(p, sx, ist);
            memset(&L, 0, sizeof L);
            L.rank = sx->rank;
            for (int k = 0; k < sx->rank; k++) L.dims[k] = dimv(p, sx, k), L.src_stride[k] = ist[k], L.dst_stride[k] = ost[k];
            L.dst_base = at * ost[n->a.axis];
            at += dimv(p, sx, n->a.axis);
            if (copy(p, id, out, addr(p, n->in[i]), &L) != 0) return -1;
        }
        return 0;
    }
    default: return -1;
    }
}

// Attention's backward group led by step s. Tensor-core kernels (bf16 q, k, v) needing dk or dv:
// fused (flash-attention 2's 5 products): dq zeroed, delta, then one kernel over key blocks that
// writes dk, dv and adds into dq with atomics (dq's last bits depend on the GPU's block order);
// $TRLC_ATTN_BWD=split, only dq needed, or fp32 q: dq (+ delta), then dk and dv in one kernel
// (7 products, dq bit-reproducible).
// The forward's O: the forward node's buffer, fp32 or bf16 (ir.h IR_SDPA), or recomputed into
// scratch, bf16 with bf16 q, k, v (memplan.c sizes it; delta reads O's bf16 values either way).
static int run_attention_bwd(CudaProgram *p, int s) {
    const IrGraph *g = p->g;
    IrId lead = p->plan.steps[s].node, mem[3] = {IR_NONE, IR_NONE, IR_NONE};
    int nled;
    const int *led = fuse_led_steps(&p->plan, s, &nled);
    mem[g->nodes[lead].op - IR_SDPA_BWD_Q] = lead;
    for (int i = 0; i < nled; i++) mem[g->nodes[p->plan.steps[led[i]].node].op - IR_SDPA_BWD_Q] = p->plan.steps[led[i]].node;
    const IrNode *n = &g->nodes[lead];
    const IrShape *sq = &g->nodes[n->in[0]].shape, *sk = &g->nodes[n->in[1]].shape;
    int B = (int)dimv(p, sq, 0), Hq = (int)dimv(p, sq, 1), T = (int)dimv(p, sq, 2), D = (int)dimv(p, sq, 3);
    int Hkv = (int)dimv(p, sk, 1), causal = n->a.causal;
    float scale = (float)n->a.scale;
    RtCudaPtr q = addr(p, n->in[0]), k = addr(p, n->in[1]), v = addr(p, n->in[2]), go = addr(p, n->in[3]);
    RtCudaPtr seg = n->a.segmented ? addr(p, n->in[n->nin - 1]) : 0;
    RtCudaPtr km = n->nin > 4 + (n->a.segmented ? 1 : 0) ? addr(p, n->in[4]) : 0;   // the key mask
    IrId f = p->plan.lib_fwd[s];
    RtCudaPtr o = f != IR_NONE ? addr(p, f) : aux(p, lead, MP_SCRATCH_OUT);
    RtCudaPtr lse = f != IR_NONE ? aux(p, f, MP_LSE) : aux(p, lead, MP_SCRATCH_LSE);
    RtCudaPtr delta = aux(p, lead, MP_DELTA);
    RtCudaPtr dq = mem[0] != IR_NONE ? addr(p, mem[0]) : aux(p, lead, MP_SCRATCH_DQ);
    RtCudaPtr dk = mem[1] != IR_NONE ? addr(p, mem[1]) : aux(p, lead, MP_SCRATCH_DKV);
    RtCudaPtr dv = mem[2] != IR_NONE ? addr(p, mem[2]) : aux(p, lead, MP_SCRATCH_DKV);
    const bool need_kv = mem[1] != IR_NONE || mem[2] != IR_NONE;   // else dq alone: no dk / dv scratch (memplan.c)
    if (!o || !lse || !delta || !dq || (need_kv && (!dk || !dv))) {
        char w[256];
        diag_plain_error(p->d, "GPU (internal): attention backward %s has no buffer for its state", where(p, lead, w, sizeof w));
        return -1;
    }
    // bf16 q, k, v: the tensor-core kernels (attention_tc.cu, 64 rows a block), else 4 rows a block
    bool tc = g->nodes[n->in[0]].dtype == IR_BF16, o16 = attention_o_bf16(p, s);
    unsigned gq = tc ? (unsigned)((T + 63) / 64) : (unsigned)((T + 3) / 4);
    if (f == IR_NONE) {   // recompute the forward's output and log-sum-exp rows
        void *a0[] = {&o, &lse, &q, &k, &v, &seg, &km, &T, &D, &Hq, &Hkv, &scale, &causal};
        if (launch(p, tc ? "trlc_attention_tc_forward_bf16" : "trlc_attention_forward", gq, (unsigned)Hq, (unsigned)B,
                   128, a0, lead) != 0)
            return -1;
    }
    if (tc && !p->attn_split && need_kv) {
        p->launches++;   // the memset
        if (located(p, rt_cuda_zero_async(p->dev, p->stream, dq, (size_t)B * Hq * T * D * sizeof(float)), lead) != 0)
            return -1;
        void *ad[] = {&delta, &o, &go, &T, &D, &Hq};
        if (launch(p, o16 ? "trlc_attention_tc_backward_delta_bf16" : "trlc_attention_tc_backward_delta", gq,
                   (unsigned)Hq, (unsigned)B, 128, ad, lead) != 0)
            return -1;
        void *af[] = {&dq, &dk, &dv, &q, &k, &v, &go, &lse, &delta, &seg, &km, &T, &D, &Hq, &Hkv, &scale, &causal};
        return launch(p, "trlc_attention_tc_backward_fused", gq, (unsigned)Hkv, (unsigned)B, 128, af, lead);
    }
    void *a1[] = {&dq, &delta, &q, &k, &v, &o, &go, &lse, &seg, &km, &T, &D, &Hq, &Hkv, &scale, &causal};
    const char *kdq = o16 ? "trlc_attention_tc_backward_dq_bf16" : tc ? "trlc_attention_tc_backward_dq" : "trlc_attention_backward_dq";
    if (launch(p, kdq, gq, (unsigned)Hq, (unsigned)B, 128, a1, lead) != 0) return -1;
    if (!need_kv) return 0;
    void *a2[] = {&dk, &dv, &q, &k, &v, &go, &lse, &delta, &seg, &km, &T, &D, &Hq, &Hkv, &scale, &causal};
    return launch(p, tc ? "trlc_attention_tc_backward_dkdv" : "trlc_attention_backward_dkdv", gq, (unsigned)Hkv,
                  (unsigned)B, 128, a2, lead);
}

// C (M, N) = op(X) op(Y) (+ C when beta is 1), row-major, fp32 result: cuBLASLt's column-major
// view of it, Cᵀ = op(Y)ᵀ op(X)ᵀ (as run_gemm maps a matmul).
static int gemm_rows(CudaProgram *p, IrId id, bool ta, bool tb, int64_t M, int64_t N, int64_t K, RtCudaPtr X,
                     RtCudaPtr Y, RtCudaPtr C, float beta, IrDType ab) {
    RtGemm gm;
    memset(&gm, 0, sizeof gm);
    gm.type_ab = ab, gm.type_c = IR_F32;
    gm.ta = tb, gm.tb = ta;
    gm.m = N, gm.n = M, gm.k = K;
    gm.lda = tb ? K : N, gm.ldb = ta ? M : K, gm.ldc = N;
    gm.a = Y, gm.b = X, gm.c = C, gm.batch = 1, gm.alpha = 1.0f, gm.beta = beta;
    p->launches++;
    return located(p, rt_blas_gemm(p->blas, &gm, "linear_ce's head product"), id);
}

// linear_ce and its backward (ir.h): per chunk of rows (memplan.h: mp_lce_chunk_rows) the
// logits x wᵀ into the chunk buffer, cross-entropy's forward kernel (the loss, or just the
// log-sum-exp rows for a backward), and for a backward the logits' gradient (in place, or into
// the bf16 chunk with bf16 operands) times w (dx) or accumulated as dlogitsᵀ x (dw). A linear_ce
// that leads its backward ops (fuse.c: their upstream gradient was computed before it) does all
// of it on one logits product per chunk: the loss, then dx and dw from the same chunk.
// linear_argmax: each chunk's logits, then each row's argmax.
static int run_linear_ce(CudaProgram *p, int s) {
    const IrGraph *g = p->g;
    IrId id = p->plan.steps[s].node;
    const IrNode *n = &g->nodes[id];
    IrId bx = n->op == IR_LINEAR_CE_BWD_X ? id : IR_NONE, bw = n->op == IR_LINEAR_CE_BWD_W ? id : IR_NONE;
    int nled;
    const int *led = fuse_led_steps(&p->plan, s, &nled);
    for (int i = 0; i < nled; i++) {
        IrId m = p->plan.steps[led[i]].node;
        if (g->nodes[m].op == IR_LINEAR_CE_BWD_X) bx = m;
        else bw = m;
    }
    const IrShape *sx = &g->nodes[n->in[0]].shape;
    bool argmax = n->op == IR_LINEAR_ARGMAX, bwd = bx != IR_NONE || bw != IR_NONE;
    long long H = dimv(p, sx, sx->rank - 1), V = dimv(p, &g->nodes[n->in[1]].shape, 0);
    long long N = argmax ? numel_of(p, id) : numel_of(p, n->in[2]);
    IrDType ab = g->nodes[n->in[0]].dtype == IR_BF16 ? IR_BF16 : IR_F32;
    int64_t ex = (int64_t)esize(ab), R = mp_lce_chunk_rows(V, N);
    int ign = (int)n->a.ignore_index;
    float eps = (float)n->a.value;
    RtCudaPtr x = addr(p, n->in[0]), w = addr(p, n->in[1]), labels = argmax ? 0 : addr(p, n->in[2]);
    RtCudaPtr out = n->op == IR_LINEAR_CE || argmax ? addr(p, id) : 0;
    RtCudaPtr dx = bx != IR_NONE ? addr(p, bx) : 0, dw = bw != IR_NONE ? addr(p, bw) : 0;
    RtCudaPtr gl = bwd ? addr(p, g->nodes[bx != IR_NONE ? bx : bw].in[3]) : 0;   // the same for both (fuse.c)
    RtCudaPtr chunk = aux(p, id, MP_CHUNK), lowp = aux(p, id, MP_CHUNK_LOWP), rows = aux(p, id, MP_CHUNK_ROWS);
    if (!chunk || (!rows && !argmax) || (ab == IR_BF16 && bwd && !lowp)) {
        char wb[256];
        diag_plain_error(p->d, "GPU (internal): %s has no chunk buffers", where(p, id, wb, sizeof wb));
        return -1;
    }
    if (N == 0)   // no rows: nothing to compute, and a zero head gradient
        return bw != IR_NONE ? located(p, rt_cuda_zero_async(p->dev, p->stream, dw, (size_t)(V * H) * 4), bw) : 0;
    for (long long r0 = 0; r0 < N; r0 += R) {
        long long rc = N - r0 < R ? N - r0 : R;
        RtCudaPtr xc = x + (RtCudaPtr)(r0 * H * ex), lab = labels + (RtCudaPtr)(r0 * 4);
        if (gemm_rows(p, id, false, true, rc, V, H, xc, w, chunk, 0.0f, ab) != 0) return -1;   // logits = x wᵀ
        if (argmax) {
            RtCudaPtr o = out + (RtCudaPtr)(r0 * 4);
            void *aa[] = {&o, &chunk, &V};
            if (launch(p, "trlc_row_argmax_f32", (unsigned)rc, 1, 1, 256, aa, id) != 0) return -1;
            continue;
        }
        RtCudaPtr loss = out ? out + (RtCudaPtr)(r0 * 4) : rows + (RtCudaPtr)(R * 4), lse = rows;
        void *a0[] = {&loss, &lse, &chunk, &lab, &V, &ign, &eps};
        if (launch(p, "trlc_cross_entropy_forward_f32", (unsigned)rc, 1, 1, 256, a0, id) != 0) return -1;
        if (!bwd) continue;
        RtCudaPtr glc = gl + (RtCudaPtr)(r0 * 4), d = ab == IR_BF16 ? lowp : chunk;
        void *a1[] = {&d, &chunk, &lse, &lab, &glc, &V, &ign, &eps};
        if (launch(p, ab == IR_BF16 ? "trlc_cross_entropy_backward_f32_bf16" : "trlc_cross_entropy_backward_f32",
                   (unsigned)rc, 1, 1, 256, a1, id) != 0)
            return -1;
        if (bx != IR_NONE && gemm_rows(p, bx, false, false, rc, H, V, d, w, dx + (RtCudaPtr)(r0 * H * 4), 0.0f, ab) != 0)
            return -1;   // dx = dlogits w
        if (bw != IR_NONE && gemm_rows(p, bw, true, false, V, H, rc, d, xc, dw, r0 ? 1.0f : 0.0f, ab) != 0)
            return -1;   // dw += dlogitsᵀ x
    }
    return 0;
}

static int run_library(CudaProgram *p, int s) {
    const IrGraph *g = p->g;
    IrId id = p->plan.steps[s].node;
    const IrNode *n = &g->nodes[id];
    RtCudaPtr out = addr(p, id);
    switch (n->op) {
    case IR_SDPA: {
        const IrShape *sq = &g->nodes[n->in[0]].shape, *sk = &g->nodes[n->in[1]].shape;
        int B = (int)dimv(p, sq, 0), Hq = (int)dimv(p, sq, 1), T = (int)dimv(p, sq, 2), D = (int)dimv(p, sq, 3);
        int Hkv = (int)dimv(p, sk, 1), causal = n->a.causal;
        float scale = (float)n->a.scale;
        RtCudaPtr q = addr(p, n->in[0]), k = addr(p, n->in[1]), v = addr(p, n->in[2]), lse = aux(p, id, MP_LSE);
        RtCudaPtr seg = n->a.segmented ? addr(p, n->in[n->nin - 1]) : 0;
        RtCudaPtr km = n->nin > 3 + (n->a.segmented ? 1 : 0) ? addr(p, n->in[3]) : 0;   // the key mask
        void *a[] = {&out, &lse, &q, &k, &v, &seg, &km, &T, &D, &Hq, &Hkv, &scale, &causal};
        if (g->nodes[n->in[0]].dtype == IR_BF16)   // bf16 q, k, v: tensor cores, 64 query rows a block; O fp32 or bf16
            return launch(p, n->dtype == IR_BF16 ? "trlc_attention_tc_forward_bf16" : "trlc_attention_tc_forward",
                          (unsigned)((T + 63) / 64), (unsigned)Hq, (unsigned)B, 128, a, id);
        return launch(p, "trlc_attention_forward", (unsigned)((T + 3) / 4), (unsigned)Hq, (unsigned)B, 128, a, id);
    }
    case IR_SDPA_BWD_Q: case IR_SDPA_BWD_K: case IR_SDPA_BWD_V: return run_attention_bwd(p, s);
    case IR_LINEAR_CE: case IR_LINEAR_CE_BWD_X: case IR_LINEAR_CE_BWD_W: case IR_LINEAR_ARGMAX:
        return run_linear_ce(p, s);
    case IR_CROSS_ENTROPY: case IR_CROSS_ENTROPY_BWD: {
        const IrShape *sl = &g->nodes[n->in[0]].shape;
        long long V = dimv(p, sl, sl->rank - 1), rows = numel_of(p, n->in[1]);
        int ign = (int)n->a.ignore_index;
        float eps = (float)n->a.value;
        RtCudaPtr logits = addr(p, n->in[0]), labels = addr(p, n->in[1]);
        unsigned grid = (unsigned)(rows > 0x7fffffff ? 0x7fffffff : rows);
        if (n->op == IR_CROSS_ENTROPY) {
            RtCudaPtr lse = aux(p, id, MP_LSE);
            void *a[] = {&out, &lse, &logits, &labels, &V, &ign, &eps};
            return launch(p, "trlc_cross_entropy_forward_f32", grid, 1, 1, 256, a, id);
        }
        IrId f = p->plan.lib_fwd[s];
        RtCudaPtr lse = f != IR_NONE ? aux(p, f, MP_LSE) : aux(p, id, MP_SCRATCH_LSE), gl = addr(p, n->in[2]);
        if (f == IR_NONE) {
            RtCudaPtr loss = aux(p, id, MP_SCRATCH_OUT);
            void *a0[] = {&loss, &lse, &logits, &labels, &V, &ign, &eps};
            if (launch(p, "trlc_cross_entropy_forward_f32", grid, 1, 1, 256, a0, id) != 0) return -1;
        }
        void *a[] = {&out, &logits, &lse, &labels, &gl, &V, &ign, &eps};
        return launch(p, "trlc_cross_entropy_backward_f32", grid, 1, 1, 256, a, id);
    }
    case IR_ROPE: {
        const IrShape *sx = &g->nodes[n->in[0]].shape;
        int B = (int)dimv(p, sx, 0), H = (int)dimv(p, sx, 1), T = (int)dimv(p, sx, 2), D = (int)dimv(p, sx, 3);
        int pos_batched = g->nodes[n->in[1]].shape.rank == 2, inverse = n->a.inverse;
        if (!p->rope_freq[id]) {
            double *inv = malloc((size_t)(D / 2 + 1) * sizeof *inv);
            if (!inv) return -1;
            const IrRope *r = &n->a.rope;
            trlc_rope_inv_freq(inv, D, r->theta, r->factor, r->low_freq_factor, r->high_freq_factor, r->original_max_pos);
            int rc = rt_cuda_alloc(p->dev, (size_t)(D / 2 + 1) * sizeof *inv, &p->rope_freq[id]);
            if (rc == 0) rc = cuda_upload(p, p->rope_freq[id], inv, (size_t)(D / 2) * sizeof *inv);
            free(inv);
            if (rc != 0) return -1;
            p->fixed_bytes += (D / 2 + 1) * 8;
        }
        RtCudaPtr x = addr(p, n->in[0]), pos = addr(p, n->in[1]), inv = p->rope_freq[id];
        void *a[] = {&out, &x, &pos, &inv, &T, &D, &H, &pos_batched, &inverse};
        const char *k = n->dtype == IR_BF16 ? "trlc_rope_forward_bf16" : "trlc_rope_forward";   // bf16: mixed precision's q, k
        return launch(p, k, blocks_for((int64_t)T * (D / 2), 256, 0x7fffffff), (unsigned)H, (unsigned)B, 256, a, id);
    }
    case IR_EMBED: case IR_EMBED_BWD: {
        const IrShape *st = n->op == IR_EMBED ? &g->nodes[n->in[1]].shape : &n->shape;
        long long N = numel_of(p, n->in[0]), V = dimv(p, st, 0), H = dimv(p, st, 1);
        RtCudaPtr ids = addr(p, n->in[0]), x = addr(p, n->in[1]), bad = p->bad + (RtCudaPtr)id * sizeof(int);
        unsigned grid = blocks_for(N, 1, 1 << 20);
        if (n->op == IR_EMBED) {
            void *a[] = {&out, &bad, &ids, &x, &N, &H, &V};
            bool bf = g->nodes[n->in[1]].dtype == IR_BF16;   // a frozen table stored in bf16
            return launch(p, bf ? "trlc_embed_forward_bf16" : "trlc_embed_forward", grid, 1, 1, 128, a, id);
        }
        if (rt_cuda_zero_async(p->dev, p->stream, out, (size_t)(V * H) * 4) != 0) return located(p, -1, id);
        void *a[] = {&out, &ids, &x, &N, &H, &V};
        return launch(p, "trlc_embed_backward", grid, 1, 1, 128, a, id);
    }
    case IR_ARANGE: {
        long long cnt = numel_of(p, id);
        void *a[] = {&out, &cnt};
        return launch(p, "trlc_arange", blocks_for(cnt, 256, 1 << 20), 1, 1, 256, a, id);
    }
    case IR_SOFTMAX: case IR_LOG_SOFTMAX: {
        const IrShape *sx = &n->shape;
        long long cols = sx->rank ? dimv(p, sx, sx->rank - 1) : 1, rows = cols ? numel_of(p, id) / cols : 0;
        int lg = n->op == IR_LOG_SOFTMAX;
        RtCudaPtr x = addr(p, n->in[0]);
        void *a[] = {&out, &x, &rows, &cols, &lg};
        return rows ? launch(p, "trlc_softmax_forward", blocks_for(rows, 1, 1 << 20), 1, 1, 256, a, id) : 0;
    }
    case IR_GATHER: case IR_GATHER_BWD: {   // (outer, L, inner) around the axis; idx's shape is out's / g's
        IrId ix = n->in[n->op == IR_GATHER ? 1 : 0];
        const IrShape *si = &g->nodes[ix].shape, *sx = n->op == IR_GATHER ? &g->nodes[n->in[0]].shape : &n->shape;
        int ax = n->a.axis;
        long long outer = 1, inner = 1, Li = dimv(p, si, ax), Lx = dimv(p, sx, ax);
        for (int k = 0; k < ax; k++) outer *= dimv(p, si, k);
        for (int k = ax + 1; k < si->rank; k++) inner *= dimv(p, si, k);
        RtCudaPtr idx = addr(p, ix), x = addr(p, n->in[n->op == IR_GATHER ? 0 : 1]);
        RtCudaPtr bad = p->bad + (RtCudaPtr)id * sizeof(int);
        const char *fn = n->op == IR_GATHER ? "trlc_gather_forward_f32" : "trlc_gather_backward_f32";
        void *a[] = {&out, &bad, n->op == IR_GATHER ? &x : &idx, n->op == IR_GATHER ? &idx : &x, &outer, &Li, &Lx, &inner};
        return launch(p, fn, blocks_for(numel_of(p, id), 256, 1 << 20), 1, 1, 256, a, id);
    }
    case IR_DEQUANT_NF4: case IR_DEQUANT_MAP8: {
        long long cnt = numel_of(p, id), block = n->a.block;
        RtCudaPtr q = addr(p, n->in[0]), b = addr(p, n->in[1]);
        if (n->op == IR_DEQUANT_NF4) {
            void *a[] = {&out, &q, &b, &cnt, &block};
            const char *fn = n->dtype == IR_BF16 ? "trlc_dequant_nf4_bf16" : "trlc_dequant_nf4_f32";
            return launch(p, fn, blocks_for((cnt + 1) / 2, 256, 1 << 20), 1, 1, 256, a, id);
        }
        RtCudaPtr sc = addr(p, n->in[2]);
        float offset = (float)n->a.value;
        void *a[] = {&out, &q, &b, &sc, &cnt, &block, &offset};
        return launch(p, "trlc_dequant_map8_f32", blocks_for(cnt, 256, 1 << 20), 1, 1, 256, a, id);
    }
    case IR_PERMUTE: case IR_SLICE: case IR_PAD: case IR_CONCAT: return run_layout(p, id);
    default: {
        char w[256];
        diag_error(p->d, n->loc, "GPU: %s has no GPU kernel yet", where(p, id, w, sizeof w));
        return -1;
    }
    }
}

// Embed's and gather's out-of-range flags: the first bad position, reported at the node.
static int check_embed_flags(CudaProgram *p) {
    const IrGraph *g = p->g;
    int *flags = malloc((size_t)g->n * sizeof *flags + 4);
    if (!flags) return -1;
    int rc = cuda_download(p, flags, p->bad, (size_t)g->n * sizeof *flags);
    for (int i = 0; rc == 0 && i < g->n; i++) {
        IrOp op = g->nodes[i].op;
        if ((op != IR_EMBED && op != IR_GATHER && op != IR_GATHER_BWD) || !flags[i]) continue;
        if (op == IR_EMBED) {
            const IrShape *st = &g->nodes[g->nodes[i].in[1]].shape;
            diag_error(p->d, g->nodes[i].loc, "token id out of range at row %d of the batch (vocabulary of %lld)",
                       flags[i] - 1, (long long)dimv(p, st, 0));
        } else {
            diag_error(p->d, g->nodes[i].loc, "gather: index out of range at flat position %d of the indexes",
                       flags[i] - 1);
        }
        rc = -1;
    }
    free(flags);
    return rc;
}

// Every step of the plan, in order, on the program's stream.
static int run_steps(CudaProgram *p, uint64_t step) {
    p->launches = 0;
    for (int s = 0; s < p->plan.nsteps; s++) {
        if (!fuse_step_runs(&p->plan, s)) continue;
        const FuseStep *st = &p->plan.steps[s];
        int rc = st->kind == FUSE_KERNEL ? run_fused(p, s, step) : st->kind == FUSE_GEMM ? run_gemm(p, st->node)
                                                                                        : run_library(p, s);
        if (rc != 0) return -1;
    }
    return 0;
}

// ---------------------------------------------------------------------------------------------
// CUDA graphs. The first run of a shape (B, T) runs step by step (the warm-up: rope tables
// allocated, cuBLASLt's algorithms chosen, nothing left that allocates or synchronizes); the
// second is captured (global mode) on the program's stream, instantiated, and launched; later
// runs of the shape launch the instance. Outside the graph, before its launch: the uploads of
// bound host data (pageable memory cannot be captured) into the same buffers the graph reads, and
// the reset of the embedding flags. What changes from run to run inside: only the dropout step,
// a scalar argument of the fused kernels with dropout members: their nodes (found at capture with
// cuStreamGetCaptureInfo) get new arguments through cuGraphExecKernelNodeSetParams when the step
// differs from the one the instance holds (no kernel reads it from memory, so generated code stays
// as it is). Every address a graph holds (arena, params, gradients, tables) is summed in
// layout_sig: a layout that changed (a larger shape reallocated the arena, a param rebound to a
// new buffer) makes the shape warm up and capture again.

static uint64_t mix(uint64_t h, uint64_t v) { return (h ^ v) * 0x100000001b3ull; }

static uint64_t layout_sig(const CudaProgram *p) {
    uint64_t h = 0xcbf29ce484222325ull;
    h = mix(mix(mix(mix(h, p->arena), (uint64_t)p->arena_bytes), p->workspace), p->bad);
    for (int i = 0; i < p->g->n; i++) {
        h = mix(mix(mix(h, p->leaf[i].dev), p->grad[i]), p->rope_freq[i]);
        for (int w = 0; w < MP_NWHAT; w++) h = mix(h, (uint64_t)p->off[w][i]);
    }
    return h;
}

static void drop_graph(CudaProgram *p, ShapeGraph *sg) {
    rt_cuda_graph_free(p->dev, sg->graph);
    sg->graph = NULL, sg->ndrop = 0, sg->warm = false;
}

// The entry of the current shape: found (emptied when its layout changed), or made in a free
// slot or the least recently used one's.
static ShapeGraph *shape_graph(CudaProgram *p) {
    uint64_t sig = layout_sig(p);
    ShapeGraph *sg = NULL, *lru = NULL;
    for (int i = 0; i < p->ngraphs && !sg; i++)
        if (p->graphs[i].B == p->sym[0] && p->graphs[i].T == p->sym[1]) sg = &p->graphs[i];
    if (!sg) {
        for (int i = 0; i < p->ngraphs; i++)
            if (!lru || p->graphs[i].used < lru->used) lru = &p->graphs[i];
        sg = p->ngraphs < EXEC_GRAPH_SHAPES ? &p->graphs[p->ngraphs++] : lru;
        drop_graph(p, sg);
        sg->B = p->sym[0], sg->T = p->sym[1], sg->sig = sig;
    }
    if (sg->sig != sig) drop_graph(p, sg), sg->sig = sig;
    sg->used = ++p->graph_clock;
    return sg;
}

// Captures the step: 0, or 1 when the capture failed. A failed capture is not fatal: what it
// reported goes to a scratch file, not the user's errors; a warning quotes its first line, graphs
// go off for this program, and the caller runs the step step by step (where a real error is
// reported as usual).
static int capture(CudaProgram *p, ShapeGraph *sg, uint64_t step) {
    Diag *ds[2] = {p->d, rt_cuda_device_diag(p->dev)};
    if (ds[1] == ds[0]) ds[1] = NULL;
    FILE *quiet = tmpfile(), *outs[2] = {NULL, NULL};
    int errs[2] = {0, 0};
    for (int i = 0; i < 2; i++)
        if (ds[i]) outs[i] = ds[i]->out, errs[i] = ds[i]->errors, ds[i]->out = quiet ? quiet : ds[i]->out;
    int rc = rt_cuda_capture_begin(p->dev, p->stream);
    if (rc == 0) {
        sg->ndrop = 0;
        p->capturing = sg;
        rc = run_steps(p, step);
        p->capturing = NULL;
        RtCudaGraph *gr = NULL;
        if (rt_cuda_capture_end(p->dev, p->stream, rc != 0, &gr) != 0) rc = -1;
        if (rc == 0) sg->graph = gr, sg->step = step, sg->launches = p->launches;
    }
    for (int i = 0; i < 2; i++)
        if (ds[i]) ds[i]->out = outs[i], ds[i]->errors = errs[i];
    char first[512] = "";
    if (rc != 0 && quiet) {
        rewind(quiet);
        if (!fgets(first, sizeof first, quiet)) first[0] = 0;
        first[strcspn(first, "\n")] = 0;
    }
    if (quiet) fclose(quiet);
    if (rc == 0) return 0;
    diag_warning(p->d, (Loc){0, 0, 0}, "GPU: capturing the step at B=%lld, T=%lld as a CUDA graph failed (%s); this "
                 "program runs step by step from now on ($TRLC_CUDA_GRAPHS=0 skips the attempt)",
                 (long long)p->sym[0], (long long)p->sym[1], first[0] ? first : "no message");
    p->graphs_on = false;
    return 1;
}

static int replay(CudaProgram *p, ShapeGraph *sg, uint64_t step) {
    for (int i = 0; step != sg->step && i < sg->ndrop; i++) {
        int s = sg->drop[i].step;
        const FuseGroup *gr = &p->plan.groups[p->plan.steps[s].group];
        FusedLaunch L;
        fused_launch(p, s, step, &L);
        const char *name = p->plan.kernels[gr->kernel].name;
        if (rt_cuda_graph_set_kernel(p->dev, sg->graph, sg->drop[i].node, p->kfn[gr->kernel], L.grid, L.block, 0, L.args,
                                     name) != 0) {
            drop_graph(p, sg);   // some nodes may hold the new step: captured again later
            return located(p, -1, gr->nodes[gr->nnodes - 1]);
        }
    }
    sg->step = step;
    if (rt_cuda_graph_launch(p->dev, sg->graph, p->stream, "the training step") != 0) {
        drop_graph(p, sg);
        return -1;
    }
    p->launches = sg->launches;
    p->graph_launches++;
    return 0;
}

int cuda_run(CudaProgram *p, const int64_t *sym, uint64_t step) {
    p->ran = false;
    for (int o = 0; o < p->g->nouts; o++) p->out_ready[o] = false;
    // the owner's stream may still be writing the params both read (its optimizer): streams made
    // with CU_STREAM_DEFAULT do not wait for each other
    if (p->owner && rt_cuda_stream_sync(p->dev, p->owner->stream, "the training program's work") != 0) return -1;
    if (sym[0] < 1 || sym[1] < 1 || plan_for(p, sym) != 0 || upload_leaves(p) != 0) return -1;
    if (rt_cuda_zero_async(p->dev, p->stream, p->bad, (size_t)p->g->n * sizeof(int)) != 0) return -1;
    ShapeGraph *sg = p->graphs_on ? shape_graph(p) : NULL;
    if (!sg || !sg->warm) {   // step by step: no graphs, or this shape's warm-up
        if (run_steps(p, step) != 0) return -1;
        if (sg) sg->warm = true, sg->sig = layout_sig(p);   // the warm-up may allocate (rope tables)
    } else if (!sg->graph && capture(p, sg, step) != 0) {   // failed: this run (and later ones) step by step
        if (run_steps(p, step) != 0) return -1;
    } else if (replay(p, sg, step) != 0) {
        return -1;
    }
    if (rt_cuda_stream_sync(p->dev, p->stream, "the training step") != 0 || check_embed_flags(p) != 0) return -1;
    p->ran = true;
    return 0;
}

const CpuTensor *cuda_output(CudaProgram *p, int i) {
    const IrGraph *g = p->g;
    if (!p->ran || i < 0 || i >= g->nouts) return NULL;
    CpuTensor *t = &p->outs[i];
    if (p->out_ready[i]) return t;
    IrId id = g->outs[i].id;
    const IrNode *n = &g->nodes[id];
    int64_t numel = numel_of(p, id);
    if (numel < 0) return NULL;
    size_t bytes = (size_t)numel * esize(n->dtype);                              // on the device
    size_t host = (size_t)numel * (n->dtype == IR_BF16 ? 4 : esize(n->dtype));   // floats on the host
    if (!t->data || host > p->out_cap[i]) {
        free(t->data);
        t->data = malloc(host + 4);
        p->out_cap[i] = t->data ? host : 0;
        if (!t->data) return NULL;
    }
    t->dtype = is_float(n->dtype) ? IR_F32 : n->dtype, t->rank = n->shape.rank, t->numel = numel;
    for (int k = 0; k < n->shape.rank; k++) t->shape[k] = dimv(p, &n->shape, k);
    int rc;
    bool on_host = (n->op == IR_INPUT && !p->leaf[id].src) || n->op == IR_PARAM;   // a bound host buffer
    if (on_host) memcpy(t->data, p->leaf[id].host, host), rc = 0;
    else rc = bytes ? cuda_download(p, t->data, addr(p, id), bytes) : 0;
    if (rc != 0) return NULL;
    if (n->dtype == IR_BF16 && !on_host)   // widen in place, from the end
        for (int64_t k = numel - 1; k >= 0; k--) {
            uint32_t u = (uint32_t)((const uint16_t *)t->data)[k] << 16;
            memcpy((float *)t->data + k, &u, 4);
        }
    p->out_ready[i] = true;
    return t;
}

const CpuTensor *cuda_output_named(CudaProgram *p, const char *name) {
    for (int i = 0; i < p->g->nouts; i++)
        if (!strcmp(p->g->outs[i].name, name)) return cuda_output(p, i);
    return NULL;
}

int64_t cuda_device_bytes(const CudaProgram *p) { return p->arena_bytes + p->fixed_bytes; }
int cuda_kernel_count(const CudaProgram *p) { return p->plan.nkernels; }
const char *cuda_arch(const CudaProgram *p) { return p->arch; }
int cuda_launch_count(const CudaProgram *p) { return p->launches; }
RtCudaStream cuda_stream(const CudaProgram *p) { return p->stream; }
int cuda_graph_launches(const CudaProgram *p) { return p->graph_launches; }
bool cuda_graphs_enabled(const CudaProgram *p) { return p->graphs_on; }

// ---------------------------------------------------------------------------------------------
// the trainer's optimizer on the device (optim_cuda.c): resident params, buffers, counted copies

void cuda_params_resident(CudaProgram *p) {
    for (int i = 0; i < p->g->n; i++)
        if (p->g->nodes[i].op == IR_PARAM && p->g->nodes[i].trainable) p->leaf[i].resident = true;
}

void cuda_params_changed(CudaProgram *p) {
    for (int i = 0; i < p->g->n; i++)
        if (p->leaf[i].resident) p->leaf[i].uploaded = NULL;
}

RtCudaPtr cuda_param_ptr(const CudaProgram *p, IrId leaf, size_t *bytes) {
    if (bytes) *bytes = 0;
    if (leaf < 0 || leaf >= p->g->n || p->g->nodes[leaf].op != IR_PARAM) return 0;
    const Leaf *l = &p->leaf[leaf];
    if (bytes && l->dev) *bytes = l->dev_bytes;
    return l->dev;
}

RtCudaPtr cuda_output_ptr(const CudaProgram *p, int i) {
    if (!p->ran || i < 0 || i >= p->g->nouts) return 0;
    IrId id = p->g->outs[i].id;
    if (id < 0 || id >= p->g->n || p->g->nodes[id].op == IR_INPUT) return 0;
    return addr(p, id);
}

int cuda_upload(CudaProgram *p, RtCudaPtr dst, const void *src, size_t bytes) {
    p->transfer_bytes += (int64_t)bytes;
    return rt_cuda_upload_async(p->dev, p->stream, dst, src, bytes);   // on the program's stream (cgraph)
}

int cuda_download(CudaProgram *p, void *dst, RtCudaPtr src, size_t bytes) {
    p->transfer_bytes += (int64_t)bytes;
    return rt_cuda_download(p->dev, dst, src, bytes);
}

int cuda_launch_fn(CudaProgram *p, void *fn, unsigned blocks, unsigned threads, void **args, const char *what) {
    if (blocks == 0) return 0;
    unsigned grid[3] = {blocks, 1, 1}, block[3] = {threads, 1, 1};
    return rt_cuda_launch_on(p->dev, p->stream, fn, grid, block, 0, args, what);   // the program's stream (cgraph)
}

int64_t cuda_transfer_bytes(const CudaProgram *p) { return p->transfer_bytes; }
