// test_lower_errors.c — lowering diagnostics: each case is a small arch in graph code with one
// mistake; lowering must fail (never crash) and print the expected message at the expected
// file:line:col, with the hint where there is one. Also: the error inside a stdlib def names the
// call chain, and a correct custom arch lowers (so that the cases fail for their own reason).
#include "lower.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>

typedef struct ErrCase {
    const char *what;
    const char *body;       // the arch `t` (and defs), after `trl 1;\nimport "nn";\n`
    const char *expect[3];  // substrings of the diagnostics (NULL-terminated)
} ErrCase;

#define HEAD "trl 1;\nimport \"nn\";\n"
#define PARAMS                                                            \
    "    param model.embed_tokens.weight : [cfg.vocab, cfg.hidden] = normal(0.02);\n" \
    "    param lm_head.weight : [cfg.vocab, cfg.hidden] = normal(0.02);\n"

static const ErrCase cases[] = {
    {"unknown function",
     "arch t(cfg) {\n" PARAMS "    forward(tokens, pos) = linaer(embed(tokens, model.embed_tokens), lm_head);\n}\n",
     {"test.trl:6:28: error: unknown function `linaer`", "hint: did you mean `linear`?"}},
    {"unknown variable",
     "arch t(cfg) {\n" PARAMS "    forward(tokens, pos) {\n        hidden = embed(tokens, model.embed_tokens);\n"
     "        return linear(hiden, lm_head);\n    }\n}\n",
     {"test.trl:8:23: error: unknown variable `hiden`", "did you mean `hidden`?"}},
    {"too many arguments",
     "arch t(cfg) {\n" PARAMS "    forward(tokens, pos) = linear(silu(embed(tokens, model.embed_tokens), 2), lm_head);\n}\n",
     {"`silu` takes 1 argument, got more"}},
    {"missing argument of a def",
     "arch t(cfg) {\n" PARAMS
     "    forward(tokens, pos) = linear(rmsnorm(embed(tokens, model.embed_tokens)), lm_head);\n}\n",
     {"missing argument `w` in the call of `rmsnorm`", "hint: rmsnorm(x, w, eps)"}},
    {"unknown named argument",
     "arch t(cfg) {\n" PARAMS "    forward(tokens, pos) {\n        x = embed(tokens, model.embed_tokens);\n"
     "        q = reshape(x, [0, 0, 4, 8]);\n        y = sdpa(q, q, q, casual = true);\n"
     "        return linear(reshape(y, [0, 0, 32]), lm_head);\n    }\n}\n",
     {"`sdpa` has no parameter `casual`", "did you mean `causal`?"}},
    {"parameter used but not declared",
     "arch t(cfg) {\n" PARAMS "    forward(tokens, pos) = linear(embed(tokens, model.embed_tokens), model.lm_head);\n}\n",
     {"parameter `model.lm_head` is used but not declared", "did you mean `lm_head.weight`?"}},
    {"shape mismatch",
     "arch t(cfg) {\n" PARAMS "    param model.proj.weight : [cfg.hidden, 7] = zeros;\n"
     "    forward(tokens, pos) = linear(linear(embed(tokens, model.embed_tokens), model.proj), lm_head);\n}\n",
     {"test.trl:7:35: error: shape mismatch in linear"}},
    {"recursion",
     "def f(x) = f(x);\narch t(cfg) {\n" PARAMS "    forward(tokens, pos) = f(tokens);\n}\n",
     {"def calls nest more than 64 deep (is `f` recursive?)"}},
    {"if on a tensor",
     "arch t(cfg) {\n" PARAMS "    forward(tokens, pos) {\n        x = embed(tokens, model.embed_tokens);\n"
     "        if x { x = x * 2; }\n        return linear(x, lm_head);\n    }\n}\n",
     {"an `if` condition must be true or false at compile time, got a tensor", "use where(mask, a, b)"}},
    {"unknown config field",
     "arch t(cfg) {\n    param model.embed_tokens.weight : [cfg.vocab, cfg.hiden] = zeros;\n"
     "    forward(tokens, pos) = tokens;\n}\n",
     {"test.trl:4:55: error: the config has no field `hiden`", "did you mean `hidden`?"}},
    {"duplicate parameter",
     "arch t(cfg) {\n" PARAMS "    param lm_head.weight : [1] = zeros;\n    forward(tokens, pos) = tokens;\n}\n",
     {"parameter `lm_head.weight` is declared twice", "note: first declared here"}},
    {"param in a def",
     "def g(x) {\n    param w : [1] = zeros;\n    return x;\n}\narch t(cfg) {\n" PARAMS
     "    forward(tokens, pos) = g(tokens);\n}\n",
     {"`param` declarations belong in an arch body"}},
    {"huge loop",
     "arch t(cfg) {\n    for i in 0 .. 100000000000 {\n        param model.layers[i].w : [1] = zeros;\n    }\n"
     "    forward(tokens, pos) = tokens;\n}\n",
     {"a `for` range of more than 1000000 iterations"}},
    {"budget",
     "arch t(cfg) {\n" PARAMS "    forward(tokens, pos) {\n        n = 0;\n        for i in 0 .. 1000000 {\n"
     "            for j in 0 .. 1000000 { n = n + 1; }\n        }\n        return tokens;\n    }\n}\n",
     {"evaluation steps to lower"}},
    {"too many IR nodes",
     "arch t(cfg) {\n" PARAMS "    forward(tokens, pos) {\n        x = embed(tokens, model.embed_tokens);\n"
     "        for i in 0 .. 300000 { x = x + 1.5; }\n        return linear(x, lm_head);\n    }\n}\n",
     {"the graph grows past 200000 IR nodes"}},
    {"an arch without params uses an unknown module",
     "arch t(cfg) {\n    forward(tokens, pos) = linear(embed(tokens, model.embed_tokens), model.head);\n}\n",
     {"test.trl:4:70: error: parameter `model.head` is used but not declared"}},
    {"wrong logits shape",
     "arch t(cfg) {\n" PARAMS "    forward(tokens, pos) = embed(tokens, model.embed_tokens);\n}\n",
     {"`forward` must return logits of shape [B,T,64], got [B,T,32]"}},
    {"unknown initializer",
     "arch t(cfg) {\n    param model.embed_tokens.weight : [cfg.vocab, cfg.hidden] = normall(0.02);\n"
     "    forward(tokens, pos) = tokens;\n}\n",
     {"unknown initializer `normall`", "did you mean `normal`?"}},
    {"ones called like normal",   // said "unknown initializer `ones` ... did you mean `ones`?"
     "arch t(cfg) {\n    param model.embed_tokens.weight : [cfg.vocab, cfg.hidden] = ones();\n"
     "    forward(tokens, pos) = tokens;\n}\n",
     {"test.trl:4:65: error: `ones` takes no arguments: write `= ones;`"}},
    {"no forward", "arch t(cfg) {\n" PARAMS "}\n", {"arch `t` has no `forward(tokens, pos)`"}},
    {"bad parameter size",
     "arch t(cfg) {\n    param model.embed_tokens.weight : [cfg.vocab, cfg.eps] = zeros;\n"
     "    forward(tokens, pos) = tokens;\n}\n",
     {"a parameter size must be an integer known at compile time, got a fractional number"}},
    {"error inside a stdlib def names the call chain",
     "arch t(cfg) {\n" PARAMS "    param model.n.weight : [7] = ones;\n"
     "    forward(tokens, pos) = linear(rmsnorm(embed(tokens, model.embed_tokens), model.n, 1e-6), lm_head);\n}\n",
     {"nn.trl:13:", "cannot be broadcast together", "note: in `rmsnorm`, called here"}},
    {"integer overflow",
     "arch t(cfg) {\n    param model.w.weight : [4503599627370496 * 4096 * 4096] = zeros;\n    forward(tokens, pos) = tokens;\n}\n",
     {"integer overflow"}},
    {"division by zero",
     "arch t(cfg) {\n    param model.w.weight : [cfg.hidden / 0] = zeros;\n    forward(tokens, pos) = tokens;\n}\n",
     {"division by zero"}},
};

