//! A GGUF writer that can lie: documents as editable values (metadata, tensor infos, data) and an
//! encoder that writes whatever they say, consistent or not. Seeds a llama.cpp-style model from a
//! safetensors checkpoint, and changes documents field by field for the structured generator.

use crate::engine::{bytes, chance, Rng, INTERESTING};
use arbitrary::Unstructured;
use candle_core::quantized::gguf_file::{Content, Value};

/// One tensor's header entry.
#[derive(Clone, Debug)]
pub struct Info {
    pub name: Vec<u8>,
    /// ggml order: innermost dimension first.
    pub dims: Vec<u64>,
    pub ggml_type: u32,
    pub offset: u64,
}

/// A GGUF file as values.
#[derive(Clone, Debug)]
pub struct Doc {
    pub version: u32,
    pub kvs: Vec<(Vec<u8>, Value)>,
    pub tensors: Vec<Info>,
    pub alignment: u64,
    pub data: Vec<u8>,
    /// Counts written in the header instead of the true ones.
    pub lie_tensors: Option<u64>,
    pub lie_kvs: Option<u64>,
}

fn type_code(v: &Value) -> u32 {
    match v {
        Value::U8(_) => 0,
        Value::I8(_) => 1,
        Value::U16(_) => 2,
        Value::I16(_) => 3,
        Value::U32(_) => 4,
        Value::I32(_) => 5,
        Value::F32(_) => 6,
        Value::Bool(_) => 7,
        Value::String(_) => 8,
        Value::Array(_) => 9,
        Value::U64(_) => 10,
        Value::I64(_) => 11,
        Value::F64(_) => 12,
    }
}

fn put_str(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u64).to_le_bytes());
    out.extend_from_slice(s);
}

fn put_value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::U8(x) => out.push(*x),
        Value::I8(x) => out.push(*x as u8),
        Value::U16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I16(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::U32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F32(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::Bool(x) => out.push(*x as u8),
        Value::String(s) => put_str(out, s.as_bytes()),
        Value::Array(a) => {
            let t = a.first().map_or(4, type_code);
            out.extend_from_slice(&t.to_le_bytes());
            out.extend_from_slice(&(a.len() as u64).to_le_bytes());
            for x in a {
                put_value(out, x);
            }
        }
        Value::U64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::I64(x) => out.extend_from_slice(&x.to_le_bytes()),
        Value::F64(x) => out.extend_from_slice(&x.to_le_bytes()),
    }
}

impl Doc {
    /// Reads a well-formed GGUF file into values.
    pub fn parse(bytes: &[u8]) -> Option<Doc> {
        let mut cur = std::io::Cursor::new(bytes);
        let c = Content::read(&mut cur).ok()?;
        let version = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
        let mut kvs: Vec<(Vec<u8>, Value)> = c
            .metadata
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.clone()))
            .collect();
        kvs.sort_by(|a, b| a.0.cmp(&b.0));
        let mut tensors: Vec<Info> = c
            .tensor_infos
            .iter()
            .map(|(n, t)| Info {
                name: n.as_bytes().to_vec(),
                dims: t.shape.dims().iter().rev().map(|&d| d as u64).collect(),
                ggml_type: ggml_code(t.ggml_dtype),
                offset: t.offset,
            })
            .collect();
        tensors.sort_by_key(|t| t.offset);
        let start = c.tensor_data_offset as usize;
        Some(Doc {
            version,
            kvs,
            tensors,
            alignment: 32,
            data: bytes.get(start..)?.to_vec(),
            lie_tensors: None,
            lie_kvs: None,
        })
    }

    /// The file these values say.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = b"GGUF".to_vec();
        out.extend_from_slice(&self.version.to_le_bytes());
        let nt = self.lie_tensors.unwrap_or(self.tensors.len() as u64);
        let nk = self.lie_kvs.unwrap_or(self.kvs.len() as u64);
        out.extend_from_slice(&nt.to_le_bytes());
        out.extend_from_slice(&nk.to_le_bytes());
        for (k, v) in &self.kvs {
            put_str(&mut out, k);
            out.extend_from_slice(&type_code(v).to_le_bytes());
            put_value(&mut out, v);
        }
        for t in &self.tensors {
            put_str(&mut out, &t.name);
            out.extend_from_slice(&(t.dims.len() as u32).to_le_bytes());
            for d in &t.dims {
                out.extend_from_slice(&d.to_le_bytes());
            }
            out.extend_from_slice(&t.ggml_type.to_le_bytes());
            out.extend_from_slice(&t.offset.to_le_bytes());
        }
        let a = self.alignment.clamp(1, 1 << 16) as usize;
        while !out.len().is_multiple_of(a) {
            out.push(0);
        }
        out.extend_from_slice(&self.data);
        out
    }
}

