// test_rope_lowp.c — mixed precision's rope with a bf16 result (autocast.h: a rope that only
// attention reads writes q and k in bf16 itself, instead of an f32 result and a cast kernel):
//   the graph: the spec given (Qwen3-0.6B LoRA, precision = bf16) as trlc compiles it: the ropes
//     attention reads are bf16 (q and k of every layer), no bf16 cast reads a rope that nothing
//     else reads, the inverse ropes (the backward's gradients) stay f32, and ir_validate accepts
//     the graph; the builder (ir_rope_to) rejects other dtype pairs;
//   the CPU interpreter: rope_to(bf16) equals cast(rope) bit for bit (cpu.c rounds every bf16
//     node's result as the cast does), batched and unbatched positions, inverse and not;
//   on a device (a GPU, or the CUDA emulator named by $TRLC_CUDA_DRIVER): trlc_rope_forward_bf16
//     equals trlc_rope_forward's f32 output rounded to bf16 (nearest even), bit for bit, on random
//     x with positions up to 1e5, batched and unbatched, inverse and not (Llama-3 scaled too).
// usage: test_gpu_rope_lowp SPEC
#include "gpu_test_util.h"
#include "cpu.h"
#include "ir.h"
#include "kernels_ref.h"
#include "test.h"
#ifdef TRLC_HAVE_CUDA
#include "codegen_cuda.h"
#include "rt_cuda.h"
#endif
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 7;
static float frand(void) { return gpu_test_frand(&rng); }

static void test_graph(const char *path) {
    GpuTestSpec S;
    int rc = gpu_test_spec_open(&S, path);
    CHECK_MSG(rc == 0, "%s: the training graph", path);
    if (rc != 0) {
        gpu_test_spec_free(&S);
        return;
    }
    const IrGraph *g = &S.g;
    int *readers = calloc((size_t)g->n + 1, sizeof *readers);
    CHECK(readers != NULL);
    if (!readers) {
        gpu_test_spec_free(&S);
        return;
    }
    for (int i = 0; i < g->n; i++)
        for (int k = 0; k < g->nodes[i].nin; k++) readers[g->nodes[i].in[k]]++;
    for (int o = 0; o < g->nouts; o++) readers[g->outs[o].id]++;
    int sdpa = 0, bf16_qk = 0, lone_casts = 0, rope_bf16 = 0, rope_f32 = 0, inv_bf16 = 0, fwd_f32 = 0;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->op == IR_SDPA) {
            sdpa++;
            for (int k = 0; k < 2; k++) {
                const IrNode *r = &g->nodes[n->in[k]];
                bf16_qk += r->op == IR_ROPE && r->dtype == IR_BF16;
            }
        }
        if (n->op == IR_CAST && n->dtype == IR_BF16 && g->nodes[n->in[0]].op == IR_ROPE && readers[n->in[0]] == 1)
            lone_casts++;
        if (n->op == IR_ROPE) {
            if (n->dtype == IR_BF16) rope_bf16++, inv_bf16 += n->a.inverse;
            else rope_f32++, fwd_f32 += !n->a.inverse;
        }
    }
    printf("%s: %d attention forwards, %d of their q/k are bf16 ropes; ropes: %d bf16, %d f32 (%d forward); "
           "%d bf16 casts of a rope nothing else reads\n", path, sdpa, bf16_qk, rope_bf16, rope_f32, fwd_f32, lone_casts);
    CHECK(sdpa > 0);
    CHECK_MSG(bf16_qk == 2 * sdpa, "%d of %d", bf16_qk, 2 * sdpa);
    CHECK(lone_casts == 0);
    CHECK(inv_bf16 == 0 && fwd_f32 == 0);
    CHECK(rope_bf16 == 2 * sdpa);
    Diag d;
    diag_init(&d, stderr);
    CHECK(ir_validate(g, &d));
    diag_free(&d);
    free(readers);
    gpu_test_spec_free(&S);
}

