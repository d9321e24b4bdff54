// cmd_ast.c — `trlc ast SPEC`: parses a spec and what it imports and prints the syntax trees in
// ast_dump's stable form (for debugging the front end and the passes that walk its tree).
// Not here: checking (that is `trlc check`); the trees are printed even when check would fail.
#include "cli.h"
#include "load.h"
#include <stdio.h>
#include <string.h>

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
    int imports = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--imports")) imports = 1;
        else if (argv[i][0] == '-' && argv[i][1]) {
            fprintf(stderr, "trlc: error: unknown option `%s`\n%s", argv[i], usage_ast);
            return EXIT_USAGE;
        } else if (!path) path = argv[i];
        else {
            fprintf(stderr, "trlc: error: one SPEC only\n%s", usage_ast);
            return EXIT_USAGE;
        }
    }
    if (!path) {
        fputs(usage_ast, stderr);
        return EXIT_USAGE;
    }
    Diag d;
    diag_init(&d, stderr);
    Arena arena = {0};
    LoadedSpec spec;
    int rc = load_spec(&d, &arena, path, &spec);
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
