//! GGUF files (llama.cpp): metadata → a Hugging Face config, tensors → dequantized f32 tensors under
//! Hugging Face names, and the tokenizer rebuilt from the metadata as transformers rebuilds it.

use crate::error::{ModelError, Result};
use crate::tokenizer::Tokenizer;
use candle_core::quantized::gguf_file::{Content, Value};
use candle_core::{Device, Tensor};
use serde_json::{json, Map, Value as Json};
use std::collections::HashMap;
use std::path::Path;

/// GGUF architectures that load.
pub const SUPPORTED: &[&str] = &["llama"];

/// What a GGUF file holds, in Hugging Face terms.
pub struct GgufCheckpoint {
    /// A config.json equivalent.
    pub config: Json,
    /// Dequantized tensors under Hugging Face names.
    pub tensors: HashMap<String, Tensor>,
    pub tokenizer: Option<Tokenizer>,
}

fn meta<'a>(c: &'a Content, key: &str) -> Option<&'a Value> {
    c.metadata.get(key)
}

fn meta_u64(c: &Content, path: &Path, key: &str) -> Result<u64> {
    let v = meta(c, key).ok_or_else(|| {
        ModelError::config(
            path,
            format!(
                "GGUF metadata key '{key}' is missing; the file is not a complete llama.cpp model"
            ),
        )
    })?;
    value_u64(v).ok_or_else(|| {
        ModelError::config(path, format!("GGUF metadata key '{key}' is not an integer"))
    })
}

fn value_u64(v: &Value) -> Option<u64> {
    match *v {
        Value::U8(x) => Some(x as u64),
        Value::U16(x) => Some(x as u64),
        Value::U32(x) => Some(x as u64),
        Value::U64(x) => Some(x),
        Value::I8(x) => u64::try_from(x).ok(),
        Value::I16(x) => u64::try_from(x).ok(),
        Value::I32(x) => u64::try_from(x).ok(),
        Value::I64(x) => u64::try_from(x).ok(),
        _ => None,
    }
}

fn value_f64(v: &Value) -> Option<f64> {
    match *v {
        Value::F32(x) => Some(x as f64),
        Value::F64(x) => Some(x),
        _ => value_u64(v).map(|x| x as f64),
    }
}

/// Largest element count accepted for one GGUF tensor (2⁴⁰, far beyond any model's).
const MAX_TENSOR_ELEMS: u64 = 1 << 40;
/// Most metadata entries, tensors, array elements or string bytes a header may declare before
/// the file's own size is consulted.
const MAX_ITEMS: u64 = 1 << 32;

