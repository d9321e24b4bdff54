// eval.c — generation-based evaluation (gen.h): greedy decoding of eval prompts and exact match
// against the references, either of the final number (prompt_answer data such as GSM8K, where the
// model reasons and then writes `#### 18`) or of the whole response (prompt_response data).
// Not here: the decoding itself (gen.c), reading the data set (runtime/io/dataset.h).
#include "gen.h"
#include "dataset.h"
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

// number = "-"? digit+ ("," digit+)* ("." digit+)?   — the last one in the text is kept
bool gen_extract_number(const char *text, char *out, size_t cap) {
    if (!text || !out || cap < 2) return false;
    const char *from = text, *h;
    for (const char *p = text; (h = strstr(p, "####")) != NULL; p = h + 4) from = h + 4;
    const char *best = NULL, *best_end = NULL;
    for (const char *p = from; *p;) {
        const char *s = p;
        if (*p == '-' && isdigit((unsigned char)p[1])) p++;
        if (!isdigit((unsigned char)*p)) {
            p = s + 1;
            continue;
        }
        while (isdigit((unsigned char)*p) || (*p == ',' && isdigit((unsigned char)p[1]))) p++;
        if (*p == '.' && isdigit((unsigned char)p[1])) {
            p++;
            while (isdigit((unsigned char)*p)) p++;
        }
        best = s;
        best_end = p;
    }
    if (!best) return false;
    // normalise: no commas, no leading zeros, no trailing fractional zeros
    size_t n = 0;
    bool neg = *best == '-';
    const char *p = best + neg;
    char buf[256];
    for (; p < best_end && n + 1 < sizeof buf; p++)
        if (*p != ',') buf[n++] = *p;
    buf[n] = 0;
    char *dot = strchr(buf, '.');
    if (dot) {
        char *e = buf + n;
        while (e > dot + 1 && e[-1] == '0') *--e = 0;
        if (e == dot + 1) *dot = 0;
    }
    const char *digits = buf;
    while (digits[0] == '0' && isdigit((unsigned char)digits[1])) digits++;
    if (!strcmp(digits, "0")) neg = false;
    if (strlen(digits) + 2 > cap) return false;
    snprintf(out, cap, "%s%s", neg ? "-" : "", digits);
    return true;
}

bool gen_answer_matches(const char *response, const char *answer) {
    char a[256], b[256];
    return gen_extract_number(response, a, sizeof a) && gen_extract_number(answer, b, sizeof b) && !strcmp(a, b);
}

// text without leading and trailing white space, compared with ref the same way
static bool same_trimmed(const char *x, size_t nx, const char *y) {
    while (nx && isspace((unsigned char)*x)) x++, nx--;
    while (nx && isspace((unsigned char)x[nx - 1])) nx--;
    size_t ny = strlen(y);
    while (ny && isspace((unsigned char)*y)) y++, ny--;
    while (ny && isspace((unsigned char)y[ny - 1])) ny--;
    return nx == ny && !memcmp(x, y, nx);
}

int gen_eval_exact_match(GenModel *m, const int32_t *const *prompts, const int *plens, const char *const *answers,
                         int n, bool numeric, int max_new, int batch, double *accuracy) {
    *accuracy = 0;
    const Tokenizer *tok = gen_model_tokenizer(m);
    if (!m || n <= 0) return n == 0 ? 0 : -1;
    if (!tok) {
        diag_plain_error(gen_model_diag(m), "generation-based evaluation needs the model's tokenizer");
        return -1;
    }
    GenOptions o;
    gen_options_init(&o);
    o.max_new = max_new > 0 ? max_new : 256;
    o.nstop_ids = gen_model_eos(m, o.stop_ids, GEN_MAX_STOP);
    if (batch <= 0) batch = 8;
    int hits = 0;
    for (int i = 0; i < n; i += batch) {
        int b = n - i < batch ? n - i : batch;
        GenResult r;
        if (gen_generate(m, prompts + i, plens + i, b, &o, &r)) return -1;
        for (int k = 0; k < b; k++) {
            size_t len = 0;
            char *txt = tok_decode(tok, r.ids[k], (size_t)r.len[k], true, &len);
            if (txt && answers[i + k])
            {
                char num[256];
                bool by_number = numeric && gen_extract_number(answers[i + k], num, sizeof num);
                hits += by_number ? gen_answer_matches(txt, answers[i + k]) : same_trimmed(txt, len, answers[i + k]);
            }
            free(txt);
        }
        gen_result_free(&r);
    }
    *accuracy = (double)hits / n;
    return 0;
}

