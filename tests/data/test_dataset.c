// test_dataset.c — datasets with the byte tokenizer (one id per byte, so every expected id and
// mask is readable from the text): all file types and formats, field mappings, masks, truncation,
// packing, batches, shuffling reproducibility, resume, the GSM8K files, and a corpus of malformed
// files that must each give a `file:line` error and a non-zero status (or be skipped and counted).
#include "dataset.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef FIXTURES
#define FIXTURES "tests/data/fixtures"
#endif
#ifndef TRLC_SHARED_DATA
#define TRLC_SHARED_DATA "/work/shared/data"
#endif

static Tokenizer *tok;
static Diag d;
static char *diag_text;
static size_t diag_len;

static void diag_reset(void) {
    if (d.out) fclose(d.out);
    free(diag_text);
    diag_text = NULL;
    d.out = open_memstream(&diag_text, &diag_len);
    d.errors = 0;
}
static const char *diag_output(void) {
    fflush(d.out);
    return diag_text ? diag_text : "";
}

static DsLoader *open_ds(const char *file, DsFormat fmt, const ChatTemplate *t) {
    DsConfig c;
    ds_config_init(&c);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", FIXTURES, file);
    c.path = path;
    c.format = fmt;
    c.tmpl = t;
    return ds_open(&d, &c, tok);
}

// ids == bytes of s (+ extra ids), labels == ignore for the first `masked` ids, then the ids.
static int seq_is(const int32_t *ids, const int32_t *labels, size_t n, const char *s, const int32_t *extra,
                  size_t nextra, size_t masked) {
    size_t ls = strlen(s);
    if (n != ls + nextra) return 0;
    for (size_t i = 0; i < n; i++) {
        int32_t want = i < ls ? (unsigned char)s[i] : extra[i - ls];
        if (ids[i] != want) return 0;
        if (labels && labels[i] != (i < masked ? DS_IGNORE : want)) return 0;
    }
    return 1;
}

static void test_prompt_response(void) {
    DsLoader *l = open_ds("sft.jsonl", DS_PROMPT_RESPONSE, NULL);
    CHECK(l != NULL);
    if (!l) return;
    CHECK(ds_num_rows(l) == 5);
    CHECK(ds_eos_id(l) == 257 && ds_pad_id(l) == 257);
    DsExample ex;
    int32_t eos = 257;
    CHECK(ds_get(l, 0, &ex) == 0);
    // plain: prompt bytes (masked) + response + <|eos|> (learned)
    CHECK(seq_is(ex.ids, ex.labels, ex.n, "What is 2+2?4", &eos, 1, 12));
    CHECK(ex.line == 1 && !ex.truncated);
    ds_example_free(&ex);
    long lines[5] = {1, 2, 4, 5, 6};   // line 3 is blank, line 4 ends with CRLF
    for (size_t i = 0; i < 5; i++) {
        CHECK(ds_get(l, i, &ex) == 0);
        CHECK(ex.line == lines[i]);
        if (i == 2) CHECK(seq_is(ex.ids, ex.labels, ex.n, "Say hi in Chinese你好", &eos, 1, 17));
        if (i == 3) CHECK(seq_is(ex.ids, ex.labels, ex.n, "Spell catc-a-t", &eos, 1, 9));   // completion
        if (i == 4) CHECK(seq_is(ex.ids, ex.labels, ex.n, "Empty answer", &eos, 1, 12));
        ds_example_free(&ex);
    }
    CHECK(ds_get(l, 5, &ex) != 0);
    ds_close(l);

    // ChatML: the assistant content and <|im_end|> are learned, nothing else.
    ChatTemplate t;
    CHECK(chat_named(&d, "chatml", &t) == 0);
    l = open_ds("sft.jsonl", DS_PROMPT_RESPONSE, &t);
    CHECK(l != NULL);
    if (l && ds_get(l, 0, &ex) == 0) {
        const char *text = "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n";
        CHECK(seq_is(ex.ids, NULL, ex.n, text, NULL, 0, 0));
        size_t first = strlen("<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n");
        int ok = 1;
        for (size_t i = 0; i < ex.n; i++) {
            int learn = i >= first && i < first + strlen("4<|im_end|>");
            ok &= ex.labels[i] == (learn ? ex.ids[i] : DS_IGNORE);
        }
        CHECK(ok);
        ds_example_free(&ex);
    }
    ds_close(l);

    // mask_prompt = false: every token is a label.
    DsConfig c;
    ds_config_init(&c);
    c.path = FIXTURES "/sft.jsonl";
    c.mask_prompt = false;
    c.tmpl = &t;
    l = ds_open(&d, &c, tok);
    CHECK(l != NULL);
    if (l && ds_get(l, 1, &ex) == 0) {
        int ok = 1;
        for (size_t i = 0; i < ex.n; i++) ok &= ex.labels[i] == ex.ids[i];
        CHECK(ok);
        ds_example_free(&ex);
    }
    ds_close(l);
    chat_free(&t);

    // Field mapping: prompt from "response" and response from "prompt" (swapped on purpose).
    ds_config_init(&c);
    c.path = FIXTURES "/sft.jsonl";
    c.fields.prompt = "response";
    c.fields.response = "prompt";
    c.skip_errors = true;   // row 4 has no "response" field
    l = ds_open(&d, &c, tok);
    CHECK(l != NULL);
    if (l) {
        CHECK(ds_num_rows(l) == 4 && ds_stats(l).skipped == 1);
        CHECK(ds_get(l, 0, &ex) == 0);
        CHECK(seq_is(ex.ids, ex.labels, ex.n, "4What is 2+2?", &eos, 1, 1));
        ds_example_free(&ex);
    }
    ds_close(l);
}

