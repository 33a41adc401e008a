//! A checkpoint folder's tokenizer as transformers 4.x's `AutoTokenizer` builds it from the files a
//! Hugging Face repository ships: `tokenizer.json`, or SentencePiece's `tokenizer.model` (see
//! [`crate::spm`]), adjusted by `tokenizer_config.json` and `special_tokens_map.json`.
//!
//! What transformers does and this module repeats:
//! - The class is `tokenizer_config.json`'s `tokenizer_class`, else the one for the checkpoint's
//!   `model_type`.
//! - `LlamaTokenizerFast`, `CodeLlamaTokenizerFast`, `GemmaTokenizerFast`, `CohereTokenizerFast` and
//!   `GPTNeoXTokenizerFast` replace the post-processor of `tokenizer.json` with one built from
//!   `add_bos_token` / `add_eos_token` (defaults: BOS for all but GPT-NeoX, no EOS) and the class's
//!   BOS/EOS tokens, so `add_bos_token: false` there means no BOS whatever `tokenizer.json` says.
//! - `LlamaTokenizerFast` converts `tokenizer.model` when there is no `tokenizer.json`, or when
//!   `add_prefix_space` is set (transformers then converts from the slow tokenizer).
//! - Tokens of `added_tokens_decoder` and the special tokens that are not yet added tokens become
//!   added tokens.
//!
//! Without `tokenizer_config.json`, `tokenizer.json` is taken as it is.

use crate::error::{ModelError, Result};
use crate::spm::{llama_tokenizer_json, LlamaStyle, SpModel};
use crate::tokenizer::{parse, Tokenizer};
use serde_json::{json, Value};
use std::path::Path;

/// A class's defaults: BOS token, EOS token, add BOS, add EOS.
type Rules = (&'static str, &'static str, bool, bool);

/// The classes that rebuild their post-processor from `add_bos_token` / `add_eos_token`.
fn rules(class: &str) -> Option<Rules> {
    match class {
        "LlamaTokenizer" | "CodeLlamaTokenizer" => Some(("<s>", "</s>", true, false)),
        "GemmaTokenizer" => Some(("<bos>", "<eos>", true, false)),
        "CohereTokenizer" => Some(("<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", true, false)),
        "GPTNeoXTokenizer" => Some(("<|endoftext|>", "<|endoftext|>", false, false)),
        _ => None,
    }
}

/// The class transformers' `AutoTokenizer` picks for a `model_type` when the config names none.
fn class_for(model_type: &str) -> Option<&'static str> {
    match model_type {
        "llama" | "mistral" => Some("LlamaTokenizer"),
        "gpt_neox" | "olmo" | "olmo2" => Some("GPTNeoXTokenizer"),
        "gemma" | "gemma2" => Some("GemmaTokenizer"),
        "cohere" => Some("CohereTokenizer"),
        "qwen2" => Some("Qwen2Tokenizer"),
        "gpt2" => Some("GPT2Tokenizer"),
        _ => None,
    }
}

/// A special token as configs write it: a string or an `AddedToken` object with `content`.
fn token_text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) => Some(s.clone()),
        Value::Object(o) => o.get("content")?.as_str().map(str::to_string),
        _ => None,
    }
}

fn read_json(path: &Path) -> Result<Option<Value>> {
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(path)
        .map_err(|e| ModelError::tokenizer(path, format!("cannot read: {e}")))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| {
        ModelError::tokenizer(
            path,
            format!("not valid JSON ({e}); fix or re-download it from the model repository"),
        )
    })?;
    if !v.is_object() {
        return Err(ModelError::tokenizer(
            path,
            "expected a JSON object; re-download it from the model repository",
        ));
    }
    Ok(Some(v))
}

fn flag(cfg: &Value, key: &str, path: &Path) -> Result<Option<bool>> {
    match cfg.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(ModelError::tokenizer(
            path,
            format!("'{key}' is {v}, expected true or false; fix tokenizer_config.json"),
        )),
    }
}

