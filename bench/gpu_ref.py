#!/usr/bin/env python3
"""pretrace on an NVIDIA GPU against transformers on the same GPU (run by bench/gpu.sh).

    gpu_ref.py parity     --pretrace BIN --golden tests/golden --out DIR
    gpu_ref.py throughput --pretrace BIN --out DIR [--rows N] [--skip-7b]

parity, for every golden fixture (tests/golden/*/ref.safetensors, transformers' f32 CPU outputs):
  - `pretrace forward --device cuda --dtype f32`: every layer's hook_resid_post within 1e-4 relative
    (‖a−b‖/‖b‖, as the CPU golden test) and log-softmax(logits) within 1e-4 absolute;
  - `--dtype bf16`: logits within 5e-2 relative of the f32 reference (the CPU suite's bf16 rule);
  - `pretrace generate --device cuda` (f32): the greedy continuation equals the reference's (up to
    an end-of-sequence token, where pretrace stops);
  - steering: a random vector added at every position after a middle block, pretrace's
    `forward --steer` against a transformers forward hook on the same GPU, f32, logits within 1e-4.
throughput, both bf16, batched, base model (no LM head), last token of every layer:
  (a) a SmolLM2-135M-shaped LLaMA (30 layers, d 576, 9 heads / 3 KV heads, MLP 1536,
      vocabulary 49152) and (b) an Amber-7B-shaped LLaMA (32 layers, d 4096, 32 heads, MLP 11008,
      vocabulary 32000), random weights written here by transformers; rows of real English text
      (tests/golden/sweep/texts.csv and bench/text.txt), tokenized by the golden llama_gqa
      tokenizer for both. Prints rows/s of each, the ratio, pretrace's load time of the 7B
      checkpoint from local disk, and peak GPU memory of each.
Every figure goes to DIR/gpu.json as well as stdout. Exit status 1 if a parity check fails.
"""

import argparse
import csv
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time

import torch
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "golden"))


def sh(args, **kw):
    p = subprocess.run(args, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, args))} failed:\n{p.stderr[-3000:]}")
    return p


