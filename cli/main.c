// main.c — the trlc command line: dispatches to a subcommand (cmd_*.c). The only place that
// decides the exit status; passes below only report and count.
#include "cli.h"
#include "cpu.h"
#include "diag.h"
#include <stdio.h>
#include <string.h>

static const Command commands[] = {
    {"check", "check a spec and print every diagnostic", usage_check, cmd_check},
    {"ast", "print the syntax tree of a spec (debugging)", usage_ast, cmd_ast},
    {"ir", "print the IR of a spec (forward, backward, parameters)", usage_ir, cmd_ir},
    {"inspect", "show and validate a model directory or .safetensors file", usage_inspect, cmd_inspect},
    {"merge", "merge a PEFT LoRA adapter into its base model (a full HF model directory)", usage_merge, cmd_merge},
    {"tokenize", "encode JSON strings from stdin to token ids (or decode)", usage_tokenize, cmd_tokenize},
    {"data", "check a dataset and show which tokens are learned", usage_data, cmd_data},
    {"run", "train a spec: full fine-tuning, LoRA, from scratch (checkpoints, resume, export)", usage_run, cmd_run},
    {"kernels", "generate, compile and list the GPU kernels of a spec", usage_kernels, cmd_kernels},
    {"generate", "continue a prompt with a model directory (KV cache; greedy or sampled)", usage_generate, cmd_generate},
    {"chat", "chat with a model directory on stdin/stdout (its chat template)", usage_chat, cmd_chat},
};
enum { NCOMMANDS = sizeof commands / sizeof commands[0] };

static void print_help(FILE *out) {
    fprintf(out,
            "trlc %s — a compiler and runtime for LLM post-training\n\n"
            "usage: trlc COMMAND [ARGS...]\n"
            "       trlc COMMAND --help\n\n"
            "commands:\n",
            TRLC_VERSION);
    for (int i = 0; i < NCOMMANDS; i++) fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(out,
            "\noptions:\n"
            "  -h, --help     this help\n"
            "  --version      print the version\n\n"
            "exit status: 0 success, 1 spec or data error, 2 usage error, 3 runtime failure\n");
}

int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    }
    return 0;
}

int main(int argc, char **argv) {
    cpu_prefer_short_spin(argv);   // idle OpenMP threads spin briefly, then sleep (see cpu.h)
    if (argc < 2) {
        print_help(stderr);
        return EXIT_USAGE;
    }
    const char *name = argv[1];
    if (!strcmp(name, "-h") || !strcmp(name, "--help") || !strcmp(name, "help")) {
        if (argc > 2 && strcmp(name, "help") == 0) {
            for (int i = 0; i < NCOMMANDS; i++)
                if (!strcmp(argv[2], commands[i].name)) {
                    fputs(commands[i].usage, stdout);
                    return EXIT_OK;
                }
            fprintf(stderr, "trlc: error: unknown command `%s`\n", argv[2]);
            return EXIT_USAGE;
        }
        print_help(stdout);
        return EXIT_OK;
    }
    if (!strcmp(name, "--version") || !strcmp(name, "version")) {
        printf("trlc %s\n", TRLC_VERSION);
        return EXIT_OK;
    }
    for (int i = 0; i < NCOMMANDS; i++) {
        if (strcmp(name, commands[i].name)) continue;
        if (cli_wants_help(argc - 1, argv + 1)) {
            fputs(commands[i].usage, stdout);
            return EXIT_OK;
        }
        return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "trlc: error: unknown command `%s`\n", name);
    const char *names[NCOMMANDS];
    for (int i = 0; i < NCOMMANDS; i++) names[i] = commands[i].name;

    const char *s = suggest_word(name, names, NCOMMANDS);
    if (s) fprintf(stderr, "hint: did you mean `%s`?\n", s);
    fprintf(stderr, "run `trlc --help` for the list of commands\n");
    return EXIT_USAGE;
}
