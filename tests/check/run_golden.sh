#!/usr/bin/env bash
# run_golden.sh — the golden diagnostics of `trlc check`.
#   broken/NN-name.trl   a spec with one mistake; broken/NN-name.expected its exact stderr.
#     Each must exit 1 (not 0, not a crash: status >= 128) and print exactly the expected text.
#   warn/NN-name.trl     a valid spec with one warning: exit 0 and exactly warn/NN-name.expected.
#   ../../examples/language/*.trl   specs that must pass: exit 0, nothing on stderr.
# Runs from tests/check so that paths in messages are relative and stable.
# usage: run_golden.sh TRLC [--update]   (--update rewrites the .expected files: review the diff!)
set -u
trlc=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
update=${2:-}
cd "$(dirname "$0")"
pass=0 fail=0
for spec in broken/*.trl warn/*.trl; do
    exp=${spec%.trl}.expected
    want=1
    case $spec in warn/*) want=0 ;; esac
    got=$("$trlc" check "$spec" 2>&1 >/dev/null)
    rc=$?
    if [ "$update" = "--update" ]; then printf '%s\n' "$got" > "$exp"; fi
    if [ $rc -ge 128 ]; then
        echo "FAIL $spec: crashed (status $rc)"; fail=$((fail + 1)); continue
    fi
    if [ $rc -ne $want ]; then
        echo "FAIL $spec: exit status $rc, expected $want"; fail=$((fail + 1)); continue
    fi
    if [ ! -f "$exp" ]; then
        echo "FAIL $spec: no $exp"; fail=$((fail + 1)); continue
    fi
    if ! diff -u "$exp" <(printf '%s\n' "$got") > /tmp/trlc-golden-diff.$$; then
        echo "FAIL $spec: stderr differs from $exp:"; cat /tmp/trlc-golden-diff.$$; fail=$((fail + 1)); continue
    fi
    pass=$((pass + 1))
done
rm -f /tmp/trlc-golden-diff.$$
for spec in ../../examples/language/*.trl; do
    dir=$(dirname "$spec")
    got=$(cd "$dir" && "$trlc" check "$(basename "$spec")" 2>&1 >/dev/null)
    rc=$?
    if [ $rc -ne 0 ] || [ -n "$got" ]; then
        echo "FAIL $spec: exit status $rc, expected 0 and no diagnostics:"; printf '%s\n' "$got"
        fail=$((fail + 1)); continue
    fi
    pass=$((pass + 1))
done
echo "$pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
