#!/bin/bash
# test_cli.sh — `trlc run` end to end on the tiny fixtures (area run): usage and exit codes,
# --device cuda, LoRA / full / from-scratch runs and their exports (adapter names and shapes as
# peft writes them: tests/fixtures/peft-tiny-qwen3/tensors.txt), grad accumulation through the
# data path, SIGKILL during checkpoint saves + --resume giving the uninterrupted run's losses,
# NaN handling (stop: exit 3 naming the step; on_nan = skip), bad data (exit 1, file:line).
# usage: test_cli.sh TRLC SRC_DIR WORK_DIR
set -u
TRLC=$1; SRC=$2; W=$3
rm -rf "$W"; mkdir -p "$W"
fails=0; passes=0
ok() { passes=$((passes+1)); }
bad() { echo "FAIL: $*" >&2; fails=$((fails+1)); }
expect_rc() {   # expect_rc WANT DESC -- cmd...
    local want=$1 desc=$2; shift 3
    "$@" >"$W/out.txt" 2>"$W/err.txt"; local rc=$?
    if [ "$rc" = "$want" ]; then ok; else bad "$desc: exit $rc, want $want"; cat "$W/err.txt" >&2; fi
}
grep_err() { if grep -q -- "$1" "$W/err.txt"; then ok; else bad "stderr lacks '$1'"; cat "$W/err.txt" >&2; fi; }
# loss of step N in a metrics.jsonl (the last line logged for it: resumed runs append)
loss_at() { grep "^{\"step\": $2, \"loss\"" "$1" | tail -1 | sed 's/.*"loss": \([^,]*\),.*/\1/'; }

cd "$SRC"
# --- usage ---
expect_rc 2 "no spec" -- "$TRLC" run
expect_rc 2 "unknown option" -- "$TRLC" run lora.trl --bogus
expect_rc 2 "--set without =" -- "$TRLC" run lora.trl --set train.steps
expect_rc 0 "--help" -- "$TRLC" run --help
grep -q -- "--resume" "$W/out.txt" && ok || bad "help lacks --resume"
expect_rc 3 "--device cuda without a driver" -- env TRLC_CUDA_DRIVER="$W/no-driver.so" "$TRLC" run lora.trl --device cuda --out "$W/cuda"
grep_err "no CUDA device found"
expect_rc 1 "--set of an unknown key" -- "$TRLC" run lora.trl --set train.optimizr.lr=1e-3 --out "$W/x"

# --- LoRA run, export vs peft's tensor names and shapes ---
# data with no learned token at all (qwen2-lora.trl's mini tokenizer drops every response): a
# warning naming the data file, not a silent run "training" at loss 0
expect_rc 0 "no learned token" -- "$TRLC" run qwen2-lora.trl --set train.steps=2 --out "$W/notargets"
grep_err "warning: train.jsonl: no learned token in 2 training steps"
expect_rc 0 "lora run" -- "$TRLC" run lora.trl --out "$W/lora"
for f in adapter/adapter_config.json adapter/adapter_model.safetensors metrics.jsonl checkpoint-8/state.json best/adapter_model.safetensors; do
    [ -s "$W/lora/$f" ] && ok || bad "lora run: $f missing"
done
ls "$W/lora/tensorboard"/events.out.tfevents.* >/dev/null 2>&1 && ok || bad "no TensorBoard file"
"$TRLC" inspect "$W/lora/adapter/adapter_model.safetensors" | awk 'NR > 1 { gsub(/[\[\],]/, " "); print $1, ($2 == "F32" ? "float32" : $2), $3, $4 }' | sort > "$W/names.txt"
sort "$SRC/../fixtures/peft-tiny-qwen3/tensors.txt" | sed 's/ *$//' > "$W/peft.txt"
if diff "$W/names.txt" "$W/peft.txt" >/dev/null; then ok; else bad "adapter tensors differ from peft's"; diff "$W/names.txt" "$W/peft.txt" | head >&2; fi
grep -q '"peft_type": "LORA"' "$W/lora/adapter/adapter_config.json" && grep -q '"r": 4' "$W/lora/adapter/adapter_config.json" && ok || bad "adapter_config.json"
grep -q "done: 8 steps" "$W/err.txt" && ok || bad "no summary line"
l1=$(loss_at "$W/lora/metrics.jsonl" 1); l8=$(loss_at "$W/lora/metrics.jsonl" 8)
awk -v a="$l1" -v b="$l8" 'BEGIN { exit !(b < a) }' && ok || bad "LoRA loss did not go down ($l1 -> $l8)"