/// Walks a GGUF header and checks every number in it against the file's size before anything is
/// allocated from it: string and array lengths fit in the bytes left, tensor dimensions multiply
/// without overflow to at most 2⁴⁰ elements, each tensor's data lies inside the file, and the
/// alignment is a power of two. Returns the number of tensors.
pub fn check_header(path: &Path) -> Result<u64> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .map_err(|e| ModelError::weights(path, format!("cannot open: {e}")))?;
    let size = file
        .metadata()
        .map_err(|e| ModelError::weights(path, format!("cannot inspect: {e}")))?
        .len();
    struct Cur<R> {
        r: R,
        pos: u64,
        size: u64,
    }
    let bad = |m: String| {
        ModelError::weights(
            path,
            format!("not a readable GGUF file ({m}); the file is truncated or corrupt"),
        )
    };
    impl<R: Read> Cur<R> {
        fn take(&mut self, n: u64) -> std::result::Result<Vec<u8>, String> {
            if n > self.size.saturating_sub(self.pos) {
                return Err(format!(
                    "needs {n} bytes at offset {}, the file has {}",
                    self.pos, self.size
                ));
            }
            let mut v = vec![0u8; n as usize];
            self.r.read_exact(&mut v).map_err(|e| e.to_string())?;
            self.pos += n;
            Ok(v)
        }
        fn skip(&mut self, n: u64) -> std::result::Result<(), String> {
            if n > self.size.saturating_sub(self.pos) {
                return Err(format!(
                    "needs {n} bytes at offset {}, the file has {}",
                    self.pos, self.size
                ));
            }
            std::io::copy(&mut (&mut self.r).take(n), &mut std::io::sink())
                .map_err(|e| e.to_string())?;
            self.pos += n;
            Ok(())
        }
        fn u32(&mut self) -> std::result::Result<u32, String> {
            let b = self.take(4)?;
            Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        }
        fn u64(&mut self) -> std::result::Result<u64, String> {
            let b = self.take(8)?;
            let mut a = [0u8; 8];
            a.copy_from_slice(&b);
            Ok(u64::from_le_bytes(a))
        }
    }
    let mut c = Cur {
        r: std::io::BufReader::new(file),
        pos: 0,
        size,
    };
    let run = |c: &mut Cur<std::io::BufReader<std::fs::File>>| -> std::result::Result<u64, String> {
        let magic = c.take(4)?;
        if magic != b"GGUF" {
            return Err("it does not start with the GGUF magic".into());
        }
        let version = c.u32()?;
        if !(1..=3).contains(&version) {
            return Err(format!("GGUF version {version} is not 1, 2 or 3"));
        }
        let len = |c: &mut Cur<_>| -> std::result::Result<u64, String> {
            if version == 1 {
                c.u32().map(u64::from)
            } else {
                c.u64()
            }
        };
        let n_tensors = len(c)?;
        let n_kv = len(c)?;
        if n_tensors > MAX_ITEMS || n_kv > MAX_ITEMS {
            return Err(format!(
                "the header declares {n_tensors} tensors and {n_kv} metadata entries"
            ));
        }
        let mut alignment = 32u64;
        fn value<R: Read>(
            c: &mut Cur<R>,
            ty: u32,
            depth: usize,
            len: &dyn Fn(&mut Cur<R>) -> std::result::Result<u64, String>,
        ) -> std::result::Result<Option<u64>, String> {
            let fixed = match ty {
                0 | 1 | 7 => 1,
                2 | 3 => 2,
                4..=6 => 4,
                10..=12 => 8,
                8 => {
                    let n = len(c)?;
                    c.skip(n)?;
                    return Ok(None);
                }
                9 => {
                    if depth > 2 {
                        return Err("arrays are nested more than 3 deep".into());
                    }
                    let inner = c.u32()?;
                    let n = len(c)?;
                    if n > MAX_ITEMS || n > c.size.saturating_sub(c.pos) {
                        return Err(format!(
                            "an array declares {n} elements, more than the file holds"
                        ));
                    }
                    for _ in 0..n {
                        value(c, inner, depth + 1, len)?;
                    }
                    return Ok(None);
                }
                other => return Err(format!("metadata value type {other} is unknown")),
            };
            let b = c.take(fixed)?;
            let mut a = [0u8; 8];
            a[..b.len()].copy_from_slice(&b);
            Ok(Some(u64::from_le_bytes(a)))
        }
        for _ in 0..n_kv {
            let klen = len(c)?;
            if klen > 65_535 {
                return Err(format!("a metadata key is {klen} bytes long"));
            }
            let key = c.take(klen)?;
            let ty = c.u32()?;
            let v = value(c, ty, 0, &len)?;
            if key == b"general.alignment" {
                // Integer types only; llama.cpp requires a power of two.
                if let (true, Some(a)) = (matches!(ty, 0..=5 | 10 | 11), v) {
                    if a == 0 || !a.is_power_of_two() || a > 1 << 20 {
                        return Err(format!("general.alignment is {a}, not a power of two"));
                    }
                    alignment = a;
                }
            }
        }
        let mut extents = Vec::new();
        for _ in 0..n_tensors {
            let nlen = len(c)?;
            if nlen > 65_535 {
                return Err(format!("a tensor name is {nlen} bytes long"));
            }
            let name = String::from_utf8_lossy(&c.take(nlen)?).into_owned();
            let name = pretrace_core::shown(&name, 80);
            let n_dims = c.u32()?;
            if n_dims > 4 {
                return Err(format!(
                    "tensor '{name}' has {n_dims} dimensions, at most 4 are allowed"
                ));
            }
            let mut elems: u64 = 1;
            for _ in 0..n_dims {
                let d = if version == 1 {
                    c.u32()? as u64
                } else {
                    c.u64()?
                };
                if d == 0 {
                    return Err(format!("tensor '{name}' has a dimension of 0"));
                }
                elems = elems
                    .checked_mul(d)
                    .filter(|&e| e <= MAX_TENSOR_ELEMS)
                    .ok_or_else(|| format!("tensor '{name}' declares more than 2^40 elements"))?;
            }
            let ty = c.u32()?;
            let dt = ggml_dtype(ty).ok_or_else(|| {
                format!("tensor '{name}' has ggml type {ty}, which is not supported")
            })?;
            let (block, bytes) = (dt.block_size() as u64, dt.type_size() as u64);
            if !elems.is_multiple_of(block) {
                return Err(format!(
                    "tensor '{name}' has {elems} elements, not a multiple of its block of {block}"
                ));
            }
            let offset = c.u64()?;
            extents.push((name, offset, elems / block * bytes));
        }
        let data = c.pos.div_ceil(alignment) * alignment;
        for (name, offset, bytes) in extents {
            let end = data.checked_add(offset).and_then(|s| s.checked_add(bytes));
            if end.is_none_or(|e| e > c.size) {
                return Err(format!(
                    "tensor '{name}' needs {bytes} bytes at offset {offset} past the header, beyond the end of the {}-byte file",
                    c.size
                ));
            }
        }
        Ok(n_tensors)
    };
    run(&mut c).map_err(bad)
}

