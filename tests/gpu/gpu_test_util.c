// gpu_test_util.c — the GPU tests' shared helpers (see gpu_test_util.h): random numbers, bf16
// rounding, relative errors; device 0, uploads and kernels (with trlc_cuda); random parameters
// and batches and the hand-built graph of fusable ops (with the IR). No assertions here: the
// tests CHECK what these return.
#include "gpu_test_util.h"
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

float gpu_test_frand(uint64_t *state) {
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(*state >> 11) * (1.0 / 9007199254740992.0) - 0.5);
}

uint16_t gpu_test_bf16_bits(float v) {
    uint32_t u;
    memcpy(&u, &v, 4);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float gpu_test_bf16_value(uint16_t b) {
    uint32_t u = (uint32_t)b << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static double relerr(const float *got, const float *want, int64_t n, bool equal_is_exact) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) {
        if (equal_is_exact && got[i] == want[i]) continue;
        double e = fabs((double)got[i] - want[i]) / (1e-3 + fabs((double)want[i]));
        if (!(e <= m)) m = e;
    }
    return m;
}

double gpu_test_relerr(const float *got, const float *want, int64_t n) { return relerr(got, want, n, false); }
double gpu_test_relerr_eq(const float *got, const float *want, int64_t n) { return relerr(got, want, n, true); }

double gpu_test_normdiff(const float *got, const float *want, int64_t n) {
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        if (got[i] == want[i]) {
            if (isfinite(want[i])) den += (double)want[i] * want[i];
            continue;
        }
        if (!isfinite(got[i]) || !isfinite(want[i])) return 1e30;
        double e = (double)got[i] - want[i];
        num += e * e, den += (double)want[i] * want[i];
    }
    const double floor2 = 1e-4 * (double)n;
    return sqrt(num / (den > floor2 ? den : floor2));
}

void gpu_test_attn_inputs(uint16_t *q, uint16_t *k, uint16_t *v, float *go, int64_t nq, int64_t nkv, uint64_t *rng) {
    for (int64_t i = 0; i < nq; i++) q[i] = gpu_test_bf16_bits(4 * gpu_test_frand(rng)), go[i] = gpu_test_frand(rng);
    for (int64_t i = 0; i < nkv; i++)
        k[i] = gpu_test_bf16_bits(4 * gpu_test_frand(rng)), v[i] = gpu_test_bf16_bits(2 * gpu_test_frand(rng));
}

void gpu_test_attn_masks(float *km, int32_t *seg, int T) {
    const int pad = T / 5;   // left padding of row 1
    for (int j = 0; j < T; j++) {
        km[j] = j % 5 == 2 ? 0.0f : 1.0f, km[T + j] = j < pad ? 0.0f : 1.0f;
        seg[j] = j < T / 2 ? 0 : 1, seg[T + j] = j < pad ? -1 : j < 2 * T / 3 ? 0 : 1;
    }
}

#if __has_include("rt_cuda.h")
bool gpu_test_open(GpuTestDevice *t, const char *name, const char *without) {
    diag_init(&t->d, stderr);
    t->dev = rt_cuda_open(0, true, &t->d);
    if (!t->dev) {
        printf("%s: no CUDA device%s\n", name, without);
        diag_free(&t->d);
        return false;
    }
    snprintf(t->arch, sizeof t->arch, "sm_90");
    rt_cuda_device_arch(0, t->arch, sizeof t->arch);
    rt_cuda_cache_init(&t->cache, &t->d);
    return true;
}

void gpu_test_close(GpuTestDevice *t) {
    rt_cuda_close(t->dev);
    diag_free(&t->d);
}

RtCudaPtr gpu_test_upload(RtCudaDevice *dev, const void *data, size_t bytes) {
    RtCudaPtr p = 0;
    if (rt_cuda_alloc(dev, bytes, &p) == 0 && data) rt_cuda_upload(dev, p, data, bytes);
    return p;
}

void *gpu_test_kernel(RtCudaDevice *dev, RtCudaCache *cache, const char *arch, const char *file, const char *src,
                      const char *name, Diag *d) {
    RtCudaProgram pr = {.name = file, .source = src};
    void *fn = NULL;
    if (src && rt_cuda_compile(cache, &pr, 1, arch, false, 1, d) == 0 &&
        rt_cuda_load_source(dev, pr.cubin, src, name, &fn) != 0)
        fn = NULL;
    rt_cuda_program_free(&pr);
    return fn;
}

