#!/usr/bin/env python3
"""Writes the RoBERTa classifier fixture: a tiny random RobertaForSequenceClassification (2 labels)
with a byte-level BPE tokenizer, saved as transformers saves it (config.json, model.safetensors,
tokenizer.json, vocab.json, merges.txt), and what transformers computes for some texts:

    ref.safetensors   {k}.input_ids I64 [T], {k}.logits F32 [2] for text k (each text alone)
    texts.json        the texts, and the labels `pipeline("text-classification")` gives them

Usage (needs torch, transformers, tokenizers, safetensors):
    python3 tests/golden/roberta.py
"""

import json
import os
import sys

sys.path = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import torch  # noqa: E402
import transformers as T  # noqa: E402
from safetensors.torch import save_file  # noqa: E402
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers  # noqa: E402

D = os.path.join(os.path.dirname(os.path.abspath(__file__)), "roberta")
CORPUS = [
    "You are all wonderful people and I like you.",
    "Those people are terrible and should go away!",
    "The weather is nice today; caf\u00e9 na\u00efve \u2014 12345.",
    "I have no comment. Telescopes use lenses or mirrors.",
] * 20
TEXTS = [
    "You are wonderful.",
    "Those people should go away!",
    " leading space and caf\u00e9 \u2014 done ",
    "I have no comment. The weather is nice today and telescopes use lenses or mirrors to focus light.",
    "",
]


def main():
    os.makedirs(D, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0), trim_offsets=True, add_prefix_space=False)
    raw = os.path.join(D, "raw_tokenizer.json")
    tok.save(raw)
    hf_tok = T.RobertaTokenizerFast(tokenizer_file=raw, bos_token="<s>", eos_token="</s>", sep_token="</s>",
                                    cls_token="<s>", unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")
    os.remove(raw)
    cfg = T.RobertaConfig(vocab_size=300, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                          intermediate_size=64, max_position_embeddings=130, type_vocab_size=1, num_labels=2,
                          pad_token_id=1, bos_token_id=0, eos_token_id=2, layer_norm_eps=1e-5)
    torch.manual_seed(5)
    model = T.RobertaForSequenceClassification(cfg).eval()
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.2 * torch.randn(p.shape, generator=g))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                scale = 1.0 if "embeddings" in name else p.shape[-1] ** -0.5
                p.copy_(scale * torch.randn(p.shape, generator=g))
    model.save_pretrained(D, safe_serialization=True)
    hf_tok.save_pretrained(D)
    # The slow-tokenizer files too (vocab.json, merges.txt), which older checkpoints ship alone.
    tok.model.save(D)
    model = T.RobertaForSequenceClassification.from_pretrained(D, attn_implementation="eager").eval()
    out = {}
    for k, text in enumerate(TEXTS):
        enc = hf_tok(text, return_tensors="pt")
        with torch.no_grad():
            out[f"{k}.logits"] = model(**enc).logits[0].float().contiguous()
        out[f"{k}.input_ids"] = enc["input_ids"][0].to(torch.int64).contiguous()
    save_file(out, os.path.join(D, "ref.safetensors"))
    pipe = T.pipeline("text-classification", model=model, tokenizer=hf_tok, device="cpu")
    labels = [r["label"] for r in pipe(TEXTS)]
    with open(os.path.join(D, "texts.json"), "w") as f:
        json.dump({"texts": TEXTS, "pipeline_labels": labels}, f, ensure_ascii=False, indent=1)
    print(sorted(os.listdir(D)), labels, {k: v.tolist() for k, v in out.items() if k.endswith("logits")})


if __name__ == "__main__":
    main()
