//! Tokenization with the checkpoint's own tokenizer (`tokenizers` crate). Special tokens such as BOS
//! are added exactly as the checkpoint's tokenizer adds them (its post-processor); strings are never
//! trimmed or normalized beyond what the tokenizer itself does.

use crate::error::{ModelError, Result};
use std::path::{Path, PathBuf};

/// A checkpoint's tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    /// Where it came from (a tokenizer.json or a GGUF file).
    pub origin: PathBuf,
    /// Beginning-of-sequence token id, if the checkpoint names one.
    pub bos_id: Option<u32>,
    /// End-of-sequence token id, if the checkpoint names one.
    pub eos_id: Option<u32>,
}

impl std::fmt::Debug for Tokenizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tokenizer({})", self.summary())
    }
}

/// A tokenizer JSON document parsed by the tokenizers crate, with its syntax checked first (the
/// crate panics on some malformed documents; a panic left is contained) and its message made one
/// line.
pub(crate) fn parse(json: &str) -> std::result::Result<tokenizers::Tokenizer, String> {
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(json) {
        return Err(format!("not JSON: {e}"));
    }
    pretrace_core::contain(|| json.parse::<tokenizers::Tokenizer>())
        .map_err(|e| format!("the tokenizer failed: {e}"))?
        .map_err(|e| pretrace_core::shown(&e.to_string(), 200))
}

impl Tokenizer {
    /// Loads a `tokenizer.json`.
    pub fn from_file(path: &Path) -> Result<Tokenizer> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ModelError::tokenizer(path, format!("cannot read tokenizer.json as text: {e}"))
        })?;
        let inner = parse(&text).map_err(|e| {
            ModelError::tokenizer(
                path,
                format!(
                    "not a valid tokenizer.json ({e}); re-download it from the model repository"
                ),
            )
        })?;
        Tokenizer::checked(inner, path)
    }

    /// Refuses a tokenizer with no vocabulary: it would turn every text into nothing, and the
    /// fault would seem to lie with the text.
    pub(crate) fn checked(inner: tokenizers::Tokenizer, origin: &Path) -> Result<Tokenizer> {
        if inner.get_vocab_size(true) == 0 {
            return Err(ModelError::tokenizer(
                origin,
                "the tokenizer's vocabulary is empty; re-download the model's tokenizer.json",
            ));
        }
        Ok(Tokenizer {
            inner,
            origin: origin.to_path_buf(),
            bos_id: None,
            eos_id: None,
        })
    }

    /// The tokenizer of a checkpoint folder as transformers 4.x's `AutoTokenizer` builds it:
    /// `tokenizer.json`, else SentencePiece's `tokenizer.model` converted as `LlamaTokenizerFast`
    /// converts it; with `tokenizer_config.json`'s `add_bos_token` / `add_eos_token` (and
    /// `special_tokens_map.json`'s tokens) honoured for the classes that rebuild their
    /// post-processor from them (LLaMA, CodeLlama, Gemma, Cohere, GPT-NeoX). `model_type` is the
    /// checkpoint's, for the class when `tokenizer_config.json` names none. None when the folder
    /// has no tokenizer.
    pub fn from_dir(dir: &Path, model_type: Option<&str>) -> Result<Option<Tokenizer>> {
        crate::hf_tokenizer::load(dir, model_type)
    }

    /// Builds from a tokenizer JSON document (used for GGUF metadata).
    pub fn from_json(origin: &Path, json: &str) -> Result<Tokenizer> {
        let inner = parse(json).map_err(|e| ModelError::tokenizer(origin, format!("cannot build the tokenizer from the file's metadata ({e}); put a tokenizer.json beside it")))?;
        Tokenizer::checked(inner, origin)
    }

    /// Token ids of `text`, with the special tokens the checkpoint's tokenizer adds.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        self.encode_with(text, true)
    }

    /// Token ids of `text`, with or without the special tokens (transformers'
    /// `add_special_tokens`; lm-evaluation-harness scores causal models without them).
    pub fn encode_with(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let bad = |e: String| {
            ModelError::tokenizer(
                &self.origin,
                format!(
                    "cannot encode {}: {e}",
                    pretrace_core::shown(&format!("{text:?}"), 80)
                ),
            )
        };
        let enc = pretrace_core::contain(|| self.inner.encode(text, add_special_tokens))
            .map_err(|e| bad(format!("the tokenizer failed: {e}")))?
            .map_err(|e| bad(pretrace_core::shown(&e.to_string(), 200)))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids` (special tokens kept, as transformers' `decode` does by default).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        let bad = |e: String| {
            ModelError::tokenizer(
                &self.origin,
                pretrace_core::shown(&format!("cannot decode {ids:?}: {e}"), 300),
            )
        };
        pretrace_core::contain(|| self.inner.decode(ids, false))
            .map_err(|e| bad(format!("the tokenizer failed: {e}")))?
            .map_err(|e| bad(e.to_string()))
    }

    /// Number of tokens including added ones.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The largest token id the tokenizer can produce, plus one.
    pub fn id_bound(&self) -> usize {
        self.inner
            .get_vocab(true)
            .values()
            .map(|&i| i as usize + 1)
            .max()
            .unwrap_or(0)
    }

    /// Model kind and sizes, for `info`.
    pub fn summary(&self) -> String {
        let model = match self.inner.get_model() {
            tokenizers::ModelWrapper::BPE(_) => "BPE",
            tokenizers::ModelWrapper::WordPiece(_) => "WordPiece",
            tokenizers::ModelWrapper::WordLevel(_) => "WordLevel",
            tokenizers::ModelWrapper::Unigram(_) => "Unigram",
        };
        let name = |id: Option<u32>| {
            id.and_then(|i| self.inner.id_to_token(i))
                .unwrap_or_else(|| "-".into())
        };
        format!(
            "{model}, {} tokens, bos {}, eos {}, from {}",
            self.vocab_size(),
            name(self.bos_id),
            name(self.eos_id),
            self.origin.display()
        )
    }

    /// Checks that every id the tokenizer can produce has a row in the embedding table.
    pub fn check_fits(&self, model_vocab: usize) -> Result<()> {
        let bound = self.id_bound();
        if bound > model_vocab {
            return Err(ModelError::tokenizer(
                &self.origin,
                format!(
                    "tokenizer produces ids up to {} but the model's vocabulary has {model_vocab} rows; \
                     this tokenizer belongs to another model, use the checkpoint's own tokenizer.json",
                    bound - 1
                ),
            ));
        }
        Ok(())
    }
}