RtCudaPtr gpu_test_buffer(RtCudaDevice *dev, const void *data, size_t bytes) {
    RtCudaPtr p = gpu_test_upload(dev, data, bytes);
    if (p && !data) rt_cuda_zero(dev, p, bytes);
    return p;
}

RtCudaPtr gpu_test_buffer_at(RtCudaDevice *dev, const uint16_t *data, int64_t n, int off, RtCudaPtr *at) {
    RtCudaPtr p = gpu_test_buffer(dev, NULL, (size_t)(n + off) * 2);
    *at = p + (RtCudaPtr)off * 2;
    if (p) rt_cuda_upload(dev, *at, data, (size_t)n * 2);
    return p;
}

int gpu_test_launch128(RtCudaDevice *dev, void *fn, const unsigned grid[3], void **args, const char *what) {
    unsigned blk[3] = {128, 1, 1};
    return fn && rt_cuda_launch(dev, fn, grid, blk, 0, args, what) == 0 && rt_cuda_sync(dev, what) == 0 ? 0 : -1;
}
#endif

#if __has_include("lower.h") && __has_include("hfconfig.h")
#include "autocast.h"
#include "lower.h"

int64_t gpu_test_vocab(const IrGraph *g) {
    int64_t v = 1 << 30;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == IR_PARAM && n->name && strstr(n->name, "embed_tokens") && n->shape.d[0].coef < v)
            v = n->shape.d[0].coef;
    }
    return v;
}

size_t gpu_test_param_bytes(const IrNode *n) {
    int64_t numel = ir_shape_numel(&n->shape, (const int64_t[IR_NSYMS]){1, 1});
    return (size_t)numel * (n->dtype == IR_U8 ? 1 : 4);
}

void gpu_test_random_params(const IrGraph *g, void **host, uint64_t *rng) {
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op != IR_PARAM) continue;
        int64_t numel = ir_shape_numel(&n->shape, (const int64_t[IR_NSYMS]){1, 1});
        host[i] = malloc((size_t)numel * 4 + 4);
        for (int64_t k = 0; k < numel; k++) {
            if (n->dtype == IR_U8) ((uint8_t *)host[i])[k] = (uint8_t)((gpu_test_frand(rng) + 0.5f) * 255);
            else ((float *)host[i])[k] = n->name && strstr(n->name, "norm") ? 1 + gpu_test_frand(rng) * 0.4f
                                                                            : gpu_test_frand(rng) * 0.2f;
        }
        if (n->dtype == IR_BF16) ac_round_bf16(host[i], numel);   // stored in bf16: the caller rounds
    }
}

void gpu_test_random_batch(const IrGraph *g, void **in, int64_t B, int64_t T, int64_t V, uint64_t *rng) {
    int64_t sym[IR_NSYMS] = {B, T};
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op != IR_INPUT) continue;
        int64_t numel = ir_shape_numel(&n->shape, sym);
        free(in[i]);
        in[i] = malloc((size_t)numel * 4 + 4);
        int32_t *iv = in[i];
        for (int64_t k = 0; k < numel; k++) {
            if (!strcmp(n->name, LOWER_INPUT_POS)) iv[k] = (int32_t)(k % T);
            else if (!strcmp(n->name, LOWER_INPUT_LABELS))
                iv[k] = k % 7 == 3 ? LOWER_IGNORE_INDEX : (int32_t)((gpu_test_frand(rng) + 0.5f) * (float)(V - 1));
            else if (!strcmp(n->name, LOWER_INPUT_SEQ)) iv[k] = (int32_t)((k % T) / 12);   // packed rows
            else if (n->dtype == IR_I32) iv[k] = (int32_t)((gpu_test_frand(rng) + 0.5f) * (float)(V - 1));
            else ((float *)in[i])[k] = gpu_test_frand(rng);
        }
    }
}

