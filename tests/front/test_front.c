// test_front.c — the front end: scanner, parser, AST dump, imports.
//   test_front parse DIR        every ok/*.trl parses with no error; ok/X.ast holds X's exact dump;
//                               every embedded stdlib module parses
//   test_front diagnostics DIR  err/X.trl gives exactly err/X.expected on the diagnostics stream
//   test_front robust DIR       hostile inputs: errors (or a clean parse), never a crash
//   test_front fuzz DIR         a deterministic mutation loop over ok/*.trl and the stdlib
//   test_front imports DIR      import resolution, order, cycles, unknown modules, TRLC_STDLIB_DIR
//   test_front dump FILE        (debugging) prints the diagnostics and the AST of FILE
// FRONT_UPDATE=1 rewrites the .ast / .expected files (review the diff before committing).
#include "load.h"
#include "test.h"
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char *read_all(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 1024, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, f)) > 0) {
        n += got;
        if (n == cap) buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static void write_all(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fputs(text, f);
    fclose(f);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Sorted names in dir ending with suffix.
static int list_dir(const char *dir, const char *suffix, char ***out) {
    DIR *dp = opendir(dir);
    int n = 0, cap = 16;
    char **names = malloc((size_t)cap * sizeof *names);
    if (dp) {
        struct dirent *e;
        while ((e = readdir(dp))) {
            size_t l = strlen(e->d_name), m = strlen(suffix);
            if (l <= m || strcmp(e->d_name + l - m, suffix)) continue;
            if (n == cap) names = realloc(names, (size_t)(cap *= 2) * sizeof *names);
            names[n++] = strdup(e->d_name);
        }
        closedir(dp);
    }
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    *out = names;
    return n;
}

static void free_list(char **names, int n) {
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
}

// Parses text as a registered source; diagnostics go to *diags (malloc'd) when diags != NULL.
typedef struct Parsed {
    Ast *root;
    int errors;
    char *diags;
} Parsed;

static Parsed parse_text(Arena *a, const char *path, const char *text, size_t len, bool want_diags) {
    Parsed p = {0};
    size_t dlen = 0;
    FILE *out = want_diags ? open_memstream(&p.diags, &dlen) : fopen("/dev/null", "w");
    Diag d;
    diag_init(&d, out);
    uint32_t f = diag_add_source(&d, path, text, len);
    p.root = parse_source(&d, a, f);
    p.errors = d.errors;
    diag_free(&d);
    fclose(out);
    return p;
}

static char *dump_string(const Ast *root) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ast_dump(f, root, 0);
    fclose(f);
    return buf;
}

// Every node's location lies inside the file.
static int locs_ok(const Ast *n, size_t len, int depth) {
    if (!n || depth > 2000) return 1;
    if (n->loc.off > len || n->loc.len > len - n->loc.off) return 0;
    int ok = locs_ok(n->a, len, depth + 1) && locs_ok(n->b, len, depth + 1) && locs_ok(n->c, len, depth + 1) &&
             locs_ok(n->body, len, depth + 1);
    for (int i = 0; ok && i < n->nkids; i++) ok = locs_ok(n->kids[i], len, depth + 1);
    for (int i = 0; ok && i < n->nparams; i++) ok = locs_ok(n->params[i], len, depth + 1);
    return ok;
}

// ---- parse ----

static void test_parse(const char *dir) {
    char okdir[4096];
    snprintf(okdir, sizeof okdir, "%s/ok", dir);
    char **names;
    int n = list_dir(okdir, ".trl", &names);
    CHECK(n >= 7);
    bool update = getenv("FRONT_UPDATE") != NULL;
    for (int i = 0; i < n; i++) {
        char path[4200], astpath[4200];
        snprintf(path, sizeof path, "%s/%s", okdir, names[i]);
        snprintf(astpath, sizeof astpath, "%s/%.*s.ast", okdir, (int)strlen(names[i]) - 4, names[i]);
        size_t len;
        char *text = read_all(path, &len);
        CHECK(text != NULL);
        if (!text) continue;
        Arena a = {0};
        Parsed p = parse_text(&a, names[i], text, len, true);
        CHECK_MSG(p.root && p.errors == 0, "%s: %d errors:\n%s", names[i], p.errors, p.diags);
        CHECK(p.root && p.root->kind == AST_SPEC && p.root->nkids > 0);
        CHECK(p.root && locs_ok(p.root, len, 0));
        char *dump = dump_string(p.root);
        if (update) {
            if (access(astpath, F_OK) == 0) write_all(astpath, dump);
        } else {
            char *want = read_all(astpath, NULL);
            if (want) CHECK_MSG(strcmp(dump, want) == 0, "%s: AST dump differs from %s:\n%s", names[i], astpath, dump);
            free(want);
        }
        free(dump);
        free(p.diags);
        free(text);
        arena_free(&a);
    }
    free_list(names, n);

    // Spot checks on the tree shape (independent of the dump format).
    Arena a = {0};
    const char *src = "trl 1;\ntrain { optimizer = adamw { lr = 2e-4; }; warmup = 3%; every = 200 steps; neg = -1; }\n";
    Parsed p = parse_text(&a, "t.trl", src, strlen(src), false);
    CHECK(p.errors == 0 && p.root && p.root->nkids == 2);
    if (p.root && p.root->nkids == 2) {
        Ast *tr = p.root->kids[1];
        CHECK(tr->kind == AST_BLOCK && !strcmp(tr->name, "train") && tr->label == NULL && tr->nkids == 4);
        Ast *opt = ast_find(tr, AST_ASSIGN, "optimizer");
        CHECK(opt && opt->a->kind == AST_CONSTRUCT && !strcmp(opt->a->name, "adamw"));
        CHECK(opt && opt->a->nkids == 1 && opt->a->kids[0]->a->num == 2e-4);
        Ast *w = ast_find(tr, AST_ASSIGN, "warmup");
        CHECK(w && w->a->kind == AST_QUANTITY && !strcmp(w->a->unit, "%") && w->a->is_int && w->a->inum == 3);
        Ast *e = ast_find(tr, AST_ASSIGN, "every");
        CHECK(e && e->a->kind == AST_QUANTITY && !strcmp(e->a->unit, "steps") && e->a->num == 200);
        Ast *ng = ast_find(tr, AST_ASSIGN, "neg");
        CHECK(ng && ng->a->kind == AST_NUM && ng->a->is_int && ng->a->inum == -1);
        CHECK(ng && ng->name_loc.off == (uint32_t)(strstr(src, "neg") - src) && ng->name_loc.len == 3);
        CHECK(ng && ng->a->loc.off == (uint32_t)(strstr(src, "-1") - src) && ng->a->loc.len == 2);
        CHECK(ast_find(tr, AST_ASSIGN, "nope") == NULL);
    }
    arena_free(&a);

    // Every stdlib module compiled into the binary parses cleanly.
    for (int i = 0; i < load_stdlib_count(); i++) {
        size_t len = 0;
        const char *text = load_stdlib_text(load_stdlib_name(i), &len);
        CHECK(text != NULL && strlen(text) == len);
        Parsed sp = parse_text(&a, load_stdlib_name(i), text, len, true);
        CHECK_MSG(sp.root && sp.errors == 0, "stdlib %s: %s", load_stdlib_name(i), sp.diags);
        free(sp.diags);
        arena_free(&a);
    }
    CHECK(load_stdlib_text("no-such-module", NULL) == NULL);
    CHECK(load_stdlib_name(-1) == NULL && load_stdlib_name(load_stdlib_count()) == NULL);
}

// ---- precedence and associativity ----

// An s-expression of an expression tree: (op a b), names and numbers as themselves.
static void sexpr(FILE *f, const Ast *n) {
    switch (n->kind) {
    case AST_NUM: fprintf(f, "%g", n->num); return;
    case AST_QUANTITY: fprintf(f, "%g%s", n->num, n->unit); return;
    case AST_IDENT: fputs(n->name, f); return;
    case AST_BOOL: fputs(n->boolean ? "true" : "false", f); return;
    case AST_STR: fprintf(f, "\"%s\"", n->str); return;
    case AST_MEMBER: fputs("(. ", f); sexpr(f, n->a); fprintf(f, " %s)", n->name); return;
    case AST_INDEX: fputs("([] ", f); sexpr(f, n->a); fputc(' ', f); sexpr(f, n->b); fputc(')', f); return;
    case AST_UNARY: fprintf(f, "(%c ", n->op); sexpr(f, n->a); fputc(')', f); return;
    case AST_BINARY: {
        const char *op = n->op == OP_LE ? "<=" : n->op == OP_GE ? ">=" : n->op == OP_EQ ? "==" :
                         n->op == OP_NE ? "!=" : n->op == OP_AND ? "&&" : n->op == OP_OR ? "||" : NULL;
        if (op) fprintf(f, "(%s ", op);
        else fprintf(f, "(%c ", n->op);
        sexpr(f, n->a);
        fputc(' ', f);
        sexpr(f, n->b);
        fputc(')', f);
        return;
    }
    case AST_CALL:
        fprintf(f, "(%s", n->name);
        for (int i = 0; i < n->nkids; i++) {
            fputc(' ', f);
            if (n->kids[i]->kind == AST_NAMED_ARG) {
                fprintf(f, "%s=", n->kids[i]->name);
                sexpr(f, n->kids[i]->a);
            } else {
                sexpr(f, n->kids[i]);
            }
        }
        fputc(')', f);
        return;
    default: fprintf(f, "<%s>", ast_kind_name(n->kind)); return;
    }
}

// Parses `x = EXPR;` in a block and compares the value's s-expression.
static void check_expr(const char *expr, const char *want) {
    char src[512];
    snprintf(src, sizeof src, "trl 1; m { x = %s; }", expr);
    Arena a = {0};
    Parsed p = parse_text(&a, "expr.trl", src, strlen(src), true);
    char *got = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&got, &len);
    if (p.errors == 0 && p.root && p.root->nkids == 2 && p.root->kids[1]->nkids == 1)
        sexpr(f, p.root->kids[1]->kids[0]->a);
    else
        fprintf(f, "error");
    fclose(f);
    CHECK_MSG(!strcmp(got, want), "`%s`: got %s, want %s %s", expr, got, want, p.diags);
    free(got);
    free(p.diags);
    arena_free(&a);
}

