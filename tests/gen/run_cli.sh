#!/usr/bin/env bash
# run_cli.sh — `trlc generate` and `trlc chat` end to end on the tiny checkpoints: greedy ids equal
# transformers' (fixtures/greedy.txt), text output, usage errors (exit 2), a missing model or bad
# adapter (exit 1, a message, no crash).
# usage: run_cli.sh TRLC MODELS_DIR
set -u
TRLC=$1
M=$2
fail=0
expect() {   # expect NAME WANT_STATUS GOT_STATUS
    if [ "$2" != "$3" ]; then echo "FAIL $1: exit $3, want $2"; fail=1; else echo "ok   $1"; fi
}
out=$("$TRLC" generate "$M/tiny-llama" --prompt-ids 5,17,33,3,40 --max-new 12 --ids --no-eos 2>&1); rc=$?
expect "generate llama ids" 0 $rc
[ "$out" = "71 171 238 101 200 54 259 200 54 259 200 54" ] || { echo "FAIL llama ids: $out"; fail=1; }
out=$("$TRLC" generate "$M/tiny-qwen2" --prompt-ids 7 --max-new 12 --ids 2>&1); rc=$?
expect "generate qwen2 ids" 0 $rc
[ "$out" = "184 14 206 249 89 89 89 89 89 89 89 89" ] || { echo "FAIL qwen2 ids: $out"; fail=1; }
# several prompts of different lengths: one batch, one line each, as decoded one by one
out=$("$TRLC" generate "$M/tiny-qwen2" --prompt-ids 5,17,33,3,40 --prompt-ids 7 --prompt-ids 9,250 --max-new 12 --ids 2>&1); rc=$?
expect "generate a batch" 0 $rc
want=$(printf '187 231 39 84 237 5 20 88 16 83 83 83\n184 14 206 249 89 89 89 89 89 89 89 89\n63 14 206 249 89 89 89 89 89 89 89 89')
[ "$out" = "$want" ] || { echo "FAIL batch ids: $out"; fail=1; }
out=$("$TRLC" generate "$M/tiny-qwen3" --prompt "hello" --prompt "a longer prompt here" --max-new 5 2>&1); rc=$?
expect "generate a text batch" 0 $rc
[ "$(printf '%s\n' "$out" | wc -l)" = 2 ] || { echo "FAIL text batch: $out"; fail=1; }
out=$("$TRLC" generate "$M/tiny-qwen3" --prompt "hello" --max-new 5 2>&1); rc=$?
expect "generate qwen3 text" 0 $rc
[ -n "$out" ] || { echo "FAIL qwen3 text: empty"; fail=1; }
out=$("$TRLC" generate "$M/tiny-qwen3" --prompt "hello" --max-new 5 --temperature 0.8 --top-p 0.9 --seed 3 --adapter "$M/peft-tiny-qwen3" 2>&1); rc=$?
expect "generate sampled with adapter" 0 $rc
out=$("$TRLC" generate /nonexistent/dir --prompt hi 2>&1); rc=$?
expect "missing model dir" 1 $rc
echo "$out" | grep -q "does not exist" || { echo "FAIL missing model message: $out"; fail=1; }
out=$("$TRLC" generate "$M/tiny-llama" --prompt-ids 1 --adapter "$M/peft-tiny-qwen3" 2>&1); rc=$?
expect "mismatched adapter" 1 $rc
echo "$out" | grep -q "error" || { echo "FAIL adapter message: $out"; fail=1; }
out=$("$TRLC" generate "$M/tiny-llama" --prompt-ids 1,x 2>&1); rc=$?
expect "bad prompt ids" 1 $rc
out=$("$TRLC" generate "$M/tiny-llama" --prompt-ids 99999 2>&1); rc=$?
expect "prompt id out of vocabulary" 1 $rc
echo "$out" | grep -q "outside" || { echo "FAIL vocabulary message: $out"; fail=1; }
"$TRLC" generate "$M/tiny-llama" --prompt-ids 1 --top-p 1.5 >/dev/null 2>&1; expect "bad top-p" 2 $?
"$TRLC" generate "$M/tiny-llama" >/dev/null 2>&1; expect "no prompt" 2 $?
"$TRLC" generate --help >/dev/null 2>&1; expect "help" 0 $?
out=$(printf 'hi there\nand again\n' | "$TRLC" chat "$M/tiny-qwen3" --max-new 4 2>&1); rc=$?
expect "chat" 0 $rc
[ "$(printf '%s\n' "$out" | wc -l)" = 2 ] || { echo "FAIL chat: want 2 reply lines, got: $out"; fail=1; }
printf 'hi\n' | "$TRLC" chat /nonexistent >/dev/null 2>&1; expect "chat missing model" 1 $?
# a spec stands for its policy's `from` directory (qwen3-sharp: transformers' greedy ids)
G=$(dirname "$0")
out=$("$TRLC" generate "$G/sharp-lora.trl" --prompt-ids 7 --max-new 12 --ids --no-eos 2>&1); rc=$?
expect "generate from a spec" 0 $rc
[ "$out" = "102 275 82 323 307 31 59 341 119 261 6 192" ] || { echo "FAIL spec ids: $out"; fail=1; }
out=$("$TRLC" generate "$G/fixtures/qwen3-sharp" --adapter "$G/fixtures/qwen3-sharp-lora" --prompt-ids 7 --max-new 12 --ids --no-eos 2>&1); rc=$?
expect "generate with an adapter" 0 $rc
[ "$out" = "122 147 197 169 144 172 307 170 186 61 23 149" ] || { echo "FAIL adapter ids: $out"; fail=1; }
# damaged adapters: a config without weights, truncated weights
tmp=$(mktemp -d)
mkdir "$tmp/a" "$tmp/b"
cp "$G/fixtures/qwen3-sharp-lora/adapter_config.json" "$tmp/a/"
cp "$G/fixtures/qwen3-sharp-lora/adapter_config.json" "$tmp/b/"
head -c 3000 "$G/fixtures/qwen3-sharp-lora/adapter_model.safetensors" > "$tmp/b/adapter_model.safetensors"
for a in a b; do
    out=$("$TRLC" generate "$G/fixtures/qwen3-sharp" --adapter "$tmp/$a" --prompt-ids 7 2>&1); rc=$?
    expect "damaged adapter $a" 1 $rc
    echo "$out" | grep -q "error" || { echo "FAIL damaged adapter $a message: $out"; fail=1; }
