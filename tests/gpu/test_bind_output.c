// test_bind_output.c — cuda_bind_output's errors (runtime/cuda/exec.c): an input of one program
// bound to another program's output on the device (kd's teacher logits). Each wrong use — no
// such input, a param instead of an input, no / the same source program, an output index out of
// range, a dtype or an element count that differs, a source that has not run, a source whose
// last run was at another (B, T) — must return -1 with a message naming the input at its spec
// location (a source registered with the Diag: bind.trl), never crash; and the right binding
// must still copy the values (z = t * t with t = the source's x * x) and recover after an error.
// Two hand-built programs; on a GPU, or the CUDA emulator (gpu.bind_output_emu); exit 77 without.
#include "exec.h"
#include "gpu_test_util.h"
#include "ir.h"
#include "test.h"
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

// the spec text the inputs point into (their Loc), so that messages carry bind.trl:LINE:COL
static const char spec_text[] =
    "input t: f32[B, T, 4]\n"        // line 1
    "input small: f32[B, T, 3]\n"    // line 2
    "input ti: i32[B, T, 4]\n"       // line 3
    "param w: f32[4]\n";             // line 4

static Loc loc_of(uint32_t file, const char *word) {
    const char *at = strstr(spec_text, word);
    return (Loc){file, (uint32_t)(at - spec_text), (uint32_t)strlen(word)};
}

static char msgs[8192];

// what d printed since the last call (d writes into mem)
static const char *printed(FILE *mem) {
    fflush(mem);
    long n = ftell(mem);
    rewind(mem);
    size_t k = fread(msgs, 1, n > 0 && (size_t)n < sizeof msgs ? (size_t)n : sizeof msgs - 1, mem);
    msgs[k] = 0;
    rewind(mem);
    if (ftruncate(fileno(mem), 0) != 0) msgs[0] = 0;
    return msgs;
}

// one refused binding: -1, one more error, a message holding want and (when given) the location
static void refused(CudaProgram *p, Diag *d, FILE *mem, const char *input, CudaProgram *src, int out,
                    const char *want, const char *where, const char *what) {
    int before = d->errors;
    int rc = cuda_bind_output(p, input, src, out);
    const char *m = printed(mem);
    CHECK_MSG(rc == -1 && d->errors == before + 1, "%s: rc %d, %d errors", what, rc, d->errors - before);
    CHECK_MSG(strstr(m, want) != NULL, "%s: message lacks '%s': %s", what, want, m);
    if (where) CHECK_MSG(strstr(m, where) != NULL, "%s: message lacks the location %s: %s", what, where, m);
    printf("  %-26s %s", what, m);
}

static int run_and_report(CudaProgram *p, Diag *d, FILE *mem, int64_t B, int64_t T, const char **m) {
    int before = d->errors;
    int rc = cuda_run(p, (const int64_t[IR_NSYMS]){B, T}, 0);
    *m = printed(mem);
    return rc == 0 ? (d->errors == before ? 0 : -2) : rc;
}

