#!/usr/bin/env python3
"""make_fixtures.py — reference token ids for trlc's tokenizer tests, from Hugging Face `tokenizers`.

Writes, next to this script:
  corpus.jsonl                 the test texts, one JSON string per line (ASCII-escaped)
  qwen2_tokenizer.json         phi-2's vocab/merges with the Qwen2 pipeline (NFC, Split(Qwen2 regex,
                               Isolated) + ByteLevel(use_regex=false), ["a","b"] merges, Qwen-style
                               special tokens, plus added tokens exercising lstrip/rstrip/single_word)
  llama3_tokenizer.json        phi-2's vocab/merges with the Llama-3 pipeline (no normalizer,
                               \\p{N}{1,3} regex, ignore_merges, <|begin_of_text|> post-processor)
  ref/<name>.ids               ids of each corpus line with add_special_tokens=True
  ref/<name>.plain             ids with add_special_tokens=False
  ref/<name>.dec               decode(ids, skip_special_tokens=False) as JSON strings
  ref/<name>.decskip           decode(ids, skip_special_tokens=True) as JSON strings
  ref/<name>.rt                decode(plain ids, skip_special_tokens=False): the round trip
for name in phi2, qwen2, llama3, llama2, and for the patched variants of PATCHES below (patches/*.json:
top-level members that replace those of the base tokenizer.json; test_tokenizer --patch does the same). phi-2 and llama2 come from ../shared/data/tokenizers (not
copied). llama2's tokenizer.json has three legacy merges whose tokens contain spaces ("   ",
"     ", "▁  "), which `tokenizers` itself refuses to load; for the reference they are resolved
to the unique split whose halves and concatenation are in the vocabulary (trlc does the same).

Run: pip install tokenizers && python3 tests/tokenizer/make_fixtures.py   (CI never runs this)
"""
import json
import os
import random
import sys
import unicodedata

from tokenizers import Tokenizer, __version__ as TOKENIZERS_VERSION  # noqa: F401

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("TRLC_SHARED", os.path.join(HERE, "..", "..", "..", "shared", "data"))
TOKDIR = os.path.join(SHARED, "tokenizers")

QWEN2_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
               r"|\s*[\r\n]+|\s+(?!\S)|\s+")
LLAMA3_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                r"|\s*[\r\n]+|\s+(?!\S)|\s+")


