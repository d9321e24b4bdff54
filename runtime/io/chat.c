// chat.c — chat templates (see chat.h): recognition from tokenizer_config.json, rendering with
// trainable byte spans, and token-exact tokenization with a trainable mask.
// The renderers follow the Jinja templates of Qwen2/Qwen2.5/Qwen3 and Llama-3 line by line for
// conversations of system/user/assistant/tool messages with string content; each is checked
// against renders by jinja2 over the real templates (tests/data/gen_chat_fixtures.py).
// Does not: run Jinja, or render tools / tool_calls / multimodal content.
#include "chat.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char QWEN25_SYSTEM[] = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
static const char QWEN2_SYSTEM[] = "You are a helpful assistant.";

static char *dup_str(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

void chat_free(ChatTemplate *t) {
    if (!t) return;
    free(t->default_system);
    free(t->format);
    free(t->bos);
    free(t->eos);
    free(t->date);
    memset(t, 0, sizeof *t);
}

int chat_copy(ChatTemplate *dst, const ChatTemplate *src) {
    memset(dst, 0, sizeof *dst);
    dst->kind = src->kind;
    dst->default_system = dup_str(src->default_system);
    dst->format = dup_str(src->format);
    dst->bos = dup_str(src->bos);
    dst->eos = dup_str(src->eos);
    dst->date = dup_str(src->date);
    if ((src->default_system && !dst->default_system) || (src->format && !dst->format) ||
        (src->bos && !dst->bos) || (src->eos && !dst->eos) || (src->date && !dst->date)) {
        chat_free(dst);
        return -1;
    }
    return 0;
}

int chat_set_eos(ChatTemplate *t, const char *eos) {
    free(t->eos);
    t->eos = NULL;
    if (!eos) return 0;
    t->eos = dup_str(eos);
    return t->eos ? 0 : -1;
}

static int set_kind(Diag *d, ChatTemplate *out, ChatKind kind, const char *sys, const char *bos) {
    memset(out, 0, sizeof *out);
    out->kind = kind;
    out->default_system = dup_str(sys);
    out->bos = dup_str(bos);
    if ((sys && !out->default_system) || (bos && !out->bos)) {
        chat_free(out);
        diag_plain_error(d, "out of memory");
        return -1;
    }
    return 0;
}

// Llama-3.1 layout with a date string.
static int set_llama31(Diag *d, ChatTemplate *out, const char *date) {
    if (set_kind(d, out, CHAT_LLAMA3, NULL, "<|begin_of_text|>")) return -1;
    out->date = dup_str(date);
    if (!out->date) {
        chat_free(out);
        diag_plain_error(d, "out of memory");
        return -1;
    }
    return 0;
}

int chat_named(Diag *d, const char *name, ChatTemplate *out) {
    static const char *const names[] = {"chatml", "qwen2", "qwen2.5", "qwen3", "llama3", "llama3.1", "plain"};
    if (!strcmp(name, "llama3.1")) return set_llama31(d, out, "26 Jul 2024");
    if (!strcmp(name, "chatml")) return set_kind(d, out, CHAT_CHATML, NULL, NULL);
    if (!strcmp(name, "qwen2")) return set_kind(d, out, CHAT_CHATML, QWEN2_SYSTEM, NULL);
    if (!strcmp(name, "qwen2.5")) return set_kind(d, out, CHAT_CHATML, QWEN25_SYSTEM, NULL);
    if (!strcmp(name, "qwen3")) return set_kind(d, out, CHAT_QWEN3, NULL, NULL);
    if (!strcmp(name, "llama3")) return set_kind(d, out, CHAT_LLAMA3, NULL, "<|begin_of_text|>");
    if (!strcmp(name, "plain")) return set_kind(d, out, CHAT_PLAIN, NULL, NULL);
    memset(out, 0, sizeof *out);
    diag_plain_error(d, "unknown chat template `%s`", name);
    const char *s = suggest_word(name, names, sizeof names / sizeof names[0]);
    if (s) diag_hint(d, "did you mean `%s`?", s);
    else diag_hint(d, "known templates: chatml, qwen2, qwen2.5, qwen3, llama3, llama3.1, plain, or a format string");
    return -1;
}

int chat_from_jinja(Diag *d, const char *where, const char *jinja, ChatTemplate *out) {
    if (strstr(jinja, "<|start_header_id|>")) {
        if (strstr(jinja, "Cutting Knowledge Date")) {
            char date[32] = "26 Jul 2024";
            if (strstr(jinja, "strftime_now")) {   // Llama-3.2: today, as transformers renders it
                time_t now = time(NULL);
                struct tm tm;
                static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
                if (localtime_r(&now, &tm))
                    snprintf(date, sizeof date, "%02d %s %04d", tm.tm_mday, mon[tm.tm_mon % 12], tm.tm_year + 1900);
            }
            return set_llama31(d, out, date);
        }
        return set_kind(d, out, CHAT_LLAMA3, NULL, "<|begin_of_text|>");
    }
    if (strstr(jinja, "<|im_start|>")) {
        if (strstr(jinja, "<think>")) return set_kind(d, out, CHAT_QWEN3, NULL, NULL);
        if (strstr(jinja, QWEN25_SYSTEM)) return set_kind(d, out, CHAT_CHATML, QWEN25_SYSTEM, NULL);
        if (strstr(jinja, QWEN2_SYSTEM)) return set_kind(d, out, CHAT_CHATML, QWEN2_SYSTEM, NULL);
        return set_kind(d, out, CHAT_CHATML, NULL, NULL);
    }
    memset(out, 0, sizeof *out);
    diag_file_error(d, where, 0, 0, "unrecognised chat_template (neither ChatML nor Llama-3)");
    diag_hint(d, "name one in the spec: template = chatml | qwen3 | llama3 | plain | \"User: {prompt}\\n...\"");
    return -1;
}

// bos_token / eos_token are strings or {"content": ...} objects.
static const char *token_text(json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    if (json_is_object(v)) return json_string_value(json_object_get(v, "content"));
    return NULL;
}

int chat_from_config(Diag *d, const char *path, ChatTemplate *out) {
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        if (je.line > 0) diag_file_error(d, path, je.line, je.column, "%s", je.text);
        else diag_file_error(d, path, 0, 0, "%s", je.text);
        return -1;
    }
    int st = -1;
    json_t *tpl = json_object_get(root, "chat_template");
    // Some configs hold a list of named templates: [{"name": "default", "template": "..."}].
    if (json_is_array(tpl)) {
        json_t *first = NULL, *item;
        size_t i;
        json_array_foreach(tpl, i, item) {
            if (!first) first = item;
            const char *nm = json_string_value(json_object_get(item, "name"));
            if (nm && !strcmp(nm, "default")) first = item;
        }
        tpl = first ? json_object_get(first, "template") : NULL;
    }
    if (!json_is_string(tpl)) {
        diag_file_error(d, path, 0, 0, "no chat_template in this tokenizer_config.json");
        diag_hint(d, "name one in the spec: template = chatml | qwen3 | llama3 | plain");
    } else if (chat_from_jinja(d, path, json_string_value(tpl), out) == 0) {
        st = 0;
        const char *bos = token_text(json_object_get(root, "bos_token"));
        if (out->kind == CHAT_LLAMA3 && bos) {
            free(out->bos);
            out->bos = dup_str(bos);
            if (!out->bos) st = -1;
        }
    }
    json_decref(root);
    return st;
}

