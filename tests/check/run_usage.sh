#!/usr/bin/env bash
# run_usage.sh — the command line of `trlc check`: usage errors exit 2 with a message, --help and
# --settings exit 0, a valid spec prints `PATH: ok` on stdout and exits 0.
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
# docs/settings.md holds the generated reference between its BEGIN/END markers: it must be current
docs=../../docs/settings.md
if diff <(sed -n '/^<!-- BEGIN blocks-and-settings/,/^<!-- END blocks-and-settings/p' "$docs" | sed '1d;$d') \
        <("$trlc" check --settings) >/dev/null; then
    pass=$((pass + 1))
else
    echo "FAIL $docs is out of date: regenerate its blocks-and-settings section with \`trlc check --settings\`"
    fail=$((fail + 1))
fi
echo "$pass passed, $fail failed"
[ $fail -eq 0 ]