int main(void) {
    GpuTestDevice t;
    if (!gpu_test_open(&t, "gpu.bind_output", " (skipped)")) return 77;
    FILE *mem = tmpfile();
    Diag d;
    diag_init(&d, mem);
    uint32_t file = diag_add_source(&d, "bind.trl", spec_text, sizeof spec_text - 1);

    // the source: x (B, T, 4) -> y = x * x (output 0)
    IrGraph gs, gp;
    ir_graph_init(&gs, &d, IR_F32);
    IrShape s4 = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(4)), s3 = ir_shape3(ir_dim_b(), ir_dim_t(), ir_dim(3));
    IrId x = ir_input(&gs, "x", IR_F32, s4, (Loc){0});
    CHECK(ir_add_output(&gs, ir_mul(&gs, x, x, (Loc){0}), "y") == 0);
    // the reader: t (B, T, 4) -> z = t * t; small (B, T, 3) -> small * small; ti (i32), w (param) unread
    ir_graph_init(&gp, &d, IR_F32);
    IrId ti = ir_input(&gp, "t", IR_F32, s4, loc_of(file, "t:"));
    IrId sm = ir_input(&gp, "small", IR_F32, s3, loc_of(file, "small"));
    ir_input(&gp, "ti", IR_I32, s4, loc_of(file, "ti"));
    ir_param(&gp, "w", IR_F32, ir_shape1(ir_dim(4)), false, loc_of(file, "w:"));
    CHECK(ir_add_output(&gp, ir_mul(&gp, ti, ti, (Loc){0}), "z") == 0);
    CHECK(ir_add_output(&gp, ir_mul(&gp, sm, sm, (Loc){0}), "s2") == 1);
    CHECK(gs.errors == 0 && gp.errors == 0);

    CudaProgram *src = cuda_program_new(&gs, t.dev, &t.cache, &d);
    CudaProgram *p = cuda_program_new(&gp, t.dev, &t.cache, &d);
    CHECK_MSG(src && p, "programs: %s", printed(mem));
    if (!src || !p) return test_done("gpu.bind_output");
    printed(mem);

    printf("refused bindings:\n");
    refused(p, &d, mem, "nope", src, 0, "no input named 'nope'", NULL, "unknown input");
    refused(p, &d, mem, NULL, src, 0, "no input named", NULL, "no input name");
    refused(p, &d, mem, "w", src, 0, "'w' is a param, not an input", "bind.trl:4:7", "a param");
    refused(p, &d, mem, "t", NULL, 0, "cannot read an output of no program", "bind.trl:1:7", "no source");
    refused(p, &d, mem, "t", p, 0, "cannot read an output of its own program", "bind.trl:1:7", "itself");
    refused(p, &d, mem, "t", src, 1, "cannot read output 1 of the other program: it has 1 output", "bind.trl:1:7",
            "index past the end");
    refused(p, &d, mem, "t", src, -1, "cannot read output -1", "bind.trl:1:7", "negative index");
    refused(p, &d, mem, "ti", src, 0, "input 'ti' (i32) cannot read the other program's output 'y' (f32): the dtypes differ",
            "bind.trl:3:7", "dtype");
    refused(p, &d, mem, "small", src, 0, "input 'small' [B,T,3] cannot read the other program's output 'y' [B,T,4]: "
            "the sizes differ", "bind.trl:2:7", "element count");
    CHECK(cuda_bind_output(NULL, "t", src, 0) == -1);

    // the right binding; small bound to host data
    const int64_t B = 2, T = 3, n4 = B * T * 4, n3 = B * T * 3;
    float xs[2 * 5 * 4], sh[2 * 5 * 3];
    for (int i = 0; i < 2 * 5 * 4; i++) xs[i] = 0.25f * (float)(i % 9) - 1.0f;
    for (int i = 0; i < 2 * 5 * 3; i++) sh[i] = (float)i;
    CHECK(cuda_bind_output(p, "t", src, 0) == 0 && d.errors == 9);
    CHECK(cuda_bind_name(p, "small", sh, (size_t)n3 * 4) == 0 && cuda_bind_name(src, "x", xs, (size_t)n4 * 4) == 0);

    // the source has not run yet
    const char *m;
    int rc = run_and_report(p, &d, mem, B, T, &m);
    CHECK_MSG(rc == -1 && strstr(m, "input 't' reads output 'y' of another program, which has not run") &&
              strstr(m, "bind.trl:1:7"), "not run: rc %d: %s", rc, m);
    printf("  %-26s %s", "source not run", m);

    // source, then reader: z = x^4
    rc = run_and_report(src, &d, mem, B, T, &m);
    CHECK_MSG(rc == 0, "source run: %s", m);
    rc = run_and_report(p, &d, mem, B, T, &m);
    CHECK_MSG(rc == 0, "bound run: %s", m);
    const CpuTensor *z = rc == 0 ? cuda_output(p, 0) : NULL;
    int bad = 0;
    for (int64_t i = 0; z && i < n4; i++) bad += ((const float *)z->data)[i] != xs[i] * xs[i] * xs[i] * xs[i];
    CHECK_MSG(z && z->numel == n4 && bad == 0, "z: %d of %lld differ", bad, (long long)n4);
    printf("bound run at B=2, T=3: z = x^4 in %lld of %lld elements\n", (long long)(n4 - bad), (long long)n4);

    // the reader at another T than the source's last run: the sizes differ at run time
    CHECK(cuda_bind_name(p, "small", sh, (size_t)(B * 5 * 3) * 4) == 0);
    rc = run_and_report(p, &d, mem, B, 5, &m);
    CHECK_MSG(rc == -1 && strstr(m, "input 't' needs 160 bytes at B=2, T=5; output 'y' of the other program's last run "
                                    "(B=2, T=3) holds 96") && strstr(m, "bind.trl:1:7"), "stale size: rc %d: %s", rc, m);
    printf("  %-26s %s", "source at another (B, T)", m);
    // recovers: the source at T = 5, then the reader
    CHECK(cuda_bind_name(src, "x", xs, (size_t)(B * 5 * 4) * 4) == 0);
    rc = run_and_report(src, &d, mem, B, 5, &m);
    CHECK_MSG(rc == 0, "source at T=5: %s", m);
    rc = run_and_report(p, &d, mem, B, 5, &m);
    CHECK_MSG(rc == 0, "bound run at T=5: %s", m);
    z = rc == 0 ? cuda_output(p, 0) : NULL;
    bad = 0;
    for (int64_t i = 0; z && i < B * 5 * 4; i++) bad += ((const float *)z->data)[i] != xs[i] * xs[i] * xs[i] * xs[i];
    CHECK_MSG(z && z->numel == B * 5 * 4 && bad == 0, "z at T=5: %d differ", bad);

    // a host binding replaces the device one
    float th[2 * 5 * 4];
    for (int i = 0; i < 2 * 5 * 4; i++) th[i] = 3.0f;
    CHECK(cuda_bind_name(p, "t", th, sizeof th) == 0);
    rc = run_and_report(p, &d, mem, B, 5, &m);
    z = rc == 0 ? cuda_output(p, 0) : NULL;
    CHECK_MSG(z && ((const float *)z->data)[0] == 9.0f && ((const float *)z->data)[B * 5 * 4 - 1] == 9.0f,
              "host binding after the device one: rc %d: %s", rc, m);
    printf("errors reported: %d (9 bindings, 2 runs)\n", d.errors);
    CHECK(d.errors == 11);

    cuda_program_free(p);
    cuda_program_free(src);
    ir_graph_free(&gp);
    ir_graph_free(&gs);
    diag_free(&d);
    fclose(mem);
    gpu_test_close(&t);
    return test_done("gpu.bind_output");
}
