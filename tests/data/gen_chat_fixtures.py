#!/usr/bin/env python3
"""gen_chat_fixtures.py — expected chat-template renders for tests/data/test_chat.c.

Renders conversations with jinja2 over the REAL chat_template strings of Qwen3 and Qwen2.5
(/work/shared/data/tokenizers/*/tokenizer_config.json), the Qwen2-Instruct and Llama-3-Instruct
templates (copied below verbatim from their tokenizer_config.json) and the tool-free part of
Llama-3.1-Instruct's, the same way transformers' apply_chat_template does
(ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols, tojson with
ensure_ascii=False).
Writes tests/data/fixtures/chat_renders.json. CI never runs this; rerun it after changing cases:
    pip install jinja2 && python3 tests/data/gen_chat_fixtures.py [TOKENIZERS_DIR]
"""
import json, os, sys
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.ext import loopcontrols

TOK = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/tokenizers"
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "chat_renders.json")

QWEN2 = ("{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
         "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
         "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
         "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")
LLAMA3 = ("{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
          "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim"
          " + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}"
          "{{ content }}{% endfor %}{% if add_generation_prompt %}"
          "{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")

# The part of Meta's Llama-3.1-Instruct template that renders conversations without tools (its
# tools / builtin_tools / tool_calls branches are left out), with the default date string.
LLAMA31 = """{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

def load(name):
    with open(os.path.join(TOK, name, "tokenizer_config.json")) as f:
        return json.load(f)["chat_template"]

TEMPLATES = {"qwen3": load("qwen3"), "qwen2.5": load("qwen2.5"), "qwen2": QWEN2, "llama3": LLAMA3,
             "llama3.1": LLAMA31}

def U(c): return {"role": "user", "content": c}
def A(c): return {"role": "assistant", "content": c}
def S(c): return {"role": "system", "content": c}

CASES = [
    ("single", [U("What is 2+2?"), A("4")], False),
    ("system", [S("You are terse."), U("Hi"), A("Hello.")], False),
    ("multi", [U("Name a colour."), A("Blue."), U("Another?"), A("Green.")], False),
    ("think_multi", [U("Q1"), A("<think>\nstep one\n</think>\n\nA1"), U("Q2"),
                     A("<think>step two</think>A2")], False),
    ("think_last", [S("sys"), U("Solve x+1=3"), A("<think>\n\nx = 2\n\n</think>\n\nx is 2")], False),
    ("spaces", [U("  padded question \n"), A("\n answer with spaces  \n")], False),
    ("unicode", [U("Ça va? 中文 🙂"), A("très bien — 好的 👍")], False),
    ("gen_prompt", [S("Be brief."), U("Why is the sky blue?")], True),
    ("gen_only_user", [U("2+3=?")], True),
    ("reasoning_field", [U("q"), {"role": "assistant", "content": "ans", "reasoning_content": "\nthought\n"}], False),
    ("tool", [U("weather?"), A("calling"), {"role": "tool", "content": "sunny"},
              {"role": "tool", "content": "25C"}, A("It is sunny, 25C.")], False),
    ("empty_answer", [U("say nothing"), A("")], False),
    ("system_late", [U("a"), A("b"), S("new rules"), U("c"), A("d")], False),
    ("tool_quoted", [U("t?"), A("call"), {"role": "tool", "content": 'say "hi"\né'}, A("done")], False),
]

def main():
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = lambda x, **k: json.dumps(x, ensure_ascii=False)
    out = []
    for tname, src in TEMPLATES.items():
        tpl = env.from_string(src)
        for cname, msgs, gen in CASES:
            if tname in ("llama3", "qwen2") and cname.startswith("tool"):
                continue
            text = tpl.render(messages=msgs, add_generation_prompt=gen, bos_token="<|begin_of_text|>",
                              eos_token="<|im_end|>")
            out.append({"template": tname, "case": cname, "messages": msgs, "add_generation_prompt": gen,
                        "text": text})
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "w") as f:
        json.dump({"templates": TEMPLATES, "renders": out}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"wrote {len(out)} renders to {OUT}")

if __name__ == "__main__":
    main()
