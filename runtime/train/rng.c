// rng.c — xoshiro256** (Blackman & Vigna) with splitmix64 seeding, uniform/normal floats, bounded
// integers and Fisher-Yates shuffles. See rng.h. Does not: call libm's log (its own log keeps the
// normal sampler bit-identical across platforms and C libraries; sqrt is correctly rounded by IEEE).
#include "rng.h"
#include <math.h>

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rng_seed(Rng *r, uint64_t seed) {
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    if (!(r->s[0] | r->s[1] | r->s[2] | r->s[3])) r->s[0] = 1;   // cannot happen; keep it valid
}

uint64_t rng_u64(Rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

void rng_jump(Rng *r) {
    static const uint64_t JUMP[4] = {0x180ec6d33cfd0abaull, 0xd5a61266f0c9392cull,
                                     0xa9582618e03fc9aaull, 0x39abdc4529b1661cull};
    uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int i = 0; i < 4; i++)
        for (int b = 0; b < 64; b++) {
            if (JUMP[i] & (1ull << b)) {
                s0 ^= r->s[0];
                s1 ^= r->s[1];
                s2 ^= r->s[2];
                s3 ^= r->s[3];
            }
            rng_u64(r);
        }
    r->s[0] = s0;
    r->s[1] = s1;
    r->s[2] = s2;
    r->s[3] = s3;
}

void rng_stream(Rng *r, uint64_t seed, uint32_t stream) {
    rng_seed(r, seed);
    for (uint32_t i = 0; i < stream; i++) rng_jump(r);
}

uint64_t rng_below(Rng *r, uint64_t n) {
    if (n == 0) return 0;
    uint64_t threshold = (0 - n) % n;   // 2^64 mod n: values below it would bias the result
    for (;;) {
        uint64_t x = rng_u64(r);
        if (x >= threshold) return x % n;
    }
}

float rng_uniform(Rng *r) { return (float)(rng_u64(r) >> 40) * (1.0f / 16777216.0f); }

double rng_uniform_f64(Rng *r) { return (double)(rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

// Splits x = m * 2^e with m in [sqrt(1/2), sqrt(2)) by exact scaling, then
// log(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.1716: the odd series to s^25 is below 1e-20.
double rng_log(double x) {
    if (!(x > 0)) return x == 0 ? -INFINITY : NAN;
    if (x > 1.7976931348623157e308) return x;   // +inf
    int e = 0;
    while (x < 1.0 / 1024) { x *= 1024; e -= 10; }   // exact power-of-two scaling
    while (x >= 1024) { x /= 1024; e += 10; }
    while (x < 0.70710678118654752) { x *= 2; e -= 1; }
    while (x >= 1.4142135623730950) { x /= 2; e += 1; }
    double s = (x - 1) / (x + 1), s2 = s * s, term = s, sum = 0;
    for (int k = 1; k <= 25; k += 2) {
        sum += term / k;
        term *= s2;
    }
    // ln 2 split into a high part with trailing zero bits (e * LN2_HI is exact) and the rest
    const double LN2_HI = 6.93147180369123816490e-01, LN2_LO = 1.90821492927058770002e-10;
    return (e * LN2_HI + 2 * sum) + e * LN2_LO;
}

// Two independent standard normals from one accepted point in the unit disc.
static void normal_pair(Rng *r, double *a, double *b) {
    double u, v, q;
    do {
        u = 2 * rng_uniform_f64(r) - 1;
        v = 2 * rng_uniform_f64(r) - 1;
        q = u * u + v * v;
    } while (q >= 1 || q == 0);
    double f = sqrt(-2 * rng_log(q) / q);
    *a = u * f;
    *b = v * f;
}

double rng_normal(Rng *r) {
    double a, b;
    normal_pair(r, &a, &b);
    return a;
}

void rng_normal_fill(Rng *r, float *out, size_t n, float mean, float std) {
    size_t i = 0;
    for (; i + 1 < n; i += 2) {
        double a, b;
        normal_pair(r, &a, &b);
        out[i] = (float)(mean + std * a);
        out[i + 1] = (float)(mean + std * b);
    }
    if (i < n) out[i] = (float)(mean + std * rng_normal(r));
}

void rng_uniform_fill(Rng *r, float *out, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) out[i] = lo + (hi - lo) * rng_uniform(r);
}

void rng_shuffle_u32(Rng *r, uint32_t *idx, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        uint32_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}

void rng_shuffle_i64(Rng *r, int64_t *idx, size_t n) {
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)rng_below(r, i);
        int64_t t = idx[i - 1];
        idx[i - 1] = idx[j];
        idx[j] = t;
    }
}