/// The ggml tensor types candle reads, by their number in the file.
fn ggml_dtype(t: u32) -> Option<candle_core::quantized::GgmlDType> {
    use candle_core::quantized::GgmlDType as G;
    Some(match t {
        0 => G::F32,
        1 => G::F16,
        2 => G::Q4_0,
        3 => G::Q4_1,
        6 => G::Q5_0,
        7 => G::Q5_1,
        8 => G::Q8_0,
        9 => G::Q8_1,
        10 => G::Q2K,
        11 => G::Q3K,
        12 => G::Q4K,
        13 => G::Q5K,
        14 => G::Q6K,
        15 => G::Q8K,
        30 => G::BF16,
        _ => return None,
    })
}

/// Reads a GGUF file: config, dequantized tensors and tokenizer.
pub fn load(path: &Path, device: &Device) -> Result<GgufCheckpoint> {
    check_header(path)?;
    let mut file = std::fs::File::open(path)
        .map_err(|e| ModelError::weights(path, format!("cannot open: {e}")))?;
    let content = Content::read(&mut file).map_err(|e| {
        ModelError::weights(
            path,
            format!(
                "not a readable GGUF file ({}); the file is truncated or corrupt",
                crate::error::one_line(&e)
            ),
        )
    })?;
    let arch = match meta(&content, "general.architecture") {
        Some(Value::String(s)) => s.clone(),
        _ => {
            return Err(ModelError::config(
                path,
                "GGUF metadata 'general.architecture' is missing; not a llama.cpp model file",
            ))
        }
    };
    if !SUPPORTED.contains(&arch.as_str()) {
        return Err(ModelError::config(
            path,
            format!(
                "GGUF architecture '{arch}' is not supported; supported: {}",
                SUPPORTED.join(", ")
            ),
        ));
    }
    let config = llama_config(&content, path, &arch)?;
    let n_heads = config["num_attention_heads"].as_u64().unwrap_or(1) as usize;
    let n_kv = config["num_key_value_heads"].as_u64().unwrap_or(1) as usize;
    let mut tensors = HashMap::new();
    for name in content.tensor_infos.keys() {
        let q = content
            .tensor(&mut file, name, &Device::Cpu)
            .map_err(|e| ModelError::weights(path, format!("cannot read tensor '{}' ({}); the file is truncated or uses an unsupported quantization", pretrace_core::shown(name, 80), crate::error::one_line(&e))))?;
        let t = q.dequantize(&Device::Cpu).map_err(|e| {
            ModelError::weights(
                path,
                format!(
                    "cannot dequantize tensor '{}': {}",
                    pretrace_core::shown(name, 80),
                    crate::error::one_line(&e)
                ),
            )
        })?;
        let hf = hf_name(name);
        let t = if name.ends_with("attn_q.weight") {
            unpermute_qk(&t, n_heads)?
        } else if name.ends_with("attn_k.weight") {
            unpermute_qk(&t, n_kv)?
        } else {
            t
        };
        tensors.insert(hf, t.to_device(device)?);
    }
    let tokenizer = match tokenizer_json(&content, path)? {
        Some(json) => {
            let mut t = Tokenizer::from_json(path, &json)?;
            t.bos_id = meta(&content, "tokenizer.ggml.bos_token_id")
                .and_then(value_u64)
                .map(|x| x as u32);
            t.eos_id = meta(&content, "tokenizer.ggml.eos_token_id")
                .and_then(value_u64)
                .map(|x| x as u32);
            Some(t)
        }
        None => None,
    };
    Ok(GgufCheckpoint {
        config,
        tensors,
        tokenizer,
    })
}

