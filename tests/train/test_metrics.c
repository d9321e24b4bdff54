// test_metrics.c — metrics.jsonl lines (valid JSON read back with jansson, NaN → null, escaping,
// appending), the progress line's exact text, in-place redraw on a terminal vs plain lines when
// piped, thousands grouping, durations, and the non-finite loss check.
#include "metrics.h"
#include "test.h"
#include "train/fixture.h"
#include <jansson.h>
#include <string.h>
#include <sys/stat.h>

static void test_jsonl(const char *dir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/metrics.jsonl", dir);
    Diag d;
    diag_init(&d, stderr);
    MetLog *m = met_open(&d, path, false);
    CHECK(m != NULL);
    if (!m) return;
    MetField f1[] = {{"loss", 1.2345}, {"lr", 0.00019}, {"grad_norm", 0.8125},
                     {"tokens_per_s", 12345}, {"elapsed", 61.25}};
    CHECK(met_log(m, 120, f1, 5) == 0);
    MetField f2[] = {{"loss", NAN}, {"grad_norm", INFINITY}, {"odd \"key\"\n", -2.5e-10}};
    CHECK(met_log(m, 121, f2, 3) == 0);
    CHECK(met_close(m) == 0);
    m = met_open(&d, path, true);   // a resumed run appends
    CHECK(m && met_log(m, 122, f1, 1) == 0 && met_close(m) == 0);

    FILE *f = fopen(path, "r");
    CHECK(f != NULL);
    if (!f) return;
    char line[1024];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        json_error_t err;
        json_t *j = json_loads(line, 0, &err);
        CHECK_MSG(j != NULL, "line %d is not JSON: %s", n + 1, err.text);
        if (!j) continue;
        CHECK(json_integer_value(json_object_get(j, "step")) == 120 + n);
        if (n == 0) {
            CHECK(json_real_value(json_object_get(j, "loss")) == 1.2345);
            CHECK(json_real_value(json_object_get(j, "lr")) == 0.00019);
            CHECK(json_integer_value(json_object_get(j, "tokens_per_s")) == 12345);
            CHECK(json_object_size(j) == 6);
        } else if (n == 1) {
            CHECK(json_is_null(json_object_get(j, "loss")));
            CHECK(json_is_null(json_object_get(j, "grad_norm")));
            CHECK(json_real_value(json_object_get(j, "odd \"key\"\n")) == -2.5e-10);
        }
        json_decref(j);
        n++;
    }
    fclose(f);
    CHECK(n == 3);
    char small[16];
    size_t need = met_format_json(small, sizeof small, 5, f1, 2);
    CHECK(need > sizeof small && strlen(small) == sizeof small - 1);   // truncated, terminated
    diag_free(&d);

    FILE *err = tmpfile();
    diag_init(&d, err);
    CHECK(met_open(&d, "/nonexistent-dir/x/metrics.jsonl", false) == NULL);
    CHECK(strstr(fx_stream_text(err), "/nonexistent-dir/x/metrics.jsonl: error: cannot open metrics file") != NULL);
    diag_free(&d);
    fclose(err);
}