int gpu_test_fuzz_inputs(IrGraph *g, int it, IrShape shapes[5], IrId *v) {
    Loc L = {0, 0, 0};
    int64_t H = it % 7 == 0 ? 1 : 3 + it % 4;
    shapes[0] = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(H));
    shapes[1] = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(1));
    shapes[2] = ir_shape1(ir_dim(H));
    shapes[3] = ir_shape2(ir_dim_t(), ir_dim(H));
    shapes[4] = ir_shape3(ir_dim(1), ir_dim_t(), ir_dim(1));
    for (int k = 0; k < 5; k++) {
        char name[16];
        snprintf(name, sizeof name, "in%d", k);
        v[k] = ir_input(g, name, IR_F32, shapes[k], L);
    }
    return 5;
}

void gpu_test_handbuilt_graph(IrGraph *g, GpuTestHandbuilt *ids) {
    GpuTestHandbuilt unused;
    if (!ids) ids = &unused;
    Loc L = {0, 0, 0};
    IrShape s3 = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(24));
    IrId x = ir_input(g, "x", IR_F32, s3, L);
    IrId y = ir_input(g, "y", IR_F32, s3, L);
    IrId w = ir_param(g, "norm.weight", IR_F32, ir_shape1(ir_dim(24)), true, L);
    IrId col = ir_param(g, "col", IR_F32, ir_shape3(ir_dim(1), ir_dim_t(), ir_dim(1)), false, L);
    // rmsnorm
    ids->ms = ir_reduce(g, IR_MEAN, ir_mul(g, x, x, L), -1, L);
    ids->r = ir_unary(g, IR_RSQRT, ir_add(g, ids->ms, ir_scalar(g, 1e-5, L), L), L);
    ids->nx = ir_mul(g, w, ir_mul(g, x, ids->r, L), L);
    ir_add_output(g, ids->nx, "rmsnorm");
    // a softmax written out: max, exp, sum, div
    IrId mx = ir_reduce(g, IR_MAX, y, -1, L);
    IrId ex = ir_unary(g, IR_EXP, ir_sub(g, y, mx, L), L);
    ids->sm = ir_div(g, ex, ir_reduce(g, IR_SUM, ex, -1, L), L);
    ir_add_output(g, ids->sm, "softmax");
    // every unary op, comparisons, where, pow, cast
    IrOp un[] = {IR_NEG, IR_EXP, IR_TANH, IR_SIGMOID, IR_SILU, IR_GELU, IR_RELU, IR_ABS, IR_SQUARE,
                 IR_LOG_SIGMOID, IR_SOFTPLUS};
    IrId acc = x;
    for (size_t i = 0; i < sizeof un / sizeof un[0]; i++) acc = ir_add(g, acc, ir_unary(g, un[i], y, L), L);
    IrId pos = ir_add(g, ir_unary(g, IR_ABS, x, L), ir_scalar(g, 0.5, L), L);
    acc = ir_add(g, acc, ir_unary(g, IR_LOG, pos, L), L);
    acc = ir_add(g, acc, ir_unary(g, IR_SQRT, pos, L), L);
    acc = ir_add(g, acc, ir_pow(g, pos, 1.5, L), L);
    IrId cmp = ir_binary(g, IR_LT, x, y, L);
    acc = ir_add(g, acc, ir_where(g, cmp, ir_binary(g, IR_MAXIMUM, x, y, L), ir_binary(g, IR_MINIMUM, x, y, L), L), L);
    acc = ir_add(g, acc, ir_binary(g, IR_GE, x, ir_scalar(g, 0.1, L), L), L);
    ir_add_output(g, ir_cast(g, acc, IR_BF16, L), "mix_bf16");
    IrId dr = ir_dropout(g, acc, 0.3, 77, L);
    ir_add_output(g, ir_mul(g, dr, col, L), "dropout");
    // reductions over the leading axes (sum_to), the middle axis, everything
    IrId prod = ir_mul(g, x, y, L);
    ir_add_output(g, ir_sum_to(g, prod, ir_shape1(ir_dim(24)), L), "sum_to_cols");
    IrId mid = ir_reduce(g, IR_MEAN, ir_add(g, x, col, L), 1, L);
    ir_add_output(g, ir_mul(g, mid, ir_scalar(g, 3.0, L), L), "mean_mid");
    ir_add_output(g, ir_reduce_all(g, IR_SUM, ir_unary(g, IR_SQUARE, y, L), L), "sum_all");
    // a reduced value broadcast back explicitly (the shape of rmsnorm's backward)
    IrId s = ir_sum_to(g, prod, ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(1)), L);
    IrId bc = ir_broadcast_to(g, ir_mul(g, s, ir_scalar(g, 0.5, L), L), s3, L);
    ir_add_output(g, ir_add(g, ir_mul(g, bc, x, L), y, L), "broadcast_back");
    // an integer input through a comparison into a mask
    IrId idn = ir_input(g, "ids", IR_I32, ir_shape2(ir_dim_b(), ir_dim_t()), L);
    IrId mask = ir_binary(g, IR_NE, idn, ir_full(g, 7, IR_I32, ir_shape0(), L), L);
    ir_add_output(g, ir_cast(g, ir_mul(g, mask, ir_scalar(g, 2.0, L), L), IR_I32, L), "mask_i32");
}
// Random chains across reshapes (test_fuse_eval, test_exec): see gpu_test_util.h.
void gpu_test_view_graph(IrGraph *g, int it, double (*rnd)(void)) {
    Loc L = {0, 0, 0};
    int64_t H = 2 + it % 3, W = 3 + it % 4;
    IrShape sp[4] = {ir_shape4(ir_dim_b(), ir_dim_t(), ir_dim(H), ir_dim(W)),
                     ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(H * W)),
                     ir_shape2((IrDim){1, (uint8_t)(1u << IR_SYM_B | 1u << IR_SYM_T)}, ir_dim(H * W)),
                     ir_shape3(ir_dim_b(), (IrDim){H, (uint8_t)(1u << IR_SYM_T)}, ir_dim(W))};
    IrId v[160];
    int vs[160], n = 0;   // values over the full elements and their view (index into sp)
    IrId wts[4];
    for (int k = 0; k < 4; k++) {
        char name[16];
        snprintf(name, sizeof name, "x%d", k);
        v[n] = ir_input(g, name, IR_F32, sp[k], L), vs[n++] = k;
        snprintf(name, sizeof name, "w%d", k);
        const IrShape *s = &sp[k];
        wts[k] = ir_param(g, name, IR_F32, ir_shape1(s->d[s->rank - 1]), true, L);
    }
    int nops = 8 + (int)(rnd() * 24);
    for (int k = 0; k < nops && n < 150; k++) {
        int i = (int)(rnd() * n) % n;
        IrId x = v[i], z = IR_NONE;
        int zs = vs[i];
        double r = rnd();
        if (r < 0.3) {
            zs = (int)(rnd() * 4) % 4;
            z = ir_reshape(g, x, sp[zs], L);
            if (rnd() < 0.8) z = ir_unary(g, rnd() < 0.5 ? IR_TANH : IR_SILU, z, L);
        } else if (r < 0.45) {
            z = ir_unary(g, rnd() < 0.5 ? IR_TANH : IR_SIGMOID, x, L);
        } else if (r < 0.6) {
            int j = (int)(rnd() * n) % n;   // a value of the same view, or x's view of it
            IrId y = vs[j] == zs ? v[j] : ir_reshape(g, v[j], sp[zs], L);
            z = ir_binary(g, rnd() < 0.5 ? IR_ADD : IR_MUL, x, y, L);
        } else if (r < 0.7) {
            z = ir_mul(g, x, wts[zs], L);
        } else if (r < 0.77) {
            z = ir_dropout(g, x, 0.3, 100 + (uint64_t)k, L);
        } else if (r < 0.84) {
            z = ir_cast(g, ir_cast(g, x, IR_BF16, L), IR_F32, L);
        } else if (r < 0.94) {
            IrOp red[] = {IR_SUM, IR_MEAN, IR_MAX};
            IrId s = ir_reduce(g, red[(int)(rnd() * 3) % 3], x, -1, L);
            z = ir_mul(g, x, ir_unary(g, IR_TANH, s, L), L);
        } else if (zs == 0) {   // a permute of [B,T,H,W] to [B,T,W,H] where that is the same shape
            static const int p1[4] = {0, 1, 3, 2};
            z = H == W ? ir_permute(g, x, p1, L) : ir_unary(g, IR_NEG, x, L);
        } else {
            z = ir_add(g, x, ir_scalar(g, 0.5, L), L);
        }
        if (z != IR_NONE) v[n] = z, vs[n++] = zs;
    }
    for (int k = n - 1, outs = 0; k >= 4 && outs < 3; k--, outs++) {
        char name[16];
        snprintf(name, sizeof name, "o%d", k);
        ir_add_output(g, v[k], name);
    }
}
#endif
