// cmd_check.c — `trlc check SPEC`: loads the spec and its imports, checks every block, prints all
// diagnostics on stderr and a one-line summary. Exit 0 (valid), 1 (spec errors), 2 (usage).
// `--set KEY=VALUE` overrides a setting before checking (check_override); `--settings` prints the
// blocks-and-settings reference generated from the schema. A valid spec's training step is then
// compiled as `trlc run` compiles it (memplan_spec.h: lower, LoRA, autodiff, mixed precision), so
// that an error only lowering finds (a misspelt name in a custom arch's forward, a shape that does
// not fit) is reported here too, with its location. `--memory` also fuses that step and prints its
// static GPU memory plan per category (memplan.h) for the spec's precision, batch size and max_len,
// then the programs `trlc run` runs beside the step in arenas of their own (the evaluation's
// forward, dpo's reference, kd's teacher: memplan_spec.h mp_sides_compile) and the run's total.
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
    "usage: trlc check SPEC [--set KEY=VALUE ...] [--memory] [--fit SIZE]\n"
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
    "                    (other sizes: `--set train.batch=8 --set \"data.train.max_len=512 tokens\"`);\n"
    "                    then the evaluation's forward (with data eval: B examples of its max_len)\n"
    "                    and dpo's reference or kd's teacher, each in an arena of its own, and\n"
    "                    the run's total\n"
    "  --fit SIZE        with --memory: the largest train.batch whose planned run total fits SIZE\n"
    "                    (e.g. 80GiB, 141GB, 40000MiB) at that T, and with train.recompute\n"
    "                    switched the other way\n"
    "  --settings        print the reference of every block and setting (Markdown) and exit\n"
    "  -h, --help        this help\n"
    "\n"
    "exit status: 0 the spec is valid, 1 it has errors, 2 usage error\n";

// The run's planned total for batch B (fp: g's fusion plan) at T: the step's and the side
// programs' (sides); -1 when it cannot be planned (a size that overflows). Probes report into quiet
// (a Diag writing nowhere): a batch too large is an answer, not an error.
static int64_t total_at(const IrGraph *g, const FusePlan *fp, const MpSides *sides, const char *precision, int64_t B,
                        int64_t T, Diag *quiet) {
    MpPlan p;
    int64_t sym[IR_NSYMS] = {B, T};
    if (mp_plan(g, fp, sym, precision, &p, quiet) != 0) return -1;
    int64_t total = p.total;   // mp_plan checks that it is representable
    mp_plan_free(&p);
    for (int i = 0; i < sides->n && total >= 0; i++) {
        int64_t t = mp_side_plan(&sides->p[i], B, precision, &p, quiet);
        mp_plan_free(&p);
        total = t < 0 || t > INT64_MAX - total ? -1 : total + t;
    }
    return total;
}

// The largest B (0: not even 1; at most FIT_MAX_B) whose total at T fits budget bytes; *total its
// total, *next the total of B + 1 (-1: unplannable). Totals grow with B: doubling, then bisection.
enum { FIT_MAX_B = 1 << 20 };
static int64_t largest_batch(const IrGraph *g, const FusePlan *fp, const MpSides *sides, const char *precision,
                             int64_t T, int64_t budget, Diag *quiet, int64_t *total, int64_t *next) {
    int64_t t1 = total_at(g, fp, sides, precision, 1, T, quiet);
    *total = t1, *next = t1;
    if (t1 < 0 || t1 > budget) return 0;
    int64_t lo = 1, hi = 2;   // lo fits; hi is the first doubling that does not (or the cap)
    while (hi <= FIT_MAX_B) {
        int64_t t = total_at(g, fp, sides, precision, hi, T, quiet);
        if (t < 0 || t > budget) break;
        lo = hi, hi *= 2;
    }
    if (hi > FIT_MAX_B) hi = FIT_MAX_B + 1;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2, t = total_at(g, fp, sides, precision, mid, T, quiet);
        if (t >= 0 && t <= budget) lo = mid;
        else hi = mid;
    }
    *total = total_at(g, fp, sides, precision, lo, T, quiet);
    *next = lo < FIT_MAX_B ? total_at(g, fp, sides, precision, lo + 1, T, quiet) : -1;
    return lo;
}

static void human_bytes(char *buf, size_t n, int64_t b) {   // mp_bytes_str, or what a -1 total means
    if (b < 0) snprintf(buf, n, "too much to plan");
    else mp_bytes_str(buf, n, b);
}

static void fit_line(FILE *f, const char *what, int64_t B, int64_t total, int64_t next) {
    char t[32], nx[32];
    human_bytes(t, sizeof t, total);
    human_bytes(nx, sizeof nx, next);
    if (B == 0) fprintf(f, "  %s: B=1 does not fit (%s)\n", what, t);
    else if (B >= FIT_MAX_B) fprintf(f, "  %s: B=%lld (%s; larger batches not tried)\n", what, (long long)B, t);
    else fprintf(f, "  %s: B=%lld (%s; B=%lld: %s)\n", what, (long long)B, t, (long long)(B + 1), nx);
}