fn ggml_code(t: candle_core::quantized::GgmlDType) -> u32 {
    use candle_core::quantized::GgmlDType as G;
    match t {
        G::F32 => 0,
        G::F16 => 1,
        G::Q4_0 => 2,
        G::Q4_1 => 3,
        G::Q5_0 => 6,
        G::Q5_1 => 7,
        G::Q8_0 => 8,
        G::Q8_1 => 9,
        G::Q2K => 10,
        G::Q3K => 11,
        G::Q4K => 12,
        G::Q5K => 13,
        G::Q6K => 14,
        G::Q8K => 15,
        G::BF16 => 30,
    }
}

fn f16_bits(x: f32) -> [u8; 2] {
    half::f16::from_f32(x).to_le_bytes()
}

/// A llama.cpp-style GGUF of a LLaMA safetensors checkpoint (`dims`: hidden, intermediate, layers,
/// heads, kv heads; context): F32 attention, F16 gate/up, Q8_0 down projections, and a gpt2
/// tokenizer in the metadata built from `tokenizer.json`. The q/k rows are left in Hugging Face
/// order: the file is a seed for the loader's checks, not a numerical reference.
pub fn llama_seed(st: &[u8], tokenizer_json: &str, config: &serde_json::Value) -> Option<Vec<u8>> {
    let file = safetensors::SafeTensors::deserialize(st).ok()?;
    let g = |k: &str| config.get(k).and_then(serde_json::Value::as_u64);
    let (hidden, inter, layers, heads) = (
        g("hidden_size")?,
        g("intermediate_size")?,
        g("num_hidden_layers")?,
        g("num_attention_heads")?,
    );
    let kv_heads = g("num_key_value_heads").unwrap_or(heads);
    let vocab = g("vocab_size")?;
    let tok: serde_json::Value = serde_json::from_str(tokenizer_json).ok()?;
    let mut tokens: Vec<String> = (0..vocab).map(|i| format!("<unused{i}>")).collect();
    if let Some(m) = tok["model"]["vocab"].as_object() {
        for (t, id) in m {
            if let Some(i) = id.as_u64().filter(|&i| i < vocab) {
                tokens[i as usize] = t.clone();
            }
        }
    }
    let merges: Vec<Value> = tok["model"]["merges"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|m| match m {
                    serde_json::Value::Array(p) => Value::String(
                        p.iter()
                            .filter_map(|x| x.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ),
                    other => Value::String(other.as_str().unwrap_or_default().to_string()),
                })
                .collect()
        })
        .unwrap_or_default();
    let s = |x: &str| Value::String(x.to_string());
    let mut kvs: Vec<(&str, Value)> = vec![
        ("general.architecture", s("llama")),
        ("general.alignment", Value::U32(32)),
        ("llama.attention.head_count", Value::U32(heads as u32)),
        ("llama.attention.head_count_kv", Value::U32(kv_heads as u32)),
        ("llama.embedding_length", Value::U32(hidden as u32)),
        ("llama.feed_forward_length", Value::U32(inter as u32)),
        ("llama.block_count", Value::U32(layers as u32)),
        ("llama.context_length", Value::U32(2048)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-6)),
        ("llama.rope.freq_base", Value::F32(10000.0)),
        (
            "llama.rope.dimension_count",
            Value::U32((hidden / heads) as u32),
        ),
        ("tokenizer.ggml.model", s("gpt2")),
        ("tokenizer.ggml.pre", s("llama-bpe")),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(vec![Value::I32(1); tokens.len()]),
        ),
        ("tokenizer.ggml.merges", Value::Array(merges)),
        ("tokenizer.ggml.bos_token_id", Value::U32(0)),
        ("tokenizer.ggml.eos_token_id", Value::U32(1)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(true)),
    ];
    let mut doc = Doc {
        version: 3,
        kvs: kvs
            .drain(..)
            .map(|(k, v)| (k.as_bytes().to_vec(), v))
            .collect(),
        tensors: Vec::new(),
        alignment: 32,
        data: Vec::new(),
        lie_tensors: None,
        lie_kvs: None,
    };
    let mut names: Vec<&str> = file.names();
    names.sort();
    for hf in names {
        let t = file.tensor(hf).ok()?;
        let vals: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        let name = gguf_name(hf)?;
        let dims: Vec<u64> = t.shape().iter().rev().map(|&d| d as u64).collect();
        let (ggml_type, raw) = if name.ends_with("ffn_down.weight") && dims[0].is_multiple_of(32) {
            let mut raw = Vec::new();
            for block in vals.chunks(32) {
                let amax = block.iter().fold(0f32, |m, x| m.max(x.abs()));
                let d = amax / 127.0;
                raw.extend_from_slice(&f16_bits(d));
                for x in block {
                    let q = if d == 0.0 { 0.0 } else { (x / d).round() };
                    raw.push(q.clamp(-127.0, 127.0) as i8 as u8);
                }
            }
            (8, raw)
        } else if name.contains("ffn_gate") || name.contains("ffn_up") {
            (1, vals.iter().flat_map(|x| f16_bits(*x)).collect())
        } else {
            (0, vals.iter().flat_map(|x| x.to_le_bytes()).collect())
        };
        while !doc.data.len().is_multiple_of(32) {
            doc.data.push(0);
        }
        doc.tensors.push(Info {
            name: name.into_bytes(),
            dims,
            ggml_type,
            offset: doc.data.len() as u64,
        });
        doc.data.extend_from_slice(&raw);
    }
    Some(doc.encode())
}