def rel(a, b):
    a, b = a.double().flatten(), b.double().flatten()
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def parity(args):
    from generate import TEXTS  # the texts the references were made from

    results, failures = [], []
    fixtures = sorted(
        d for d in os.listdir(args.golden)
        if os.path.isfile(os.path.join(args.golden, d, "ref.safetensors"))
        and os.path.isfile(os.path.join(args.golden, d, "config.json"))
    )
    for name in fixtures:
        d = os.path.join(args.golden, name)
        ref = load_file(os.path.join(d, "ref.safetensors"))
        for k, text in enumerate(TEXTS):
            ids = ref[f"{k}.input_ids"].tolist()
            row = {"fixture": name, "text": k}
            for dtype in ("f32", "bf16"):
                out = os.path.join(args.out, f"{name}.{k}.{dtype}.safetensors")
                sh([args.pretrace, "forward", "--model", d, "--ids", ",".join(map(str, ids)),
                    "--out", out, "--device", "cuda", "--dtype", dtype])
                got = load_file(out)
                if dtype == "f32":
                    layers = sorted(int(m.group(1)) for key in ref
                                    if (m := re.fullmatch(rf"{k}\.blocks\.(\d+)\.hook_resid_post", key)))
                    row["resid_rel_max"] = max(
                        rel(got[f"blocks.{l}.hook_resid_post"], ref[f"{k}.blocks.{l}.hook_resid_post"])
                        for l in layers)
                    row["logsoftmax_abs_max"] = float(
                        (got["logits"].double().log_softmax(-1)
                         - ref[f"{k}.logits"].double().log_softmax(-1)).abs().max())
                    if row["resid_rel_max"] >= 1e-4 or row["logsoftmax_abs_max"] >= 1e-4:
                        failures.append(f"{name} text {k} f32: {row}")
                else:
                    row["bf16_logits_rel"] = rel(got["logits"], ref[f"{k}.logits"])
                    if not row["bf16_logits_rel"] < 5e-2:
                        failures.append(f"{name} text {k} bf16: {row['bf16_logits_rel']:.3e}")
            g = json.loads(sh([args.pretrace, "generate", "--model", d, "--text", text,
                               "--max-new-tokens", "8", "--json", "--device", "cuda"]).stdout)
            want = ref[f"{k}.greedy"].tolist()
            row["greedy_equal"] = g["ids"] == want[: len(g["ids"])] and (
                len(g["ids"]) == len(want) or g["ids"] != [])
            if not row["greedy_equal"]:
                failures.append(f"{name} text {k}: greedy {g['ids']} != {want}")
            results.append(row)
            print(json.dumps(row), flush=True)
    # Steering against a transformers forward hook on the GPU.
    import transformers as T

    for name in ("llama_gqa", "neox_parallel", "olmo2"):
        d = os.path.join(args.golden, name)
        if not os.path.isdir(d):
            continue
        model = T.AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32,
                                                       attn_implementation="eager").cuda().eval()
        cfg = model.config
        layer = cfg.num_hidden_layers // 2
        g = torch.Generator().manual_seed(7)
        v = torch.randn(cfg.hidden_size, generator=g)
        alpha = 2.0
        vec = os.path.join(args.out, f"{name}.vec.safetensors")
        save_file({f"blocks.{layer}.hook_resid_post": v.contiguous()}, vec)
        ids = load_file(os.path.join(d, "ref.safetensors"))["0.input_ids"]
        blocks = model.base_model.layers if hasattr(model.base_model, "layers") else model.base_model.h

        def hook(_m, _i, out):
            if isinstance(out, tuple):
                return (out[0] + alpha * v.cuda(),) + tuple(out[1:])
            return out + alpha * v.cuda()

        h = blocks[layer].register_forward_hook(hook)
        with torch.no_grad():
            want = model(ids[None].cuda()).logits[0].float().cpu()
        h.remove()
        out = os.path.join(args.out, f"{name}.steered.safetensors")
        sh([args.pretrace, "forward", "--model", d, "--ids", ",".join(map(str, ids.tolist())),
            "--out", out, "--device", "cuda", "--steer", vec, "--steer-layer", str(layer),
            "--alpha", str(alpha), "--steer-positions", "all"])
        e = rel(load_file(out)["logits"], want)
        row = {"fixture": name, "steering_logits_rel": e}
        if e >= 1e-4:
            failures.append(f"{name} steering: {e:.3e}")
        results.append(row)
        print(json.dumps(row), flush=True)
        del model
    return results, failures


def text_rows(n):
    rows = []
    with open(os.path.join(ROOT, "tests", "golden", "sweep", "texts.csv")) as f:
        rows += [r["statement"] for r in csv.DictReader(f)]
    words = open(os.path.join(HERE, "text.txt")).read().split()
    i = 0
    while len(rows) < n:
        ln = 12 + i % 29
        s = (i * 37) % (len(words) - ln)
        rows.append(" ".join(words[s:s + ln]))
        i += 1
    return rows[:n]


def make_model(path, shape):
    import transformers as T

    if os.path.isfile(os.path.join(path, "config.json")):
        return
    cfg = T.LlamaConfig(**shape, max_position_embeddings=2048, rms_norm_eps=1e-5,
                        tie_word_embeddings=False, bos_token_id=0, eos_token_id=1)
    torch.manual_seed(0)
    with torch.device("cuda"):
        m = T.LlamaForCausalLM(cfg).to(torch.bfloat16)
    m.save_pretrained(path, safe_serialization=True, max_shard_size="5GB")
    shutil.copy(os.path.join(ROOT, "tests", "golden", "llama_gqa", "tokenizer.json"), path)
    del m
    torch.cuda.empty_cache()


class GpuMemory:
    """Peak memory.used of GPU 0 from nvidia-smi, sampled every 100 ms."""

    def __enter__(self):
        self.peak, self.stop = 0, False
        self.p = subprocess.Popen(["nvidia-smi", "--query-gpu=memory.used", "--format=csv,noheader,nounits",
                                   "-lms", "100"], stdout=subprocess.PIPE, text=True)

        def read():
            for line in self.p.stdout:
                try:
                    self.peak = max(self.peak, int(line.strip()))
                except ValueError:
                    pass

        self.t = threading.Thread(target=read, daemon=True)
        self.t.start()
        return self

    def __exit__(self, *a):
        self.p.terminate()


