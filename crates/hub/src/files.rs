//! Which files of a repository a checkpoint needs: its config, its tokenizer files, and its weights
//! (safetensors preferred over PyTorch `.bin` when both are there; an index names its shards).

use crate::reference::check_repo_path;

pub const CONFIG: &str = "config.json";

/// Tokenizer files, each taken when the repository has it.
pub const TOKENIZER_FILES: [&str; 4] = [
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
];

/// Weight files in order of preference, as the loader takes them.
pub const WEIGHT_FILES: [&str; 4] = [
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
];

/// The weights a checkpoint's file list offers: the first of [`WEIGHT_FILES`] it has.
pub fn pick_weights(files: &[String]) -> Option<&'static str> {
    WEIGHT_FILES
        .into_iter()
        .find(|w| files.iter().any(|f| f == w))
}

/// Whether a tokenizer file list can make a tokenizer (`tokenizer.json`, or SentencePiece's
/// `tokenizer.model`).
pub fn has_tokenizer(files: &[String]) -> bool {
    files
        .iter()
        .any(|f| f == "tokenizer.json" || f == "tokenizer.model")
}

/// The shard files a weight index (`*.index.json`) names, each checked to be a plain relative path.
pub fn shards_in_index(text: &str) -> Result<Vec<String>, String> {
    let v: serde_json::Value =
        serde_json::from_str(text).map_err(|e| format!("not valid JSON ({e})"))?;
    let map = v
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or("field 'weight_map' is missing or not an object")?;
    let mut out = std::collections::BTreeSet::new();
    for (name, f) in map {
        let f = f.as_str().ok_or_else(|| {
            format!(
                "weight_map['{}'] is not a file name",
                pretrace_core::shown(name, 80)
            )
        })?;
        check_repo_path(f).map_err(|w| {
            format!(
                "weight_map['{}'] names '{}': {w}",
                pretrace_core::shown(name, 80),
                pretrace_core::shown(f, 120)
            )
        })?;
        out.insert(f.to_string());
    }
    if out.is_empty() {
        return Err("weight_map names no file".into());
    }
    Ok(out.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_preference() {
        let l = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            pick_weights(&l(&[
                "pytorch_model.bin",
                "model.safetensors",
                "config.json"
            ])),
            Some("model.safetensors")
        );
        assert_eq!(
            pick_weights(&l(&[
                "pytorch_model.bin.index.json",
                "pytorch_model-00001-of-00002.bin"
            ])),
            Some("pytorch_model.bin.index.json")
        );
        assert_eq!(pick_weights(&l(&["config.json"])), None);
        assert_eq!(
            shards_in_index(r#"{"weight_map":{"a":"m-1.bin","b":"m-2.bin","c":"m-1.bin"}}"#)
                .unwrap(),
            vec!["m-1.bin", "m-2.bin"]
        );
        assert!(shards_in_index(r#"{"weight_map":{"a":"../../etc/passwd"}}"#).is_err());
    }
}
