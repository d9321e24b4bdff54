// fuzz_cli.c — the command line: input = byte 0 picks the subcommand (check, ast, ir, tokenize,
// data, run, inspect, merge, kernels, generate, chat), the rest is its arguments, one per line
// ("\n" separated). The subcommand's own cmd_* function parses them (cli_parse_args and each
// command's option loop and value checks: --memory B,T, --arch sm_XY, --max-new N, --shard-size,
// --set KEY=VALUE ...). No command runs: each call runs in an empty directory of the scratch space
// (chdir there for the call only), arguments holding '/' are skipped (no path reaches a real
// file), and stdin is /dev/null, so every command stops at its first file with an error.
// Oracles: the exit status is one of 0..3 (cli.h), and the empty directory is still empty (a
// command whose inputs do not exist writes nothing).
// Not fuzzed here: what the commands do with real inputs (the other harnesses read those).
#include "cli.h"
#include "fuzz_util.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const struct {
    const char *name;
    int (*run)(int, char **);
} g_cmds[] = {
    {"check", cmd_check},     {"ast", cmd_ast},         {"ir", cmd_ir},           {"tokenize", cmd_tokenize},
    {"data", cmd_data},       {"run", cmd_run},         {"inspect", cmd_inspect}, {"merge", cmd_merge},
    {"kernels", cmd_kernels}, {"generate", cmd_generate}, {"chat", cmd_chat},
};
enum { NCMDS = sizeof g_cmds / sizeof *g_cmds, MAXARGS = 64 };

// main.c's (not linked here: it holds main): -h / --help before `--`.
int cli_wants_help(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) return 1;
    }
    return 0;
}

static char g_cwd[4096];   // <fuzz_dir>/a/b/cwd: empty; `..` from it is empty too

static void setup(void) {
    static int done;
    if (done) return;
    done = 1;
    char p[4096];
    FUZZ_ASSERT(fuzz_mkdir("a", p, sizeof p) == 0 && fuzz_mkdir("a/b", p, sizeof p) == 0 &&
                fuzz_mkdir("a/b/cwd", g_cwd, sizeof g_cwd) == 0);
    int fd = open("/dev/null", O_RDWR);
    FUZZ_ASSERT(fd >= 0);
    FUZZ_ASSERT(dup2(fd, 0) == 0);   // stdin: commands that read it see nothing
    if (!getenv("FUZZ_VERBOSE")) FUZZ_ASSERT(dup2(fd, 1) == 1);   // usage texts, plans
    close(fd);
}

static bool dir_empty(const char *path) {
    DIR *dir = opendir(path);
    if (!dir) return false;
    bool empty = true;
    for (struct dirent *e; empty && (e = readdir(dir));) empty = !strcmp(e->d_name, ".") || !strcmp(e->d_name, "..");
    closedir(dir);
    return empty;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    setup();
    const char *cmd = g_cmds[data[0] % NCMDS].name;
    int (*run)(int, char **) = g_cmds[data[0] % NCMDS].run;
    char *text = fuzz_strndup(data + 1, size - 1);
    if (!text) return 0;
    if (memchr(data + 1, '/', size - 1) || strlen(text) != size - 1) {   // paths; NULs cut arguments short
        free(text);
        return 0;
    }
    char *argv[MAXARGS + 2];
    int argc = 0;
    argv[argc++] = (char *)cmd;
    if (size > 1)
        for (char *p = text; p && argc <= MAXARGS;) {
            argv[argc++] = p;
            p = strchr(p, '\n');
            if (p) *p++ = 0;
        }
    argv[argc] = NULL;
    int home = open(".", O_RDONLY | O_DIRECTORY);   // libFuzzer's corpus paths are relative to it
    FUZZ_ASSERT(home >= 0 && chdir(g_cwd) == 0);
    int rc = run(argc, argv);
    fflush(stdout);
    FUZZ_ASSERT(fchdir(home) == 0);
    close(home);
    FUZZ_ASSERT(rc >= EXIT_OK && rc <= EXIT_RUNTIME);
    FUZZ_ASSERT(dir_empty(g_cwd));
    free(text);
    return 0;
}
