// dataset.c — datasets (see dataset.h): file readers, row → conversation extraction with
// `file:line` errors, tokenization through chat templates, truncation, packing, shuffling, batches.
// JSONL is never loaded whole: ds_open streams it once in 1 MiB blocks, keeps (offset, length, line)
// of each valid row (16 bytes/row), and rows are re-read with fseeko when needed. JSON and CSV files
// are loaded whole (bounded by max_file_bytes). Every row is parsed and checked at open, so bad data
// fails before training starts; tokenization happens when examples are read.
// Does not: tokenize in parallel, cache token ids on disk, or split documents across packed rows.
#include "dataset.h"
#include <csv.h>
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { ERRN = 256, MAX_MSGS = 10000 };

typedef struct RowRef {
    uint64_t off;   // byte offset of the line in the file
    uint32_t len;   // bytes (without the newline)
    uint32_t line;  // 1-based line number
} RowRef;

struct DsLoader {
    Diag *d;
    DsConfig cfg;             // strings below are owned copies
    char *strs[10];
    ChatTemplate tmpl;
    const Tokenizer *tok;
    DsFileType type;
    // JSONL
    FILE *f;
    RowRef *refs;
    char *buf;                // row buffer for re-reading
    size_t bufcap;
    // JSON / CSV: the valid rows and their lines
    json_t *rows;
    long *lines;
    size_t nrows;
    // iteration
    int epochs, epoch;
    size_t index;
    size_t *order;            // (nrows) permutation for `order_epoch`, when shuffling
    int order_epoch;
    DsExample pending;        // packing: the example that did not fit in the last row
    bool has_pending;
    int pend_epoch;
    size_t pend_index;
    int last_epoch;           // position of the example next_example returned last
    size_t last_index;
    DsStats stats;
    int32_t eos, pad;
    long skip_line;           // the first skipped row: its line and reason
    char skip_msg[ERRN];
    bool warned_emptied;      // the warning about a row truncated to nothing learnable was given
};

void ds_config_init(DsConfig *c) {
    memset(c, 0, sizeof *c);
    c->type = DS_FILE_AUTO;
    c->format = DS_PROMPT_RESPONSE;
    c->mask_prompt = true;
    c->epochs = 1;
    c->eos_id = -1;
    c->pad_id = -1;
}

static const char *const format_names[] = {"text", "prompt_response", "messages", "preference",
                                           "prompt_answer"};

int ds_format_parse(const char *name, DsFormat *out) {
    for (int i = 0; i < 5; i++)
        if (!strcmp(name, format_names[i])) {
            *out = (DsFormat)i;
            return 0;
        }
    return -1;
}

const char *ds_format_name(DsFormat f) { return (unsigned)f < 5 ? format_names[f] : "?"; }

// ---- small helpers ---------------------------------------------------------------------------

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

static void errf(char *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void errf(char *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, ERRN, fmt, ap);
    va_end(ap);
}

static uint64_t splitmix64(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static const char *type_name(json_t *v) {
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    default: return "null";
    }
}

// ---- rows → conversations ------------------------------------------------------------------

typedef struct Conv {
    ChatMsg *m;
    size_t n, cap;
} Conv;

typedef struct RowData {
    Conv conv;            // the conversation to learn (preference: chosen)
    Conv rej;             // preference: rejected
    const char *text;     // text format
    size_t text_len;
    char *answer;         // prompt_answer (owned)
    char *owned;          // prompt + "\n\n" + input (owned)
} RowData;

static void row_free(RowData *r) {
    free(r->conv.m);
    free(r->rej.m);
    free(r->answer);
    free(r->owned);
    memset(r, 0, sizeof *r);
}

static int conv_push(Conv *c, const char *role, const char *s, size_t n) {
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 4;
        ChatMsg *m = realloc(c->m, cap * sizeof *m);
        if (!m) return -1;
        c->m = m;
        c->cap = cap;
    }
    c->m[c->n++] = (ChatMsg){role, s, n, NULL, 0};
    return 0;
}
static int conv_append(Conv *dst, const Conv *src) {
    for (size_t i = 0; i < src->n; i++) {
        if (conv_push(dst, src->m[i].role, src->m[i].content, src->m[i].content_len)) return -1;
        dst->m[dst->n - 1].reasoning = src->m[i].reasoning;
        dst->m[dst->n - 1].reasoning_len = src->m[i].reasoning_len;
    }
    return 0;
}

// The field `given`, or the first default present. *name gets the name looked up (for messages).
static json_t *field(json_t *row, const char *given, const char *const *defaults, const char **name) {
    if (given) {
        *name = given;
        return json_object_get(row, given);
    }
    *name = defaults[0];
    for (int i = 0; defaults[i]; i++) {
        json_t *v = json_object_get(row, defaults[i]);
        if (v) {
            *name = defaults[i];
            return v;
        }
    }
    return NULL;
}

static const char *const D_TEXT[] = {"text", NULL};
static const char *const D_PROMPT[] = {"prompt", "instruction", "question", NULL};
static const char *const D_INPUT[] = {"input", NULL};
static const char *const D_RESPONSE[] = {"response", "completion", "output", "answer", NULL};
static const char *const D_SYSTEM[] = {"system", NULL};
static const char *const D_MESSAGES[] = {"messages", "conversations", NULL};
static const char *const D_CHOSEN[] = {"chosen", NULL};
static const char *const D_REJECTED[] = {"rejected", NULL};
static const char *const D_QUESTION[] = {"question", "prompt", NULL};
static const char *const D_ANSWER[] = {"answer", NULL};

static json_t *string_field(json_t *row, const char *given, const char *const *defs, bool required,
                            char *err) {
    const char *name;
    json_t *v = field(row, given, defs, &name);
    if (!v) {
        if (required) errf(err, "missing field \"%s\"", name);
        return NULL;
    }
    if (!json_is_string(v)) {
        errf(err, "field \"%s\" must be a string, not %s", name, type_name(v));
        return NULL;
    }
    return v;
}

static const char *norm_role(const char *r) {
    if (!strcmp(r, "human")) return "user";
    if (!strcmp(r, "gpt")) return "assistant";
    if (!strcmp(r, "system") || !strcmp(r, "user") || !strcmp(r, "assistant") || !strcmp(r, "tool"))
        return r;
    return NULL;
}

