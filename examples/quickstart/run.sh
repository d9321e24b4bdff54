#!/usr/bin/env bash
# run.sh — the quickstart: builds trlc (installing what it needs), makes the data, trains a small
# model from scratch to add (part 1), then a LoRA adapter on top of it to subtract (part 2), and
# prints the held-out exact-match accuracy of each and the training time (wall and CPU seconds).
# About 150 CPU-seconds: ~80 s on 2 quiet CPU cores (README.md has measured numbers).
# Set TRLC=/path/to/trlc to use an existing binary instead of building; SEED=N for another data
# split (make_data.sh). Takes no arguments (-h / --help prints this). Exit status: 0 when both
# parts reach at least 90% held-out accuracy; 2 for an argument.
set -euo pipefail
if [ $# -gt 0 ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  case "$1" in -h|--help) exit 0 ;; *) echo "run.sh: takes no arguments (got \`$1\`)" >&2; exit 2 ;; esac
fi
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
if [ -z "${TRLC:-}" ]; then
  bash "$root/scripts/deps.sh"
  cmake -S "$root" -B "$root/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$root/build" -j"$(nproc)" --target trlc >/dev/null
  TRLC=$root/build/cli/trlc
fi
cd "$here"
rm -rf runs
bash make_data.sh data
# CPU seconds (user + sys) of finished child processes, from the shell's own `times` (run in this
# shell, not in a $(...) subshell, which would count only its own children).
tf=$(mktemp) && trap 'rm -f "$tf"' EXIT
cpu() { awk 'NR == 2 { s = 0; for (i = 1; i <= 2; i++) { split($i, t, /[ms]/); s += t[1] * 60 + t[2] } print s }' "$tf"; }
times >"$tf"; cpu0=$(cpu) start=$(date +%s)
echo "== part 1: a model from scratch learns two-digit addition"
"$TRLC" run arithmetic.trl
echo "== part 2: a LoRA adapter teaches it subtraction"
"$TRLC" run subtract-lora.trl
times >"$tf"; secs=$(( $(date +%s) - start )) cpus=$(awk -v a="$(cpu)" -v b="$cpu0" 'BEGIN { printf "%.0f", a - b }')
acc() { grep '"eval_accuracy"' "$1/metrics.jsonl" | tail -n 1 | sed 's/.*"eval_accuracy": *\([0-9.e+-]*\).*/\1/'; }
add=$(acc runs/arithmetic) sub=$(acc runs/subtract)
printf '\nheld-out exact match: addition %.1f%%, subtraction (LoRA) %.1f%%; training time %d s (%s CPU-s)\n' \
  "$(awk -v a="$add" 'BEGIN{print a*100}')" "$(awk -v a="$sub" 'BEGIN{print a*100}')" "$secs" "$cpus"
awk -v a="$add" -v s="$sub" 'BEGIN { exit !(a >= 0.9 && s >= 0.9) }' ||
  { echo "quickstart: accuracy below 90%" >&2; exit 1; }
