// test_schedule.c — every schedule at every step against transformers' schedulers
// (fixtures/schedule.txt from gen_schedule_fixtures.py), within 1e-7; warmup from a ratio; the
// configuration errors.
#include "diag.h"
#include "schedule.h"
#include "test.h"
#include "train/fixture.h"

static int run_fixtures(const char *path) {
    char *text = fx_read(path);
    CHECK(text != NULL);
    if (!text) return 0;
    char *cur = text, *line;
    int ncases = 0;
    Diag d;
    diag_init(&d, stderr);
    Schedule s;
    SchedConfig c;
    char name[64], kind[16];
    double base_lr = 0, max_err = 0;
    int nsteps = 0, seen = 0, ok = 0;
    while ((line = fx_line(&cur))) {
        if (line[0] == '#' || !*line) continue;
        if (strncmp(line, "case ", 5) == 0) {
            long long total, warmup;
            c = sched_config_default();
            CHECK(sscanf(line, "case %63s %15s %lld %lld %lf %lf %lf %lf %lf %d", name, kind, &total,
                         &warmup, &c.warmup_ratio, &c.num_cycles, &c.min_lr, &c.min_lr_rate,
                         &c.base_lr, &nsteps) == 10);
            c.kind = (SchedKind)sched_kind_from_name(kind);
            CHECK((int)c.kind >= 0);
            c.total_steps = total;
            c.warmup_steps = warmup;
            base_lr = c.base_lr;
            ok = sched_init(&d, &s, &c) == 0;
            CHECK_MSG(ok, "%s: sched_init failed", name);
            max_err = 0;
            seen = 0;
        } else if (strcmp(line, "end") == 0) {
            printf("%-22s %-8s %4d steps (warmup %lld): max abs err %.3g\n", name, kind, seen,
                   (long long)s.warmup_steps, max_err);
            CHECK_MSG(seen == nsteps, "%s: %d of %d steps", name, seen, nsteps);
            CHECK_MSG(max_err <= 1e-7, "%s: lr differs from transformers by %g", name, max_err);
            ncases++;
        } else {
            long long step;
            double want;
            CHECK(sscanf(line, "%lld %lf", &step, &want) == 2);
            if (!ok) continue;
            double got = base_lr * sched_mult(&s, step);
            double e = fabs(got - want);
            if (e > max_err) max_err = e;
            seen++;
        }
    }
    diag_free(&d);
    free(text);
    return ncases;
}

static void test_errors(void) {
    FILE *err = tmpfile();
    Diag d;
    diag_init(&d, err);
    Schedule s;
    SchedConfig c = sched_config_default();
    c.kind = SCHED_COSINE;
    c.total_steps = 0;
    CHECK(sched_init(&d, &s, &c) == -1);   // cosine needs steps
    c.total_steps = 100;
    c.min_lr = 1e-5;
    c.min_lr_rate = 0.1;
    CHECK(sched_init(&d, &s, &c) == -1);   // both floors
    c.min_lr_rate = -1;
    c.base_lr = 0;
    CHECK(sched_init(&d, &s, &c) == -1);   // absolute floor without base lr
    c.min_lr = -1;
    c.warmup_steps = -1;
    c.warmup_ratio = 1.5;
    CHECK(sched_init(&d, &s, &c) == -1);   // ratio outside [0, 1]
    c = sched_config_default();
    c.kind = SCHED_LINEAR;
    c.total_steps = 10;
    c.min_lr_rate = 0.1;
    CHECK(sched_init(&d, &s, &c) == -1);   // floor on linear
    CHECK(d.errors == 5);
    rewind(err);
    char buf[1024] = {0};
    CHECK(fread(buf, 1, sizeof buf - 1, err) > 0);
    CHECK(strstr(buf, "trlc: error: schedule: cosine needs a positive number of training steps") != NULL);
    CHECK(strstr(buf, "give min_lr or min_lr_rate, not both") != NULL);
    diag_free(&d);
    fclose(err);

    // ratio → steps as TrainingArguments: ceil(total * ratio)
    CHECK(sched_warmup_from_ratio(1000, 0.03) == 30);
    CHECK(sched_warmup_from_ratio(73, 0.1) == 8);
    CHECK(sched_warmup_from_ratio(10, 0) == 0);
    CHECK(sched_warmup_from_ratio(10, 1.0) == 10);
    CHECK(sched_kind_from_name("cosine") == SCHED_COSINE && sched_kind_from_name("cos") == -1);
    // constant without warmup and without steps: always 1
    Diag d2;
    diag_init(&d2, stderr);
    c = sched_config_default();
    CHECK(sched_init(&d2, &s, &c) == 0);
    CHECK(sched_mult(&s, 0) == 1.0 && sched_mult(&s, 1000000) == 1.0);
    c.kind = SCHED_LINEAR;
    c.total_steps = 10;
    c.warmup_steps = 2;
    CHECK(sched_init(&d2, &s, &c) == 0);
    CHECK(sched_mult(&s, -5) == 0.0 && sched_mult(&s, 1) == 0.5 && sched_mult(&s, 6) == 0.5);
    CHECK(sched_mult(&s, 10) == 0.0 && sched_mult(&s, 11) == 0.0);
    diag_free(&d2);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: test_schedule fixtures/schedule.txt\n");
        return 2;
    }
    CHECK(run_fixtures(argv[1]) == 10);
    test_errors();
    return test_done("train.schedule");
}