def added(id_, content, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": normalized, "special": special}


def corpus():
    t = []
    # English, contractions (case-insensitive in Qwen2/Llama-3), punctuation
    t += ["Hello world", "Hello, world! How's it going?", "I'm sure you'll like it; they'd said we've won.",
          "I'M SURE YOU'LL LIKE IT; THEY'D SAID WE'VE WON.", "it'S a dOg'S lIfe", "don't can't won't shouldn't",
          "'s 't 're 've 'm 'll 'd", "'S'T'RE'VE'M'LL'D", "rock 'n' roll", "the cat's pyjamas’ ’s",
          "The quick brown fox jumps over the lazy dog.", "A", "a", " a", "a ", "  a  ", "Hello\nworld",
          "Mr. O'Neil & Mrs. Smith-Jones (née Brown) — “quoted” «guillemets» ‹single›",
          "e.g., i.e., etc... ?!?! ... --- ___ *** ###", "CamelCaseIdentifierName snake_case_name kebab-case-name",
          "http://example.com/path?q=1&r=two#frag user@example.org", "**bold** _it_ `code` [link](http://x.y)",
          "$\\frac{a}{b} + \\sqrt{x^2}$", "x = (a + b) * c / d - e % f", "∑∫√∞≈≠≤≥ ∂x/∂y α β γ Δ Ω",
          "$100 €50 ¥1000 £3 ₹42 ₿0.5", "50% off!!! Only $9.99", "#hashtag @mention"]
    # other scripts
    t += ["你好，世界！", "我想在apple工作1314151天～", "今天天气很好，我们去公园散步吧。这是一个很长的中文句子，用来测试分词。",
          "日本語のテキストです。カタカナとひらがな、漢字。", "東京タワーは３３３メートルです", "안녕하세요 세계", "한국어 문장입니다. 감사합니다!",
          "Привет, мир! Как дела?", "нещо на Български", "Γειά σου Κόσμε", "שלום עולם", "مرحبا بالعالم ١٢٣",
          "नमस्ते दुनिया", "สวัสดีชาวโลก", "កាន់តែពិសេសអាច", "Tiếng Việt có dấu", "Ελληνικά και English mixed 混合",
          "ﬁﬂﬃ ligatures", "Ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３", "Ⅻ Ⅳ ⅷ roman", "x² y³ ½ ¾ ₁₂", "١٢٣٤٥ ۱۲۳ ४५६",
          "🇺🇸🇯🇵🇩🇪 flags"]
    # emoji incl. ZWJ sequences, skin tones, keycaps, variation selectors
    t += ["🚀 (normal) 😶‍🌫️ (multiple emojis concatenated) ✅ 🦙🦙", "👨‍👩‍👧‍👦 family", "👩🏽‍💻👨🏿‍🚀", "🏳️‍🌈 🏴‍☠️",
          "1️⃣ 2️⃣ #️⃣", "❤️ ♥ ☺️", "😀😃😄😁😆😅😂🤣", "🙂" * 10, "text🙂text", "e\u0301🙂\u200d"]
    # numbers
    t += ["1", "12", "123", "1234", "12345", "1234567890", "3 33 333 3333 33333 333333 3333333 33333333",
          "3.3 3..3 3...3", "3.14159265358979", "1,000,000", "-42 +17 ±3", "1e10 6.02e23 0x1F 0b1010",
          "2024-01-15T10:30:00Z", "(555) 123-4567", "v1.2.3-beta.4", "1st 2nd 3rd 4th", "12:30pm",
          "#### 72", "<<48/2=24>>24", "9 * 2 = $<<9*2=18>>18", "10,000.50", "٣ ٤ ٥", "١٢٣abc٤٥٦"]
    # whitespace runs, tabs, newlines, CR LF, unicode spaces
    t += ["", " ", "  ", "   ", "\t", "\n", "\n\n", "\n\n\n", "\t\n", "\r\n", "\r\n\r\n", "\r", "a\r\nb\r\n",
          "   Hello", "    Hello\n    Hello", "Hello   ", "Hello \n", "Hello\n\n\n\nworld", "a\tb\t\tc",
          "\t\t\tindented", " \n \n\n \n\n\n \t \t\t \t\n  \n   \n    \n     \n",
          "word" + " " * 40 + "word", " " * 64, "\t" * 12, "a \u00a0b\u3000c\u2009d", "x\u0085y", "x\u180ey",
          "x\u200by", "x\u2028y\u2029z", "x\ufeffy", "\u00a0\u00a0", "end with space ", " \t \t "]
    # code
    t += ["def f(x):\n    return x * 2\n", "int main(void) {\n\treturn 0;\n}\n",
          "for (int i = 0; i < n; i++) { a[i] += b[i]; }", '{"key": "value", "n": [1, 2, 3]}',
          "<div class=\"a\">Hi &amp; bye</div>", "SELECT * FROM users WHERE id = 42;",
          "    if x:\n        y = [i**2 for i in range(10)]\n", "#include <stdio.h>\n#define N 10",
          "lambda x: x+1  # comment", "a_b__c___d", "fn main() -> Result<(), Box<dyn Error>> {}",
          "```python\nprint('hi')\n```", "x=>x*2; y!==z || w&&v", "$ ls -la | grep foo > out.txt 2>&1"]
    # special / added tokens inside text
    t += ["<|endoftext|>", "Hello<|endoftext|>world", "<|endoftext|><|endoftext|>", "a <|endoftext|> b",
          "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n",
          "<|im_start|>system\nYou are helpful.<|im_end|>", "<|im_start", "im_end|>", "<|im_end|><|im_end|>",
          "<think>\nreasoning\n</think>\n\nanswer", "<|begin_of_text|>Hi", "<|begin_of_text|><|start_header_id|>user"
          "<|end_header_id|>\n\nHello<|eot_id|>", "<s>", "</s>", "<unk>", "<s>Hello</s>", "hello <s> world",
          "a [MASK] b", "a[MASK]b", "   [MASK]   end", "<|tool|>x", "x   <|tool|>   y", "<|sep|>   z",
          "qwertyword", "a qwertyword b", "aqwertyword", "qwertywordb", "(qwertyword)", "<0x41>", "<|unknown|>"]
    # NFC / NFD pairs
    for s in ["é", "Å", "ñ", "ü", "한", "ệ", "Ω", "Å", "café résumé naïve", "Ḩ̣"]:
        t += [unicodedata.normalize("NFC", s), unicodedata.normalize("NFD", s)]
    t += ["e\u0301\u0301\u0301", "\u0301start", "\u1112\u1161\u11ab\u1100\u1173\u11af"]
    # long words
    t += ["a" * 1000, "supercalifragilisticexpialidocious" * 20, "abcdefghij" * 50, "1234567890" * 30,
          "中" * 300, "x" + "!" * 200, "ab" * 250 + " " + "ba" * 250, "pneumonoultramicroscopicsilicovolcanoconiosis",
          "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch", "😀" * 100, "ĠĠĠĠ ĊĊ Ġhello"]
    # invalid-looking things
    t += ["\x00", "a\x00b", "\x01\x02\x03\x7f", "\ufffd\ufffd", "\ue000\uf8ff", "\uffff\ufffe", "\U0010fffd",
          "\U0001d400\U0001d401", "\u200d", "\u0000\u0000\u0000", "\\u0041 \\n \\t", "%s %d %%", "\u202eevil\u202c",
          "<0xFF><0x00>", "▁▁▁", "▁hello", "Ġhello", "ÃĥÃ", "\x1b[31mred\x1b[0m"]
    # GSM8K samples
    with open(os.path.join(SHARED, "gsm8k", "train.jsonl"), encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= 20:
                break
            j = json.loads(line)
            t += [j["question"], j["answer"]]
    # random mixtures (fixed seed)
    rng = random.Random(1234)
    pools = ["abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ", "0123456789", " " * 8 + "\t\n\r",
             ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`", "你好世界中文字", "日本語カタカナひらがな", "한국어", "éèêëàâäôöûüçñ",
             "😀🚀🦙✅👍🏽\u200d", "\u0301\u0308\u00a0\u3000\u2028\u0085", "ДЖЗИЙКЛМНОП", "٠١٢٣٤٥"]
    for _ in range(70):
        n = rng.randint(1, 80)
        t.append("".join(rng.choice(rng.choice(pools)) for _ in range(n)))
    # chat-like and special-heavy random
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<s>", "</s>", "<|eot_id|>", "[MASK]", "<think>"]
    for _ in range(15):
        parts = [rng.choice(specials) if rng.random() < 0.3 else rng.choice(["hi", " there", "\n", "  ", "x y", "中文"])
                 for _ in range(rng.randint(1, 10))]
        t.append("".join(parts))
    return t


QWEN_ADDED = [added(50256, "<|endoftext|>"), added(50257, "<|im_start|>"), added(50258, "<|im_end|>"),
              added(50259, "<think>", special=False), added(50260, "</think>", special=False),
              added(50261, "[MASK]", lstrip=True, rstrip=True),
              added(50262, "<|tool|>", lstrip=True), added(50263, "<|sep|>", rstrip=True),
              added(50264, "qwertyword", special=False, normalized=True, single_word=True)]
BL = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
META_DEC = {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
                                             {"type": "ByteFallback"}, {"type": "Fuse"},
                                             {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
PATCHES = {
    # RoBERTa-style: prefix space, NFKD + regex Replace normalizers, cls/sep post-processor
    "phi2_prefix": ("phi2", {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "NFKD"}, {"type": "Replace", "pattern": {"Regex": "[0-9]{4,}"}, "content": "#"}]},
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "post_processor": {"type": "RobertaProcessing", "sep": ["<|endoftext|>", 50256],
                           "cls": ["<|endoftext|>", 50256], "trim_offsets": True, "add_prefix_space": True}}),
    # other split behaviors, Digits, NFKC + Lowercase normalizers (Strip is left out: tokenizers 0.23
    # panics "AddedVocabulary bad split" on non-ASCII text with it here)
    "phi2_splits": ("phi2", {
        "normalizer": {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "Lowercase"}]},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "MergedWithPrevious", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "MergedWithNext", "invert": False},
            {"type": "Split", "pattern": {"Regex": "\\p{P}"}, "behavior": "Contiguous", "invert": False},
            {"type": "Split", "pattern": {"String": "."}, "behavior": "Removed", "invert": False},
            {"type": "Split", "pattern": {"Regex": "[aeiou]+"}, "behavior": "Isolated", "invert": True},
            {"type": "Digits", "individual_digits": True}, dict(BL)]},
        "post_processor": None}),
    # SentencePiece BPE with a Metaspace pre-tokenizer instead of the Prepend/Replace normalizers
    "llama2_meta": ("llama2", {
        "normalizer": None,
        "pre_tokenizer": {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        "decoder": META_DEC}),
    "llama2_meta_split": ("llama2", {
        "normalizer": {"type": "NFKC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": False},
            {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True}]},
        "decoder": {"type": "Sequence", "decoders": [
            {"type": "ByteFallback"}, {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always",
                                       "split": True}, {"type": "Fuse"}]}}),
    # Strip, NFD and StripAccents normalizers (without normalized added tokens: see phi2_splits)
    "qwen2_strip": ("qwen2", {
        "normalizer": {"type": "Sequence", "normalizers": [
            {"type": "Strip", "strip_left": True, "strip_right": True}, {"type": "NFD"}, {"type": "StripAccents"}]},
        "added_tokens": [a for a in QWEN_ADDED if not a["normalized"]]}),
}


def load_llama2_json():
    with open(os.path.join(TOKDIR, "llama2", "tokenizer.json"), encoding="utf-8") as f:
        j = json.load(f)
    v = j["model"]["vocab"]
    merges = []
    for m in j["model"]["merges"]:
        if isinstance(m, list):
            merges.append(m)
        elif m.count(" ") == 1:
            merges.append(m.split(" "))
        else:
            cands = [(m[:i], m[i + 1:]) for i in range(1, len(m) - 1)
                     if m[i] == " " and m[:i] in v and m[i + 1:] in v and m[:i] + m[i + 1:] in v]
            assert len(cands) == 1, (m, cands)
            merges.append(list(cands[0]))
    j["model"]["merges"] = merges
    return j


def build_variants():
    with open(os.path.join(TOKDIR, "phi-2", "tokenizer.json"), encoding="utf-8") as f:
        phi = json.load(f)
    vocab = phi["model"]["vocab"]
    merges = [m.split(" ") for m in phi["model"]["merges"]]
    bl = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}

    def model(ignore_merges):
        return {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False,
                "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges}

    qwen = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": QWEN_ADDED,
        "normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": QWEN2_REGEX}, "behavior": "Isolated", "invert": False}, bl]},
        "post_processor": dict(bl),
        "decoder": dict(bl),
        "model": model(False),
    }
    bos = "<|begin_of_text|>"
    llama3 = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [added(50256, "<|endoftext|>"), added(50257, bos), added(50258, "<|end_of_text|>"),
                         added(50259, "<|start_header_id|>"), added(50260, "<|end_header_id|>"),
                         added(50261, "<|eot_id|>")],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {bos: {"id": bos, "ids": [50257], "tokens": [bos]}}}]},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": model(True),
    }
    out = {}
    for name, j in (("qwen2", qwen), ("llama3", llama3)):
        path = os.path.join(HERE, name + "_tokenizer.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(j, f, ensure_ascii=False, separators=(",", ":"))
        out[name] = Tokenizer.from_file(path)
        print(f"{path}: {os.path.getsize(path)} bytes")
    return out


def main():
    texts = corpus()
    assert len(texts) >= 200, len(texts)
    with open(os.path.join(HERE, "corpus.jsonl"), "w", encoding="ascii") as f:
        for s in texts:
            f.write(json.dumps(s, ensure_ascii=True) + "\n")
    toks = {"phi2": Tokenizer.from_file(os.path.join(TOKDIR, "phi-2", "tokenizer.json"))}
    toks.update(build_variants())
    bases = {"llama2": load_llama2_json()}
    with open(os.path.join(TOKDIR, "phi-2", "tokenizer.json"), encoding="utf-8") as f:
        bases["phi2"] = json.load(f)
    with open(os.path.join(HERE, "qwen2_tokenizer.json"), encoding="utf-8") as f:
        bases["qwen2"] = json.load(f)
    toks["llama2"] = Tokenizer.from_str(json.dumps(bases["llama2"]))
    os.makedirs(os.path.join(HERE, "patches"), exist_ok=True)
    for name, (base, patch) in PATCHES.items():
        with open(os.path.join(HERE, "patches", name + ".json"), "w", encoding="utf-8") as f:
            json.dump(patch, f, ensure_ascii=False, indent=1)
        j = dict(bases[base])
        j.update(patch)
        toks[name] = Tokenizer.from_str(json.dumps(j))
    os.makedirs(os.path.join(HERE, "ref"), exist_ok=True)
    for name, tok in toks.items():
        files = {k: open(os.path.join(HERE, "ref", f"{name}.{k}"), "w", encoding="ascii")
                 for k in ("ids", "plain", "dec", "decskip", "rt")}
        for s in texts:
            ids = tok.encode(s, add_special_tokens=True).ids
            plain = tok.encode(s, add_special_tokens=False).ids
            files["ids"].write(" ".join(map(str, ids)) + "\n")
            files["plain"].write(" ".join(map(str, plain)) + "\n")
            files["dec"].write(json.dumps(tok.decode(ids, skip_special_tokens=False), ensure_ascii=True) + "\n")
            files["decskip"].write(json.dumps(tok.decode(ids, skip_special_tokens=True), ensure_ascii=True) + "\n")
            files["rt"].write(json.dumps(tok.decode(plain, skip_special_tokens=False), ensure_ascii=True) + "\n")
        for f in files.values():
            f.close()
    print(f"{len(texts)} texts, tokenizers {TOKENIZERS_VERSION}", file=sys.stderr)


if __name__ == "__main__":
    main()
