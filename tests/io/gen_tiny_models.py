#!/usr/bin/env python3
"""Writes the tiny model fixtures under tests/fixtures/ with the reference libraries.

  tiny-qwen3/       config.json + model.safetensors (transformers save_pretrained, f32, tied),
                    tokenizer.json (byte-level BPE trained with `tokenizers` on GSM8K questions,
                    Qwen2 pre-tokenizer/normalizer/decoder, the 26 Qwen added tokens mapped into the
                    small vocab), tokenizer_config.json (Qwen3's, chat template included),
                    reference.safetensors (input ids and the logits transformers computes for them)
  tiny-llama/       LlamaConfig with Llama-3 rope_scaling, untied, saved in 3 shards + index
  peft-tiny-qwen3/  a LoRA adapter written by peft (r=4, all linear layers, random A and B)
                    + tensors.txt (name dtype shape per line)
  rope_llama3.json  inv_freq of transformers' llama3 rope init for the Llama-3.2-1B config
  tiny-qwen2/       Qwen2Config (q/k/v biases, untied, f32) + reference.safetensors
  tiny-llama/reference.safetensors  logits of the bf16 tiny-llama computed in bf16
  ../io/fixtures/merged-tiny-qwen3.safetensors  peft's merge_and_unload of the adapter into tiny-qwen3

Needs torch, transformers, peft, tokenizers, safetensors (CI never runs this). Run from the repo
root: python3 tests/io/gen_tiny_models.py [qwen3 llama peft rope qwen2 llama-ref merged]  (default: all)
"""
import json
import os
import shutil

import torch
import transformers
import peft
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers, Regex
from safetensors.torch import save_file

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
SHARED = "/work/shared/data"
QWEN_REGEX = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
              r"|\s*[\r\n]+|\s+(?!\S)|\s+")
BASE_VOCAB = 352      # bytes + merges
MODEL_VOCAB = 384     # >= base + 26 added tokens, like Qwen's padded 151936


def tiny_tokenizer(outdir):
    texts = []
    with open(os.path.join(SHARED, "gsm8k", "train.jsonl")) as f:
        for i, line in enumerate(f):
            if i >= 400:
                break
            ex = json.loads(line)
            texts.append(ex["question"])
            texts.append(ex["answer"])
    texts += ["Hello, world! Ça va? 你好 🙂", "user\nassistant\nsystem\n", "<think>\n\n</think>\n\n"]
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN_REGEX), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    from tokenizers import processors
    tok.post_processor = processors.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)
    trainer = trainers.BpeTrainer(vocab_size=BASE_VOCAB, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False, special_tokens=[])
    tok.train_from_iterator(texts, trainer)
    assert tok.get_vocab_size() == BASE_VOCAB, tok.get_vocab_size()
    # The Qwen3 added tokens, in Qwen's order, right after the base vocabulary.
    cfg = json.load(open(os.path.join(SHARED, "tokenizers", "qwen3", "tokenizer_config.json")))
    added = sorted(cfg["added_tokens_decoder"].items(), key=lambda kv: int(kv[0]))
    from tokenizers import AddedToken
    decoder = {}
    for i, (old_id, a) in enumerate(added):
        t = AddedToken(a["content"], single_word=a["single_word"], lstrip=a["lstrip"], rstrip=a["rstrip"],
                       normalized=a["normalized"], special=a["special"])
        if a["special"]:
            tok.add_special_tokens([t])
        else:
            tok.add_tokens([t])
        new_id = tok.token_to_id(a["content"])
        assert new_id == BASE_VOCAB + i, (a["content"], new_id)
        decoder[str(new_id)] = a
    tok.save(os.path.join(outdir, "tokenizer.json"))
    cfg["added_tokens_decoder"] = decoder
    cfg["model_max_length"] = 512
    with open(os.path.join(outdir, "tokenizer_config.json"), "w") as f:
        json.dump(cfg, f, indent=2, ensure_ascii=False)
        f.write("\n")
    return tok


def tiny_qwen3():
    out = os.path.join(FIX, "tiny-qwen3")
    shutil.rmtree(out, ignore_errors=True)
    os.makedirs(out)
    tok = tiny_tokenizer(out)
    eos = tok.token_to_id("<|im_end|>")
    pad = tok.token_to_id("<|endoftext|>")
    cfg = transformers.Qwen3Config(vocab_size=MODEL_VOCAB, hidden_size=32, intermediate_size=64,
                                   num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                                   head_dim=8, max_position_embeddings=512, rope_theta=1000000.0,
                                   rms_norm_eps=1e-6, tie_word_embeddings=True, bos_token_id=pad,
                                   eos_token_id=eos, torch_dtype="float32")
    torch.manual_seed(0)
    model = transformers.Qwen3ForCausalLM(cfg).eval()
    with torch.no_grad():   # the default init leaves norms at 1: make every weight count
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True)
    # Reference logits for a fixed sequence (tokenizer ids of a ChatML prompt).
    text = "<|im_start|>user\nNatalia sold 48 clips.<|im_end|>\n<|im_start|>assistant\n"
    ids = tok.encode(text).ids
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    save_file({"input_ids": torch.tensor(ids, dtype=torch.int64), "logits": logits.contiguous()},
              os.path.join(out, "reference.safetensors"), metadata={"text": text})
    return out, model


