// memplan_spec.c — see memplan_spec.h. The training graph is pipeline.h's, as the trainer compiles it.
#include "memplan_spec.h"
#include "fuse.h"
#include "memplan.h"
#include "pipeline.h"
#include <stdint.h>
#include <string.h>

int mp_compile_training_graph(Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs, IrGraph *g) {
    LowerResult res;
    PlOptions o = {.train = true};
    if (pl_compile_policy(d, a, spec, cs, &o, g, &res) != 0) return -1;
    if (pl_finish_graph(g, cs->train.precision, NULL, NULL) != 0) return -1;
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

// Bytes of side's params that the training step's graph does not hold with the same name, dtype
// and size (the GPU program then has a buffer of its own; exec.c cuda_share_params). frozen_only:
// only the policy's frozen params are shared (the reference's copy of a trained weight starts equal
// but is not the same host data).
static int64_t own_weights(const IrGraph *side, const IrGraph *train, bool shares, bool frozen_only) {
    int64_t bytes = 0;
    for (int i = 0; i < side->n; i++) {
        const IrNode *n = &side->nodes[i];
        if (n->op != IR_PARAM) continue;
        IrId t = shares && n->name ? ir_find(train, n->name) : IR_NONE;
        const IrNode *m = t != IR_NONE ? &train->nodes[t] : NULL;
        int64_t one[IR_NSYMS] = {1, 1}, numel = ir_shape_numel(&n->shape, one);
        if (m && m->op == IR_PARAM && m->dtype == n->dtype && ir_shape_numel(&m->shape, one) == numel &&
            !(frozen_only && m->trainable))
            continue;
        int64_t e = n->dtype == IR_BF16 || n->dtype == IR_F16 ? 2 : n->dtype == IR_F64 ? 8 : n->dtype == IR_U8 ? 1 : 4;
        if (numel > 0 && numel <= (INT64_MAX - bytes) / e) bytes += numel * e;
    }
    return bytes;
}

static int finish_side(Diag *d, CheckedSpec *cs, MpSide *p) {
    if (pl_finish_graph(&p->g, cs->train.precision, NULL, NULL) != 0 || p->g.errors) return -1;
    return fuse_plan(&p->g, d, &p->fp);
}

int mp_sides_compile(Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs, const IrGraph *train, int64_t T,
                     MpSides *s) {
    memset(s, 0, sizeof *s);
    const char *k = cs->objective.kind ? cs->objective.kind : "";
    if (strcmp(k, "sft") && strcmp(k, "pretrain") && strcmp(k, "dpo") && strcmp(k, "orpo") && strcmp(k, "kd"))
        return 0;   // the trainer refuses it (runtime/train/trainer.c: compile)
    // the evaluation's forward, as tr_new makes it (also tells whether the loss is per pair)
    MpSide *e = &s->p[s->n++];
    e->what = "evaluation";
    ir_graph_init(&e->g, d, IR_F32);
    LowerResult res;
    PlOptions o = {.train = false};
    if (pl_compile_policy(d, a, spec, cs, &o, &e->g, &res) != 0) return -1;
    bool per_pair = res.loss_per && !strcmp(res.loss_per, "pair");
    int64_t Te = cs->eval_data >= 0 && cs->eval_data < cs->ndata && cs->data[cs->eval_data].max_len > 0
                     ? cs->data[cs->eval_data].max_len : 0;
    if (cs->eval_data < 0) {   // no evaluation runs: its program is made, with its workspace
        e->idle = true;
        e->rows = 1;
        e->t_from = "no data eval";
    } else {
        if (pl_eval_head(&e->g, per_pair, false) != 0 || finish_side(d, cs, e) != 0) return -1;
        e->weights = own_weights(&e->g, train, true, false);
        e->rows = 1;   // per-pair objectives: the graph's B counts pairs, as train.batch does
        e->T = Te > 0 ? Te : T;
        e->t_from = Te > 0 ? "the eval data's max_len" : "the step's T: the eval data sets no max_len";
    }
    PlAux kind;
    int model;
    if (pl_aux_model(d, cs, &kind, &model) != 0) return -1;
    if (kind == PL_AUX_NONE) return 0;
    MpSide *x = &s->p[s->n++];
    x->what = kind == PL_AUX_TEACHER ? "teacher" : "reference";
    ir_graph_init(&x->g, d, IR_F32);
    int lo, ro;
    if (pl_aux_graph(d, a, spec, cs, kind, model, &x->g, &res, &lo, &ro) != 0 || finish_side(d, cs, x) != 0) return -1;
    // the policy as the reference: its frozen weights are shared, the rest copied (trainer.c: setup_aux)
    x->weights = own_weights(&x->g, train, model == cs->policy, true);
    x->rows = per_pair ? 2 : 1;   // it runs row by row: 2 rows a pair
    x->T = Te > T ? Te : T;
    x->t_from = Te > T ? "the eval data's max_len" : "the step's T";
    return 0;
}

int64_t mp_side_plan(const MpSide *p, int64_t B, const char *precision, MpPlan *out, Diag *d) {
    memset(out, 0, sizeof *out);
    if (p->idle) return out->workspace = out->total = MP_GEMM_WORKSPACE;
    if (B > INT64_MAX / p->rows) {
        diag_plain_error(d, "memory plan: the %s's batch overflows", p->what);
        return -1;
    }
    int64_t sym[IR_NSYMS] = {B * p->rows, p->T};
    if (mp_plan(&p->g, &p->fp, sym, precision, out, d) != 0) return -1;
    int64_t t = out->activations + out->workspace;   // mp_plan's total holds both: no overflow
    return t <= INT64_MAX - p->weights ? t + p->weights : -1;
}

void mp_sides_free(MpSides *s) {
    for (int i = 0; i < s->n; i++) {
        fuse_plan_free(&s->p[i].fp);
        ir_graph_free(&s->p[i].g);
    }
    s->n = 0;
}
