// test_lower_mutate.c — no input may crash lowering: the stdlib's graph code (nn.trl, the qwen3
// arch, objectives.trl, pasted into one spec) is mutated at random — bytes deleted or duplicated,
// numbers replaced by extreme values, names swapped, tokens inserted — and every mutant that
// parses is lowered (and differentiated). Lowering must either succeed without errors or fail
// with at least one reported error. Run under ASan+UBSan to catch memory errors.
// usage: test_lower_mutate [COUNT]
#include "autodiff.h"
#include "lower.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static size_t pick(size_t n) { return n ? (size_t)(rnd() % n) : 0; }

// The module text without its `trl 1;` and `import` lines.
static void append_body(char **buf, size_t *len, const char *name) {
    size_t n;
    const char *t = load_stdlib_text(name, &n);
    if (!t) return;
    const char *p = t, *end = t + n;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t ln = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        if (strncmp(p, "trl ", 4) && strncmp(p, "import ", 7)) {
            *buf = realloc(*buf, *len + ln + 1);
            memcpy(*buf + *len, p, ln);
            *len += ln;
            (*buf)[*len] = 0;
        }
        p += ln;
    }
}

static const char *const numbers[] = {"0", "-1", "1e30", "999999999999", "2.5", "-7", "1000000", "3"};
static const char *const inserts[] = {"(", ")", "[", "]", ",", "-", "*", "cfg", "x", "0 .. 9", "tokens",
                                      "model.layers[0]", "cfg.rope", "\"s\"", "true", "p.q_proj", "[0, 0]"};

static char *mutate(const char *src, size_t n, size_t *out_len) {
    size_t cap = n * 2 + 256, len = n;
    char *t = malloc(cap);
    memcpy(t, src, n);
    int edits = 1 + (int)pick(3);
    for (int e = 0; e < edits; e++) {
        size_t at = pick(len);
        switch (pick(6)) {
        case 0: {   // delete 1..6 bytes
            size_t k = 1 + pick(6);
            if (at + k > len) k = len - at;
            memmove(t + at, t + at + k, len - at - k);
            len -= k;
            break;
        }
        case 1: {   // duplicate 1..12 bytes
            size_t k = 1 + pick(12);
            if (at + k > len) k = len - at;
            if (len + k >= cap) break;
            memmove(t + at + k, t + at, len - at);
            len += k;
            break;
        }
        case 2:     // replace a number
        case 3: {   // or a name: find the next token of that kind after `at`
            bool want_num = e % 2 == 0;
            size_t i = at;
            while (i < len && !(want_num ? (t[i] >= '0' && t[i] <= '9') : (t[i] >= 'a' && t[i] <= 'z'))) i++;
            if (i >= len) break;
            size_t j = i;
            while (j < len && ((t[j] >= '0' && t[j] <= '9') || (t[j] >= 'a' && t[j] <= 'z') || t[j] == '_' ||
                               (want_num && (t[j] == '.' || t[j] == 'e'))))
                j++;
            const char *rep;
            char name[32];
            if (want_num) {
                rep = numbers[pick(sizeof numbers / sizeof *numbers)];
            } else {   // another name from the text
                size_t s = pick(len), k = 0;
                while (s < len && !(t[s] >= 'a' && t[s] <= 'z')) s++;
                while (s < len && k < sizeof name - 1 && ((t[s] >= 'a' && t[s] <= 'z') || t[s] == '_')) name[k++] = t[s++];
                name[k] = 0;
                rep = k ? name : "q";
            }
            size_t rl = strlen(rep);
            if (len - (j - i) + rl >= cap) break;
            memmove(t + i + rl, t + j, len - j);
            memcpy(t + i, rep, rl);
            len = len - (j - i) + rl;
            break;
        }
        case 4: {   // insert a token
            const char *ins = inserts[pick(sizeof inserts / sizeof *inserts)];
            size_t rl = strlen(ins);
            if (len + rl >= cap) break;
            memmove(t + at + rl, t + at, len - at);
            memcpy(t + at, ins, rl);
            len += rl;
            break;
        }
        default: {   // swap two bytes
            size_t b = pick(len);
            if (at < len && b < len) {
                char c = t[at];
                t[at] = t[b];
                t[b] = c;
            }
            break;
        }
        }
    }
    *out_len = len;
    return t;
}

int main(int argc, char **argv) {
    int count = argc > 1 ? atoi(argv[1]) : 3000;
    char *base = NULL;
    size_t blen = 0;
    base = malloc(16);
    strcpy(base, "trl 1;\n");
    blen = strlen(base);
    append_body(&base, &blen, "nn");
    append_body(&base, &blen, "qwen3");
    append_body(&base, &blen, "objectives");
    CHECK(blen > 1000);
    FILE *null = fopen("/dev/null", "w");
    CheckedConfig cfg = {.vocab = 64, .hidden = 32, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 8,
                         .ffn = 48, .max_pos = 64, .eps = 1e-6, .rope_theta = 1e6, .init_std = 0.02};
    int parsed = 0, lowered = 0, refused = 0;
    for (int i = -1; i < count; i++) {
        size_t len;
        char *text = i < 0 ? strdup(base) : mutate(base, blen, &len);
        if (i < 0) len = blen;
        Diag d;
        diag_init(&d, null);
        Arena a = {0};
        LoadedSpec spec = {0};
        if (load_spec_text(&d, &a, "mutant.trl", text, len, &spec) == 0 && d.errors == 0) {
            parsed++;
            IrGraph g;
            ir_graph_init(&g, &d, IR_F32);
            LowerModel m = {.name = "m", .arch = "qwen3", .cfg = cfg};
            m.cfg.tie = i % 2 == 0;
            LowerOptions o;
            lower_options_init(&o);
            o.objective = i % 3 == 0 ? "dpo" : "sft";
            LowerResult res;
            int rc = lower_graph(&d, &a, &spec, &m, &o, &g, &res);
            if (rc == 0 && ad_backward(&g, NULL, 0) != 0) rc = -1;
            if (rc == 0) {
                lowered++;
                CHECK_MSG(d.errors == 0, "mutant %d: lowered with %d errors", i, d.errors);
            } else {
                refused++;
                CHECK_MSG(d.errors > 0, "mutant %d: failed without reporting an error:\n%.*s", i, (int)len, text);
            }
            if (i < 0) CHECK_MSG(rc == 0, "the unmutated stdlib does not lower");
            ir_graph_free(&g);
        }
        arena_free(&a);
        diag_free(&d);
        free(text);
    }
    fclose(null);
    free(base);
    printf("%d mutants: %d parse, %d lower, %d refused with errors\n", count, parsed - 1, lowered - 1, refused);
    CHECK(refused > 0 && lowered > 1);
    return test_done("lower.mutate");
}
