// test_check_mutate.c — no spec crashes the checker. Takes every examples/language/*.trl spec and,
// for every setting in it, replaces the value with each of a list of hostile values (wrong types,
// extreme numbers, empty lists, nested constructs, calls, slices, expressions ...), and also
// deletes each setting and each block in turn. Each variant is loaded and checked in-process
// (run under ASan+UBSan to catch memory errors); the assertions are that check_spec returns -1
// exactly when it reported errors, and that every variant with a hostile value is rejected or
// accepted without crashing.
// usage: test_check_mutate EXAMPLES_DIR
#include "check.h"
#include "load.h"
#include "test.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>

static const char *const hostile[] = {
    "\"x\"", "\"\"", "0", "-1", "1e308", "-1e308", "9223372036854775807", "0.5", "[]", "[1, \"a\", b]",
    "[[1], [2]]", "foo", "all_linear", "adamw", "foo { x = 1; }", "adamw { lr = \"a\"; }", "true", "3%",
    "-5%", "5 tokens", "2 epochs", "0 steps", "f(1, a = 2)", "normal(std = -1)", "normal(1, 2)",
    "layers[1:0]", "layers[-1]", "layers[:]", "a.b.c", "-x", "1 + 2", "!true", "x[1]", "policy",
};
enum { NHOSTILE = sizeof hostile / sizeof hostile[0] };

static FILE *sink;
static long variants;

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = NULL;
    size_t cap = 0, n = 0;
    for (;;) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            buf = realloc(buf, cap + 1);
        }
        size_t r = fread(buf + n, 1, cap - n, f);
        n += r;
        if (r == 0) break;
    }
    fclose(f);
    buf[n] = 0;
    *len = n;
    return buf;
}

// Loads and checks one variant; only memory safety and status consistency are asserted.
static void run_variant(const char *path, const char *text, size_t len) {
    Diag d;
    diag_init(&d, sink);
    Arena a = {0};
    LoadedSpec spec = {0};
    CheckedSpec *out = arena_alloc(&a, sizeof *out);
    if (load_spec_text(&d, &a, path, text, len, &spec) == 0) {
        int before = d.errors;
        int rc = check_spec(&d, &a, &spec, out);
        CHECK_MSG((rc == -1) == (d.errors > before), "%s: check_spec returned %d with %d new errors", path, rc,
                  d.errors - before);
    }
    variants++;
    arena_free(&a);
    diag_free(&d);
}

// Every `= value;` in settings (not in graph code: specs here keep graph code out of the way
// except graph.trl, whose assignments are harmless to mutate too).
static void mutate_values(const char *path, const char *text, size_t len) {
    char *buf = malloc(len + 256);
    for (size_t i = 0; i < len; i++) {
        if (text[i] != '=' || (i > 0 && strchr("=!<>", text[i - 1])) || (i + 1 < len && text[i + 1] == '=')) continue;
        size_t start = i + 1, end = start;
        int depth = 0;
        while (end < len && !(depth == 0 && (text[end] == ';' || text[end] == '\n'))) {
            if (text[end] == '{' || text[end] == '[' || text[end] == '(') depth++;
            if (text[end] == '}' || text[end] == ']' || text[end] == ')') depth--;
            if (depth < 0) break;
            end++;
        }
        for (int h = 0; h < NHOSTILE; h++) {
            size_t hl = strlen(hostile[h]);
            memcpy(buf, text, start);
            buf[start] = ' ';
            memcpy(buf + start + 1, hostile[h], hl);
            memcpy(buf + start + 1 + hl, text + end, len - end);
            run_variant(path, buf, start + 1 + hl + len - end);
        }
    }
    free(buf);
}

// Deletes each line in turn (a setting, a block opener, a closing brace ...).
static void delete_lines(const char *path, const char *text, size_t len) {
    char *buf = malloc(len + 1);
    size_t bol = 0;
    while (bol < len) {
        size_t eol = bol;
        while (eol < len && text[eol] != '\n') eol++;
        if (eol < len) eol++;
        memcpy(buf, text, bol);
        memcpy(buf + bol, text + eol, len - eol);
        run_variant(path, buf, bol + len - eol);
        bol = eol;
    }
    free(buf);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_check_mutate EXAMPLES_DIR\n");
        return 2;
    }
    sink = fopen("/dev/null", "w");
    if (!sink) sink = stderr;
    DIR *dir = opendir(argv[1]);
    CHECK(dir != NULL);
    int files = 0;
    for (struct dirent *e; dir && (e = readdir(dir));) {
        size_t n = strlen(e->d_name);
        if (n < 5 || strcmp(e->d_name + n - 4, ".trl")) continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        size_t len;
        char *text = read_all(path, &len);
        CHECK_MSG(text != NULL, "cannot read %s", path);
        if (!text) continue;
        files++;
        mutate_values(path, text, len);
        delete_lines(path, text, len);
        free(text);
    }
    if (dir) closedir(dir);
    CHECK(files >= 8);
    printf("%d specs, %ld variants checked\n", files, variants);
    if (sink != stderr) fclose(sink);
    return test_done("check.mutate");
}
