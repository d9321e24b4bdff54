#!/usr/bin/env python3
"""gen_jsonl.py OUT SIZE_MB — writes a prompt_response JSONL of about SIZE_MB megabytes for the
data-loading benchmark (deterministic: seeded). Rows are English-like text of varied lengths with
some unicode, ~1 KB each on average. Not committed data: write it under /tmp."""
import json, random, sys

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at which "
         "but have an they you were her she there been one all we their has would when if so no will "
         "model training data token gradient batch loss step learning rate adapter quantized weights "
         "café naïve 数据 模型 训练 — 42 3.14 2026 x+y=z (a) [b] {c}").split()

def text(r, n):
    return " ".join(r.choice(WORDS) for _ in range(n))

def main():
    out, size_mb = sys.argv[1], float(sys.argv[2])
    r = random.Random(1234)
    limit = int(size_mb * 1e6)
    n = 0
    written = 0
    with open(out, "w", encoding="utf-8") as f:
        while written < limit:
            row = {"prompt": text(r, r.randint(5, 120)), "response": text(r, r.randint(10, 250))}
            line = json.dumps(row, ensure_ascii=False) + "\n"
            f.write(line)
            written += len(line.encode())
            n += 1
    print(f"{out}: {n} rows, {written / 1e6:.1f} MB")

if __name__ == "__main__":
    main()
