// cli.h — the subcommands of the trlc binary. Each returns the process exit status:
// 0 success, 1 spec or data error (diagnostics printed), 2 usage error, 3 runtime failure.
#ifndef TRLC_CLI_H
#define TRLC_CLI_H
#include "arena.h"
#include "check.h"
#include "diag.h"
#include "load.h"
#include <stdbool.h>

enum { EXIT_OK = 0, EXIT_SPEC = 1, EXIT_USAGE = 2, EXIT_RUNTIME = 3 };

typedef struct Command {
    const char *name;
    const char *summary;                 // one line for `trlc --help`
    const char *usage;                   // full text for `trlc CMD --help`
    int (*run)(int argc, char **argv);   // argv[0] is the subcommand name
} Command;

int cmd_check(int argc, char **argv);
int cmd_merge(int argc, char **argv);
extern const char usage_merge[];
int cmd_inspect(int argc, char **argv);
extern const char usage_inspect[];
int cmd_ast(int argc, char **argv);
extern const char usage_ast[];
int cmd_ir(int argc, char **argv);
int cmd_tokenize(int argc, char **argv);
int cmd_data(int argc, char **argv);
extern const char usage_data[];
int cmd_run(int argc, char **argv);
extern const char usage_run[];
int cmd_kernels(int argc, char **argv);
extern const char usage_kernels[];

int cmd_generate(int argc, char **argv), cmd_chat(int argc, char **argv);   // gen
extern const char usage_generate[], usage_chat[];   // gen

extern const char usage_check[], usage_ir[], usage_tokenize[];

// True when argv holds -h or --help (subcommands print their usage and return 0).
int cli_wants_help(int argc, char **argv);

// A usage error of `trlc CMD`, as every subcommand words it: prints `trlc: error: CMD: ` and the
// message on stderr, then usage_text (NULL: none); returns EXIT_USAGE (2).
int cli_usage_error(const char *cmd, const char *usage_text, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// One option of a subcommand for cli_parse_args (a table ends with a NULL name): a flag sets
// *flag; a KEY=VALUE option (--set) appends its value to list (*nlist of CLI_MAX_SETS); any
// other takes the next argument into *value (the last one given wins).
enum { CLI_MAX_SETS = 64 };
typedef struct CliOpt {
    const char *name;      // "--plan", "-o"
    bool *flag;
    const char **value;
    const char **list;     // CLI_MAX_SETS entries
    int *nlist;
} CliOpt;
// Parses argv[1..] of `trlc CMD`: the options of opts, `--` ending them, at most one positional
// argument (the spec, *path; NULL when none; path NULL: the command takes none). EXIT_OK, or
// EXIT_USAGE after printing as cli_usage_error (unknown option, missing value, bad KEY=VALUE, two
// specs, an unexpected argument).
int cli_parse_args(int argc, char **argv, const char *cmd, const char *usage_text, const CliOpt *opts,
                   const char **path);

// Loads the spec at path into spec (in a), applies each --set KEY=VALUE of sets to its main module
// and checks it into cs. 0, or -1 after reporting through d (any error reported counts).
int cli_load_checked(Diag *d, Arena *a, const char *path, const char *const *sets, int nsets, LoadedSpec *spec,
                     CheckedSpec *cs);

#endif