static CheckedConfig tiny(void) {
    CheckedConfig c = {.vocab = 64, .hidden = 32, .layers = 2, .heads = 4, .kv_heads = 2, .head_dim = 8,
                       .ffn = 48, .max_pos = 64, .eps = 1e-6, .rope_theta = 10000, .init_std = 0.02};
    return c;
}

// Lowers `body`; returns the status and the diagnostics text (malloc'd) in *msgs.
static int lower_text(const char *body, char **msgs) {
    char *buf = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&buf, &len);
    Diag d;
    diag_init(&d, mem);
    Arena a = {0};
    LoadedSpec spec = {0};
    char *text = malloc(strlen(HEAD) + strlen(body) + 1);
    strcpy(text, HEAD);
    strcat(text, body);
    int rc = load_spec_text(&d, &a, "test.trl", text, strlen(text), &spec);
    free(text);
    IrGraph g;
    ir_graph_init(&g, &d, IR_F32);
    if (rc == 0) {
        LowerModel m = {.name = "tiny", .arch = "t", .cfg = tiny()};
        LowerOptions o;
        lower_options_init(&o);
        o.objective = "none";
        LowerResult res;
        rc = lower_graph(&d, &a, &spec, &m, &o, &g, &res);
        if (rc == 0 && d.errors) rc = -2;   // errors without a failing status
    } else {
        fprintf(mem, "(the test spec does not parse)\n");
        rc = -3;
    }
    ir_graph_free(&g);
    arena_free(&a);
    diag_free(&d);
    fclose(mem);
    *msgs = buf;
    return rc;
}

