// memplan_spec.c — see memplan_spec.h. The training graph is pipeline.h's, as the trainer compiles it.
#include "memplan_spec.h"
#include "fuse.h"
#include "memplan.h"
#include "pipeline.h"
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
