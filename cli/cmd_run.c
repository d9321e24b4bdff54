// cmd_run.c — `trlc run SPEC`: loads and checks the spec (with `--set` overrides applied as in
// `trlc check`), then trains it (runtime/train/trainer.h) and prints a summary.
// Exit: 0 done, 1 spec or data error, 2 usage error, 3 runtime failure (NaN loss, no CUDA, I/O).
// Not here: the training loop itself (trainer_loop.c).
#include "check.h"
#include "cli.h"
#include "load.h"
#include "trainer.h"
#include <signal.h>
#include <stdio.h>
#include <string.h>

const char usage_run[] =
    "usage: trlc run SPEC [--set KEY=VALUE ...] [--out DIR] [--resume RUN_DIR] [--device cpu|cuda]\n"
    "\n"
    "Checks SPEC, compiles its policy (LoRA adapters when the spec has a `lora` block), loads the\n"
    "weights (`from`) or initialises them (`init`), and trains on `data train`: gradient\n"
    "accumulation normalised by the target tokens of the whole step, clipping, AdamW/SGD,\n"
    "schedules, `data eval` evaluation, early stopping, checkpoints. The run directory (train.out,\n"
    "default runs/<spec name>) gets metrics.jsonl, tensorboard/, checkpoint-<step>/, best/ and the\n"
    "export: adapter/ (a PEFT adapter) for LoRA runs, model/ (a Hugging Face model) otherwise.\n"
    "\n"
    "options:\n"
    "  --set KEY=VALUE   override a setting before checking: `--set train.optimizer.lr=1e-4`\n"
    "  --out DIR         the run directory (instead of train.out)\n"
    "  --resume RUN_DIR  continue RUN_DIR from its latest complete checkpoint (same losses as an\n"
    "                    uninterrupted run); outputs go to RUN_DIR\n"
    "  --device DEV      cpu (default) or cuda: training, evaluation and the teacher / reference\n"
    "                    model on GPU 0, fp32 or precision = bf16 (TRLC_CUDA_DRIVER names another\n"
    "                    driver library)\n"
    "  -h, --help        this help\n"
    "\n"
    "Ctrl-C (or SIGTERM) stops after the current step and saves a checkpoint to resume from.\n"
    "\n"
    "exit status: 0 done, 1 spec or data error, 2 usage error, 3 runtime failure (e.g. NaN loss)\n"
    "or interrupted\n";

// Ctrl-C / SIGTERM: the first one asks the trainer to stop after the current step (and save a
// checkpoint); a second one ends the process at once.
static volatile sig_atomic_t interrupted;
static void on_signal(int sig) {
    if (interrupted) {
        signal(sig, SIG_DFL);
        raise(sig);
    }
    interrupted = 1;
}



int cmd_run(int argc, char **argv) {
    const char *path = NULL, *sets[CLI_MAX_SETS];
    int nsets = 0;
    TrainerOptions o = {0};
    o.device = "cpu";
    const CliOpt opts[] = {{"--set", .list = sets, .nlist = &nsets}, {"--out", .value = &o.out_dir},
                           {"--resume", .value = &o.resume_dir}, {"--device", .value = &o.device}, {0}};
    if (cli_parse_args(argc, argv, "run", usage_run, opts, &path) != EXIT_OK) return EXIT_USAGE;
    if (strcmp(o.device, "cpu") && strcmp(o.device, "cuda"))
        return cli_usage_error("run", usage_run, "unknown device `%s` (cpu or cuda)", o.device);
    if (!path) return cli_usage_error("run", usage_run, "no spec given");
    if (o.out_dir && o.resume_dir)
        return cli_usage_error("run", usage_run, "`--out` and `--resume` cannot be combined (a resumed run writes to RUN_DIR)");

    Diag d;
    diag_init(&d, stderr);
    Arena arena = {0};
    LoadedSpec spec = {0};
    CheckedSpec *cs = arena_alloc(&arena, sizeof *cs);
    int rc = EXIT_SPEC;
    if (cli_load_checked(&d, &arena, path, sets, nsets, &spec, cs) == 0) {
        TrainerSummary sum;
        o.interrupt = &interrupted;
        signal(SIGINT, on_signal);
        signal(SIGTERM, on_signal);
        int st = trainer_run(&d, &arena, &spec, cs, &o, &sum);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        rc = st == TR_OK ? EXIT_OK : st == TR_SPEC_ERROR ? EXIT_SPEC : EXIT_RUNTIME;
    }
    if (rc == EXIT_SPEC && d.errors)
        fprintf(stderr, "%s: %d error%s\n", path, d.errors, d.errors == 1 ? "" : "s");
    arena_free(&arena);
    diag_free(&d);
    return rc;
}
