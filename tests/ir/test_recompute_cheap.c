// test_recompute_cheap.c — ir_recompute_cheap (recompute.h), on small differentiated graphs run by
// the CPU backend with and without the pass: the same loss and bit-identical gradients, and the
// backward reads no forward value it did not read before (nothing new is kept).
// (1) One-input values (chains off, the pass's first version): SwiGLU's silu(gate) * up, an exp
//     and a tanh whose inputs the backward keeps anyway move into the backward; exp(gate + up)
//     stays (its input is a sum the backward does not keep). With chains on it moves too.
// (2) Chains: a decoder-like block (rmsnorm -> LoRA dropout for q, a trainable k projection
//     reading the norm, rope, attention, merge_heads -> dropout for o, silu(gate) * up ->
//     dropout for down): no backward node reads a forward dropout or the norm's output any more;
//     q and k after rope stay (attention's backward pairs with its forward on the same q, k, v)
//     unless rope is asked for; a chain bound of 1 recomputes less.
// (3) No kept value is read later than before (every case above); a sum computed early and read
//     late, after its two inputs' last reads, stays kept (its copy would hold twice its size).
// (4) With chains, a copy read by an elementwise op after a product that follows the copy is made
//     again after the product (silu(gate): once for y's copy before w3's gradient, once for up's
//     gradient after dy's product); no elementwise backward node reads a copy across a product.
#include "autodiff.h"
#include "cpu.h"
#include "recompute.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

#define L0 ((Loc){0, 0, 0})
enum { N = 5, H = 8, F = 12 };

// x (N, H) → gate = x w1ᵀ, up = x w2ᵀ (F); y = silu(gate) * up + exp(up) * 0.01 + dropout(gate);
// out = y w3ᵀ (H); loss = sum(out²) + sum(tanh(gate)) (tanh of a value the backward keeps: moved)
// + sum(exp(gate + up)) (the sum is not kept: that exp stays without chains).
static void build(IrGraph *g) {
    IrId x = ir_input(g, "x", IR_F32, ir_shape2(ir_dim(N), ir_dim(H)), L0);
    IrId w1 = ir_param(g, "w1", IR_F32, ir_shape2(ir_dim(F), ir_dim(H)), true, L0);
    IrId w2 = ir_param(g, "w2", IR_F32, ir_shape2(ir_dim(F), ir_dim(H)), true, L0);
    IrId w3 = ir_param(g, "w3", IR_F32, ir_shape2(ir_dim(H), ir_dim(F)), true, L0);
    IrId gate = ir_linear(g, x, w1, L0), up = ir_linear(g, x, w2, L0);
    IrId y = ir_mul(g, ir_unary(g, IR_SILU, gate, L0), up, L0);
    y = ir_add(g, y, ir_mul(g, ir_unary(g, IR_EXP, up, L0), ir_scalar(g, 0.01, L0), L0), L0);
    y = ir_add(g, y, ir_dropout(g, gate, 0.25, 7, L0), L0);
    IrId out = ir_linear(g, y, w3, L0);
    IrId loss = ir_reduce_all(g, IR_SUM, ir_mul(g, out, out, L0), L0);
    loss = ir_add(g, loss, ir_reduce_all(g, IR_SUM, ir_unary(g, IR_TANH, gate, L0), L0), L0);
    IrId e = ir_unary(g, IR_EXP, ir_add(g, gate, up, L0), L0);
    loss = ir_add(g, loss, ir_reduce_all(g, IR_SUM, e, L0), L0);
    ir_set_loss(g, ir_reshape(g, loss, ir_shape0(), L0));
}

// The chain case: a decoder-like layer, B = 2, T = 6, hidden 8 = 2 heads of 4, ffn 12, LoRA rank 2.
enum { CB = 2, CT = 6, CH = 8, CNH = 2, CD = 4, CF = 12, CR = 2 };
static const char *const chain_params[] = {"x", "we", "wqn", "wn", "wq", "aq", "bq", "wk", "wv", "wo", "ao", "bo",
                                           "wg", "wu", "wd", "ad", "bd"};
enum { NCHAIN = sizeof chain_params / sizeof *chain_params };

