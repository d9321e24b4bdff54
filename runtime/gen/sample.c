// sample.c — picking the next token from logits (gen.h): greedy argmax, or a draw from the
// softmax of the logits after transformers' warpers in their order (temperature → top-k → top-p),
// with the project's seeded generator (runtime/train/rng.h).
// Not here: repetition penalties, min-p, beam search.
#include "gen.h"
#include <math.h>
#include <stdlib.h>

int32_t gen_argmax(const float *logits, int64_t V) {
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (logits[i] > logits[best] || (isnan(logits[i]) && !isnan(logits[best]))) best = i;
    return (int32_t)best;
}

typedef struct Ix {
    float v;
    int64_t i;
} Ix;

// ascending by value, ties by index (a stable order)
static int cmp_asc(const void *a, const void *b) {
    const Ix *x = a, *y = b;
    if (x->v < y->v) return -1;
    if (x->v > y->v) return 1;
    return x->i < y->i ? -1 : x->i > y->i;
}

void gen_warp(float *logits, int64_t V, double temperature, int top_k, double top_p) {
    if (V <= 0) return;
    if (temperature > 0 && temperature != 1.0)
        for (int64_t i = 0; i < V; i++) logits[i] = (float)(logits[i] / temperature);
    bool need_k = top_k > 0 && top_k < V, need_p = top_p < 1.0;
    if (!need_k && !need_p) return;
    Ix *s = malloc((size_t)V * sizeof *s);
    if (!s) return;   // no memory: the logits stay unfiltered
    for (int64_t i = 0; i < V; i++) s[i] = (Ix){logits[i], i};
    qsort(s, (size_t)V, sizeof *s, cmp_asc);
    if (need_k) {   // TopKLogitsWarper: remove everything below the k-th largest value
        float kth = s[V - top_k].v;
        for (int64_t i = 0; i < V; i++)
            if (logits[i] < kth) logits[i] = -INFINITY;
        for (int64_t i = 0; i < V; i++)
            if (s[i].v < kth) s[i].v = -INFINITY;
    }
    if (need_p) {   // TopPLogitsWarper: ascending cumulative softmax mass <= 1 - p is removed
        double mx = s[V - 1].v, z = 0;
        for (int64_t i = 0; i < V; i++) z += isinf(s[i].v) ? 0 : exp((double)s[i].v - mx);
        double cum = 0;
        for (int64_t i = 0; i < V - 1; i++) {   // the largest is always kept
            cum += (isinf(s[i].v) ? 0 : exp((double)s[i].v - mx)) / z;
            if ((float)cum <= (float)(1.0 - top_p)) logits[s[i].i] = -INFINITY;
        }
    }
    free(s);
}

int32_t gen_pick(float *logits, int64_t V, const GenOptions *o, Rng *rng) {
    if (!o->sample) return gen_argmax(logits, V);
    gen_warp(logits, V, o->temperature, o->top_k, o->top_p);
    int32_t best = gen_argmax(logits, V);
    double mx = logits[best], z = 0;
    for (int64_t i = 0; i < V; i++) z += isinf(logits[i]) ? 0 : exp((double)logits[i] - mx);
    if (!(z > 0) || !isfinite(z)) return best;
    double u = rng_uniform_f64(rng) * z, cum = 0;
    for (int64_t i = 0; i < V; i++) {
        if (isinf(logits[i])) continue;
        cum += exp((double)logits[i] - mx);
        if (u < cum) return (int32_t)i;
    }
    return best;
}
