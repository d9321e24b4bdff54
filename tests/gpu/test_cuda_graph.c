// test_cuda_graph.c — the executor's CUDA graphs (runtime/cuda/exec.c, cuda_run): a program with
// graphs on (captured after each shape's warm-up run, replayed after) against one with them off
// ($TRLC_CUDA_GRAPHS=0), both fed the same params and batches: every output must be equal bit for
// bit, run after run, over two interleaved shapes and a dropout step that changes every run
// (node-parameter updates), a shape whose buffer layout changed under it (a larger step
// reallocated the arena: captured again), more shapes than the cache keeps (the least recently
// used one warms up and is captured again), an out-of-range token id in a replayed step (the
// flags are reset outside the graph), and a capture the driver refuses (a warning, then step by
// step). cuda_graph_launches counts the replays exactly.
// Bit for bit on the emulator (deterministic: one block at a time, block orders per kernel); on a
// GPU, where atomics (embedding and gather backward) add in any order, to 1e-5 normwise per output.
// Without a device it exits 77 (skipped); CI runs it on the CUDA emulator (tests/gpu/emu).
#include "exec.h"
#include "gpu_test_util.h"
#include "load.h"
#include "lower.h"
#include "memplan_spec.h"
#include "test.h"
#include <stdlib.h>
#include <math.h>
#include <string.h>

static uint64_t rng = 11;   // gpu_test_frand's state: params, then each batch from its seed

static int specs_with_dropout;
static bool exact;   // the emulator: outputs equal bit for bit   // the step-update path must be exercised by some spec

typedef struct Pair {
    const char *path;
    const IrGraph *g;
    CudaProgram *on, *off;
    void **in;          // per node: the bound input (current batch)
    int64_t V;
    int runs;
} Pair;

// Fresh random inputs for (B, T) from seed, bound to both programs.
static void bind_batch(Pair *P, int64_t B, int64_t T, uint64_t seed) {
    const IrGraph *g = P->g;
    int64_t sym[IR_NSYMS] = {B, T};
    rng = seed;
    gpu_test_random_batch(g, P->in, B, T, P->V, &rng);
    for (int i = 0; i < g->n; i++) {
        if (g->nodes[i].op != IR_INPUT) continue;
        size_t nb = (size_t)ir_shape_numel(&g->nodes[i].shape, sym) * 4;
        CHECK(cuda_bind(P->on, i, P->in[i], nb) == 0 && cuda_bind(P->off, i, P->in[i], nb) == 0);
    }
}

// Runs both programs; checks every output bit for bit. *loss: the loss (output 0) of the run.
static bool run_both(Pair *P, int64_t B, int64_t T, uint64_t step, float *loss) {
    const IrGraph *g = P->g;
    int64_t sym[IR_NSYMS] = {B, T};
    int rc_on = cuda_run(P->on, sym, step), rc_off = cuda_run(P->off, sym, step);
    CHECK_MSG(rc_on == 0 && rc_off == 0, "%s: run %d (B=%lld T=%lld step %llu)", P->path, P->runs, (long long)B,
              (long long)T, (unsigned long long)step);
    P->runs++;
    if (rc_on != 0 || rc_off != 0) return false;
    int differ = 0;
    for (int o = 0; o < g->nouts; o++) {
        const CpuTensor *a = cuda_output(P->on, o), *b = cuda_output(P->off, o);
        bool same = a && b && a->numel == b->numel && a->dtype == b->dtype &&
                    !memcmp(a->data, b->data, (size_t)a->numel * (a->dtype == IR_U8 ? 1 : 4));
        if (!same && !exact && a && b && a->numel == b->numel && a->dtype == IR_F32 && b->dtype == IR_F32) {
            double m = 0, scale = 0;   // normwise: max |a - b| / max |b|
            for (int64_t k = 0; k < a->numel; k++) {
                double x = ((const float *)a->data)[k], y = ((const float *)b->data)[k];
                m = fabs(x - y) > m ? fabs(x - y) : m, scale = fabs(y) > scale ? fabs(y) : scale;
            }
            same = m <= 1e-5 * scale;
        }
        if (!same && differ++ < 3)
            fprintf(stderr, "%s: B=%lld T=%lld step %llu: output %s differs with graphs on\n", P->path, (long long)B,
                    (long long)T, (unsigned long long)step, g->outs[o].name);
        if (o == 0 && a && loss) *loss = ((const float *)a->data)[0];
    }
    CHECK_MSG(differ == 0, "%s: %d outputs differ with graphs on (B=%lld T=%lld step %llu)", P->path, differ,
              (long long)B, (long long)T, (unsigned long long)step);
    CHECK(cuda_launch_count(P->on) == cuda_launch_count(P->off));
    return differ == 0;
}

