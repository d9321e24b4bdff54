// test_chat_tokens.c — chat_tokenize against the HF `tokenizers` library: for each fixture case
// (fixtures/chat_tokens.json, from gen_token_fixtures.py) the ids must equal the reference ids of
// the whole rendered text, and the trainable mask must equal the reference mask computed from
// token offsets (a token is trainable when it overlaps an assistant span). Cases include edges
// that fall inside a token ("{prompt}{response}" with "abc" + "def"). Tokenizers: tiny-qwen3
// (tests/fixtures, ChatML specials) and phi-2 (GPT-2 vocabulary, from shared data when present).
#include "chat.h"
#include "test.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURES
#define FIXTURES "tests/data/fixtures"
#endif
#ifndef TOK_TINY_QWEN3
#define TOK_TINY_QWEN3 "tests/fixtures/tiny-qwen3/tokenizer.json"
#endif
#ifndef TRLC_SHARED_DATA
#define TRLC_SHARED_DATA "/work/shared/data"
#endif

int main(void) {
    Diag d;
    diag_init(&d, stderr);
    json_error_t je;
    json_t *fx = json_load_file(FIXTURES "/chat_tokens.json", 0, &je);
    CHECK_MSG(fx != NULL, "%s", je.text);
    if (!fx) return test_done("data.chat_tokens");
    const char *tnames[2] = {"tiny-qwen3", "phi-2"};
    const char *tpaths[2] = {TOK_TINY_QWEN3, TRLC_SHARED_DATA "/tokenizers/phi-2/tokenizer.json"};
    Tokenizer *toks[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(tpaths[i], "r");
        if (!f) {
            printf("skipping %s: %s not present\n", tnames[i], tpaths[i]);
            continue;
        }
        fclose(f);
        toks[i] = tok_load(&d, tpaths[i]);
        CHECK_MSG(toks[i] != NULL, "cannot load %s", tpaths[i]);
    }
    int ncases = 0, nid_ok = 0, nmask_ok = 0, nstraddle = 0;
    size_t i;
    json_t *c;
    json_array_foreach(fx, i, c) {
        const char *tn = json_string_value(json_object_get(c, "tokenizer"));
        int ti = tn && !strcmp(tn, "phi-2");
        if (!toks[ti]) continue;
        ChatTemplate t;
        const char *tpl = json_string_value(json_object_get(c, "template"));
        if (tpl) {
            CHECK(chat_named(&d, tpl, &t) == 0);
        } else {
            CHECK(chat_format(&d, json_string_value(json_object_get(c, "format")), &t) == 0);
            CHECK(chat_set_eos(&t, json_string_value(json_object_get(c, "eos"))) == 0);
        }
        json_t *msgs = json_object_get(c, "messages");
        ChatMsg m[16];
        size_t n = json_array_size(msgs);
        if (n > 16) n = 16;
        for (size_t k = 0; k < n; k++) {
            json_t *v = json_array_get(msgs, k), *ct = json_object_get(v, "content");
            m[k] = (ChatMsg){json_string_value(json_object_get(v, "role")), json_string_value(ct),
                             json_string_length(ct), NULL, 0};
        }
        ChatRender r = {0};
        const char *err = NULL;
        CHECK(chat_render(&t, m, n, false, &r, &err) == 0);
        const char *want_text = json_string_value(json_object_get(c, "text"));
        CHECK_MSG(r.text && !strcmp(r.text, want_text), "case %zu: render differs", i);
        TokIds ids = {0};
        uint8_t *mask = NULL;
        CHECK(chat_tokenize(toks[ti], &r, &ids, &mask) == 0);
        json_t *wid = json_object_get(c, "ids"), *wm = json_object_get(c, "mask");
        int id_ok = ids.n == json_array_size(wid), mask_ok = id_ok;
        for (size_t k = 0; id_ok && k < ids.n; k++) {
            id_ok &= ids.v[k] == (int32_t)json_integer_value(json_array_get(wid, k));
            mask_ok &= mask[k] == (uint8_t)json_integer_value(json_array_get(wm, k));
        }
        mask_ok &= id_ok;
        // The general path (no byte-level shortcut) must give the same ids and mask.
        TokIds gids = {0};
        uint8_t *gmask = NULL;
        CHECK(chat_tokenize_general(toks[ti], &r, &gids, &gmask) == 0);
        int gen_ok = gids.n == ids.n && gmask && !memcmp(gids.v, ids.v, ids.n * sizeof *ids.v) &&
                     !memcmp(gmask, mask, ids.n);
        CHECK_MSG(gen_ok, "case %zu (%s): the general path differs", i, tn);
        free(gmask);
        tok_ids_free(&gids);
        // Is some span edge inside a token? (segment-wise tokenization would differ there)
        TokIds seg = {0};
        size_t pos = 0;
        for (size_t s = 0; s < r.nspans; s++) {
            tok_encode(toks[ti], r.text + pos, r.spans[s].begin - pos, false, &seg);
            tok_encode(toks[ti], r.text + r.spans[s].begin, r.spans[s].end - r.spans[s].begin, false, &seg);
            pos = r.spans[s].end;
        }
        tok_encode(toks[ti], r.text + pos, r.len - pos, false, &seg);
        nstraddle += seg.n != ids.n || memcmp(seg.v, ids.v, ids.n * sizeof *ids.v) != 0;
        tok_ids_free(&seg);
        CHECK_MSG(id_ok, "case %zu (%s, %s): ids differ from the reference", i, tn, tpl ? tpl : "format");
        CHECK_MSG(mask_ok, "case %zu (%s, %s): mask differs from the reference", i, tn, tpl ? tpl : "format");
        ncases++;
        nid_ok += id_ok;
        nmask_ok += mask_ok;
        free(mask);
        tok_ids_free(&ids);
        chat_render_free(&r);
        chat_free(&t);
    }
    printf("cases: %d, ids equal: %d, masks equal: %d, with a span edge inside a token: %d\n", ncases, nid_ok,
           nmask_ok, nstraddle);
    CHECK(ncases > 0);
    if (toks[0] && toks[1]) CHECK(nstraddle > 0);   // the slow path was exercised
    for (int k = 0; k < 2; k++) tok_free(toks[k]);
    json_decref(fx);
    diag_free(&d);
    return test_done("data.chat_tokens");
}
