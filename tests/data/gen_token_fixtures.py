#!/usr/bin/env python3
"""gen_token_fixtures.py — token-exact expectations for chat_tokenize (tests/data/test_chat_tokens.c).

For each case: the text is rendered by jinja2 over the real chat template (or, for format-string
templates, by plain concatenation as trlc defines it), the trainable character spans are found
independently (each assistant turn's content up to and including its end-of-turn token, located
via the render of the conversation before that turn with add_generation_prompt), and the HF
`tokenizers` library gives the ids of the WHOLE text and each token's offsets; a token is trainable
when its offsets overlap a span. Writes tests/data/fixtures/chat_tokens.json.
    pip install jinja2 tokenizers && python3 tests/data/gen_token_fixtures.py
"""
import json, os, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols
from tokenizers import Tokenizer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data"
TOKS = {"tiny-qwen3": os.path.join(ROOT, "tests/fixtures/tiny-qwen3/tokenizer.json"),
        "phi-2": os.path.join(SHARED, "tokenizers/phi-2/tokenizer.json")}
EOS = {"tiny-qwen3": "<|endoftext|>", "phi-2": "<|endoftext|>", "llama2": "</s>"}
sys.path.insert(0, HERE)
from gen_chat_fixtures import TEMPLATES  # noqa: E402  (the same real templates)

END = {"qwen3": "<|im_end|>", "qwen2.5": "<|im_end|>", "qwen2": "<|im_end|>", "llama3": "<|eot_id|>",
       "llama3.1": "<|eot_id|>"}

def U(c): return {"role": "user", "content": c}
def A(c): return {"role": "assistant", "content": c}
def S(c): return {"role": "system", "content": c}

CONVS = [
    [U("What is 2+2?"), A("4")],
    [S("Be brief."), U("Hello there"), A(" Hi! How can I help?"), U("Count to 3"), A("1 2 3")],
    [U("Ça va? 中文"), A("très bien — 好的 👍")],
    [U("Solve"), A("<think>\nx=2\n</think>\n\nx is 2")],
    [U("spaces"), A("\n\n  leading newlines and spaces")],
]
FORMATS = [("User: {prompt}\nAssistant:{response}", [U("abc"), A(" def")]),
           ("{prompt}{response}", [U("abc"), A("def")]),            # a word split across the edge
           ("{prompt}{response}", [U("12"), A("34")]),
           ("Q: {prompt}\nA: ", [U("one"), A("two"), U("three"), A("four")])]

def jinja_case(env, tname, msgs):
    tpl = env.from_string(TEMPLATES[tname])
    kw = dict(bos_token="<|begin_of_text|>", eos_token="<|im_end|>")
    text = tpl.render(messages=msgs, add_generation_prompt=False, **kw)
    spans = []
    for i, m in enumerate(msgs):
        if m["role"] != "assistant":
            continue
        prefix = tpl.render(messages=msgs[:i], add_generation_prompt=True, **kw)
        assert text.startswith(prefix), (tname, i)
        b = len(prefix)
        e = text.index(END[tname], b) + len(END[tname])
        spans.append((b, e))
    return text, spans

def format_case(fmt, msgs, eos):
    text, spans = "", []
    for i in range(0, len(msgs), 2):
        p, r = msgs[i]["content"], msgs[i + 1]["content"]
        head, _, tail = fmt.partition("{response}")
        text += head.replace("{prompt}", p)
        spans.append((len(text), len(text) + len(r) + len(eos)))
        text += r + eos + tail.replace("{prompt}", p)
    return text, spans

def mask_for(enc, spans):
    return [int(any(s < e2 and b2 < e for b2, e2 in spans for s, e in [off] if e > s))
            for off in enc.offsets]

def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    out = []
    for tokname, path in TOKS.items():
        tok = Tokenizer.from_file(path)
        eos = EOS[tokname]
        cases = [] if tokname == "llama2" else [(t, None, c) for t in ("qwen3", "qwen2.5", "llama3", "llama3.1") for c in CONVS]
        cases += [(None, f, c) for f, c in FORMATS]
        for tname, fmt, msgs in cases:
            if tname:
                text, spans = jinja_case(env, tname, msgs)
            else:
                text, spans = format_case(fmt, msgs, eos)
            enc = tok.encode(text, add_special_tokens=False)
            # byte offsets of the spans are what trlc uses; offsets from `tokenizers` are chars
            out.append({"tokenizer": tokname, "template": tname, "format": fmt, "eos": eos if fmt else None,
                        "messages": msgs, "text": text, "ids": enc.ids, "mask": mask_for(enc, spans)})
    with open(os.path.join(HERE, "fixtures", "chat_tokens.json"), "w") as f:
        json.dump(out, f, ensure_ascii=False)
        f.write("\n")
    print(f"wrote {len(out)} cases")

if __name__ == "__main__":
    main()