// A message list [{"role","content"}] (or ShareGPT [{"from","value"}]) appended to c.
static int parse_messages(json_t *arr, const char *name, Conv *c, char *err) {
    if (!json_is_array(arr)) {
        errf(err, "field \"%s\" must be a list of messages, not %s", name, type_name(arr));
        return -1;
    }
    if (json_array_size(arr) > MAX_MSGS) {
        errf(err, "field \"%s\" has more than %d messages", name, MAX_MSGS);
        return -1;
    }
    size_t i;
    json_t *m;
    json_array_foreach(arr, i, m) {
        if (!json_is_object(m)) {
            errf(err, "%s[%zu] must be an object with \"role\" and \"content\", not %s", name, i, type_name(m));
            return -1;
        }
        json_t *role = json_object_get(m, "role"), *content = json_object_get(m, "content");
        const char *rk = "role", *ck = "content";
        if (!role && !content) {
            role = json_object_get(m, "from");
            content = json_object_get(m, "value");
            rk = "from";
            ck = "value";
        }
        if (!json_is_string(role)) {
            errf(err, "%s[%zu].%s %s", name, i, rk, role ? "must be a string" : "is missing");
            return -1;
        }
        const char *r = norm_role(json_string_value(role));
        if (!r) {
            errf(err, "%s[%zu].%s: unknown role \"%.40s\" (expected system, user, assistant or tool)", name,
                 i, rk, json_string_value(role));
            return -1;
        }
        if (!json_is_string(content)) {
            errf(err, "%s[%zu].%s %s", name, i, ck,
                 content ? "must be a string" : "is missing");
            return -1;
        }
        if (conv_push(c, r, json_string_value(content), json_string_length(content))) {
            errf(err, "out of memory");
            return -1;
        }
        json_t *rc = json_object_get(m, "reasoning_content");
        if (json_is_string(rc)) {
            c->m[c->n - 1].reasoning = json_string_value(rc);
            c->m[c->n - 1].reasoning_len = json_string_length(rc);
        }
    }
    return 0;
}

static int has_role(const Conv *c, const char *role) {
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->m[i].role, role)) return 1;
    return 0;
}

// prompt (string or message list) + optional system → c. The prompt may be absent (optional).
static int prompt_conv(const DsFields *f, json_t *row, Conv *c, bool optional, char *err) {
    json_t *sys = string_field(row, f->system, D_SYSTEM, false, err);
    if (!sys && err[0]) return -1;
    const char *name;
    json_t *p = field(row, f->prompt, D_PROMPT, &name);
    if (!p) {
        if (optional) return 0;
        errf(err, "missing field \"%s\"", name);
        return -1;
    }
    if (json_is_array(p)) {
        if (sys && conv_push(c, "system", json_string_value(sys), json_string_length(sys))) return -1;
        return parse_messages(p, name, c, err);
    }
    if (!json_is_string(p)) {
        errf(err, "field \"%s\" must be a string or a message list, not %s", name, type_name(p));
        return -1;
    }
    if (sys && conv_push(c, "system", json_string_value(sys), json_string_length(sys))) return -1;
    return conv_push(c, "user", json_string_value(p), json_string_length(p));
}

static int response_into(json_t *v, const char *name, const Conv *prompt, Conv *out, char *err) {
    if (!v) {
        errf(err, "missing field \"%s\"", name);
        return -1;
    }
    if (json_is_string(v)) {
        if (conv_append(out, prompt) || conv_push(out, "assistant", json_string_value(v), json_string_length(v)))
            return errf(err, "out of memory"), -1;
        return 0;
    }
    if (json_is_array(v)) {
        if (conv_append(out, prompt)) return errf(err, "out of memory"), -1;
        if (parse_messages(v, name, out, err)) return -1;
        if (!has_role(out, "assistant")) {
            errf(err, "field \"%s\" has no assistant message", name);
            return -1;
        }
        return 0;
    }
    errf(err, "field \"%s\" must be a string or a message list, not %s", name, type_name(v));
    return -1;
}

static int extract(const DsConfig *cfg, json_t *row, RowData *rd, char *err) {
    const DsFields *f = &cfg->fields;
    err[0] = 0;
    memset(rd, 0, sizeof *rd);
    if (!json_is_object(row)) {
        errf(err, "a row must be a JSON object, not %s", type_name(row));
        return -1;
    }
    const char *name;
    switch (cfg->format) {
    case DS_TEXT: {
        json_t *t = string_field(row, f->text, D_TEXT, true, err);
        if (!t) return -1;
        rd->text = json_string_value(t);
        rd->text_len = json_string_length(t);
        return 0;
    }
    case DS_PROMPT_RESPONSE: {
        json_t *sys = string_field(row, f->system, D_SYSTEM, false, err);
        if (!sys && err[0]) return -1;
        json_t *p = string_field(row, f->prompt, D_PROMPT, true, err);
        if (!p) return -1;
        json_t *in = string_field(row, f->input, D_INPUT, false, err);
        if (!in && err[0]) return -1;
        json_t *r = string_field(row, f->response, D_RESPONSE, true, err);
        if (!r) return -1;
        const char *ps = json_string_value(p);
        size_t pn = json_string_length(p);
        if (in && json_string_length(in) > 0) {   // Alpaca: instruction + "\n\n" + input
            size_t inl = json_string_length(in);
            rd->owned = malloc(pn + 2 + inl + 1);
            if (!rd->owned) return errf(err, "out of memory"), -1;
            memcpy(rd->owned, ps, pn);
            memcpy(rd->owned + pn, "\n\n", 2);
            memcpy(rd->owned + pn + 2, json_string_value(in), inl + 1);
            ps = rd->owned;
            pn += 2 + inl;
        }
        if ((sys && conv_push(&rd->conv, "system", json_string_value(sys), json_string_length(sys))) ||
            conv_push(&rd->conv, "user", ps, pn) ||
            conv_push(&rd->conv, "assistant", json_string_value(r), json_string_length(r)))
            return errf(err, "out of memory"), -1;
        return 0;
    }
    case DS_MESSAGES: {
        json_t *m = field(row, f->messages, D_MESSAGES, &name);
        if (!m) return errf(err, "missing field \"%s\"", name), -1;
        if (parse_messages(m, name, &rd->conv, err)) return -1;
        if (cfg->mask_prompt && !has_role(&rd->conv, "assistant")) {
            errf(err, "field \"%s\" has no assistant message to learn", name);
            return -1;
        }
        return 0;
    }
    case DS_PREFERENCE: {
        Conv prompt = {0};
        int st = prompt_conv(f, row, &prompt, true, err);
        if (!st) {
            json_t *c = field(row, f->chosen, D_CHOSEN, &name);
            st = response_into(c, name, &prompt, &rd->conv, err);
        }
        if (!st) {
            json_t *r = field(row, f->rejected, D_REJECTED, &name);
            st = response_into(r, name, &prompt, &rd->rej, err);
        }
        free(prompt.m);
        return st;
    }
    case DS_PROMPT_ANSWER: {
        json_t *sys = string_field(row, f->system, D_SYSTEM, false, err);
        if (!sys && err[0]) return -1;
        json_t *q = string_field(row, f->prompt, D_QUESTION, true, err);
        if (!q) return -1;
        json_t *a = string_field(row, f->answer, D_ANSWER, true, err);
        if (!a) return -1;
        rd->answer = ds_gsm8k_answer(json_string_value(a), json_string_length(a));
        if (!rd->answer) {
            // Not GSM8K style: the whole answer is the reference.
            if (strstr(json_string_value(a), "####")) return errf(err, "empty final answer after \"####\""), -1;
            rd->answer = dup_str(json_string_value(a));
            if (!rd->answer) return errf(err, "out of memory"), -1;
        }
        if ((sys && conv_push(&rd->conv, "system", json_string_value(sys), json_string_length(sys))) ||
            conv_push(&rd->conv, "user", json_string_value(q), json_string_length(q)))
            return errf(err, "out of memory"), -1;
        return 0;
    }
    }
    errf(err, "unknown format");
    return -1;
}

