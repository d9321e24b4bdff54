// bench_data.c — data-loading throughput: ds_open (streamed index + every row parsed and checked),
// then every batch (JSON re-read, chat render, tokenization, masks, padding). Prints rows/s, MB/s
// and the peak resident set size, which must stay small for a streamed JSONL of any size.
// usage: bench_data FILE.jsonl TOKENIZER.json [TEMPLATE=chatml] [BATCH=32] [MAX_LEN=1024]
#include "dataset.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}
// CPU seconds of this process (the machine may be shared: wall time alone can mislead).
static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}
static double peak_rss_mb(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss / 1024.0;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: bench_data FILE.jsonl TOKENIZER.json [TEMPLATE] [BATCH] [MAX_LEN]\n");
        return 2;
    }
    Diag d;
    diag_init(&d, stderr);
    struct stat st;
    if (stat(argv[1], &st) != 0) {
        perror(argv[1]);
        return 1;
    }
    double mb = st.st_size / 1e6;
    double t0 = now();
    Tokenizer *tok = tok_load(&d, argv[2]);
    if (!tok) return 1;
    double rss_tok = peak_rss_mb();
    ChatTemplate t;
    if (chat_named(&d, argc > 3 ? argv[3] : "chatml", &t)) return 1;
    DsConfig c;
    ds_config_init(&c);
    c.path = argv[1];
    c.tmpl = &t;
    c.max_len = argc > 5 ? atoi(argv[5]) : 1024;
    int batch = argc > 4 ? atoi(argv[4]) : 32;
    double t1 = now(), c1 = cpu_s();
    DsLoader *l = ds_open(&d, &c, tok);
    if (!l) return 1;
    double t2 = now(), c2 = cpu_s();
    size_t rows = ds_num_rows(l);
    printf("open (index + check): %zu rows, %.1f MB in %.2f s (%.2f CPU s): %.0f rows/s, %.1f MB/s per CPU s; "
           "peak RSS %.1f MB\n", rows, mb, t2 - t1, c2 - c1, rows / (c2 - c1), mb / (c2 - c1), peak_rss_mb());
    DsBatch b = {0};
    int r;
    long targets = 0;
    while ((r = ds_next_batch(l, batch, &b)) > 0) targets += b.n_targets;
    double t3 = now(), c3 = cpu_s();
    if (r < 0) return 1;
    DsStats s = ds_stats(l);
    printf("batches (read + render + tokenize): %zu rows, %zu tokens (%ld targets, %zu truncated) in %.2f s "
           "(%.2f CPU s): %.0f rows/s, %.1f MB/s, %.2f M tokens/s per CPU s\n", rows, s.tokens, targets,
           s.truncated, t3 - t2, c3 - c2, rows / (c3 - c2), mb / (c3 - c2), s.tokens / (c3 - c2) / 1e6);
    printf("total %.2f s (%.1f MB/s end to end); peak RSS %.1f MB (tokenizer alone %.1f MB)\n", t3 - t0,
           mb / (t3 - t0), peak_rss_mb(), rss_tok);
    ds_batch_free(&b);
    ds_close(l);
    chat_free(&t);
    tok_free(tok);
    diag_free(&d);
    return 0;
}