static void graph_spec(RtCudaDevice *dev, RtCudaCache *cache, const char *path) {
    GpuTestSpec S;
    if (gpu_test_spec_open(&S, path) != 0) {
        CHECK_MSG(0, "%s does not compile", path);
        return;
    }
    Pair P = {path, &S.g, NULL, NULL, calloc((size_t)S.g.n, sizeof(void *)), gpu_test_vocab(&S.g), 0};
    setenv("TRLC_CUDA_GRAPHS", "0", 1);
    P.off = cuda_program_new(&S.g, dev, cache, &S.d);
    unsetenv("TRLC_CUDA_GRAPHS");
    P.on = cuda_program_new(&S.g, dev, cache, &S.d);
    CHECK_MSG(P.on && P.off, "%s: programs", path);
    if (!P.on || !P.off) return;
    CHECK(cuda_graphs_enabled(P.on) && !cuda_graphs_enabled(P.off));
    int ndrop = 0;
    for (int i = 0; i < S.g.n; i++) ndrop += S.g.nodes[i].op == IR_DROPOUT;
    specs_with_dropout += ndrop > 0;
    void **host = calloc((size_t)S.g.n, sizeof *host);
    gpu_test_random_params(&S.g, host, &rng);
    for (int i = 0; i < S.g.n; i++) {
        if (S.g.nodes[i].op != IR_PARAM) continue;
        size_t nb = gpu_test_param_bytes(&S.g.nodes[i]);
        CHECK(cuda_bind(P.on, i, host[i], nb) == 0 && cuda_bind(P.off, i, host[i], nb) == 0);
    }
    // two shapes interleaved, a new batch and dropout step every run (the last two: the same
    // step); each shape's first run warms up, every later one launches the graph (the second
    // captures it first)
    const int64_t seq[][3] = {{2, 37, 1}, {2, 37, 2}, {3, 16, 3}, {2, 37, 4}, {3, 16, 5}, {3, 16, 6}, {2, 37, 7}, {2, 37, 7}};
    const int nseq = (int)(sizeof seq / sizeof *seq);
    int expect = 0, seen_37 = 0, seen_16 = 0;
    for (int r = 0; r < nseq; r++) {
        bind_batch(&P, seq[r][0], seq[r][1], 100 + (uint64_t)r);
        int *seen = seq[r][1] == 37 ? &seen_37 : &seen_16;
        expect += (*seen)++ > 0;
        run_both(&P, seq[r][0], seq[r][1], (uint64_t)seq[r][2], NULL);
        CHECK_MSG(cuda_graph_launches(P.on) == expect, "%s: run %d: %d graph launches, %d expected", path, r,
                  cuda_graph_launches(P.on), expect);
    }
    CHECK(cuda_graph_launches(P.off) == 0);
    // the same batch at two dropout steps through the replayed graph: the step reaches the kernels
    bind_batch(&P, 2, 37, 500);
    float l20 = 0, l21 = 0;
    run_both(&P, 2, 37, 20, &l20);
    run_both(&P, 2, 37, 21, &l21);
    expect += 2;
    CHECK(cuda_graph_launches(P.on) == expect);
    if (ndrop) CHECK_MSG(l20 != l21, "%s: dropout steps 20 and 21 give the same loss %.7f", path, l20);
    printf("%s: %d dropout nodes; losses at steps 20 / 21 (graph replays): %.7f / %.7f\n", path, ndrop, l20, l21);
    // a larger step reallocates the arena: (2, 37)'s graph is stale, so it warms up and captures again
    bind_batch(&P, 4, 40, 600);
    run_both(&P, 4, 40, 22, NULL);
    bind_batch(&P, 2, 37, 601);
    run_both(&P, 2, 37, 23, NULL);
    CHECK_MSG(cuda_graph_launches(P.on) == expect, "%s: a stale graph was launched after the arena moved", path);
    run_both(&P, 2, 37, 24, NULL);
    CHECK(cuda_graph_launches(P.on) == ++expect);
    // more shapes than the cache keeps: (1, T) for 9 T, twice each (capture + launch); (1, 2),
    // least recently used, was replaced: it warms up again, then launches
    for (int64_t T = 2; T <= EXEC_GRAPH_SHAPES + 2; T++) {
        bind_batch(&P, 1, T, 700 + (uint64_t)T);
        run_both(&P, 1, T, 30, NULL);
        run_both(&P, 1, T, 31, NULL);
        expect++;
    }
    CHECK(cuda_graph_launches(P.on) == expect);
    bind_batch(&P, 1, 2, 800);
    run_both(&P, 1, 2, 32, NULL);
    CHECK_MSG(cuda_graph_launches(P.on) == expect, "%s: an evicted shape launched a graph", path);
    run_both(&P, 1, 2, 33, NULL);
    CHECK(cuda_graph_launches(P.on) == ++expect);
    // a bad token id in a replayed step is reported at the embedding; the next good step runs (every
    // round replays (1, 8)'s graph, captured in the loop above)
    {
        int64_t sym[IR_NSYMS] = {1, 8};
        int32_t ids[8] = {1, 2, 3, 4, 4, 5, 6, 7}, bad[8] = {1, 2, 3, (int32_t)P.V + 5, 4, 5, 6, 7};
        int32_t pos[8] = {0, 1, 2, 3, 4, 5, 6, 7}, zero[8] = {0};
        for (int round = 0; round < 4; round++) {
            for (int i = 0; i < S.g.n; i++) {
                const IrNode *n = &S.g.nodes[i];
                if (n->op != IR_INPUT) continue;
                const int32_t *v = !strcmp(n->name, LOWER_INPUT_TOKENS) ? (round == 2 ? bad : ids)
                                   : !strcmp(n->name, LOWER_INPUT_POS) ? pos : zero;
                cuda_bind(P.on, i, v, sizeof ids);
            }
            int errs = S.d.errors;
            int rc = cuda_run(P.on, sym, 40 + (uint64_t)round);
            if (round == 2) CHECK_MSG(rc != 0 && S.d.errors > errs, "%s: a bad token id in a replayed step is reported", path);
            else CHECK_MSG(rc == 0, "%s: token round %d", path, round);
        }
        CHECK(cuda_graph_launches(P.on) == expect + 4);   // (1, 8) is cached from the loop above
    }
    // a capture the driver refuses (the emulator's $TRLC_CUEMU_CAPTURE_LIMIT hook: the 4th node) is
    // not fatal: one warning, no error, and the program runs step by step from then on, equal to a
    // fresh program without graphs (fresh both: the emulator's block orders count each kernel's
    // launches, and the embedding's backward adds in block order)
    if (exact) {
        setenv("TRLC_CUEMU_CAPTURE_LIMIT", "3", 1);
        CudaProgram *keep = P.on, *keep_off = P.off, *fb = cuda_program_new(&S.g, dev, cache, &S.d);
        setenv("TRLC_CUDA_GRAPHS", "0", 1);
        CudaProgram *fb_off = cuda_program_new(&S.g, dev, cache, &S.d);
        unsetenv("TRLC_CUDA_GRAPHS");
        CHECK(fb != NULL && fb_off != NULL);
        for (int i = 0; fb && fb_off && i < S.g.n; i++)
            if (S.g.nodes[i].op == IR_PARAM) {
                size_t nb = gpu_test_param_bytes(&S.g.nodes[i]);
                cuda_bind(fb, i, host[i], nb), cuda_bind(fb_off, i, host[i], nb);
            }
        if (fb && fb_off) {
            P.on = fb, P.off = fb_off;
            int errs = S.d.errors, warns = S.d.warnings;
            bind_batch(&P, 2, 37, 900);
            for (int r = 0; r < 3; r++) run_both(&P, 2, 37, 50 + (uint64_t)r, NULL);
            CHECK_MSG(S.d.errors == errs && S.d.warnings == warns + 1, "%s: a refused capture: %d errors, %d warnings", path,
                      S.d.errors - errs, S.d.warnings - warns);
            CHECK(cuda_graph_launches(fb) == 0 && !cuda_graphs_enabled(fb));
            P.on = keep, P.off = keep_off;
        }
        cuda_program_free(fb);
        cuda_program_free(fb_off);
        unsetenv("TRLC_CUEMU_CAPTURE_LIMIT");
    }
    printf("%s: %d runs with graphs on = off bit for bit, %d graph launches\n", path, P.runs, cuda_graph_launches(P.on));
    cuda_program_free(P.on);
    cuda_program_free(P.off);
    for (int i = 0; i < S.g.n; i++) free(host[i]), free(P.in[i]);
    free(host);
    free(P.in);
    gpu_test_spec_free(&S);
}

int main(int argc, char **argv) {
    GpuTestDevice t;
    if (!gpu_test_open(&t, "gpu.cuda_graph", ": skipped")) return 77;
    CHECK_MSG(rt_cuda_graphs_supported(t.dev), "the driver has the graph entry points");
    exact = rt_cuda_is_emulated(t.dev);
    printf("gpu.cuda_graph: %s\n", exact ? "the CUDA emulator: bit for bit" : "a CUDA device: to 1e-5 normwise");
    for (int i = 1; i < argc; i++) graph_spec(t.dev, &t.cache, argv[i]);
    CHECK_MSG(specs_with_dropout > 0, "no spec with dropout: the step updates went untested");
    gpu_test_close(&t);
    return test_done("gpu.cuda_graph");
}