fn llama_config(c: &Content, path: &Path, arch: &str) -> Result<Json> {
    let k = |s: &str| format!("{arch}.{s}");
    let n_heads = meta_u64(c, path, &k("attention.head_count"))?;
    let hidden = meta_u64(c, path, &k("embedding_length"))?;
    if n_heads == 0 || hidden == 0 {
        return Err(ModelError::config(
            path,
            format!("GGUF '{arch}.attention.head_count' ({n_heads}) and '{arch}.embedding_length' ({hidden}) must be positive"),
        ));
    }
    let vocab = match meta(c, &k("vocab_size")).and_then(value_u64) {
        Some(v) => v,
        None => match meta(c, "tokenizer.ggml.tokens") {
            Some(Value::Array(a)) => a.len() as u64,
            _ => c
                .tensor_infos
                .get("token_embd.weight")
                .and_then(|t| t.shape.dims().first().map(|&d| d as u64))
                .unwrap_or(0),
        },
    };
    let mut cfg = Map::new();
    cfg.insert("model_type".into(), json!("llama"));
    cfg.insert("hidden_size".into(), json!(hidden));
    cfg.insert(
        "intermediate_size".into(),
        json!(meta_u64(c, path, &k("feed_forward_length"))?),
    );
    cfg.insert(
        "num_hidden_layers".into(),
        json!(meta_u64(c, path, &k("block_count"))?),
    );
    cfg.insert("num_attention_heads".into(), json!(n_heads));
    cfg.insert(
        "num_key_value_heads".into(),
        json!(meta(c, &k("attention.head_count_kv"))
            .and_then(value_u64)
            .unwrap_or(n_heads)),
    );
    cfg.insert("vocab_size".into(), json!(vocab));
    if let Some(v) = meta(c, &k("attention.layer_norm_rms_epsilon")).and_then(value_f64) {
        // Stored as f32 in GGUF; transformers reads the same f32 value.
        cfg.insert("rms_norm_eps".into(), json!(v));
    }
    if let Some(v) = meta(c, &k("rope.freq_base")).and_then(value_f64) {
        cfg.insert("rope_theta".into(), json!(v));
    }
    if let Some(v) = meta(c, &k("context_length")).and_then(value_u64) {
        cfg.insert("max_position_embeddings".into(), json!(v));
    }
    if let Some(v) = meta(c, &k("attention.key_length")).and_then(value_u64) {
        cfg.insert("head_dim".into(), json!(v));
    }
    let rot = meta(c, &k("rope.dimension_count")).and_then(value_u64);
    if let Some(rot) = rot {
        if rot != hidden / n_heads && meta(c, &k("attention.key_length")).is_none() {
            return Err(ModelError::config(path, format!("GGUF '{arch}.rope.dimension_count' = {rot} differs from the head size {}; partial rotary is not supported for GGUF llama", hidden / n_heads)));
        }
    }
    match meta(c, &k("rope.scaling.type")) {
        None => {}
        Some(Value::String(s)) if s == "none" => {}
        Some(Value::String(s)) if s == "linear" => {
            let f = meta(c, &k("rope.scaling.factor"))
                .and_then(value_f64)
                .unwrap_or(1.0);
            cfg.insert(
                "rope_scaling".into(),
                json!({"rope_type": "linear", "factor": f}),
            );
        }
        Some(other) => {
            return Err(ModelError::config(
                path,
                format!("GGUF rope scaling {other:?} is not supported; supported: none, linear"),
            ));
        }
    }
    cfg.insert(
        "tie_word_embeddings".into(),
        json!(!c.tensor_infos.contains_key("output.weight")),
    );
    for (key, name) in [
        ("tokenizer.ggml.bos_token_id", "bos_token_id"),
        ("tokenizer.ggml.eos_token_id", "eos_token_id"),
    ] {
        if let Some(v) = meta(c, key).and_then(value_u64) {
            cfg.insert(name.into(), json!(v));
        }
    }
    Ok(Json::Object(cfg))
}