int chat_format(Diag *d, const char *fmt, ChatTemplate *out) {
    memset(out, 0, sizeof *out);
    int have_prompt = 0, have_response = 0;
    for (const char *p = fmt; *p; p++) {
        if (p[0] == '{' && p[1] == '{') { p++; continue; }
        if (p[0] == '}' && p[1] == '}') { p++; continue; }
        if (*p == '}') {
            diag_plain_error(d, "template format: unmatched `}` at byte %td (write `}}` for a brace)", p - fmt);
            return -1;
        }
        if (*p != '{') continue;
        const char *e = strchr(p, '}');
        if (!e) {
            diag_plain_error(d, "template format: unclosed `{` at byte %td", p - fmt);
            return -1;
        }
        size_t n = (size_t)(e - p - 1);
        if (n == 6 && !strncmp(p + 1, "prompt", 6)) have_prompt++;
        else if (n == 8 && !strncmp(p + 1, "response", 8)) have_response++;
        else if (!(n == 6 && !strncmp(p + 1, "system", 6))) {
            diag_plain_error(d, "template format: unknown placeholder `{%.*s}`", (int)n, p + 1);
            diag_hint(d, "placeholders: {system} {prompt} {response}");
            return -1;
        }
        p = e;
    }
    if (have_prompt != 1 || have_response > 1) {
        diag_plain_error(d, "template format: needs exactly one {prompt} and at most one {response}");
        return -1;
    }
    out->kind = CHAT_FORMAT;
    out->format = dup_str(fmt);
    if (!out->format) {
        diag_plain_error(d, "out of memory");
        return -1;
    }
    return 0;
}