// base(x) + lora_b(lora_a(dropout(x))): peft's LoRA linear
static IrId lora(IrGraph *g, IrId x, IrId w, IrId a, IrId b, uint64_t seed) {
    IrId l = ir_linear(g, ir_linear(g, ir_dropout(g, x, 0.2, seed, L0), a, L0), b, L0);
    return ir_add(g, ir_linear(g, x, w, L0), l, L0);
}

static IrId heads(IrGraph *g, IrId x) {
    static const int perm[4] = {0, 2, 1, 3};
    return ir_permute(g, ir_reshape(g, x, ir_shape4(ir_dim(CB), ir_dim(CT), ir_dim(CNH), ir_dim(CD)), L0), perm, L0);
}

// rmsnorm over the last axis: w * (x * rsqrt(mean(x²) + eps))
static IrId rms(IrGraph *g, IrId x, IrId w) {
    IrId ms = ir_reduce(g, IR_MEAN, ir_mul(g, x, x, L0), -1, L0);
    IrId r = ir_unary(g, IR_RSQRT, ir_add(g, ms, ir_scalar(g, 1e-6, L0), L0), L0);
    return ir_mul(g, w, ir_mul(g, x, r, L0), L0);
}

static void build_chain(IrGraph *g) {
    static const int perm[4] = {0, 2, 1, 3};
    IrId p[NCHAIN];
    IrShape shapes[NCHAIN] = {
        ir_shape3(ir_dim(CB), ir_dim(CT), ir_dim(CH)), ir_shape2(ir_dim(CH), ir_dim(CH)), ir_shape1(ir_dim(CD)),
        ir_shape1(ir_dim(CH)),
        ir_shape2(ir_dim(CH), ir_dim(CH)), ir_shape2(ir_dim(CR), ir_dim(CH)), ir_shape2(ir_dim(CH), ir_dim(CR)),
        ir_shape2(ir_dim(CH), ir_dim(CH)), ir_shape2(ir_dim(CH), ir_dim(CH)),
        ir_shape2(ir_dim(CH), ir_dim(CH)), ir_shape2(ir_dim(CR), ir_dim(CH)), ir_shape2(ir_dim(CH), ir_dim(CR)),
        ir_shape2(ir_dim(CF), ir_dim(CH)), ir_shape2(ir_dim(CF), ir_dim(CH)),
        ir_shape2(ir_dim(CH), ir_dim(CF)), ir_shape2(ir_dim(CR), ir_dim(CF)), ir_shape2(ir_dim(CH), ir_dim(CR))};
    for (int i = 0; i < NCHAIN; i++) {
        // trainable: LoRA's factors, we (so the norm has a backward) and wk (a full fine-tuned
        // projection: its gradient reads the norm's output)
        const char *nm = chain_params[i];
        bool train = nm[0] == 'a' || nm[0] == 'b' || !strcmp(nm, "wk") || !strcmp(nm, "we");
        p[i] = i == 0 ? ir_input(g, "x", IR_F32, shapes[0], L0) : ir_param(g, chain_params[i], IR_F32, shapes[i], train, L0);
    }
    IrId x = ir_linear(g, p[0], p[1], L0), pos = ir_input(g, "pos", IR_I32, ir_shape2(ir_dim(CB), ir_dim(CT)), L0);
    IrId xn = rms(g, x, p[3]);
    IrRope rope = {.theta = 10000};
    // q: qwen3's per-head norm before rope (the rope's input is there in the backward: x and rstd)
    IrId q = ir_rope(g, rms(g, heads(g, lora(g, xn, p[4], p[5], p[6], 11)), p[2]), pos, rope, L0);
    IrId k = ir_rope(g, heads(g, ir_linear(g, xn, p[7], L0)), pos, rope, L0);
    IrId v = heads(g, ir_linear(g, xn, p[8], L0));
    IrId o = ir_sdpa(g, q, k, v, true, 0.5, L0);
    o = ir_reshape(g, ir_permute(g, o, perm, L0), shapes[0], L0);
    IrId h = ir_add(g, x, lora(g, o, p[9], p[10], p[11], 11), L0);
    IrId s = ir_mul(g, ir_unary(g, IR_SILU, ir_linear(g, h, p[12], L0), L0), ir_linear(g, h, p[13], L0), L0);
    IrId y = ir_add(g, h, lora(g, s, p[14], p[15], p[16], 11), L0);
    ir_set_loss(g, ir_reshape(g, ir_reduce_all(g, IR_SUM, ir_mul(g, y, y, L0), L0), ir_shape0(), L0));
}

