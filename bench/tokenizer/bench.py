#!/usr/bin/env python3
"""bench.py — tokenizer throughput, single thread: trlc vs Hugging Face `tokenizers`, same texts, same run.

Texts: GSM8K train (question + answer of each example, ~7.5k texts, ~3.7 MB) from ../shared/data.
Builds bench_tok.c against an existing trlc build (BUILD_DIR, default build), runs it, times
`tokenizers` (encode in a loop, and encode_batch with TOKENIZERS_PARALLELISM=false and
RAYON_NUM_THREADS=1), checks that every id agrees, and prints MB/s and the ratio.

usage: python3 bench/tokenizer/bench.py [--tokenizer PATH] [--build-dir DIR]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["RAYON_NUM_THREADS"] = "1"
from tokenizers import Tokenizer  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SHARED = os.path.join(ROOT, "..", "shared", "data")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tokenizer", default=os.path.join(SHARED, "tokenizers", "phi-2", "tokenizer.json"))
    ap.add_argument("--build-dir", default=os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")))
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()

    texts = []
    with open(os.path.join(SHARED, "gsm8k", "train.jsonl"), encoding="utf-8") as f:
        for line in f:
            j = json.loads(line)
            texts.append(j["question"] + "\n" + j["answer"])
    nbytes = sum(len(t.encode("utf-8")) for t in texts)

    tmp = tempfile.mkdtemp(prefix="trlc_bench_")
    exe = os.path.join(tmp, "bench_tok")
    b = a.build_dir
    libs = [os.path.join(b, "runtime", "libtrlc_io.a"), os.path.join(b, "common", "libtrlc_common.a")]
    subprocess.run(["cc", "-O2", "-std=c11", "-D_POSIX_C_SOURCE=200809L", "-o", exe,
                    os.path.join(ROOT, "bench", "tokenizer", "bench_tok.c"),
                    "-I" + os.path.join(ROOT, "runtime", "io"), "-I" + os.path.join(ROOT, "common"), *libs,
                    "-ljansson", "-lpcre2-8", "-lutf8proc", "-lcsv", "-lm"], check=True)
    inp = os.path.join(tmp, "texts.jsonl")
    with open(inp, "w", encoding="utf-8") as f:
        for t in texts:
            f.write(json.dumps(t) + "\n")
    out = os.path.join(tmp, "ids.txt")
    r = subprocess.run([exe, a.tokenizer, inp, out, str(a.repeats)], check=True, capture_output=True, text=True)
    print(r.stdout.strip())
    trlc_mbs = float(r.stdout.split("=")[-1].split()[0])

    tok = Tokenizer.from_file(a.tokenizer)
    best_loop = best_batch = 1e30
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        ref = [tok.encode(t, add_special_tokens=False).ids for t in texts]
        best_loop = min(best_loop, time.perf_counter() - t0)
        t0 = time.perf_counter()
        tok.encode_batch(texts, add_special_tokens=False)
        best_batch = min(best_batch, time.perf_counter() - t0)
    hf_loop, hf_batch = nbytes / 1e6 / best_loop, nbytes / 1e6 / best_batch
    print(f"tokenizers (encode loop): {best_loop:.3f} s = {hf_loop:.2f} MB/s")
    print(f"tokenizers (encode_batch, 1 thread): {best_batch:.3f} s = {hf_batch:.2f} MB/s")

    with open(out) as f:
        got = [[int(x) for x in line.split()] for line in f]
    bad = sum(1 for g, w in zip(got, ref) if g != w) + abs(len(got) - len(ref))
    print(f"ids: {len(ref)} texts, {sum(map(len, ref))} ids, {bad} texts differ")
    print(f"ratio trlc / tokenizers: {trlc_mbs / hf_loop:.2f}x (vs encode loop), "
          f"{trlc_mbs / hf_batch:.2f}x (vs encode_batch)")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
