// cmd_check.c — `trlc check SPEC`: loads the spec and its imports, checks every block, prints all
// diagnostics on stderr and a one-line summary. Exit 0 (valid), 1 (spec errors), 2 (usage).
// `--set KEY=VALUE` overrides a setting before checking (check_override); `--settings` prints the
// blocks-and-settings reference generated from the schema.
// Not here: lowering or memory planning (later passes and options).
#include "check.h"
#include "cli.h"
#include "load.h"
#include "schema.h"
#include <stdio.h>
#include <string.h>

const char usage_check[] =
    "usage: trlc check SPEC [--set KEY=VALUE ...]\n"
    "       trlc check --settings\n"
    "\n"
    "Checks SPEC (a .trl file) and the modules it imports without running anything: syntax,\n"
    "blocks, settings, types, units, ranges, files, LoRA targets and cross-references. Every\n"
    "problem is printed on stderr as `file:line:col: error: ...` with the source line and a hint.\n"
    "\n"
    "options:\n"
    "  --set KEY=VALUE   override a setting before checking: `--set train.optimizer.lr=1e-4`,\n"
    "                    `--set lora.policy.targets=[q_proj,v_proj]`; KEY is a dotted path\n"
    "                    (block, label, setting ...), VALUE is written as in a spec\n"
    "  --settings        print the reference of every block and setting (Markdown) and exit\n"
    "  -h, --help        this help\n"
    "\n"
    "exit status: 0 the spec is valid, 1 it has errors, 2 usage error\n";

enum { MAX_SETS = 64 };


int cmd_check(int argc, char **argv) {
    const char *path = NULL;
    const char *sets[MAX_SETS];
    int nsets = 0;
    bool settings = false, opts_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (!opts_done && !strcmp(arg, "--")) {
            opts_done = true;
        } else if (!opts_done && !strcmp(arg, "--set")) {
            const char *kv = i + 1 < argc ? argv[++i] : NULL;
            if (!kv || !strchr(kv, '=') || kv[0] == '=') {
                fprintf(stderr, "trlc check: error: `--set` takes KEY=VALUE, e.g. `--set train.optimizer.lr=1e-4`\n%s",
                        usage_check);
                return EXIT_USAGE;
            }
            if (nsets == MAX_SETS) {
                fprintf(stderr, "trlc check: error: more than %d `--set` options\n", MAX_SETS);
                return EXIT_USAGE;
            }
            sets[nsets++] = kv;
        } else if (!opts_done && !strcmp(arg, "--settings")) {
            settings = true;
        } else if (!opts_done && arg[0] == '-' && arg[1]) {
            fprintf(stderr, "trlc check: error: unknown option `%s`\n%s", arg, usage_check);
            return EXIT_USAGE;
        } else if (path) {
            fprintf(stderr, "trlc check: error: one spec at a time (got `%s` and `%s`)\n%s", path, arg, usage_check);
            return EXIT_USAGE;
        } else {
            path = arg;
        }
    }
    if (settings) {
        if (path) {
            fprintf(stderr, "trlc check: error: `--settings` takes no spec\n%s", usage_check);
            return EXIT_USAGE;
        }
        schema_write_markdown(stdout);
        return EXIT_OK;
    }
    if (!path) {
        fprintf(stderr, "trlc check: error: no spec given\n%s", usage_check);
        return EXIT_USAGE;
    }

    Diag d;
    diag_init(&d, stderr);
    Arena arena = {0};
    LoadedSpec spec = {0};
    CheckedSpec *checked = arena_alloc(&arena, sizeof *checked);
    if (load_spec(&d, &arena, path, &spec) == 0) {
        Ast *root = spec.mods[spec.nmods - 1].root;
        int bad = 0;
        for (int i = 0; i < nsets; i++) bad |= check_override_arg(&d, &arena, root, sets[i]) != 0;
        if (!bad) check_spec(&d, &arena, &spec, checked);
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
    arena_free(&arena);
    diag_free(&d);
    return errors ? EXIT_SPEC : EXIT_OK;
}