/// Loads the tokenizer of `dir` (see the module docs); None when it has none.
pub fn load(dir: &Path, model_type: Option<&str>) -> Result<Option<Tokenizer>> {
    let json_path = dir.join("tokenizer.json");
    let model_path = dir.join("tokenizer.model");
    let cfg_path = dir.join("tokenizer_config.json");
    let cfg = read_json(&cfg_path)?;
    let has_json = json_path.is_file();
    let has_model = model_path.is_file();
    if !has_json && !has_model {
        return Ok(None);
    }
    let Some(cfg) = cfg else {
        if has_json {
            return Tokenizer::from_file(&json_path).map(Some);
        }
        if model_type.is_none_or(|m| class_for(m) != Some("LlamaTokenizer")) {
            return Err(ModelError::tokenizer(
                &model_path,
                "a tokenizer.model with no tokenizer_config.json converts only for LLaMA-style models; add the repository's tokenizer_config.json or tokenizer.json",
            ));
        }
        let cfg = json!({});
        return build(dir, &cfg, &cfg_path, "LlamaTokenizer", None, true);
    };
    let class = match cfg.get("tokenizer_class").and_then(Value::as_str) {
        Some(c) => c.strip_suffix("Fast").unwrap_or(c).to_string(),
        None => model_type
            .and_then(class_for)
            .unwrap_or("PreTrainedTokenizer")
            .to_string(),
    };
    let llama = matches!(class.as_str(), "LlamaTokenizer" | "CodeLlamaTokenizer");
    let prefix_set = flag(&cfg, "add_prefix_space", &cfg_path)?.is_some();
    let from_slow = has_model && llama && (!has_json || prefix_set);
    if !has_json && !from_slow {
        return Err(ModelError::tokenizer(
            &model_path,
            format!("only a tokenizer.model is here and its class {class} is not a LLaMA-style SentencePiece tokenizer pretrace can convert; add the repository's tokenizer.json"),
        ));
    }
    let map = read_json(&dir.join("special_tokens_map.json"))?;
    build(dir, &cfg, &cfg_path, &class, map.as_ref(), from_slow)
}