int chat_from_spec(Diag *d, const char *value, const char *tokenizer_config_path, ChatTemplate *out) {
    memset(out, 0, sizeof *out);
    if (strchr(value, '{')) return chat_format(d, value, out);
    if (!strcmp(value, "chat")) {
        if (!tokenizer_config_path) {
            diag_plain_error(d, "template = chat needs the model's tokenizer_config.json");
            return -1;
        }
        return chat_from_config(d, tokenizer_config_path, out);
    }
    return chat_named(d, value, out);
}

// ---- rendering -------------------------------------------------------------------------------

void chat_render_free(ChatRender *r) {
    free(r->text);
    free(r->spans);
    memset(r, 0, sizeof *r);
}

static int put(ChatRender *r, const char *s, size_t n) {
    if (n > SIZE_MAX / 2 - r->len - 1) return -1;
    if (r->len + n + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 1) cap *= 2;
        char *t = realloc(r->text, cap);
        if (!t) return -1;
        r->text = t;
        r->cap = cap;
    }
    if (n) memcpy(r->text + r->len, s, n);
    r->len += n;
    r->text[r->len] = 0;
    return 0;
}
static int puts_(ChatRender *r, const char *s) { return put(r, s, strlen(s)); }

static int add_span(ChatRender *r, size_t b, size_t e) {
    if (e <= b) return 0;
    if (r->nspans && r->spans[r->nspans - 1].end == b) {  // merge adjacent spans
        r->spans[r->nspans - 1].end = e;
        return 0;
    }
    if (r->nspans == r->capspans) {
        size_t cap = r->capspans ? 2 * r->capspans : 8;
        ChatSpan *s = realloc(r->spans, cap * sizeof *s);
        if (!s) return -1;
        r->spans = s;
        r->capspans = cap;
    }
    r->spans[r->nspans++] = (ChatSpan){b, e};
    return 0;
}

typedef struct Str {
    const char *p;
    size_t n;
} Str;

static const char *mem_find(const char *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle);
    if (nn > hn) return NULL;
    for (size_t i = 0; i + nn <= hn; i++)
        if (h[i] == needle[0] && !memcmp(h + i, needle, nn)) return h + i;
    return NULL;
}
static const char *mem_rfind(const char *h, size_t hn, const char *needle) {
    size_t nn = strlen(needle);
    if (nn > hn) return NULL;
    for (size_t i = hn - nn + 1; i-- > 0;)
        if (h[i] == needle[0] && !memcmp(h + i, needle, nn)) return h + i;
    return NULL;
}
static Str lstrip_nl(Str s) {
    while (s.n && s.p[0] == '\n') s.p++, s.n--;
    return s;
}
static Str rstrip_nl(Str s) {
    while (s.n && s.p[s.n - 1] == '\n') s.n--;
    return s;
}

