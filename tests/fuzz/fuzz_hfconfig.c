// fuzz_hfconfig.c — a Hugging Face config.json text → hf_config_parse, then what callers derive
// from an accepted config: the expected tensor list, the parameter count (at most 2^44) and RoPE
// frequencies.
// Not fuzzed here: hf_config_check_checkpoint against weights (fuzz_safetensors covers the reader).
#include "diag.h"
#include "fuzz_util.h"
#include "hfconfig.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Diag d;
    diag_init(&d, fuzz_out());
    HfConfig *c = malloc(sizeof *c);
    if (c && hf_config_parse(&d, "config.json", (const char *)data, size, c) == 0) {
        FUZZ_ASSERT(d.errors == 0);
        FUZZ_ASSERT(c->vocab_size > 0 && c->hidden_size > 0 && c->num_hidden_layers > 0 && c->head_dim > 0);
        long n = hf_expected_tensors(c, NULL, 0);
        FUZZ_ASSERT(n > 0);
        if (n <= 4096) {
            HfTensorSpec *ts = malloc((size_t)n * sizeof *ts);
            if (ts) {
                FUZZ_ASSERT(hf_expected_tensors(c, ts, n) == n);
                free(ts);
            }
        }
        int64_t params = hf_param_count(c);   // refused above 2^44 (it overflowed int64 before)
        FUZZ_ASSERT(params > 0 && params <= (int64_t)1 << 44);
        if (c->head_dim <= 65536) {
            double *inv = malloc((size_t)(c->head_dim / 2 + 1) * sizeof *inv);
            if (inv) {
                hf_rope_inv_freq(c, inv);
                free(inv);
            }
        }
    } else if (c) {
        FUZZ_ASSERT(d.errors > 0);
    }
    free(c);
    diag_free(&d);
    return 0;
}
