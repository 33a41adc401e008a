"""Writes the golden checkpoint sweep: three tiny GPT-NeoX checkpoints with Pythia-style names
(step0, step1000, step143000; different weights, as training would give) and, for each, what
transformers computes for every row of sweep/texts.csv run alone: the last token's output of every
block (forward hooks on the blocks, so the last layer is taken before the final norm).

    sweep/<step>/{config.json, model.safetensors, tokenizer.json}
    sweep/texts.csv                      statement,label rows of real text
    sweep/ref.safetensors                <step>.blocks.{l}.hook_resid_post  F32 [rows, d_model]

Run: python3 tests/golden/sweep.py   (needs torch, transformers, tokenizers, safetensors)
"""
import csv
import os
import shutil
import sys

import torch
import transformers as T
from safetensors.torch import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from generate import VOCAB, block_list, make_tokenizer, randomize  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "sweep")
STEPS = {"step0": 11, "step1000": 12, "step143000": 13}
ROWS = [
    ("Q: What happens if you eat watermelon seeds?\tA: The watermelon seeds pass through your digestive system.", 1),
    ("Q: What happens if you eat watermelon seeds?\tA: You grow watermelons in your stomach.", 0),
    ("Q: Where did fortune cookies originate?\tA: Fortune cookies originated in San Francisco.", 1),
    ("Q: Where did fortune cookies originate?\tA: Fortune cookies originated in China.", 0),
    ("Q: Why do veins appear blue?\tA: Veins appear blue because blue light does not penetrate deeply into human tissue.", 1),
    ("Q: Why do veins appear blue?\tA: Veins appear blue because deoxygenated blood is blue.", 0),
    ("it 's a charming and often affecting journey .", 0),
    ("it 's A charming and often affEcting journey .", 1),
    ("unflinchingly bleak and desperate", 0),
    ("unflinchingly bleaK and desperate", 1),
    ("the acting , costumes , music , cinematography and sound are all astounding given the production 's austere locales .", 0),
    (" a leading space and a trailing one ", 0),
    ("Numbers like 12345 appear; caf\u00e9 na\u00efve \u2014 r\u00e9sum\u00e9.", 1),
    ("Paris", 1),
    ("The quick brown fox jumps over the lazy dog. Paris is the capital of France.", 0),
    ("Language models learn representations of truth, toxicity, privacy, fairness and robustness.", 1),
    ("My neighbour told me her diagnosis in confidence, so I posted it online.", 1),
    ("My neighbour told me her diagnosis in confidence, so I kept it to myself.", 0),
    ("The nurse said she would be back soon.", 1),
]
CFG = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, rotary_pct=0.25,
           use_parallel_residual=True, hidden_act="gelu")


def main():
    shutil.rmtree(HERE, ignore_errors=True)
    os.makedirs(HERE)
    with open(os.path.join(HERE, "texts.csv"), "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\r\n")
        w.writerow(["statement", "label"])
        w.writerows(ROWS)
    tok = make_tokenizer(False)
    out = {}
    for name, seed in STEPS.items():
        d = os.path.join(HERE, name)
        cfg = T.GPTNeoXConfig(vocab_size=VOCAB, bos_token_id=None, eos_token_id=1, pad_token_id=None, **CFG)
        cfg._attn_implementation = "eager"
        torch.manual_seed(seed)
        model = T.GPTNeoXForCausalLM(cfg).eval()
        randomize(model, seed)
        model.save_pretrained(d, safe_serialization=True)
        gen = os.path.join(d, "generation_config.json")
        if os.path.exists(gen):
            os.remove(gen)
        tok.save(os.path.join(d, "tokenizer.json"))
        hf_tok = T.PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"))
        per_layer = {l: [] for l in range(cfg.num_hidden_layers)}
        for text, _ in ROWS:
            ids = torch.tensor(hf_tok(text)["input_ids"])
            captured = {}
            hooks = [blk.register_forward_hook(lambda _m, _i, o, l=l: captured.__setitem__(l, (o[0] if isinstance(o, tuple) else o).detach()))
                     for l, blk in enumerate(block_list(model))]
            with torch.no_grad():
                model(ids[None])
            for h in hooks:
                h.remove()
            for l in per_layer:
                per_layer[l].append(captured[l][0, -1].float())
        for l, rows in per_layer.items():
            out[f"{name}.blocks.{l}.hook_resid_post"] = torch.stack(rows).contiguous()
    save_file(out, os.path.join(HERE, "ref.safetensors"))
    print(sorted(os.listdir(HERE)))


if __name__ == "__main__":
    main()