// Python str.isspace() for the UTF-8 character at p (n bytes left): its length, or 0.
static size_t space_len(const unsigned char *p, size_t n) {
    if ((*p >= 9 && *p <= 13) || *p == ' ' || (*p >= 0x1c && *p <= 0x1f)) return 1;
    if (n >= 2 && p[0] == 0xC2 && (p[1] == 0x85 || p[1] == 0xA0)) return 2;
    if (n >= 3 && p[0] == 0xE1 && p[1] == 0x9A && p[2] == 0x80) return 3;   // U+1680
    if (n >= 3 && p[0] == 0xE2 && p[1] == 0x80 &&
        ((p[2] >= 0x80 && p[2] <= 0x8A) || p[2] == 0xA8 || p[2] == 0xA9 || p[2] == 0xAF))
        return 3;   // U+2000..200A, 2028, 2029, 202F
    if (n >= 3 && p[0] == 0xE2 && p[1] == 0x81 && p[2] == 0x9F) return 3;   // U+205F
    if (n >= 3 && p[0] == 0xE3 && p[1] == 0x80 && p[2] == 0x80) return 3;   // U+3000
    return 0;
}
// Jinja's `trim` (Python str.strip()).
static Str trim(Str s) {
    size_t k;
    while (s.n && (k = space_len((const unsigned char *)s.p, s.n)) > 0) s.p += k, s.n -= k;
    for (;;) {
        size_t cut = 0;
        for (size_t back = 1; back <= 3 && back <= s.n; back++) {
            const unsigned char *q = (const unsigned char *)s.p + s.n - back;
            if (back > 1 && (*q & 0xC0) == 0x80) continue;
            if (space_len(q, back) == back) cut = back;
            break;
        }
        if (!cut) break;
        s.n -= cut;
    }
    return s;
}

static Str msg_content(const ChatMsg *m) { return (Str){m->content ? m->content : "", m->content ? m->content_len : 0}; }
static int is_role(const ChatMsg *m, const char *r) { return m->role && !strcmp(m->role, r); }

// A ChatML turn: <|im_start|>role\n content <|im_end|>\n; for assistant turns `content` and
// <|im_end|> are trainable.
static int chatml_turn(ChatRender *r, const char *role, Str content, int trainable) {
    if (puts_(r, "<|im_start|>") || puts_(r, role) || puts_(r, "\n")) return -1;
    size_t b = r->len;
    if (put(r, content.p, content.n) || puts_(r, "<|im_end|>")) return -1;
    if (trainable && add_span(r, b, r->len)) return -1;
    return puts_(r, "\n");
}

static int known_role(const ChatMsg *m) {
    return is_role(m, "system") || is_role(m, "user") || is_role(m, "assistant") || is_role(m, "tool");
}

// Qwen2/2.5 tool turns: consecutive tool messages share one user turn.
static int qwen_tool(ChatRender *r, const ChatMsg *msgs, size_t n, size_t i, Str content) {
    if (i == 0 || !is_role(&msgs[i - 1], "tool"))
        if (puts_(r, "<|im_start|>user")) return -1;
    if (puts_(r, "\n<tool_response>\n") || put(r, content.p, content.n) || puts_(r, "\n</tool_response>"))
        return -1;
    if (i + 1 == n || !is_role(&msgs[i + 1], "tool"))
        if (puts_(r, "<|im_end|>\n")) return -1;
    return 0;
}

static int render_chatml(const ChatTemplate *t, const ChatMsg *m, size_t n, ChatRender *r) {
    size_t start = 0;
    if (n && is_role(&m[0], "system")) {
        if (chatml_turn(r, "system", msg_content(&m[0]), 0)) return -1;
        start = 1;
    } else if (t->default_system) {
        Str s = {t->default_system, strlen(t->default_system)};
        if (chatml_turn(r, "system", s, 0)) return -1;
    }
    for (size_t i = start; i < n; i++) {
        Str c = msg_content(&m[i]);
        if (is_role(&m[i], "tool")) {
            if (qwen_tool(r, m, n, i, c)) return -1;
        } else if (chatml_turn(r, m[i].role, c, is_role(&m[i], "assistant"))) {
            return -1;
        }
    }
    return 0;
}

static int starts_with(Str s, const char *lit) { size_t k = strlen(lit); return s.n >= k && !memcmp(s.p, lit, k); }
static int ends_with(Str s, const char *lit) { size_t k = strlen(lit); return s.n >= k && !memcmp(s.p + s.n - k, lit, k); }