# --- full fine-tuning and from scratch: HF model directories ---
expect_rc 0 "full run" -- "$TRLC" run full.trl --out "$W/full"
[ -s "$W/full/model/model.safetensors" ] && [ -s "$W/full/model/config.json" ] && [ -s "$W/full/model/tokenizer.json" ] && ok || bad "full export"
expect_rc 0 "inspect the full export" -- "$TRLC" inspect "$W/full/model"
expect_rc 0 "scratch run" -- "$TRLC" run scratch.trl --out "$W/scratch"
[ -s "$W/scratch/model/model.safetensors" ] && grep -q '"model_type": "llama"' "$W/scratch/model/config.json" && ok || bad "scratch export"
expect_rc 0 "inspect the scratch export" -- "$TRLC" inspect "$W/scratch/model"
grep -q "eval step" "$W/scratch/metrics.jsonl" 2>/dev/null; grep -q '"eval_loss"' "$W/scratch/metrics.jsonl" && ok || bad "scratch: no eval_loss in metrics"

# --- pretraining on packed raw text (no chat template) ---
expect_rc 0 "pretrain" -- "$TRLC" run pretrain.trl --out "$W/pretrain"
grep -q "done: [0-9]* steps, final loss [0-2]\." "$W/err.txt" && ok || bad "pretrain: loss did not fall below 3"
[ -s "$W/pretrain/model/model.safetensors" ] && grep -q '"model_type": "qwen3"' "$W/pretrain/model/config.json" && ok || bad "pretrain export"

# --- dpo (reference: the policy without adapters) and kd (a teacher model) end to end ---
expect_rc 0 "dpo run" -- "$TRLC" run dpo.trl --out "$W/dpo"
awk -v a="$(loss_at "$W/dpo/metrics.jsonl" 1)" 'BEGIN { d = a - log(2); exit !(d < 1e-6 && d > -1e-6) }' && ok || bad "dpo: step 1 loss is not log 2 (B = 0: policy == reference): $(loss_at "$W/dpo/metrics.jsonl" 1)"
[ -s "$W/dpo/adapter/adapter_model.safetensors" ] && ok || bad "dpo: no adapter"
expect_rc 0 "dpo full fine-tuning" -- "$TRLC" run dpo-full.trl --out "$W/dpof"
# the reference is a frozen copy: the loss leaves log 2 (it would stay there if the reference moved with the policy)
awk -v a="$(loss_at "$W/dpof/metrics.jsonl" 6)" 'BEGIN { exit !(a < 0.6) }' && ok || bad "dpo full FT: loss did not fall"
expect_rc 0 "kd run" -- "$TRLC" run kd.trl --out "$W/kd"
[ -s "$W/kd/adapter/adapter_model.safetensors" ] && ok || bad "kd: no adapter"
# --- orpo (no reference): LoRA and full fine-tuning train, the loss falls, the export is written ---
expect_rc 0 "orpo run" -- "$TRLC" run orpo.trl --out "$W/orpo"
awk -v a="$(loss_at "$W/orpo/metrics.jsonl" 1)" -v b="$(loss_at "$W/orpo/metrics.jsonl" 6)" 'BEGIN { exit !(b < a) }' && ok || bad "orpo: loss did not fall"
[ -s "$W/orpo/adapter/adapter_model.safetensors" ] && ok || bad "orpo: no adapter"
grep '"step": 6,' "$W/orpo/metrics.jsonl" | grep -q '"rewards/chosen": .*"rewards/accuracies": .*"nll_loss": .*"log_odds_ratio": ' && ok || bad "orpo: TRL's metrics not logged"
expect_rc 0 "orpo full fine-tuning" -- "$TRLC" run orpo-full.trl --out "$W/orpof"
awk -v a="$(loss_at "$W/orpof/metrics.jsonl" 1)" -v b="$(loss_at "$W/orpof/metrics.jsonl" 6)" 'BEGIN { exit !(b < a - 1) }' && ok || bad "orpo full FT: loss did not fall by 1"
[ -s "$W/orpof/model/model.safetensors" ] && ok || bad "orpo full FT: no model"
# with data eval: the loss per pair and TRL's eval_ metrics (no perplexity or exact match for pairs)
expect_rc 0 "orpo with eval" -- "$TRLC" run orpo.trl --set "data.eval.from=\"prefs.jsonl\"" --set data.eval.format=preference --set data.eval.template=chat --set "train.eval_every=3 steps" --out "$W/orpoe"
grep_err "^eval step 6  eval_loss [0-9.]*\$"
grep -q '^{"step": 3, "eval_loss": [0-9.]*, "eval_rewards/chosen": .*"eval_log_odds_chosen": [-0-9.e]*}$' "$W/orpoe/metrics.jsonl" && ! grep -q eval_ppl "$W/orpoe/metrics.jsonl" && ok || bad "orpo: eval line in metrics.jsonl"
expect_rc 1 "orpo on text data" -- "$TRLC" run orpo.trl --set data.train.format=text --out "$W/orpot"
grep_err "error: objective \`orpo\` needs data in format preference"

