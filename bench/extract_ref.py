#!/usr/bin/env python3
"""Activation extraction, pretrace vs transformers, on the same rows, same machine, same run
(driven by bench/extract.sh).

Every round runs, with a pause before each so no side's idle worker threads spin during another's:
  1. `pretrace extract` (a fresh process; its own report gives the seconds spent in forward passes),
  2. transformers doing the same job well: rows sorted by length, batches of 16, right padding with an
     attention mask, `output_hidden_states`, last token per layer; twice: through the causal LM as
     usually loaded (the LM head computed and thrown away), and through its base model (no LM head),
  3. the paper's procedure (ChnQ/TracingLLM): one statement per forward pass through the causal LM
     (LM head computed), forward hooks on every block keeping the last token,
  4. the f32 matrix-multiply rate (1024x4096 @ 4096x4096) of candle (`bench-matmul`) and NumPy.
Model loading and tokenization are outside every timing. Prints each round, then the medians and
the median ratios, and checks that pretrace's stored activations match transformers'."""

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import tempfile
import time

import numpy as np
import torch
import transformers as T
from safetensors.numpy import load_file

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", required=True)
ap.add_argument("--data", required=True, help="statement,label CSV of real text")
ap.add_argument("--rows", type=int, default=500)
ap.add_argument("--pretrace", required=True)
ap.add_argument("--matmul", required=True, help="path to bench-matmul")
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--rounds", type=int, default=3)
ap.add_argument("--batch", type=int, default=16)
a = ap.parse_args()

torch.set_num_threads(a.threads)
work = tempfile.mkdtemp(prefix="pretrace-bench-")
with open(a.data, newline="", encoding="utf-8") as f:
    rows = list(csv.reader(f))
header, body = rows[0], rows[1 : a.rows + 1]
data = os.path.join(work, "rows.csv")
with open(data, "w", newline="", encoding="utf-8") as f:
    w = csv.writer(f, lineterminator="\r\n")
    w.writerow(header)
    w.writerows(body)
texts = [r[0] for r in body]

folder, name = os.path.split(os.path.abspath(a.gguf))
tok = T.AutoTokenizer.from_pretrained(folder, gguf_file=name)
model = T.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
n_layers = model.config.num_hidden_layers
ids = [tok(t)["input_ids"] for t in texts]
n_tokens = sum(len(i) for i in ids)
pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0


def hf_batched(base=True):
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    out = [None] * len(ids)
    t0 = time.perf_counter()
    with torch.no_grad():
        for s in range(0, len(order), a.batch):
            idx = order[s : s + a.batch]
            width = max(len(ids[i]) for i in idx)
            x = torch.full((len(idx), width), pad_id, dtype=torch.long)
            m = torch.zeros((len(idx), width), dtype=torch.long)
            for r, i in enumerate(idx):
                x[r, : len(ids[i])] = torch.tensor(ids[i])
                m[r, : len(ids[i])] = 1
            run = model.model if base else model
            hs = run(input_ids=x, attention_mask=m, output_hidden_states=True).hidden_states
            last = m.sum(1) - 1
            # hidden_states[l + 1] is block l's output; the last entry is after the final norm.
            stack = torch.stack([h[torch.arange(len(idx)), last] for h in hs[1:]], 1)
            for r, i in enumerate(idx):
                out[i] = stack[r].numpy()
    return time.perf_counter() - t0, np.stack(out)


def paper():
    captured = {}
    hooks = [blk.register_forward_hook(lambda _m, _i, o, l=l: captured.__setitem__(l, o[0][:, -1] if isinstance(o, tuple) else o[:, -1]))
             for l, blk in enumerate(model.model.layers)]
    t0 = time.perf_counter()
    with torch.no_grad():
        for i in ids:
            model(torch.tensor([i]))
            _ = [captured[l].numpy() for l in range(n_layers)]
    secs = time.perf_counter() - t0
    for h in hooks:
        h.remove()
    return secs


