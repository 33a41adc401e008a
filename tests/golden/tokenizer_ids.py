"""Writes the tokenizer golden fixtures the model crate's tests read (tests/golden/tokenizers/).

Each case is a folder of tokenizer files as a Hugging Face repository ships them, and ids.json holds
the ids transformers 4.x's AutoTokenizer (the fast tokenizer it builds from those files) gives for
the texts in texts.json and for the first rows of each of the paper's CSVs, with and without the
special tokens (`tokenizer(text, add_special_tokens=...)`).

Cases:
- spm_bpe:            tokenizer.model only (a SentencePiece BPE model with byte fallback, trained here on
                      the paper's CSVs with LLaMA's trainer settings) and tokenizer_config.json naming
                      LlamaTokenizer: the LlamaTokenizerFast conversion, legacy behaviour.
- spm_bpe_nonlegacy:  the same model, `legacy: false`.
- spm_bpe_no_prefix:  the same model, `add_prefix_space: false`.
- spm_unigram:        a SentencePiece Unigram model converted the same way.
- json_no_bos:        the tokenizer.json transformers saves for spm_bpe (its post-processor adds BOS)
                      with `add_bos_token: false` in tokenizer_config.json: no BOS.
- json_eos:           the same tokenizer.json with `add_eos_token: true`.
- neox_bos:           tests/golden/neox_parallel's byte-level tokenizer.json (no BOS in its
                      post-processor) with GPTNeoXTokenizer and `add_bos_token: true`.
- mistral_v1:         Mistral-7B-v0.1's real tokenizer.model (PyPI mistral-common==1.5.0,
                      mistral_common/data/tokenizer.model.v1; not committed, the test fetches it) with
                      the tokenizer_config.json written here.

Run: PYTHONPATH=DIR python3 tests/golden/tokenizer_ids.py
  where DIR has `pip install --target DIR transformers==4.57.1 sentencepiece==0.2.3 protobuf`
  (no torch needed). Needs ../shared/datasets/tracingllm (the paper's CSVs) and pip for the
  mistral-common wheel.
"""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import zipfile

import sentencepiece as spm
import transformers
from transformers import AutoTokenizer

assert transformers.__version__.startswith("4."), transformers.__version__

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "tokenizers")
ROOT = os.path.join(HERE, "..", "..")
SHARED = os.path.join(ROOT, "..", "shared", "datasets", "tracingllm")
CSVS = ["confaide.csv", "sst2.csv", "stereoset.csv", "toxigen.csv", "truthfulqa_test.csv", "truthfulqa_train.csv"]
ROWS = 25

LLAMA_CONFIG = {
    "tokenizer_class": "LlamaTokenizer",
    "bos_token": "<s>",
    "eos_token": "</s>",
    "unk_token": "<unk>",
    "clean_up_tokenization_spaces": False,
}


def csv_texts(name, limit=None):
    with open(os.path.join(SHARED, name), newline="", encoding="utf-8") as f:
        r = csv.DictReader(f)
        col = "statement" if "statement" in r.fieldnames else r.fieldnames[0]
        out = []
        for row in r:
            out.append(row[col])
            if limit is not None and len(out) == limit:
                break
        return out


def train(kind, vocab):
    corpus = []
    for name in CSVS:
        corpus.extend(csv_texts(name))
    buf = io.BytesIO()
    # LLaMA's trainer settings (its tokenizer.model's trainer_spec), on one thread for determinism.
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus),
        model_writer=buf,
        model_type=kind,
        vocab_size=vocab,
        byte_fallback=True,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        remove_extra_whitespaces=False,
        normalization_rule_name="identity",
        character_coverage=0.99995,
        user_defined_symbols=["<sep>"],
        num_threads=1,
        minloglevel=2,
    )
    return buf.getvalue()


def write_case(name, files):
    d = os.path.join(OUT, name)
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    for fname, content in files.items():
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(os.path.join(d, fname), mode) as f:
            f.write(content)
    return d


def mistral_model():
    cache = os.path.join(ROOT, ".cache", "mistral-common")
    target = os.path.join(cache, "mistral_common", "data", "tokenizer.model.v1")
    if not os.path.isfile(target):
        dl = os.path.join(cache, "download")
        subprocess.check_call([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                               "mistral-common==1.5.0", "-d", dl])
        wheel = [f for f in os.listdir(dl) if f.endswith(".whl")][0]
        with zipfile.ZipFile(os.path.join(dl, wheel)) as z:
            z.extract("mistral_common/data/tokenizer.model.v1", cache)
    with open(target, "rb") as f:
        return f.read()


