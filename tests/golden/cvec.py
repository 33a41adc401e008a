#!/usr/bin/env python3
"""Writes the control-vector fixture: a pretrace steering-vector file and the llama.cpp control vector
that gguf-py's GGUFWriter writes for it, with the keys and names llama.cpp's cvector-generator uses
(general.architecture = controlvector, controlvector.model_hint, controlvector.layer_count as INT32,
F32 1-D tensors `direction.{l}` for the output of block l; llama.cpp rejects l = 0).

    cvec/vectors.safetensors   blocks.{1,3}.hook_resid_post F32 [24], pretrace provenance metadata
    cvec/ref.gguf              the same vectors times ALPHA as a control vector

Usage (needs numpy, safetensors, gguf):
    python3 tests/golden/cvec.py
"""

import os

import gguf
import numpy as np
from safetensors.numpy import save_file

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cvec")
ALPHA = 2.5
LAYERS = [1, 3]
D = 24

os.makedirs(HERE, exist_ok=True)
rng = np.random.default_rng(7)
vectors = {l: rng.standard_normal(D).astype(np.float32) for l in LAYERS}
save_file({f"blocks.{l}.hook_resid_post": v for l, v in vectors.items()}, os.path.join(HERE, "vectors.safetensors"),
          metadata={"format": "pretrace-steering-vector", "format_version": "1", "architecture": "llama",
                    "d_model": str(D), "layers": ",".join(map(str, LAYERS))})
w = gguf.GGUFWriter(os.path.join(HERE, "ref.gguf"), "controlvector")
w.add_string("controlvector.model_hint", "llama")
w.add_int32("controlvector.layer_count", len(LAYERS))
for l in LAYERS:
    w.add_tensor(f"direction.{l}", (vectors[l] * np.float32(ALPHA)).astype(np.float32))
w.write_header_to_file()
w.write_kv_data_to_file()
w.write_tensors_to_file()
w.close()
r = gguf.GGUFReader(os.path.join(HERE, "ref.gguf"))
print({t.name: (t.tensor_type.name, t.shape.tolist()) for t in r.tensors}, list(r.fields))