def tiny_llama():
    out = os.path.join(FIX, "tiny-llama")
    shutil.rmtree(out, ignore_errors=True)
    cfg = transformers.LlamaConfig(vocab_size=300, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                                   rope_theta=500000.0, rms_norm_eps=1e-5, tie_word_embeddings=False,
                                   rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64},
                                   torch_dtype="bfloat16")
    torch.manual_seed(1)
    model = transformers.LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(out, safe_serialization=True, max_shard_size="20KB")
    return out


def reference(model_dir, ids, dtype):
    """reference.safetensors: logits transformers computes from the saved files for fixed ids."""
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=dtype).eval()
    with torch.no_grad():
        logits = model(torch.tensor([ids])).logits[0].float()
    save_file({"input_ids": torch.tensor(ids, dtype=torch.int64), "logits": logits.contiguous()},
              os.path.join(model_dir, "reference.safetensors"), metadata={"dtype": str(dtype)})


def tiny_qwen2():
    out = os.path.join(FIX, "tiny-qwen2")
    shutil.rmtree(out, ignore_errors=True)
    cfg = transformers.Qwen2Config(vocab_size=256, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                   num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                                   rope_theta=1000000.0, rms_norm_eps=1e-6, tie_word_embeddings=False,
                                   torch_dtype="float32")
    torch.manual_seed(3)
    model = transformers.Qwen2ForCausalLM(cfg).eval()
    with torch.no_grad():   # non-zero biases and norms so that every parameter matters
        for n, p in model.named_parameters():
            if n.endswith("norm.weight"):
                p.copy_(1.0 + 0.1 * torch.randn_like(p))
            elif n.endswith(".bias"):
                p.copy_(0.1 * torch.randn_like(p))
    model.save_pretrained(out, safe_serialization=True)
    reference(out, [1, 7, 42, 255, 0, 13, 100, 200, 31, 9], torch.float32)


def peft_adapter(base_dir):
    out = os.path.join(FIX, "peft-tiny-qwen3")
    shutil.rmtree(out, ignore_errors=True)
    model = transformers.AutoModelForCausalLM.from_pretrained(base_dir, torch_dtype=torch.float32)
    lc = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.05, task_type="CAUSAL_LM",
                         target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                         "down_proj"])
    pm = peft.get_peft_model(model, lc)
    pm.peft_config["default"].base_model_name_or_path = "tiny-qwen3"
    torch.manual_seed(2)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_B" in n:
                p.copy_(0.01 * torch.randn_like(p))
    pm.save_pretrained(out)
    from safetensors import safe_open
    with safe_open(os.path.join(out, "adapter_model.safetensors"), "pt") as f, \
            open(os.path.join(out, "tensors.txt"), "w") as lst:
        for k in sorted(f.keys()):
            t = f.get_tensor(k)
            lst.write("%s %s %s\n" % (k, str(t.dtype).replace("torch.", ""), " ".join(map(str, t.shape))))
    readme = os.path.join(out, "README.md")
    if os.path.exists(readme):
        os.remove(readme)


def merged():
    """fixtures/merged-tiny-qwen3.safetensors: peft's merge_and_unload of peft-tiny-qwen3 into
    tiny-qwen3 (f32; the tied lm_head left out, as save_pretrained does)."""
    base = transformers.AutoModelForCausalLM.from_pretrained(os.path.join(FIX, "tiny-qwen3"),
                                                             torch_dtype=torch.float32)
    m = peft.PeftModel.from_pretrained(base, os.path.join(FIX, "peft-tiny-qwen3")).merge_and_unload()
    sd = {k: v.contiguous() for k, v in m.state_dict().items() if k != "lm_head.weight"}
    out = os.path.join(FIX, "..", "io", "fixtures", "merged-tiny-qwen3.safetensors")
    save_file(sd, out, metadata={"format": "pt"})


def rope_llama3():
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS
    cfg = transformers.LlamaConfig(hidden_size=2048, num_attention_heads=32, head_dim=64, rope_theta=500000.0,
                                   max_position_embeddings=131072,
                                   rope_scaling={"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0,
                                                 "high_freq_factor": 4.0,
                                                 "original_max_position_embeddings": 8192})
    inv, _ = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    with open(os.path.join(FIX, "rope_llama3.json"), "w") as f:
        json.dump({"head_dim": 64, "inv_freq": [float(x) for x in inv]}, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    import sys
    parts = sys.argv[1:] or ["qwen3", "llama", "peft", "rope", "qwen2", "llama-ref", "merged"]
    print("torch", torch.__version__, "transformers", transformers.__version__, "peft", peft.__version__)
    if "qwen3" in parts:
        tiny_qwen3()
    if "llama" in parts:
        tiny_llama()
    if "peft" in parts:
        peft_adapter(os.path.join(FIX, "tiny-qwen3"))
    if "rope" in parts:
        rope_llama3()
    if "qwen2" in parts:
        tiny_qwen2()
    if "merged" in parts:
        merged()
    if "llama-ref" in parts:   # bf16 weights, logits computed in bf16 by transformers
        reference(os.path.join(FIX, "tiny-llama"), [1, 5, 77, 299, 0, 150, 3, 64], torch.bfloat16)
