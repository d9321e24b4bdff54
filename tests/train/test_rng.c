// test_rng.c — the generator against an independent Python transcription (fixtures/rng.txt from
// gen_rng_fixtures.py): raw streams (seeded, jumped), uniform floats, bounded integers, normals bit
// for bit, shuffles; save/restore of the state; the statistics of uniform and normal draws; the
// built-in log against libm.
#include "rng.h"
#include "test.h"
#include "train/fixture.h"
#include <inttypes.h>
#include <stdint.h>

static void run_fixtures(const char *path) {
    char *text = fx_read(path);
    CHECK(text != NULL);
    if (!text) return;
    char *cur = text, *line;
    int lines = 0;
    while ((line = fx_line(&cur))) {
        Rng r;
        unsigned long long seed;
        unsigned stream, n;
        int off;
        if (sscanf(line, "u64 %llu %u%n", &seed, &stream, &off) == 2) {
            rng_stream(&r, seed, stream);
            const char *p = line + off;
            for (int i = 0; i < 8; i++) {
                char *end;
                uint64_t want = strtoull(p, &end, 16);
                CHECK(end != p);
                uint64_t got = rng_u64(&r);
                CHECK_MSG(got == want, "seed %llu stream %u draw %d: %016" PRIx64 " vs %016" PRIx64,
                          seed, stream, i, got, want);
                p = end;
            }
            lines++;
        } else if (sscanf(line, "uniform %llu%n", &seed, &off) == 1) {
            double want[16];
            CHECK(fx_doubles(line + off, want, 16) == 16);
            rng_seed(&r, seed);
            for (int i = 0; i < 16; i++) CHECK(rng_uniform(&r) == (float)want[i]);
            lines++;
        } else if (sscanf(line, "below %llu %u%n", &seed, &n, &off) == 2) {
            double want[32];
            CHECK(fx_doubles(line + off, want, 32) == 32);
            rng_seed(&r, seed);
            for (int i = 0; i < 32; i++) CHECK(rng_below(&r, n) == (uint64_t)want[i]);
            lines++;
        } else if (sscanf(line, "normal %llu%n", &seed, &off) == 1) {
            double want[16];
            CHECK(fx_doubles(line + off, want, 16) == 16);   // strtod reads the hex floats
            rng_seed(&r, seed);
            int exact = 0;
            for (int i = 0; i < 16; i++) exact += rng_normal(&r) == want[i];
            CHECK_MSG(exact == 16, "%d of 16 normals bit-identical", exact);
            lines++;
        } else if (sscanf(line, "shuffle %llu %u%n", &seed, &n, &off) == 2 && n <= 64) {
            double want[64];
            CHECK(fx_doubles(line + off, want, 64) == (int)n);
            uint32_t idx[64];
            for (unsigned i = 0; i < n; i++) idx[i] = i;
            rng_seed(&r, seed);
            rng_shuffle_u32(&r, idx, n);
            int same = 1;
            for (unsigned i = 0; i < n; i++) same &= idx[i] == (uint32_t)want[i];
            CHECK(same);
            lines++;
        }
    }
    CHECK(lines == 9 + 4);
    free(text);
}

static void test_save_restore(void) {
    Rng a, b;
    rng_seed(&a, 42);
    for (int i = 0; i < 1000; i++) rng_u64(&a);
    Rng saved = a;   // the state is plain data: a checkpoint stores these four words
    uint64_t first[8];
    for (int i = 0; i < 8; i++) first[i] = rng_u64(&a);
    float f1 = rng_uniform(&a);
    double n1 = rng_normal(&a);
    b = saved;
    int same = 1;
    for (int i = 0; i < 8; i++) same &= rng_u64(&b) == first[i];
    CHECK(same);
    CHECK(rng_uniform(&b) == f1);
    CHECK(rng_normal(&b) == n1);
    // same seed, same stream; different seeds and streams differ
    Rng c, e, s1;
    rng_seed(&c, 7);
    rng_seed(&e, 7);
    CHECK(rng_u64(&c) == rng_u64(&e));
    rng_seed(&e, 8);
    CHECK(rng_u64(&c) != rng_u64(&e));
    rng_stream(&s1, 7, 1);
    rng_seed(&c, 7);
    CHECK(rng_u64(&c) != rng_u64(&s1));
}