// A prompt_response file of fixtures: opened (checked), and its row count checked where it opened.
static DsLoader *open_rows(const char *file, size_t nrows) {
    DsLoader *l = open_ds(file, DS_PROMPT_RESPONSE, NULL);
    CHECK(l != NULL);
    if (l) CHECK(ds_num_rows(l) == nrows);
    return l;
}

// Row i of l is the bytes of s (the first `masked` of them masked) and EOS, from line `line`.
static void check_row(DsLoader *l, size_t i, const char *s, size_t masked, long line) {
    const int32_t eos = 257;
    DsExample ex;
    CHECK(ds_get(l, i, &ex) == 0);
    CHECK(seq_is(ex.ids, ex.labels, ex.n, s, &eos, 1, masked));
    CHECK(ex.line == line);
    ds_example_free(&ex);
}

static void test_alpaca_csv(void) {
    int32_t eos = 257;
    DsExample ex;
    DsLoader *l = open_rows("alpaca.json", 3);
    if (l) {
        check_row(l, 0, "Add the numbers.\n\n2 and 35", 25, 2);
        check_row(l, 1, "Name a fruit.Apple", 13, 7);   // empty input: no blank line added
        CHECK(ds_get(l, 2, &ex) == 0 && ex.line == 12);
        ds_example_free(&ex);
    }
    ds_close(l);

    // Row lines in a .json file with decoys (nested "data", brackets and quotes in strings).
    l = open_rows("tricky.json", 3);
    if (l) {
        long want[3] = {3, 4, 5};
        for (size_t i = 0; i < 3; i++) {
            CHECK(ds_get(l, i, &ex) == 0);
            CHECK_MSG(ex.line == want[i], "row %zu: line %ld, want %ld", i, ex.line, want[i]);
            if (i == 0) CHECK(seq_is(ex.ids, ex.labels, ex.n, "a]}\"[{b", &eos, 1, 6));
            ds_example_free(&ex);
        }
    }
    ds_close(l);

    l = open_rows("sft.csv", 4);
    if (l) {
        CHECK(ds_get(l, 0, &ex) == 0);   // BOM stripped from the header, quoted comma kept
        CHECK(seq_is(ex.ids, ex.labels, ex.n, "Hello, worldHi", &eos, 1, 12) && ex.line == 2);
        ds_example_free(&ex);
        CHECK(ds_get(l, 1, &ex) == 0);   // embedded newline and doubled quotes
        CHECK(seq_is(ex.ids, ex.labels, ex.n, "two\nlinessay \"yes\"", &eos, 1, 9) && ex.line == 3);
        ds_example_free(&ex);
        CHECK(ds_get(l, 2, &ex) == 0 && ex.line == 5);
        ds_example_free(&ex);
        CHECK(ds_get(l, 3, &ex) == 0);   // spaces around unquoted fields are kept
        CHECK(seq_is(ex.ids, ex.labels, ex.n, " spaced \tkept ", &eos, 1, 8) && ex.line == 6);
        ds_example_free(&ex);
    }
    ds_close(l);
}

