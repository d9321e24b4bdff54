// fuzz_dataset.c — a dataset file → ds_open, every row through ds_get, all batches (two epochs).
// Input byte 0: file type (jsonl / json / csv) and format (text, prompt_response, messages,
// preference, prompt_answer); byte 1: flags (pack, mask_prompt, skip_errors, truncate left,
// shuffle, chatml template, Qwen2 tokenizer instead of bytes, a 4 KiB row limit); byte 2: max_len; the
// rest is the file. Oracles: ids inside the vocabulary, each target the next token of its own
// sequence, positions restarting per packed sequence, padding without targets, no example longer
// than the row limit allows (bytes tokenizer, no template or max_len), the number of batches equal
// to ds_count_batches, ds_seek back to the start replays the same first batch.
// Not fuzzed here: column-name overrides (DsFields), files over the size limits (tests/data).
#include "chat.h"
#include "dataset.h"
#include "diag.h"
#include "fuzz_util.h"
#include "tokenizer.h"
#include <stdlib.h>
#include <string.h>

#ifndef FUZZ_SOURCE_DIR
#define FUZZ_SOURCE_DIR "."
#endif

static Tokenizer *g_bytes, *g_qwen;
static ChatTemplate g_chatml;

static void load_all(void) {
    static int loaded;
    if (loaded) return;
    loaded = 1;
    Diag d;
    diag_init(&d, fuzz_out());
    g_bytes = tok_new_bytes();
    g_qwen = tok_load(&d, FUZZ_SOURCE_DIR "/../tokenizer/qwen2_tokenizer.json");
    FUZZ_ASSERT(g_bytes && g_qwen && chat_named(&d, "chatml", &g_chatml) == 0);
    diag_free(&d);
}

// The layout dataset.h promises: a target is the next token of the same sequence; positions
// restart at 0 with each packed sequence; padding has seq_id -1, position 0, no target.
static void check_batch(const DsBatch *b, int rows, int32_t vocab) {
    FUZZ_ASSERT(b->B == rows && b->T >= 0);
    long targets = 0;
    for (int r = 0; r < b->B; r++) {
        int len = b->lengths[r];
        FUZZ_ASSERT(len >= 0 && len <= b->T);
        const int32_t *tok = b->tokens + (size_t)r * b->T, *tgt = b->targets + (size_t)r * b->T;
        const int32_t *pos = b->positions + (size_t)r * b->T, *sid = b->seq_id + (size_t)r * b->T;
        for (int c = 0; c < b->T; c++) {
            FUZZ_ASSERT(tok[c] >= 0 && tok[c] < vocab);
            if (c >= len) {
                FUZZ_ASSERT(sid[c] == -1 && pos[c] == 0 && tgt[c] == DS_IGNORE);
                continue;
            }
            FUZZ_ASSERT(sid[c] >= 0);
            FUZZ_ASSERT(pos[c] == ((c == 0 || sid[c] != sid[c - 1]) ? 0 : pos[c - 1] + 1));
            if (tgt[c] == DS_IGNORE) continue;
            targets++;
            FUZZ_ASSERT(tgt[c] >= 0 && tgt[c] < vocab);
            FUZZ_ASSERT(c + 1 < len && sid[c + 1] == sid[c] && tok[c + 1] == tgt[c]);
        }
    }
    FUZZ_ASSERT(targets == b->n_targets);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    load_all();
    if (size < 3) return 0;
    static const char *ext[] = {"jsonl", "json", "csv"};
    int type = data[0] % 3;
    char name[32], path[1024];
    snprintf(name, sizeof name, "data.%s", ext[type]);
    FUZZ_ASSERT(fuzz_write(name, data + 3, size - 3, path, sizeof path) == 0);
    DsConfig cfg;
    ds_config_init(&cfg);
    cfg.path = path;
    cfg.format = (DsFormat)((data[0] / 3) % 5);
    uint8_t fl = data[1];
    cfg.pack = fl & 1;
    cfg.mask_prompt = fl & 2;
    cfg.skip_errors = fl & 4;
    cfg.truncate = (fl & 8) ? DS_TRUNC_LEFT : DS_TRUNC_RIGHT;
    cfg.shuffle = fl & 16;
    cfg.tmpl = (fl & 32) ? &g_chatml : NULL;
    if (fl & 128) cfg.max_line_bytes = 4096;
    cfg.epochs = 2;
    cfg.seed = data[2];
    cfg.max_len = data[2] % 64;
    if (cfg.pack && cfg.max_len == 0) cfg.max_len = 16;
    const Tokenizer *tok = (fl & 64) ? g_qwen : g_bytes;
    int32_t vocab = tok_vocab_size(tok);
    Diag d;
    diag_init(&d, fuzz_out());
    DsLoader *l = ds_open(&d, &cfg, tok);
    if (!l) {
        FUZZ_ASSERT(d.errors > 0);
    } else {
        size_t n = ds_num_rows(l);
        FUZZ_ASSERT(n > 0);
        for (size_t i = 0; i < n && i < 64; i++) {
            DsExample ex = {0};
            if (ds_get(l, i, &ex) == 0) {
                for (size_t k = 0; k < ex.n; k++) FUZZ_ASSERT(ex.ids[k] >= 0 && ex.ids[k] < vocab);
                if (cfg.max_len > 0) FUZZ_ASSERT(ex.n <= (size_t)cfg.max_len);
                // bytes tokenizer, plain concatenation: a token per byte of the row, + BOS and EOS
                if ((fl & 128) && tok == g_bytes && !cfg.tmpl && cfg.max_len == 0) FUZZ_ASSERT(ex.n <= 4096 + 2);
            }
            ds_example_free(&ex);
        }
        int batch = 1 + data[2] % 4;
        int64_t want = ds_count_batches(l, batch);
        DsBatch b = {0}, first = {0};
        int64_t got = 0;
        int rows;
        int32_t first_tok = -1;
        while ((rows = ds_next_batch(l, batch, &b)) > 0 && got < 100000) {
            check_batch(&b, rows, vocab);
            if (got == 0 && b.B * b.T > 0) first_tok = b.tokens[0];
            got++;
        }
        if (rows == 0 && want >= 0) FUZZ_ASSERT(got == want);
        if (ds_seek(l, 0, 0) == 0 && (rows = ds_next_batch(l, batch, &first)) > 0 && first_tok >= 0)
            FUZZ_ASSERT(first.tokens[0] == first_tok);
        FUZZ_ASSERT(ds_seek(l, 5, 0) != 0);
        ds_batch_free(&b);
        ds_batch_free(&first);
        ds_close(l);
    }
    diag_free(&d);
    return 0;
}
