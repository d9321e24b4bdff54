// cmd_check.c — `trlc check SPEC`: loads the spec and its imports, checks every block, prints all
// diagnostics on stderr and a one-line summary. Exit 0 (valid), 1 (spec errors), 2 (usage).
// `--set KEY=VALUE` overrides a setting before checking (check_override); `--settings` prints the
// blocks-and-settings reference generated from the schema. A valid spec's training step is then
// compiled as `trlc run` compiles it (memplan_spec.h: lower, LoRA, autodiff, mixed precision), so
// that an error only lowering finds (a misspelt name in a custom arch's forward, a shape that does
// not fit) is reported here too, with its location. `--memory` also fuses that step and prints its
// static GPU memory plan per category (memplan.h) for the spec's precision, batch size and max_len.
// Not here: the passes and the planner themselves (compiler/), running anything.
#include "check.h"
#include "cli.h"
#include "fuse.h"
#include "ir.h"
#include "load.h"
#include "memplan.h"
#include "memplan_spec.h"
#include "schema.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char usage_check[] =
    "usage: trlc check SPEC [--set KEY=VALUE ...] [--memory]\n"
    "       trlc check --settings\n"
    "\n"
    "Checks SPEC (a .trl file) and the modules it imports without running anything: syntax,\n"
    "blocks, settings, types, units, ranges, files, LoRA targets and cross-references; then\n"
    "compiles the policy's training step as `trlc run` does (no weights read), so that what\n"
    "lowering finds (a misspelt name in an arch's forward, shapes that do not fit) is found\n"
    "here. Every problem is printed on stderr as `file:line:col: error: ...` with the source\n"
    "line and a hint.\n"
    "\n"
    "options:\n"
    "  --set KEY=VALUE   override a setting before checking: `--set train.optimizer.lr=1e-4`,\n"
    "                    `--set lora.policy.targets=[q_proj,v_proj]`; KEY is a dotted path\n"
    "                    (block, label, setting ...), VALUE is written as in a spec\n"
    "  --memory          when the spec is valid, also print the planned GPU memory of one training\n"
    "                    step per category (weights, grads, optimizer, activations, workspace),\n"
    "                    and the largest values live at the activations' peak, with spec lines\n"
    "                    for train.precision, B = train.batch and T = the train data's max_len\n"
    "                    (other sizes: `--set train.batch=8 --set \"data.train.max_len=512 tokens\"`)\n"
    "  --settings        print the reference of every block and setting (Markdown) and exit\n"
    "  -h, --help        this help\n"
    "\n"
    "exit status: 0 the spec is valid, 1 it has errors, 2 usage error\n";

// The memory plan of a checked spec: the training step as `trlc run` compiles it, fused, planned
// for train.precision, B = train.batch and T = the train data's max_len (mp_report_spec's
// defaults). Fills *mp (free with mp_plan_free) and returns 0, or -1 after reporting through d.
// *peak: what fills the arena at its fullest (mp_print_peak's lines, malloc'd; NULL if none).
static int plan_memory(Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs, MpPlan *mp, const char **t_from,
                       char **peak) {
    int64_t B = cs->train.batch > 0 ? cs->train.batch : 1;
    int64_t T = 2048;
    *t_from = "the default: no train data";
    if (cs->train_data >= 0 && cs->train_data < cs->ndata && cs->data[cs->train_data].max_len > 0) {
        T = cs->data[cs->train_data].max_len;
        *t_from = "the train data's max_len";
    }
    IrGraph g;
    ir_graph_init(&g, d, IR_F32);
    FusePlan fp;
    memset(&fp, 0, sizeof fp);
    int rc = -1;
    if (mp_compile_training_graph(d, a, spec, cs, &g) == 0 && fuse_plan(&g, d, &fp) == 0) {
        int64_t sym[IR_NSYMS] = {B, T};
        rc = mp_plan(&g, &fp, sym, cs->train.precision, mp, d);
        size_t len = 0;
        FILE *f = rc == 0 ? open_memstream(peak, &len) : NULL;
        if (f) {   // the graph is freed below: its peak's lines are kept as text
            if (mp_print_peak(f, mp, &g, &fp, d, 10) != 0) rewind(f);
            fclose(f);
        }
    }
    fuse_plan_free(&fp);
    ir_graph_free(&g);
    if (rc == 0) {   // the categories and their sum must be representable (mp_plan bounds each buffer)
        int64_t c[5] = {mp->weights, mp->grads, mp->optimizer, mp->activations, mp->workspace}, sum = 0;
        for (int i = 0; i < 5 && rc == 0; i++) {
            if (c[i] < 0 || c[i] > INT64_MAX - sum) rc = -1;
            else sum += c[i];
        }
        if (rc != 0) {
            diag_plain_error(d, "memory plan: the total overflows for B=%lld, T=%lld", (long long)B, (long long)T);
            mp_plan_free(mp);
        }
    }
    if (rc != 0 && d->errors == 0) diag_plain_error(d, "memory plan: the training step could not be compiled");
    return rc == 0 ? 0 : -1;
}

