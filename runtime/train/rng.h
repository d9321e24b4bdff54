// rng.h — the trainer's random numbers: xoshiro256** seeded through splitmix64, with a state that
// is four 64-bit words (saved in checkpoints and restored bit for bit), uniform and normal floats,
// bounded integers without modulo bias, a Fisher-Yates shuffle and independent streams (jump).
// Deterministic across platforms: only integer arithmetic and IEEE basic operations (+ - * / sqrt)
// are used — the normal sampler carries its own logarithm instead of calling libm's log.
// Does not: provide cryptographic randomness, or match torch's Philox/MT19937 streams.
#ifndef TRLC_RNG_H
#define TRLC_RNG_H
#include <stddef.h>
#include <stdint.h>

typedef struct Rng {
    uint64_t s[4];   // xoshiro256** state; never all zero
} Rng;

// Seeds the four words from splitmix64(seed). Any seed (0 included) gives a valid state.
void rng_seed(Rng *r, uint64_t seed);
// A generator for stream `stream` of `seed`: seeded with seed, then jumped `stream` times
// (2^128 draws apart each), so per-worker / per-purpose streams never overlap.
void rng_stream(Rng *r, uint64_t seed, uint32_t stream);
// Advances the state by 2^128 draws.
void rng_jump(Rng *r);

uint64_t rng_u64(Rng *r);
// Uniform integer in [0, n); n == 0 returns 0. Unbiased (rejection).
uint64_t rng_below(Rng *r, uint64_t n);
// Uniform in [0, 1): 24 random bits for float, 53 for double.
float rng_uniform(Rng *r);
double rng_uniform_f64(Rng *r);
// Standard normal (Marsaglia polar method). rng_normal discards the pair's second value;
// rng_normal_fill uses both.
double rng_normal(Rng *r);
void rng_normal_fill(Rng *r, float *out /* (n) */, size_t n, float mean, float std);
void rng_uniform_fill(Rng *r, float *out /* (n) */, size_t n, float lo, float hi);
// Fisher-Yates shuffle of idx (n entries) in place.
void rng_shuffle_u32(Rng *r, uint32_t *idx /* (n) */, size_t n);
void rng_shuffle_i64(Rng *r, int64_t *idx /* (n) */, size_t n);

// Natural logarithm of x > 0 from IEEE basic operations only (within a few ulp of libm); exposed for tests.
double rng_log(double x);

#endif