static int render_qwen3(const ChatMsg *m, size_t n, ChatRender *r) {
    if (n && is_role(&m[0], "system"))
        if (chatml_turn(r, "system", msg_content(&m[0]), 0)) return -1;
    // last_query_index: the last user message that is not a wrapped tool response.
    size_t last_query = n ? n - 1 : 0;
    for (size_t k = n; k-- > 0;) {
        Str c = msg_content(&m[k]);
        if (is_role(&m[k], "user") && !(starts_with(c, "<tool_response>") && ends_with(c, "</tool_response>"))) {
            last_query = k;
            break;
        }
    }
    for (size_t i = 0; i < n; i++) {
        Str c = msg_content(&m[i]);
        if (is_role(&m[i], "user") || (is_role(&m[i], "system") && i > 0)) {
            if (chatml_turn(r, m[i].role, c, 0)) return -1;
        } else if (is_role(&m[i], "assistant")) {
            Str reason = {"", 0};
            if (m[i].reasoning) {
                reason = (Str){m[i].reasoning, m[i].reasoning_len};
            } else {
                const char *close = mem_find(c.p, c.n, "</think>");
                if (close) {
                    Str before = {c.p, (size_t)(close - c.p)};
                    before = rstrip_nl(before);
                    const char *open = mem_rfind(before.p, before.n, "<think>");
                    if (open) before = (Str){open + 7, before.n - (size_t)(open + 7 - before.p)};
                    reason = lstrip_nl(before);
                    const char *lastc = mem_rfind(c.p, c.n, "</think>");
                    c = lstrip_nl((Str){lastc + 8, c.n - (size_t)(lastc + 8 - c.p)});
                }
            }
            if (puts_(r, "<|im_start|>assistant\n")) return -1;
            size_t b = r->len;
            if (i > last_query && (i + 1 == n || reason.n > 0)) {
                Str rs = rstrip_nl(lstrip_nl(reason));
                if (puts_(r, "<think>\n") || put(r, rs.p, rs.n) || puts_(r, "\n</think>\n\n")) return -1;
                c = lstrip_nl(c);
            }
            if (put(r, c.p, c.n) || puts_(r, "<|im_end|>") || add_span(r, b, r->len) || puts_(r, "\n"))
                return -1;
        } else if (is_role(&m[i], "tool")) {
            if (qwen_tool(r, m, n, i, c)) return -1;
        }
    }
    return 0;
}

static int render_llama3(const ChatTemplate *t, const ChatMsg *m, size_t n, ChatRender *r) {
    size_t start = 0;
    if (t->date) {   // Llama-3.1: BOS and the system block always, with the dated preamble
        if (t->bos && puts_(r, t->bos)) return -1;
        if (puts_(r, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
                     "Today Date: ") || puts_(r, t->date) || puts_(r, "\n\n"))
            return -1;
        if (n && is_role(&m[0], "system")) {
            Str c = trim(msg_content(&m[0]));
            if (put(r, c.p, c.n)) return -1;
            start = 1;
        }
        if (puts_(r, "<|eot_id|>")) return -1;
    }
    for (size_t i = start; i < n; i++) {
        if (t->date && is_role(&m[i], "tool")) {
            // Tool results: the ipython role; the template passes a string through `tojson` (a
            // string is iterable in Jinja), so it appears JSON-quoted.
            Str c = msg_content(&m[i]);
            json_t *js = json_stringn(c.p, c.n);
            char *q = js ? json_dumps(js, JSON_ENCODE_ANY) : NULL;
            json_decref(js);
            int bad = !q || puts_(r, "<|start_header_id|>ipython<|end_header_id|>\n\n") || puts_(r, q) ||
                      puts_(r, "<|eot_id|>");
            free(q);
            if (bad) return -1;
            continue;
        }
        if (i == 0 && !t->date && t->bos && puts_(r, t->bos)) return -1;
        Str c = trim(msg_content(&m[i]));
        if (puts_(r, "<|start_header_id|>") || puts_(r, m[i].role) || puts_(r, "<|end_header_id|>\n\n"))
            return -1;
        size_t b = r->len;
        if (put(r, c.p, c.n) || puts_(r, "<|eot_id|>")) return -1;
        if (is_role(&m[i], "assistant") && add_span(r, b, r->len)) return -1;
    }
    return 0;
}

