// chat.h — chat templates: render a conversation (role, content) to the exact text a model's
// Hugging Face chat_template produces, with the byte spans a trainer should learn (each assistant
// turn's content and its end-of-turn token), then tokenize it token-exactly with a per-token
// trainable mask. Kinds: ChatML (Qwen2 / Qwen2.5 with their default system prompts, Qwen3 with its
// <think></think> handling), Llama-3, plain concatenation, and user format strings with
// {system} {prompt} {response}. Templates are recognised from tokenizer_config.json by distinctive
// substrings. Does not: run Jinja, render tools/tool calls (the `tool` role is rendered as the Qwen
// and Llama-3.1 templates do, tool_calls fields are ignored), or images.
#ifndef TRLC_CHAT_H
#define TRLC_CHAT_H
#include "diag.h"
#include "tokenizer.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ChatKind {
    CHAT_CHATML,   // <|im_start|>{role}\n{content}<|im_end|>\n  (Qwen2, Qwen2.5, generic ChatML)
    CHAT_QWEN3,    // ChatML + Qwen3's <think> block on assistant turns after the last user turn
    CHAT_LLAMA3,   // <|begin_of_text|><|start_header_id|>{role}<|end_header_id|>\n\n{content}<|eot_id|>
    CHAT_PLAIN,    // contents concatenated; assistant content + eos trainable
    CHAT_FORMAT,   // user format string with {system} {prompt} {response}
} ChatKind;

typedef struct ChatTemplate {
    ChatKind kind;
    char *default_system;  // CHATML: system turn rendered when the conversation has none, or NULL
    char *format;          // CHAT_FORMAT: the format string ("{{" and "}}" are literal braces)
    char *bos;             // text before the first turn (LLAMA3: "<|begin_of_text|>"), or NULL
    char *eos;             // PLAIN/FORMAT: text after each response (trainable), or NULL for none
    char *date;            // LLAMA3 with Llama-3.1's system preamble ("Cutting Knowledge Date: ...
                           // Today Date: <date>"), e.g. "26 Jul 2024"; NULL = Llama-3.0 layout
} ChatTemplate;

typedef struct ChatMsg {
    const char *role;      // "system" | "user" | "assistant" | "tool" (NUL-terminated)
    const char *content;   // UTF-8, content_len bytes (may contain NUL)
    size_t content_len;
    const char *reasoning; // Qwen3 `reasoning_content`, or NULL
    size_t reasoning_len;
} ChatMsg;

// Trainable bytes [begin, end) of the rendered text.
typedef struct ChatSpan {
    size_t begin, end;
} ChatSpan;

// A rendered conversation. Zero-initialise; chat_render resets and refills it; chat_render_free.
typedef struct ChatRender {
    char *text;            // NUL-terminated, len bytes
    size_t len, cap;
    ChatSpan *spans;       // sorted, disjoint
    size_t nspans, capspans;
} ChatRender;

// Template from a name: chatml | qwen2 | qwen2.5 | qwen3 | llama3 | llama3.1 | plain (llama3.1:
// the dated system preamble with date_string "26 Jul 2024"). Unknown name → error
// (with a did-you-mean) and nonzero.
int chat_named(Diag *d, const char *name, ChatTemplate *out);
// Template from a Jinja chat_template text, recognised by distinctive substrings. Nonzero with an
// error naming `where` when it is not one we render. Llama-3.1+ templates get the preamble with
// "26 Jul 2024", or today's date ("%d %b %Y", as transformers' strftime_now) for templates that
// call strftime_now (Llama-3.2).
int chat_from_jinja(Diag *d, const char *where, const char *jinja, ChatTemplate *out);
// Template from a tokenizer_config.json (its chat_template; bos/eos tokens). Nonzero on error.
int chat_from_config(Diag *d, const char *path, ChatTemplate *out);
// A custom format string, e.g. "User: {prompt}\nAssistant: ". Nonzero when it has an unknown
// {placeholder}, an unbalanced brace, or no {prompt}.
int chat_format(Diag *d, const char *fmt, ChatTemplate *out);
// The spec's `template = ...` value: "chat" (the model's own template, from tokenizer_config_path),
// a name (chat_named) or a format string (anything with a `{`). Nonzero with a diagnostic.
int chat_from_spec(Diag *d, const char *value, const char *tokenizer_config_path, ChatTemplate *out);
// Sets the end-of-sequence text PLAIN/FORMAT append after a response (copied; NULL clears).
int chat_set_eos(ChatTemplate *t, const char *eos);
// Deep copy (dst is overwritten). Nonzero on allocation failure.
int chat_copy(ChatTemplate *dst, const ChatTemplate *src);
void chat_free(ChatTemplate *t);

// Renders msgs. add_generation_prompt appends the assistant header (for prompts to generate from).
// Returns 0, or nonzero with *err set to a static message (bad role, FORMAT turn order, OOM).
int chat_render(const ChatTemplate *t, const ChatMsg *msgs, size_t n, bool add_generation_prompt,
                ChatRender *out, const char **err);
void chat_render_free(ChatRender *r);

// Tokenizes r->text exactly as tok_encode(text, add_special=false) does and sets (*trainable)[i]
// to 1 for tokens inside the trainable spans (a token straddling a span edge counts as trainable).
// ids is appended to after being emptied; *trainable is malloc'd (ids->n bytes; caller frees).
// Returns 0, or nonzero on allocation failure.
// How: byte-level tokenizers (GPT-2, Qwen, Llama-3) get each token's offset by spelling its
// vocabulary string against the text (accepted only when it spells the whole text exactly); else
// the segments between span edges are tokenized alone and, where they differ from the whole-string
// ids, each edge is located by tokenizing the text before it.
int chat_tokenize(const Tokenizer *tok, const ChatRender *r, TokIds *ids, uint8_t **trainable);
// The same without the byte-level shortcut (the general path; tests compare the two).
int chat_tokenize_general(const Tokenizer *tok, const ChatRender *r, TokIds *ids, uint8_t **trainable);

#endif