// How many forward nodes of op a backward node reads.
static int read_by_backward(const IrGraph *g, IrOp op) {
    int count = 0;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (n->backward || n->op != op) continue;
        bool read = false;
        for (int j = i + 1; j < g->n && !read; j++)
            for (int k = 0; k < g->nodes[j].nin; k++) read = read || (g->nodes[j].backward && g->nodes[j].in[k] == i);
        count += read;
    }
    return count;
}

// Forward values a backward node reads (malloc'd flags over the forward ids, which the pass keeps).
static bool *backward_reads(const IrGraph *g) {
    bool *r = calloc((size_t)g->n + 1, 1);
    for (int j = 0; r && j < g->n; j++)
        for (int k = 0; g->nodes[j].backward && k < g->nodes[j].nin; k++)
            if (!g->nodes[g->nodes[j].in[k]].backward) r[g->nodes[j].in[k]] = true;
    return r;
}

// After the pass, the backward reads a subset of what it read before (forward ids are unchanged),
// or an attention output: attention's backward keeps it anyway (it reads the forward's saved state).
static bool reads_subset(const IrGraph *before, const IrGraph *after) {
    bool *a = backward_reads(before), *b = backward_reads(after), ok = a && b;
    for (int i = 0; ok && i < after->n && !after->nodes[i].backward; i++) {
        ok = !b[i] || a[i] || after->nodes[i].op == IR_SDPA;
    }
    free(a);
    free(b);
    return ok;
}

// Forward values whose last backward read comes later after the pass than before: a backward node
// is placed by how many of the original backward nodes come before it (a copy: its reader's place).
// Attention's output does not count: its backward keeps it anyway (reads_subset).
static int extended(const IrGraph *before, const IrGraph *after) {
    int *lb = calloc((size_t)before->n + 1, sizeof *lb), *la = calloc((size_t)after->n + 1, sizeof *la), count = 0;
    for (int pass = 0; lb && la && pass < 2; pass++) {
        const IrGraph *g = pass ? after : before;
        int *last = pass ? la : lb, ord = 0;
        for (int j = 0; j < g->n; j++) {
            const IrNode *nd = &g->nodes[j];
            if (!nd->backward) continue;
            for (int k = 0; k < nd->nin; k++)
                if (!g->nodes[nd->in[k]].backward && last[nd->in[k]] < ord + 1) last[nd->in[k]] = ord + 1;
            ord += !nd->recomputed;
        }
    }
    for (int i = 0; lb && la && i < after->n && !after->nodes[i].backward; i++)
        count += la[i] > lb[i] && after->nodes[i].op != IR_SDPA;
    free(lb);
    free(la);
    return count;
}

// Runs both graphs on the same pseudo-random values (pos: 0..T-1 per row) and compares every
// output bit for bit; prints the loss.
static void same_numbers(const char *what, IrGraph *gs[2], const char *const *names, int nnames, Diag *d) {
    float *bufs[32];
    int64_t sizes[32];
    uint32_t s = 12345;
    CpuProgram *p[2] = {cpu_program_new(gs[0], IR_F32, d), cpu_program_new(gs[1], IR_F32, d)};
    for (int b = 0; b < nnames; b++) {
        IrId id = ir_find(gs[0], names[b]);
        sizes[b] = id == IR_NONE ? 0 : ir_shape_numel(&gs[0]->nodes[id].shape, NULL);
        bufs[b] = malloc((size_t)(sizes[b] > 0 ? sizes[b] : 1) * sizeof(float));
        for (int64_t i = 0; i < sizes[b]; i++) {
            s = s * 1664525u + 1013904223u;
            if (gs[0]->nodes[id].dtype == IR_I32) ((int32_t *)bufs[b])[i] = (int32_t)(i % CT);
            else bufs[b][i] = ((float)(s >> 8) / 16777216.0f - 0.5f) * (b ? 0.6f : 2.0f);
        }
    }
    for (int k = 0; k < 2; k++) {
        CHECK_MSG(p[k] != NULL, "%s: program %d", what, k);
        if (!p[k]) continue;
        for (int b = 0; b < nnames; b++)
            CHECK(cpu_bind_name(p[k], names[b], bufs[b], (size_t)sizes[b] * 4) == 0);
        CHECK(cpu_run(p[k], NULL, 3) == 0);
    }
    if (p[0] && p[1]) {
        int same = 0;
        for (int o = 0; o < gs[0]->nouts; o++) {
            const char *name = gs[0]->outs[o].name;
            const CpuTensor *a = cpu_output_named(p[0], name), *b = cpu_output_named(p[1], name);
            bool eq = a && b && a->numel == b->numel && !memcmp(a->data, b->data, (size_t)a->numel * 4);
            same += eq;
            CHECK_MSG(eq, "%s: %s differs with the values recomputed", what, name);
        }
        const CpuTensor *l = cpu_output_named(p[0], "loss");
        if (l) printf("%s: loss %.9g; %d/%d outputs bit-identical\n", what, ((float *)l->data)[0], same, gs[0]->nouts);
    }
    for (int k = 0; k < 2; k++) cpu_program_free(p[k]);
    for (int b = 0; b < nnames; b++) free(bufs[b]);
}