char *ds_gsm8k_answer(const char *s, size_t n) {
    const char *hit = NULL;
    for (size_t i = 0; i + 4 <= n; i++)
        if (!memcmp(s + i, "####", 4)) hit = s + i;
    if (!hit) return NULL;
    const char *p = hit + 4, *e = s + n;
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n' || e[-1] == '\r')) e--;
    if (e == p) return NULL;
    int numeric = 1;
    for (const char *q = p; q < e; q++)
        if (!((*q >= '0' && *q <= '9') || *q == ',' || *q == '.' || *q == '-' || *q == '+')) numeric = 0;
    char *out = malloc((size_t)(e - p) + 1), *o = out;
    if (!out) return NULL;
    for (const char *q = p; q < e; q++)
        if (!(numeric && *q == ',')) *o++ = *q;
    *o = 0;
    return out;
}

// ---- checks at open -----------------------------------------------------------------------------

// Extracts and renders one row; 0 valid, -1 bad (err set).
// The text of a row (every message, reasoning and the text field), for the size limit.
static size_t row_bytes(const RowData *rd) {
    size_t n = rd->text_len;
    const Conv *cs[2] = {&rd->conv, &rd->rej};
    for (int k = 0; k < 2; k++)
        for (size_t i = 0; i < cs[k]->n; i++) n += cs[k]->m[i].content_len + cs[k]->m[i].reasoning_len;
    return n;
}

static int check_row(DsLoader *l, json_t *row, char *err) {
    RowData rd;
    int st = extract(&l->cfg, row, &rd, err);
    // A JSON or CSV row holds at most what a JSONL line may (max_line_bytes): one 100 MB row would
    // otherwise be tokenized whole, 8 bytes a token, every time it is read.
    size_t maxrow = l->cfg.max_line_bytes ? l->cfg.max_line_bytes : (size_t)64 << 20;
    if (!st && row_bytes(&rd) > maxrow) {
        errf(err, "the row holds %zu bytes of text, more than %zu", row_bytes(&rd), maxrow);
        st = -1;
    }
    if (!st && l->cfg.format != DS_TEXT) {
        ChatRender r = {0};
        const char *e = NULL;
        bool gen = l->cfg.format == DS_PROMPT_ANSWER;
        if (chat_render(&l->tmpl, rd.conv.m, rd.conv.n, gen, &r, &e) ||
            (rd.rej.n && chat_render(&l->tmpl, rd.rej.m, rd.rej.n, gen, &r, &e))) {
            errf(err, "%s", e ? e : "cannot render the conversation");
            st = -1;
        }
        chat_render_free(&r);
    }
    row_free(&rd);
    return st;
}

// A bad row: reported (fatal) or counted (skip). Returns -1 when fatal.
static int bad_row(DsLoader *l, long line, long col, const char *msg) {
    if (l->cfg.skip_errors) {
        if (l->stats.skipped++ == 0) {
            l->skip_line = line;
            snprintf(l->skip_msg, sizeof l->skip_msg, "%s", msg);
        }
        return 0;
    }
    diag_file_error(l->d, l->cfg.path, line, col, "%s", msg);
    return -1;
}

// ---- JSONL: streamed index -------------------------------------------------------------------

static int index_jsonl(DsLoader *l) {
    size_t maxline = l->cfg.max_line_bytes ? l->cfg.max_line_bytes : (size_t)64 << 20;
    if (maxline > UINT32_MAX) maxline = UINT32_MAX;
    enum { BLK = 1 << 20 };
    char *blk = malloc(BLK);
    char *line = NULL;
    size_t linecap = 0, linelen = 0, refcap = 0;
    uint64_t pos = 0, line_off = 0;
    long lineno = 0;
    int too_long = 0, st = 0;
    char err[ERRN];
    if (!blk) {
        diag_plain_error(l->d, "out of memory");
        return -1;
    }
    for (;;) {
        size_t got = fread(blk, 1, BLK, l->f);
        if (got == 0 && ferror(l->f)) {
            diag_file_error(l->d, l->cfg.path, 0, 0, "read error: %s", strerror(errno));
            st = -1;
            break;
        }
        size_t i = 0;
        int eof = got == 0;
        while (i < got || (eof && (linelen || too_long))) {
            const char *nl = i < got ? memchr(blk + i, '\n', got - i) : NULL;
            size_t seg = nl ? (size_t)(nl - (blk + i)) : got - i;
            if (!too_long) {
                if (linelen + seg > maxline) {
                    too_long = 1;
                } else {
                    if (linelen + seg + 1 > linecap) {
                        size_t cap = linecap ? linecap : 4096;
                        while (cap < linelen + seg + 1) cap *= 2;
                        char *t = realloc(line, cap);
                        if (!t) {
                            diag_plain_error(l->d, "out of memory");
                            st = -1;
                            goto done;
                        }
                        line = t;
                        linecap = cap;
                    }
                    memcpy(line + linelen, blk + i, seg);
                    linelen += seg;
                }
            }
            i += seg;
            pos += seg;
            if (!nl && !eof) break;           // the line continues in the next block
            if (nl) i++, pos++;
            // A complete line [line_off, line_off + linelen).
            lineno++;
            size_t n = linelen;
            while (n && (line[n - 1] == '\r' || line[n - 1] == ' ' || line[n - 1] == '\t')) n--;
            int blank = 1;
            for (size_t k = 0; k < n && blank; k++)
                if (!(line[k] == ' ' || line[k] == '\t' || line[k] == '\r')) blank = 0;
            if (too_long) {
                errf(err, "line longer than %zu bytes", maxline);
                if (bad_row(l, lineno, 0, err)) { st = -1; goto done; }
            } else if (!blank) {
                json_error_t je;
                json_t *row = json_loadb(line, n, 0, &je);
                if (!row) {
                    if (bad_row(l, lineno, je.column > 0 ? je.column : 0, je.text)) { st = -1; goto done; }
                } else if (check_row(l, row, err)) {
                    json_decref(row);
                    if (bad_row(l, lineno, 0, err)) { st = -1; goto done; }
                } else {
                    json_decref(row);
                    if (l->nrows == refcap) {
                        size_t cap = refcap ? 2 * refcap : 1024;
                        RowRef *t = realloc(l->refs, cap * sizeof *t);
                        if (!t) {
                            diag_plain_error(l->d, "out of memory");
                            st = -1;
                            goto done;
                        }
                        l->refs = t;
                        refcap = cap;
                    }
                    l->refs[l->nrows++] = (RowRef){line_off, (uint32_t)n, (uint32_t)lineno};
                }
            }
            linelen = 0;
            too_long = 0;
            line_off = pos;
            if (eof) break;
        }
        if (eof) break;
    }
done:
    free(blk);
    free(line);
    return st;
}