static void test_messages_pref_text(void) {
    ChatTemplate t;
    CHECK(chat_named(&d, "qwen2.5", &t) == 0);
    DsExample ex;
    DsLoader *l = open_ds("messages.json", DS_MESSAGES, &t);
    CHECK(l != NULL);
    if (l) {
        CHECK(ds_num_rows(l) == 2);
        CHECK(ds_get(l, 1, &ex) == 0);   // ShareGPT row: default system prompt, two learned turns
        const char *text = "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                           "assistant.<|im_end|>\n<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n"
                           "4<|im_end|>\n<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n6<|im_end|>\n";
        CHECK(seq_is(ex.ids, NULL, ex.n, text, NULL, 0, 0));
        size_t learned = 0;
        for (size_t i = 0; i < ex.n; i++) learned += ex.labels[i] != DS_IGNORE;
        CHECK(learned == 2 * strlen("4<|im_end|>"));
        CHECK(ex.line == 20);
        ds_example_free(&ex);
        CHECK(ds_get(l, 0, &ex) == 0 && ex.line == 4);
        ds_example_free(&ex);
    }
    ds_close(l);
    chat_free(&t);

    // Preference: 3 pairs → 6 rows, chosen first; targets only on the responses.
    l = open_ds("pref.jsonl", DS_PREFERENCE, NULL);
    CHECK(l != NULL);
    if (l) {
        DsBatch b = {0};
        CHECK(ds_next_batch(l, 8, &b) == 6);
        CHECK(b.B == 6 && b.n_examples == 3);
        // row 0: "Pick a colour" + "Blue<|eos|>": predicted tokens B,l,u,e,<|eos|>
        const char *p0 = "Pick a colourBlue";
        CHECK(b.lengths[0] == (int)strlen(p0) + 1 && b.lengths[3] == (int)strlen("Pick a colourNo") + 1);
        int ok = 1;
        for (int t2 = 0; t2 < b.T; t2++) {
            int32_t want = DS_IGNORE;
            if (t2 >= 12 && t2 < 16) want = (unsigned char)p0[t2 + 1];
            if (t2 == 16) want = 257;
            ok &= b.targets[t2] == want;
        }
        CHECK(ok);
        CHECK(b.targets[3 * b.T + 12] == 'N' && b.targets[3 * b.T + 13] == 'o' && b.targets[3 * b.T + 14] == 257);
        CHECK(b.T == 18 && b.tokens[3 * b.T + 16] == 257 && b.seq_id[3 * b.T + 16] == -1);   // padding
        long want_targets = 0;
        DsExample e2;
        for (size_t i = 0; i < 3; i++) {
            CHECK(ds_get(l, i, &e2) == 0);
            for (size_t k = 1; k < e2.n; k++) want_targets += e2.labels[k] != DS_IGNORE;
            for (size_t k = 1; k < e2.rej_n; k++) want_targets += e2.rej_labels[k] != DS_IGNORE;
            ds_example_free(&e2);
        }
        CHECK(b.n_targets == want_targets);
        CHECK(ds_next_batch(l, 8, &b) == 0);
        ds_batch_free(&b);
    }
    ds_close(l);

    // Text: <|bos|> + bytes + <|eos|>, every token learned.
    l = open_ds("text.jsonl", DS_TEXT, NULL);
    CHECK(l != NULL);
    if (l && ds_get(l, 0, &ex) == 0) {
        CHECK(ex.n == 22 && ex.ids[0] == 256 && ex.ids[21] == 257 && ex.ids[1] == 'T');
        int ok = 1;
        for (size_t i = 0; i < ex.n; i++) ok &= ex.labels[i] == ex.ids[i];
        CHECK(ok);
        ds_example_free(&ex);
    }
    ds_close(l);

    // prompt_answer: prompt with the generation prompt, no targets, final answers.
    CHECK(chat_named(&d, "chatml", &t) == 0);
    l = open_ds("gsm.jsonl", DS_PROMPT_ANSWER, &t);
    CHECK(l != NULL);
    if (l) {
        DsBatch b = {0};
        CHECK(ds_next_batch(l, 4, &b) == 2);
        CHECK(b.n_targets == 0);
        CHECK(b.answers[0] && !strcmp(b.answers[0], "5"));
        CHECK(b.answers[1] && !strcmp(b.answers[1], "1234"));
        const char *tail = "<|im_start|>assistant\n";
        int L = b.lengths[0], ok = L > (int)strlen(tail);
        for (size_t i = 0; ok && i < strlen(tail); i++) ok = b.tokens[L - strlen(tail) + i] == tail[i];
        CHECK(ok);
        ds_batch_free(&b);
    }
    ds_close(l);
    chat_free(&t);
}