// The builder: bf16 over f32 only; a validated bf16 rope stays one.
static void test_builder(void) {
    Diag d;
    FILE *mem = tmpfile();
    diag_init(&d, mem ? mem : stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    Loc L = {0, 0, 0};
    IrShape s = ir_shape4(ir_dim_b(), ir_dim(2), ir_dim_t(), ir_dim(8));
    IrId x = ir_input(&g, "x", IR_F32, s, L), xb = ir_input(&g, "xb", IR_BF16, s, L);
    IrId pos = ir_input(&g, "pos", IR_I32, ir_shape1(ir_dim_t()), L);
    IrRope rp = {10000.0, 0, 0, 0, 0};
    IrId ok = ir_rope_to(&g, x, pos, rp, false, IR_BF16, L), same = ir_rope_to(&g, xb, pos, rp, true, IR_BF16, L);
    CHECK(ok != IR_NONE && g.nodes[ok].dtype == IR_BF16 && same != IR_NONE && g.nodes[same].dtype == IR_BF16);
    CHECK(ir_rope_to(&g, x, pos, rp, false, IR_DTYPE_COUNT, L) != IR_NONE);
    int errors = g.errors;
    CHECK(ir_rope_to(&g, x, pos, rp, false, IR_F16, L) == IR_NONE);
    CHECK(ir_rope_to(&g, xb, pos, rp, false, IR_F32, L) == IR_NONE);
    CHECK(ir_rope_to(&g, x, pos, rp, false, IR_I32, L) == IR_NONE);
    CHECK(g.errors == errors + 3);
    // a rope node rewritten to bf16 over an f32 x (as autocast makes it) validates; f16 does not
    IrGraph v;
    ir_graph_init(&v, &d, IR_F32);
    IrId vx = ir_input(&v, "x", IR_F32, s, L), vp = ir_input(&v, "pos", IR_I32, ir_shape1(ir_dim_t()), L);
    IrId r = ir_rope(&v, vx, vp, rp, L);
    v.nodes[r].dtype = IR_BF16;
    CHECK(ir_validate(&v, NULL));
    v.nodes[r].dtype = IR_F16;
    CHECK(!ir_validate(&v, NULL));
    ir_graph_free(&v);
    ir_graph_free(&g);
    diag_free(&d);
    if (mem) fclose(mem);
}

// The interpreter: rope_to(bf16) vs cast(rope), bit for bit.
static void test_cpu(int batched, int inverse) {
    enum { B = 2, H = 3, T = 29, D = 32 };
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    Loc L = {0, 0, 0};
    IrId x = ir_input(&g, "x", IR_F32, ir_shape4(ir_dim_b(), ir_dim(H), ir_dim_t(), ir_dim(D)), L);
    IrShape ps = batched ? ir_shape2(ir_dim_b(), ir_dim_t()) : ir_shape1(ir_dim_t());
    IrId pos = ir_input(&g, "pos", IR_I32, ps, L);
    IrRope rp = {1000000.0, 0, 0, 0, 0};
    IrId f = ir_rope_to(&g, x, pos, rp, inverse, IR_DTYPE_COUNT, L);
    ir_add_output(&g, ir_cast(&g, f, IR_BF16, L), "cast");
    ir_add_output(&g, ir_rope_to(&g, x, pos, rp, inverse, IR_BF16, L), "lowp");
    CHECK(g.errors == 0);
    static float xb[B * H * T * D];
    static int32_t pb[B * T];
    for (int i = 0; i < B * H * T * D; i++) xb[i] = 4 * frand();
    for (int i = 0; i < B * T; i++) pb[i] = (int32_t)((frand() + 0.5f) * 100000);
    CpuProgram *p = cpu_program_new(&g, IR_F32, &d);
    CHECK(p != NULL);
    if (p) {
        cpu_bind(p, x, xb, sizeof xb), cpu_bind(p, pos, pb, (batched ? B : 1) * T * sizeof *pb);
        int64_t sym[IR_NSYMS] = {B, T};
        CHECK(cpu_run(p, sym, 0) == 0);
        const CpuTensor *a = cpu_output_named(p, "cast"), *b = cpu_output_named(p, "lowp");
        CHECK(a && b && a->numel == B * H * T * D && b->numel == a->numel);
        int differ = 0, rounded = 0;
        for (int64_t i = 0; a && b && i < a->numel; i++) {
            uint32_t u, w;
            memcpy(&u, (const float *)a->data + i, 4), memcpy(&w, (const float *)b->data + i, 4);
            differ += u != w, rounded += (w & 0xffffu) == 0;
        }
        printf("interpreter, %s positions%s: rope_to(bf16) vs cast(rope): %d of %d differ (%d bf16 values)\n",
               batched ? "batched" : "shared", inverse ? ", inverse" : "", differ, B * H * T * D, rounded);
        CHECK(differ == 0 && rounded == B * H * T * D);
        cpu_program_free(p);
    }
    ir_graph_free(&g);
    diag_free(&d);
}

#ifdef TRLC_HAVE_CUDA
// trlc_rope_forward_bf16 vs trlc_rope_forward rounded (and the f32 kernel vs the C reference).
static void dev_rope(GpuTestDevice *t, int batched, int inverse, int scaled) {
    enum { B = 2, H = 3, T = 53, D = 128 };
    const int n = B * H * T * D;
    float *x = malloc(n * 4), *y = malloc(n * 4), *ref = malloc(n * 4);
    uint16_t *yb = malloc(n * 2);
    int32_t pos[B * T];
    double inv[D / 2];
    for (int i = 0; i < n; i++) x[i] = 8 * frand();
    for (int i = 0; i < B * T; i++) pos[i] = i % 5 == 0 ? 100000 - i : (int32_t)((frand() + 0.5f) * 100000);
    IrRope r = scaled ? (IrRope){500000.0, 32.0, 1.0, 4.0, 8192.0} : (IrRope){1000000.0, 0, 0, 0, 0};
    trlc_rope_inv_freq(inv, D, r.theta, r.factor, r.low_freq_factor, r.high_freq_factor, r.original_max_pos);
    trlc_rope_ref(ref, x, pos, inv, B, H, T, D, batched, inverse);
    RtCudaPtr px = gpu_test_upload(t->dev, x, n * 4), pp = gpu_test_upload(t->dev, pos, sizeof pos);
    RtCudaPtr pi = gpu_test_upload(t->dev, inv, sizeof inv), py = gpu_test_upload(t->dev, NULL, n * 4);
    RtCudaPtr pb = gpu_test_upload(t->dev, NULL, n * 2);
    const char *src = cg_library_source("rope.cu");
    void *f32 = gpu_test_kernel(t->dev, &t->cache, t->arch, "rope.cu", src, "trlc_rope_forward", &t->d);
    void *bf = gpu_test_kernel(t->dev, &t->cache, t->arch, "rope.cu", src, "trlc_rope_forward_bf16", &t->d);
    CHECK(px && pp && pi && py && pb && f32 && bf);
    int tn = T, dn = D, hn = H;
    unsigned grid[3] = {(T * (D / 2) + 255) / 256, H, B}, block[3] = {256, 1, 1};
    void *a1[] = {&py, &px, &pp, &pi, &tn, &dn, &hn, &batched, &inverse};
    void *a2[] = {&pb, &px, &pp, &pi, &tn, &dn, &hn, &batched, &inverse};
    if (px && pp && pi && py && pb && f32 && bf && rt_cuda_launch(t->dev, f32, grid, block, 0, a1, "rope") == 0 &&
        rt_cuda_launch(t->dev, bf, grid, block, 0, a2, "rope_bf16") == 0 && rt_cuda_sync(t->dev, "rope") == 0) {
        rt_cuda_download(t->dev, y, py, n * 4), rt_cuda_download(t->dev, yb, pb, n * 2);
        int differ = 0, ref_ulp = 0;
        for (int i = 0; i < n; i++) {
            differ += yb[i] != gpu_test_bf16_bits(y[i]);
            ref_ulp += yb[i] != gpu_test_bf16_bits(ref[i]);
        }
        double e = gpu_test_relerr(y, ref, n);
        printf("device, %s positions%s%s (up to 1e5): bf16 kernel vs f32 kernel rounded: %d of %d differ; f32 kernel "
               "vs C reference %.2g (rounded: %d bf16 values differ from the reference's)\n",
               batched ? "batched" : "shared", inverse ? ", inverse" : "", scaled ? ", llama-3 scaled" : "", differ, n,
               e, ref_ulp);
        CHECK(differ == 0);
        CHECK(e < 1e-5);
    } else {
        CHECK_MSG(false, "the rope kernels do not run");
    }
    RtCudaPtr all[] = {px, pp, pi, py, pb};
    for (int i = 0; i < 5; i++)
        if (all[i]) rt_cuda_free(t->dev, all[i]);
    free(x), free(y), free(ref), free(yb);
}

static void test_device(void) {
    GpuTestDevice t;
    if (!gpu_test_open(&t, "gpu.rope_lowp", " (nor $TRLC_CUDA_DRIVER): kernels not launched")) return;
    printf("gpu.rope_lowp: launching on %s (%s)\n", t.arch, rt_cuda_is_emulated(t.dev) ? "the emulator" : "a GPU");
    for (int batched = 0; batched < 2; batched++)
        for (int inverse = 0; inverse < 2; inverse++) dev_rope(&t, batched, inverse, 0);
    dev_rope(&t, 1, 0, 1);
    gpu_test_close(&t);
}
#endif

int main(int argc, char **argv) {
    CHECK_MSG(argc > 1, "usage: test_gpu_rope_lowp SPEC");
    if (argc > 1) test_graph(argv[1]);
    test_builder();
    for (int batched = 0; batched < 2; batched++)
        for (int inverse = 0; inverse < 2; inverse++) test_cpu(batched, inverse);
#ifdef TRLC_HAVE_CUDA
    test_device();
#endif
    return test_done("gpu.rope_lowp");
}
