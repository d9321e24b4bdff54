// pipeline.c — see pipeline.h: the order of the passes that make a spec's policy the graph the
// trainer runs, and what each caller keeps of them. No pass is implemented here.
#include "pipeline.h"
#include "autodiff.h"
#include "linear_ce.h"
#include <stdlib.h>
#include <string.h>

// LoRA on the policy as its lora block says (train: with dropout).
static int apply_lora(Diag *d, Arena *a, const CheckedSpec *cs, const CheckedModel *m, const PlOptions *o,
                      IrGraph *g, LowerResult *res) {
    LoraOptions lo = lora_options_of(m);
    lo.nf4 = m->quantized;   // QLoRA: the frozen weights as NF4 codes + scales
    lo.quant_block = m->quant_block > 0 ? m->quant_block : 64;
    lo.train_dropout = o->train;
    lo.seed = (uint64_t)cs->train.seed;
    LoraResult lr;
    if (lora_apply(d, a, g, res, &lo, &lr) != 0) return -1;
    if (o->train && o->lora) *o->lora = lr;
    return 0;
}

static void drop_output(IrGraph *g, const char *name) {
    int k = 0;
    for (int i = 0; i < g->nouts; i++)
        if (strcmp(g->outs[i].name, name) != 0) g->outs[k++] = g->outs[i];
    g->nouts = k;
}

// The training program hands out no logits (B, T, V): as an output they would stay allocated
// through the whole backward pass.
static void drop_logits(IrGraph *g) { drop_output(g, "logits"); }

static int find_output(const IrGraph *g, const char *name) {
    for (int i = 0; i < g->nouts; i++)
        if (!strcmp(g->outs[i].name, name)) return i;
    return -1;
}

// After cse + dce renumbered g: the ids res and o->lora hold are mapped to the new numbering, which
// becomes the one later passes' ir_renumbered starts from (the caller's ids are all current).
static void remap_ids(IrGraph *g, LowerResult *res, const PlOptions *o) {
    IrId *ids[] = {&res->tokens, &res->pos, &res->labels, &res->seq, &res->logits, &res->loss, &res->ref_logp,
                   &res->old_logp, &res->advantages, &res->weight, &res->teacher_logits, &res->logp};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++)
        if (*ids[i] != IR_NONE) *ids[i] = ir_renumbered(g, *ids[i]);
    for (int i = 0; i < res->nparams; i++) res->params[i].id = ir_renumbered(g, res->params[i].id);
    if (o->lora)
        for (int i = 0; i < o->lora->nmods; i++) {
            o->lora->mods[i].A = ir_renumbered(g, o->lora->mods[i].A);
            o->lora->mods[i].B = ir_renumbered(g, o->lora->mods[i].B);
        }
    free(g->renum);
    g->renum = NULL, g->nrenum = 0;
}

static int training_passes(const CheckedSpec *cs, const PlOptions *o, IrGraph *g, LowerResult *res) {
    drop_logits(g);
    // the head and its loss as one op that never holds the whole batch's logits (linear_ce.h)
    if (ir_fuse_linear_ce(g) < 0) return -1;
    // the backward, then cse (one node for what the forward and backward both compute: the plan
    // and the trainer run the same graph) and dce
    if (ad_run_passes(g, NULL) != 0) return -1;
    remap_ids(g, res, o);
    // train.recompute: the backward recomputes each layer's values (after cse, which would undo it)
    if (cs->train.recompute && ir_recompute(g, o->recompute) != 0) return -1;
    // and always the cheap values (silu(gate) beside gate ...): recompute.h
    if (ir_recompute_cheap(g, NULL) != 0) return -1;
    // the head's backward beside its forward, one logits product for both (linear_ce.h)
    if (ir_linear_ce_hoist_grads(g) < 0) return -1;
    return 0;
}

int pl_compile_policy(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, const PlOptions *o, IrGraph *g,
                      LowerResult *res) {
    LowerOptions opt;   // the objective as the trainer lowers it (dpo's doubled batch, kd's teacher input)
    lower_options_from_spec(cs, &opt);
    if (lower_model_opts(d, a, spec, cs, -1, &opt, g, res) != 0) return -1;
    if (o->need_loss && res->loss == IR_NONE) {
        diag_plain_error(d, "objective `%s` lowered without a loss", opt.objective);
        return -1;
    }
    const CheckedModel *m = cs->policy >= 0 && cs->policy < cs->nmodels ? &cs->models[cs->policy] : NULL;
    if (m && m->has_lora && apply_lora(d, a, cs, m, o, g, res) != 0) return -1;
    if (o->train && training_passes(cs, o, g, res) != 0) return -1;
    return g->errors ? -1 : 0;
}