# --- QLoRA (NF4 base weights) end to end; double_quant is noted as not applied ---
expect_rc 0 "qlora run" -- "$TRLC" run qlora.trl --set quantize.policy.double_quant=true --out "$W/qlora"
grep_err "double_quant is not applied"
[ -s "$W/qlora/adapter/adapter_model.safetensors" ] && ok || bad "qlora: no adapter"
expect_rc 0 "qlora dpo" -- "$TRLC" run dpo.trl --set quantize.policy.format=nf4 --out "$W/qdpo"
# the reference is the dequantized base: the policy equals it at step 1
awk -v a="$(loss_at "$W/qdpo/metrics.jsonl" 1)" 'BEGIN { d = a - log(2); exit !(d < 1e-6 && d > -1e-6) }' && ok || bad "qlora dpo: step 1 is not log 2"
expect_rc 1 "fp4 is refused" -- "$TRLC" run qlora.trl --set quantize.policy.format=fp4 --out "$W/fp4"
grep_err "nf4"

# --- same seed, same run ---
expect_rc 0 "lora run again" -- "$TRLC" run lora.trl --out "$W/lora2"
[ "$(loss_at "$W/lora/metrics.jsonl" 8)" = "$(loss_at "$W/lora2/metrics.jsonl" 8)" ] && ok || bad "two runs with one seed differ"

# --- accumulation through the data path: batch 4 == batch 2 x accum 2 ---
A="--set train.steps=2 --set train.clip_norm=100"
expect_rc 0 "batch 4" -- "$TRLC" run lora.trl $A --set train.batch=4 --set train.grad_accum=1 --out "$W/b4"
expect_rc 0 "batch 2 x 2" -- "$TRLC" run lora.trl $A --set train.batch=2 --set train.grad_accum=2 --out "$W/b22"
for s in 1 2; do
    x=$(loss_at "$W/b4/metrics.jsonl" $s); y=$(loss_at "$W/b22/metrics.jsonl" $s)
    awk -v a="$x" -v b="$y" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= 1e-5 * (a < 0 ? -a : a)) }' && ok || bad "accum step $s: $x vs $y"
done

# --- SIGKILL while saving, then --resume: the same losses as the uninterrupted run ---
expect_rc 0 "uninterrupted" -- "$TRLC" run resume.trl --out "$W/u"
killed_mid_save=0
for attempt in 1 2 3 4 5; do
    rm -rf "$W/k"
    "$TRLC" run resume.trl --out "$W/k" >/dev/null 2>&1 &
    pid=$!
    while kill -0 $pid 2>/dev/null; do
        if compgen -G "$W/k/.tmp-checkpoint-*" >/dev/null && [ "$(ls -d "$W"/k/checkpoint-* 2>/dev/null | wc -l)" -ge 1 ] &&
           [ "$(wc -l < "$W/k/metrics.jsonl")" -ge 5 ]; then
            kill -9 $pid 2>/dev/null && killed_mid_save=1
            break
        fi
    done
    wait $pid 2>/dev/null
    [ $killed_mid_save = 1 ] && break
done
[ $killed_mid_save = 1 ] && ok || bad "could not kill the run during a checkpoint save"
expect_rc 0 "resume" -- "$TRLC" run resume.trl --resume "$W/k"
grep_err "resuming from"
same=0; differ=0
for s in $(seq 1 40); do
    [ "$(loss_at "$W/u/metrics.jsonl" $s)" = "$(loss_at "$W/k/metrics.jsonl" $s)" ] && same=$((same+1)) || { differ=$((differ+1)); echo "step $s: $(loss_at "$W/u/metrics.jsonl" $s) vs $(loss_at "$W/k/metrics.jsonl" $s)" >&2; }