int main(void) {
    int n = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) {
        char *msgs;
        int rc = lower_text(cases[i].body, &msgs);
        CHECK_MSG(rc == -1, "%s: status %d\n%s", cases[i].what, rc, msgs);
        for (int k = 0; k < 3 && cases[i].expect[k]; k++)
            CHECK_MSG(strstr(msgs, cases[i].expect[k]) != NULL, "%s: expected `%s` in:\n%s", cases[i].what,
                      cases[i].expect[k], msgs);
        if (getenv("LOWER_VERBOSE")) fprintf(stderr, "--- %s\n%s", cases[i].what, msgs);
        free(msgs);
    }
    // a correct custom arch (the same shape as the cases) lowers without diagnostics
    char *msgs;
    int rc = lower_text("arch t(cfg) {\n" PARAMS "    param model.n.weight : [cfg.hidden] = ones;\n"
                        "    forward(tokens, pos) = linear(rmsnorm(embed(tokens, model.embed_tokens), "
                        "model.n, cfg.eps), lm_head);\n}\n",
                        &msgs);
    CHECK_MSG(rc == 0 && msgs[0] == 0, "valid arch: status %d\n%s", rc, msgs);
    free(msgs);
    // sdpa with a key-padding mask (token 0 = padding)
    rc = lower_text("arch t(cfg) {\n" PARAMS
                    "    forward(tokens, pos) {\n        x = embed(tokens, model.embed_tokens);\n"
                    "        q = heads(x, 4);\n"
                    "        y = sdpa(q, q, q, causal = true, key_mask = not_equal(tokens, 0));\n"
                    "        return linear(merge_heads(y), lm_head);\n    }\n}\n",
                    &msgs);
    CHECK_MSG(rc == 0 && msgs[0] == 0, "masked sdpa: status %d\n%s", rc, msgs);
    free(msgs);
    printf("%d error cases\n", n);
    return test_done("lower.errors");
}