int pl_finish_graph(IrGraph *g, const char *precision, AutocastStats *ac, GemmAccStats *ga) {
    // precision = bf16: products on bf16 operands, frozen weights read only by products in bf16
    if (precision && !strcmp(precision, "bf16") && ir_autocast_bf16(g, ac) != 0) return -1;
    // products that accumulate into their sums, for fp32 and bf16 alike (gemm_acc.h)
    return ir_fuse_gemm_accumulate(g, ga) < 0 ? -1 : 0;
}

int pl_eval_head(IrGraph *g, bool per_pair, bool keep_logits) {
    if (per_pair && !keep_logits) drop_output(g, "logits");
    if ((!per_pair && ir_head_predictions(g, keep_logits) < 0) || ir_fuse_linear_ce(g) < 0) return -1;
    return 0;
}

int pl_aux_model(Diag *d, const CheckedSpec *cs, PlAux *kind, int *model) {
    const CheckedObjective *ob = &cs->objective;
    *kind = PL_AUX_NONE, *model = -1;
    if (ob->kind && !strcmp(ob->kind, "kd")) {
        if (ob->teacher < 0) {
            diag_error(d, ob->loc, "the `kd` objective needs `teacher = MODEL;`");
            return -1;
        }
        *kind = PL_AUX_TEACHER, *model = ob->teacher;
    } else if (ob->kind && !strcmp(ob->kind, "dpo")) {
        *kind = PL_AUX_REFERENCE, *model = ob->ref >= 0 ? ob->ref : cs->policy;
    }
    return 0;
}

// dpo: each row's summed target log-prob (B, 1) = -sum over T of linear_ce(x, w, labels), as the
// reference graph's output "ref_logp" in place of "logits" when they are matmul(x, w, trans_b):
// no (B, T, V) logits exist or cross to the host. Returns the output's index, or -1 for another
// head (the host then computes it from the downloaded logits) or after reporting (g->errors).
static int ref_logp_output(IrGraph *g) {
    int o = find_output(g, "logits");
    IrId x, w;
    if (o < 0 || !ir_head_product(g, g->outs[o].id, &x, &w) || g->nodes[x].shape.rank != 3) return -1;
    Loc loc = g->nodes[g->outs[o].id].loc;
    IrId lab = ir_find(g, LOWER_INPUT_LABELS);
    if (lab == IR_NONE) lab = ir_input(g, LOWER_INPUT_LABELS, IR_I32, ir_shape2(ir_dim_b(), ir_dim_t()), loc);
    IrId nll = ir_linear_ce(g, x, w, lab, LOWER_IGNORE_INDEX, 0.0, loc);
    IrId lp = nll == IR_NONE ? IR_NONE : ir_unary(g, IR_NEG, ir_reduce(g, IR_SUM, nll, 1, loc), loc);
    if (lp == IR_NONE) return -1;
    int k = 0;
    for (int i = 0; i < g->nouts; i++)
        if (i != o) g->outs[k++] = g->outs[i];
    g->nouts = k;
    return ir_add_output(g, lp, "ref_logp");
}

int pl_aux_graph(Diag *d, Arena *a, LoadedSpec *spec, const CheckedSpec *cs, PlAux kind, int model, IrGraph *g,
                 LowerResult *res, int *logits_out, int *ref_out) {
    *logits_out = *ref_out = -1;
    LowerOptions opt;
    lower_options_init(&opt);
    opt.objective = "none";
    LowerOptions sopt;   // a packed run's teacher / reference masks attention by `seq` too
    lower_options_from_spec(cs, &sopt);
    opt.pack = sopt.pack;
    if (lower_model_opts(d, a, spec, cs, model, &opt, g, res) != 0) return -1;
    // nothing of the teacher / reference trains: frozen weights are stored in bf16 under mixed
    // precision (shared with the policy's frozen ones) and reach the device once, not every step
    for (int i = 0; i < g->n; i++)
        if (g->nodes[i].op == IR_PARAM) g->nodes[i].trainable = false;
    *logits_out = find_output(g, "logits");
    if (kind == PL_AUX_REFERENCE && (*ref_out = ref_logp_output(g)) >= 0) *logits_out = -1;
    return g->errors ? -1 : 0;
}
