#!/usr/bin/python3
# make_corpus.py — (re)builds the seed corpora tests/fuzz/corpus/<kind>/ from files already in the
# tree (tests/*/fixtures, examples, specs) and, for tokenizer configs, /work/shared/data.
# Run: /usr/bin/python3 tests/fuzz/make_corpus.py [checkpoint_dir]   (from the repository root)
# checkpoint_dir: a checkpoint-<step>/ written by ckpt_save (state.json, model.safetensors,
# optimizer.safetensors); the committed seed was made from a 2-tensor AdamW checkpoint at step 3.
# Multi-file inputs are joined with the separators the harnesses split at (see fuzz_<kind>.c).
# The corpora are seeds only: libFuzzer grows its own working corpus elsewhere (README.md).
import glob, json, os, re, sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests/fuzz/corpus")
SHARED = os.path.join(os.path.dirname(ROOT), "shared/data")
FILE_SEP = b"\n@@FILE@@\n"


def rd(p):
    with open(os.path.join(ROOT, p) if not os.path.isabs(p) else p, "rb") as f:
        return f.read()


def relocate(p):
    """A spec's text with each quoted path that exists beside it made relative to examples/language,
    where fuzz_spec.c names its input."""
    src, dst = os.path.dirname(p), os.path.join(ROOT, "examples/language")

    def fix(m):
        q = m.group(1)
        full = os.path.normpath(os.path.join(src, q))
        return '"%s"' % os.path.relpath(full, dst) if q and os.path.exists(full) else m.group(0)
    return re.sub(r'"([^"\n]*)"', fix, rd(p).decode()).encode()