// --fit: the largest batch of this step (g, fp) that fits budget at T, and of the step compiled
// with train.recompute the other way (a second graph).
static void fit_report(FILE *f, Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs, const IrGraph *g,
                       const FusePlan *fp, const MpSides *sides, int64_t T, int64_t budget) {
    char b[32];
    human_bytes(b, sizeof b, budget);
    fprintf(f, "fit: the largest train.batch whose planned run total fits %s at T=%lld\n"
               "  (the step%s; not counted: the CUDA context and the libraries' own memory):\n", b,
            (long long)T, sides->n == 2 ? ", the evaluation and the reference or teacher"
                          : sides->n == 1 ? (strcmp(sides->p[0].what, "evaluation") ? " and its reference or teacher"
                                                                                    : " and the evaluation") : "");
    FILE *sink = fopen("/dev/null", "w");
    Diag quiet;   // where the probes report
    diag_init(&quiet, sink ? sink : stderr);
    int64_t total, next, B = largest_batch(g, fp, sides, cs->train.precision, T, budget, &quiet, &total, &next);
    fit_line(f, cs->train.recompute ? "as specified (train.recompute = true)" : "as specified", B, total, next);
    IrGraph g2;
    ir_graph_init(&g2, d, IR_F32);
    FusePlan fp2;
    memset(&fp2, 0, sizeof fp2);
    cs->train.recompute = !cs->train.recompute;
    if (mp_compile_training_graph(d, a, spec, cs, &g2) == 0 && fuse_plan(&g2, d, &fp2) == 0) {
        B = largest_batch(&g2, &fp2, sides, cs->train.precision, T, budget, &quiet, &total, &next);
        fit_line(f, cs->train.recompute ? "with train.recompute = true" : "with train.recompute = false", B, total,
                 next);
    }
    cs->train.recompute = !cs->train.recompute;
    fuse_plan_free(&fp2);
    ir_graph_free(&g2);
    diag_free(&quiet);
    if (sink) fclose(sink);
}

// The side programs' lines (evaluation, reference / teacher) at train.batch B and the run total
// (step + sides) into *out (malloc'd, NULL when there is no side program). 0, or -1 after reporting.
static int print_sides(const CheckedSpec *cs, const MpPlan *step, const MpSides *sides, int64_t B, Diag *d,
                       char **out) {
    *out = NULL;
    if (sides->n == 0) return 0;
    size_t len = 0;
    FILE *f = open_memstream(out, &len);
    if (!f) return 0;
    int64_t run = step->total, bytes[2] = {0, 0};
    char tb[32], ab[32], wb[32], ob[32];
    for (int i = 0; i < sides->n; i++) {
        const MpSide *p = &sides->p[i];
        MpPlan sp;
        int64_t t = mp_side_plan(p, B, cs->train.precision, &sp, d);
        if (t < 0 || t > INT64_MAX - run) {
            mp_plan_free(&sp);
            fclose(f);
            if (d->errors == 0) diag_plain_error(d, "memory plan: the %s's total overflows", p->what);
            return -1;
        }
        run += t, bytes[i] = t;
        mp_bytes_str(tb, sizeof tb, t);
        mp_bytes_str(ab, sizeof ab, sp.activations);
        mp_bytes_str(wb, sizeof wb, sp.workspace);
        mp_bytes_str(ob, sizeof ob, p->weights);
        if (p->idle) {
            fprintf(f, "  %-11s %s (no data eval: its program is made but never runs; workspace %s)\n", p->what, tb, wb);
            mp_plan_free(&sp);
            continue;
        }
        fprintf(f, "  %-11s %s (activations %s at B=%lld%s, T=%lld (%s); workspace %s", p->what, tb, ab,
                (long long)sp.sym[0], p->rows == 2 ? " rows: 2 a pair" : "", (long long)sp.sym[1], p->t_from, wb);
        if (p->weights) fprintf(f, "; weights %s of its own", ob);
        fprintf(f, ")\n");
        mp_plan_free(&sp);
    }
    mp_bytes_str(tb, sizeof tb, run);
    fprintf(f, "  run total   %s (the training step and the program%s beside it, each in an arena of its own)\n", tb,
            sides->n == 1 ? "" : "s");
    fprintf(f, "  run bytes:");
    for (int i = 0; i < sides->n; i++) fprintf(f, " %s %lld,", sides->p[i].what, (long long)bytes[i]);
    fprintf(f, " total %lld\n", (long long)run);
    fclose(f);
    return 0;
}