static int put_response(const ChatTemplate *t, ChatRender *r, Str c) {
    size_t b = r->len;
    if (put(r, c.p, c.n) || (t->eos && puts_(r, t->eos))) return -1;
    return add_span(r, b, r->len);
}

static int render_plain(const ChatTemplate *t, const ChatMsg *m, size_t n, ChatRender *r) {
    for (size_t i = 0; i < n; i++) {
        Str c = msg_content(&m[i]);
        if (is_role(&m[i], "assistant")) {
            if (put_response(t, r, c)) return -1;
        } else if (put(r, c.p, c.n)) {
            return -1;
        }
    }
    return 0;
}

// One instance of the format. response NULL: stop at {response} (a prompt to generate from).
static int format_turn(const ChatTemplate *t, ChatRender *r, Str sys, Str prompt, const Str *response) {
    const char *f = t->format;
    int had_response = 0;
    for (const char *p = f; *p; p++) {
        if ((p[0] == '{' && p[1] == '{') || (p[0] == '}' && p[1] == '}')) {
            if (put(r, p, 1)) return -1;
            p++;
            continue;
        }
        if (*p != '{') {
            if (put(r, p, 1)) return -1;
            continue;
        }
        const char *e = strchr(p, '}');   // validated by chat_format
        if (!e) return -1;
        if (!strncmp(p, "{system}", 8)) {
            if (put(r, sys.p, sys.n)) return -1;
        } else if (!strncmp(p, "{prompt}", 8)) {
            if (put(r, prompt.p, prompt.n)) return -1;
        } else {
            had_response = 1;
            if (!response) return 0;
            if (put_response(t, r, *response)) return -1;
        }
        p = e;
    }
    if (!had_response && response) return put_response(t, r, *response);
    return 0;
}

static int render_format(const ChatTemplate *t, const ChatMsg *m, size_t n, bool gen, ChatRender *r,
                         const char **err) {
    Str sys = {"", 0};
    size_t i = 0;
    if (n && is_role(&m[0], "system")) sys = msg_content(&m[i++]);
    while (i < n) {
        if (!is_role(&m[i], "user")) {
            *err = "a format-string template needs user/assistant turns in alternation";
            return -1;
        }
        Str prompt = msg_content(&m[i++]);
        if (i < n) {
            if (!is_role(&m[i], "assistant")) {
                *err = "a format-string template needs user/assistant turns in alternation";
                return -1;
            }
            Str resp = msg_content(&m[i++]);
            if (format_turn(t, r, sys, prompt, &resp)) return -1;
        } else {
            if (!gen) {
                *err = "the conversation ends with a user turn (nothing to learn)";
                return -1;
            }
            if (format_turn(t, r, sys, prompt, NULL)) return -1;
            return 0;
        }
    }
    return 0;
}

int chat_render(const ChatTemplate *t, const ChatMsg *msgs, size_t n, bool gen, ChatRender *r,
                const char **err) {
    static const char *oom = "out of memory";
    *err = NULL;
    r->len = 0;
    r->nspans = 0;
    if (put(r, "", 0)) return *err = oom, -1;
    for (size_t i = 0; i < n; i++) {
        if (!msgs[i].role || !known_role(&msgs[i])) {
            *err = "unknown role (expected system, user, assistant or tool)";
            return -1;
        }
        if (t->kind == CHAT_QWEN3 || t->kind == CHAT_CHATML || t->kind == CHAT_LLAMA3) continue;
        if (is_role(&msgs[i], "tool")) {
            *err = "the tool role needs a chat template (chatml, qwen3 or llama3)";
            return -1;
        }
    }
    int st = 0;
    switch (t->kind) {
    case CHAT_CHATML: st = render_chatml(t, msgs, n, r); break;
    case CHAT_QWEN3: st = render_qwen3(msgs, n, r); break;
    case CHAT_LLAMA3: st = render_llama3(t, msgs, n, r); break;
    case CHAT_PLAIN: st = render_plain(t, msgs, n, r); break;
    case CHAT_FORMAT: st = render_format(t, msgs, n, gen, r, err); break;
    }
    if (st) {
        if (!*err) *err = oom;
        return -1;
    }
    if (gen) {
        if (t->kind == CHAT_CHATML || t->kind == CHAT_QWEN3) st = puts_(r, "<|im_start|>assistant\n");
        else if (t->kind == CHAT_LLAMA3) {
            st = puts_(r, "<|start_header_id|>assistant<|end_header_id|>\n\n");
        }
        if (st) return *err = oom, -1;
    }
    return 0;
}

