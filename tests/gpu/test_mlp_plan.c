// test_mlp_plan.c — the plan shape of SwiGLU's backward (issue #5: launches, memory). Arguments:
// SPEC N pairs. Per decoder layer of SPEC (one forward silu each) the backward has at most N
// kernels over the MLP's [B,T,ffn] shape (bf16 LoRA: 2, the recomputed silu(gate) * up that the
// down projection's LoRA gradient reads before its GEMMs, and the gradients of gate and up after
// them; 3 before); no kernel writes an f32 cast of gate or up (their readers load the bf16
// values, fuse.h FusePlan.read_as). Prints the counts and the activations planned at B = 8,
// T = 1024.
#include "fuse.h"
#include "gpu_test_util.h"
#include "memplan.h"
#include "test.h"
#include <stdio.h>
#include <stdlib.h>

static void test_spec(const char *path, int per_layer) {
    GpuTestSpec S;
    FusePlan p;
    memset(&p, 0, sizeof p);
    bool ok = gpu_test_spec_open(&S, path) == 0 && fuse_plan(&S.g, &S.d, &p) == 0;
    CHECK_MSG(ok, "%s: compiles and plans", path);
    if (ok) {
        const IrGraph *g = &S.g;
        int layers = 0;
        IrShape ffn = {0};
        for (int i = 0; i < g->n; i++)
            if (g->nodes[i].op == IR_SILU && !g->nodes[i].backward) ffn = g->nodes[i].shape, layers++;
        int kernels = 0, casts = 0, f32 = 0;
        for (int gi = 0; gi < p.ngroups; gi++) {
            const FuseGroup *gr = &p.groups[gi];
            if (!g->nodes[gr->nodes[0]].backward || !ir_shape_eq(&gr->dom, &ffn)) continue;
            kernels++;
            for (int k = 0; k < gr->nouts; k++) {
                const IrNode *o = &g->nodes[gr->outs[k]];
                if (o->dtype != IR_F32 || !ir_shape_eq(&o->shape, &ffn)) continue;
                f32++;
                casts += o->op == IR_CAST && g->nodes[o->in[0]].dtype == IR_BF16;
            }
        }
        MpPlan mp;
        int64_t sym[IR_NSYMS] = {8, 1024};
        bool planned = mp_plan(g, &p, sym, "bf16", &mp, &S.d) == 0;
        CHECK(planned);
        char act[32] = "?";
        if (planned) mp_bytes_str(act, sizeof act, mp.activations), mp_plan_free(&mp);
        printf("%s: %d layers; backward kernels over the MLP's shape %d; f32 values of that shape written there %d "
               "(%d casts); %d kernel launches; activations at B=8, T=1024: %s\n",
               path, layers, kernels, f32, casts, p.nsteps_kind[FUSE_KERNEL], act);
        CHECK_MSG(layers >= 2, "%s: SwiGLU layers found (%d)", path, layers);
        CHECK_MSG(kernels <= per_layer * layers, "%s: at most %d backward kernels over [B,T,ffn] a layer (%d for %d layers)",
                  path, per_layer, kernels, layers);
        CHECK_MSG(casts == 0, "%s: no f32 cast of gate or up written (%d)", path, casts);
    }
    fuse_plan_free(&p);
    gpu_test_spec_free(&S);
}

int main(int argc, char **argv) {
    CHECK_MSG(argc >= 3 && argc % 2 == 1, "usage: test_gpu_mlp_plan SPEC N [SPEC N ...]");
    for (int i = 1; i + 1 < argc; i += 2) test_spec(argv[i], atoi(argv[i + 1]));
    return test_done("gpu.mlp_plan");
}