/// llama.cpp names → Hugging Face LLaMA names. Unknown names pass through unchanged, so the loader
/// reports them as unused rather than dropping them silently.
fn hf_name(name: &str) -> String {
    match name {
        "token_embd.weight" => return "model.embed_tokens.weight".into(),
        "output_norm.weight" => return "model.norm.weight".into(),
        "output.weight" => return "lm_head.weight".into(),
        _ => {}
    }
    if let Some(rest) = name.strip_prefix("blk.") {
        if let Some((layer, leaf)) = rest.split_once('.') {
            let hf = match leaf {
                "attn_norm.weight" => "input_layernorm.weight",
                "ffn_norm.weight" => "post_attention_layernorm.weight",
                "attn_q.weight" => "self_attn.q_proj.weight",
                "attn_k.weight" => "self_attn.k_proj.weight",
                "attn_v.weight" => "self_attn.v_proj.weight",
                "attn_output.weight" => "self_attn.o_proj.weight",
                "ffn_gate.weight" => "mlp.gate_proj.weight",
                "ffn_up.weight" => "mlp.up_proj.weight",
                "ffn_down.weight" => "mlp.down_proj.weight",
                _ => return name.into(),
            };
            return format!("model.layers.{layer}.{hf}");
        }
    }
    name.into()
}

/// Undoes llama.cpp's q/k row permutation. Its converter reorders each head's rows from Hugging Face's
/// half-split rotary layout (first half, second half) to interleaved pairs:
/// `w.reshape(heads, 2, rows/heads/2, cols).swapaxes(1, 2)`. The inverse is
/// `w.reshape(heads, rows/heads/2, 2, cols).swapaxes(1, 2)` (transformers' `reverse_permute_weights`).
pub fn unpermute_qk(w: &Tensor, heads: usize) -> Result<Tensor> {
    let (rows, cols) = w.dims2()?;
    if heads
        .checked_mul(2)
        .is_none_or(|h2| h2 == 0 || !rows.is_multiple_of(h2))
    {
        return Err(ModelError::Invalid(format!(
            "cannot un-permute a [{rows}, {cols}] q/k weight over {heads} heads"
        )));
    }
    Ok(w.reshape((heads, rows / heads / 2, 2, cols))?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((rows, cols))?)
}

/// GPT-2's byte → printable character table (`bytes_to_unicode`).
pub fn bytes_to_unicode() -> Vec<char> {
    let mut bs: Vec<u32> = (b'!' as u32..=b'~' as u32)
        .chain(0xA1..=0xAC)
        .chain(0xAE..=0xFF)
        .collect();
    let mut cs = bs.clone();
    let mut n = 0;
    for b in 0..256u32 {
        if !bs.contains(&b) {
            bs.push(b);
            cs.push(256 + n);
            n += 1;
        }
    }
    let mut table = vec![' '; 256];
    for (b, c) in bs.into_iter().zip(cs) {
        table[b as usize] = char::from_u32(c).unwrap_or(' ');
    }
    table
}

const LLAMA3_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
const QWEN2_SPLIT: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The split regex transformers applies for a llama.cpp pre-tokenizer name (`tokenizer.ggml.pre`);
/// `None` keeps GPT-2's byte-level regex.
fn pre_split(pre: &str) -> Option<&'static str> {
    match pre {
        "llama3" | "llama-v3" | "llama-bpe" | "falcon3" | "falcon-h1" | "pixtral" | "midm-2.0"
        | "lfm2" | "dbrx" | "smaug-bpe" => Some(LLAMA3_SPLIT),
        "qwen2" | "deepseek-r1-qwen" | "megrez" => Some(QWEN2_SPLIT),
        _ => None,
    }
}