// ---- token-exact masks -----------------------------------------------------------------------

// Length of the common prefix of a and b.
static size_t common_prefix(const int32_t *a, size_t na, const int32_t *b, size_t nb) {
    size_t k = 0;
    while (k < na && k < nb && a[k] == b[k]) k++;
    return k;
}

// Bytes that ids[0, k) decode to (special tokens included).
static int decoded_len(const Tokenizer *tok, const TokIds *w, size_t k, size_t *len) {
    char *s = tok_decode(tok, w->v, k, false, len);
    if (!s) return -1;
    free(s);
    return 0;
}

// Locates byte edge b of the text among the whole-string tokens w. begin: the first token that
// ends after b (a token straddling b counts as trainable); !begin: the first token that starts at
// or after b. The prefix text[0, b) is tokenized alone: where its ids are a prefix of w, b falls on
// a token boundary. Otherwise the tokens from the first difference on are measured by decoding
// (from the start, so that decoders that strip a leading space stay consistent).
static int edge_token(const Tokenizer *tok, const char *text, size_t b, const TokIds *w, int begin,
                      size_t *idx) {
    TokIds p = {0};
    if (tok_encode(tok, text, b, false, &p)) {
        tok_ids_free(&p);
        return -1;
    }
    size_t k = common_prefix(p.v, p.n, w->v, w->n);
    int exact = k == p.n;
    tok_ids_free(&p);
    if (exact) {
        *idx = k;
        return 0;
    }
    size_t start;
    if (decoded_len(tok, w, k, &start)) return -1;
    for (size_t j = k; j < w->n; j++) {
        size_t end;
        if (begin ? start > b : start >= b) {   // token j starts after the edge
            *idx = j;
            return 0;
        }
        if (decoded_len(tok, w, j + 1, &end)) return -1;
        if (begin && end > b) {
            *idx = j;
            return 0;
        }
        start = end;
    }
    *idx = w->n;
    return 0;
}

// Byte-level fast path: walks the whole-string ids over the text, reading each token's bytes from
// its vocabulary string through the GPT-2 byte↔unicode map (special tokens: their content as is),
// and checks every byte against the text. Only a tokenization that spells the text exactly, to the
// last byte, is accepted, so the token offsets are proven; anything else (SentencePiece "▁" pieces,
// byte fallback, a normalizer that changed the text) returns -1 and the caller uses the general
// path. On success marks the tokens that overlap a span.
static int bytelevel_mask(const Tokenizer *tok, const ChatRender *r, const TokIds *ids, uint8_t *mask) {
    static uint8_t from_cp[324];   // code point (< 0x144) → byte + 1, 0 = not a mapped byte
    static int ready;
    if (!ready) {   // idempotent: a race only recomputes the same table
        int n = 0;
        for (int b = 0; b < 256; b++) {
            int self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            from_cp[self ? b : 0x100 + n++] = (uint8_t)(b + 1);
        }
        ready = 1;
    }
    const unsigned char *text = (const unsigned char *)r->text;
    size_t pos = 0, span = 0;
    for (size_t i = 0; i < ids->n; i++) {
        const char *t = tok_token(tok, ids->v[i]);
        if (!t) return -1;
        size_t start = pos, k = strlen(t);
        if (k == 0) return -1;
        // Each token is read one way only: special tokens as raw text; others through the byte
        // map when every character is a mapped byte, else as raw text (added tokens such as
        // CodeGen's runs of spaces).
        int raw = tok_is_special(tok, ids->v[i]);
        if (!raw) {
            size_t q = pos;
            for (const unsigned char *p = (const unsigned char *)t; *p && !raw;) {
                uint32_t cp = 0x200;   // unmapped
                if (p[0] < 0x80) cp = *p++;
                else if ((p[0] & 0xE0) == 0xC0 && (p[1] & 0xC0) == 0x80) cp = (uint32_t)(p[0] & 0x1F) << 6 | (p[1] & 0x3F), p += 2;
                if (cp >= sizeof from_cp || !from_cp[cp]) {
                    raw = 1;
                    break;
                }
                if (q >= r->len || text[q] != from_cp[cp] - 1) return -1;
                q++;
            }
            if (!raw) pos = q;
        }
        if (raw) {
            if (k > r->len - pos || memcmp(text + pos, t, k)) return -1;
            pos += k;
        }
        while (span < r->nspans && r->spans[span].end <= start) span++;
        mask[i] = span < r->nspans && r->spans[span].begin < pos;
    }
    return pos == r->len ? 0 : -1;
}