// Builds two copies of a graph, differentiates both, runs the pass with o on the second; returns
// how many values it recomputed (-1 on failure). ext: how many kept values the backward may read
// later than before (a copy placed after their last read; no larger than the value it replaces).
static int pair(Diag *d, IrGraph gs[2], void (*fn)(IrGraph *), const RecomputeCheapOptions *o, int ext_want) {
    ir_graph_init(&gs[0], d, IR_F32);
    ir_graph_init(&gs[1], d, IR_F32);
    fn(&gs[0]);
    fn(&gs[1]);
    int made = -1;
    CHECK(ad_backward(&gs[0], NULL, 0) == 0 && ad_backward(&gs[1], NULL, 0) == 0);
    CHECK(ir_recompute_cheap_opts(&gs[1], o, &made) == 0 && ir_verify(&gs[1]));
    CHECK_MSG(reads_subset(&gs[0], &gs[1]), "the backward reads a forward value it did not read before");
    int ext = extended(&gs[0], &gs[1]);
    CHECK_MSG(ext == ext_want, "%d kept values read later than before (want %d)", ext, ext_want);
    return made;
}

static void free_pair(IrGraph gs[2]) {
    ir_graph_free(&gs[0]);
    ir_graph_free(&gs[1]);
}

// Elementwise backward nodes reading a recomputed copy made before a product that lies between
// them, when they also read a value made after the copy (the chain pass copies such a value
// again after the product, so that the fuser computes it in the reader's kernel: recompute.h).
static int stale_reads(const IrGraph *g) {
    int stale = 0;
    for (int i = 0; i < g->n; i++) {
        const IrNode *n = &g->nodes[i];
        if (!n->backward || !ir_op_is_elementwise(n->op)) continue;
        IrId latest = -1;   // its latest input that is no copy
        for (int k = 0; k < n->nin; k++)
            if (!g->nodes[n->in[k]].recomputed && n->in[k] > latest) latest = n->in[k];
        for (int k = 0; k < n->nin; k++) {
            IrId u = n->in[k];
            if (!g->nodes[u].recomputed || latest < u) continue;
            bool between = false;
            for (IrId j = u + 1; j < i && !between; j++) between = g->nodes[j].op == IR_MATMUL;
            stale += between;
        }
    }
    return stale;
}

