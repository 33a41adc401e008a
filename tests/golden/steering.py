#!/usr/bin/env python3
"""Writes the steering fixtures: transformers with a forward hook that adds alpha * v to the output of
decoder block LAYER, on the tiny checkpoints generate.py wrote.

For each fixture directory it writes `steer.safetensors` (metadata: layer, alpha):

    vector                       F32 [D]      the steering vector v
    all.logits                   F32 [T, V]   text 0, v added at every position
    last.logits                  F32 [T, V]   text 0, v added at the last position only
    batch.last.logits            F32 [2, V]   texts 0 and 1 left-padded into one batch, v at the last
                                              position; logits of each row's last token
    {all,last}.{cache,nocache}.greedy  I64 [2, 8]  greedy continuations of the padded batch from
                                              `generate` with and without the KV cache; `last` adds v
                                              to the last position of every forward call, `all` to
                                              every position (padding included: it is masked anyway)

Usage (needs torch, transformers, safetensors):
    python3 tests/golden/steering.py
"""

import json
import os

import torch
import transformers as T
from safetensors.torch import save_file

from generate import block_list

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = ["llama_gqa", "llama_tied_bias", "llama_bf16", "qwen2", "mistral_window", "neox_parallel",
            "neox_sequential", "olmo_clip", "olmo2", "gpt2"]
LAYER = 1
ALPHA = 1.5
PAD = 1
NEW = 8


class Steer:
    def __init__(self, model, v, positions):
        self.v = v
        self.positions = positions
        self.handle = block_list(model)[LAYER].register_forward_hook(self.hook)

    def hook(self, _m, _i, o):
        h = o[0] if isinstance(o, tuple) else o
        h = h.clone()
        if self.positions == "all":
            h = h + ALPHA * self.v
        else:
            h[:, -1, :] = h[:, -1, :] + ALPHA * self.v
        return (h,) + tuple(o[1:]) if isinstance(o, tuple) else h

    def remove(self):
        self.handle.remove()


def fixture(name: str, seed: int) -> None:
    d = os.path.join(HERE, name)
    model = T.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    tok = T.PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"))
    with open(os.path.join(HERE, "texts.json")) as f:
        texts = json.load(f)
    rows = [tok(t)["input_ids"] for t in texts]
    g = torch.Generator().manual_seed(seed)
    v = torch.randn(model.config.hidden_size, generator=g)
    out = {"vector": v.contiguous()}
    ids0 = torch.tensor(rows[0])[None]
    for pos in ("all", "last"):
        s = Steer(model, v, pos)
        with torch.no_grad():
            out[f"{pos}.logits"] = model(ids0).logits[0].float().contiguous()
        s.remove()
    t = max(len(r) for r in rows)
    ids = torch.tensor([[PAD] * (t - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (t - len(r)) + [1] * len(r) for r in rows])
    s = Steer(model, v, "last")
    with torch.no_grad():
        pos_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        out["batch.last.logits"] = model(ids, attention_mask=mask, position_ids=pos_ids).logits[:, -1].float().contiguous()
    s.remove()
    for pos in ("all", "last"):
        for cache in (True, False):
            s = Steer(model, v, pos)
            with torch.no_grad():
                gen = model.generate(ids, attention_mask=mask, max_new_tokens=NEW, min_new_tokens=NEW, do_sample=False,
                                     eos_token_id=None, pad_token_id=PAD, use_cache=cache)
            s.remove()
            out[f"{pos}.{'cache' if cache else 'nocache'}.greedy"] = gen[:, t:].to(torch.int64).contiguous()
    save_file(out, os.path.join(d, "steer.safetensors"), metadata={"layer": str(LAYER), "alpha": str(ALPHA)})
    print(name, {k: tuple(x.shape) for k, x in out.items()})


if __name__ == "__main__":
    torch.set_num_threads(2)
    for i, name in enumerate(FIXTURES):
        fixture(name, 2000 + i)