fn gguf_name(hf: &str) -> Option<String> {
    Some(match hf {
        "model.embed_tokens.weight" => "token_embd.weight".into(),
        "model.norm.weight" => "output_norm.weight".into(),
        "lm_head.weight" => "output.weight".into(),
        _ => {
            let rest = hf.strip_prefix("model.layers.")?;
            let (l, leaf) = rest.split_once('.')?;
            let g = match leaf {
                "input_layernorm.weight" => "attn_norm.weight",
                "post_attention_layernorm.weight" => "ffn_norm.weight",
                "self_attn.q_proj.weight" => "attn_q.weight",
                "self_attn.k_proj.weight" => "attn_k.weight",
                "self_attn.v_proj.weight" => "attn_v.weight",
                "self_attn.o_proj.weight" => "attn_output.weight",
                "mlp.gate_proj.weight" => "ffn_gate.weight",
                "mlp.up_proj.weight" => "ffn_up.weight",
                "mlp.down_proj.weight" => "ffn_down.weight",
                _ => return None,
            };
            format!("blk.{l}.{g}")
        }
    })
}

/// An arbitrary metadata value of any GGUF type, arrays nested up to `depth`.
fn any_value(u: &mut Unstructured, depth: u32) -> Value {
    let big = INTERESTING[u.choose_index(INTERESTING.len()).unwrap_or(0)];
    match u.int_in_range(0u8..=13).unwrap_or(0) {
        0 => Value::U8(big as u8),
        1 => Value::I8(u.arbitrary().unwrap_or(-1)),
        2 => Value::U16(big as u16),
        3 => Value::I16(u.arbitrary().unwrap_or(-1)),
        4 => Value::U32(big as u32),
        5 => Value::I32(u.arbitrary().unwrap_or(-1)),
        6 => Value::F32(
            [f32::NAN, f32::INFINITY, -1.0, 0.0, 1e-6, 1e38][u.choose_index(6).unwrap_or(0)],
        ),
        7 => Value::Bool(u.arbitrary().unwrap_or(true)),
        8 => Value::String(u.arbitrary().unwrap_or_default()),
        9 if depth > 0 => {
            let n = u.int_in_range(0usize..=6).unwrap_or(0);
            // Arrays are homogeneous in GGUF: the element type is written once.
            Value::Array(vec![any_value(u, depth - 1); n])
        }
        10 => Value::U64(big),
        11 => Value::I64(big as i64),
        12 => Value::F64(f64::from_bits(big)),
        _ => Value::String(String::from_utf8_lossy(&[0xff, b'x', 0]).into_owned()),
    }
}

