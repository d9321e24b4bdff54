// cli_common.c — what the spec-taking subcommands share (cli.h): the option loop
// (cli_parse_args: flags, options with a value, repeatable KEY=VALUE options such as --set, `--`
// ending the options, one positional argument: the spec), and loading a spec with its --set
// overrides applied and checking it (cli_load_checked).
// Not here: what a value means (each command checks its own: --arch, --memory, --device ...).
#include "cli.h"
#include <stdio.h>
#include <string.h>

static int usage(const char *cmd, const char *usage_text, const char *what, const char *a, const char *b) {
    fprintf(stderr, "trlc %s: error: ", cmd);
    fprintf(stderr, what, a, b);
    fprintf(stderr, "\n%s", usage_text);
    return EXIT_USAGE;
}

int cli_parse_args(int argc, char **argv, const char *cmd, const char *usage_text, const CliOpt *opts,
                   const char **path) {
    bool opts_done = false;
    *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const CliOpt *o = NULL;
        for (int k = 0; !opts_done && opts[k].name && !o; k++)
            if (!strcmp(arg, opts[k].name)) o = &opts[k];
        if (!opts_done && !strcmp(arg, "--")) {
            opts_done = true;
        } else if (o && o->flag) {
            *o->flag = true;
        } else if (o && o->list) {   // KEY=VALUE, repeatable
            const char *kv = i + 1 < argc ? argv[++i] : NULL;
            if (!kv || !strchr(kv, '=') || kv[0] == '=')
                return usage(cmd, usage_text, "`%s` takes KEY=VALUE, e.g. `%s train.optimizer.lr=1e-4`", arg, arg);
            if (*o->nlist >= CLI_MAX_SETS)
                return usage(cmd, usage_text, "more than %s `%s` options", "64", arg);
            o->list[(*o->nlist)++] = kv;
        } else if (o) {
            if (i + 1 >= argc) return usage(cmd, usage_text, "`%s` needs a value%s", arg, "");
            *o->value = argv[++i];
        } else if (!opts_done && arg[0] == '-' && arg[1]) {
            return usage(cmd, usage_text, "unknown option `%s`%s", arg, "");
        } else if (*path) {
            return usage(cmd, usage_text, "one spec at a time (got `%s` and `%s`)", *path, arg);
        } else {
            *path = arg;
        }
    }
    return EXIT_OK;
}

int cli_load_checked(Diag *d, Arena *a, const char *path, const char *const *sets, int nsets, LoadedSpec *spec,
                     CheckedSpec *cs) {
    if (load_spec(d, a, path, spec) != 0) return -1;
    Ast *root = spec->mods[spec->nmods - 1].root;
    int bad = 0;
    for (int i = 0; i < nsets; i++) bad |= check_override_arg(d, a, root, sets[i]) != 0;
    return !bad && check_spec(d, a, spec, cs) == 0 && d->errors == 0 ? 0 : -1;
}