static void test_precedence(void) {
    check_expr("a || b && c == d < e + f * -g.h[i]",
               "(|| a (&& b (== c (< d (+ e (* f (- ([] (. g h) i))))))))");
    check_expr("a - b - c", "(- (- a b) c)");
    check_expr("a / b * c", "(* (/ a b) c)");
    check_expr("a + b * c - d", "(- (+ a (* b c)) d)");
    check_expr("-a * b", "(* (- a) b)");
    check_expr("-2 * b", "(* -2 b)");
    check_expr("!a && b || !c", "(|| (&& (! a) b) (! c))");
    check_expr("(a + b) * c", "(* (+ a b) c)");
    check_expr("a < b == c >= d", "(== (< a b) (>= c d))");
    check_expr("a != b && c <= d", "(&& (!= a b) (<= c d))");
    check_expr("f(a, b = -1)[0].c", "(. ([] (f a b=-1) 0) c)");
    check_expr("- - 3", "3");
    check_expr("2 - -3", "(- 2 -3)");
    check_expr("1 - 2%", "(- 1 2%)");
    check_expr("a < b < c", "error");
    check_expr("a == b == c", "error");
    check_expr("a.b(c)", "error");
}

// ---- diagnostics ----

static void test_diagnostics(const char *dir) {
    if (chdir(dir) != 0) {
        CHECK_MSG(0, "cannot chdir to %s", dir);
        return;
    }
    unsetenv("TRLC_STDLIB_DIR");
    char **names;
    int n = list_dir("err", ".trl", &names);
    CHECK(n >= 10);
    bool update = getenv("FRONT_UPDATE") != NULL;
    for (int i = 0; i < n; i++) {
        char path[4200], exp[4200];
        snprintf(path, sizeof path, "err/%s", names[i]);
        snprintf(exp, sizeof exp, "err/%.*s.expected", (int)strlen(names[i]) - 4, names[i]);
        char *got = NULL;
        size_t glen = 0;
        FILE *out = open_memstream(&got, &glen);
        Diag d;
        diag_init(&d, out);
        Arena a = {0};
        LoadedSpec spec;
        int rc = load_spec(&d, &a, path, &spec);
        fclose(out);
        CHECK_MSG(rc != 0 && d.errors > 0, "%s: expected errors", names[i]);
        if (update) {
            write_all(exp, got);
        } else {
            char *want = read_all(exp, NULL);
            CHECK_MSG(want && strcmp(got, want) == 0, "%s: diagnostics differ; got:\n%s\nwant:\n%s", names[i], got,
                      want ? want : "(no .expected file)");
            free(want);
        }
        free(got);
        diag_free(&d);
        arena_free(&a);
    }
    free_list(names, n);
}