/// A tokenizer.json document equivalent to what transformers builds from the same metadata
/// (byte-level BPE, `tokenizer.ggml.model = gpt2`). `None` if the file has no tokenizer.
fn tokenizer_json(c: &Content, path: &Path) -> Result<Option<String>> {
    let model = match meta(c, "tokenizer.ggml.model") {
        None => return Ok(None),
        Some(Value::String(s)) => s.clone(),
        Some(_) => {
            return Err(ModelError::tokenizer(
                path,
                "GGUF 'tokenizer.ggml.model' is not a string",
            ))
        }
    };
    if model != "gpt2" {
        return Err(ModelError::tokenizer(
            path,
            format!("GGUF tokenizer type '{model}' cannot be rebuilt from metadata (supported: gpt2 byte-level BPE); put the model's tokenizer.json beside the .gguf file"),
        ));
    }
    let strings = |key: &str| -> Result<Vec<String>> {
        match meta(c, key) {
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| match v {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(ModelError::tokenizer(
                        path,
                        format!("GGUF '{key}' holds a non-string"),
                    )),
                })
                .collect(),
            _ => Err(ModelError::tokenizer(
                path,
                format!("GGUF '{key}' is missing; put a tokenizer.json beside the file"),
            )),
        }
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<u64> = match meta(c, "tokenizer.ggml.token_type") {
        Some(Value::Array(a)) => a.iter().map(|v| value_u64(v).unwrap_or(1)).collect(),
        _ => vec![1; tokens.len()],
    };
    let table = bytes_to_unicode();
    let alphabet: std::collections::HashSet<char> = table.iter().copied().collect();
    let mut vocab = Map::new();
    for (i, t) in tokens.iter().enumerate() {
        let spelled = if t.chars().all(|ch| alphabet.contains(&ch)) {
            t.clone()
        } else {
            t.bytes().map(|b| table[b as usize]).collect()
        };
        vocab.insert(spelled, json!(i));
    }
    let merges: Vec<Json> = merges
        .iter()
        .map(|m| {
            let parts: Vec<&str> = m.split(' ').collect();
            json!(parts)
        })
        .collect();
    let mut added = Vec::new();
    for (i, (t, ty)) in tokens.iter().zip(&types).enumerate() {
        // 3 = control (special), 4 = user-defined (added, not special); control tokens spelled outside
        // the byte alphabet are llama.cpp mislabels and skipped, as transformers does.
        let special = match ty {
            3 if t.chars().all(|ch| alphabet.contains(&ch)) => true,
            4 => false,
            _ => continue,
        };
        added.push(json!({"id": i, "content": t, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": special}));
    }
    let pre = match meta(c, "tokenizer.ggml.pre") {
        Some(Value::String(s)) => pre_split(s),
        _ => None,
    };
    let pre_tokenizer = match pre {
        None => {
            json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true})
        }
        Some(re) => json!({"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": re}, "behavior": "Isolated", "invert": false},
            {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}
        ]}),
    };
    let add_bos = matches!(
        meta(c, "tokenizer.ggml.add_bos_token"),
        Some(Value::Bool(true))
    );
    let bos = meta(c, "tokenizer.ggml.bos_token_id").and_then(value_u64);
    let post = match (add_bos, bos) {
        (true, Some(b)) => {
            let name = tokens.get(b as usize).cloned().unwrap_or_default();
            json!({"type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": name, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {name.clone(): {"id": name, "ids": [b], "tokens": [name]}}})
        }
        _ => {
            json!({"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}], "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}], "special_tokens": {}})
        }
    };
    let doc = json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": pre_tokenizer, "post_processor": post,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "", "end_of_word_suffix": "",
                  "fuse_unk": false, "byte_fallback": false, "ignore_merges": false, "vocab": vocab, "merges": merges}
    });
    Ok(Some(doc.to_string()))
}
