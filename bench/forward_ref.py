#!/usr/bin/env python3
"""Batched forward, transformers vs pretrace, run by run (driven by bench/forward.sh).

Tokenizes the bench text into ROWS x TOKENS ids, loads SmolLM2 in transformers (f32, CPU, eager
attention, full logits) and starts `bench-forward --serve` on the same ids. After one warm-up each,
the two alternate PAIRS times (transformers, then pretrace, with a pause before each so neither
side's idle worker threads still spin during the other's run), so load changes on a shared machine hit
both alike. Prints each pair and the medians; the figure to quote is the median ratio."""

import argparse
import json
import os
import statistics
import subprocess
import tempfile
import time

import torch
import transformers as T

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", required=True)
ap.add_argument("--text", required=True, help="file of real text (CSV or plain)")
ap.add_argument("--pretrace", required=True, help="path to the bench-forward binary")
ap.add_argument("--rows", type=int, default=64)
ap.add_argument("--tokens", type=int, default=64)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--pairs", type=int, default=7)
a = ap.parse_args()

torch.set_num_threads(a.threads)
folder, name = os.path.split(os.path.abspath(a.gguf))
tok = T.AutoTokenizer.from_pretrained(folder, gguf_file=name)
stream = tok(open(a.text, encoding="utf-8").read())["input_ids"]
need = a.rows * a.tokens
if len(stream) < need:
    raise SystemExit(f"{a.text}: {len(stream)} tokens, need {need}")
rows = [stream[i * a.tokens:(i + 1) * a.tokens] for i in range(a.rows)]
ids_file = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
json.dump(rows, ids_file)
ids_file.close()

model = T.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32, attn_implementation="eager").eval()
ids = torch.tensor(rows)
mask = torch.ones_like(ids)
env = dict(os.environ, RAYON_NUM_THREADS=str(a.threads))
proc = subprocess.Popen([a.pretrace, "--model", a.gguf, "--ids", ids_file.name, "--serve"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
assert proc.stdout.readline().strip() == "ready", "bench-forward did not start"


def hf_once() -> float:
    t0 = time.perf_counter()
    model(input_ids=ids, attention_mask=mask)
    return time.perf_counter() - t0


def pt_once() -> float:
    proc.stdin.write("run\n")
    proc.stdin.flush()
    return float(proc.stdout.readline())


hf_t, pt_t = [], []
with torch.inference_mode():
    hf_once()
    for i in range(a.pairs):
        # A pause before each run: OpenMP and rayon workers spin for a while after their last
        # parallel region, and would otherwise take cores from whichever side runs next.
        time.sleep(1.0)
        hf_t.append(hf_once())
        time.sleep(1.0)
        pt_t.append(pt_once())
        print(f"pair {i + 1}: transformers {need / hf_t[-1]:.0f} tok/s, pretrace {need / pt_t[-1]:.0f} tok/s, ratio {hf_t[-1] / pt_t[-1]:.2f}x", flush=True)
proc.stdin.close()
proc.wait()
os.unlink(ids_file.name)
ratios = [h / p for h, p in zip(hf_t, pt_t)]
print(json.dumps({"torch": torch.__version__, "transformers": T.__version__, "threads": a.threads, "tokens": need, "pairs": a.pairs,
                  "transformers_tokens_per_s": need / statistics.median(hf_t), "pretrace_tokens_per_s": need / statistics.median(pt_t),
                  "median_ratio": statistics.median(ratios)}))
print(f"threads {a.threads}, {a.pairs} pairs: transformers {need / statistics.median(hf_t):.0f} tok/s, "
      f"pretrace {need / statistics.median(pt_t):.0f} tok/s (medians), median ratio {statistics.median(ratios):.2f}x")