static void test_statistics(void) {
    Rng r;
    rng_seed(&r, 2024);
    enum { N = 200000 };
    static float x[N];
    rng_normal_fill(&r, x, N, 0.0f, 1.0f);
    double mean = 0, var = 0, m4 = 0;
    for (int i = 0; i < N; i++) mean += x[i];
    mean /= N;
    for (int i = 0; i < N; i++) {
        double t = x[i] - mean;
        var += t * t;
        m4 += t * t * t * t;
    }
    var /= N;
    m4 /= N;
    printf("normal: mean %.4f var %.4f kurtosis %.3f over %d draws\n", mean, var, m4 / (var * var), N);
    CHECK(fabs(mean) < 0.01);
    CHECK(fabs(var - 1) < 0.02);
    CHECK(fabs(m4 / (var * var) - 3) < 0.1);
    rng_normal_fill(&r, x, 7, 2.0f, 0.5f);   // odd count uses rng_normal for the last one
    for (int i = 0; i < 7; i++) CHECK(x[i] > -1 && x[i] < 5);

    rng_uniform_fill(&r, x, N, -1.0f, 1.0f);
    double um = 0, lo = 1, hi = -1;
    for (int i = 0; i < N; i++) {
        um += x[i];
        if (x[i] < lo) lo = x[i];
        if (x[i] > hi) hi = x[i];
    }
    CHECK(fabs(um / N) < 0.01 && lo >= -1 && hi < 1);
    int in_range = 1;
    for (int i = 0; i < 10000; i++) {
        float u = rng_uniform(&r);
        double v = rng_uniform_f64(&r);
        in_range &= u >= 0 && u < 1 && v >= 0 && v < 1;
    }
    CHECK(in_range);
    // bounded integers: every value of a small range shows up about equally
    int count[7] = {0};
    for (int i = 0; i < 70000; i++) count[rng_below(&r, 7)]++;
    int fair = 1;
    for (int k = 0; k < 7; k++) fair &= count[k] > 9500 && count[k] < 10500;
    CHECK(fair);
    CHECK(rng_below(&r, 0) == 0 && rng_below(&r, 1) == 0);
    // a shuffle is a permutation
    enum { M = 1000 };
    static int64_t idx[M];
    for (int i = 0; i < M; i++) idx[i] = i;
    rng_shuffle_i64(&r, idx, M);
    static char seen[M];
    int perm = 1, moved = 0;
    for (int i = 0; i < M; i++) {
        perm &= idx[i] >= 0 && idx[i] < M && !seen[idx[i]];
        if (idx[i] >= 0 && idx[i] < M) seen[idx[i]] = 1;
        moved += idx[i] != i;
    }
    CHECK(perm && moved > M / 2);
    rng_shuffle_i64(&r, idx, 0);   // empty and single are fine
    rng_shuffle_i64(&r, idx, 1);
}

static void test_log(void) {
    double max_ulp = 0;
    double xs[] = {1e-300, 1e-20, 0.001, 0.1, 0.5, 0.70710678, 0.9999999, 1.0, 1.0000001, 1.5, 2.0,
                   3.14159, 10, 1e10, 1e300, 4.9e-324};
    for (size_t i = 0; i < sizeof xs / sizeof xs[0]; i++) {
        double a = rng_log(xs[i]), b = log(xs[i]);
        double ulp = b == 0 ? fabs(a) / 4.9e-324 : fabs(a - b) / (nextafter(fabs(b), INFINITY) - fabs(b));
        if (ulp > max_ulp) max_ulp = ulp;
    }
    Rng r;
    rng_seed(&r, 3);
    for (int i = 0; i < 100000; i++) {
        double x = rng_uniform_f64(&r);
        if (x == 0) continue;
        double a = rng_log(x), b = log(x);
        double ulp = b == 0 ? 0 : fabs(a - b) / (nextafter(fabs(b), INFINITY) - fabs(b));
        if (ulp > max_ulp) max_ulp = ulp;
    }
    printf("rng_log: max %.2f ulp from libm\n", max_ulp);
    CHECK(max_ulp <= 8);
    CHECK(rng_log(0) == -INFINITY && isnan(rng_log(-1)) && rng_log(INFINITY) == INFINITY);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_rng fixtures/rng.txt\n");
        return 2;
    }
    run_fixtures(argv[1]);
    test_save_restore();
    test_statistics();
    test_log();
    return test_done("train.rng");
}