static json_t *read_jsonl_row(DsLoader *l, size_t i) {
    RowRef r = l->refs[i];
    if ((size_t)r.len + 1 > l->bufcap) {
        char *t = realloc(l->buf, (size_t)r.len + 1);
        if (!t) return NULL;
        l->buf = t;
        l->bufcap = (size_t)r.len + 1;
    }
    if (fseeko(l->f, (off_t)r.off, SEEK_SET) != 0 || fread(l->buf, 1, r.len, l->f) != r.len) {
        diag_file_error(l->d, l->cfg.path, r.line, 0, "cannot re-read the row (file changed?)");
        return NULL;
    }
    json_error_t je;
    json_t *row = json_loadb(l->buf, r.len, 0, &je);
    if (!row) diag_file_error(l->d, l->cfg.path, r.line, je.column, "%s (file changed?)", je.text);
    return row;
}

// ---- JSON: whole file, element lines by a light scan ---------------------------------------

// Line numbers of the elements of the top-level array, or of the array under the top-level key
// "data". Scans strings and nesting only; the text is known to be valid JSON.
static long *element_lines(const char *s, size_t n, size_t count) {
    long *lines = calloc(count ? count : 1, sizeof *lines);
    if (!lines) return NULL;
    long line = 1;
    int depth = 0, target = -1, expect = 0;
    size_t k = 0, key_b = 0, key_e = 0, str_b = 0;
    int last_was_key_string = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\n') { line++; continue; }
        if (c == ' ' || c == '\t' || c == '\r') continue;
        if (expect && depth == target && c != ']') {
            if (k < count) lines[k++] = line;
            expect = 0;
        }
        if (c == '"') {
            str_b = i + 1;
            for (i++; i < n && s[i] != '"'; i++) {
                if (s[i] == '\\') i++;
                else if (s[i] == '\n') line++;
            }
            if (depth == 1 && target < 0) {
                key_b = str_b;
                key_e = i;
                last_was_key_string = 1;
            }
            continue;
        }
        if (c == '[' || c == '{') {
            depth++;
            if (c == '[' && target < 0 &&
                (depth == 1 || (depth == 2 && last_was_key_string && key_e - key_b == 4 &&
                                !memcmp(s + key_b, "data", 4)))) {
                target = depth;
                expect = 1;
            }
        } else if (c == ']' || c == '}') {
            if (depth == target) target = -2;   // done: later arrays are not elements
            depth--;
        } else if (c == ',' && depth == target) {
            expect = 1;
        }
        if (c != ':') last_was_key_string = 0;
    }
    return lines;
}

