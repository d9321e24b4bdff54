#!/bin/bash
# test_spec_options.sh — the data settings of a spec reach the dataset reader through `trlc run`
# (area data): `on_error = skip` (a bad row skipped with a warning, not exit 1), `truncate = left`
# (a long prompt cut on the left keeps the response: targets remain, loss > 0; cut on the right
# nothing is left to learn, with a warning), `fields { input = ...; }` (the Alpaca input changes what is learned),
# and the planned step count (the schedule's length) is the number of batches run: packed
# (`pack = true`) or not (batches run on across epoch ends).
# Tiny llama from scratch on the byte tokenizer: each run takes well under a second.
# usage: test_spec_options.sh TRLC WORK_DIR
set -u
TRLC=$1; W=$2
rm -rf "$W"; mkdir -p "$W"; cd "$W" || exit 1
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }
run() {   # run WANT_RC DESC SPEC: trlc run SPEC into out/, stderr in err.txt
    rm -rf out
    "$TRLC" run "$3" --out out >/dev/null 2>err.txt; local rc=$?
    if [ "$rc" = "$1" ]; then ok; else bad "$2: exit $rc, want $1"; cat err.txt >&2; fi
}
loss1() { grep '^{"step": 1, "loss"' out/metrics.jsonl | head -1 | sed 's/.*"loss": \([^,]*\),.*/\1/'; }

for w in cat dog owl ant; do
    printf '{"prompt": "Please repeat after me the following long sentence: %s", "response": "%s", "context": "Extra context %s"}\n' $w $w $w
done > sft.jsonl
{ head -2 sft.jsonl; echo '{"prompt": "x" "response": "y"}'; tail -2 sft.jsonl; } > bad.jsonl
for t in "a b" "the cat sat" "on a mat" "dogs bark" "birds fly high" "fish swim" "rain falls" \
         "sun shines" "wind blows" "snow is cold" "one two three" "red green blue"; do
    printf '{"text": "%s"}\n' "$t"
done > text.jsonl

spec() {   # spec FILE DATA_SETTINGS [FORMAT/FILE overrides]
    cat > "$1" <<EOF
trl 1;
import "llama";
model tiny {
    arch = llama;
    config { vocab = 260; hidden = 32; layers = 2; heads = 4; kv_heads = 2; ffn = 64; max_pos = 128; }
    tokenizer = bytes;
}
data train { $2 }
objective $3 { }
train { optimizer = adamw { lr = 3e-3; }; batch = 2; $4 precision = fp32; log_every = 1 steps; seed = 3; }
EOF
}
SFT='format = prompt_response; template = plain; shuffle = false; max_len = 24 tokens;'

# --- on_error ---
spec bad-fail.trl "from = \"bad.jsonl\"; $SFT" sft "epochs = 1;"
run 1 "bad row, on_error = fail (default)" bad-fail.trl
grep -q "bad.jsonl:3:" err.txt && ok || { bad "no file:line for the bad row"; cat err.txt >&2; }
spec bad-skip.trl "from = \"bad.jsonl\"; $SFT on_error = skip;" sft "epochs = 1;"
run 0 "bad row, on_error = skip" bad-skip.trl
grep -q "skipped 1 bad row" err.txt && ok || { bad "no warning about the skipped row"; cat err.txt >&2; }
grep -q "4 training rows" err.txt && ok || { bad "skip: not 4 rows"; cat err.txt >&2; }

# --- truncate: 24 tokens of a ~60-byte prompt + 3-byte response ---
spec right.trl "from = \"sft.jsonl\"; $SFT" sft "epochs = 1;"
run 0 "truncate = right" right.trl
lr=$(loss1)
grep -q "sft.jsonl:1: truncated to 24 tokens, nothing of the response is left" err.txt && ok ||
    { bad "truncate = right: no warning that nothing is left to learn"; cat err.txt >&2; }
spec left.trl "from = \"sft.jsonl\"; $SFT truncate = left;" sft "epochs = 1;"
run 0 "truncate = left" left.trl
ll=$(loss1)
grep -q "nothing of the response" err.txt && { bad "truncate = left: warned"; cat err.txt >&2; } || ok
awk -v r="$lr" -v l="$ll" 'BEGIN { exit !(r == 0 && l > 1) }' && ok ||
    bad "truncate: loss right $lr (want 0: the response is cut), left $ll (want > 1)"

# --- fields { input }: appended to the prompt, so the kept (left-truncated) tokens change ---
spec input.trl "from = \"sft.jsonl\"; $SFT truncate = left; fields { input = \"context\"; }" sft "epochs = 1;"
run 0 "fields.input" input.trl
li=$(loss1)
awk -v a="$ll" -v b="$li" 'BEGIN { exit !(b > 1 && a != b) }' && ok ||
    bad "fields.input made no difference (loss $ll without, $li with)"

# --- pack: planned steps = steps run, far fewer than the unpacked ceil(12 / 2) * 3 = 18 ---
spec pack.trl 'from = "text.jsonl"; format = text; max_len = 64 tokens; pack = true; shuffle = true;' pretrain "epochs = 3;"
run 0 "packed pretraining" pack.trl
planned=$(sed -n 's/.*training rows; \([0-9]*\) steps.*/\1/p' err.txt)
done_=$(sed -n 's/^done: \([0-9]*\) steps.*/\1/p' err.txt)
if [ -n "$planned" ] && [ "$planned" = "$done_" ] && [ "$planned" -lt 18 ]; then ok; else
    bad "pack: planned '$planned' steps, ran '$done_'"; cat err.txt >&2; fi
spec pack2.trl 'from = "text.jsonl"; format = text; max_len = 64 tokens; pack = true; shuffle = true;' pretrain "epochs = 3; grad_accum = 2;"
run 0 "packed pretraining, grad_accum 2" pack2.trl
p2=$(sed -n 's/.*training rows; \([0-9]*\) steps.*/\1/p' err.txt)
d2=$(sed -n 's/^done: \([0-9]*\) steps.*/\1/p' err.txt)
if [ -n "$p2" ] && [ "$p2" = "$d2" ] && [ "$p2" = $(( (planned + 1) / 2 )) ]; then ok; else
    bad "pack with grad_accum 2: planned '$p2', ran '$d2', want $(( (planned + 1) / 2 ))"; fi

# --- unpacked: batches run on across epoch ends: 3 rows, batch 2, 3 epochs = ceil(9 / 2) = 5 steps
head -3 sft.jsonl > three.jsonl
spec epochs.trl "from = \"three.jsonl\"; $SFT truncate = left;" sft "epochs = 3;"
run 0 "3 rows, batch 2, 3 epochs" epochs.trl
p3=$(sed -n 's/.*training rows; \([0-9]*\) steps.*/\1/p' err.txt)
d3=$(sed -n 's/^done: \([0-9]*\) steps.*/\1/p' err.txt)
if [ "$p3" = 5 ] && [ "$d3" = 5 ]; then ok; else bad "3 rows x 3 epochs / batch 2: planned '$p3', ran '$d3', want 5"; fi

echo "data.spec_options: $passes passed, $fails failed"
[ "$fails" = 0 ]
