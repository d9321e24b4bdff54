// check_data.c — a quick look at a data file before anything runs: the first row of a .jsonl file
// (or the header of a .csv) must hold the columns the data format needs, under the names given in
// `fields { }` or the reader's default names (runtime/io/dataset.c). A misspelt column is reported
// at the spec line that names it, with did-you-mean over the file's real columns.
// Not here: validating every row, types of values, tokenization (the dataset reader does it all
// when the run opens the file); .json files (an array that would have to be read whole).
#include "check_int.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { MAX_COLUMNS = 64, MAX_FIRST_LINE = 1 << 20 };

// The columns a format needs: its field name in `fields { }` and the reader's default names,
// tried in order (keep in step with D_* in runtime/io/dataset.c).
typedef struct Need {
    const char *field;
    const char *defaults[5];
} Need;

typedef struct FormatNeeds {
    const char *format;
    Need need[2];
} FormatNeeds;

static const FormatNeeds needs[] = {
    {"text", {{"text", {"text"}}}},
    {"prompt_response", {{"prompt", {"prompt", "instruction", "question"}},
                         {"response", {"response", "completion", "output", "answer"}}}},
    {"messages", {{"messages", {"messages", "conversations"}}}},
    {"preference", {{"chosen", {"chosen"}}, {"rejected", {"rejected"}}}},
    {"prompt_answer", {{"prompt", {"question", "prompt"}}, {"answer", {"answer"}}}},
};

// The first non-blank line of a file (at most MAX_FIRST_LINE bytes), or NULL.
static char *first_line(Ck *c, const char *path, long *lineno) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = arena_alloc(c->a, MAX_FIRST_LINE + 1);
    char *line = NULL;
    *lineno = 0;
    while (fgets(buf, MAX_FIRST_LINE + 1, f)) {
        (*lineno)++;
        size_t n = strlen(buf);
        if (n == MAX_FIRST_LINE && buf[n - 1] != '\n') break;   // too long to look at: leave it to the reader
        while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r')) buf[--n] = 0;
        if (strspn(buf, " \t") == n) continue;
        line = buf;
        break;
    }
    fclose(f);
    return line;
}

// Splits a CSV header (RFC 4180 quoting) into cols; returns the count.
static int csv_header(Ck *c, const char *line, const char **cols, int cap) {
    int n = 0;
    const char *p = line;
    while (n < cap) {
        char *cell = arena_alloc(c->a, strlen(p) + 1);
        size_t k = 0;
        if (*p == '"') {
            for (p++; *p; p++) {
                if (*p == '"' && p[1] == '"') cell[k++] = *p++;
                else if (*p == '"') { p++; break; }
                else cell[k++] = *p;
            }
        }
        while (*p && *p != ',') cell[k++] = *p++;
        cell[k] = 0;
        cols[n++] = cell;
        if (*p != ',') break;
        p++;
    }
    return n;
}

static bool has_column(const char *const *cols, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(cols[i], name)) return true;
    return false;
}

void ck_check_data_columns(Ck *c, const Ast *blk, const CheckedData *dt) {
    if (!dt->from || !dt->format) return;
    const FormatNeeds *fn = NULL;
    for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
        if (!strcmp(needs[i].format, dt->format)) fn = &needs[i];
    size_t plen = strlen(dt->from);
    bool csv = plen > 4 && !strcmp(dt->from + plen - 4, ".csv");
    bool jsonl = plen > 6 && !strcmp(dt->from + plen - 6, ".jsonl");
    if (!fn || (!csv && !jsonl)) return;
    long lineno;
    const char *line = first_line(c, dt->from, &lineno);
    if (!line) return;   // empty or unreadable: the reader reports it with its own words
    const char *cols[MAX_COLUMNS];
    int ncols = 0;
    if (csv) {
        ncols = csv_header(c, line, cols, MAX_COLUMNS);
    } else {
        json_error_t jerr;
        json_t *row = json_loads(line, 0, &jerr);
        if (!json_is_object(row)) {   // not a row of fields: the reader's message is better
            json_decref(row);
            return;
        }
        const char *key;
        json_t *v;
        json_object_foreach(row, key, v) {
            if (ncols < MAX_COLUMNS) cols[ncols++] = arena_strdup(c->a, key);
        }
        json_decref(row);
    }
    const Ast *from = ck_setting(blk, "from");
    const Ast *fields = ck_sub_block(blk, "fields");
    for (int i = 0; i < 2 && fn->need[i].field; i++) {
        const Need *nd = &fn->need[i];
        const Ast *given = ck_setting(fields, nd->field);
        if (given && given->kind == AST_STR) {
            if (has_column(cols, ncols, given->str)) continue;
            diag_error(c->d, given->loc, "`%s` has no column `%s` (%s %d)", from->str, given->str,
                       csv ? "header, line" : "first row, line", (int)lineno);
            const char *s = suggest_word(given->str, cols, (size_t)ncols);
            if (s) diag_hint(c->d, "did you mean `%s`?", s);
            else diag_hint(c->d, "its columns: %s", ck_join_names(c, cols, ncols));
            continue;
        }
        bool found = false;
        for (int j = 0; nd->defaults[j] && !found; j++) found = has_column(cols, ncols, nd->defaults[j]);
        if (found) continue;
        // suggest a column that no other need of the format claims
        const char *cand = NULL;
        for (int k = 0; k < ncols && !cand; k++) {
            bool claimed = false;
            for (int o = 0; o < 2 && fn->need[o].field; o++) {
                if (o == i) continue;
                const Ast *og = ck_setting(fields, fn->need[o].field);
                if (og && og->kind == AST_STR && !strcmp(og->str, cols[k])) claimed = true;
                for (int j = 0; !og && fn->need[o].defaults[j]; j++) claimed |= !strcmp(fn->need[o].defaults[j], cols[k]);
            }
            if (!claimed) cand = cols[k];
        }
        const Ast *fmt = ck_setting(blk, "format");
        diag_error(c->d, fmt ? fmt->loc : from->loc, "`%s` has no column for the %s of format `%s` (looked for %s)",
                   from->str, nd->field, dt->format, ck_join_names(c, nd->defaults, ck_count_names(nd->defaults)));
        diag_hint(c->d, "its columns: %s; name the one to use: `fields { %s = \"%s\"; }`", ck_join_names(c, cols, ncols),
                  nd->field, cand ? cand : "...");
    }
}
