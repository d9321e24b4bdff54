#!/usr/bin/env bash
# run_usage.sh — the command line of `trlc check`: usage errors exit 2 with a message, --help and
# --settings exit 0, a valid spec prints `PATH: ok` on stdout and exits 0; and every subcommand's
# usage errors read `trlc: error: CMD: ...` (unknown option, missing value, extra argument).
set -u
trlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")"
pass=0 fail=0
expect() {   # expect STATUS PATTERN ARGS... : exit status and a line of stdout+stderr matching PATTERN
    local want=$1 pat=$2
    shift 2
    local out rc
    out=$("$trlc" "$@" 2>&1)
    rc=$?
    if [ $rc -ne "$want" ]; then
        echo "FAIL trlc $*: exit status $rc, expected $want"; fail=$((fail + 1)); return
    fi
    if ! printf '%s\n' "$out" | grep -q -- "$pat"; then
        echo "FAIL trlc $*: no line matching '$pat' in:"; printf '%s\n' "$out"; fail=$((fail + 1)); return
    fi
    pass=$((pass + 1))
}
expect 2 "no spec given" check
expect 2 "unknown option \`--memroy\`" check --memroy ../../examples/language/dpo.trl
expect 2 "one spec at a time" check a.trl b.trl
expect 2 "takes no spec" check --settings a.trl
expect 0 "usage: trlc check SPEC" check --help
expect 0 "^| \`rank\` | integer" check --settings
expect 0 "^../../examples/language/dpo.trl: ok$" check ../../examples/language/dpo.trl
expect 1 "cannot open\|No such file" check broken/does-not-exist.trl
expect 1 "^broken/27-rank-zero.trl: 1 error$" check broken/27-rank-zero.trl
# --set: the value is parsed and checked like a written one, errors point into `--set`
ex=../../examples/language/dpo.trl
expect 1 "^--set:1:8: error: \`rank\` must be in \[1, 1048576\], got 0$" check $ex --set lora.policy.rank=0
expect 1 "unknown setting \`lrr\`" check $ex --set train.optimizer.lrr=1
expect 1 "did you mean \`lr\`?" check $ex --set train.optimizer.lrr=1
expect 1 "unknown block \`trian\`" check $ex --set trian.seed=1
expect 1 "has no linear layer \`qq_proj\`" check $ex --set "lora.policy.targets=[qq_proj]"
expect 1 "closes nothing" check $ex --set "train.seed=)"
expect 0 ": ok$" check $ex --set "lora.policy.targets=[q_proj, k_proj]" --set train.seed=3 --set objective.dpo.beta=0.2
expect 2 "takes KEY=VALUE" check $ex --set train.seed
expect 2 "takes KEY=VALUE" check $ex --set
# every subcommand words its usage errors alike (cli.h cli_usage_error): `trlc: error: CMD: ...`, exit 2
for cmd in ast check ir kernels run tokenize data generate chat inspect merge; do
    expect 2 "^trlc: error: $cmd: unknown option \`--bogus\`$" $cmd --bogus
done
expect 2 "^trlc: error: tokenize: \`--tokenizer\` needs a value$" tokenize --tokenizer
expect 2 "^trlc: error: tokenize: unexpected argument \`extra\`$" tokenize --tokenizer bytes extra
expect 2 "^trlc: error: generate: \`--max-new\` needs a value$" generate model --max-new
expect 2 "^trlc: error: chat: \`--seed\` needs a value$" chat model --seed
expect 2 "^trlc: error: data: \`--max-len\` needs a value$" data --max-len
expect 2 "^trlc: error: merge: \`--base\` needs a value$" merge --base
expect 2 "^trlc: error: run: \`--out\` needs a value$" run $ex --out
expect 2 "^trlc: error: kernels: \`-o\` needs a value$" kernels $ex -o
expect 2 "^trlc: error: ast: one spec at a time (got \`a.trl\` and \`b.trl\`)$" ast a.trl b.trl
expect 2 "^trlc: error: ast: no spec given$" ast
expect 2 "^usage: trlc ast SPEC" ast --bogus
# docs/settings.md holds the generated reference between its BEGIN/END markers: it must be current
docs=../../docs/settings.md
if diff <(sed -n '/^<!-- BEGIN blocks-and-settings/,/^<!-- END blocks-and-settings/p' "$docs" | sed '1d;$d') \
        <("$trlc" check --settings) >/dev/null; then
    pass=$((pass + 1))
else
    echo "FAIL $docs is out of date: run tests/check/update_settings_doc.sh TRLC"
    fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
