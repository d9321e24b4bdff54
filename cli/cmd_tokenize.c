// cmd_tokenize.c — `trlc tokenize`: encodes JSON strings read from stdin (one per line) to token ids
// with a tokenizer.json, or with --decode turns lines of ids back into JSON strings. Meant for
// checking trlc's tokenizer against other implementations and for scripting. Exit status 1 on the
// first bad input line (reported with its line number), 2 on usage errors.
#include "cli.h"
#include "diag.h"
#include "tokenizer.h"
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char usage_tokenize[] =
    "usage: trlc tokenize --tokenizer FILE [--decode] [--no-special]\n"
    "\n"
    "Encodes text with a Hugging Face tokenizer.json, ids identical to the `tokenizers` library.\n"
    "Reads one JSON string per line on stdin (e.g. \"Hello\\nworld\") and prints that text's token ids,\n"
    "space-separated, one line per input line.\n"
    "\n"
    "options:\n"
    "  --tokenizer FILE   the tokenizer.json to use (required); `bytes` selects the byte tokenizer\n"
    "  --decode           read lines of space-separated ids instead and print each as a JSON string\n"
    "  --no-special       encode: do not apply the post-processor (no BOS);\n"
    "                     decode: drop special tokens\n"
    "  -h, --help         this help\n"
    "\n"
    "exit status: 0 success, 1 bad tokenizer or bad input line, 2 usage error\n";

static int encode_line(const Tokenizer *t, const char *line, size_t n, long lineno, bool special, Diag *d) {
    json_error_t err;
    json_t *v = json_loadb(line, n, JSON_DECODE_ANY | JSON_ALLOW_NUL, &err);
    if (!v || !json_is_string(v)) {
        if (v) diag_file_error(d, "<stdin>", lineno, 0, "expected a JSON string");
        else diag_file_error(d, "<stdin>", lineno, err.column, "invalid JSON: %s", err.text);
        json_decref(v);
        return -1;
    }
    TokIds ids = {0};
    if (tok_encode(t, json_string_value(v), json_string_length(v), special, &ids)) {
        diag_file_error(d, "<stdin>", lineno, 0, "could not encode this text (out of memory or regex match limit)");
        json_decref(v);
        tok_ids_free(&ids);
        return -1;
    }
    for (size_t i = 0; i < ids.n; i++) printf(i ? " %d" : "%d", ids.v[i]);
    putchar('\n');
    json_decref(v);
    tok_ids_free(&ids);
    return 0;
}

static int decode_line(const Tokenizer *t, const char *line, long lineno, bool skip, Diag *d) {
    TokIds ids = {0};
    const char *p = line;
    int rc = 0;
    int32_t nv = tok_vocab_size(t);
    while (!rc) {
        while (*p == ' ' || *p == '\t') p++;
        if (!*p) break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || (*end && *end != ' ' && *end != '\t')) {
            diag_file_error(d, "<stdin>", lineno, (long)(p - line) + 1, "expected a token id");
            rc = -1;
        } else if (errno || v < 0 || v >= nv) {
            diag_file_error(d, "<stdin>", lineno, (long)(p - line) + 1, "token id %.*s is outside the vocabulary [0, %d)",
                            (int)(end - p), p, nv);
            rc = -1;
        } else if (tok_ids_push(&ids, (int32_t)v)) {
            diag_file_error(d, "<stdin>", lineno, 0, "out of memory");
            rc = -1;
        }
        p = end;
    }
    if (!rc) {
        size_t len;
        char *s = tok_decode(t, ids.v, ids.n, skip, &len);
        json_t *js = s ? json_stringn(s, len) : NULL;
        char *out = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
        if (out) puts(out);
        else {
            diag_file_error(d, "<stdin>", lineno, 0, "could not decode");
            rc = -1;
        }
        free(out);
        json_decref(js);
        free(s);
    }
    tok_ids_free(&ids);
    return rc;
}

int cmd_tokenize(int argc, char **argv) {
    const char *path = NULL;
    bool decode = false, no_special = false;
    const CliOpt opts[] = {{"--tokenizer", .value = &path}, {"--decode", .flag = &decode},
                           {"--no-special", .flag = &no_special}, {0}};
    int urc = cli_parse_args(argc, argv, "tokenize", usage_tokenize, opts, NULL);
    if (urc != EXIT_OK) return urc;
    if (!path) return cli_usage_error("tokenize", usage_tokenize, "--tokenizer FILE is required");
    bool special = !no_special;
    Diag d;
    diag_init(&d, stderr);
    Tokenizer *t = !strcmp(path, "bytes") ? tok_new_bytes() : tok_load(&d, path);
    if (!t) {
        if (!d.errors) fprintf(stderr, "trlc: error: out of memory\n");
        diag_free(&d);
        return EXIT_SPEC;
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while (!rc && (n = getline(&line, &cap, stdin)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r')) line[--n] = 0;
        if (decode) rc = decode_line(t, line, lineno, !special, &d);
        else rc = encode_line(t, line, (size_t)n, lineno, special, &d);
    }
    fflush(stdout);
    free(line);
    tok_free(t);
    diag_free(&d);
    return rc ? EXIT_SPEC : EXIT_OK;
}
