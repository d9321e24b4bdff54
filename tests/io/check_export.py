#!/usr/bin/env python3
"""Loads what io.export wrote with the peer libraries (run by hand after ctest; CI has no python):
  BUILD/tests/io/model-f32   transformers from_pretrained → logits identical to tiny-qwen3's
  BUILD/tests/io/model-bf16  sharded bf16 → loads; logits close to the f32 model's
  BUILD/tests/io/adapter     peft PeftModel.from_pretrained on tiny-qwen3 → logits identical to
                             the adapter peft itself wrote (fixtures/peft-tiny-qwen3)
  BUILD/tests/io/merged      ex_merge_lora's output → logits of peft's merge_and_unload
usage: python3 tests/io/check_export.py build-st"""
import os
import sys

import torch
import transformers
import peft

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
out = os.path.join(sys.argv[1] if len(sys.argv) > 1 else "build", "tests", "io")
ids = torch.tensor([[353, 343, 264, 198, 45, 290, 283, 72, 64, 261, 354, 198]])


def logits(m):
    with torch.no_grad():
        return m(ids).logits.float()


def load(path, dtype=torch.float32):
    return transformers.AutoModelForCausalLM.from_pretrained(path, torch_dtype=dtype).eval()


base = load(os.path.join(FIX, "tiny-qwen3"))
ref = logits(base)
f32 = load(os.path.join(out, "model-f32"))
d = (logits(f32) - ref).abs().max().item()
print("model-f32: max |logit diff| vs tiny-qwen3 = %g" % d)
assert d == 0.0
bf = load(os.path.join(out, "model-bf16"), torch.bfloat16)
d = (logits(bf) - ref).abs().max().item()
print("model-bf16 (3 shards): max |logit diff| vs f32 = %g" % d)
assert d < 0.05
tok = transformers.AutoTokenizer.from_pretrained(os.path.join(out, "model-f32"))
assert tok.eos_token == "<|im_end|>" and len(tok) == 378
pa = peft.PeftModel.from_pretrained(load(os.path.join(FIX, "tiny-qwen3")), os.path.join(FIX, "peft-tiny-qwen3")).eval()
pb = peft.PeftModel.from_pretrained(load(os.path.join(FIX, "tiny-qwen3")), os.path.join(out, "adapter")).eval()
la, lb = logits(pa), logits(pb)
d = (la - lb).abs().max().item()
print("adapter: max |logit diff| vs peft's own adapter = %g (adapter effect %g)" % (d, (la - ref).abs().max().item()))
assert d == 0.0 and (la - ref).abs().max().item() > 0
merged = load(os.path.join(out, "merged"))
pm = peft.PeftModel.from_pretrained(load(os.path.join(FIX, "tiny-qwen3")), os.path.join(FIX, "peft-tiny-qwen3"))
pm = pm.merge_and_unload().eval()
d = (logits(merged) - logits(pm)).abs().max().item()
print("merged (trlc merge): max |logit diff| vs peft merge_and_unload = %g" % d)
assert d < 1e-5
print("OK")
