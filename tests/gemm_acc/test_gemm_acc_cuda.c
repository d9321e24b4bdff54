// test_gemm_acc_cuda.c — the GPU executor's accumulating matmul (runtime/cuda/exec.c run_gemm:
// cuBLASLt's C = the addend, D = the node's buffer, alpha, beta 1) against the CPU's on the graphs
// of gemm_acc_graphs.h after ir_fuse_gemm_accumulate: the folded product (LoRA layers, a chain of
// three), strided batches, broadcast batches (one product per batch element), a row vector,
// transposes, bf16 operands, and a differentiated LoRA layer (the backward's sums over x); the
// bias epilogue (cuBLASLt's CUBLASLT_EPILOGUE_BIAS, beta 0) on every run_gemm path: the folded
// product (with alpha, LoRA + bias), strided batches, broadcast batches, a row per batch, bf16
// operands, a trained bias; bf16 C and D (a LoRA sum under precision = bf16, autocast.h); a bf16
// bias and D (a biased linear layer under precision = bf16, with and without LoRA). Every
// output within 1e-5 normwise of the CPU's (bf16 results: one bf16 ulp). Without a device it exits 77 (skipped); CI runs it on
// the CUDA emulator (tests/gpu/emu) as driver and cuBLASLt.
#include "cpu.h"
#include "exec.h"
#include "gemm_acc.h"
#include "gemm_acc_graphs.h"
#include "test.h"
#include <string.h>

static void check_case_tol(RtCudaDevice *dev, RtCudaCache *cache, const char *name, BuildFn build, int variant,
                           double tol) {
    Diag d;
    diag_init(&d, stderr);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    build(&g, variant);
    int got = ir_fuse_gemm_accumulate(&g, NULL);
    CHECK_MSG(g.errors == 0 && got > 0, "%s/%d: %d rewrites", name, variant, got);
    CpuProgram *cpu = cpu_program_new(&g, IR_F32, &d);
    CudaProgram *gpu = cuda_program_new(&g, dev, cache, &d);
    CHECK_MSG(cpu && gpu, "%s/%d: programs", name, variant);
    const int64_t sym[IR_NSYMS] = {2, 3};
    float **bufs = calloc((size_t)g.n, sizeof *bufs);
    bool ok = cpu && gpu && bufs;
    for (int i = 0; ok && i < g.n; i++) {
        if (!ir_is_leaf(&g.nodes[i])) continue;
        int64_t ne = ir_shape_numel(&g.nodes[i].shape, sym);
        bufs[i] = leaf_values_of(&g.nodes[i], ne);
        size_t nb = (size_t)ne * sizeof(float);
        ok = bufs[i] && cpu_bind(cpu, i, bufs[i], nb) == 0 && cuda_bind(gpu, i, bufs[i], nb) == 0;
    }
    ok = ok && cpu_run(cpu, sym, 0) == 0 && cuda_run(gpu, sym, 0) == 0;
    CHECK_MSG(ok, "%s/%d: runs", name, variant);
    double worst = 0;
    for (int o = 0; ok && o < g.nouts; o++) {
        const CpuTensor *c = cpu_output(cpu, o), *x = cuda_output(gpu, o);
        bool same = c && x && c->numel == x->numel && c->numel > 0;
        CHECK_MSG(same, "%s/%d: output %s", name, variant, g.outs[o].name);
        if (!same) continue;
        double e = normwise(x->data, c->data, c->numel);
        CHECK_MSG(e <= tol, "%s/%d: output %s differs by %.3g", name, variant, g.outs[o].name, e);
        if (!(e <= worst)) worst = e;
    }
    printf("%-10s variant %d: %d accumulating products, %d outputs within %.2g of the CPU's\n", name, variant, got,
           g.nouts, worst);
    if (gpu) cuda_program_free(gpu);
    if (cpu) cpu_program_free(cpu);
    for (int i = 0; bufs && i < g.n; i++) free(bufs[i]);
    free(bufs);
    ir_graph_free(&g);
    diag_free(&d);
}

static void check_case(RtCudaDevice *dev, RtCudaCache *cache, const char *name, BuildFn build, int variant) {
    check_case_tol(dev, cache, name, build, variant, 1e-5);
}

int main(void) {
    Diag d;
    diag_init(&d, stderr);
    RtCudaDevice *dev = rt_cuda_open(0, true, &d);
    if (!dev) {
        printf("gemm_acc.cuda: no CUDA device: skipped\n");
        diag_free(&d);
        return 77;
    }
    printf("gemm_acc.cuda: %s\n", rt_cuda_is_emulated(dev) ? "the CUDA emulator (tests/gpu/emu)" : "a CUDA device");
    RtCudaCache cache;
    rt_cuda_cache_init(&cache, &d);
    for (int v = 0; v < 4; v++) check_case(dev, &cache, "lora", build_lora, v);
    check_case(dev, &cache, "lora+grad", build_lora, 4);
    check_case(dev, &cache, "lora+grad", build_lora, 7);
    check_case(dev, &cache, "chain", build_chain, 0);
    for (int v = 0; v < 8; v++) check_case(dev, &cache, "batch", build_batch, v);
    for (int v = 0; v <= 10; v++) check_case(dev, &cache, "bias", build_bias, v);
    // bf16 C and D (a LoRA sum, autocast.h): cuBLASLt reads the bf16 base output as C and rounds
    // D = alpha·acc + C once; the CPU the same in its own summation order: the bf16 results at most
    // one ulp apart (2^-8 of the largest), the gradients through them 2
    for (int v = 0; v < 4; v++) check_case_tol(dev, &cache, "lowp-lora", build_lowp_lora, v, 1.0 / 256);
    check_case_tol(dev, &cache, "lowp+grad", build_lowp_lora, 4, 2.0 / 256);
    // a bf16 bias and D (a biased linear layer, autocast.h): cuBLASLt's bias epilogue reads the
    // bias in D's type (bf16) and rounds acc + bias once; with LoRA (4) the LoRA product
    // accumulates into that bf16 result: one ulp, the gradients two
    static const int lowp_bias[] = {0, 1, 2, 4, 5};
    for (int k = 0; k < 5; k++) check_case_tol(dev, &cache, "lowp-bias", build_lowp_bias, lowp_bias[k], 1.0 / 256);
    check_case_tol(dev, &cache, "lowp-bias+grad", build_lowp_bias, 10, 2.0 / 256);
    rt_cuda_close(dev);
    diag_free(&d);
    return test_done("gemm_acc.cuda");
}
