#!/usr/bin/env bash
# run_ir.sh — `trlc ir` on the specs in tests/lower/specs: the parameter list, forward, backward
# and outputs of a tiny Qwen3 (SFT with label smoothing), frozen layers of a tied Llama, DPO
# (2B rows, ref_logp), GRPO, distillation (the teacher frozen, forward only), LoRA, a model from a
# checkpoint, the --after option, a spec error (exit 1) and usage errors (exit 2).
set -u
trlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")/specs"
pass=0 fail=0
expect() {   # expect STATUS PATTERN ARGS... : exit status and a line of stdout+stderr matching PATTERN
    local want=$1 pat=$2
    shift 2
    local out rc
    out=$("$trlc" "$@" 2>&1)
    rc=$?
    if [ $rc -ne "$want" ]; then
        echo "FAIL trlc $*: exit status $rc, expected $want"; printf '%s\n' "$out" | head -20; fail=$((fail + 1)); return
    fi
    if ! printf '%s\n' "$out" | grep -q -- "$pat"; then
        echo "FAIL trlc $*: no line matching '$pat'"; printf '%s\n' "$out" | head -40; fail=$((fail + 1)); return
    fi
    pass=$((pass + 1))
}
q=tiny-qwen3.trl
expect 0 '^# IR after dce' ir $q
expect 0 '^parameters (25, 25 trainable):$' ir $q
expect 0 '^  %[0-9]* = param "model.layers.1.self_attn.q_norm.weight" : f32\[8\] trainable  # qwen3.trl:' ir $q
expect 0 '^  %[0-9]* = param "lm_head.weight" : f32\[320,32\] trainable' ir $q
expect 0 '^  %[0-9]* = input "labels" : i32\[B,T\]' ir $q
expect 0 '^forward (' ir $q
expect 0 '= sdpa(%[0-9]*, %[0-9]*, %[0-9]*, causal=true, scale=0.353553) : f32\[B,4,T,8\]  # nn.trl:' ir $q
expect 0 '= cross_entropy(%[0-9]*, %[0-9]*, ignore_index=-100, label_smoothing=0.1) : f32\[B,T\]  # objectives.trl:' ir $q
expect 0 '^backward (' ir $q
expect 0 '= embed_bwd(' ir $q
expect 0 '^  grad:model.layers.0.mlp.down_proj.weight = %' ir $q
expect 0 '^  loss = %' ir $q
expect 0 '^  logits = %' ir $q
expect 0 '= f64\[B,T,320\]\|: f64\[B,T,320\]' ir --f64 $q
expect 0 '^# IR after lower' ir --after lower $q
n=$("$trlc" ir --after lower $q 2>/dev/null | grep -c '^backward\|^  grad:')
if [ "$n" -eq 0 ]; then pass=$((pass + 1)); else echo "FAIL --after lower prints gradients"; fail=$((fail + 1)); fi
l=tiny-llama-frozen.trl
expect 0 '^parameters (20, 11 trainable):$' ir $l
expect 0 '^  %[0-9]* = param "model.layers.0.mlp.up_proj.weight" : f32\[48,32\]  # llama.trl' ir $l
n=$("$trlc" ir $l 2>/dev/null | grep -c '^  grad:')
if [ "$n" -eq 11 ]; then pass=$((pass + 1)); else echo "FAIL frozen llama: $n gradients, expected 11"; fail=$((fail + 1)); fi
n=$("$trlc" ir $l 2>/dev/null | grep -c 'param "lm_head')
if [ "$n" -eq 0 ]; then pass=$((pass + 1)); else echo "FAIL tied llama declares lm_head"; fail=$((fail + 1)); fi
p=tiny-qwen3-dpo.trl
expect 0 '^  %[0-9]* = input "tokens" : i32\[2\*B,T\]' ir $p
expect 0 '^  %[0-9]* = input "ref_logp" : f32\[2\*B,1\]' ir $p
expect 0 '= slice(%[0-9]*, axis=0, start=B, len=B) : f32\[B,1\]  # objectives.trl:' ir $p
expect 0 '^  grad:model.norm.weight = %' ir $p
r=tiny-qwen3-grpo.trl
expect 0 '^  %[0-9]* = input "advantages" : f32\[B,1\]' ir $r
expect 0 '^  %[0-9]* = input "old_logp" : f32\[B,T\]' ir $r
expect 0 '^  %[0-9]* = input "weight" : f32\[B,T\]' ir $r
expect 0 '^  grad:model.layers.1.self_attn.q_norm.weight = %' ir $r
k=tiny-qwen3-kd.trl
expect 0 '^  %[0-9]* = input "teacher_logits" : f32\[B,T,320\]' ir $k
expect 0 '^parameters (25, 0 trainable):$' ir --model big $k
n=$("$trlc" ir --model big $k 2>/dev/null | grep -c '^  grad:\|input "labels"\|input "teacher_logits"')
if [ "$n" -eq 0 ]; then pass=$((pass + 1)); else echo "FAIL the teacher has a loss or gradients"; fail=$((fail + 1)); fi
o=tiny-qwen3-lora.trl
expect 0 '^parameters (33, 8 trainable):$' ir $o
expect 0 '^  %[0-9]* = param "model.layers.1.self_attn.v_proj.lora_B.weight" : f32\[16,4\] trainable' ir $o
expect 0 '^  grad:model.layers.0.self_attn.q_proj.lora_A.weight = %' ir $o
expect 0 '^parameters (25, 25 trainable):$' ir --after lower $o
expect 0 '^# IR after lora' ir --after lora $o
f=from-qwen3.trl
expect 0 '^parameters (24, 24 trainable):$' ir $f
expect 0 '= rope(%[0-9]*, %[0-9]*, theta=1e+06) : f32\[B,4,T,8\]' ir $f
n=$("$trlc" ir $f 2>/dev/null | grep -c 'param "lm_head')
if [ "$n" -eq 0 ]; then pass=$((pass + 1)); else echo "FAIL tied qwen3 checkpoint declares lm_head"; fail=$((fail + 1)); fi
expect 1 "^tiny-bad-arch.trl:6:76: error: unknown variable \`lm_haed\`" ir tiny-bad-arch.trl
expect 1 "did you mean \`lm_head\`?" ir tiny-bad-arch.trl
expect 1 "note: in \`forward\`, called here" ir tiny-bad-arch.trl
expect 1 "cannot open\|No such file\|does not exist" ir does-not-exist.trl
expect 2 "no spec given" ir
# --after recompute: more nodes than after dce (clones of each layer's values in the backward
# pass); the spec's train.recompute = true makes it the default
expect 0 '^# IR after recompute' ir --after recompute $q
n_dce=$("$trlc" ir $q 2>/dev/null | grep -c '^  %')
n_rc=$("$trlc" ir --after recompute $q 2>/dev/null | grep -c '^  %')
if [ "$n_rc" -gt "$n_dce" ]; then pass=$((pass + 1)); else echo "FAIL recompute: $n_rc nodes, dce $n_dce"; fail=$((fail + 1)); fi
rcdir=$(mktemp -d)
cp tiny.jsonl "$rcdir/" && sed 's/^train *{/train { recompute = true;/' $q > "$rcdir/rc.trl"
expect 0 '^# IR after recompute' ir "$rcdir/rc.trl"
expect 0 '^# IR after dce' ir --after dce "$rcdir/rc.trl"
rm -rf "$rcdir"
expect 2 "unknown pass \`autodif\`" ir --after autodif $q
expect 2 "did you mean \`autodiff\`?" ir --after autodif $q
expect 2 "unknown option \`--aftr\`" ir --aftr lower $q
expect 2 "no model \`polcy\`" ir --model polcy $q
expect 0 "usage: trlc ir SPEC" ir --help
echo "lower.ir: $pass passed, $fail failed"
[ $fail -eq 0 ]
