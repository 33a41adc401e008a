#!/usr/bin/env python3
"""Steered generation and multiple-choice scoring, transformers vs pretrace (driven by
bench/steer_eval.sh). Rounds alternate the two sides so load changes on a shared machine hit both.

Generation: PROMPTS ARC-Easy questions ("Question: ...\\nAnswer:"), 64 greedy tokens each with the KV
cache, a steering vector (seeded random, norm 4) added at the last position of every forward call of
block LAYER's output. transformers: `model.generate` with a forward hook on `model.model.layers[LAYER]`
adding alpha * v to `output[:, -1]` (the paper's hook). pretrace: `pretrace generate --steer`. Both
report tokens generated / seconds of generation (model loading excluded).

Scoring: the first ITEMS ARC-Easy validation items. transformers: lm-evaluation-harness's HFLM loop at
its default batch size of 1 request: per choice, context + continuation tokenized as `_encode_pair`
does, one forward pass, log-softmax, the continuation's log-probabilities summed. pretrace:
`pretrace eval --task arc_easy` (its `seconds`, loading excluded). Both report items / second; the
worst log-likelihood difference between the two is printed as a check."""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import numpy as np
import pyarrow as pa
import torch
import transformers as T
from safetensors.numpy import save_file

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", required=True)
ap.add_argument("--arc", required=True, help="ARC-Easy validation folder (data-00000-of-00001.arrow)")
ap.add_argument("--pretrace", required=True)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--items", type=int, default=100)
ap.add_argument("--prompts", type=int, default=6)
ap.add_argument("--layer", type=int, default=15)
ap.add_argument("--alpha", type=float, default=2.0)
ap.add_argument("--new", type=int, default=64)
a = ap.parse_args()

torch.set_num_threads(a.threads)
folder, name = os.path.split(os.path.abspath(a.gguf))
tok = T.AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = T.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32, attn_implementation="eager").eval()
with open(os.path.join(a.arc, "data-00000-of-00001.arrow"), "rb") as f:
    docs = pa.ipc.open_stream(f).read_all().to_pylist()
env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
tmp = tempfile.mkdtemp()

# The steering vector, shared by both sides.
d = model.config.hidden_size
v = np.random.default_rng(0).standard_normal(d).astype(np.float32)
v *= 4.0 / np.linalg.norm(v)
vec_path = os.path.join(tmp, "v.safetensors")
save_file({f"blocks.{a.layer}.hook_resid_post": v}, vec_path)
vt = torch.from_numpy(v)
prompts = [f"Question: {docs[i]['question']}\nAnswer:" for i in range(a.prompts)]


def hook(_m, _i, out):
    h = out[0] if isinstance(out, tuple) else out
    h[:, -1, :] += a.alpha * vt
    return out


def hf_generate():
    handle = model.model.layers[a.layer].register_forward_hook(hook)
    tokens, secs, outs = 0, 0.0, []
    try:
        for p in prompts:
            ids = tok(p, return_tensors="pt").input_ids
            t0 = time.perf_counter()
            with torch.no_grad():
                g = model.generate(ids, max_new_tokens=a.new, do_sample=False)
            secs += time.perf_counter() - t0
            tokens += g.shape[1] - ids.shape[1]
            outs.append(g[0, ids.shape[1]:].tolist())
    finally:
        handle.remove()
    return tokens / secs, outs


def pt_generate():
    tokens, secs, outs = 0, 0.0, []
    for p in prompts:
        r = subprocess.run([a.pretrace, "--threads", str(a.threads), "generate", "--model", a.gguf, "--text", p,
                            "--max-new-tokens", str(a.new), "--steer", vec_path, "--alpha", str(a.alpha), "--json"],
                           capture_output=True, text=True, env=env, check=True)
        j = json.loads(r.stdout)
        tokens += len(j["ids"])
        secs += j["seconds"]
        outs.append(j["ids"])
    return tokens / secs, outs


def encode_pair(context, continuation):
    n = len(context) - len(context.rstrip())
    if n > 0:
        continuation = context[-n:] + continuation
        context = context[:-n]
    whole = tok.encode(context + continuation, add_special_tokens=False)
    ctx = tok.encode(context, add_special_tokens=False)
    return ctx, whole[len(ctx):]


def hf_score():
    lls = []
    t0 = time.perf_counter()
    for doc in docs[:a.items]:
        ctx_text = f"Question: {doc['question']}\nAnswer:"
        row = []
        for choice in doc["choices"]["text"]:
            c, w = encode_pair(ctx_text, " " + choice)
            inp = torch.tensor([(c + w)[:-1]])
            with torch.no_grad():
                logp = torch.log_softmax(model(inp).logits[0], -1)
            row.append(float(logp[len(c) - 1:][torch.arange(len(w)), torch.tensor(w)].sum()))
        lls.append(row)
    return a.items / (time.perf_counter() - t0), lls


def pt_score():
    out = os.path.join(tmp, "eval")
    subprocess.run([a.pretrace, "--threads", str(a.threads), "eval", "--model", a.gguf, "--task", "arc_easy",
                    "--data", a.arc, "--limit", str(a.items), "--out", out], capture_output=True, env=env, check=True)
    with open(os.path.join(out, "results.json")) as f:
        r = json.load(f)
    with open(os.path.join(out, "items.jsonl")) as f:
        lls = [json.loads(line)["loglikelihoods"] for line in f]
    return r["n"] / r["seconds"], lls


gen = {"transformers": [], "pretrace": []}
score = {"transformers": [], "pretrace": []}
for r in range(a.rounds):
    time.sleep(1)
    hg, hg_out = hf_generate()
    time.sleep(1)
    pg, pg_out = pt_generate()
    time.sleep(1)
    hs, hs_ll = hf_score()
    time.sleep(1)
    ps, ps_ll = pt_score()
    gen["transformers"].append(hg)
    gen["pretrace"].append(pg)
    score["transformers"].append(hs)
    score["pretrace"].append(ps)
    same = sum(x == y for x, y in zip(hg_out, pg_out))
    worst = max(abs(x - y) for hr, pr in zip(hs_ll, ps_ll) for x, y in zip(hr, pr))
    print(f"round {r + 1}: steered generation {hg:.1f} vs {pg:.1f} tok/s ({pg / hg:.2f}x; {same}/{len(prompts)} "
          f"continuations identical); scoring {hs:.2f} vs {ps:.2f} items/s ({ps / hs:.2f}x; worst |d loglik| {worst:.1e})",
          flush=True)

med = statistics.median
print(f"steered generation, {len(prompts)} prompts x {a.new} tokens, layer {a.layer}, alpha {a.alpha}, {a.threads} threads: "
      f"transformers {med(gen['transformers']):.1f} tok/s, pretrace {med(gen['pretrace']):.1f} tok/s, "
      f"median ratio {med([p / h for p, h in zip(gen['pretrace'], gen['transformers'])]):.2f}x")
print(f"arc_easy scoring, {a.items} items: transformers (HFLM-style loop, batch 1) {med(score['transformers']):.2f} items/s, "
      f"pretrace {med(score['pretrace']):.2f} items/s, "
      f"median ratio {med([p / h for p, h in zip(score['pretrace'], score['transformers'])]):.2f}x")