done
[ $same = 40 ] && ok || bad "resumed losses differ from the uninterrupted run at $differ steps"
[ "$(grep -c '"loss"' "$W/k/metrics.jsonl")" = 40 ] && ok || bad "resumed metrics.jsonl does not hold each of the 40 steps once"
cmp -s "$W/u/adapter/adapter_model.safetensors" "$W/k/adapter/adapter_model.safetensors" && ok || bad "resumed adapter differs"
expect_rc 1 "resume with another batch size" -- "$TRLC" run resume.trl --set train.batch=2 --resume "$W/k"
grep_err "other settings"
cp -r "$W/k" "$W/k2"
for c in "$W"/k2/checkpoint-*; do printf 'garbage' > "$c/model.safetensors"; done
expect_rc 1 "resume from damaged checkpoints" -- "$TRLC" run resume.trl --resume "$W/k2"
grep_err "no complete checkpoint"
cp -r "$W/k" "$W/k3"
for c in "$W"/k3/checkpoint-*; do
    sz=$(stat -c %s "$c/model.safetensors"); : > "$c/model.safetensors"; head -c "$sz" /dev/zero > "$c/model.safetensors"
done
expect_rc 1 "resume from zeroed tensor files" -- "$TRLC" run resume.trl --resume "$W/k3"
grep_err "model.safetensors"
expect_rc 1 "resume from an empty dir" -- "$TRLC" run lora.trl --resume "$W/empty-run"

# --- early stopping: eval_loss must improve by 0.5 each epoch, patience 2 ---
expect_rc 0 "early stop" -- "$TRLC" run scratch.trl --set train.epochs=8 --set train.early_stop.min_delta=0.5 --out "$W/es"
grep_err "early stopping at step [0-9]"; grep -q "done: 48 steps" "$W/err.txt" && bad "early stop: ran all 48 steps" || ok
[ -s "$W/es/best/model.safetensors" ] && ok || bad "early stop: no best model"

# --- exact-match accuracy (greedy decoding): memorising the training rows reaches 100% ---
expect_rc 0 "memorise" -- "$TRLC" run scratch.trl --set train.epochs=100 --set train.optimizer.lr=1e-2 --set train.eval_every=50epochs --set 'data.eval.from="train.jsonl"' --set train.early_stop.patience=100 --out "$W/mem"
grep_err "exact match 24/24 (100.0%) generated, 24/24 teacher-forced"
grep -q '"eval_accuracy": 1}' "$W/mem/metrics.jsonl" && ok || bad "no eval_accuracy 1 in metrics.jsonl"
# every evaluation (the one halfway, at 20/24 or so, too): generation agrees with teacher forcing
sed -n 's/.*exact match \([0-9]*\/[0-9]*\) .*generated, \([0-9]*\/[0-9]*\) teacher-forced.*/\1 \2/p' "$W/err.txt" > "$W/agree.txt"
[ "$(wc -l < "$W/agree.txt")" = 2 ] && ok || bad "memorise: expected 2 evaluations with both counts"
awk '$1 != $2 { exit 1 }' "$W/agree.txt" && ok || { bad "generated != teacher-forced exact match"; cat "$W/agree.txt" >&2; }

# --- prompt_answer eval data for sft (GSM8K style): the generated final number is compared with
# the reference's (`#### 12.0` == 12, `1,234` == 1234); the last reference is wrong on purpose ---
expect_rc 0 "gsm" -- "$TRLC" run gsm.trl --out "$W/gsm"
grep_err "eval step 150  exact match 4/5 (80.0%) generated"
grep -q '"eval_accuracy": 0.8}' "$W/gsm/metrics.jsonl" && ok || bad "gsm: no eval_accuracy 0.8 in metrics.jsonl"
[ -s "$W/gsm/best/model.safetensors" ] && ok || bad "gsm: no best model (chosen by eval_accuracy: there is no eval loss)"
expect_rc 1 "gsm early_stop on eval_loss" -- "$TRLC" run gsm.trl --set train.eval_every=50steps --set train.early_stop.patience=2 --out "$W/gsm2"
grep_err "prompt_answer eval data has no loss"

# --- the trainer's eval accuracy is what `trlc generate --eval` finds on the exported adapter ---
expect_rc 0 "lora eval" -- "$TRLC" run lora.trl --set train.steps=60 --set 'data.eval.from="train.jsonl"' --set train.save_every=1000steps --set train.eval_every=60steps --out "$W/lgen"
run_acc=$(sed -n 's/.*eval step 60 .*exact match \([0-9]*\/[0-9]*\) .*generated.*/\1/p' "$W/err.txt")
expect_rc 0 "generate --eval" -- "$TRLC" generate ../fixtures/tiny-qwen3 --adapter "$W/lgen/adapter" --eval train.jsonl --format prompt_response --template chat --batch 4
gen_acc=$(sed -n 's/^exact match: \([0-9]*\/[0-9]*\) .*/\1/p' "$W/out.txt")
[ -n "$run_acc" ] && [ "$run_acc" = "$gen_acc" ] && ok || bad "trlc run exact match '$run_acc' != trlc generate --eval '$gen_acc'"

