# make_teacher.py — writes the weights of kd.trl's teacher, models/tiny-qwen3-big: a randomly
# initialised Qwen3 (transformers' own init, seed 0) of its config.json, saved in bf16 as
# model.safetensors by save_pretrained, with the tokenizer of tests/fixtures/tiny-qwen3 (the
# policy's: kd compares the two distributions token by token). Bigger than the policy (2 layers of
# width 128 against its 64), small enough to commit (~0.6 MB).
# usage (from the repository root): /usr/bin/python3 examples/language/models/make_teacher.py
import os, shutil
import torch
from transformers import AutoConfig, AutoModelForCausalLM

here = os.path.dirname(os.path.abspath(__file__))
out = os.path.join(here, "tiny-qwen3-big")
tok = os.path.join(here, "..", "..", "..", "tests", "fixtures", "tiny-qwen3")
torch.manual_seed(0)
cfg = AutoConfig.from_pretrained(out)
model = AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16)
model.save_pretrained(out, safe_serialization=True)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(tok, f), os.path.join(out, f))
