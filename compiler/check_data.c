// check_data.c — a quick look at a data file before anything runs: the first row of a .jsonl or
// .json file (or the header of a .csv) must hold the columns the data format needs, under the names
// given in `fields { }` or the reader's default names (runtime/io/dataset.c), and the column a GRPO
// `reward { field = ...; }` reads. A misspelt column is reported at the spec line that names it,
// with did-you-mean over the file's real columns.
// Also the chat template each dataset will be rendered with (`template = ...`), through the same
// runtime/io function the run uses, its errors moved to the spec's line.
// Not here: validating every row, types of values, tokenization (the dataset reader does it all
// when the run opens the file). A .json file is looked at only when its first row lies within its
// first MiB (the reader loads it whole and reports the rest).
#include "check_int.h"
#include "chat.h"
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

// The first element of the top-level array, or of the array under the top-level key "data", of
// the JSON text buf[0, n) (a prefix of the file): its offset, or -1 when it is not within buf.
static bool json_ws(char ch) { return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n'; }

static long json_first_element(const char *buf, size_t n) {
    size_t i = 0;
    while (i < n && json_ws(buf[i])) i++;
    if (i + 3 <= n && !memcmp(buf + i, "\xEF\xBB\xBF", 3)) i += 3;   // BOM
    while (i < n && json_ws(buf[i])) i++;
    if (i < n && buf[i] == '{') {   // {"key": value, ..., "data": [...]}: skip values to "data"
        i++;
        for (bool first = true;; first = false) {
            while (i < n && json_ws(buf[i])) i++;
            if (!first) {   // after a value: `,` and the next key (`}`: no "data")
                if (i >= n || buf[i] != ',') return -1;
                for (i++; i < n && json_ws(buf[i]);) i++;
            }
            if (i >= n || buf[i] != '"') return -1;
            json_error_t je;
            json_t *key = json_loadb(buf + i, n - i, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &je);
            if (!json_is_string(key)) {
                json_decref(key);
                return -1;
            }
            bool is_data = !strcmp(json_string_value(key), "data");
            json_decref(key);
            i += je.position;
            while (i < n && json_ws(buf[i])) i++;
            if (i >= n || buf[i] != ':') return -1;
            i++;
            while (i < n && json_ws(buf[i])) i++;
            if (is_data) break;
            json_t *v = json_loadb(buf + i, n - i, JSON_DECODE_ANY | JSON_DISABLE_EOF_CHECK, &je);
            if (!v) return -1;
            json_decref(v);
            i += je.position;
        }
    }
    if (i >= n || buf[i] != '[') return -1;
    i++;
    while (i < n && json_ws(buf[i])) i++;
    return i < n && buf[i] != ']' ? (long)i : -1;
}

// The column names of a data file's first row (.jsonl, .json) or header (.csv) into cols; *lineno
// is the row's line and *csv tells which. Returns the count, or -1 when there is nothing that can
// be looked at quickly (unreadable, empty, too long, not an object): the reader reports it later.
static int first_row_columns(Ck *c, const char *path, const char **cols, int cap, long *lineno, bool *csv) {
    size_t plen = strlen(path);
    *csv = plen > 4 && !strcmp(path + plen - 4, ".csv");
    bool jsonl = plen > 6 && !strcmp(path + plen - 6, ".jsonl");
    bool json = plen > 5 && !strcmp(path + plen - 5, ".json");
    json_t *row = NULL;
    if (json) {
        FILE *f = fopen(path, "rb");
        if (!f) return -1;
        char *buf = arena_alloc(c->a, MAX_FIRST_LINE + 1);
        size_t n = fread(buf, 1, MAX_FIRST_LINE, f);
        fclose(f);
        buf[n] = 0;
        long at = json_first_element(buf, n);
        if (at < 0) return -1;
        *lineno = 1;
        for (long i = 0; i < at; i++) *lineno += buf[i] == '\n';
        json_error_t je;
        row = json_loadb(buf + at, n - (size_t)at, JSON_DISABLE_EOF_CHECK, &je);
    } else if (*csv || jsonl) {
        const char *line = first_line(c, path, lineno);
        if (!line) return -1;   // empty or unreadable: the reader reports it with its own words
        if (*csv) return csv_header(c, line, cols, cap);
        json_error_t je;
        row = json_loads(line, 0, &je);
    }
    if (!json_is_object(row)) {   // not a row of fields: the reader's message is better
        json_decref(row);
        return -1;
    }
    int ncols = 0;
    const char *key;
    json_t *v;
    json_object_foreach(row, key, v) {
        if (ncols < cap) cols[ncols++] = arena_strdup(c->a, key);
    }
    json_decref(row);
    return ncols;
}

void ck_check_data_columns(Ck *c, const Ast *blk, const CheckedData *dt) {
    if (!dt->from || !dt->format) return;
    const FormatNeeds *fn = NULL;
    for (size_t i = 0; i < sizeof needs / sizeof *needs; i++)
        if (!strcmp(needs[i].format, dt->format)) fn = &needs[i];
    if (!fn) return;
    long lineno;
    bool csv;
    const char *cols[MAX_COLUMNS];
    int ncols = first_row_columns(c, dt->from, cols, MAX_COLUMNS, &lineno, &csv);
    if (ncols < 0) return;
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

void ck_check_reward_field(Ck *c, const Ast *reward, const Ast *blk, const CheckedData *dt) {
    const Ast *field = ck_setting(reward, "field");
    if (!dt->from || !field || field->kind != AST_STR) return;
    long lineno;
    bool csv;
    const char *cols[MAX_COLUMNS];
    int ncols = first_row_columns(c, dt->from, cols, MAX_COLUMNS, &lineno, &csv);
    if (ncols < 0 || has_column(cols, ncols, field->str)) return;
    const Ast *from = ck_setting(blk, "from");
    diag_error(c->d, field->loc, "reward `%s` reads column `%s`, but `%s` (data %s) has no such column (%s %d)",
               reward->label, field->str, from->str, dt->name, csv ? "header, line" : "first row, line", (int)lineno);
    const char *s = suggest_word(field->str, cols, (size_t)ncols);
    if (s) diag_hint(c->d, "did you mean `%s`?", s);
    else diag_hint(c->d, "its columns: %s", ck_join_names(c, cols, ncols));
}

// Runs one of runtime/io's validators with its diagnostics captured, then re-reports the first
// error at `at` (the spec's `template = ...`), with its hints. Returns 0 when it found no error.
static int relocate_errors(Ck *c, Loc at, const char *value, const char *cfg_path) {
    char *buf = NULL;
    size_t len = 0;
    FILE *ms = open_memstream(&buf, &len);
    if (!ms) return 0;   // cannot capture: the run reports it later
    Diag tmp;
    diag_init(&tmp, ms);
    ChatTemplate t;
    if (chat_from_spec(&tmp, value, cfg_path, &t) == 0) chat_free(&t);
    int errors = tmp.errors;
    diag_free(&tmp);
    fclose(ms);
    if (errors) {
        bool first = true;
        for (char *line = buf, *next; line && *line; line = next) {
            next = strchr(line, '\n');
            if (next) *next++ = 0;
            if (!strncmp(line, "hint: ", 6)) {
                if (!first) diag_hint(c->d, "%s", line + 6);
                continue;
            }
            char *e = strstr(line, ": error: ");
            if (!e || !first) continue;
            if (!strncmp(line, "trlc: error: ", 13)) diag_error(c->d, at, "%s", line + 13);
            else diag_error(c->d, at, "%.*s: %s", (int)(e - line), line, e + 9);   // path: message
            first = false;
        }
        if (first) diag_error(c->d, at, "this template cannot be used");
    }
    free(buf);
    return errors ? -1 : 0;
}

void ck_check_template(Ck *c, const Ast *blk, const CheckedData *dt, const CheckedModel *policy) {
    if (!dt->format || !strcmp(dt->format, "text")) return;   // raw text is not rendered
    const Ast *tpl = ck_setting(blk, "template");
    Loc at = tpl ? tpl->loc : ck_head_loc(blk);
    const char *value = "chat";
    if (tpl && tpl->kind == AST_STR) value = tpl->str;
    else if (tpl && tpl->kind == AST_IDENT) value = tpl->name;
    const char *cfg_path = NULL;
    if (policy->from) {
        cfg_path = arena_printf(c->a, "%s/tokenizer_config.json", policy->from);
        FILE *f = fopen(cfg_path, "rb");
        if (f) fclose(f);
        else cfg_path = NULL;
    }
    if (!strcmp(value, "chat") && !cfg_path) {
        if (tpl) diag_error(c->d, at, "`template = chat` uses the chat template of model `%s`, but %s", policy->name,
                            policy->from ? "its directory has no tokenizer_config.json" : "it has no checkpoint");
        else diag_error(c->d, at, "`data %s` uses the model's chat template (`template = chat`, the default), but model `%s` %s",
                        dt->name, policy->name, policy->from ? "has no tokenizer_config.json" : "has no checkpoint");
        diag_hint(c->d, "name one: `template = chatml;` (or qwen2, qwen3, llama3, plain), or write one: "
                        "`template = \"User: {prompt}\\nAssistant: \";`");
        return;
    }
    relocate_errors(c, at, value, cfg_path);
}