static void test_one_input(Diag *d) {
    static const char *const names[4] = {"x", "w1", "w2", "w3"};
    IrGraph gs[2];
    RecomputeCheapOptions o = {.chains = false, .max_chain = RECOMPUTE_MAX_CHAIN};
    int made = pair(d, gs, build, &o, 0);
    IrGraph *plain = &gs[0], *cheap = &gs[1];
    CHECK(read_by_backward(plain, IR_SILU) == 1 && read_by_backward(plain, IR_EXP) == 2 &&
          read_by_backward(plain, IR_TANH) == 1 &&
          read_by_backward(plain, IR_DROPOUT) == 0);   // dropout's backward regenerates its mask
    CHECK_MSG(made == 3, "%d values recomputed (silu, exp, tanh)", made);
    CHECK(read_by_backward(cheap, IR_SILU) == 0 && read_by_backward(cheap, IR_TANH) == 0);
    CHECK(read_by_backward(cheap, IR_EXP) == 1);   // exp(gate + up) stays: the sum is not kept
    int nsilu = 0;
    for (int i = 0; i < cheap->n; i++) nsilu += cheap->nodes[i].op == IR_SILU;
    CHECK_MSG(nsilu == 2, "silu in the forward and its copy in the backward: %d", nsilu);
    IrGraph *g2[2] = {plain, cheap};
    same_numbers("one-input", g2, names, 4, d);
    free_pair(gs);
    // chains: exp(gate + up) moves too (gate and up are kept)
    o.chains = true;
    made = pair(d, gs, build, &o, 0);
    CHECK_MSG(read_by_backward(&gs[1], IR_EXP) == 0 && read_by_backward(&gs[1], IR_ADD) == 0,
              "exp(gate + up) recomputed with chains (%d values)", made);
    CHECK_MSG(stale_reads(&gs[1]) == 0, "no copy read across a product (%d)", stale_reads(&gs[1]));
    g2[0] = &gs[0], g2[1] = &gs[1];
    same_numbers("one-input graph, chains", g2, names, 4, d);
    free_pair(gs);
}

// Forward nodes of op whose `recomputed` copies the backward has.
static int copies(const IrGraph *g, IrOp op) {
    int c = 0;
    for (int i = 0; i < g->n; i++) c += g->nodes[i].op == op && g->nodes[i].backward && g->nodes[i].recomputed;
    return c;
}

static void test_chains(Diag *d) {
    static const char *names[NCHAIN + 1];
    for (int i = 0; i < NCHAIN; i++) names[i] = chain_params[i];
    names[NCHAIN] = "pos";
    IrGraph gs[2];
    IrGraph *g2[2] = {&gs[0], &gs[1]};
    RecomputeCheapOptions o = {.chains = true, .max_chain = RECOMPUTE_MAX_CHAIN};
    int made = pair(d, gs, build_chain, &o, 0);
    // before: the backward reads the three LoRA dropouts (lora_a's gradient), the norm's output
    // w * (x * r) (wk's gradient) and the two ropes (attention's backward)
    CHECK_MSG(read_by_backward(&gs[0], IR_DROPOUT) == 3 && read_by_backward(&gs[0], IR_ROPE) == 2,
              "plain: %d dropouts, %d ropes read", read_by_backward(&gs[0], IR_DROPOUT), read_by_backward(&gs[0], IR_ROPE));
    int mul_before = read_by_backward(&gs[0], IR_MUL), mul_after = read_by_backward(&gs[1], IR_MUL);
    CHECK_MSG(read_by_backward(&gs[1], IR_DROPOUT) == 0 && copies(&gs[1], IR_DROPOUT) == 3,
              "chains: %d dropouts still read, %d copies (%d values)", read_by_backward(&gs[1], IR_DROPOUT),
              copies(&gs[1], IR_DROPOUT), made);
    // w * (x * r), x * r and silu(gate) * up: no longer read (r and the mean's sum, x, gate and up are)
    CHECK_MSG(mul_after < mul_before && read_by_backward(&gs[1], IR_SILU) == 0,
              "muls read: %d -> %d, silu %d", mul_before, mul_after, read_by_backward(&gs[1], IR_SILU));
    // silu(gate) is copied twice: for dropout(silu(gate) * up), which down's LoRA gradient (a
    // product) reads, and again after the products of down's input gradient for the gradient of
    // up, dy * silu(gate) (the fuser computes that copy in the gradient's kernel)
    CHECK_MSG(copies(&gs[1], IR_SILU) == 2 && stale_reads(&gs[1]) == 0,
              "silu(gate) copied on each side of the products (%d copies; %d reads across a product)",
              copies(&gs[1], IR_SILU), stale_reads(&gs[1]));
    CHECK_MSG(read_by_backward(&gs[1], IR_ROPE) == 2 && copies(&gs[1], IR_ROPE) == 0, "ropes stay without the option");
    CHECK(copies(&gs[1], IR_PERMUTE) >= 1 && copies(&gs[1], IR_RESHAPE) >= 1);   // merge_heads(o) for o's dropout
    same_numbers("chains", g2, names, NCHAIN + 1, d);
    free_pair(gs);
    // rope too: q's, from the per-head norm's x and rstd (k's input, a projection's heads, is not
    // kept: its rope stays); attention's backward reads q's copy and still pairs with the forward
    // (fuse.c compares values: gpu.head_pair), so its output stays kept and merge_heads(o)'s chain
    // is recomputed as without the option
    o.rope = true;
    int made_rope = pair(d, gs, build_chain, &o, 0);
    CHECK_MSG(read_by_backward(&gs[1], IR_ROPE) == 1 && copies(&gs[1], IR_ROPE) == 1 && copies(&gs[1], IR_PERMUTE) >= 1 &&
                  made_rope > made,
              "rope: %d values, %d ropes read, %d copied, %d permutes copied", made_rope, read_by_backward(&gs[1], IR_ROPE),
              copies(&gs[1], IR_ROPE), copies(&gs[1], IR_PERMUTE));
    same_numbers("chains + rope", g2, names, NCHAIN + 1, d);
    free_pair(gs);
    // a bound of one op: no chain, less recomputed; q's dropout of the norm's output (kept for wk's
    // gradient) is recomputed from it: the norm's output is then read later than before, in place
    // of the dropout output, as large, which is no longer kept
    o.rope = false, o.max_chain = 1;
    int made1 = pair(d, gs, build_chain, &o, 1);
    CHECK_MSG(made1 < made && read_by_backward(&gs[1], IR_DROPOUT) > 0, "bound 1: %d values (%d with %d)", made1,
              made, RECOMPUTE_MAX_CHAIN);
    same_numbers("chains, bound 1", g2, names, NCHAIN + 1, d);
    free_pair(gs);
    printf("chains: %d values recomputed (%d with rope, %d with a bound of 1)\n", made, made_rope, made1);
}

