// bench_tok.c — single-thread encode throughput of trlc's tokenizer over a file of JSON strings (one
// per line); writes the ids (one line per text) so bench.py can check them against `tokenizers`.
// usage: bench_tok TOKENIZER.json TEXTS.jsonl IDS_OUT [REPEATS]
#include "diag.h"
#include "tokenizer.h"
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(int argc, char **argv) {
    if (argc < 4) {
        fprintf(stderr, "usage: bench_tok TOKENIZER.json TEXTS.jsonl IDS_OUT [REPEATS]\n");
        return 2;
    }
    int repeats = argc > 4 ? atoi(argv[4]) : 3;
    Diag d;
    diag_init(&d, stderr);
    double t0 = now();
    Tokenizer *t = tok_load(&d, argv[1]);
    if (!t) return 1;
    double tload = now() - t0;
    FILE *f = fopen(argv[2], "r");
    if (!f) return 1;
    char **texts = NULL, *line = NULL;
    size_t *lens = NULL, n = 0, cap = 0, bytes = 0;
    ssize_t k;
    while ((k = getline(&line, &cap, f)) >= 0) {
        json_t *v = json_loads(line, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
        if (!json_is_string(v)) return 1;
        texts = realloc(texts, (n + 1) * sizeof *texts);
        lens = realloc(lens, (n + 1) * sizeof *lens);
        lens[n] = json_string_length(v);
        texts[n] = malloc(lens[n] + 1);
        memcpy(texts[n], json_string_value(v), lens[n] + 1);
        bytes += lens[n++];
        json_decref(v);
    }
    fclose(f);
    TokIds ids = {0};
    double best = 1e30;
    size_t nids = 0;
    for (int r = 0; r < repeats; r++) {
        nids = 0;
        double a = now();
        for (size_t i = 0; i < n; i++) {
            ids.n = 0;
            tok_encode(t, texts[i], lens[i], false, &ids);
            nids += ids.n;
        }
        double s = now() - a;
        if (s < best) best = s;
    }
    FILE *o = fopen(argv[3], "w");
    for (size_t i = 0; i < n; i++) {
        ids.n = 0;
        tok_encode(t, texts[i], lens[i], false, &ids);
        for (size_t j = 0; j < ids.n; j++) fprintf(o, j ? " %d" : "%d", ids.v[j]);
        fputc('\n', o);
        free(texts[i]);
    }
    fclose(o);
    printf("trlc: %zu texts, %.2f MB, %zu ids, load %.2f s, encode %.3f s = %.2f MB/s\n", n, bytes / 1e6, nids, tload,
           best, bytes / 1e6 / best);
    free(texts);
    free(lens);
    free(line);
    tok_ids_free(&ids);
    tok_free(t);
    diag_free(&d);
    return 0;
}
