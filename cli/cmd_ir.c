// cmd_ir.c — `trlc ir SPEC [--after PASS] [--model NAME] [--f64]`: loads and checks the spec,
// lowers the policy (or the named model) with its objective, runs the IR passes up to PASS
// (lower, lora when the spec has a `lora` block, autodiff, dce; all by default) and prints the
// graph: inputs, parameters (name, shape, trainable), forward, backward, outputs. Exit 0, 1 (spec
// errors), 2 (usage).
// Not here: running the graph (trlc run), kernels.
#include "autodiff.h"
#include "check.h"
#include "cli.h"
#include "ir.h"
#include "load.h"
#include "lora.h"
#include "lower.h"
#include "recompute.h"
#include <stdio.h>
#include <string.h>

const char usage_ir[] =
    "usage: trlc ir SPEC [--after PASS] [--model NAME] [--f64]\n"
    "\n"
    "Checks SPEC, lowers its model and objective to the tensor IR, differentiates it, and prints\n"
    "the graph: inputs, parameters (HF names, shapes, trainable), forward nodes, backward nodes\n"
    "and outputs, one node per line with the spec location it came from.\n"
    "\n"
    "options:\n"
    "  --after PASS   print the IR after PASS: lower, lora, autodiff, cse, dce or recompute\n"
    "                 (default: the last the spec runs: recompute with `train.recompute = true`)\n"
    "  --model NAME   lower the model block NAME instead of the policy\n"
    "  --f64          build the graph in float64 (as gradient checks do)\n"
    "  -h, --help     this help\n"
    "\n"
    "exit status: 0 success, 1 spec errors, 2 usage error\n";

int cmd_ir(int argc, char **argv) {
    const char *path = NULL, *after = NULL, *model_name = NULL;
    bool f64 = false;
    const CliOpt opts[] = {{"--after", .value = &after}, {"--model", .value = &model_name}, {"--f64", .flag = &f64},
                           {0}};
    if (cli_parse_args(argc, argv, "ir", usage_ir, opts, &path) != EXIT_OK) return EXIT_USAGE;
    if (!path) return cli_usage_error("ir", usage_ir, "no spec given");
    if (after) {
        int n;
        const char *const *names = ad_pass_names(&n);
        const char *all[8] = {"lower", "lora"};
        int nall = 2;
        for (int i = 0; i < n && nall < 7; i++)
            if (strcmp(names[i], "lower")) all[nall++] = names[i];
        all[nall++] = "recompute";
        bool known = false;
        for (int i = 0; i < nall; i++) known |= !strcmp(all[i], after);
        if (!known) {
            fprintf(stderr, "trlc: error: ir: unknown pass `%s` (passes:", after);
            for (int i = 0; i < nall; i++) fprintf(stderr, " %s", all[i]);
            fprintf(stderr, ")\n");
            const char *s = suggest_word(after, all, (size_t)nall);
            if (s) fprintf(stderr, "hint: did you mean `%s`?\n", s);
            return EXIT_USAGE;
        }
    }

    Diag d;
    diag_init(&d, stderr);
    Arena arena = {0};
    LoadedSpec spec = {0};
    CheckedSpec *cs = arena_alloc(&arena, sizeof *cs);
    IrGraph g;
    ir_graph_init(&g, &d, f64 ? IR_F64 : IR_F32);
    int status = EXIT_OK;
    if (cli_load_checked(&d, &arena, path, NULL, 0, &spec, cs) != 0) {
        status = EXIT_SPEC;
    } else {
        int model = -1;
        if (model_name) {
            for (int i = 0; i < cs->nmodels; i++)
                if (cs->models[i].name && !strcmp(cs->models[i].name, model_name)) model = i;
            if (model < 0) {
                diag_plain_error(&d, "the spec has no model `%s`", model_name);
                const char *names[CHECK_MAX_MODELS];
                for (int i = 0; i < cs->nmodels; i++) names[i] = cs->models[i].name;
                const char *s = suggest_word(model_name, names, (size_t)cs->nmodels);
                if (s) diag_hint(&d, "did you mean `%s`?", s);
                status = EXIT_USAGE;
            }
        }
        LowerResult res;
        if (status == EXIT_OK) {
            LowerOptions opt;
            lower_options_from_spec(cs, &opt);
            int rc = lower_model_opts(&d, &arena, &spec, cs, model, &opt, &g, &res);
            // the LoRA rewrite of the policy, as `trlc run` applies it
            int mi = model < 0 ? cs->policy : model;
            const CheckedModel *cm = rc == 0 && mi >= 0 && mi < cs->nmodels ? &cs->models[mi] : NULL;
            bool lora = cm && cm->has_lora && mi == cs->policy;
            if (lora && !(after && !strcmp(after, "lower"))) {
                LoraOptions lo = {.rank = cm->lora_rank, .alpha = cm->lora_alpha, .dropout = cm->lora_dropout,
                                  .train_dropout = true, .rslora = cm->lora_rslora, .all_linear = cm->lora_all_linear,
                                  .targets = cm->lora_targets, .ntargets = cm->lora_ntargets,
                                  .seed = (uint64_t)cs->train.seed};
                LoraResult lr;
                rc = lora_apply(&d, &arena, &g, &res, &lo, &lr);
            }
            bool stop = after && (!strcmp(after, "lower") || !strcmp(after, "lora"));
            // recompute: asked for, or by default when the spec trains with it (as `trlc run` does)
            bool redo = after ? !strcmp(after, "recompute") : cs->train.recompute && mi == cs->policy;
            const char *passes = after && strcmp(after, "recompute") ? after : NULL;
            if (rc != 0 || (!stop && ad_run_passes(&g, passes) != 0) || (redo && ir_recompute(&g, NULL) != 0))
                status = EXIT_SPEC;
            else
                ir_print_after(stdout, &g, &d, redo ? "recompute" : after ? after : "dce");
        }
    }
    if (status == EXIT_SPEC && d.errors)
        fprintf(stderr, "%s: %d error%s\n", path, d.errors, d.errors == 1 ? "" : "s");
    ir_graph_free(&g);
    arena_free(&arena);
    diag_free(&d);
    return status;
}
