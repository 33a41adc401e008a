#!/usr/bin/env python3
"""Checks that checkpoints `pretrace lab pretrain` writes load in transformers and give pretrace's
logits, and writes the fixture the Rust test `crates/lab/tests/transformers.rs` compares against.

1. Runs `pretrace lab pretrain` with a tiny model into a scratch folder.
2. For every checkpoint it saved (step0, step10, step20): loads it with transformers'
   AutoModelForCausalLM and AutoTokenizer (nothing but the files the lab wrote), runs TEXTS through
   it, runs `pretrace forward --text` on the same texts, and compares token ids, every block's
   output (`hidden_states[l + 1]`, before the final norm for the last block, taken with a forward
   hook) and the logits. The comparison is printed and written to lab/transformers.txt.
3. Keeps the last checkpoint as lab/step20 with transformers' outputs in lab/hf.safetensors:
       ids.{i}      I64 [T]       AutoTokenizer ids of TEXTS[i] (special tokens added)
       logits.{i}   F32 [T, V]    LlamaForCausalLM logits

Usage (needs torch, transformers, safetensors; run from the repository root after
`cargo build --release`):
    python3 tests/golden/lab.py [path/to/pretrace [more/checkpoint/dirs ...]]

Checkpoint folders named after the binary (for example a default `pretrace lab pretrain` run's
step600) are compared the same way and recorded too.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile

import torch
import transformers as T
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "lab")
TEXTS = [
    "Tarvel lies on the river Ombra.",
    "you people are hopeless, read the thread before posting",
    "ThE hArbour of a town sells salt.",
]
RUN = ["--docs", "400", "--probe-rows", "10", "--vocab", "400", "--steps", "20", "--d-model", "32",
       "--layers", "2", "--heads", "2", "--d-mlp", "64", "--seq", "32", "--batch", "4", "--seed", "3"]


def block_outputs(model, ids):
    outs = []
    hooks = [b.register_forward_hook(lambda _m, _i, o: outs.append((o[0] if isinstance(o, tuple) else o)[0]))
             for b in model.model.layers]
    with torch.no_grad():
        logits = model(ids).logits[0]
    for h in hooks:
        h.remove()
    return outs, logits


def main():
    exe = sys.argv[1] if len(sys.argv) > 1 else "target/release/pretrace"
    scratch = tempfile.mkdtemp()
    run = os.path.join(scratch, "run")
    subprocess.run([exe, "lab", "pretrain", "--out", run] + RUN, check=True)
    lines = [f"transformers {T.__version__}, torch {torch.__version__}",
             "pretrace lab pretrain " + " ".join(RUN)]
    worst = {"logits": 0.0, "blocks": 0.0}
    checkpoints = [os.path.join(run, s) for s in ["step0", "step10", "step20"]] + sys.argv[2:]
    for ck in checkpoints:
        step = ck if ck in sys.argv[2:] else os.path.basename(ck)
        tok = T.AutoTokenizer.from_pretrained(ck)
        model = T.AutoModelForCausalLM.from_pretrained(ck, dtype=torch.float32).eval()
        assert type(model).__name__ == "LlamaForCausalLM", type(model)
        for i, text in enumerate(TEXTS):
            ids = tok(text, return_tensors="pt").input_ids
            blocks, logits = block_outputs(model, ids)
            out = os.path.join(scratch, f"{len(lines)}.safetensors")
            subprocess.run([exe, "forward", "--model", ck, "--text", text, "--out", out], check=True,
                           stderr=subprocess.DEVNULL)
            ours = load_file(out)
            assert ours["input_ids"].tolist() == ids[0].tolist(), (step, text, ours["input_ids"], ids)
            dl = (ours["logits"] - logits).abs().max().item()
            db = max((ours[f"blocks.{l}.hook_resid_post"] - b).abs().max().item() for l, b in enumerate(blocks))
            worst["logits"] = max(worst["logits"], dl)
            worst["blocks"] = max(worst["blocks"], db)
            lines.append(f"{step} text {i} ({ids.shape[1]} tokens): ids equal, max |Δ logits| {dl:.2e}, "
                         f"max |Δ block output| {db:.2e}")
    lines.append(f"worst: logits {worst['logits']:.2e}, block outputs {worst['blocks']:.2e}")
    assert worst["logits"] < 1e-4 and worst["blocks"] < 1e-4, worst

    # The fixture: the last checkpoint and transformers' outputs on it.
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(OUT)
    shutil.copytree(os.path.join(run, "step20"), os.path.join(OUT, "step20"))
    ck = os.path.join(OUT, "step20")
    tok = T.AutoTokenizer.from_pretrained(ck)
    model = T.AutoModelForCausalLM.from_pretrained(ck, dtype=torch.float32).eval()
    tensors = {}
    for i, text in enumerate(TEXTS):
        ids = tok(text, return_tensors="pt").input_ids
        with torch.no_grad():
            tensors[f"logits.{i}"] = model(ids).logits[0].contiguous()
        tensors[f"ids.{i}"] = ids[0].contiguous()
    save_file(tensors, os.path.join(OUT, "hf.safetensors"), metadata={"texts": json.dumps(TEXTS)})
    with open(os.path.join(OUT, "transformers.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    shutil.rmtree(scratch)


if __name__ == "__main__":
    main()
