#!/usr/bin/env bash
# test_cli.sh TRLC FIXTURES TOKENIZER — `trlc data`: exit statuses, file:line errors, marked output.
set -u
trlc=$1 fx=$2 tokjson=$3
fail=0 pass=0
check() {   # check NAME WANT_RC PATTERN -- ARGS...
    local name=$1 want=$2 pat=$3
    shift 4
    local out rc
    out=$("$trlc" data "$@" 2>&1)
    rc=$?
    if [ "$rc" = "$want" ] && grep -qF -- "$pat" <<<"$out"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "FAIL $name: rc=$rc (want $want), want output containing: $pat"
        echo "$out" | head -20
    fi
}
check good 0 '[[4<|im_end|>]]' -- "$fx/messages.json" --tokenizer "$tokjson" --format messages --template qwen2.5
check plain 0 'What is 2+2?[[4<|endoftext|>]]' -- "$fx/sft.jsonl" --tokenizer "$tokjson" --show 1
check field 0 '[[Apple<|endoftext|>]]' -- "$fx/alpaca.json" --tokenizer "$tokjson" --field response=output --show 2
check gsm 0 '--- answer: 1234' -- "$fx/gsm.jsonl" --tokenizer bytes --format prompt_answer --template chatml
check pref 0 '--- rejected:' -- "$fx/pref.jsonl" --tokenizer bytes --format preference
check badrow 1 'bad_json.jsonl:3:29: error:' -- "$fx/bad/bad_json.jsonl" --tokenizer bytes
check skip 0 '3 rows (prompt_response), 1 skipped' -- "$fx/bad/bad_json.jsonl" --tokenizer bytes --skip-errors
check badtpl 1 'did you mean `qwen3`' -- "$fx/sft.jsonl" --tokenizer bytes --template qwen33
check usage 2 'usage: trlc data' -- "$fx/sft.jsonl"
check badfmt 2 'unknown format' -- "$fx/sft.jsonl" --tokenizer bytes --format chat
check stats 0 'stats: 82 tokens (16.4 per row), 14 learned, longest row 20 tokens, 2 rows truncated to 20' -- "$fx/sft.jsonl" --tokenizer bytes --stats --show 0 --max-len 20
check help 0 'usage: trlc data' -- --help
echo "data.cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
