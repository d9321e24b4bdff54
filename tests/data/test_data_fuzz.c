// test_data_fuzz.c — hostile data never crashes trlc: the good fixture files are mutated at random
// (byte flips, inserted quotes/brackets/newlines/NULs, truncation), opened in every format and
// template, and read to the end. Each open must either succeed or fail with at least one
// diagnostic; reads must end with 0 or -1 and a diagnostic. Seeded, so failures reproduce.
#include "dataset.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef FIXTURES
#define FIXTURES "tests/data/fixtures"
#endif

static uint64_t rng = 0x1234567;
static uint32_t rnd(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static char *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = malloc(1 << 16);
    *n = buf ? fread(buf, 1, 1 << 16, f) : 0;
    fclose(f);
    return buf;
}

int main(void) {
    const char *files[] = {"sft.jsonl", "alpaca.json", "messages.json", "pref.jsonl", "text.jsonl", "sft.csv", "gsm.jsonl"};
    const char *ext[] = {".jsonl", ".json", ".json", ".jsonl", ".jsonl", ".csv", ".jsonl"};
    static const char inserts[] = "\"{}[],:\\\n\r\t\0\xff\xc3#";
    Tokenizer *tok = tok_new_bytes();
    FILE *quiet = fopen("/dev/null", "w");
    Diag d;
    diag_init(&d, quiet);
    enum { NTPL = 5 };
    ChatTemplate tpl[NTPL];
    CHECK(chat_named(&d, "plain", &tpl[0]) == 0 && chat_named(&d, "qwen3", &tpl[1]) == 0);
    CHECK(chat_format(&d, "U: {prompt}\nA: {response}", &tpl[2]) == 0);
    CHECK(chat_named(&d, "llama3.1", &tpl[3]) == 0 && chat_named(&d, "qwen2.5", &tpl[4]) == 0);
    int opened = 0, refused = 0, silent_fail = 0, bad_read = 0;
    char tmp[64];
    snprintf(tmp, sizeof tmp, "/tmp/trlc_fuzz_%ld", (long)getpid());
    for (int fi = 0; fi < 7; fi++) {
        char path[512];
        snprintf(path, sizeof path, "%s/%s", FIXTURES, files[fi]);
        size_t n;
        char *orig = slurp(path, &n);
        CHECK(orig != NULL);
        if (!orig) continue;
        for (int it = 0; it < 60; it++) {
            char buf[1 << 16];
            size_t m = n;
            memcpy(buf, orig, n);
            int muts = 1 + (int)(rnd() % 4);
            for (int k = 0; k < muts && m > 0; k++) {
                size_t at = rnd() % m;
                switch (rnd() % 4) {
                case 0: buf[at] = (char)rnd(); break;
                case 1: buf[at] = inserts[rnd() % (sizeof inserts - 1)]; break;
                case 2:
                    if (m + 1 < sizeof buf) {
                        memmove(buf + at + 1, buf + at, m - at);
                        buf[at] = inserts[rnd() % (sizeof inserts - 1)];
                        m++;
                    }
                    break;
                default: m = at; break;   // truncate
                }
            }
            char file[128];
            snprintf(file, sizeof file, "%s%s", tmp, ext[fi]);
            FILE *f = fopen(file, "wb");
            if (!f) continue;
            fwrite(buf, 1, m, f);
            fclose(f);
            for (int fmt = 0; fmt < 5; fmt++) {
                DsConfig c;
                ds_config_init(&c);
                c.path = file;
                c.format = (DsFormat)fmt;
                c.tmpl = &tpl[rnd() % NTPL];
                c.skip_errors = rnd() % 2;
                c.max_len = (int)(rnd() % 3) * 16;
                c.pack = c.max_len > 0 && fmt <= DS_MESSAGES && rnd() % 2;
                c.shuffle = rnd() % 2;
                d.errors = 0;
                DsLoader *l = ds_open(&d, &c, tok);
                if (!l) {
                    refused++;
                    if (d.errors == 0) fprintf(stderr, "silent: %s fmt %d skip %d\n", files[fi], fmt, c.skip_errors);
                    silent_fail += d.errors == 0;
                    continue;
                }
                opened++;
                DsBatch b = {0};
                int r;
                while ((r = ds_next_batch(l, 3, &b)) > 0) {}
                bad_read += r < 0 && d.errors == 0;
                ds_batch_free(&b);
                ds_close(l);
            }
            unlink(file);
        }
        free(orig);
    }
    printf("mutated opens: %d succeeded, %d refused with a diagnostic\n", opened, refused);
    CHECK(silent_fail == 0);
    CHECK(bad_read == 0);
    CHECK(opened > 0 && refused > 0);
    for (int i = 0; i < NTPL; i++) chat_free(&tpl[i]);
    diag_free(&d);
    fclose(quiet);
    tok_free(tok);
    return test_done("data.fuzz");
}