// The memory plan of a checked spec: the training step as `trlc run` compiles it, fused, planned
// for train.precision, B = train.batch and T = the train data's max_len (mp_report_spec's
// defaults). Fills *mp (free with mp_plan_free) and returns 0, or -1 after reporting through d.
// *sides_txt: the side programs' lines and the run total (malloc'd; NULL if none). *report: text
// printed after them (malloc'd; NULL if none): what fills the step's arena at its fullest
// (mp_print_peak's lines) and, with fit > 0, the largest batch whose run total fits fit bytes.
static int plan_memory(Diag *d, Arena *a, LoadedSpec *spec, CheckedSpec *cs, MpPlan *mp, const char **t_from,
                       int64_t fit, char **sides_txt, char **report) {
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
    MpSides sides = {0};
    int rc = -1;
    if (mp_compile_training_graph(d, a, spec, cs, &g) == 0 && fuse_plan(&g, d, &fp) == 0) {
        int64_t sym[IR_NSYMS] = {B, T};
        rc = mp_plan(&g, &fp, sym, cs->train.precision, mp, d);
        if (rc == 0) rc = mp_sides_compile(d, a, spec, cs, &g, T, &sides);
        if (rc == 0) rc = print_sides(cs, mp, &sides, B, d, sides_txt);
        size_t len = 0;
        FILE *f = rc == 0 ? open_memstream(report, &len) : NULL;
        if (f) {   // the graph is freed below: its report is kept as text
            if (mp_print_peak(f, mp, &g, &fp, d, 10) != 0) rewind(f);
            if (fit > 0) fit_report(f, d, a, spec, cs, &g, &fp, &sides, T, fit);
            fclose(f);
        }
    }
    mp_sides_free(&sides);
    fuse_plan_free(&fp);
    ir_graph_free(&g);
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

static void print_memory(const CheckedSpec *cs, const MpPlan *mp, const char *t_from, const char *sides,
                         const char *peak) {
    printf("memory: precision %s (train.precision), B=%lld (train.batch), T=%lld (%s)\n",
           cs->train.precision ? cs->train.precision : "fp32", (long long)mp->sym[0], (long long)mp->sym[1], t_from);
    mp_print(stdout, mp);
    printf("  bytes: weights %lld, grads %lld, optimizer %lld, activations %lld, workspace %lld, total %lld\n",
           (long long)mp->weights, (long long)mp->grads, (long long)mp->optimizer, (long long)mp->activations,
           (long long)mp->workspace, (long long)mp->total);
    if (sides) fputs(sides, stdout);
    if (peak) fputs(peak, stdout);
    if (cs->train.optimizer && strcmp(cs->train.optimizer, "adamw"))
        printf("  note: optimizer is planned as AdamW's two fp32 moments; train.optimizer is %s\n", cs->train.optimizer);
    if (cs->train.recompute)
        printf("  note: train.recompute: each layer's values are recomputed in the backward pass (planned)\n");
    // a reference or teacher model other than the policy is planned above (the side programs)
    const CheckedObjective *ob = &cs->objective;
    int aux = ob->kind && !strcmp(ob->kind, "kd") ? ob->teacher : ob->kind && !strcmp(ob->kind, "dpo") ? ob->ref : -1;
    int others = cs->nmodels - 1 - (aux >= 0 && aux != cs->policy);
    if (others > 0)
        printf("  note: the %d other model%s (reward ...) %s not planned\n", others, others == 1 ? "" : "s",
               others == 1 ? "is" : "are");
}


// "80GiB", "141GB", "40000MiB", "79.5 GiB" -> bytes (GiB/MiB binary, GB/MB decimal); 0 when bad.
static int64_t parse_gib(const char *s) {
    char *end;
    double v = strtod(s, &end);
    if (end == s || !(v > 0) || v > 1e15) return 0;
    while (*end == ' ') end++;
    double mul = !strcmp(end, "GiB") ? 1073741824.0 : !strcmp(end, "MiB") ? 1048576.0
               : !strcmp(end, "GB")  ? 1e9 : !strcmp(end, "MB") ? 1e6 : 0;
    return mul > 0 && v * mul < 9e18 ? (int64_t)(v * mul) : 0;
}

int cmd_check(int argc, char **argv) {
    const char *path = NULL;
    const char *sets[CLI_MAX_SETS];
    int nsets = 0;
    bool settings = false, memory = false;
    const char *fit_arg = NULL;
    const CliOpt opts[] = {{"--set", .list = sets, .nlist = &nsets}, {"--memory", .flag = &memory},
                           {"--fit", .value = &fit_arg}, {"--settings", .flag = &settings}, {0}};
    if (cli_parse_args(argc, argv, "check", usage_check, opts, &path) != EXIT_OK) return EXIT_USAGE;
    int64_t fit = 0;
    if (fit_arg) {
        if (!memory) return cli_usage_error("check", usage_check, "`--fit` needs `--memory`");
        fit = parse_gib(fit_arg);
        if (fit <= 0)
            return cli_usage_error("check", usage_check, "bad size `%s` for --fit (e.g. 80GiB, 141GB, 40000MiB)", fit_arg);
    }
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
    char *peak = NULL, *sides = NULL;
    bool planned = false;
    if (cli_load_checked(&d, &arena, path, sets, nsets, &spec, checked) == 0) {
        if (memory) planned = plan_memory(&d, &arena, &spec, checked, &mp, &t_from, fit, &sides, &peak) == 0;
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
    if (planned && errors == 0) print_memory(checked, &mp, t_from, sides, peak);
    free(sides);
    free(peak);
    mp_plan_free(&mp);
    arena_free(&arena);
    diag_free(&d);
    return errors ? EXIT_SPEC : EXIT_OK;
}
