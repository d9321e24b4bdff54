// memplan_spec.c — see memplan_spec.h. LoRA is applied only when the build has the LoRA pass
// (TRLC_HAVE_LORA, set by compiler/CMakeLists.txt when the trlc_lora target exists).
#include "memplan_spec.h"
#include "autodiff.h"
#include "fuse.h"
#include "lower.h"
#include "memplan.h"
#include "recompute.h"
#include "autocast.h"
#include "linear_ce.h"
#include "gemm_acc.h"
#ifdef TRLC_HAVE_LORA
#include "lora.h"
#endif
#include <string.h>

int mp_compile_training_graph(Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs, IrGraph *g) {
    LowerResult res;
    LowerOptions opt;   // the objective as the trainer lowers it (dpo's doubled batch, kd's teacher input)
    lower_options_from_spec(cs, &opt);
    if (lower_model_opts(d, a, spec, cs, -1, &opt, g, &res) != 0) return -1;
#ifdef TRLC_HAVE_LORA
    const CheckedModel *m = cs->policy >= 0 && cs->policy < cs->nmodels ? &cs->models[cs->policy] : NULL;
    if (m && m->has_lora) {
        LoraOptions lo = {0};
        lo.nf4 = m->quantized;   // QLoRA: the frozen weights are planned as NF4 codes + scales
        lo.quant_block = m->quant_block > 0 ? m->quant_block : 64;
        lo.rank = m->lora_rank;
        lo.alpha = m->lora_alpha;
        lo.dropout = m->lora_dropout;
        lo.train_dropout = true;
        lo.rslora = m->lora_rslora;
        lo.all_linear = m->lora_all_linear;
        lo.targets = m->lora_targets;
        lo.ntargets = m->lora_ntargets;
        lo.seed = (uint64_t)cs->train.seed;
        LoraResult lr;
        if (lora_apply(d, a, g, &res, &lo, &lr) != 0) return -1;
    }
#endif
    // as in the trainer: the training step hands out no logits (as an output they would stay
    // allocated through the whole backward pass)
    int k = 0;
    for (int i = 0; i < g->nouts; i++)
        if (strcmp(g->outs[i].name, "logits") != 0) g->outs[k++] = g->outs[i];
    g->nouts = k;
    if (ir_fuse_linear_ce(g) < 0 || ad_run_passes(g, NULL) != 0) return -1;
    if (cs->train.recompute && ir_recompute(g, NULL) != 0) return -1;   // after cse, which would undo it
    if (ir_recompute_cheap(g, NULL) != 0) return -1;
    if (ir_linear_ce_hoist_grads(g) < 0) return -1;   // the head's backward beside its forward
    // precision = bf16: the graph the trainer runs (autocast.h)
    if (cs->train.precision && !strcmp(cs->train.precision, "bf16") && ir_autocast_bf16(g, NULL) != 0) return -1;
    // products that accumulate into their sums, as the trainer runs them (gemm_acc.h)
    if (ir_fuse_gemm_accumulate(g, NULL) < 0) return -1;
    return g->errors ? -1 : 0;
}

int mp_compile_spec_file(Diag *d, Arena *a, const char *path, LoadedSpec *spec, CheckedSpec *cs, IrGraph *g) {
    if (load_spec(d, a, path, spec) != 0 || check_spec(d, a, spec, cs) != 0) return -1;
    return mp_compile_training_graph(d, a, spec, cs, g);
}

int mp_open_spec_file(Diag *d, Arena *a, const char *path, LoadedSpec *spec, CheckedSpec **cs, IrGraph *g) {
    *a = (Arena){0};
    *spec = (LoadedSpec){0};
    ir_graph_init(g, d, IR_F32);
    *cs = arena_alloc(a, sizeof **cs);
    return mp_compile_spec_file(d, a, path, spec, *cs, g);
}

int mp_report_spec(FILE *out, Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs, int64_t B, int64_t T) {
    if (B <= 0) B = cs->train.batch > 0 ? cs->train.batch : 1;
    if (T <= 0) {
        T = cs->train_data >= 0 && cs->data[cs->train_data].max_len > 0 ? cs->data[cs->train_data].max_len : 2048;
    }
    IrGraph g;
    ir_graph_init(&g, d, IR_F32);
    FusePlan fp;
    memset(&fp, 0, sizeof fp);
    MpPlan mp;
    memset(&mp, 0, sizeof mp);
    int rc = -1;
    if (mp_compile_training_graph(d, a, spec, cs, &g) == 0 && fuse_plan(&g, d, &fp) == 0) {
        int64_t sym[IR_NSYMS] = {B, T};
        if (mp_plan(&g, &fp, sym, cs->train.precision, &mp, d) == 0) {
            mp_print(out, &mp);
            rc = 0;
        }
    }
    mp_plan_free(&mp);
    fuse_plan_free(&fp);
    ir_graph_free(&g);
    return rc;
}