static void test_truncate_pack(void) {
    DsConfig c;
    ds_config_init(&c);
    c.path = FIXTURES "/sft.jsonl";
    c.max_len = 8;
    DsLoader *l = ds_open(&d, &c, tok);
    DsExample ex;
    CHECK(l != NULL);
    int w0 = d.warnings;
    if (l && ds_get(l, 0, &ex) == 0) {   // right: the first 8 tokens, all prompt
        CHECK(ex.n == 8 && ex.truncated && seq_is(ex.ids, ex.labels, ex.n, "What is ", NULL, 0, 8));
        ds_example_free(&ex);
        CHECK(ds_stats(l).truncated == 1);
        CHECK(ds_stats(l).emptied == 1 && d.warnings == w0 + 1);   // nothing learnable is left: warned
    }
    if (l && ds_get(l, 0, &ex) == 0) {   // counted again, warned once
        ds_example_free(&ex);
        CHECK(ds_stats(l).emptied == 2 && d.warnings == w0 + 1);
    }
    ds_close(l);
    c.truncate = DS_TRUNC_LEFT;
    l = ds_open(&d, &c, tok);
    CHECK(l != NULL);
    int32_t eos = 257;
    if (l && ds_get(l, 0, &ex) == 0) {   // left: the last 8, keeping the response and EOS
        CHECK(ex.n == 8 && seq_is(ex.ids, ex.labels, ex.n, " is 2+2?4", &eos, 1, 6) == 0);
        CHECK(seq_is(ex.ids, ex.labels, ex.n, "is 2+2?4", &eos, 1, 6) == 0);
        CHECK(seq_is(ex.ids, ex.labels, ex.n, "s 2+2?4", &eos, 1, 6));
        ds_example_free(&ex);
        CHECK(ds_stats(l).truncated == 1 && ds_stats(l).emptied == 0 && d.warnings == w0 + 1);
    }
    ds_close(l);

    // Packing text rows (22, 26, 28 tokens) into rows of 64: [22 + 26], [28].
    ds_config_init(&c);
    c.path = FIXTURES "/text.jsonl";
    c.format = DS_TEXT;
    c.max_len = 64;
    c.pack = true;
    l = ds_open(&d, &c, tok);
    CHECK(l != NULL);
    if (!l) return;
    DsBatch b = {0};
    CHECK(ds_next_batch(l, 4, &b) == 2);
    CHECK(b.B == 2 && b.T == 64 && b.n_examples == 3);
    CHECK(b.lengths[0] == 48 && b.lengths[1] == 28);
    CHECK(b.positions[0] == 0 && b.positions[21] == 21 && b.positions[22] == 0 && b.positions[47] == 25);
    CHECK(b.seq_id[21] == 0 && b.seq_id[22] == 1 && b.seq_id[48] == -1 && b.seq_id[64] == 0);
    CHECK(b.targets[20] == 257 && b.targets[21] == DS_IGNORE && b.targets[22] == 'J' && b.targets[47] == DS_IGNORE);
    CHECK(b.tokens[22] == 256 && b.tokens[48] == 257 && b.targets[48] == DS_IGNORE);
    CHECK(b.n_targets == 21 + 25 + 27);
    CHECK(ds_next_batch(l, 4, &b) == 0);
    ds_batch_free(&b);
    ds_close(l);

    // Empty rows (no EOS id known: nothing to place) are skipped by packing, which goes on.
    ds_config_init(&c);
    c.path = FIXTURES "/empty_rows.jsonl";
    c.max_len = 8;
    c.pack = true;
    c.eos_id = 999;   // not a token: no EOS text
    c.pad_id = 0;
    l = ds_open(&d, &c, tok);
    CHECK(l != NULL);
    if (!l) return;
    CHECK(ds_next_batch(l, 4, &b) == 1);
    CHECK(b.n_examples == 2 && b.lengths[0] == 8 && b.seq_id[4] == 1 && b.tokens[4] == 'e');
    CHECK(ds_next_batch(l, 4, &b) == 0);
    ds_batch_free(&b);
    ds_close(l);
}