// ---- robustness ----

static char *repeat(const char *pre, const char *unit, int times, const char *post, size_t *len) {
    size_t lp = strlen(pre), lu = strlen(unit), lq = strlen(post);
    size_t n = lp + lu * (size_t)times + lq;
    char *s = malloc(n + 1);
    memcpy(s, pre, lp);
    for (int i = 0; i < times; i++) memcpy(s + lp + lu * (size_t)i, unit, lu);
    memcpy(s + lp + lu * (size_t)times, post, lq);
    s[n] = 0;
    *len = n;
    return s;
}

// Parses text; expects exactly `ok` (0 errors) or some errors; never a crash; diagnostics
// must contain `needle` when given.
static void expect(const char *what, const char *text, size_t len, bool ok, const char *needle) {
    Arena a = {0};
    Parsed p = parse_text(&a, "robust.trl", text, len, true);
    if (ok) CHECK_MSG(p.errors == 0 && p.root, "%s: unexpected errors:\n%.2000s", what, p.diags);
    else CHECK_MSG(p.errors > 0, "%s: expected errors", what);
    if (needle) CHECK_MSG(strstr(p.diags, needle) != NULL, "%s: no `%s` in:\n%.2000s", what, needle, p.diags);
    CHECK_MSG(strlen(p.diags) < 20000, "%s: %zu bytes of diagnostics", what, strlen(p.diags));
    if (p.root) {
        CHECK(locs_ok(p.root, len, 0));
        FILE *null = fopen("/dev/null", "w");
        ast_dump(null, p.root, 0);
        fclose(null);
    }
    free(p.diags);
    arena_free(&a);
}