fn build(
    dir: &Path,
    cfg: &Value,
    cfg_path: &Path,
    class: &str,
    map: Option<&Value>,
    from_slow: bool,
) -> Result<Option<Tokenizer>> {
    let (origin, mut doc) = if from_slow {
        let p = dir.join("tokenizer.model");
        let bytes = std::fs::read(&p)
            .map_err(|e| ModelError::tokenizer(&p, format!("cannot read: {e}")))?;
        let m = SpModel::parse(&bytes).map_err(|e| {
            ModelError::tokenizer(
                &p,
                format!("not a SentencePiece model: {e}; re-download tokenizer.model"),
            )
        })?;
        let style = LlamaStyle {
            legacy: flag(cfg, "legacy", cfg_path)?.unwrap_or(true),
            add_prefix_space: flag(cfg, "add_prefix_space", cfg_path)?.unwrap_or(true),
        };
        let doc = llama_tokenizer_json(&m, style)
            .map_err(|e| ModelError::tokenizer(&p, format!("the model {e}")))?;
        (p, doc)
    } else {
        let p = dir.join("tokenizer.json");
        let text = std::fs::read_to_string(&p).map_err(|e| {
            ModelError::tokenizer(&p, format!("cannot read tokenizer.json as text: {e}"))
        })?;
        let doc: Value = serde_json::from_str(&text).map_err(|e| {
            ModelError::tokenizer(
                &p,
                format!(
                    "not a valid tokenizer.json ({e}); re-download it from the model repository"
                ),
            )
        })?;
        (p, doc)
    };
    let tok_of = |key: &str| token_text(cfg.get(key)).or_else(|| token_text(map?.get(key)));
    // Vocabulary ids of the model (before added tokens), to give added tokens their ids.
    let first = parse(&doc.to_string()).map_err(|e| {
        ModelError::tokenizer(
            &origin,
            format!("not a valid tokenizer ({e}); re-download it from the model repository"),
        )
    })?;
    let contents: std::collections::HashSet<String> = doc
        .get("added_tokens")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|t| t.get("content")?.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let mut extra: Vec<Value> = Vec::new();
    let mut seen = contents.clone();
    if let Some(dec) = cfg.get("added_tokens_decoder").and_then(Value::as_object) {
        let mut entries: Vec<(u64, &Value)> = Vec::new();
        for (k, v) in dec {
            let id: u64 = k.parse().map_err(|_| {
                ModelError::tokenizer(
                    cfg_path,
                    format!(
                        "added_tokens_decoder key '{}' is not a token id",
                        pretrace_core::shown(k, 40)
                    ),
                )
            })?;
            entries.push((id, v));
        }
        entries.sort_by_key(|e| e.0);
        for (id, v) in entries {
            let Some(content) = v.get("content").and_then(Value::as_str) else {
                return Err(ModelError::tokenizer(
                    cfg_path,
                    format!(
                        "added_tokens_decoder[{id}] has no 'content'; fix tokenizer_config.json"
                    ),
                ));
            };
            if seen.contains(content) {
                continue;
            }
            let b = |k: &str, d: bool| v.get(k).and_then(Value::as_bool).unwrap_or(d);
            let special = b("special", false);
            extra.push(json!({
                "id": id, "content": content, "single_word": b("single_word", false),
                "lstrip": b("lstrip", false), "rstrip": b("rstrip", false),
                "normalized": b("normalized", !special), "special": special,
            }));
            seen.insert(content.to_string());
        }
    }
    for key in [
        "bos_token",
        "eos_token",
        "unk_token",
        "sep_token",
        "pad_token",
        "cls_token",
        "mask_token",
    ] {
        let Some(t) = tok_of(key) else { continue };
        if seen.contains(&t) {
            continue;
        }
        // A special token outside the vocabulary would get a new id the model has no row for.
        let Some(id) = first.token_to_id(&t) else {
            continue;
        };
        extra.push(json!({
            "id": id, "content": t, "single_word": false, "lstrip": false, "rstrip": false,
            "normalized": false, "special": true,
        }));
        seen.insert(t);
    }
    if !extra.is_empty() {
        match doc.get_mut("added_tokens").and_then(Value::as_array_mut) {
            Some(a) => a.extend(extra),
            None => doc["added_tokens"] = Value::Array(extra),
        }
    }
    if let Some((bos_d, eos_d, add_bos_d, add_eos_d)) = rules(class) {
        let add_bos = flag(cfg, "add_bos_token", cfg_path)?.unwrap_or(add_bos_d);
        let add_eos = flag(cfg, "add_eos_token", cfg_path)?.unwrap_or(add_eos_d);
        let bos = tok_of("bos_token").unwrap_or_else(|| bos_d.to_string());
        let eos = tok_of("eos_token").unwrap_or_else(|| eos_d.to_string());
        let with_added = parse(&doc.to_string()).map_err(|e| {
            ModelError::tokenizer(
                cfg_path,
                format!("its added tokens do not fit the tokenizer ({e})"),
            )
        })?;
        let id_of = |t: &str, key: &str| {
            with_added.token_to_id(t).ok_or_else(|| {
                ModelError::tokenizer(
                    cfg_path,
                    format!("{key} = true but the token '{}' is not in the vocabulary; fix tokenizer_config.json", pretrace_core::shown(t, 40)),
                )
            })
        };
        let mut single: Vec<Value> = Vec::new();
        let mut pair: Vec<Value> = Vec::new();
        let mut specials = serde_json::Map::new();
        let special = |t: &str, ty: u32| json!({"SpecialToken": {"id": t, "type_id": ty}});
        let seq = |s: &str, ty: u32| json!({"Sequence": {"id": s, "type_id": ty}});
        if add_bos {
            let id = id_of(&bos, "add_bos_token")?;
            specials.insert(
                bos.clone(),
                json!({"id": bos, "ids": [id], "tokens": [bos]}),
            );
        }
        if add_eos {
            let id = id_of(&eos, "add_eos_token")?;
            specials.insert(
                eos.clone(),
                json!({"id": eos, "ids": [id], "tokens": [eos]}),
            );
        }
        if add_bos {
            single.push(special(&bos, 0));
        }
        single.push(seq("A", 0));
        if add_eos {
            single.push(special(&eos, 0));
        }
        pair.extend(single.iter().cloned());
        if add_bos {
            pair.push(special(&bos, 1));
        }
        pair.push(seq("B", 1));
        if add_eos {
            pair.push(special(&eos, 1));
        }
        doc["post_processor"] = json!({
            "type": "TemplateProcessing", "single": single, "pair": pair, "special_tokens": specials,
        });
    }
    let inner = parse(&doc.to_string()).map_err(|e| {
        ModelError::tokenizer(
            &origin,
            format!("the tokenizer with tokenizer_config.json applied is not valid ({e})"),
        )
    })?;
    Tokenizer::checked(inner, &origin).map(Some)
}
