#!/usr/bin/python3
"""ORPO reference for tests/run/test_orpo.c (run: /usr/bin/python3 tests/run/gen_orpo_fixture.py;
torch, transformers 4.51, peft 0.15). The C test never runs Python.

The loss is TRL's ORPOTrainer (trl/trainer/orpo_trainer.py: concatenated_forward, odds_ratio_loss,
get_batch_loss_metrics, as read at huggingface/trl commit 4795c7d, about TRL 0.13 on):
  logp_c, logp_r  mean log-prob of the response tokens (get_batch_logps, average_log_prob=True)
  log_odds        (logp_c - logp_r) - (log1p(-exp(logp_c)) - log1p(-exp(logp_r)))
  nll             cross-entropy of the chosen rows over prompt AND response, padding excluded
                  ("orpo chosen nll loss is computed over the full prompt and response"), the mean
                  over those tokens of the whole batch (nn.CrossEntropyLoss)
  loss            nll - beta * mean(logsigmoid(log_odds))
on transformers' Qwen3ForCausalLM over tests/fixtures/tiny-qwen3 run in float64 (an exact
reference; trlc runs fp32), with model.norm.weight scaled by NORM_SCALE (tied embeddings: the
logits grow by it) so that the chosen responses, the model's own greedy continuations, have mean
log-probs near 0 (about -0.1): there log1p(-exp(x)) is large and a wrong log1p term shows.
The rejected responses are the same greedy walk taking the runner-up token at its second step.
Rows are right-padded (token 0, position 0).

fixtures/orpo.safetensors
  tokens, pos, labels      I32 (4, T) 2 pairs: chosen rows 0-1, rejected rows 2-3; labels are the
                           shifted response targets (prompt and padding -100), as trlc's batches
  norm                     F32 (32,) the scaled model.norm.weight both cases use
  full.loss                F64 (1,) full fine-tuning: TRL's loss, beta 0.1
  full.nll, full.log_odds  F64 (1,) / (2,) its parts
  full.grad.<param>        F32 every parameter's gradient
  full.metrics             F64 (9,) what TRL logs for the batch: rewards/chosen, rewards/rejected,
                           rewards/accuracies, rewards/margins, logps/chosen, logps/rejected,
                           nll_loss, log_odds_ratio, log_odds_chosen
  lora.<module>.lora_{A,B}.weight  F32 the adapter (peft r=4, alpha 8, seven projections; 0.05 randn)
  lora.loss                F64 (1,), lora.grad.<module>.lora_{A,B}.weight F32, lora.metrics F64 (9,)
  accum.loss               F64 (1,) LoRA, two micro-batches of one pair each (pair 0, pair 1) as
                           transformers' Trainer accumulates them: the mean of the two losses
  accum.grad.<module>...   F32 its gradients
  log1mexp.x               F32 (260,) probes -1e-7 .. -31.6 (log-spaced; -ln 2 among them) for
                           tests/run/log1mexp.trl, which sums log1mexp over them
  log1mexp.y, .grad        F64 (260,) log(-expm1(x)) and its derivative exp(x) / expm1(x), in
                           float64 at the float32 probes
"""
import os
import torch
import torch.nn.functional as F
import transformers
import peft
from safetensors.torch import save_file

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "fixtures", "tiny-qwen3")
OUT = os.path.join(HERE, "fixtures", "orpo.safetensors")
TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
T, V, BETA, NORM_SCALE, LORA_SCALE = 12, 378, 0.1, 20.0, 0.05


def load(norm):
    m = transformers.AutoModelForCausalLM.from_pretrained(MODEL, torch_dtype=torch.float32,
                                                          attn_implementation="eager")
    with torch.no_grad():
        if norm is not None:
            m.model.norm.weight.copy_(norm)
    return m.double().train()


def batch(model, gen):
    """Two pairs: prompt lengths 3 and 5, chosen = greedy continuation, rejected = random."""
    rows = [None] * 4
    prompts = [3, 5]
    lens = [(5, 4), (4, 6)]           # (chosen, rejected) response lengths per pair
    for pair in range(2):
        prompt = torch.randint(0, V, (prompts[pair],), generator=gen)
        seq = prompt.clone()
        with torch.no_grad():
            for _ in range(lens[pair][0]):
                lg = model(input_ids=seq.unsqueeze(0)).logits[0, -1, :V]
                seq = torch.cat([seq, lg.argmax().reshape(1)])
        rows[pair] = (prompt, seq[len(prompt):])
        # rejected: the same greedy walk, but taking the runner-up token at the second step
        seq = prompt.clone()
        with torch.no_grad():
            for k in range(lens[pair][1]):
                lg = model(input_ids=seq.unsqueeze(0)).logits[0, -1, :V]
                seq = torch.cat([seq, lg.topk(2).indices[1 if k == 1 else 0].reshape(1)])
        rows[pair + 2] = (prompt, seq[len(prompt):])
    tokens = torch.zeros((4, T), dtype=torch.long)
    pos = torch.zeros((4, T), dtype=torch.long)
    labels = torch.full((4, T), -100, dtype=torch.long)
    for r, (p, resp) in enumerate(rows):
        s = torch.cat([p, resp])
        n = len(s)
        tokens[r, :n] = s
        pos[r, :n] = torch.arange(n)
        labels[r, len(p) - 1:n - 1] = resp          # the response tokens, shifted
    return tokens, pos, labels, torch.tensor([len(p) + len(r) for p, r in rows])