# --- Ctrl-C: stop after the step, save, resume ---
# A background job of a non-interactive shell starts with SIGINT ignored until trlc installs its
# handler (before training): wait for the first logged step however long start-up takes on a busy
# machine (the handler is in place by then), and never wait forever for the exit.
"$TRLC" run lora.trl --set train.steps=100000 --set train.log_every=1steps --out "$W/int" >/dev/null 2>"$W/err.txt" &
pid=$!
for i in $(seq 1 1200); do [ -s "$W/int/metrics.jsonl" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill -INT $pid
( sleep 120; kill -KILL $pid 2>/dev/null ) & watchdog=$!
wait $pid; rc=$?
kill $watchdog 2>/dev/null; wait $watchdog 2>/dev/null
[ $rc = 3 ] && ok || bad "interrupted run: exit $rc, want 3"
grep_err "interrupted after step [0-9]*: checkpoint saved"
ls -d "$W"/int/checkpoint-* >/dev/null 2>&1 && ok || bad "interrupted run: no checkpoint"

# --- packed pretraining: Ctrl-C, --resume, the same losses as an uninterrupted run ---
P="--set train.save_every=1steps --set train.keep=2"
expect_rc 0 "packed, uninterrupted" -- "$TRLC" run pretrain.trl $P --out "$W/pk-u"
"$TRLC" run pretrain.trl $P --out "$W/pk-k" >/dev/null 2>&1 &
pid=$!
for i in $(seq 1 12000); do [ -d "$W/pk-k/checkpoint-3" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done
kill -INT $pid 2>/dev/null; wait $pid
expect_rc 0 "packed, resumed" -- "$TRLC" run pretrain.trl $P --resume "$W/pk-k"
if diff <(grep -o '"step": [0-9]*, "loss": [^,]*' "$W/pk-u/metrics.jsonl") <(grep -o '"step": [0-9]*, "loss": [^,]*' "$W/pk-k/metrics.jsonl") >/dev/null; then ok; else bad "packed resume: losses differ"; fi

# --- rows longer than max_pos ---
expect_rc 1 "rows longer than max_pos" -- "$TRLC" run scratch.trl --set model.tiny.config.max_pos=8 --out "$W/maxpos"
grep_err "longer than model .tiny.'s max_pos (8)"

expect_rc 1 "early_stop without data eval" -- "$TRLC" run full.trl --set train.early_stop.metric=eval_accuracy --set train.early_stop.patience=2 --out "$W/es2"
grep_err "early_stop. is decided at each evaluation"

# --- NaN / inf ---
expect_rc 3 "NaN loss stops" -- "$TRLC" run lora.trl --set train.optimizer.lr=1e30 --set train.clip_norm=1e30 --out "$W/nan"
grep_err "at step [0-9]"
expect_rc 0 "on_nan = skip" -- "$TRLC" run lora.trl --set train.optimizer.lr=1e30 --set train.clip_norm=1e30 --set train.on_nan=skip --out "$W/nanskip"
grep_err "update skipped"

# --- bad inputs ---
expect_rc 1 "missing data file" -- "$TRLC" run missing-data.trl --out "$W/missing"
grep_err "missing-data.trl:4:[0-9]*: error: .*no-such.jsonl"
expect_rc 1 "bad row" -- "$TRLC" run lora.trl --set 'data.train.from="bad.jsonl"' --out "$W/badrow"
grep_err "bad.jsonl:3"

# --- damaged model directories: exit 1 naming the file (and tensor) ---
cp -r "$SRC/../fixtures/tiny-qwen3" "$W/trunc"
head -c 50000 "$SRC/../fixtures/tiny-qwen3/model.safetensors" > "$W/trunc/model.safetensors"
expect_rc 1 "truncated weights" -- "$TRLC" run lora.trl --set "model.policy.from=\"$W/trunc\"" --out "$W/x1"
grep_err "trunc/model.safetensors: error: truncated"
cp -r "$SRC/../fixtures/tiny-qwen3" "$W/shape"
sed -i 's/"intermediate_size": 64/"intermediate_size": 48/' "$W/shape/config.json"
expect_rc 1 "weights that do not fit config.json" -- "$TRLC" run lora.trl --set "model.policy.from=\"$W/shape\"" --out "$W/x2"
grep_err "mlp.*has shape .*expected"

echo "run.cli: $passes passed, $fails failed"
[ $fails = 0 ]