def ids_for(d, texts, paper):
    tok = AutoTokenizer.from_pretrained(d)
    enc = lambda t, s: tok(t, add_special_tokens=s)["input_ids"]
    return {
        "class": type(tok).__name__,
        "texts": {"with": [enc(t, True) for t in texts], "without": [enc(t, False) for t in texts]},
        "paper": {
            name: {"with": [enc(t, True) for t in rows], "without": [enc(t, False) for t in rows]}
            for name, rows in paper.items()
        },
    }


def main():
    with open(os.path.join(OUT, "texts.json"), encoding="utf-8") as f:
        texts = json.load(f)
    paper = {name: csv_texts(name, ROWS) for name in CSVS}
    bpe = train("bpe", 1000)
    uni = train("unigram", 1000)
    cases = {}

    def cfg(**extra):
        return json.dumps({**LLAMA_CONFIG, **extra}, indent=2)

    cases["spm_bpe"] = write_case("spm_bpe", {"tokenizer.model": bpe, "tokenizer_config.json": cfg()})
    cases["spm_bpe_nonlegacy"] = write_case(
        "spm_bpe_nonlegacy", {"tokenizer.model": bpe, "tokenizer_config.json": cfg(legacy=False)})
    cases["spm_bpe_no_prefix"] = write_case(
        "spm_bpe_no_prefix", {"tokenizer.model": bpe, "tokenizer_config.json": cfg(add_prefix_space=False)})
    cases["spm_unigram"] = write_case("spm_unigram", {"tokenizer.model": uni, "tokenizer_config.json": cfg()})

    # The tokenizer.json transformers writes for the converted BPE model (BOS in its post-processor).
    tmp = os.path.join(OUT, ".save")
    AutoTokenizer.from_pretrained(cases["spm_bpe"]).save_pretrained(tmp)
    with open(os.path.join(tmp, "tokenizer.json"), encoding="utf-8") as f:
        tj = f.read()
    shutil.rmtree(tmp)
    assert '"<s>"' in json.dumps(json.loads(tj)["post_processor"])
    cases["json_no_bos"] = write_case(
        "json_no_bos", {"tokenizer.json": tj, "tokenizer_config.json": cfg(add_bos_token=False)})
    cases["json_eos"] = write_case(
        "json_eos", {"tokenizer.json": tj, "tokenizer_config.json": cfg(add_eos_token=True)})

    with open(os.path.join(HERE, "neox_parallel", "tokenizer.json"), encoding="utf-8") as f:
        neox = f.read()
    cases["neox_bos"] = write_case("neox_bos", {
        "tokenizer.json": neox,
        "tokenizer_config.json": json.dumps({
            "tokenizer_class": "GPTNeoXTokenizer", "add_bos_token": True,
            "bos_token": "<s>", "eos_token": "</s>", "unk_token": "</s>"}, indent=2),
    })

    # Mistral-7B-v0.1's tokenizer_config.json (its repository's, without the chat template).
    mistral_cfg = json.dumps({
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": {
            str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False,
                     "single_word": False, "special": True}
            for i, c in enumerate(["<unk>", "<s>", "</s>"])
        },
        "bos_token": "<s>", "clean_up_tokenization_spaces": False, "eos_token": "</s>",
        "legacy": True, "model_max_length": 1000000000000000019884624838656, "pad_token": None,
        "sp_model_kwargs": {}, "spaces_between_special_tokens": False,
        "tokenizer_class": "LlamaTokenizer", "unk_token": "<unk>", "use_default_system_prompt": False,
    }, indent=2)
    d = write_case("mistral_v1", {"tokenizer_config.json": mistral_cfg})
    scratch = os.path.join(OUT, ".mistral")
    if os.path.isdir(scratch):
        shutil.rmtree(scratch)
    shutil.copytree(d, scratch)
    with open(os.path.join(scratch, "tokenizer.model"), "wb") as f:
        f.write(mistral_model())
    cases["mistral_v1"] = scratch

    out = {
        "transformers": transformers.__version__,
        "rows_per_csv": ROWS,
        "cases": {name: ids_for(path, texts, paper) for name, path in cases.items()},
    }
    shutil.rmtree(scratch)
    with open(os.path.join(OUT, "ids.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    for name, c in out["cases"].items():
        print(name, c["class"], c["texts"]["with"][2])


if __name__ == "__main__":
    main()