// Without --memory: the training step compiled (and dropped) for its errors. 0, or -1 after reporting.
static int compile_step(Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs) {
    IrGraph g;
    ir_graph_init(&g, d, IR_F32);
    int rc = mp_compile_training_graph(d, a, spec, cs, &g);
    ir_graph_free(&g);
    if (rc != 0 && d->errors == 0) diag_plain_error(d, "the training step could not be compiled");
    return rc;
}

static void print_memory(const CheckedSpec *cs, const MpPlan *mp, const char *t_from, const char *peak) {
    printf("memory: precision %s (train.precision), B=%lld (train.batch), T=%lld (%s)\n",
           cs->train.precision ? cs->train.precision : "fp32", (long long)mp->sym[0], (long long)mp->sym[1], t_from);
    mp_print(stdout, mp);
    printf("  bytes: weights %lld, grads %lld, optimizer %lld, activations %lld, workspace %lld, total %lld\n",
           (long long)mp->weights, (long long)mp->grads, (long long)mp->optimizer, (long long)mp->activations,
           (long long)mp->workspace, (long long)mp->total);
    if (peak) fputs(peak, stdout);
    if (cs->train.optimizer && strcmp(cs->train.optimizer, "adamw"))
        printf("  note: optimizer is planned as AdamW's two fp32 moments; train.optimizer is %s\n", cs->train.optimizer);
    if (cs->train.recompute)
        printf("  note: train.recompute: each layer's values are recomputed in the backward pass (planned)\n");
    if (cs->nmodels > 1)
        printf("  note: only the policy is planned; the %d other model%s (reference, teacher, reward) %s not included\n",
               cs->nmodels - 1, cs->nmodels == 2 ? "" : "s", cs->nmodels == 2 ? "is" : "are");
}


int cmd_check(int argc, char **argv) {
    const char *path = NULL;
    const char *sets[CLI_MAX_SETS];
    int nsets = 0;
    bool settings = false, memory = false;
    const CliOpt opts[] = {{"--set", .list = sets, .nlist = &nsets}, {"--memory", .flag = &memory},
                           {"--settings", .flag = &settings}, {0}};
    if (cli_parse_args(argc, argv, "check", usage_check, opts, &path) != EXIT_OK) return EXIT_USAGE;
    if (settings) {
        if (path || memory)
            return cli_usage_error("check", usage_check, "`--settings` takes no spec%s", memory ? " and no `--memory`" : "");
        schema_write_markdown(stdout);
        return EXIT_OK;
    }
    if (!path) return cli_usage_error("check", usage_check, "no spec given");

    Diag d;
    diag_init(&d, stderr);
    Arena arena = {0};
    LoadedSpec spec = {0};
    CheckedSpec *checked = arena_alloc(&arena, sizeof *checked);
    MpPlan mp;
    memset(&mp, 0, sizeof mp);
    const char *t_from = NULL;
    char *peak = NULL;
    bool planned = false;
    if (cli_load_checked(&d, &arena, path, sets, nsets, &spec, checked) == 0) {
        if (memory) planned = plan_memory(&d, &arena, &spec, checked, &mp, &t_from, &peak) == 0;
        else compile_step(&d, &arena, &spec, checked);
    }
    int errors = d.errors, warnings = d.warnings;
    if (errors == 0 && warnings == 0) {
        printf("%s: ok\n", path);
    } else if (errors == 0) {
        fprintf(stderr, "%s: ok, %d warning%s\n", path, warnings, warnings == 1 ? "" : "s");
    } else {
        fprintf(stderr, "%s: %d error%s", path, errors, errors == 1 ? "" : "s");
        if (warnings) fprintf(stderr, ", %d warning%s", warnings, warnings == 1 ? "" : "s");
        fputc('\n', stderr);
    }
    if (planned && errors == 0) print_memory(checked, &mp, t_from, peak);
    free(peak);
    mp_plan_free(&mp);
    arena_free(&arena);
    diag_free(&d);
    return errors ? EXIT_SPEC : EXIT_OK;
}