static void test_progress(void) {
    char buf[256];
    met_progress_format(buf, sizeof buf, 120, 1000, 1.2345, 1.9e-4, 12345, 201);
    CHECK_MSG(strcmp(buf, "step 120/1000  loss 1.2345  lr 1.9e-04  12,345 tok/s  ETA 3:21") == 0, "%s", buf);
    met_progress_format(buf, sizeof buf, 7, 0, 10.0, 2e-5, -1, -1);
    CHECK_MSG(strcmp(buf, "step 7  loss 10.0000  lr 2.0e-05") == 0, "%s", buf);
    met_progress_format(buf, sizeof buf, 1, 2, 0.5, 1e-3, 999.6, 3723);
    CHECK_MSG(strcmp(buf, "step 1/2  loss 0.5000  lr 1.0e-03  1,000 tok/s  ETA 1:02:03") == 0, "%s", buf);
    met_progress_format(buf, sizeof buf, 1, 2, NAN, 1e-3, 5, NAN);
    CHECK_MSG(strcmp(buf, "step 1/2  loss nan  lr 1.0e-03  5 tok/s") == 0, "%s", buf);

    met_group_thousands(buf, sizeof buf, 0);
    CHECK(strcmp(buf, "0") == 0);
    met_group_thousands(buf, sizeof buf, 999);
    CHECK(strcmp(buf, "999") == 0);
    met_group_thousands(buf, sizeof buf, 1000);
    CHECK(strcmp(buf, "1,000") == 0);
    met_group_thousands(buf, sizeof buf, -1234567);
    CHECK(strcmp(buf, "-1,234,567") == 0);
    met_format_duration(buf, sizeof buf, 0);
    CHECK(strcmp(buf, "0:00") == 0);
    met_format_duration(buf, sizeof buf, 59.2);
    CHECK(strcmp(buf, "1:00") == 0);
    met_format_duration(buf, sizeof buf, 36000);
    CHECK(strcmp(buf, "10:00:00") == 0);
    met_format_duration(buf, sizeof buf, -1);
    CHECK(strcmp(buf, "?") == 0);

    // piped: one plain line per draw
    FILE *f = tmpfile();
    MetProgress p;
    met_progress_init(&p, f);
    CHECK(!p.tty);
    met_progress_draw(&p, 1, 10, 2.0, 1e-4, 100, 9);
    met_progress_draw(&p, 2, 10, 1.5, 1e-4, 100, 8);
    met_progress_end(&p);
    CHECK_MSG(strcmp(fx_stream_text(f), "step 1/10  loss 2.0000  lr 1.0e-04  100 tok/s  ETA 0:09\n"
                               "step 2/10  loss 1.5000  lr 1.0e-04  100 tok/s  ETA 0:08\n") == 0,
              "%s", fx_stream_text(f));
    fclose(f);
    // terminal: \r redraws, a shorter line is padded over the longer one, end adds the newline
    f = tmpfile();
    met_progress_init(&p, f);
    p.tty = true;
    met_progress_draw(&p, 9, 10, 1.0, 1e-4, 12345, 1);
    met_progress_draw(&p, 10, 10, 1.0, 1e-4, -1, -1);
    met_progress_end(&p);
    CHECK_MSG(strcmp(fx_stream_text(f), "\rstep 9/10  loss 1.0000  lr 1.0e-04  12,345 tok/s  ETA 0:01"
                               "\rstep 10/10  loss 1.0000  lr 1.0e-04" "                       \n") == 0,
              "[%s]", fx_stream_text(f));
    fclose(f);
}

static void test_finite(void) {
    FILE *err = tmpfile();
    Diag d;
    diag_init(&d, err);
    CHECK(met_check_finite(&d, "loss", 1.5, 3) == 0);
    CHECK(met_check_finite(&d, "loss", NAN, 120) == -1);
    CHECK(met_check_finite(&d, "grad_norm", -INFINITY, 7) == -1);
    CHECK(d.errors == 2);
    const char *out = fx_stream_text(err);
    CHECK_MSG(strstr(out, "trlc: error: loss is NaN at step 120\n") != NULL, "%s", out);
    CHECK(strstr(out, "grad_norm is -inf at step 7") != NULL);
    CHECK(strstr(out, "hint: lower the learning rate") != NULL);
    diag_free(&d);
    fclose(err);
    // throughput over the last interval; ETA from the average step time since the (resumed) start
    MetRate r;
    double tps, eta;
    met_rate_start(&r, 100.0, 40, 5000);
    met_rate_update(&r, 100.0, 40, 5000, 100, &tps, &eta);
    CHECK(tps == -1 && eta == -1);   // no time, no step yet
    met_rate_update(&r, 110.0, 50, 25000, 100, &tps, &eta);
    CHECK(tps == 2000 && eta == 50);   // 20,000 tokens in 10 s; 1 s per step, 50 steps left
    met_rate_update(&r, 130.0, 60, 30000, 100, &tps, &eta);
    CHECK(tps == 250 && eta == 60);    // 30 s for 20 steps, 40 left
    met_rate_update(&r, 131.0, 100, 31000, 0, &tps, &eta);
    CHECK(tps == 1000 && eta == -1);   // unknown total
    double t0 = met_now(), t1 = met_now();
    CHECK(t1 >= t0 && t0 > 0);
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "metrics-work";
    mkdir(dir, 0777);
    test_jsonl(dir);
    test_progress();
    test_finite();
    return test_done("train.metrics");
}