static int tokenize_mask(const Tokenizer *tok, const ChatRender *r, TokIds *ids, uint8_t **trainable,
                         bool bytelevel);

int chat_tokenize(const Tokenizer *tok, const ChatRender *r, TokIds *ids, uint8_t **trainable) {
    return tokenize_mask(tok, r, ids, trainable, true);
}

int chat_tokenize_general(const Tokenizer *tok, const ChatRender *r, TokIds *ids, uint8_t **trainable) {
    return tokenize_mask(tok, r, ids, trainable, false);
}

static int tokenize_mask(const Tokenizer *tok, const ChatRender *r, TokIds *ids, uint8_t **trainable,
                         bool bytelevel) {
    *trainable = NULL;
    ids->n = 0;
    if (tok_encode(tok, r->text, r->len, false, ids)) return -1;
    uint8_t *mask = calloc(ids->n ? ids->n : 1, 1);
    if (!mask) return -1;
    if (r->nspans == 0) {
        *trainable = mask;
        return 0;
    }
    if (bytelevel && bytelevel_mask(tok, r, ids, mask) == 0) {
        *trainable = mask;
        return 0;
    }
    memset(mask, 0, ids->n ? ids->n : 1);
    // Next: tokenize the segments between span edges separately; when their concatenation
    // equals the whole-string ids, every edge is a token boundary and the mask follows directly.
    TokIds seg = {0};
    size_t pos = 0, ok = 1;
    size_t *edge_tok = malloc(2 * r->nspans * sizeof *edge_tok);
    if (!edge_tok) {
        free(mask);
        return -1;
    }
    for (size_t s = 0; s < 2 * r->nspans && ok; s++) {
        size_t e = (s & 1) ? r->spans[s / 2].end : r->spans[s / 2].begin;
        if (tok_encode(tok, r->text + pos, e - pos, false, &seg)) {
            ok = 0;
            break;
        }
        edge_tok[s] = seg.n;
        pos = e;
    }
    if (ok && tok_encode(tok, r->text + pos, r->len - pos, false, &seg)) ok = 0;
    int same = ok && seg.n == ids->n && !memcmp(seg.v, ids->v, seg.n * sizeof *seg.v);
    tok_ids_free(&seg);
    if (!ok) {
        free(edge_tok);
        free(mask);
        return -1;
    }
    if (!same) {
        // Slow path: locate each edge among the whole-string ids. A token straddling an edge
        // holds trainable bytes and is trainable (on both sides of a span).
        for (size_t s = 0; s < 2 * r->nspans; s++) {
            size_t e = (s & 1) ? r->spans[s / 2].end : r->spans[s / 2].begin;
            if (edge_token(tok, r->text, e, ids, !(s & 1), &edge_tok[s])) {
                free(edge_tok);
                free(mask);
                return -1;
            }
        }
    }
    for (size_t s = 0; s < r->nspans; s++)
        for (size_t i = edge_tok[2 * s]; i < edge_tok[2 * s + 1] && i < ids->n; i++) mask[i] = 1;
    free(edge_tok);
    *trainable = mask;
    return 0;
}