/// Metadata keys the loader reads.
pub const KEYS: &[&str] = &[
    "general.architecture",
    "general.alignment",
    "llama.attention.head_count",
    "llama.attention.head_count_kv",
    "llama.embedding_length",
    "llama.feed_forward_length",
    "llama.block_count",
    "llama.context_length",
    "llama.vocab_size",
    "llama.attention.layer_norm_rms_epsilon",
    "llama.attention.key_length",
    "llama.rope.freq_base",
    "llama.rope.dimension_count",
    "llama.rope.scaling.type",
    "llama.rope.scaling.factor",
    "tokenizer.ggml.model",
    "tokenizer.ggml.pre",
    "tokenizer.ggml.tokens",
    "tokenizer.ggml.token_type",
    "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id",
    "tokenizer.ggml.eos_token_id",
    "tokenizer.ggml.add_bos_token",
    "control_vector.layer_count",
    "control_vector.model_hint",
];

/// 1–4 field-level changes to a document: values retyped, keys dropped or added, tensor
/// dimensions, types, offsets and names changed, counts misstated, data cut.
pub fn mutate_doc(rng: &mut Rng, doc: &mut Doc) {
    let raw = bytes(rng, 1024);
    let mut u = Unstructured::new(&raw);
    for _ in 0..1 + rng.below(4) {
        let big = INTERESTING[rng.below(INTERESTING.len())];
        match rng.below(14) {
            0 => doc.version = [1, 2, 3, 4, 0, big as u32][rng.below(6)],
            1 if !doc.kvs.is_empty() => {
                let i = rng.below(doc.kvs.len());
                doc.kvs[i].1 = any_value(&mut u, 2);
            }
            2 if !doc.kvs.is_empty() => {
                doc.kvs.remove(rng.below(doc.kvs.len()));
            }
            3 => {
                let k = KEYS[rng.below(KEYS.len())];
                doc.kvs.push((k.as_bytes().to_vec(), any_value(&mut u, 2)));
            }
            4 if !doc.kvs.is_empty() => {
                // Shorten or empty an array (tokens, merges, token types).
                let i = rng.below(doc.kvs.len());
                if let Value::Array(a) = &mut doc.kvs[i].1 {
                    let n = rng.below(a.len() + 1);
                    a.truncate(n);
                }
            }
            5 | 6 if !doc.tensors.is_empty() => {
                let i = rng.below(doc.tensors.len());
                let t = &mut doc.tensors[i];
                if chance(rng, 0.3) {
                    let n = rng.below(6);
                    t.dims.resize(n, 1);
                }
                if !t.dims.is_empty() {
                    let j = rng.below(t.dims.len());
                    t.dims[j] = if chance(rng, 0.5) {
                        big
                    } else {
                        rng.below(80) as u64
                    };
                }
            }
            7 if !doc.tensors.is_empty() => {
                let i = rng.below(doc.tensors.len());
                doc.tensors[i].ggml_type = [
                    0, 1, 2, 3, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 30, 39, big as u32,
                ][rng.below(18)];
            }
            8 if !doc.tensors.is_empty() => {
                let i = rng.below(doc.tensors.len());
                let t = &mut doc.tensors[i];
                t.offset = if chance(rng, 0.5) {
                    big
                } else {
                    t.offset.wrapping_add(rng.below(64) as u64)
                };
            }
            9 if !doc.tensors.is_empty() => {
                let i = rng.below(doc.tensors.len());
                if chance(rng, 0.5) {
                    doc.tensors.remove(i);
                } else {
                    let t = doc.tensors[i].clone();
                    doc.tensors.push(t);
                }
            }
            10 if !doc.tensors.is_empty() => {
                let i = rng.below(doc.tensors.len());
                doc.tensors[i].name = match rng.below(3) {
                    0 => {
                        let n = rng.below(40);
                        bytes(rng, n)
                    }
                    1 => b"blk.999.attn_q.weight".to_vec(),
                    _ => b"output.weight".to_vec(),
                };
            }
            11 => {
                if chance(rng, 0.5) {
                    doc.lie_tensors = Some(big);
                } else {
                    doc.lie_kvs = Some(big);
                }
            }
            12 => {
                let n = rng.below(doc.data.len() + 1);
                doc.data.truncate(n);
            }
            _ => {
                // An alignment the header declares (and the writer follows, within reason).
                doc.alignment = [1, 8, 16, 32, 64, 3, 0][rng.below(7)];
                let v = Value::U32(doc.alignment as u32);
                match doc.kvs.iter_mut().find(|(k, _)| k == b"general.alignment") {
                    Some(kv) => kv.1 = v,
                    None => doc.kvs.push((b"general.alignment".to_vec(), v)),
                }
            }
        }
    }
}