// sft.jsonl shuffled with seed over epochs, packed into rows of max_len or not.
static DsConfig shuffled_sft(uint64_t seed, int epochs, bool pack, int max_len) {
    DsConfig c;
    ds_config_init(&c);
    c.path = FIXTURES "/sft.jsonl";
    c.shuffle = true;
    c.seed = seed;
    c.epochs = epochs;
    c.pack = pack;
    c.max_len = max_len;
    return c;
}

// First token of every example over all batches (unpacked, text rows distinguished by byte 1).
static int run_order(uint64_t seed, int epochs, int batch, int *out, int cap) {
    DsConfig c = shuffled_sft(seed, epochs, false, 0);
    DsLoader *l = ds_open(&d, &c, tok);
    if (!l) return -1;
    DsBatch b = {0};
    int n = 0, r;
    while ((r = ds_next_batch(l, batch, &b)) > 0)
        for (int i = 0; i < r && n < cap; i++) out[n++] = b.tokens[(size_t)i * b.T];
    ds_batch_free(&b);
    ds_close(l);
    return r < 0 ? -1 : n;
}

static void test_shuffle_resume(void) {
    int a[32], b2[32], c2[32];
    int na = run_order(7, 3, 2, a, 32), nb = run_order(7, 3, 3, b2, 32), nc = run_order(8, 3, 2, c2, 32);
    CHECK(na == 15 && nb == 15 && nc == 15);
    CHECK(memcmp(a, b2, sizeof(int) * 15) == 0);   // the batch size does not change the order
    CHECK(memcmp(a, c2, sizeof(int) * 15) != 0);   // another seed does
    int firsts[5] = {'W', 'C', 'S', 'S', 'E'};       // each epoch is a permutation of the rows
    for (int e = 0; e < 3; e++) {
        int count[256] = {0}, want[256] = {0};
        for (int i = 0; i < 5; i++) count[a[5 * e + i]]++, want[firsts[i]]++;
        CHECK(memcmp(count, want, sizeof count) == 0);
    }
    CHECK(memcmp(a, a + 5, sizeof(int) * 5) != 0 || memcmp(a + 5, a + 10, sizeof(int) * 5) != 0);

    // Resume: positions from one loader reproduce the rest of the stream in another, also packed.
    for (int pack = 0; pack < 2; pack++) {
        DsConfig c = shuffled_sft(3, 2, pack, pack ? 40 : 0);
        DsLoader *l1 = ds_open(&d, &c, tok), *l2 = ds_open(&d, &c, tok);
        CHECK(l1 && l2);
        if (!l1 || !l2) return;
        DsBatch b1 = {0}, bb = {0};
        CHECK(ds_next_batch(l1, 2, &b1) > 0);
        CHECK(ds_next_batch(l1, 2, &b1) > 0);
        int ep;
        size_t idx;
        ds_position(l1, &ep, &idx);
        CHECK(ds_seek(l2, ep, idx) == 0);
        int same = 1, r1, r2;
        do {
            r1 = ds_next_batch(l1, 2, &b1);
            r2 = ds_next_batch(l2, 2, &bb);
            same &= r1 == r2;
            if (r1 > 0 && r1 == r2)
                same &= b1.T == bb.T && !memcmp(b1.tokens, bb.tokens, sizeof(int32_t) * r1 * b1.T) &&
                        !memcmp(b1.targets, bb.targets, sizeof(int32_t) * r1 * b1.T);
        } while (r1 > 0 && r2 > 0);
        CHECK_MSG(same, "resume differs (pack=%d)", pack);
        ds_position(l1, &ep, &idx);
        CHECK(ep == 2 && idx == 0);
        CHECK(ds_seek(l2, 5, 0) != 0);
        ds_batch_free(&b1);
        ds_batch_free(&bb);
        ds_close(l1);
        ds_close(l2);
    }
}

// ds_count_batches equals the number of batches actually delivered, packed or not, shuffled, over
// several epochs, for several batch sizes.
static void test_count_batches(void) {
    for (int pack = 0; pack < 2; pack++)
        for (int batch = 1; batch <= 3; batch++) {
            DsConfig c = shuffled_sft(11, 3, pack, pack ? 36 : 0);
            DsLoader *l = ds_open(&d, &c, tok);
            CHECK(l != NULL);
            if (!l) return;
            int64_t want = ds_count_batches(l, batch);
            DsBatch b = {0};
            int64_t got = 0;
            while (ds_next_batch(l, batch, &b) > 0) got++;
            CHECK_MSG(want == got && got > 0, "pack %d batch %d: counted %lld, delivered %lld", pack, batch,
                      (long long)want, (long long)got);
            ds_batch_free(&b);
            ds_close(l);
        }
}