def orpo(model, tokens, pos, labels, lengths):
    """TRL's ORPO loss of one micro-batch of 2B rows; returns (loss, nll, log_odds)."""
    nb = tokens.shape[0] // 2
    logits = model(input_ids=tokens, position_ids=pos).logits
    lsm = logits.log_softmax(-1)
    mask = labels != -100
    tok_lp = lsm.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    logps = (tok_lp * mask).sum(-1) / mask.sum(-1)          # get_batch_logps(average_log_prob=True)
    pc, pr = logps[:nb], logps[nb:]
    log_odds = (pc - pr) - (torch.log1p(-torch.exp(pc)) - torch.log1p(-torch.exp(pr)))
    # the NLL as TRL: input_ids where attention_mask == 1 (the row's length), shifted by one
    attn = torch.arange(tokens.shape[1]).unsqueeze(0) < lengths.unsqueeze(1)
    full = torch.full_like(labels, -100)
    full[:, :-1] = torch.where(attn, tokens, -100)[:, 1:]
    nll = F.cross_entropy(logits[:nb].reshape(-1, logits.shape[-1]), full[:nb].reshape(-1), ignore_index=-100)
    loss = nll - (BETA * F.logsigmoid(log_odds)).mean()
    return loss, nll, log_odds, pc, pr


def metrics(nll, lo, pc, pr):
    """TRL's logged metrics of the batch (get_batch_loss_metrics), in tr_objective_metrics' order."""
    rc, rr = BETA * pc, BETA * pr
    v = [rc.mean(), rr.mean(), (rc > rr).double().mean(), (rc - rr).mean(), pc.mean(), pr.mean(), nll,
         F.logsigmoid(lo).mean(), lo.mean()]
    return torch.stack([x.detach().double() for x in v])


def lora_model(norm):
    cfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=TARGETS, bias="none",
                          task_type="CAUSAL_LM")
    pm = peft.get_peft_model(load(norm), cfg)
    g2 = torch.Generator().manual_seed(99)
    with torch.no_grad():
        for n, p in pm.named_parameters():
            if "lora_" in n:
                p.copy_(LORA_SCALE * torch.randn(p.shape, generator=g2, dtype=torch.float64))
    return pm


def short(n):
    return n.replace("base_model.model.", "", 1).replace(".default", "")


def main():
    base = load(None)
    norm = (base.model.norm.weight.detach() * NORM_SCALE).float()
    m = load(norm)
    gen = torch.Generator().manual_seed(4321)
    tokens, pos, labels, lengths = batch(m, gen)
    t = {"tokens": tokens.int(), "pos": pos.int(), "labels": labels.int(), "norm": norm.contiguous()}

    loss, nll, lo, pc, pr = orpo(m, tokens, pos, labels, lengths)
    loss.backward()
    print("full: loss %.6f nll %.6f logp_c %s logp_r %s log_odds %s" % (loss.item(), nll.item(), pc.tolist(),
                                                                     pr.tolist(), lo.tolist()))
    t["full.loss"] = loss.detach().double().reshape(1)
    t["full.nll"] = nll.detach().double().reshape(1)
    t["full.log_odds"] = lo.detach().double().contiguous()
    t["full.metrics"] = metrics(nll, lo, pc, pr)
    for n, p in m.named_parameters():
        t["full.grad." + n] = p.grad.detach().float().contiguous()

    pm = lora_model(norm)
    loss, nll, lo, pc, pr = orpo(pm, tokens, pos, labels, lengths)
    loss.backward()
    print("lora: loss %.6f nll %.6f logp_c %s logp_r %s" % (loss.item(), nll.item(), pc.tolist(), pr.tolist()))
    t["lora.loss"] = loss.detach().double().reshape(1)
    t["lora.metrics"] = metrics(nll, lo, pc, pr)
    for n, p in pm.named_parameters():
        if "lora_" in n:
            t["lora." + short(n)] = p.detach().float().contiguous()
            t["lora.grad." + short(n)] = p.grad.detach().float().contiguous()

    # gradient accumulation: pair 0, then pair 1, each loss / 2 (transformers' Trainer)
    pm = lora_model(norm)
    total = 0
    for pair in range(2):
        r = [pair, pair + 2]
        l, _, _, _, _ = orpo(pm, tokens[r], pos[r], labels[r], lengths[r])
        (l / 2).backward()
        total += l.item() / 2
    print("accum: loss %.6f" % total)
    t["accum.loss"] = torch.tensor([total], dtype=torch.float64)
    for n, p in pm.named_parameters():
        if "lora_" in n:
            t["accum.grad." + short(n)] = p.grad.detach().float().contiguous()

    # log1mexp on its own: where 1 - exp(x) cancels (x near 0) and across the branch point -ln 2
    x = -torch.logspace(-7, 1.5, 260, dtype=torch.float64)
    x[100] = -0.6931471805599453
    x = x.float()
    x64 = x.double()
    t["log1mexp.x"] = x.contiguous()
    t["log1mexp.y"] = torch.log(-torch.expm1(x64))
    t["log1mexp.grad"] = torch.exp(x64) / torch.expm1(x64)

    save_file({k: v.contiguous() for k, v in t.items()}, OUT,
              metadata={"format": "pt", "peft": peft.__version__, "transformers": transformers.__version__,
                        "torch": torch.__version__})
    print("wrote", OUT)


if __name__ == "__main__":
    main()