static char *read_whole(DsLoader *l, size_t *len) {
    size_t limit = l->cfg.max_file_bytes ? l->cfg.max_file_bytes : (size_t)1 << 30;
    struct stat st;
    if (fstat(fileno(l->f), &st) != 0 || !S_ISREG(st.st_mode)) {
        diag_file_error(l->d, l->cfg.path, 0, 0, "not a regular file");
        return NULL;
    }
    if ((uint64_t)st.st_size > limit) {
        diag_file_error(l->d, l->cfg.path, 0, 0, "file is %lld bytes; JSON and CSV files are loaded whole "
                        "and the limit is %zu", (long long)st.st_size, limit);
        diag_hint(l->d, "convert it to JSONL (one object per line), which is streamed");
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = malloc(n + 1);
    if (!buf) {
        diag_plain_error(l->d, "out of memory reading %s", l->cfg.path);
        return NULL;
    }
    if (fread(buf, 1, n, l->f) != n) {
        diag_file_error(l->d, l->cfg.path, 0, 0, "read error");
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    *len = n;
    return buf;
}

// Keeps the valid rows of `all` (with their lines) in l->rows / l->lines.
static int check_rows(DsLoader *l, json_t *all, const long *lines) {
    size_t n = json_array_size(all);
    l->rows = json_array();
    l->lines = malloc((n ? n : 1) * sizeof *l->lines);
    if (!l->rows || !l->lines) {
        diag_plain_error(l->d, "out of memory");
        return -1;
    }
    char err[ERRN];
    for (size_t i = 0; i < n; i++) {
        json_t *row = json_array_get(all, i);
        if (check_row(l, row, err)) {
            if (bad_row(l, lines[i], 0, err)) return -1;
            continue;
        }
        l->lines[l->nrows++] = lines[i];
        if (json_array_append(l->rows, row)) {
            diag_plain_error(l->d, "out of memory");
            return -1;
        }
    }
    return 0;
}

static int load_json(DsLoader *l) {
    size_t n;
    char *buf = read_whole(l, &n);
    if (!buf) return -1;
    json_error_t je;
    json_t *root = json_loadb(buf, n, 0, &je);
    if (!root) {
        diag_file_error(l->d, l->cfg.path, je.line, je.column, "%s", je.text);
        free(buf);
        return -1;
    }
    json_t *arr = root;
    if (json_is_object(root)) arr = json_object_get(root, "data");
    int st = -1;
    if (!json_is_array(arr)) {
        diag_file_error(l->d, l->cfg.path, 1, 1, "expected a JSON array of rows or {\"data\": [...]}");
    } else {
        long *lines = element_lines(buf, n, json_array_size(arr));
        if (!lines) diag_plain_error(l->d, "out of memory");
        else st = check_rows(l, arr, lines);
        free(lines);
    }
    json_decref(root);
    free(buf);
    return st;
}

// ---- CSV ----------------------------------------------------------------------------------

typedef struct CsvState {
    DsLoader *l;
    json_t *all;          // rows as objects
    long *lines;          // (cap) first line of each row
    size_t cap;
    char **header;
    size_t nheader;
    json_t *cur;          // row being built
    size_t nfield;
    long line, row_line;  // the line being fed; first line of the current row
    long next_line;       // the line after the last complete row
    int first_field;
    int failed;           // fatal error already reported
    int bad;              // current row is bad (err set)
    char err[ERRN];
} CsvState;

static void csv_field(void *data, size_t len, void *ctx) {
    CsvState *s = ctx;
    if (s->failed) return;
    if (s->first_field) {
        long nl = 0;
        for (size_t i = 0; i < len; i++) nl += ((char *)data)[i] == '\n';
        s->row_line = s->line - nl;
        s->first_field = 0;
    }
    const char *p = data ? data : "";
    if (!s->header || s->nheader == 0) {   // header row
        char **h = realloc(s->header, (s->nfield + 1) * sizeof *h);
        if (!h) { s->failed = 1; return; }
        s->header = h;
        size_t off = 0;
        if (s->nfield == 0 && len >= 3 && !memcmp(p, "\xEF\xBB\xBF", 3)) off = 3;   // BOM
        h[s->nfield] = malloc(len - off + 1);
        if (!h[s->nfield]) { s->failed = 1; return; }
        memcpy(h[s->nfield], p + off, len - off);
        h[s->nfield][len - off] = 0;
        s->nfield++;
        return;
    }
    if (!s->bad) {
        if (s->nfield >= s->nheader) {
            s->bad = 1;
            errf(s->err, "more fields than the %zu columns of the header", s->nheader);
        } else {
            json_t *v = json_stringn(p, len);
            if (!v) {
                s->bad = 1;
                errf(s->err, "column \"%s\": invalid UTF-8", s->header[s->nfield]);
            } else if (json_object_set_new(s->cur, s->header[s->nfield], v)) {
                s->failed = 1;
            }
        }
    }
    s->nfield++;
}

static void csv_row(int c, void *ctx) {
    (void)c;
    CsvState *s = ctx;
    if (s->failed) return;
    if (s->nheader == 0 && s->header) {   // the header just ended
        s->nheader = s->nfield;
        for (size_t i = 0; i < s->nheader; i++) {
            json_t *probe = json_string(s->header[i]);
            if (!probe) {
                diag_file_error(s->l->d, s->l->cfg.path, s->row_line, 0,
                                "header column %zu is not valid UTF-8 text", i + 1);
                s->failed = 1;
                return;
            }
            json_decref(probe);
        }
        for (size_t i = 0; i < s->nheader; i++)
            for (size_t j = 0; j < i; j++)
                if (!strcmp(s->header[i], s->header[j])) {
                    diag_file_error(s->l->d, s->l->cfg.path, s->row_line, 0, "duplicate column \"%s\" in the header",
                                    s->header[i]);
                    s->failed = 1;
                    return;
                }
    } else {
        if (!s->bad && s->nfield < s->nheader)
            s->bad = 1, errf(s->err, "%zu fields, the header has %zu columns", s->nfield, s->nheader);
        if (s->bad) {
            if (bad_row(s->l, s->row_line, 0, s->err)) s->failed = 1;
        } else {
            if (json_array_size(s->all) == s->cap) {
                size_t cap = s->cap ? 2 * s->cap : 256;
                long *t = realloc(s->lines, cap * sizeof *t);
                if (!t) { s->failed = 1; return; }
                s->lines = t;
                s->cap = cap;
            }
            s->lines[json_array_size(s->all)] = s->row_line;
            if (json_array_append(s->all, s->cur)) s->failed = 1;
        }
    }
    s->next_line = s->line + 1;
    json_decref(s->cur);
    s->cur = json_object();
    if (!s->cur) s->failed = 1;
    s->nfield = 0;
    s->bad = 0;
    s->first_field = 1;
}

// Fields are kept verbatim: libcsv would otherwise trim spaces and tabs around unquoted fields.
static int csv_no_space(unsigned char c) {
    (void)c;
    return 0;
}

static int load_csv(DsLoader *l) {
    size_t n;
    char *buf = read_whole(l, &n);
    if (!buf) return -1;
    struct csv_parser p;
    CsvState s = {0};
    s.l = l;
    s.all = json_array();
    s.cur = json_object();
    s.line = 1;
    s.first_field = 1;
    int st = -1;
    if (!s.all || !s.cur || csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        diag_plain_error(l->d, "out of memory");
        goto out_nofree;
    }
    csv_set_space_func(&p, csv_no_space);
    int errors_before = l->d->errors;
    // Feed one physical line at a time so that rows know their line numbers.
    for (size_t i = 0; i < n && !s.failed;) {
        const char *nl = memchr(buf + i, '\n', n - i);
        size_t len = nl ? (size_t)(nl - (buf + i)) + 1 : n - i;
        if (csv_parse(&p, buf + i, len, csv_field, csv_row, &s) != len) {
            diag_file_error(l->d, l->cfg.path, s.line, 0, "malformed CSV: %s", csv_strerror(csv_error(&p)));
            diag_hint(l->d, "quote fields containing commas, quotes or newlines; double quotes inside quotes");
            s.failed = 1;
            break;
        }
        i += len;
        if (nl) s.line++;
    }
    if (!s.failed && csv_fini(&p, csv_field, csv_row, &s) != 0) {
        diag_file_error(l->d, l->cfg.path, s.next_line, 0, "malformed CSV: %s (unterminated quoted field?)",
                        csv_strerror(csv_error(&p)));
        s.failed = 1;
    }
    if (s.failed && l->d->errors == errors_before)   // only allocation failures are silent
        diag_plain_error(l->d, "out of memory reading %s", l->cfg.path);
    if (!s.failed && s.nheader == 0) {
        diag_file_error(l->d, l->cfg.path, 1, 0, "no header row");
        s.failed = 1;
    }
    if (!s.failed) st = check_rows(l, s.all, s.lines);
    csv_free(&p);
out_nofree:
    for (size_t i = 0; i < (s.nheader ? s.nheader : s.nfield); i++) free(s.header[i]);
    free(s.header);
    free(s.lines);
    json_decref(s.all);
    json_decref(s.cur);
    free(buf);
    return st;
}

// ---- open / close ----------------------------------------------------------------------------

static DsFileType type_from_path(const char *p) {
    const char *dot = strrchr(p, '.');
    if (!dot) return DS_FILE_AUTO;
    if (!strcmp(dot, ".jsonl") || !strcmp(dot, ".ndjson")) return DS_FILE_JSONL;
    if (!strcmp(dot, ".json")) return DS_FILE_JSON;
    if (!strcmp(dot, ".csv")) return DS_FILE_CSV;
    return DS_FILE_AUTO;
}

static int32_t detect_eos(const Tokenizer *tok) {
    static const char *const names[] = {"<|endoftext|>", "</s>", "<|end_of_text|>", "<|eos|>", "<|im_end|>", NULL};
    for (int i = 0; names[i]; i++) {
        int32_t id = tok_id(tok, names[i]);
        if (id >= 0) return id;
    }
    return -1;
}

DsLoader *ds_open(Diag *d, const DsConfig *cfg, const Tokenizer *tok) {
    if (!cfg->path) {
        diag_plain_error(d, "dataset: no file given");
        return NULL;
    }
    DsLoader *l = calloc(1, sizeof *l);
    if (!l) {
        diag_plain_error(d, "out of memory");
        return NULL;
    }
    l->d = d;
    l->cfg = *cfg;
    l->tok = tok;
    const char **src[10] = {&l->cfg.path, &l->cfg.fields.text, &l->cfg.fields.prompt, &l->cfg.fields.input,
                            &l->cfg.fields.response, &l->cfg.fields.system, &l->cfg.fields.messages,
                            &l->cfg.fields.chosen, &l->cfg.fields.rejected, &l->cfg.fields.answer};
    for (int i = 0; i < 10; i++) {
        if (!*src[i]) continue;
        l->strs[i] = dup_str(*src[i]);
        if (!l->strs[i]) goto oom;
        *src[i] = l->strs[i];
    }
    l->epochs = cfg->epochs > 0 ? cfg->epochs : 1;
    l->order_epoch = -1;
    if (cfg->max_len < 0) {
        diag_plain_error(d, "dataset %s: max_len must be positive", cfg->path);
        goto fail;
    }
    if (cfg->pack && (cfg->max_len <= 0 || cfg->format == DS_PREFERENCE || cfg->format == DS_PROMPT_ANSWER)) {
        diag_plain_error(d, "dataset %s: packing needs max_len and a text, prompt_response or messages format",
                         cfg->path);
        goto fail;
    }
    // The template: a copy; plain when none. PLAIN/FORMAT end responses with the EOS token's text.
    if (cfg->tmpl ? chat_copy(&l->tmpl, cfg->tmpl) : chat_named(d, "plain", &l->tmpl)) goto oom;
    l->eos = cfg->eos_id >= 0 ? cfg->eos_id : detect_eos(tok);
    l->pad = cfg->pad_id >= 0 ? cfg->pad_id : (l->eos >= 0 ? l->eos : 0);
    if ((l->tmpl.kind == CHAT_PLAIN || l->tmpl.kind == CHAT_FORMAT) && !l->tmpl.eos && l->eos >= 0 &&
        tok_is_special(tok, l->eos)) {
        if (chat_set_eos(&l->tmpl, tok_token(tok, l->eos))) goto oom;
    }
    l->type = cfg->type != DS_FILE_AUTO ? cfg->type : type_from_path(cfg->path);
    if (l->type == DS_FILE_AUTO) {
        diag_file_error(d, cfg->path, 0, 0, "unknown data file type");
        diag_hint(d, "use a .jsonl, .json or .csv file");
        goto fail;
    }
    l->f = fopen(cfg->path, "rb");
    if (!l->f) {
        diag_file_error(d, cfg->path, 0, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }
    struct stat fst;
    if (fstat(fileno(l->f), &fst) != 0 || !S_ISREG(fst.st_mode)) {   // devices and pipes never end
        diag_file_error(d, cfg->path, 0, 0, "not a regular file");
        goto fail;
    }
    int st = l->type == DS_FILE_JSONL ? index_jsonl(l) : l->type == DS_FILE_JSON ? load_json(l) : load_csv(l);
    if (st) goto fail;
    if (l->type != DS_FILE_JSONL) {
        fclose(l->f);
        l->f = NULL;
    }
    l->stats.rows = l->nrows;
    if (l->stats.skipped && l->nrows)
        diag_warning(d, (Loc){0, 0, 0}, "%s: skipped %zu bad row%s (on_error = skip); the first, line %ld: %s",
                     cfg->path, l->stats.skipped, l->stats.skipped == 1 ? "" : "s", l->skip_line, l->skip_msg);
    if (l->nrows == 0) {
        if (l->stats.skipped)
            diag_file_error(d, cfg->path, 0, 0, "no valid rows (%zu bad rows skipped)", l->stats.skipped);
        else diag_file_error(d, cfg->path, 0, 0, "no rows");
        goto fail;
    }
    return l;
oom:
    diag_plain_error(d, "out of memory");
fail:
    ds_close(l);
    return NULL;
}

void ds_close(DsLoader *l) {
    if (!l) return;
    if (l->f) fclose(l->f);
    free(l->refs);
    free(l->buf);
    json_decref(l->rows);
    free(l->lines);
    free(l->order);
    ds_example_free(&l->pending);
    chat_free(&l->tmpl);
    for (int i = 0; i < 10; i++) free(l->strs[i]);
    free(l);
}

size_t ds_num_rows(const DsLoader *l) { return l->nrows; }
DsStats ds_stats(const DsLoader *l) { return l->stats; }
int32_t ds_pad_id(const DsLoader *l) { return l->pad; }
int32_t ds_eos_id(const DsLoader *l) { return l->eos; }

// ---- examples --------------------------------------------------------------------------------

void ds_example_free(DsExample *ex) {
    free(ex->ids);
    free(ex->labels);
    free(ex->rej_ids);
    free(ex->rej_labels);
    free(ex->answer);
    memset(ex, 0, sizeof *ex);
}

// Truncates (ids, labels) of length *n to max_len on the configured side. Returns 1 when cut.
static int truncate_seq(const DsLoader *l, int32_t *ids, int32_t *labels, size_t *n) {
    size_t m = (size_t)l->cfg.max_len;
    if (m == 0 || *n <= m) return 0;
    if (l->cfg.truncate == DS_TRUNC_LEFT) {
        memmove(ids, ids + (*n - m), m * sizeof *ids);
        memmove(labels, labels + (*n - m), m * sizeof *labels);
    }
    *n = m;
    return 1;
}

// Whether labels (a sequence's) hold a target: label i is predicted from position i - 1, so the
// first is never one.
static bool any_target(const int32_t *labels, size_t n) {
    for (size_t i = 1; i < n; i++)
        if (labels[i] != DS_IGNORE) return true;
    return false;
}

// Conversation → ids and labels (learned where trainable, or everywhere without mask_prompt).
static int tokenize_conv(DsLoader *l, const Conv *c, bool gen, bool all_targets, int32_t **ids_out,
                         int32_t **labels_out, size_t *n_out, char *err) {
    ChatRender r = {0};
    const char *e = NULL;
    TokIds ids = {0};
    uint8_t *mask = NULL;
    int st = -1;
    if (chat_render(&l->tmpl, c->m, c->n, gen, &r, &e)) {
        errf(err, "%s", e ? e : "cannot render");
        goto out;
    }
    if (chat_tokenize(l->tok, &r, &ids, &mask)) {
        errf(err, "out of memory while tokenizing");
        goto out;
    }
    int32_t *labels = malloc((ids.n ? ids.n : 1) * sizeof *labels);
    if (!labels) {
        errf(err, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ids.n; i++) labels[i] = (all_targets || mask[i]) ? ids.v[i] : DS_IGNORE;
    if (!ids.v) ids.v = malloc(sizeof *ids.v);
    *ids_out = ids.v;
    ids.v = NULL;
    *labels_out = labels;
    *n_out = ids.n;
    st = 0;
out:
    tok_ids_free(&ids);
    free(mask);
    chat_render_free(&r);
    return st;
}

static int make_example(DsLoader *l, json_t *row, long line, DsExample *ex) {
    memset(ex, 0, sizeof *ex);
    ex->line = line;
    RowData rd;
    char err[ERRN];
    int st = extract(&l->cfg, row, &rd, err);
    if (!st) {
        if (l->cfg.format == DS_TEXT) {
            TokIds ids = {0};
            if (tok_encode(l->tok, rd.text, rd.text_len, true, &ids) ||
                (l->eos >= 0 && (ids.n == 0 || ids.v[ids.n - 1] != l->eos) && tok_ids_push(&ids, l->eos)) ||
                !(ex->labels = malloc((ids.n ? ids.n : 1) * sizeof *ex->labels))) {
                tok_ids_free(&ids);
                errf(err, "out of memory");
                st = -1;
            } else {
                memcpy(ex->labels, ids.v, ids.n * sizeof *ids.v);
                ex->ids = ids.v;
                ex->n = ids.n;
            }
        } else {
            bool gen = l->cfg.format == DS_PROMPT_ANSWER;
            bool all = !l->cfg.mask_prompt && l->cfg.format != DS_PREFERENCE;
            st = tokenize_conv(l, &rd.conv, gen, all, &ex->ids, &ex->labels, &ex->n, err);
            if (!st && gen)
                for (size_t i = 0; i < ex->n; i++) ex->labels[i] = DS_IGNORE;
            if (!st && rd.rej.n)
                st = tokenize_conv(l, &rd.rej, false, false, &ex->rej_ids, &ex->rej_labels, &ex->rej_n, err);
            if (!st) {
                ex->answer = rd.answer;
                rd.answer = NULL;
            }
        }
    }
    row_free(&rd);
    if (st) {
        diag_file_error(l->d, l->cfg.path, line, 0, "%s", err);
        ds_example_free(ex);
        return -1;
    }
    bool had = any_target(ex->labels, ex->n) && (!ex->rej_ids || any_target(ex->rej_labels, ex->rej_n));
    int cut = truncate_seq(l, ex->ids, ex->labels, &ex->n);
    if (ex->rej_ids) cut |= truncate_seq(l, ex->rej_ids, ex->rej_labels, &ex->rej_n);
    ex->truncated = cut;
    if (cut) l->stats.truncated++;
    if (cut && had && (!any_target(ex->labels, ex->n) || (ex->rej_ids && !any_target(ex->rej_labels, ex->rej_n)))) {
        l->stats.emptied++;
        if (!l->warned_emptied) {   // once per dataset: the trainer learns nothing from such rows
            l->warned_emptied = true;
            diag_warning(l->d, (Loc){0, 0, 0}, "%s:%ld: truncated to %d tokens, nothing of the response is left "
                         "to learn (the first such row)", l->cfg.path, line, l->cfg.max_len);
            diag_hint(l->d, l->cfg.truncate == DS_TRUNC_LEFT ? "raise `max_len`"
                                                              : "raise `max_len`, or keep the end: `truncate = left;`");
        }
    }
    return 0;
}

int ds_get(DsLoader *l, size_t i, DsExample *ex) {
    memset(ex, 0, sizeof *ex);
    if (i >= l->nrows) {
        diag_file_error(l->d, l->cfg.path, 0, 0, "row %zu out of range (%zu rows)", i, l->nrows);
        return -1;
    }
    if (l->type == DS_FILE_JSONL) {
        json_t *row = read_jsonl_row(l, i);
        if (!row) return -1;
        int st = make_example(l, row, l->refs[i].line, ex);
        json_decref(row);
        return st;
    }
    return make_example(l, json_array_get(l->rows, i), l->lines[i], ex);
}

// ---- iteration ------------------------------------------------------------------------------

static int ensure_order(DsLoader *l, int epoch) {
    if (!l->cfg.shuffle || l->order_epoch == epoch) return 0;
    if (!l->order) {
        if (l->nrows > SIZE_MAX / sizeof *l->order) return -1;
        l->order = malloc(l->nrows * sizeof *l->order);
        if (!l->order) return -1;
    }
    for (size_t i = 0; i < l->nrows; i++) l->order[i] = i;
    uint64_t s = l->cfg.seed * 0x100000001B3ull + (uint64_t)epoch;
    for (size_t i = l->nrows; i > 1; i--) {   // Fisher–Yates
        size_t j = (size_t)(splitmix64(&s) % i);
        size_t t = l->order[i - 1];
        l->order[i - 1] = l->order[j];
        l->order[j] = t;
    }
    l->order_epoch = epoch;
    return 0;
}

// The next example in (epoch, shuffled) order: 1 got one, 0 all epochs done, -1 error.
static int next_example(DsLoader *l, DsExample *ex) {
    if (l->has_pending) {
        *ex = l->pending;
        memset(&l->pending, 0, sizeof l->pending);
        l->has_pending = false;
        l->last_epoch = l->pend_epoch;
        l->last_index = l->pend_index;
        return 1;
    }
    if (l->index >= l->nrows) {
        l->epoch++;
        l->index = 0;
    }
    if (l->epoch >= l->epochs) return 0;
    if (ensure_order(l, l->epoch)) {
        diag_plain_error(l->d, "out of memory");
        return -1;
    }
    size_t i = l->cfg.shuffle ? l->order[l->index] : l->index;
    l->last_epoch = l->epoch;
    l->last_index = l->index;
    l->index++;
    if (ds_get(l, i, ex)) return -1;
    return 1;
}

static int batch_reserve(DsBatch *b, int rows, int T) {
    if (rows <= 0 || T <= 0 || (size_t)T > SIZE_MAX / 4 / (size_t)rows) return -1;
    size_t need = (size_t)rows * (size_t)T;
    if (need > b->cap) {
        int32_t *p[4];
        for (int k = 0; k < 4; k++) p[k] = NULL;
        for (int k = 0; k < 4; k++) {
            int32_t **dst = k == 0 ? &b->tokens : k == 1 ? &b->targets : k == 2 ? &b->positions : &b->seq_id;
            p[k] = realloc(*dst, need * sizeof **dst);
            if (!p[k]) return -1;
            *dst = p[k];
        }
        b->cap = need;
    }
    if (rows > b->capB) {
        int32_t *len = realloc(b->lengths, (size_t)rows * sizeof *len);
        if (!len) return -1;
        b->lengths = len;
        char **ans = realloc(b->answers, (size_t)rows * sizeof *ans);
        if (!ans) return -1;
        for (int i = b->capB; i < rows; i++) ans[i] = NULL;
        b->answers = ans;
        b->capB = rows;
    }
    for (int i = 0; i < b->capB; i++) {
        free(b->answers[i]);
        b->answers[i] = NULL;
    }
    b->B = rows;
    b->T = T;
    b->n_targets = 0;
    b->n_examples = 0;
    for (size_t i = 0; i < need; i++) {
        b->tokens[i] = 0;
        b->targets[i] = DS_IGNORE;
        b->positions[i] = 0;
        b->seq_id[i] = -1;
    }
    for (int i = 0; i < rows; i++) b->lengths[i] = 0;
    return 0;
}

void ds_batch_free(DsBatch *b) {
    free(b->tokens);
    free(b->targets);
    free(b->positions);
    free(b->seq_id);
    free(b->lengths);
    if (b->answers)
        for (int i = 0; i < b->capB; i++) free(b->answers[i]);
    free(b->answers);
    memset(b, 0, sizeof *b);
}

// Places a sequence at row r, column c0 as packed sequence number k.
static void place(DsLoader *l, DsBatch *b, int r, int c0, int k, const int32_t *ids, const int32_t *labels,
                  size_t n) {
    int32_t *tok = b->tokens + (size_t)r * b->T, *tgt = b->targets + (size_t)r * b->T;
    int32_t *pos = b->positions + (size_t)r * b->T, *sid = b->seq_id + (size_t)r * b->T;
    for (size_t i = 0; i < n; i++) {
        tok[c0 + i] = ids[i];
        pos[c0 + i] = (int32_t)i;
        sid[c0 + i] = k;
        int32_t t = i + 1 < n ? labels[i + 1] : DS_IGNORE;
        tgt[c0 + i] = t;
        if (t != DS_IGNORE) b->n_targets++;
    }
    b->lengths[r] = c0 + (int32_t)n;
    l->stats.tokens += n;
}

static void pad_rows(DsLoader *l, DsBatch *b) {
    for (int r = 0; r < b->B; r++)
        for (int c = b->lengths[r]; c < b->T; c++) b->tokens[(size_t)r * b->T + c] = l->pad;
}

int ds_next_batch(DsLoader *l, int batch, DsBatch *out) {
    if (batch <= 0) {
        diag_plain_error(l->d, "batch size must be positive");
        return -1;
    }
    if (l->cfg.pack) {
        int T = l->cfg.max_len;
        if (batch_reserve(out, batch, T)) goto oom;
        int rows = 0;
        while (rows < batch) {
            int c = 0, k = 0;
            for (;;) {
                DsExample ex;
                int g = next_example(l, &ex);
                if (g < 0) return -1;
                if (g == 0) break;
                if (ex.n == 0) {   // nothing to place (an empty plain row): skip, do not end the row
                    ds_example_free(&ex);
                    continue;
                }
                if (c > 0 && (size_t)(T - c) < ex.n) {   // does not fit: it starts the next row
                    l->pending = ex;
                    l->has_pending = true;
                    l->pend_epoch = l->last_epoch;
                    l->pend_index = l->last_index;
                    break;
                }
                place(l, out, rows, c, k++, ex.ids, ex.labels, ex.n);
                c += (int)ex.n;
                out->n_examples++;
                ds_example_free(&ex);
                if (c >= T) break;
            }
            if (c == 0) break;
            rows++;
            if (!l->has_pending && l->epoch >= l->epochs) break;
        }
        out->B = rows;
        pad_rows(l, out);
        return rows;
    }
    // Not packed: collect the examples, then size T to the longest.
    DsExample *exs = calloc((size_t)batch, sizeof *exs);
    if (!exs) goto oom;
    int n = 0, st = 0;
    while (n < batch) {
        int g = next_example(l, &exs[n]);
        if (g < 0) { st = -1; break; }
        if (g == 0) break;
        n++;
    }
    int pref = l->cfg.format == DS_PREFERENCE;
    if (st == 0 && n > 0) {
        size_t T = 1;
        for (int i = 0; i < n; i++) {
            if (exs[i].n > T) T = exs[i].n;
            if (pref && exs[i].rej_n > T) T = exs[i].rej_n;
        }
        int rows = pref ? 2 * n : n;
        if (T > INT32_MAX || batch_reserve(out, rows, (int)T)) {
            st = -2;
        } else {
            for (int i = 0; i < n; i++) {
                place(l, out, i, 0, 0, exs[i].ids, exs[i].labels, exs[i].n);
                if (pref) place(l, out, n + i, 0, 0, exs[i].rej_ids, exs[i].rej_labels, exs[i].rej_n);
                out->answers[i] = exs[i].answer;
                exs[i].answer = NULL;
            }
            out->n_examples = n;
            pad_rows(l, out);
            st = rows;
        }
    }
    for (int i = 0; i < batch; i++) ds_example_free(&exs[i]);
    free(exs);
    if (st == -2) goto oom;
    return st;
oom:
    diag_plain_error(l->d, "out of memory building a batch");
    return -1;
}

int64_t ds_count_batches(DsLoader *l, int batch) {
    if (batch <= 0) {
        diag_plain_error(l->d, "batch size must be positive");
        return -1;
    }
    if (!l->cfg.pack) {
        uint64_t n = (uint64_t)l->nrows * (uint64_t)l->epochs;
        return (int64_t)((n + (uint64_t)batch - 1) / (uint64_t)batch);
    }
    uint32_t *len = malloc((l->nrows ? l->nrows : 1) * sizeof *len);
    if (!len) {
        diag_plain_error(l->d, "out of memory");
        return -1;
    }
    DsStats saved = l->stats;   // counting is not reading: keep the statistics as they were
    for (size_t i = 0; i < l->nrows; i++) {
        DsExample ex;
        if (ds_get(l, i, &ex)) {
            free(len);
            l->stats = saved;
            return -1;
        }
        len[i] = (uint32_t)ex.n;   // <= max_len after truncation
        ds_example_free(&ex);
    }
    l->stats = saved;
    // The packing loop of ds_next_batch over the whole stream: a row closes when it is full or
    // when the next example does not fit (that example starts the next row).
    size_t T = (size_t)l->cfg.max_len, c = 0;
    uint64_t rows = 0;
    for (int e = 0; e < l->epochs; e++) {
        if (ensure_order(l, e)) {
            free(len);
            diag_plain_error(l->d, "out of memory");
            return -1;
        }
        for (size_t k = 0; k < l->nrows; k++) {
            size_t n = len[l->cfg.shuffle ? l->order[k] : k];
            if (n == 0) continue;
            if (c > 0 && T - c < n) rows++, c = 0;
            c += n;
            if (c >= T) rows++, c = 0;
        }
    }
    if (c > 0) rows++;
    free(len);
    return (int64_t)((rows + (uint64_t)batch - 1) / (uint64_t)batch);
}

void ds_position(const DsLoader *l, int *epoch, size_t *index) {
    int e = l->has_pending ? l->pend_epoch : l->epoch;
    size_t i = l->has_pending ? l->pend_index : l->index;
    if (i >= l->nrows && e < l->epochs) e++, i = 0;
    *epoch = e;
    *index = i;
}

int ds_seek(DsLoader *l, int epoch, size_t index) {
    if (epoch < 0 || epoch > l->epochs || index > l->nrows || (epoch == l->epochs && index != 0)) {
        diag_plain_error(l->d, "dataset %s: cannot resume at epoch %d, row %zu (%d epochs of %zu rows)",
                         l->cfg.path, epoch, index, l->epochs, l->nrows);
        return -1;
    }
    ds_example_free(&l->pending);
    l->has_pending = false;
    l->epoch = epoch;
    l->index = index;
    return 0;
}