done
# --eval: tiny-qwen3 repeats the prompt's last token, so with the plain template and 4 new tokens
# "x = 7" gives "7777" (right: #### 7,777), "y = 5" gives "5555" (wrong), "z = 3" "3333" (wrong);
# with 3 new tokens only "333" (#### 333.0) is right
printf '{"question": "x = 7", "answer": "so #### 7,777"}\n{"question": "y = 5", "answer": "#### 6"}\n{"question": "z = 3", "answer": "#### 333.0"}\n' > "$tmp/pa.jsonl"
out=$("$TRLC" generate "$M/tiny-qwen3" --eval "$tmp/pa.jsonl" --template plain --max-new 4 2>&1); rc=$?
expect "eval prompt_answer" 0 $rc
[ "$out" = "exact match: 1/3 (33.3%)" ] || { echo "FAIL eval: $out"; fail=1; }
out=$("$TRLC" generate "$M/tiny-qwen3" --eval "$tmp/pa.jsonl" --template plain --max-new 3 --batch 2 2>&1); rc=$?
[ "$out" = "exact match: 1/3 (33.3%)" ] || { echo "FAIL eval 3 tokens: $out"; fail=1; }
printf '{"prompt": "q = 4", "response": "4444"}\n{"prompt": "q = 4", "response": "4445"}\n' > "$tmp/pr.jsonl"
out=$("$TRLC" generate "$M/tiny-qwen3" --eval "$tmp/pr.jsonl" --format prompt_response --template plain --max-new 4 2>&1); rc=$?
expect "eval prompt_response" 0 $rc
[ "$out" = "exact match: 1/2 (50.0%)" ] || { echo "FAIL eval prompt_response: $out"; fail=1; }
"$TRLC" generate "$M/tiny-qwen3" --eval "$tmp/pa.jsonl" --format text >/dev/null 2>&1; expect "eval bad format" 2 $?
"$TRLC" generate "$M/tiny-qwen3" --eval "$tmp/missing.jsonl" >/dev/null 2>&1; expect "eval missing file" 1 $?
"$TRLC" generate "$M/tiny-qwen3" --eval "$tmp/pa.jsonl" --template nosuch >/dev/null 2>&1; expect "eval bad template" 1 $?
# sliding-window attention (qwen2 use_sliding_window): refused past the window, not silently wrong
mkdir "$tmp/sw"
cp "$M/tiny-qwen2/model.safetensors" "$tmp/sw/"
sed 's/"use_sliding_window": false/"use_sliding_window": true/; s/"sliding_window": 4096/"sliding_window": 8/; s/"max_window_layers": 28/"max_window_layers": 1/' "$M/tiny-qwen2/config.json" > "$tmp/sw/config.json"
out=$("$TRLC" generate "$tmp/sw" --prompt-ids 7 --max-new 7 --ids 2>&1); rc=$?
expect "within the sliding window" 0 $rc
[ "$out" = "184 14 206 249 89 89 89" ] || { echo "FAIL sliding window ids: $out"; fail=1; }
out=$("$TRLC" generate "$tmp/sw" --prompt-ids 7 --max-new 8 --ids 2>&1); rc=$?
expect "past the sliding window" 3 $rc
echo "$out" | grep -q "sliding window" || { echo "FAIL sliding window message: $out"; fail=1; }
rm -rf "$tmp"
exit $fail