def hf_extract(path, rows, batch=32):
    import transformers as T

    tok = T.PreTrainedTokenizerFast(tokenizer_file=os.path.join(path, "tokenizer.json"))
    tok.pad_token = tok.pad_token or tok.convert_ids_to_tokens(0)
    tok.padding_side = "right"
    model = T.AutoModel.from_pretrained(path, dtype=torch.bfloat16, attn_implementation="sdpa").cuda().eval()
    torch.cuda.reset_peak_memory_stats()
    order = sorted(range(len(rows)), key=lambda i: len(rows[i]))
    times = []
    for rep in range(3):
        torch.cuda.synchronize()
        t = time.time()
        with torch.inference_mode():
            for s in range(0, len(order), batch):
                chunk = [rows[i] for i in order[s:s + batch]]
                enc = tok(chunk, return_tensors="pt", padding=True).to("cuda")
                out = model(**enc, output_hidden_states=True)
                last = enc["attention_mask"].sum(1) - 1
                feats = torch.stack([h[torch.arange(len(chunk)), last] for h in out.hidden_states[1:]], 1)
                feats.float().cpu()
        torch.cuda.synchronize()
        times.append(time.time() - t)
    peak = torch.cuda.max_memory_allocated() / 2**20
    del model
    torch.cuda.empty_cache()
    return len(rows) / statistics.median(times), peak


def pt_extract(args, path, rows, name):
    data = os.path.join(args.out, f"{name}.csv")
    with open(data, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["statement", "label"])
        for i, r in enumerate(rows):
            w.writerow([r, i % 2])
    rates, load = [], None
    with GpuMemory() as mem:
        t = time.time()
        sh([args.pretrace, "info", "--model", path, "--device", "cuda", "--dtype", "bf16"])
        load = time.time() - t
        for rep in range(3):
            store = os.path.join(args.out, f"{name}.store{rep}")
            shutil.rmtree(store, ignore_errors=True)
            p = sh([args.pretrace, "extract", "--checkpoints", path, "--data", data, "--out", store,
                    "--device", "cuda", "--dtype", "bf16", "--batch-size", "32"])
            m = re.search(r"forward ([0-9.]+)s", p.stderr)
            rates.append(len(rows) / float(m.group(1)))
            shutil.rmtree(store, ignore_errors=True)
    return statistics.median(rates), load, mem.peak


def throughput(args):
    out = []
    shapes = [("smollm2-shaped", dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                                       num_attention_heads=9, num_key_value_heads=3, vocab_size=49152), 2000)]
    if not args.skip_7b:
        shapes.append(("amber-7b-shaped", dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                                                num_attention_heads=32, num_key_value_heads=32, vocab_size=32000),
                       args.rows))
    for name, shape, n in shapes:
        path = os.path.join(args.out, name)
        t = time.time()
        make_model(path, shape)
        made = time.time() - t
        rows = text_rows(n)
        hf_rate, hf_peak = hf_extract(path, rows)
        pt_rate, load, pt_peak = pt_extract(args, path, rows, name)
        r = {"model": name, "rows": n, "transformers_rows_per_s": hf_rate, "pretrace_rows_per_s": pt_rate,
             "ratio": pt_rate / hf_rate, "pretrace_load_s (info: load, no forward)": load,
             "pretrace_peak_gpu_mib (nvidia-smi)": pt_peak, "transformers_peak_gpu_mib (allocated)": hf_peak,
             "model_written_s": made}
        print(json.dumps(r), flush=True)
        out.append(r)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["parity", "throughput"])
    ap.add_argument("--pretrace", required=True)
    ap.add_argument("--golden", default=os.path.join(ROOT, "tests", "golden"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--skip-7b", action="store_true")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    report = {"gpu": torch.cuda.get_device_name(0), "torch": torch.__version__}
    failures = []
    if args.what == "parity":
        report["parity"], failures = parity(args)
        report["failures"] = failures
    else:
        report["throughput"] = throughput(args)
    with open(os.path.join(args.out, f"gpu-{args.what}.json"), "w") as f:
        json.dump(report, f, indent=1)
    for x in failures:
        print("FAIL", x)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