// One row's prompt and reference text (malloc'd). Returns 1 when usable, 0 to skip, -1 on error.
static int row_case(GenModel *m, DsLoader *l, size_t i, int32_t **prompt, int *plen, char **ref, bool *numeric) {
    DsExample ex = {0};
    if (ds_get(l, i, &ex)) return -1;
    size_t first = ex.n;
    for (size_t k = 0; k < ex.n; k++)
        if (ex.labels[k] >= 0) {
            first = k;
            break;
        }
    int rc = 0;
    *numeric = ex.answer != NULL;
    if (first > 0 && first <= (1u << 24) && (ex.answer || first < ex.n)) {
        *prompt = malloc(first * sizeof **prompt);
        if (ex.answer) *ref = strdup(ex.answer);
        else {
            size_t n = ex.n - first, len = 0;
            int32_t eos = ds_eos_id(l);
            if (n > 0 && ex.ids[ex.n - 1] == eos) n--;
            *ref = tok_decode(gen_model_tokenizer(m), ex.ids + first, n, true, &len);
        }
        if (*prompt && *ref) {
            memcpy(*prompt, ex.ids, first * sizeof **prompt);
            *plen = (int)first;
            rc = 1;
        } else {
            free(*prompt);
            free(*ref);
            *prompt = NULL;
            *ref = NULL;
            diag_plain_error(gen_model_diag(m), "out of memory");
            rc = -1;
        }
    }
    ds_example_free(&ex);
    return rc;
}

int gen_eval_dataset(GenModel *m, DsLoader *eval, int max_new, int batch, long *correct, long *total) {
    *correct = *total = 0;
    if (!m || !eval) return -1;
    if (!gen_model_tokenizer(m)) {
        diag_plain_error(gen_model_diag(m), "generation-based evaluation needs the model's tokenizer");
        return -1;
    }
    if (batch <= 0) batch = 8;
    if (batch > 256) batch = 256;
    gen_model_add_eos(m, ds_eos_id(eval));
    size_t rows = ds_num_rows(eval);
    int32_t **prompts = calloc((size_t)batch, sizeof *prompts);
    int *plens = calloc((size_t)batch, sizeof *plens);
    char **refs = calloc((size_t)batch, sizeof *refs);
    bool *num = calloc((size_t)batch, sizeof *num);
    int rc = prompts && plens && refs && num ? 0 : -1;
    if (rc) diag_plain_error(gen_model_diag(m), "out of memory");
    for (size_t i = 0; rc == 0 && i < rows;) {
        int nb = 0;
        for (; i < rows && nb < batch; i++) {
            int r = row_case(m, eval, i, &prompts[nb], &plens[nb], &refs[nb], &num[nb]);
            if (r < 0) {
                rc = -1;
                break;
            }
            nb += r;
        }
        // rows of one batch may mix kinds only in theory (one format per data set)
        for (int k = 0; rc == 0 && k < nb; k++) {
            double acc;
            int j = k;
            while (j < nb && num[j] == num[k]) j++;
            if (gen_eval_exact_match(m, (const int32_t *const *)prompts + k, plens + k, (const char *const *)refs + k,
                                     j - k, num[k], max_new, j - k, &acc)) {
                rc = -1;
                break;
            }
            *correct += (long)(acc * (j - k) + 0.5);
            *total += j - k;
            k = j - 1;
        }
        for (int k = 0; k < nb; k++) {
            free(prompts[k]);
            free(refs[k]);
            prompts[k] = NULL;
            refs[k] = NULL;
        }
    }
    free(prompts);
    free(plens);
    free(refs);
    free(num);
    return rc;
}
