#!/usr/bin/env python3
"""The reference side of bench/train.sh: the lab's training step in PyTorch.

Loads DIR/step0 (written by `bench-train`) with transformers' LlamaForCausalLM, then runs the same
AdamW steps on the same batches as pretrace: mean next-token cross-entropy, weight decay on matrices
and embeddings only, gradient-norm clipping, and the learning rate of each step taken from
batches.json. Writes DIR/torch.json (loss, gradient norm and seconds per step).

Usage: python3 bench/train_ref.py DIR THREADS
"""

import json
import sys
import time

import torch
import transformers as T


def main():
    d, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    spec = json.load(open(f"{d}/batches.json"))
    s = spec["settings"]
    model = T.LlamaForCausalLM.from_pretrained(f"{d}/step0", dtype=torch.float32, attn_implementation="eager")
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": s["weight_decay"]}, {"params": no_decay, "weight_decay": 0.0}],
        lr=spec["lr"][0], betas=(s["beta1"], s["beta2"]), eps=s["eps"])
    rows = []
    for x, y, lr in zip(spec["inputs"], spec["targets"], spec["lr"]):
        t = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr
        x = torch.tensor(x)
        y = torch.tensor(y)
        logits = model(x).logits
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), s["clip"])
        opt.step()
        rows.append({"loss": loss.item(), "grad_norm": norm.item(), "seconds": time.perf_counter() - t})
    json.dump({"steps": rows, "torch": torch.__version__, "transformers": T.__version__},
              open(f"{d}/torch.json", "w"), indent=1)


if __name__ == "__main__":
    main()