static void test_gsm8k(void) {
    FILE *f = fopen(TRLC_SHARED_DATA "/gsm8k/train.jsonl", "r");
    if (!f) {
        printf("skipping GSM8K: %s not present\n", TRLC_SHARED_DATA "/gsm8k/train.jsonl");
        return;
    }
    fclose(f);
    const char *files[2] = {TRLC_SHARED_DATA "/gsm8k/train.jsonl", TRLC_SHARED_DATA "/gsm8k/test.jsonl"};
    size_t want[2] = {7473, 1319};
    for (int k = 0; k < 2; k++) {
        DsConfig c;
        ds_config_init(&c);
        c.path = files[k];
        c.format = DS_PROMPT_ANSWER;
        DsLoader *l = ds_open(&d, &c, tok);
        CHECK(l != NULL);
        if (!l) continue;
        CHECK(ds_num_rows(l) == want[k] && ds_stats(l).skipped == 0);
        DsBatch b = {0};
        int r, numeric = 1;
        size_t n = 0;
        while ((r = ds_next_batch(l, 64, &b)) > 0) {
            for (int i = 0; i < r; i++) {
                const char *a = b.answers[i];
                if (!a || !*a) numeric = 0;
                for (const char *p = a ? a : ""; *p; p++)
                    if (!((*p >= '0' && *p <= '9') || *p == '-' || *p == '.')) numeric = 0;
                if (k == 0 && n == 0) CHECK(a && !strcmp(a, "72"));   // Natalia's clips
                n++;
            }
        }
        CHECK(r == 0 && n == want[k]);
        CHECK(numeric);
        printf("GSM8K %s: %zu rows, all final answers numeric\n", k ? "test" : "train", n);
        ds_batch_free(&b);
        ds_close(l);
    }
}

typedef struct Bad {
    const char *file;
    DsFormat fmt;
    const char *want;    // substring of the diagnostic: "file:line[:col]: error: ..."
    long skipped;        // with skip_errors: rows skipped, or -1 when the file must still fail
    size_t line_bytes;
} Bad;

