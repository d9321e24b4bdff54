#!/usr/bin/env bash
# make_data.sh — writes the quickstart's data: two-digit additions (`37+58=` → `095`) and
# subtractions (`58-37=` → `021`) as prompt/response JSONL, every problem once, about 10% of them
# held out for evaluation. Operands and answers are zero-padded so that every digit has a fixed
# place. Deterministic: the same files on every run (awk's generator with a fixed seed); SEED
# (default 1) picks another split and order.
# usage: [SEED=N] make_data.sh OUT_DIR
set -euo pipefail
out=${1:-data}
seed=${SEED:-1}
case $seed in ''|*[!0-9]*) echo "make_data.sh: SEED must be a number" >&2; exit 2;; esac
mkdir -p "$out"
rm -f "$out"/add-train.jsonl "$out"/add-eval.jsonl "$out"/sub-train.jsonl "$out"/sub-eval.jsonl
awk -v out="$out" -v seed="$seed" 'BEGIN {
    srand(seed)
    for (i = 0; i < 20000; i++) {                       # additions: a + b, 0 <= a, b <= 99
        a = int(rand() * 100); b = int(rand() * 100)
        if ((a "+" b) in seen) continue
        seen[a "+" b] = 1
        line = sprintf("{\"prompt\": \"%02d+%02d=\", \"response\": \"%03d\"}", a, b, a + b)
        print line > (out "/" (rand() < 0.1 ? "add-eval.jsonl" : "add-train.jsonl"))
    }
    srand(seed + 1)
    for (i = 0; i < 20000; i++) {                       # subtractions: a - b, a >= b
        a = int(rand() * 100); b = int(rand() * 100)
        if (a < b) { t = a; a = b; b = t }
        if ((a "-" b) in seen) continue
        seen[a "-" b] = 1
        line = sprintf("{\"prompt\": \"%02d-%02d=\", \"response\": \"%03d\"}", a, b, a - b)
        print line > (out "/" (rand() < 0.1 ? "sub-eval.jsonl" : "sub-train.jsonl"))
    }
}'
wc -l "$out"/*.jsonl