static void expect_s(const char *what, const char *text, bool ok, const char *needle) {
    expect(what, text, strlen(text), ok, needle);
}

static void test_robust(void) {
    size_t len;
    char *s;
    expect("empty", "", 0, true, NULL);
    expect_s("only a comment", "# nothing here", true, NULL);
    expect_s("byte order mark", "\xEF\xBB\xBFtrl 1;", true, NULL);

    // binary garbage: deterministic pseudo-random bytes
    s = malloc(65536);
    uint32_t x = 12345;
    for (int i = 0; i < 65536; i++) {
        x = x * 1103515245u + 12345u;
        s[i] = (char)(x >> 16);
    }
    expect("random bytes", s, 65536, false, "binary file");
    // random printable ASCII (passes the UTF-8 check, exercises the parser)
    for (int i = 0; i < 65536; i++) {
        x = x * 1103515245u + 12345u;
        s[i] = (x >> 16) % 40 == 0 ? '\n' : (char)(0x20 + (x >> 16) % 95);
    }
    expect("random ASCII", s, 65536, false, "too many errors");
    memset(s, '$', 65536);
    expect("65,536 stray characters", s, 65536, false, "too many errors");
    free(s);
    expect("NUL bytes", "trl 1;\0\0\0model m {}", 20, false, "NUL byte");

    // pre + unit x times + post: a 1 MB line (a string, a name, a list); 10,000 nested brackets,
    // parentheses, blocks; unary operators; 10,000 closing braces
    static const struct {
        const char *what, *pre, *unit;
        int times;
        const char *post;
        bool ok;
        const char *needle;
    } repeated[] = {
        {"1 MB string", "trl 1; model m { x = \"", "abcdefgh", 131072, "\"; }", true, NULL},
        {"1 MB name", "trl 1; model m { x = ", "abcdefgh", 131072, "; }", true, NULL},
        {"1 MB list", "trl 1; model m { x = [0", ", 1", 300000, "]; }", true, NULL},
        {"a 250,000-term sum", "trl 1; model m { x = 0", " + 1", 250000, "; }", false, "nested more than 1000 levels"},
        {"1 MB of operators", "trl 1; model m { x = 0", " +", 250000, "; }", false, NULL},
        {"10,000 (", "trl 1; model m { x = ", "(", 10000, "1; }", false, "nested more than 200 levels"},
        {"10,000 [", "trl 1; model m { x = ", "[", 10000, "", false, "nested more than 200 levels"},
        {"10,000 blocks", "trl 1; ", "a {", 10000, "", false, "nested more than 200 levels"},
        {"10,000 ifs", "def f(x) {", "if x {", 10000, "", false, "nested more than 200 levels"},
        {"10,000 minus signs", "trl 1; model m { x = ", "-", 10000, "1; }", false, "nested too deeply for the parser"},
        {"10,000 !", "trl 1; model m { x = ", "!", 10000, "y; }", false, NULL},
        {"10,000 members", "trl 1; model m { x = ", "a.", 10000, "b; }", false, "nested more than 1000 levels"},
        {"10,000 }", "trl 1;\n", "}", 10000, "", false, "this `}` closes nothing"},
    };
    for (size_t i = 0; i < sizeof repeated / sizeof repeated[0]; i++) {
        s = repeat(repeated[i].pre, repeated[i].unit, repeated[i].times, repeated[i].post, &len);
        expect(repeated[i].what, s, len, repeated[i].ok, repeated[i].needle);
        free(s);
    }
    s = repeat("trl 1; model m { x = ", "(", 150, "1", &len);
    char *t = repeat(s, ")", 150, "; }", &len);
    expect("150 nested parentheses", t, len, true, NULL);
    free(s);
    free(t);
    expect_s("stray )", "trl 1; model m { x = 1); }", false, "this `)` does not match the `{` before it");
    expect_s("stray ]", "trl 1; ]", false, "this `]` closes nothing");

    // strings, numbers, characters
    expect_s("unterminated string", "trl 1;\nmodel m {\n  from = \"abc;\n  dtype = bf16;\n}\n", false,
             "unterminated string");
    expect_s("unterminated string at EOF", "trl 1; model m { x = \"abc", false, "unterminated string");
    expect_s("string ending in a backslash", "trl 1; model m { x = \"abc\\", false, "unterminated string");
    expect_s("unterminated block", "trl 1;\nmodel m {\n  x = 1;\n", false, "never closed");
    expect_s("unterminated call", "trl 1; def f(x) = g(x;", false, NULL);
    expect_s("huge float", "trl 1; model m { x = 1e999; }", false, "out of range");
    expect_s("tiny float", "trl 1; model m { x = 1e-999; }", false, "out of range");
    expect_s("2^53 + 1", "trl 1; model m { x = 9007199254740993; }", false, "too large");
    expect_s("2^53", "trl 1; model m { x = 9007199254740992; }", true, NULL);
    expect_s("30 digits", "trl 1; model m { x = 123456789012345678901234567890; }", false, "too large");
    expect_s("300 digits as float", "trl 1; model m { x = 1.0e400000000000000000000000; }", false, NULL);
    expect_s("hex", "trl 1; model m { x = 0x1F_FF; }", true, NULL);
    expect_s("zero with exponent", "trl 1; model m { x = 0e5; y = 0.0e-999; z = 1.5E+3; }", true, NULL);
    expect_s("bad underscore", "trl 1; model m { x = 1__0; }", false, "between two digits");
    expect_s("trailing underscore", "trl 1; model m { x = 10_; }", false, "between two digits");
    expect_s("exponent without digits", "trl 1; model m { x = 1e-; }", false, "no digits");
    expect_s("invalid escape", "trl 1; model m { x = \"a\\qb\"; }", false, "invalid escape `\\q`");
    expect_s("\\x00", "trl 1; model m { x = \"a\\x00\"; }", false, "NUL");
    expect_s("\\xFF", "trl 1; model m { x = \"a\\xFF\"; }", false, "ASCII");
    expect_s("\\u{D800}", "trl 1; model m { x = \"\\u{D800}\"; }", false, "not a valid character");
    expect_s("\\u{110000}", "trl 1; model m { x = \"\\u{110000}\"; }", false, "not a valid character");
    expect_s("\\u without braces", "trl 1; model m { x = \"\\u00e9\"; }", false, "`{`");
    expect_s("invalid UTF-8 byte", "trl 1; # caf\xFF\n", false, "invalid UTF-8 (byte 0xFF)");
    expect_s("overlong UTF-8", "trl 1; model m { x = \"\xC0\x80\"; }", false, "invalid UTF-8");
    expect_s("UTF-8 surrogate", "trl 1; # \xED\xA0\x80\n", false, "invalid UTF-8");
    expect_s("truncated UTF-8", "trl 1; # \xE2\x82", false, "invalid UTF-8");
    expect_s("UTF-8 in comments and strings", "trl 1; # héllo → ✓\nmodel m { x = \"日本語 🎉\"; }", true, NULL);
    expect_s("stray non-ASCII", "trl 1; model m { x → 1; }", false, "unexpected character `→`");
    expect_s("smart quotes", "trl 1; model m { x = \xE2\x80\x9C" "a\xE2\x80\x9D; }", false, "plain double quotes");
    expect_s("stray $", "trl 1; model m { x = $1; }", false, "unexpected character `$`");
    expect_s("control byte", "trl 1; model m { x = \x01; }", false, "\\x01");
    expect_s("single quotes", "trl 1; model m { x = 'a'; }", false, "double quotes");
}