def put(kind, name, data):
    d = os.path.join(OUT, kind)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    # Seeds are (re)written, never removed: corpus/cli and corpus/gen (15adc18) and the checkpoint seed
    # (without an argument) are not made here, and a rerun must not delete them.
    # spec: examples, specs, front-end samples, a quarter of the broken specs, two stdlib modules
    for p in sorted(glob.glob(ROOT + "/examples/*/*.trl") + glob.glob(ROOT + "/specs/*.trl")):
        put("spec", os.path.basename(p), rd(p))
    for p in sorted(glob.glob(ROOT + "/tests/front/ok/*.trl")):
        put("spec", "front_" + os.path.basename(p), rd(p))
    for i, p in enumerate(sorted(glob.glob(ROOT + "/tests/check/broken/*.trl"))):
        if i % 4 == 3:
            put("spec", "broken_" + os.path.basename(p), rd(p))
    # specs that `trlc check` compiles to a training step and plans (tests/run, tests/gpu, tests/check/
    # memory): their relative paths rewritten for examples/language/fuzz.trl, so each reaches the
    # compile step, fusion and the memory plan (LoRA, QLoRA, DPO, ORPO, KD, recompute, custom arch)
    for p in sorted(glob.glob(ROOT + "/tests/run/*.trl") + glob.glob(ROOT + "/tests/gpu/specs/*.trl") +
                    glob.glob(ROOT + "/tests/check/memory/*.trl")):
        sub = os.path.basename(os.path.dirname(p))
        put("spec", "plan_%s_%s" % (sub, os.path.basename(p)), relocate(p))
    for loss in ("ipo", "hinge"):   # dpo's other losses, through --set
        put("spec", "setok_dpo_%s.trl" % loss, relocate(ROOT + "/tests/run/dpo.trl") + b"\n@@SET@@\nobjective.dpo.loss=" +
            loss.encode() + b"\nobjective.dpo.label_smoothing=0.1")
    for m in ("llama", "nn"):
        put("spec", "stdlib_%s.trl" % m, rd("stdlib/%s.trl" % m))
    sets = b"train.optimizer.lr=1e-4\nlora.policy.rank=8\nmodel.policy.config.layers=2\ntrain.seed=((((1\nnope=3"
    for p in ("examples/language/sft-lora.trl", "examples/language/scratch.trl"):
        put("spec", "set_" + os.path.basename(p), rd(p) + b"\n@@SET@@\n" + sets)
    # overrides that all apply, so the overridden spec is compiled and planned too
    sets = b"train.optimizer.lr=1e-4\ntrain.recompute=true\ntrain.precision=bf16\ntrain.batch=3"
    for p in ("examples/language/sft-lora.trl", "examples/language/scratch.trl"):
        put("spec", "setok_" + os.path.basename(p), rd(p) + b"\n@@SET@@\n" + sets)
    # safetensors: small valid files and the malformed corpus of tests/io
    for p in sorted(glob.glob(ROOT + "/tests/io/bad/*.safetensors")):
        put("safetensors", os.path.basename(p), rd(p))
    for p in ("tests/io/fixtures/dtypes.safetensors", "tests/fixtures/tiny-llama/reference.safetensors",
              "tests/fixtures/peft-tiny-qwen3/adapter_model.safetensors"):
        put("safetensors", p.replace("/", "_"), rd(p))
    # stindex: config.json | index.json | shard 1 | shard 2 (tiny-llama's first two shards, renamed)
    tl = "tests/fixtures/tiny-llama/"
    idx = json.loads(rd(tl + "model.safetensors.index.json"))
    wm = {}
    for k, v in idx["weight_map"].items():
        if v.startswith("model-00001") or v.startswith("model-00002"):
            wm[k] = v[:12] + "-of-00002.safetensors"
    idx["weight_map"] = wm
    put("stindex", "tiny-llama", FILE_SEP.join([rd(tl + "config.json"), json.dumps(idx, indent=2).encode(),
                                                 rd(tl + "model-00001-of-00004.safetensors"),
                                                 rd(tl + "model-00002-of-00004.safetensors")]))
    for d in sorted(glob.glob(ROOT + "/tests/io/bad/ck_*")):
        files = {os.path.basename(p): rd(p) for p in glob.glob(d + "/*")}
        shards = sorted(k for k in files if k.endswith(".safetensors"))
        parts = [rd(tl + "config.json"), files.get("model.safetensors.index.json", b"")]
        parts += [files[s] for s in shards[:2]]
        put("stindex", os.path.basename(d), FILE_SEP.join(parts))
    # hfconfig
    for p in sorted(glob.glob(ROOT + "/tests/io/configs/*.json") + glob.glob(ROOT + "/tests/io/bad/cfg_*.json")):
        put("hfconfig", os.path.basename(p), rd(p))
    for m in ("tiny-llama", "tiny-qwen2", "tiny-qwen3"):
        put("hfconfig", m + ".json", rd("tests/fixtures/%s/config.json" % m))
    put("hfconfig", "rope_llama3.json", rd("tests/fixtures/rope_llama3.json"))
    # tokenizer: small tokenizer.json files + text
    text = b"\n@@TEXT@@\nHello world, <|im_start|>user\n caf\xc3\xa9 123  \t\n"
    for p in ["tests/tokenizer/mini_tokenizer.json", "tests/fixtures/tiny-qwen3/tokenizer.json"] + \
            sorted(glob.glob(ROOT + "/tests/tokenizer/bad/*.json")):
        put("tokenizer", os.path.basename(os.path.dirname(p)) + "_" + os.path.basename(p), rd(p) + text)
    # tokenize: texts of the tokenizer corpus, through each tokenizer (byte 0) with flags (byte 1)
    lines = rd("tests/tokenizer/corpus.jsonl").decode().splitlines()
    for i, line in enumerate(lines[:24]):
        t = json.loads(line)
        t = t.get("text", json.dumps(t)) if isinstance(t, dict) else str(t)
        put("tokenize", "line%02d" % i, bytes([i % 3, (i // 3) % 4]) + t.encode()[:2000])
    # chat: TEMPLATE (mode byte + text) then messages (role byte + content)
    msgs = [b"\x00You are terse.", b"\x01What is 2+2?", b"\x024\x01thinking about it", b"\x01And 3+3?",
            b"\x026", b"\x03{\"result\": 6}"]
    sep = b"\n@@\n"
    for p in sorted(glob.glob(SHARED + "/tokenizers/*/tokenizer_config.json")):
        put("chat", "config_" + os.path.basename(os.path.dirname(p)), sep.join([b"\x00" + rd(p)] + msgs))
        tpl = json.loads(rd(p)).get("chat_template")
        if isinstance(tpl, str):
            put("chat", "jinja_" + os.path.basename(os.path.dirname(p)),
                sep.join([b"\x01" + tpl.encode()] + msgs[1:] + [b""]))
    for n in ("chatml", "qwen2", "qwen2.5", "qwen3", "llama3", "llama3.1", "plain"):
        put("chat", "named_" + n, sep.join([b"\x03\x01" + n.encode()] + msgs))
    put("chat", "format", sep.join([b"\x02System: {system}\nUser: {prompt}\nAssistant: {response}{{x}}"] + msgs))
    put("chat", "spec_format", sep.join([b"\x04\x01Q: {prompt}\nA: "] + msgs[1:3]))
    # dataset: byte 0 = type + 3 * format, byte 1 = flags, byte 2 = max_len / seed / batch
    fmt = {"text": 0, "prompt_response": 1, "messages": 2, "preference": 3, "prompt_answer": 4}
    typ = {".jsonl": 0, ".json": 1, ".csv": 2}
    guess = {"alpaca": "prompt_response", "gsm": "prompt_answer", "messages": "messages", "pref": "preference",
             "sft": "prompt_response", "text": "text", "tricky": "messages", "empty_rows": "text",
             "bad_role": "messages", "no_role": "messages", "null_content": "messages", "gsm_empty": "prompt_answer",
             "pref_missing": "preference"}
    files = sorted(glob.glob(ROOT + "/tests/data/fixtures/*.*") + glob.glob(ROOT + "/tests/data/fixtures/bad/*"))
    for i, p in enumerate(files):
        base, ext = os.path.splitext(os.path.basename(p))
        if ext not in typ or os.path.getsize(p) > 20000:
            continue
        f = fmt[guess.get(base, "prompt_response")]
        for j, flags in enumerate((0x02, 0x01 | 0x02 | 0x10 | 0x20, 0x04 | 0x08 | 0x40)):
            put("dataset", "%s%s.%d" % (base, ext, j), bytes([typ[ext] + 3 * f, flags, 7 + 13 * j]) + rd(p))
        # checkdata: byte 0 = type + 3 * format, byte 1 = `fields { }` written
        put("checkdata", base + ext, bytes([typ[ext] + 3 * f, i & 1]) + rd(p)[:4096])
    gsm = rd(SHARED + "/gsm8k/test.jsonl").splitlines()[:3] if os.path.exists(SHARED + "/gsm8k") else []
    if gsm:
        put("dataset", "gsm8k3.jsonl", bytes([0 + 3 * 4, 0x06, 40]) + b"\n".join(gsm) + b"\n")
    # checkpoint: state.json | model.safetensors | optimizer.safetensors
    if len(sys.argv) > 1:
        c = sys.argv[1]
        put("checkpoint", "adamw_step3", FILE_SEP.join(rd(os.path.join(c, f)) for f in
                                                       ("state.json", "model.safetensors", "optimizer.safetensors")))
    # adapter: adapter_config.json | adapter_model.safetensors
    pt = "tests/fixtures/peft-tiny-qwen3/"
    put("adapter", "peft-tiny-qwen3", FILE_SEP.join([rd(pt + "adapter_config.json"), rd(pt + "adapter_model.safetensors")]))
    for d in sorted(glob.glob(ROOT + "/tests/io/bad/peft_*")):
        parts = [rd(d + "/adapter_config.json") if os.path.exists(d + "/adapter_config.json") else b""]
        if os.path.exists(d + "/adapter_model.safetensors"):
            parts.append(rd(d + "/adapter_model.safetensors"))
        put("adapter", os.path.basename(d), FILE_SEP.join(parts))


if __name__ == "__main__":
    main()
