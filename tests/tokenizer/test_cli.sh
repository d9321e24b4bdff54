#!/bin/sh
# test_cli.sh — `trlc tokenize`: encode, decode, --no-special, the byte tokenizer, and bad input
# lines (error with the line number, exit 1), usage errors (exit 2).
# usage: test_cli.sh TRLC PHI2_TOKENIZER_JSON TESTS_TOKENIZER_DIR
trlc=$1 phi=$2 here=$3
fail=0 pass=0
tmp=${TMPDIR:-/tmp}/trlc_tok_cli.$$
check() {   # check NAME EXPECTED ACTUAL
    if [ "$2" = "$3" ]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL $1: got [$3] want [$2]" >&2; fi
}

out=$(printf '"Hello world"\n""\n"a\\u0000b <|endoftext|>"\n' | "$trlc" tokenize --tokenizer "$phi")
check encode "15496 995

64 188 65 220 50256" "$out"
out=$(printf '15496 995\n\n50256 40\n' | "$trlc" tokenize --tokenizer "$phi" --decode)
check decode '"Hello world"
""
"<|endoftext|>I"' "$out"
out=$(printf '50256 40\n' | "$trlc" tokenize --tokenizer "$phi" --decode --no-special)
check decode-skip '"I"' "$out"
out=$(printf '"Hi"\n' | "$trlc" tokenize --tokenizer "$here/llama3_tokenizer.json")
check bos "50257 17250" "$out"
out=$(printf '"Hi"\n' | "$trlc" tokenize --tokenizer "$here/llama3_tokenizer.json" --no-special)
check no-special "17250" "$out"
out=$(printf '"hi"\n' | "$trlc" tokenize --tokenizer bytes)
check bytes "256 104 105" "$out"

printf '"ok"\nnot json\n"never reached"\n' | "$trlc" tokenize --tokenizer "$phi" >"$tmp.out" 2>"$tmp.err"
check bad-line-status 1 $?
check bad-line-stdout "482" "$(cat "$tmp.out")"
check bad-line-msg 1 "$(grep -c '^<stdin>:2:.*error: invalid JSON' "$tmp.err")"
printf '42\n' | "$trlc" tokenize --tokenizer "$phi" >/dev/null 2>"$tmp.err"
check not-a-string 1 "$(grep -c '^<stdin>:1: error: expected a JSON string' "$tmp.err")"
printf '1 abc\n' | "$trlc" tokenize --tokenizer "$phi" --decode >/dev/null 2>"$tmp.err"
check bad-id-status 1 $?
check bad-id-msg 1 "$(grep -c '^<stdin>:1:3: error: expected a token id' "$tmp.err")"
printf '99999999\n' | "$trlc" tokenize --tokenizer "$phi" --decode >/dev/null 2>"$tmp.err"
check big-id-msg 1 "$(grep -c 'outside the vocabulary' "$tmp.err")"
"$trlc" tokenize --tokenizer "$here/bad/truncated.json" </dev/null >/dev/null 2>"$tmp.err"
check bad-file-status 1 $?
"$trlc" tokenize </dev/null >/dev/null 2>&1
check usage-status 2 $?
"$trlc" tokenize --help >"$tmp.out"
check help-status 0 $?
check help-text 1 "$(grep -c 'usage: trlc tokenize --tokenizer FILE' "$tmp.out")"
rm -f "$tmp.out" "$tmp.err"
echo "tokenizer.cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
