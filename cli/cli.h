// cli.h — the subcommands of the trlc binary. Each returns the process exit status:
// 0 success, 1 spec or data error (diagnostics printed), 2 usage error, 3 runtime failure.
#ifndef TRLC_CLI_H
#define TRLC_CLI_H

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

#endif
