#!/usr/bin/env bash
# check_specs.sh — every recipe in specs/ passes `trlc check`. The real checkpoints and data are
# not here, so each recipe is checked with `--set` pointing its model at a stand-in directory
# holding the real model's config.json (configs/, copied from the Hugging Face repos) plus the
# tiny fixture tokenizer, and its data at small files of the right format (GSM8K from shared/
# when present). What this checks: syntax, every setting, the LoRA targets against the real
# architecture, the objective and data formats; not: the real weights or tokenizer.
# usage: check_specs.sh TRLC SOURCE_DIR
set -u
trlc=$1 src=$2
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for m in Qwen3-8B Qwen3-32B; do
  mkdir -p "$work/$m"
  cp "$src/tests/specs/configs/$m.json" "$work/$m/config.json"
  cp "$src/tests/fixtures/tiny-qwen3/tokenizer.json" "$src/tests/fixtures/tiny-qwen3/tokenizer_config.json" "$work/$m/"
done
printf '{"instruction": "Say hi.", "output": "Hi!"}\n' > "$work/sft.jsonl"
printf '{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]}\n' > "$work/messages.jsonl"
printf '{"prompt": "2+2?", "chosen": "4", "rejected": "5"}\n' > "$work/pref.jsonl"
gsm=$src/../shared/data/gsm8k
if [ ! -f "$gsm/train.jsonl" ]; then
  gsm=$work/gsm && mkdir -p "$gsm"
  printf '{"question": "What is 2+3?", "answer": "2+3=5\\n#### 5"}\n' > "$gsm/train.jsonl"
  cp "$gsm/train.jsonl" "$gsm/test.jsonl"
fi
passed=0 failed=0
run() {  # spec, then --set arguments
  local spec=$1; shift
  if out=$("$trlc" check "$src/specs/$spec" "$@" 2>&1); then
    passed=$((passed + 1)); echo "ok   $spec"
  else
    failed=$((failed + 1)); echo "FAIL $spec"; echo "$out"
  fi
}
q8="model.policy.from=\"$work/Qwen3-8B\"" q32="model.policy.from=\"$work/Qwen3-32B\""
run qwen3-8b-lora-sft.trl --set "$q8" --set "data.train.from=\"$work/sft.jsonl\"" --set "data.eval.from=\"$work/sft.jsonl\""
run qwen3-8b-full-freeze.trl --set "$q8" --set "data.train.from=\"$work/messages.jsonl\""
run qwen3-8b-dpo.trl --set "$q8" --set "data.train.from=\"$work/pref.jsonl\""
run qwen3-8b-orpo.trl --set "$q8" --set "data.train.from=\"$work/pref.jsonl\""
run qwen3-32b-qlora-grpo-gsm8k.trl --set "$q32" --set "data.train.from=\"$gsm/train.jsonl\"" --set "data.eval.from=\"$gsm/test.jsonl\""
# a LoRA target the architecture lacks must still be caught through --set
if "$trlc" check "$src/specs/qwen3-8b-dpo.trl" --set "$q8" --set "data.train.from=\"$work/pref.jsonl\"" \
     --set "lora.policy.targets=[q_proj, c_attn]" 2>"$work/err"; then
  failed=$((failed + 1)); echo "FAIL c_attn target accepted"
elif grep -q "c_attn" "$work/err"; then
  passed=$((passed + 1)); echo "ok   unknown LoRA target rejected"
else
  failed=$((failed + 1)); echo "FAIL unexpected error:"; cat "$work/err"
fi
echo "specs: $passed passed, $failed failed"
[ "$failed" -eq 0 ] && [ "$passed" -gt 0 ]
