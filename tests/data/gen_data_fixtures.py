#!/usr/bin/env python3
"""gen_data_fixtures.py — the small dataset files tests/data/test_dataset.c reads.

Good files in every file type and format, and a corpus of malformed files (fixtures/bad/) whose
expected `file:line` errors are listed in test_dataset.c. Plain Python, no dependencies:
    python3 tests/data/gen_data_fixtures.py
"""
import csv, io, json, os

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
B = os.path.join(D, "bad")

def w(path, text, mode="w"):
    with open(path, mode, **({} if "b" in mode else {"newline": ""})) as f:
        f.write(text)

def jl(rows):
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

def main():
    os.makedirs(B, exist_ok=True)
    # prompt_response, JSONL: a blank line, a CRLF line, unicode, prompt/completion naming.
    sft = [{"prompt": "What is 2+2?", "response": "4"},
           {"prompt": "Capital of France?", "response": "Paris."},
           {"prompt": "Say hi in Chinese", "response": "你好"},
           {"prompt": "Spell cat", "completion": "c-a-t"},
           {"prompt": "Empty answer", "response": ""}]
    text = jl(sft[:2]) + "\n" + json.dumps(sft[2], ensure_ascii=False) + "\r\n" + jl(sft[3:])
    w(os.path.join(D, "sft.jsonl"), text)
    # Alpaca JSON array: instruction/input/output.
    alpaca = [{"instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
              {"instruction": "Name a fruit.", "input": "", "output": "Apple"},
              {"instruction": "Translate to French.", "input": "cat", "output": "chat"}]
    w(os.path.join(D, "alpaca.json"), json.dumps(alpaca, indent=2, ensure_ascii=False) + "\n")
    # {"data": [...]} with messages (one ShareGPT-style row).
    msgs = {"version": 1, "data": [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                      {"role": "assistant", "content": "Hello"}]},
        {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"},
                           {"from": "human", "value": "3+3?"}, {"from": "gpt", "value": "6"}]}]}
    w(os.path.join(D, "messages.json"), json.dumps(msgs, indent=1) + "\n")
    # Preference: strings, and message lists (prompt as list, chosen/rejected as assistant lists).
    pref = [{"prompt": "Pick a colour", "chosen": "Blue", "rejected": "No"},
            {"prompt": [{"role": "user", "content": "1+1?"}],
             "chosen": [{"role": "assistant", "content": "2"}],
             "rejected": [{"role": "assistant", "content": "3"}]},
            {"chosen": [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "hello!"}],
             "rejected": [{"role": "user", "content": "hey"}, {"role": "assistant", "content": "go away"}]}]
    w(os.path.join(D, "pref.jsonl"), jl(pref))
    # Text (pretraining).
    w(os.path.join(D, "text.jsonl"), jl([{"text": "The quick brown fox."}, {"text": "Jumps over the lazy dog."},
                                         {"text": "abcdefghijklmnopqrstuvwxyz"}]))
    # CSV: BOM, quoted commas, embedded newline (row starts on line 3, ends on line 4), escaped quotes.
    s = io.StringIO()
    cw = csv.writer(s, lineterminator="\n")
    cw.writerow(["prompt", "response"])
    cw.writerow(["Hello, world", "Hi"])
    cw.writerow(["two\nlines", 'say "yes"'])
    cw.writerow(["last", "row"])
    cw.writerow([" spaced ", "\tkept "])
    w(os.path.join(D, "sft.csv"), "\ufeff" + s.getvalue())
    # Empty rows between real ones (packing must skip them, not stop).
    w(os.path.join(D, "empty_rows.jsonl"), jl([{"prompt": "", "response": ""}, {"prompt": "ab", "response": "cd"},
                                               {"prompt": "", "response": ""}, {"prompt": "ef", "response": "gh"}]))
    # {"data": [...]} after decoys: a nested "data" array, brackets and quotes inside strings,
    # a row spanning two lines and two rows on one line. Rows start on lines 3, 4 and 5.
    w(os.path.join(D, "tricky.json"),
      '{"meta": {"data": [1, 2]}, "x": "[\\"{", "data":\n'
      '[\n'
      ' {"prompt": "a]}\\"[{", "response": "b"},\n'
      ' {"prompt": "c\\\\", "response":\n'
      '   "d"}, {"prompt": "e", "response": "f"}\n'
      ']}\n')
    # GSM8K-style prompt_answer.
    w(os.path.join(D, "gsm.jsonl"), jl([
        {"question": "Tom has 3 apples and buys 2. How many?", "answer": "3 + 2 = <<3+2=5>>5\n#### 5"},
        {"question": "Big number?", "answer": "Add them.\n#### 1,234"}]))

    # ---- malformed corpus (expected errors in test_dataset.c) ----
    good = json.dumps({"prompt": "p", "response": "r"})
    w(os.path.join(B, "bad_json.jsonl"), good + "\n" + good + '\n{"prompt": "a", "response": }\n' + good + "\n")
    w(os.path.join(B, "missing_field.jsonl"), good + '\n{"prompt": "only"}\n')
    w(os.path.join(B, "wrong_type.jsonl"), good + "\n" + good + '\n{"prompt": "a", "response": 42}\n')
    w(os.path.join(B, "not_object.jsonl"), '["prompt", "response"]\n' + good + "\n")
    w(os.path.join(B, "trailing.jsonl"), good + "\n" + good + " x\n")
    w(os.path.join(B, "invalid_utf8.jsonl"), (good + "\n").encode() + b'{"prompt": "\xff", "response": "r"}\n', "wb")
    w(os.path.join(B, "no_role.jsonl"), jl([{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]},
                                             {"messages": [{"content": "x"}]}]))
    w(os.path.join(B, "bad_role.jsonl"), jl([{"messages": [{"role": "narrator", "content": "x"}]}]))
    w(os.path.join(B, "null_content.jsonl"), jl([{"messages": [{"role": "user", "content": "q"}]},
                                                  {"messages": [{"role": "user", "content": None}]}]))
    w(os.path.join(B, "pref_missing.jsonl"), jl([{"prompt": "p", "chosen": "c"}]))
    w(os.path.join(B, "truncated.json"), '[\n  {"prompt": "a", "response": "b"},\n  {"prompt": "c", "resp')
    w(os.path.join(B, "row_missing.json"), '[\n  {"prompt": "a", "response": "b"},\n  {"prompt": "c",\n   "response": "d"},\n  {"prompt": "e"}\n]\n')
    w(os.path.join(B, "not_array.json"), '{"rows": []}\n')
    w(os.path.join(B, "unterminated.csv"), 'prompt,response\na,b\n"c,d\n')
    w(os.path.join(B, "fields.csv"), 'prompt,response\na,b\nc,d,e\nf\n')
    w(os.path.join(B, "dup_header.csv"), 'prompt,prompt\na,b\n')
    w(os.path.join(B, "empty.jsonl"), "\n  \n")
    w(os.path.join(B, "gsm_empty.jsonl"), jl([{"question": "q", "answer": "r\n#### 3"}, {"question": "q", "answer": "work\n####  "}]))
    w(os.path.join(B, "long_line.jsonl"), good + "\n" + json.dumps({"prompt": "x" * 300, "response": "y"}) + "\n")
    w(os.path.join(B, "deep.jsonl"), good + "\n" + "[" * 5000 + "]" * 5000 + "\n")
    w(os.path.join(B, "binary.jsonl"), bytes(range(256)) * 4, "wb")
    print("wrote fixtures to", D)

if __name__ == "__main__":
    main()
