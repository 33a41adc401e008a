#!/usr/bin/env python3
"""transformers half of bench/forward.sh: tokenizes the bench text into ROWS x TOKENS ids (written to
--ids-out for pretrace to read) and times the same batched forward in transformers (f32, CPU, eager
attention, full logits). Prints one JSON line."""

import argparse
import json
import os
import statistics
import time

import torch
import transformers as T

ap = argparse.ArgumentParser()
ap.add_argument("--gguf", required=True)
ap.add_argument("--text", required=True, help="file of real text (CSV or plain)")
ap.add_argument("--rows", type=int, default=64)
ap.add_argument("--tokens", type=int, default=64)
ap.add_argument("--threads", type=int, default=os.cpu_count())
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--ids-out", required=True)
a = ap.parse_args()

torch.set_num_threads(a.threads)
folder, name = os.path.split(os.path.abspath(a.gguf))
tok = T.AutoTokenizer.from_pretrained(folder, gguf_file=name)
stream = tok(open(a.text, encoding="utf-8").read())["input_ids"]
need = a.rows * a.tokens
if len(stream) < need:
    raise SystemExit(f"{a.text}: {len(stream)} tokens, need {need}")
rows = [stream[i * a.tokens:(i + 1) * a.tokens] for i in range(a.rows)]
with open(a.ids_out, "w") as f:
    json.dump(rows, f)

model = T.AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32, attn_implementation="eager").eval()
ids = torch.tensor(rows)
mask = torch.ones_like(ids)
with torch.inference_mode():
    model(input_ids=ids, attention_mask=mask)
    times = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        model(input_ids=ids, attention_mask=mask)
        times.append(time.perf_counter() - t0)
med = statistics.median(times)
print(json.dumps({"impl": "transformers", "torch": torch.__version__, "transformers": T.__version__, "threads": a.threads, "tokens": need, "median_s": med, "tokens_per_s": need / med, "times_s": times}))