// c = a + b is computed early and read late (w3's gradient), after the backward's last reads of a
// and b (silu's): its copy would hold a and b, twice its size, past their last read. It stays.
static void build_late(IrGraph *g) {
    IrId x = ir_input(g, "x", IR_F32, ir_shape2(ir_dim(N), ir_dim(H)), L0);
    IrId w1 = ir_param(g, "w1", IR_F32, ir_shape2(ir_dim(F), ir_dim(H)), true, L0);
    IrId w2 = ir_param(g, "w2", IR_F32, ir_shape2(ir_dim(F), ir_dim(H)), true, L0);
    IrId w3 = ir_param(g, "w3", IR_F32, ir_shape2(ir_dim(H), ir_dim(F)), true, L0);
    IrId a = ir_linear(g, x, w1, L0), b = ir_linear(g, x, w2, L0);
    IrId y = ir_linear(g, ir_add(g, a, b, L0), w3, L0);
    IrId s = ir_mul(g, ir_unary(g, IR_SILU, a, L0), ir_unary(g, IR_SILU, b, L0), L0);
    IrId loss = ir_add(g, ir_reduce_all(g, IR_SUM, ir_mul(g, y, y, L0), L0), ir_reduce_all(g, IR_SUM, s, L0), L0);
    ir_set_loss(g, ir_reshape(g, loss, ir_shape0(), L0));
}

static void test_late(Diag *d) {
    static const char *const names[4] = {"x", "w1", "w2", "w3"};
    IrGraph gs[2];
    IrGraph *g2[2] = {&gs[0], &gs[1]};
    RecomputeCheapOptions o = {.chains = true, .max_chain = RECOMPUTE_MAX_CHAIN};
    int made = pair(d, gs, build_late, &o, 0);
    CHECK_MSG(read_by_backward(&gs[0], IR_ADD) == 1 && read_by_backward(&gs[1], IR_ADD) == 1 && copies(&gs[1], IR_ADD) == 0,
              "a + b stays kept (%d values recomputed)", made);
    same_numbers("late reader", g2, names, 4, d);
    free_pair(gs);
}

int main(void) {
    Diag d;
    diag_init(&d, stderr);
    test_one_input(&d);
    test_chains(&d);
    test_late(&d);
    diag_free(&d);
    return test_done("ir.recompute_cheap");
}
