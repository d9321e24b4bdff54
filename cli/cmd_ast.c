// cmd_ast.c — `trlc ast SPEC`: parses a spec and what it imports and prints the syntax trees in
// ast_dump's stable form (for debugging the front end and the passes that walk its tree).
// Not here: checking (that is `trlc check`); the trees are printed even when check would fail.
#include "cli.h"
#include "load.h"
#include <stdio.h>

const char usage_ast[] =
    "usage: trlc ast SPEC [--imports]\n"
    "\n"
    "Parses SPEC and the modules it imports and prints the syntax tree of SPEC\n"
    "(with --imports, of every module, in dependency order). Syntax errors are\n"
    "printed on stderr and nothing else.\n"
    "\n"
    "exit status: 0 parsed, 1 syntax or import errors, 2 usage error\n";

int cmd_ast(int argc, char **argv) {
    const char *path = NULL;
    bool imports = false;
    const CliOpt opts[] = {{"--imports", .flag = &imports}, {0}};
    int rc = cli_parse_args(argc, argv, "ast", usage_ast, opts, &path);
    if (rc != EXIT_OK) return rc;
    if (!path) return cli_usage_error("ast", usage_ast, "no spec given");
    Diag d;
    diag_init(&d, stderr);
    Arena arena = {0};
    LoadedSpec spec;
    rc = load_spec(&d, &arena, path, &spec);
    if (rc == 0) {
        for (int i = imports ? 0 : spec.nmods - 1; i < spec.nmods; i++) {
            if (imports) printf("# %s\n", spec.mods[i].path);
            ast_dump(stdout, spec.mods[i].root, 0);
        }
    }
    arena_free(&arena);
    diag_free(&d);
    return rc == 0 ? EXIT_OK : EXIT_SPEC;
}
