// cli_common.c — what the subcommands share (cli.h): usage errors (cli_usage_error: `trlc: error:
// CMD: ...`, exit 2), the option loop (cli_parse_args: flags, options with a value, repeatable
// KEY=VALUE options such as --set, `--` ending the options, at most one positional argument: the
// spec), and, for the spec-taking subcommands, loading a spec with its --set
// overrides applied and checking it (cli_load_checked).
// Not here: what a value means (each command checks its own: --arch, --memory, --device ...).
#include "cli.h"
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int cli_usage_error(const char *cmd, const char *usage_text, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "trlc: error: %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n%s", usage_text ? usage_text : "");
    return EXIT_USAGE;
}

int cli_parse_args(int argc, char **argv, const char *cmd, const char *usage_text, const CliOpt *opts,
                   const char **path) {
    bool opts_done = false;
    if (path) *path = NULL;
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
                return cli_usage_error(cmd, usage_text, "`%s` takes KEY=VALUE, e.g. `%s train.optimizer.lr=1e-4`", arg, arg);
            if (*o->nlist >= CLI_MAX_SETS)
                return cli_usage_error(cmd, usage_text, "more than %d `%s` options", CLI_MAX_SETS, arg);
            o->list[(*o->nlist)++] = kv;
        } else if (o) {
            if (i + 1 >= argc) return cli_usage_error(cmd, usage_text, "`%s` needs a value", arg);
            *o->value = argv[++i];
        } else if (!opts_done && arg[0] == '-' && arg[1]) {
            return cli_usage_error(cmd, usage_text, "unknown option `%s`", arg);
        } else if (!path) {
            return cli_usage_error(cmd, usage_text, "unexpected argument `%s`", arg);
        } else if (*path) {
            return cli_usage_error(cmd, usage_text, "one spec at a time (got `%s` and `%s`)", *path, arg);
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
