// fuzz_checkdata.c — the first look `trlc check` takes at a data file (compiler/check_data.c):
// input byte 0 picks the file type (jsonl / json / csv) and the data format, byte 1 whether the
// spec names columns in `fields { }`; the rest is the data file, written to <scratch>/d.<ext> and
// named by a fixed spec (a from-scratch model, template chatml) checked with check_spec.
// Oracle: the status agrees with the errors reported.
// Not fuzzed here: the full read of the file (fuzz_dataset).
#include "arena.h"
#include "check.h"
#include "diag.h"
#include "fuzz_util.h"
#include "load.h"
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 2) return 0;
    static const char *ext[] = {"jsonl", "json", "csv"};
    static const char *fmt[] = {"text", "prompt_response", "messages", "preference", "prompt_answer"};
    static const char *objective[] = {"pretrain { }", "sft { }", "sft { }", "dpo { }",
                                      "grpo { group = 2; reward r { fn = exact_number; field = answer; } }"};
    int type = data[0] % 3, f = (data[0] / 3) % 5;
    char name[16], path[1024], spath[1024];
    snprintf(name, sizeof name, "d.%s", ext[type]);
    FUZZ_ASSERT(fuzz_write(name, data + 2, size - 2, path, sizeof path) == 0);
    snprintf(spath, sizeof spath, "%s/spec.trl", fuzz_dir());
    char spec_text[2048];
    int n = snprintf(spec_text, sizeof spec_text,
                     "trl 1;\nimport \"llama\";\n"
                     "model m { arch = llama; config { vocab = 300; hidden = 8; layers = 1; heads = 2; ffn = 16; "
                     "max_pos = 64; } tokenizer = bytes; }\n"
                     "data train { from = \"%s\"; format = %s; template = chatml; max_len = 32 tokens;%s }\n"
                     "objective %s\ntrain { optimizer = adamw { lr = 1e-3; }; batch = 2; steps = 1; }\n",
                     name, fmt[f], (data[1] & 1) ? " fields { prompt = q; response = a; text = t; messages = m; }" : "",
                     objective[f]);
    Diag d;
    diag_init(&d, fuzz_out());
    Arena a = {0};
    LoadedSpec spec = {0};
    FUZZ_ASSERT(load_spec_text(&d, &a, spath, spec_text, (size_t)n, &spec) == 0);
    CheckedSpec *cs = arena_alloc(&a, sizeof *cs);
    int rc = check_spec(&d, &a, &spec, cs);
    FUZZ_ASSERT((rc == -1) == (d.errors > 0));
    arena_free(&a);
    diag_free(&d);
    return 0;
}
