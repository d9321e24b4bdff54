#!/usr/bin/env bash
# run.sh [SIZE_MB=1000] [BUILD_DIR=build] [TOKENIZER] — generates a JSONL of SIZE_MB in /tmp,
# builds bench_data against BUILD_DIR's libraries and runs it. The tokenizer defaults to the
# GPT-2-vocabulary phi-2 tokenizer.json from shared data, else tests/fixtures/tiny-qwen3.
set -euo pipefail
cd "$(dirname "$0")/../.."
size=${1:-1000}
build=${2:-build}
tok=${3:-/work/shared/data/tokenizers/phi-2/tokenizer.json}
[ -f "$tok" ] || tok=tests/fixtures/tiny-qwen3/tokenizer.json
data=/tmp/trlc_bench_${size}MB.jsonl
[ -f "$data" ] || python3 bench/data/gen_jsonl.py "$data" "$size"
cmake --build "$build" --target trlc_io >/dev/null
cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE -Icommon -Iruntime/io bench/data/bench_data.c \
   "$build/runtime/libtrlc_io.a" "$build/common/libtrlc_common.a" \
   $(pkg-config --libs jansson libpcre2-8 libutf8proc) -lcsv -lm -o /tmp/trlc_bench_data
echo "data: $data ($(du -h "$data" | cut -f1)), tokenizer: $tok"
/tmp/trlc_bench_data "$data" "$tok" chatml 32 1024
