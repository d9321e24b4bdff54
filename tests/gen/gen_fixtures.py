# gen_fixtures.py — reference outputs for tests/gen from the peer implementations.
# Run: /usr/bin/python3 tests/gen/gen_fixtures.py   (torch 1.13 + transformers 4.51.3, CPU)
# Writes tests/gen/fixtures/:
#   greedy.txt   per model and prompt: `model n_prompt prompt_ids... | generated_ids...` from
#                transformers' generate(do_sample=False, max_new_tokens=12, eos disabled) on the
#                tiny checkpoints in tests/fixtures (weights loaded as float32)
#                and `tiny-qwen3+peft`: the same with fixtures/peft-tiny-qwen3 applied (peft 0.15)
#                and `qwen3-sharp` / `qwen3-sharp+lora`: a qwen3 of tiny-qwen3's config with larger
#                random weights (fixtures/qwen3-sharp, written here, seed 1: its greedy ids vary, where
#                tiny-qwen3 repeats the last prompt token) without and with a random LoRA adapter
#                (fixtures/qwen3-sharp-lora: q_proj, v_proj, down_proj, r 4, alpha 8, B nonzero)
#   warpers.txt  per case: `top_k top_p temperature | logits... | processed...` where processed are
#                the scores after transformers' TemperatureLogitsWarper → TopKLogitsWarper →
#                TopPLogitsWarper (-inf printed as -inf)
import os
import shutil
import torch
from peft import LoraConfig, PeftModel, get_peft_model
from transformers import AutoModelForCausalLM
from transformers.generation.logits_process import (TemperatureLogitsWarper, TopKLogitsWarper,
                                                    TopPLogitsWarper)

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures")
OUT = os.path.join(HERE, "fixtures")
os.makedirs(OUT, exist_ok=True)

PROMPTS = [[5, 17, 33, 2 + 1, 40], [7], [100, 101, 102, 103, 104, 105, 106, 107, 108], [9, 250]]
MAX_NEW = 12

with open(os.path.join(OUT, "greedy.txt"), "w") as f:
    for name in ["tiny-qwen3", "tiny-llama", "tiny-qwen2"]:
        m = AutoModelForCausalLM.from_pretrained(os.path.join(FIX, name), torch_dtype=torch.float32)
        m.eval()
        for p in PROMPTS:
            ids = torch.tensor([p])
            with torch.no_grad():
                out = m.generate(ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                 max_new_tokens=MAX_NEW, min_new_tokens=MAX_NEW, eos_token_id=None,
                                 pad_token_id=0)
            gen = out[0, len(p):].tolist()
            f.write("%s %d %s | %s\n" % (name, len(p), " ".join(map(str, p)), " ".join(map(str, gen))))

    m = AutoModelForCausalLM.from_pretrained(os.path.join(FIX, "tiny-qwen3"), torch_dtype=torch.float32)
    m = PeftModel.from_pretrained(m, os.path.join(FIX, "peft-tiny-qwen3"))
    m.eval()
    for p in PROMPTS:
        ids = torch.tensor([p])
        with torch.no_grad():
            out = m.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=MAX_NEW, min_new_tokens=MAX_NEW, eos_token_id=None, pad_token_id=0)
        gen = out[0, len(p):].tolist()
        f.write("%s %d %s | %s\n" % ("tiny-qwen3+peft", len(p), " ".join(map(str, p)), " ".join(map(str, gen))))

    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(os.path.join(FIX, "tiny-qwen3"), torch_dtype=torch.float32)
    with torch.no_grad():
        for n, t in base.named_parameters():
            if "norm" not in n:
                t.normal_(0.0, 0.3)
    sharp = os.path.join(OUT, "qwen3-sharp")
    base.save_pretrained(sharp, safe_serialization=True)
    for tf in ["tokenizer.json", "tokenizer_config.json"]:   # a complete model directory
        shutil.copy(os.path.join(FIX, "tiny-qwen3", tf), os.path.join(sharp, tf))
    base = AutoModelForCausalLM.from_pretrained(sharp, torch_dtype=torch.float32).eval()
    lcfg = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "down_proj"], lora_dropout=0.0)
    pm = get_peft_model(AutoModelForCausalLM.from_pretrained(sharp, torch_dtype=torch.float32), lcfg)
    with torch.no_grad():
        for n, t in pm.named_parameters():
            if "lora_B" in n:
                t.normal_(0.0, 0.3)
    pm.save_pretrained(os.path.join(OUT, "qwen3-sharp-lora"))
    os.remove(os.path.join(OUT, "qwen3-sharp-lora", "README.md"))   # peft's model card
    pm = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sharp, torch_dtype=torch.float32),
                                   os.path.join(OUT, "qwen3-sharp-lora")).eval()
    for name, mm in [("qwen3-sharp", base), ("qwen3-sharp+lora", pm)]:
        for p in PROMPTS:
            ids = torch.tensor([p])
            with torch.no_grad():
                out = mm.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                                  max_new_tokens=MAX_NEW, min_new_tokens=MAX_NEW, eos_token_id=None,
                                  pad_token_id=0)
            gen = out[0, len(p):].tolist()
            f.write("%s %d %s | %s\n" % (name, len(p), " ".join(map(str, p)), " ".join(map(str, gen))))

torch.manual_seed(0)
cases = [(0, 1.0, 1.0), (5, 1.0, 1.0), (0, 0.9, 1.0), (4, 0.8, 0.7), (0, 0.5, 1.3), (20, 0.95, 0.6),
         (1, 1.0, 1.0), (3, 0.3, 2.0)]
with open(os.path.join(OUT, "warpers.txt"), "w") as f:
    for k, p, t in cases:
        logits = torch.randn(1, 16) * 2
        s = logits.clone()
        if t != 1.0:
            s = TemperatureLogitsWarper(t)(None, s)
        if k > 0:
            s = TopKLogitsWarper(k)(None, s)
        if p < 1.0:
            s = TopPLogitsWarper(p)(None, s)
        fmt = lambda v: "-inf" if v == float("-inf") else "%.9g" % v
        f.write("%d %.9g %.9g | %s | %s\n" % (k, p, t, " ".join(fmt(v) for v in logits[0].tolist()),
                                            " ".join(fmt(v) for v in s[0].tolist())))
print("wrote", OUT)