def pretrace(k):
    out = os.path.join(work, f"store{k}")
    p = subprocess.run([a.pretrace, "--threads", str(a.threads), "extract", "--checkpoints", a.gguf, "--data", data, "--out", out],
                       capture_output=True, text=True, check=True)
    m = re.search(r"forward ([0-9.]+)s: .* ([0-9.]+) GFLOP/s", p.stderr)
    if not m:
        raise SystemExit(f"unexpected pretrace output: {p.stderr}")
    return float(m.group(1)), float(m.group(2)), out


def numpy_matmul():
    x = np.random.randn(1024, 4096).astype(np.float32)
    y = np.random.randn(4096, 4096).astype(np.float32)
    x @ y
    r = []
    for _ in range(5):
        t = time.perf_counter()
        x @ y
        r.append(2 * 1024 * 4096 * 4096 / (time.perf_counter() - t) / 1e9)
    return statistics.median(r)


hf_batched()  # warm-up
res = []
store = None
for k in range(a.rounds):
    time.sleep(1)
    p_secs, p_gflops, store = pretrace(k)
    time.sleep(1)
    h_secs, hf_acts = hf_batched()
    time.sleep(1)
    hl_secs, _ = hf_batched(base=False)
    time.sleep(1)
    pp_secs = paper()
    time.sleep(1)
    cm = json.loads(subprocess.run([a.matmul], capture_output=True, text=True, check=True).stdout)["median_gflops"]
    nm = numpy_matmul()
    r = dict(pretrace=len(ids) / p_secs, hf=len(ids) / h_secs, hf_lm=len(ids) / hl_secs, paper=len(ids) / pp_secs, pretrace_gflops=p_gflops, candle_matmul=cm, numpy_matmul=nm)
    r["vs_hf"] = r["pretrace"] / r["hf"]
    r["vs_hf_lm"] = r["pretrace"] / r["hf_lm"]
    r["vs_paper"] = r["pretrace"] / r["paper"]
    r["of_matmul"] = p_gflops / cm
    res.append(r)
    print(f"round {k + 1}: pretrace {r['pretrace']:.1f} rows/s ({p_gflops:.0f} GFLOP/s), transformers batched {r['hf_lm']:.1f} (causal LM) / {r['hf']:.1f} (base model) rows/s, "
          f"paper procedure {r['paper']:.1f} rows/s; matmul candle {cm:.0f} / NumPy {nm:.0f} GFLOP/s; "
          f"ratios {r['vs_hf_lm']:.2f}x / {r['vs_hf']:.2f}x, {r['vs_paper']:.2f}x, {100 * r['of_matmul']:.0f}% of candle matmul", flush=True)

med = {k: statistics.median(r[k] for r in res) for k in res[0]}
print(f"\n{len(ids)} rows, {n_tokens} tokens, {n_layers} layers, f32, {a.threads} threads, {a.rounds} rounds (medians):")
print(f"  pretrace extract          {med['pretrace']:7.1f} rows/s  {med['pretrace_gflops']:.0f} GFLOP/s (2 x non-embedding params x tokens)")
print(f"  transformers, batched, causal LM (LM head computed)  {med['hf_lm']:7.1f} rows/s   -> pretrace {med['vs_hf_lm']:.2f}x")
print(f"  transformers, batched, base model (no LM head)       {med['hf']:7.1f} rows/s   -> pretrace {med['vs_hf']:.2f}x")
print(f"  paper procedure           {med['paper']:7.1f} rows/s   -> pretrace {med['vs_paper']:.2f}x")
print(f"  f32 matmul 1024x4096x4096 candle {med['candle_matmul']:.0f} GFLOP/s, NumPy {med['numpy_matmul']:.0f} GFLOP/s -> pretrace {100 * med['of_matmul']:.0f}% of candle")

# The stored activations are transformers' (last token, every layer but the last, which
# output_hidden_states gives after the final norm).
stored = load_file(os.path.join(store, name[: -len(".gguf")], "rows", "activations.safetensors"))
worst = 0.0
for l in range(n_layers - 1):
    s, h = stored[f"blocks.{l}.hook_resid_post"], hf_acts[:, l]
    worst = max(worst, float(np.max(np.linalg.norm(s - h, axis=1) / np.linalg.norm(h, axis=1))))
print(f"  stored vs transformers: largest per-row relative difference {worst:.2e} (layers 0-{n_layers - 2})")
shutil.rmtree(work)
