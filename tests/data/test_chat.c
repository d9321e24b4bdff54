// test_chat.c — chat templates: every render equals the jinja2 render of the real chat_template
// (fixtures/chat_renders.json from gen_chat_fixtures.py), templates are recognised from their Jinja
// text, trainable spans cover exactly the assistant contents + end-of-turn token, format strings,
// and chat_tokenize's mask with the byte tokenizer (one token per byte: mask == spans).
#include "chat.h"
#include "test.h"
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#ifndef FIXTURES
#define FIXTURES "tests/data/fixtures"
#endif

static int load_msgs(json_t *arr, ChatMsg *m, size_t cap) {
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (i >= cap) return -1;
        json_t *c = json_object_get(v, "content"), *r = json_object_get(v, "reasoning_content");
        m[i] = (ChatMsg){json_string_value(json_object_get(v, "role")), json_string_value(c),
                         json_string_length(c), r ? json_string_value(r) : NULL, r ? json_string_length(r) : 0};
    }
    return (int)json_array_size(arr);
}

static const char *end_token(ChatKind k) { return k == CHAT_LLAMA3 ? "<|eot_id|>" : "<|im_end|>"; }

int main(void) {
    FILE *quiet = fopen("/dev/null", "w");
    Diag d;
    diag_init(&d, quiet);
    json_error_t je;
    json_t *fx = json_load_file(FIXTURES "/chat_renders.json", 0, &je);
    CHECK_MSG(fx != NULL, "%s: %s", FIXTURES "/chat_renders.json", je.text);
    if (!fx) return test_done("data.chat");

    // Recognition from the real Jinja templates.
    json_t *tpls = json_object_get(fx, "templates");
    enum { NT = 5 };
    const char *names[NT] = {"qwen3", "qwen2.5", "qwen2", "llama3", "llama3.1"};
    ChatKind kinds[NT] = {CHAT_QWEN3, CHAT_CHATML, CHAT_CHATML, CHAT_LLAMA3, CHAT_LLAMA3};
    ChatTemplate from_jinja[NT];
    for (int i = 0; i < NT; i++) {
        const char *src = json_string_value(json_object_get(tpls, names[i]));
        CHECK(src != NULL);
        CHECK(chat_from_jinja(&d, names[i], src ? src : "", &from_jinja[i]) == 0);
        CHECK(from_jinja[i].kind == kinds[i]);
    }
    CHECK(from_jinja[1].default_system && strstr(from_jinja[1].default_system, "Alibaba"));
    CHECK(from_jinja[2].default_system && !strcmp(from_jinja[2].default_system, "You are a helpful assistant."));
    CHECK(from_jinja[3].date == NULL && from_jinja[4].date && !strcmp(from_jinja[4].date, "26 Jul 2024"));

    int nrender = 0, nspan_ok = 0;
    json_t *renders = json_object_get(fx, "renders"), *r;
    size_t ri;
    json_array_foreach(renders, ri, r) {
        const char *tname = json_string_value(json_object_get(r, "template"));
        const char *cname = json_string_value(json_object_get(r, "case"));
        const char *want = json_string_value(json_object_get(r, "text"));
        size_t want_len = json_string_length(json_object_get(r, "text"));
        int gen = json_is_true(json_object_get(r, "add_generation_prompt"));
        ChatMsg m[16];
        int n = load_msgs(json_object_get(r, "messages"), m, 16);
        CHECK(n >= 0);
        for (int via = 0; via < 2; via++) {   // by name and from the Jinja text
            ChatTemplate t;
            int ti = 0;
            while (ti < NT && strcmp(names[ti], tname)) ti++;
            CHECK(ti < NT);
            if (ti == NT) break;
            if (via == 0) CHECK(chat_named(&d, tname, &t) == 0);
            else CHECK(chat_copy(&t, &from_jinja[ti]) == 0);
            ChatRender out = {0};
            const char *err = NULL;
            CHECK(chat_render(&t, m, (size_t)n, gen, &out, &err) == 0);
            CHECK_MSG(out.len == want_len && memcmp(out.text, want, want_len) == 0,
                      "%s/%s:\n got: %s\nwant: %s", tname, cname, out.text ? out.text : "", want);
            nrender++;
            // Spans: one per assistant turn, each ending with the end-of-turn token, containing
            // the (trimmed) assistant answer text.
            size_t nasst = 0;
            for (int k = 0; k < n; k++) nasst += !strcmp(m[k].role, "assistant");
            int ok = out.nspans == nasst;
            const char *et = end_token(t.kind);
            for (size_t s = 0; s < out.nspans && ok; s++) {
                ChatSpan sp = out.spans[s];
                ok = sp.end <= out.len && sp.begin < sp.end && sp.end - sp.begin >= strlen(et) &&
                     !memcmp(out.text + sp.end - strlen(et), et, strlen(et));
                // the byte before a span ends the assistant header
                ok = ok && sp.begin > 0 && out.text[sp.begin - 1] == '\n';
            }
            CHECK_MSG(ok, "%s/%s: bad spans", tname, cname);
            nspan_ok += ok;
            chat_render_free(&out);
            chat_free(&t);
        }
    }
    printf("renders compared: %d, span sets ok: %d\n", nrender, nspan_ok);
    CHECK(nrender == 132);
    for (int i = 0; i < NT; i++) chat_free(&from_jinja[i]);

    // Unknown names and templates are errors with hints, not crashes.
    ChatTemplate t;
    CHECK(chat_named(&d, "chatlm", &t) != 0);
    CHECK(chat_from_jinja(&d, "x", "{{ messages }}", &t) != 0);
    // Llama-3.2 templates take today's date from strftime_now: "DD Mon YYYY".
    CHECK(chat_from_jinja(&d, "x", "<|start_header_id|> Cutting Knowledge Date strftime_now", &t) == 0);
    CHECK(t.date && strlen(t.date) == 11 && t.date[2] == ' ' && t.date[6] == ' ');
    chat_free(&t);
    CHECK(chat_format(&d, "User: {promt}", &t) != 0);
    CHECK(chat_format(&d, "User: {prompt", &t) != 0);
    CHECK(chat_format(&d, "User: }", &t) != 0);
    CHECK(chat_format(&d, "no placeholder", &t) != 0);
    CHECK(chat_format(&d, "{prompt}{prompt}", &t) != 0);

    // A format string: {system}, {prompt}, {response}, literal braces, EOS after the response.
    CHECK(chat_format(&d, "[{system}] User: {prompt} {{x}}\nAssistant: {response}\n", &t) == 0);
    CHECK(chat_set_eos(&t, "</s>") == 0);
    ChatMsg conv[] = {{"system", "sys", 3, NULL, 0}, {"user", "hi", 2, NULL, 0}, {"assistant", "yo", 2, NULL, 0},
                      {"user", "again", 5, NULL, 0}, {"assistant", "ok", 2, NULL, 0}};
    ChatRender out = {0};
    const char *err = NULL;
    CHECK(chat_render(&t, conv, 5, false, &out, &err) == 0);
    const char *want = "[sys] User: hi {x}\nAssistant: yo</s>\n[sys] User: again {x}\nAssistant: ok</s>\n";
    CHECK_MSG(out.text && !strcmp(out.text, want), "got %s", out.text ? out.text : "");
    CHECK(out.nspans == 2);
    if (out.nspans == 2) {
        CHECK(!strncmp(out.text + out.spans[0].begin, "yo</s>", out.spans[0].end - out.spans[0].begin));
        CHECK(out.spans[0].end - out.spans[0].begin == 6 && out.spans[1].end - out.spans[1].begin == 6);
    }
    CHECK(chat_render(&t, conv, 2, true, &out, &err) == 0);   // generation prompt stops at {response}
    CHECK(out.text && !strcmp(out.text, "[sys] User: hi {x}\nAssistant: "));
    CHECK(out.nspans == 0);
    CHECK(chat_render(&t, conv + 2, 1, false, &out, &err) != 0 && err != NULL);   // starts with assistant
    CHECK(chat_render(&t, conv, 2, false, &out, &err) != 0);   // ends on a user turn
    ChatMsg bad[] = {{"narrator", "x", 1, NULL, 0}};
    CHECK(chat_render(&t, bad, 1, false, &out, &err) != 0);
    chat_free(&t);

    // Format without {response}: the response follows the format.
    CHECK(chat_format(&d, "Q: {prompt}\nA: ", &t) == 0);
    CHECK(chat_render(&t, conv + 1, 2, false, &out, &err) == 0);
    CHECK(out.text && !strcmp(out.text, "Q: hi\nA: yo") && out.nspans == 1);
    chat_free(&t);

    // chat_tokenize with the byte tokenizer: one id per byte; the mask is exactly the spans.
    Tokenizer *bytes = tok_new_bytes();
    CHECK(bytes != NULL);
    CHECK(chat_named(&d, "qwen3", &t) == 0);
    ChatMsg qa[] = {{"user", "Q?", 2, NULL, 0}, {"assistant", "A!", 2, NULL, 0}};
    CHECK(chat_render(&t, qa, 2, false, &out, &err) == 0);
    TokIds ids = {0};
    uint8_t *mask = NULL;
    CHECK(chat_tokenize(bytes, &out, &ids, &mask) == 0);
    CHECK(ids.n == out.len);
    int same = ids.n == out.len, nmask = 0;
    for (size_t i = 0; i < ids.n && same; i++) {
        same = ids.v[i] == (unsigned char)out.text[i];
        int in = 0;
        for (size_t s = 0; s < out.nspans; s++) in |= i >= out.spans[s].begin && i < out.spans[s].end;
        same = same && mask[i] == in;
        nmask += mask[i];
    }
    CHECK(same);
    CHECK(nmask == (int)strlen("<think>\n\n</think>\n\nA!<|im_end|>"));
    free(mask);
    tok_ids_free(&ids);
    chat_render_free(&out);
    chat_free(&t);
    tok_free(bytes);

    json_decref(fx);
    diag_free(&d);
    fclose(quiet);
    return test_done("data.chat");
}
