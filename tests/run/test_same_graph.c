// test_same_graph.c — the graph `trlc run` trains is the graph `trlc kernels` / `trlc check
// --memory` plan (compiler/pipeline.h is the one pipeline; the trainer's used to skip cse + dce):
// for each spec, the Trainer's training graph (tr_new) and mp_compile_training_graph's print the
// same, node for node (ops, inputs, dtypes, shapes, outputs), and the trainer's has no dead node
// (dce ran; the duplicates train.recompute and the cheap recomputation add on purpose are live).
// usage: test_same_graph DIR (tests/run: the specs)
#include "check.h"
#include "load.h"
#include "memplan_spec.h"
#include "test.h"
#include "trainer_int.h"
#include <stdlib.h>
#include <string.h>

static const char *dir;

// The graph's text (ir_print without locations), malloc'd; NULL when it cannot be printed.
static char *graph_text(const IrGraph *g, size_t *len) {
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f) return NULL;
    ir_print(f, g, NULL);
    fclose(f);
    return buf;
}

// Nodes that no output, the loss or a leaf depends on (what dce would drop).
static int dead_nodes(const IrGraph *g) {
    bool *live = calloc((size_t)(g->n ? g->n : 1), sizeof *live);
    if (!live) return -1;
    for (int i = 0; i < g->nouts; i++)
        if (g->outs[i].id >= 0 && g->outs[i].id < g->n) live[g->outs[i].id] = true;
    if (g->loss >= 0 && g->loss < g->n) live[g->loss] = true;
    int dead = 0;
    for (int i = g->n - 1; i >= 0; i--) {
        if (ir_is_leaf(&g->nodes[i])) live[i] = true;
        if (!live[i]) {
            dead++;
            continue;
        }
        for (int k = 0; k < g->nodes[i].nin; k++)
            if (g->nodes[i].in[k] >= 0 && g->nodes[i].in[k] < i) live[g->nodes[i].in[k]] = true;
    }
    free(live);
    return dead;
}

static void check_spec_graph(Diag *d, const char *name) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    Arena a = {0};
    LoadedSpec spec = {0};
    CheckedSpec cs;
    memset(&cs, 0, sizeof cs);
    int st;
    TrainerOptions to = {0};
    Trainer *t = NULL;
    if (!load_spec(d, &a, path, &spec) && !check_spec(d, &a, &spec, &cs)) t = tr_new(d, &a, &spec, &cs, &to, &st);
    CHECK_MSG(t != NULL, "%s: the trainer", name);
    // the plan's graph, from the same file compiled again
    Arena a2;
    LoadedSpec spec2;
    CheckedSpec *cs2;
    IrGraph g2;
    int rc = mp_open_spec_file(d, &a2, path, &spec2, &cs2, &g2);
    CHECK_MSG(rc == 0, "%s: the plan's graph", name);
    if (t && rc == 0) {
        size_t n1 = 0, n2 = 0;
        char *s1 = graph_text(&t->g, &n1), *s2 = graph_text(&g2, &n2);
        CHECK_MSG(s1 && s2 && n1 == n2 && !memcmp(s1, s2, n1), "%s: the trainer's graph (%d nodes, %d outputs) is not "
                  "the plan's (%d nodes, %d outputs)", name, t->g.n, t->g.nouts, g2.n, g2.nouts);
        CHECK_MSG(t->g.n == g2.n && t->g.nouts == g2.nouts, "%s: %d vs %d nodes", name, t->g.n, g2.n);
        int dead = dead_nodes(&t->g);
        CHECK_MSG(dead == 0, "%s: %d dead nodes in the trainer's graph", name, dead);
        free(s1);
        free(s2);
    }
    ir_graph_free(&g2);
    arena_free(&a2);
    tr_free(t);
    arena_free(&a);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: test_same_graph DIR\n");
        return 2;
    }
    dir = argv[1];
    Diag d;
    diag_init(&d, stderr);
    const char *specs[] = {"full.trl", "lora.trl", "lora-all.trl", "lora-rs.trl", "qlora.trl", "freeze.trl",
                           "scratch.trl", "pretrain.trl", "dpo.trl", "dpo-full.trl", "orpo.trl", "orpo-full.trl",
                           "kd.trl", "gsm.trl"};
    for (size_t i = 0; i < sizeof specs / sizeof *specs; i++) check_spec_graph(&d, specs[i]);
    diag_free(&d);
    return test_done("run.same_graph");
}