// ---- fuzz ----

static const char *const fuzz_tokens[] = {
    "{", "}", "(", ")", "[", "]", ";", "=", "==", ":", ",", ".", "..", "\"", "\\", "#", "\n",
    "1e999", "9007199254740993", "0x", "1_", "\xFF", "\xE2\x82", "\0", "def ", "arch ", "param ",
    "for i in 0 .. 3 {", "if x {", "} else {", "return ", "import \"x\";", "trl 1;", "-", "!", "%",
    "100 steps", "a { b = c { d = 1; }; }", "\"\\u{1F600}\"", "\"\\q\"", "f(a = 1, b)", "x[1:2]",
};
enum { NFUZZ_TOKENS = sizeof fuzz_tokens / sizeof fuzz_tokens[0] };

static void test_fuzz(const char *dir) {
    char okdir[4096];
    snprintf(okdir, sizeof okdir, "%s/ok", dir);
    char **names;
    int n = list_dir(okdir, ".trl", &names);
    int nseeds = 0;
    char *seeds[64];
    size_t lens[64];
    for (int i = 0; i < n && nseeds < 48; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", okdir, names[i]);
        if ((seeds[nseeds] = read_all(path, &lens[nseeds]))) nseeds++;
    }
    for (int i = 0; i < load_stdlib_count() && nseeds < 64; i++) {
        size_t len;
        const char *t = load_stdlib_text(load_stdlib_name(i), &len);
        seeds[nseeds] = malloc(len + 1);
        memcpy(seeds[nseeds], t, len + 1);
        lens[nseeds++] = len;
    }
    free_list(names, n);
    CHECK(nseeds > 0);
    if (!nseeds) return;
    uint64_t x = 0x9E3779B97F4A7C15ull;
#define RND() (x ^= x << 13, x ^= x >> 7, x ^= x << 17, x)
    int iterations = 4000, clean = 0, bad_locs = 0;
    for (int it = 0; it < iterations; it++) {
        int si = (int)(RND() % (uint64_t)nseeds);
        size_t len = lens[si], cap = len * 2 + 4096;
        char *buf = malloc(cap);
        memcpy(buf, seeds[si], len);
        int nmut = 1 + (int)(RND() % 6);
        for (int m = 0; m < nmut; m++) {
            size_t pos = len ? (size_t)(RND() % len) : 0;
            switch (RND() % 5) {
            case 0:   // flip a byte
                if (len) buf[pos] = (char)RND();
                break;
            case 1: {   // delete a range
                size_t l = (size_t)(RND() % 16);
                if (pos + l > len) l = len - pos;
                memmove(buf + pos, buf + pos + l, len - pos - l);
                len -= l;
                break;
            }
            case 2: case 3: {   // insert a token
                const char *tok = fuzz_tokens[RND() % NFUZZ_TOKENS];
                size_t l = tok[0] ? strlen(tok) : 1;
                if (len + l >= cap) break;
                memmove(buf + pos + l, buf + pos, len - pos);
                memcpy(buf + pos, tok, l);
                len += l;
                break;
            }
            default: {   // duplicate a range
                size_t l = (size_t)(RND() % 64);
                if (pos + l > len) l = len - pos;
                if (len + l >= cap) break;
                memmove(buf + pos + l, buf + pos, len - pos);
                len += l;
                break;
            }
            }
        }
        Arena a = {0};
        Parsed p = parse_text(&a, "fuzz.trl", buf, len, false);
        if (p.errors == 0) {
            clean++;
            CHECK(p.root != NULL);
        }
        if (p.root && !locs_ok(p.root, len, 0)) bad_locs++;
        if (p.root) {
            FILE *null = fopen("/dev/null", "w");
            ast_dump(null, p.root, 0);
            fclose(null);
        }
        arena_free(&a);
        free(buf);
    }
    CHECK_MSG(bad_locs == 0, "%d trees with locations outside the file", bad_locs);
    printf("fuzz: %d mutated inputs, %d parsed cleanly, none crashed\n", iterations, clean);
    CHECK(clean < iterations);
    for (int i = 0; i < nseeds; i++) free(seeds[i]);
}