static void test_bad_corpus(void) {
    static const Bad bad[] = {
        {"bad_json.jsonl", DS_PROMPT_RESPONSE, "bad_json.jsonl:3:29: error:", 1, 0},
        {"missing_field.jsonl", DS_PROMPT_RESPONSE, "missing_field.jsonl:2: error: missing field \"response\"", 1, 0},
        {"wrong_type.jsonl", DS_PROMPT_RESPONSE, "wrong_type.jsonl:3: error: field \"response\" must be a string, not an integer", 1, 0},
        {"not_object.jsonl", DS_PROMPT_RESPONSE, "not_object.jsonl:1: error: a row must be a JSON object, not an array", 1, 0},
        {"trailing.jsonl", DS_PROMPT_RESPONSE, "trailing.jsonl:2:", 1, 0},
        {"invalid_utf8.jsonl", DS_PROMPT_RESPONSE, "invalid_utf8.jsonl:2:", 1, 0},
        {"no_role.jsonl", DS_MESSAGES, "no_role.jsonl:2: error: messages[0].role is missing", 1, 0},
        {"bad_role.jsonl", DS_MESSAGES, "bad_role.jsonl:1: error: messages[0].role: unknown role \"narrator\"", -1, 0},
        {"null_content.jsonl", DS_MESSAGES, "null_content.jsonl:1: error: field \"messages\" has no assistant", -1, 0},
        {"pref_missing.jsonl", DS_PREFERENCE, "pref_missing.jsonl:1: error: missing field \"rejected\"", -1, 0},
        {"truncated.json", DS_PROMPT_RESPONSE, "truncated.json:3:", -1, 0},
        {"row_missing.json", DS_PROMPT_RESPONSE, "row_missing.json:5: error: missing field \"response\"", 1, 0},
        {"not_array.json", DS_PROMPT_RESPONSE, "not_array.json:1:1: error: expected a JSON array", -1, 0},
        {"unterminated.csv", DS_PROMPT_RESPONSE, "unterminated.csv:3: error: malformed CSV", -1, 0},
        {"fields.csv", DS_PROMPT_RESPONSE, "fields.csv:3: error: more fields than the 2 columns", 2, 0},
        {"dup_header.csv", DS_PROMPT_RESPONSE, "dup_header.csv:1: error: duplicate column \"prompt\"", -1, 0},
        {"empty.jsonl", DS_PROMPT_RESPONSE, "empty.jsonl: error: no rows", -1, 0},
        {"gsm_empty.jsonl", DS_PROMPT_ANSWER, "gsm_empty.jsonl:2: error: empty final answer", 1, 0},
        {"long_line.jsonl", DS_PROMPT_RESPONSE, "long_line.jsonl:2: error: line longer than 100 bytes", 1, 100},
        {"deep.jsonl", DS_PROMPT_RESPONSE, "deep.jsonl:2:", 1, 0},
        {"binary.jsonl", DS_TEXT, "binary.jsonl:1:", -1, 0},
        {"missing.jsonl", DS_TEXT, "missing.jsonl: error: cannot open", -1, 0},
        {"sft.txt", DS_TEXT, "unknown data file type", -1, 0},
    };
    int nb = (int)(sizeof bad / sizeof bad[0]), passed = 0;
    for (int i = 0; i < nb; i++) {
        char path[512];
        snprintf(path, sizeof path, "%s/bad/%s", FIXTURES, bad[i].file);
        for (int skip = 0; skip < 2; skip++) {
            DsConfig c;
            ds_config_init(&c);
            c.path = path;
            c.format = bad[i].fmt;
            c.skip_errors = skip;
            c.max_line_bytes = bad[i].line_bytes;
            diag_reset();
            DsLoader *l = ds_open(&d, &c, tok);
            const char *out = diag_output();
            if (!skip) {
                int ok = l == NULL && d.errors > 0 && strstr(out, bad[i].want) != NULL;
                CHECK_MSG(ok, "%s: want \"%s\", got: %s", bad[i].file, bad[i].want, out);
                passed += ok;
            } else if (bad[i].skipped < 0) {
                CHECK_MSG(l == NULL && d.errors > 0, "%s with skip: should still fail", bad[i].file);
            } else {
                CHECK_MSG(l != NULL && (long)ds_stats(l).skipped == bad[i].skipped && d.errors == 0 &&
                              strstr(out, "warning: ") && strstr(out, "(on_error = skip); the first, line "),
                          "%s with skip: %s", bad[i].file, out);
            }
            ds_close(l);
        }
    }
    printf("malformed files: %d of %d give the expected file:line error\n", passed, nb);

    // Not regular files: a directory and a device (which would never end) are refused.
    char dir[] = "/tmp/trlc_ds_XXXXXX";
    CHECK(mkdtemp(dir) != NULL);
    char sub[64], link_[64];
    snprintf(sub, sizeof sub, "%s/d.jsonl", dir);
    snprintf(link_, sizeof link_, "%s/zero.jsonl", dir);
    CHECK(mkdir(sub, 0700) == 0);
    CHECK(symlink("/dev/zero", link_) == 0);
    const char *odd[2] = {sub, link_};
    for (int i = 0; i < 2; i++) {
        DsConfig c;
        ds_config_init(&c);
        c.path = odd[i];
        c.skip_errors = true;
        diag_reset();
        DsLoader *l = ds_open(&d, &c, tok);
        CHECK_MSG(l == NULL && strstr(diag_output(), "not a regular file"), "%s: %s", odd[i], diag_output());
        ds_close(l);
    }
    unlink(link_);
    rmdir(sub);
    rmdir(dir);
}

int main(void) {
    tok = tok_new_bytes();
    CHECK(tok != NULL);
    diag_init(&d, stderr);
    d.out = NULL;   // diag_reset opens a memory stream
    diag_reset();
    test_prompt_response();
    test_alpaca_csv();
    test_messages_pref_text();
    test_truncate_pack();
    test_shuffle_resume();
    test_count_batches();
    test_gsm8k();
    test_bad_corpus();
    char *g = ds_gsm8k_answer("x\n#### -3,500.5 \n", 17);
    CHECK(g && !strcmp(g, "-3500.5"));
    free(g);
    CHECK(ds_gsm8k_answer("no marker", 9) == NULL);
    if (d.errors && test_failed) fprintf(stderr, "last diagnostics:\n%s\n", diag_output());
    fclose(d.out);
    d.out = NULL;
    free(diag_text);
    diag_free(&d);
    tok_free(tok);
    return test_done("data.dataset");
}
