//! `manifest.json`: what produced an entry.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Identity of a weight file without reading it: name, size and modification time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileId {
    pub name: String,
    pub bytes: u64,
    /// Nanoseconds since the Unix epoch.
    pub modified_ns: u128,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointInfo {
    /// The entry's directory name: the checkpoint directory's (or GGUF file's) name.
    pub name: String,
    pub path: String,
    /// Training step parsed from the name, if it has one.
    pub step: Option<u64>,
    /// Tokens seen, where the name says (OLMo's `tokens4B`).
    pub tokens: Option<u64>,
    /// The validated model config (architecture, widths, vocabulary).
    pub config: serde_json::Value,
    pub weights: Vec<FileId>,
    /// Where the checkpoint came from on the Hugging Face hub, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubInfo>,
}

/// A checkpoint's origin on the Hugging Face hub.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HubInfo {
    /// `hf:ORG/NAME@REVISION`.
    pub reference: String,
    /// The 40-hex commit the revision resolved to: it fixes every file's contents.
    pub commit: String,
    /// Where the tokenizer came from when the revision has none (`hf:ORG/NAME@main`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokenizer: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub name: String,
    pub path: String,
    /// sha256 of the data file.
    pub sha256: String,
    pub rows: usize,
    pub text_column: String,
    pub label_column: Option<String>,
}

/// How activations were taken.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Extraction {
    /// The hook site kept for each layer (`hook_resid_post`).
    pub site: String,
    pub layers: Vec<usize>,
    /// `last` (the last token, the paper's rule) or `mean` (mean over the row's tokens).
    pub token: String,
    /// Text template containing `{text}`, if any.
    pub template: Option<String>,
    /// Whether rows were encoded with the tokenizer's special tokens (BOS where it adds one), as
    /// transformers' `tokenizer(text)` does by default.
    pub special_tokens: bool,
    pub compute_dtype: String,
    pub store_dtype: String,
    /// Where the model ran: `cpu` (not written) or `cuda:N`.
    #[serde(default = "cpu", skip_serializing_if = "is_cpu")]
    pub device: String,
}

fn cpu() -> String {
    "cpu".into()
}

fn is_cpu(d: &String) -> bool {
    d == "cpu"
}

/// Everything recorded beside an entry's activations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub store_format: u32,
    /// `pretrace <version>`.
    pub tool: String,
    pub checkpoint: CheckpointInfo,
    pub dataset: DatasetInfo,
    pub extraction: Extraction,
    /// Tensor names and shapes in activations.safetensors.
    pub tensors: BTreeMap<String, Vec<usize>>,
    /// Tokens run through the model for this entry.
    pub total_tokens: u64,
    /// Size and sha256 of each file of the entry beside the manifest, so that a resumed run can
    /// tell a whole entry from a truncated or damaged one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, FileCheck>,
}

/// What a whole file of an entry looks like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileCheck {
    pub bytes: u64,
    pub sha256: String,
}

impl Manifest {
    /// Whether two manifests were produced from the same inputs: the same model (config and weight
    /// files), the same data (sha256), the same extraction settings and store format. Paths, the
    /// tool version and the batch layout do not matter.
    pub fn same_inputs(&self, other: &Manifest) -> bool {
        self.store_format == other.store_format
            && self.checkpoint.config == other.checkpoint.config
            && match (&self.checkpoint.hub, &other.checkpoint.hub) {
                // A commit fixes the files' contents, whatever their timestamps in the cache.
                (Some(a), Some(b)) => a.commit == b.commit && a.tokenizer == b.tokenizer,
                _ => self.checkpoint.weights == other.checkpoint.weights,
            }
            && self.dataset.sha256 == other.dataset.sha256
            && self.dataset.text_column == other.dataset.text_column
            && self.dataset.label_column == other.dataset.label_column
            && self.extraction == other.extraction
    }
}