// ---- imports ----

static char tmpdir[256];

static void put(const char *rel, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    char *slash = strrchr(path, '/');
    *slash = 0;
    mkdir(path, 0755);
    *slash = '/';
    write_all(path, text);
}

// Loads tmpdir/rel; returns the status, with the diagnostics in *diags.
static int load(Arena *a, const char *rel, LoadedSpec *spec, char **diags) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, rel);
    size_t dlen;
    FILE *out = open_memstream(diags, &dlen);
    Diag d;
    diag_init(&d, out);
    int rc = load_spec(&d, a, path, spec);
    // keep the module paths alive past diag_free: copy them into the arena
    for (int i = 0; i < spec->nmods; i++) spec->mods[i].path = arena_strdup(a, spec->mods[i].path);
    diag_free(&d);
    fclose(out);
    return rc;
}

static bool ends(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

// Writes text to tmpdir/rel (unless text is NULL) and checks that loading rel fails with
// diagnostics holding needle (and needle2 unless NULL): one check.
static void expect_load_error(Arena *a, const char *rel, const char *text, const char *needle, const char *needle2) {
    if (text) put(rel, text);
    LoadedSpec spec;
    char *diags = NULL;
    int rc = load(a, rel, &spec, &diags);
    CHECK_MSG(rc != 0 && strstr(diags, needle) && (!needle2 || strstr(diags, needle2)), "%s: %s", rel, diags);
    free(diags);
}

static void test_imports(const char *dir) {
    (void)dir;
    unsetenv("TRLC_STDLIB_DIR");
    snprintf(tmpdir, sizeof tmpdir, "/tmp/trlc_front_XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    Arena a = {0};
    LoadedSpec spec;
    char *diags = NULL;

    // a diamond: main → lib/a, lib/c; both → lib/b. b is loaded once, before a and c.
    put("main.trl", "trl 1;\nimport \"lib/a.trl\";\nimport \"lib/c.trl\";\nmodel m { arch = a; }\n");
    put("lib/a.trl", "trl 1;\nimport \"b.trl\";\ndef fa(x) = fb(x);\n");
    put("lib/c.trl", "trl 1;\nimport \"./b.trl\";\ndef fc(x) = fb(x);\n");
    put("lib/b.trl", "trl 1;\ndef fb(x) = x;\n");
    int rc = load(&a, "main.trl", &spec, &diags);
    CHECK_MSG(rc == 0, "%s", diags);
    CHECK(spec.nmods == 4);
    if (spec.nmods == 4) {
        CHECK(ends(spec.mods[0].path, "lib/b.trl"));
        CHECK(ends(spec.mods[1].path, "lib/a.trl"));
        CHECK(ends(spec.mods[2].path, "lib/./b.trl") == false && ends(spec.mods[2].path, "lib/c.trl"));
        CHECK(ends(spec.mods[3].path, "main.trl") && !spec.mods[3].stdlib);
        CHECK(spec.mods[1].root && ast_find(spec.mods[1].root, AST_DEF, "fa") != NULL);
        CHECK(!strcmp(spec.mods[1].name, "lib/a.trl"));
    }
    free(diags);

    // a cycle names the chain
    put("cyc/x.trl", "trl 1;\nimport \"y.trl\";\n");
    put("cyc/y.trl", "trl 1;\nimport \"x.trl\";\n");
    rc = load(&a, "cyc/x.trl", &spec, &diags);
    CHECK(rc != 0);
    CHECK_MSG(strstr(diags, "import cycle: ") && strstr(diags, "x.trl → ") && strstr(diags, "y.trl → "),
              "%s", diags);
    free(diags);

    // self import
    expect_load_error(&a, "self.trl", "trl 1;\nimport \"self.trl\";\n", "import cycle", NULL);
    // a missing file: error at the import string
    expect_load_error(&a, "miss.trl", "trl 1;\nimport \"nope/gone.trl\";\n", "miss.trl:2:8: error: cannot open",
                      "gone.trl");

    // an unknown stdlib module, with did-you-mean when the stdlib has a close name
    put("unk.trl", "trl 1;\nimport \"qwen33\";\n");
    rc = load(&a, "unk.trl", &spec, &diags);
    CHECK_MSG(rc != 0 && strstr(diags, "unknown stdlib module `qwen33`"), "%s", diags);
    if (load_stdlib_text("qwen3", NULL)) CHECK_MSG(strstr(diags, "did you mean `qwen3`?") != NULL, "%s", diags);
    free(diags);

    // the main spec itself missing; a directory
    expect_load_error(&a, "does-not-exist.trl", NULL, "cannot open", NULL);
    expect_load_error(&a, "lib", NULL, "error", NULL);
    // `trl 1;` is required first, and only version 1 exists
    expect_load_error(&a, "nover.trl", "model m { }\n", "missing `trl 1;`", NULL);
    expect_load_error(&a, "v2.trl", "trl 2;\n", "version 1", NULL);
    expect_load_error(&a, "empty.trl", "", "missing `trl 1;`", NULL);

    // a stdlib module through TRLC_STDLIB_DIR, which may import another one by name
    put("std/base.trl", "trl 1;\ndef one() = 1;\n");
    put("std/mystd.trl", "trl 1;\nimport \"base\";\ndef two() = one() + one();\n");
    put("usestd.trl", "trl 1;\nimport \"mystd\";\n");
    char stddir[512];
    snprintf(stddir, sizeof stddir, "%s/std", tmpdir);
    setenv("TRLC_STDLIB_DIR", stddir, 1);
    rc = load(&a, "usestd.trl", &spec, &diags);
    CHECK_MSG(rc == 0 && spec.nmods == 3, "%s", diags);
    if (spec.nmods == 3) {
        CHECK(spec.mods[0].stdlib && !strcmp(spec.mods[0].name, "base"));
        CHECK(spec.mods[1].stdlib && !strcmp(spec.mods[1].name, "mystd"));
    }
    free(diags);
    // load_stdlib_module: added once, before the main spec
    {
        Diag d;
        diag_init(&d, stderr);
        LoadedSpec s2;
        char path[512];
        snprintf(path, sizeof path, "%s/main.trl", tmpdir);
        CHECK(load_spec(&d, &a, path, &s2) == 0);
        int before = s2.nmods;
        int idx = load_stdlib_module(&d, &a, &s2, "mystd");
        CHECK(idx == before && s2.nmods == before + 2);
        CHECK(ends(s2.mods[s2.nmods - 1].path, "main.trl"));
        CHECK(load_stdlib_module(&d, &a, &s2, "mystd") == idx && s2.nmods == before + 2);
        CHECK(load_stdlib_module(&d, &a, &s2, "base") == idx - 1);
        d.out = fopen("/dev/null", "w");
        CHECK(load_stdlib_module(&d, &a, &s2, "nonexistent") == -1);
        fclose(d.out);
        diag_free(&d);
    }
    unsetenv("TRLC_STDLIB_DIR");

    // the embedded stdlib: every module loads with its imports, without errors
    for (int i = 0; i < load_stdlib_count(); i++) {
        char text[256];
        snprintf(text, sizeof text, "trl 1;\nimport \"%s\";\n", load_stdlib_name(i));
        put("usestdlib.trl", text);
        rc = load(&a, "usestdlib.trl", &spec, &diags);
        CHECK_MSG(rc == 0 && spec.nmods >= 2 && spec.mods[spec.nmods - 2].stdlib, "%s: %s", load_stdlib_name(i), diags);
        free(diags);
    }
    arena_free(&a);
    // leave /tmp clean
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    CHECK(system(cmd) == 0);
}

static int dump_file(const char *path) {
    Diag d;
    diag_init(&d, stderr);
    Arena a = {0};
    uint32_t f = diag_load_file(&d, path, (Loc){0, 0, 0}, LOAD_MAX_BYTES);
    Ast *root = f ? parse_source(&d, &a, f) : NULL;
    if (root) ast_dump(stdout, root, 0);
    int errors = d.errors;
    arena_free(&a);
    diag_free(&d);
    return errors ? 1 : 0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: test_front parse|diagnostics|robust|fuzz|imports DIR | dump FILE\n");
        return 2;
    }
    const char *mode = argv[1];
    if (!strcmp(mode, "dump")) return dump_file(argv[2]);
    if (!strcmp(mode, "parse")) {
        test_parse(argv[2]);
        test_precedence();
    }
    else if (!strcmp(mode, "diagnostics")) test_diagnostics(argv[2]);
    else if (!strcmp(mode, "robust")) test_robust();
    else if (!strcmp(mode, "fuzz")) test_fuzz(argv[2]);
    else if (!strcmp(mode, "imports")) test_imports(argv[2]);
    else {
        fprintf(stderr, "unknown mode %s\n", mode);
        return 2;
    }
    return test_done(mode);
}
