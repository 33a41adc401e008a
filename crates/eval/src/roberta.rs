//! A RoBERTa sequence classifier (Hugging Face `RobertaForSequenceClassification`, e.g.
//! `tomh/toxigen_roberta`) on pretrace's runtime, to score generations. It follows transformers'
//! `modeling_roberta.py`: word + position (counted from `pad_token_id + 1`) + token-type embeddings,
//! layer norm, post-norm encoder layers (attention, then the GELU feed-forward, each added to its
//! input and normalized), and the head on the `<s>` token: dense, tanh, `out_proj`.
//!
//! Each text runs alone (no padding), so a text's logits never depend on its neighbours.

use crate::{EvalError, Result};
use candle_core::{DType, Device, IndexOp, Tensor, D};
use pretrace_model::layers::{Act, Linear, Norm};
use pretrace_model::weights::{find_weight_files, Weights};
use pretrace_model::Tokenizer;
use serde_json::Value;
use std::path::Path;

struct Layer {
    qkv: Linear,
    attn_out: Linear,
    attn_norm: Norm,
    up: Linear,
    down: Linear,
    out_norm: Norm,
}

/// A loaded classifier.
pub struct Classifier {
    word: Tensor,
    pos: Tensor,
    token_type: Tensor,
    emb_norm: Norm,
    layers: Vec<Layer>,
    dense: Linear,
    out_proj: Linear,
    act: Act,
    heads: usize,
    pad_id: u32,
    max_positions: usize,
    /// `id2label`, in label order.
    pub labels: Vec<String>,
    pub tokenizer: Tokenizer,
}

fn bad(path: &Path, msg: impl std::fmt::Display) -> EvalError {
    EvalError::Invalid(format!("{}: {msg}", path.display()))
}

/// The tokenizer of a RoBERTa checkpoint: `tokenizer.json`, or `vocab.json` + `merges.txt` built
/// into the fast tokenizer transformers converts them to (byte-level BPE, `<s> … </s>`).
fn tokenizer(dir: &Path) -> Result<Tokenizer> {
    let tj = dir.join("tokenizer.json");
    if tj.is_file() {
        return Ok(Tokenizer::from_file(&tj)?);
    }
    let (vocab, merges) = (dir.join("vocab.json"), dir.join("merges.txt"));
    if !(vocab.is_file() && merges.is_file()) {
        return Err(bad(
            dir,
            "no tokenizer.json, nor vocab.json and merges.txt; copy the checkpoint's tokenizer files",
        ));
    }
    let v: Value = serde_json::from_str(
        &std::fs::read_to_string(&vocab).map_err(|e| bad(&vocab, format!("cannot read: {e}")))?,
    )
    .map_err(|e| bad(&vocab, format!("not JSON: {e}")))?;
    let merges: Vec<Value> = std::fs::read_to_string(&merges)
        .map_err(|e| bad(&merges, format!("cannot read: {e}")))?
        .lines()
        .filter(|l| !l.starts_with("#version") && !l.trim().is_empty())
        .map(|l| Value::String(l.to_string()))
        .collect();
    let id = |t: &str| -> Result<u64> {
        v.get(t)
            .and_then(Value::as_u64)
            .ok_or_else(|| bad(&vocab, format!("special token {t} is missing")))
    };
    let (cls, sep) = (id("<s>")?, id("</s>")?);
    let added: Vec<Value> = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
        .iter()
        .filter_map(|t| v.get(*t).and_then(Value::as_u64).map(|i| (t, i)))
        .map(|(t, i)| {
            serde_json::json!({"id": i, "content": t, "single_word": false, "lstrip": *t == "<mask>",
                               "rstrip": false, "normalized": false, "special": true})
        })
        .collect();
    let json = serde_json::json!({
        "version": "1.0", "truncation": null, "padding": null, "added_tokens": added, "normalizer": null,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true},
        "post_processor": {"type": "RobertaProcessing", "sep": ["</s>", sep], "cls": ["<s>", cls],
                           "trim_offsets": true, "add_prefix_space": false},
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": false, "byte_fallback": false, "ignore_merges": false,
                  "vocab": v, "merges": merges}
    });
    Ok(Tokenizer::from_json(&vocab, &json.to_string())?)
}

impl Classifier {
    /// Loads a checkpoint folder: config.json (`model_type` roberta), weights, tokenizer.
    pub fn load(dir: &Path) -> Result<Classifier> {
        let cfg_path = dir.join("config.json");
        let c: Value = serde_json::from_str(&std::fs::read_to_string(&cfg_path).map_err(|e| {
            bad(
                &cfg_path,
                format!("cannot read ({e}); give a RoBERTa checkpoint folder"),
            )
        })?)
        .map_err(|e| bad(&cfg_path, format!("not JSON: {e}")))?;
        let mt = c.get("model_type").and_then(Value::as_str).unwrap_or("");
        if mt != "roberta" {
            return Err(bad(
                &cfg_path,
                format!("model_type '{mt}' is not a supported classifier; supported: roberta"),
            ));
        }
        let u = |k: &str| -> Result<usize> {
            c.get(k)
                .and_then(Value::as_u64)
                .map(|x| x as usize)
                .ok_or_else(|| {
                    bad(
                        &cfg_path,
                        format!("field '{k}' is missing or not an integer"),
                    )
                })
        };
        let (vocab, d, n_layers, heads, inter, max_pos) = (
            u("vocab_size")?,
            u("hidden_size")?,
            u("num_hidden_layers")?,
            u("num_attention_heads")?,
            u("intermediate_size")?,
            u("max_position_embeddings")?,
        );
        let types = c
            .get("type_vocab_size")
            .and_then(Value::as_u64)
            .unwrap_or(1) as usize;
        let eps = c
            .get("layer_norm_eps")
            .and_then(Value::as_f64)
            .unwrap_or(1e-5);
        let pad_id = c.get("pad_token_id").and_then(Value::as_u64).unwrap_or(1) as u32;
        let act = Act::parse(
            c.get("hidden_act")
                .and_then(Value::as_str)
                .unwrap_or("gelu"),
        )
        .map_err(|e| bad(&cfg_path, e))?;
        let labels: Vec<String> = match c.get("id2label").and_then(Value::as_object) {
            Some(m) => {
                let mut v: Vec<(usize, String)> = m
                    .iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_str()?.to_string())))
                    .collect();
                v.sort();
                v.into_iter().map(|(_, l)| l).collect()
            }
            None => (0..u("num_labels").unwrap_or(2))
                .map(|i| format!("LABEL_{i}"))
                .collect(),
        };
        if d % heads != 0 {
            return Err(bad(
                &cfg_path,
                format!("hidden_size {d} is not a multiple of num_attention_heads {heads}"),
            ));
        }
        let files = find_weight_files(dir)?;
        let w = Weights::open(dir, &files, DType::F32, &Device::Cpu)?;
        let arch = "roberta";
        let lin = |p: &str, o: usize, i: usize| -> Result<Linear> {
            Ok(Linear::new(
                &w.get(&format!("{p}.weight"), &[o, i], arch)?,
                Some(w.get(&format!("{p}.bias"), &[o], arch)?),
            )?)
        };
        let norm = |p: &str| -> Result<Norm> {
            Ok(Norm::Layer {
                w: w.get(&format!("{p}.weight"), &[d], arch)?,
                b: w.get(&format!("{p}.bias"), &[d], arch)?,
                eps,
            })
        };
        let e = "roberta.embeddings";
        let mut layers = Vec::with_capacity(n_layers);
        for l in 0..n_layers {
            let p = format!("roberta.encoder.layer.{l}");
            let (q, k, v) = (
                lin(&format!("{p}.attention.self.query"), d, d)?,
                lin(&format!("{p}.attention.self.key"), d, d)?,
                lin(&format!("{p}.attention.self.value"), d, d)?,
            );
            layers.push(Layer {
                qkv: Linear::concat(&[&q, &k, &v])?,
                attn_out: lin(&format!("{p}.attention.output.dense"), d, d)?,
                attn_norm: norm(&format!("{p}.attention.output.LayerNorm"))?,
                up: lin(&format!("{p}.intermediate.dense"), inter, d)?,
                down: lin(&format!("{p}.output.dense"), d, inter)?,
                out_norm: norm(&format!("{p}.output.LayerNorm"))?,
            });
        }
        let n_labels = labels.len();
        let clf = Classifier {
            word: w.get(&format!("{e}.word_embeddings.weight"), &[vocab, d], arch)?,
            pos: w.get(
                &format!("{e}.position_embeddings.weight"),
                &[max_pos, d],
                arch,
            )?,
            token_type: w.get(
                &format!("{e}.token_type_embeddings.weight"),
                &[types, d],
                arch,
            )?,
            emb_norm: norm(&format!("{e}.LayerNorm"))?,
            layers,
            dense: lin("classifier.dense", d, d)?,
            out_proj: lin("classifier.out_proj", n_labels, d)?,
            act,
            heads,
            pad_id,
            max_positions: max_pos,
            labels,
            tokenizer: tokenizer(dir)?,
        };
        // Buffers, and the pooler a RobertaModel checkpoint may carry (the classifier head does not
        // use it).
        w.ignore(|n| n.ends_with("position_ids") || n.starts_with("roberta.pooler."));
        w.finish(arch)?;
        Ok(clf)
    }

    /// The most tokens (without `<s>` and `</s>`) a text may have.
    pub fn max_tokens(&self) -> usize {
        self.max_positions
            .saturating_sub(self.pad_id as usize + 1 + 2)
    }

    /// Token count of `text` without the special tokens (the paper drops generations over 512).
    pub fn token_len(&self, text: &str) -> Result<usize> {
        Ok(self.tokenizer.encode_with(text, false)?.len())
    }

    /// Logits `[labels]` for one text (tokenized with `<s> … </s>`).
    pub fn logits(&self, text: &str) -> Result<Vec<f32>> {
        let ids = self.tokenizer.encode(text)?;
        let t = ids.len();
        // create_position_ids_from_input_ids: padding_idx + 1 + index, for tokens that are not padding.
        let mut n = 0u32;
        let pos: Vec<u32> = ids
            .iter()
            .map(|&i| {
                if i == self.pad_id {
                    self.pad_id
                } else {
                    n += 1;
                    self.pad_id + n
                }
            })
            .collect();
        if let Some(&p) = pos.iter().max() {
            if p as usize >= self.max_positions {
                return Err(EvalError::Invalid(format!(
                    "the text is {t} tokens; the classifier takes at most {} (max_position_embeddings {})",
                    self.max_positions - self.pad_id as usize - 1,
                    self.max_positions
                )));
            }
        }
        let dev = Device::Cpu;
        let x = (self
            .word
            .index_select(&Tensor::new(ids.as_slice(), &dev)?, 0)?
            .broadcast_add(&self.token_type.i(0)?)?
            + self
                .pos
                .index_select(&Tensor::new(pos.as_slice(), &dev)?, 0)?)?;
        let mut x = self.emb_norm.forward(&x)?;
        let d = x.dim(1)?;
        let dh = d / self.heads;
        let scale = 1.0 / (dh as f64).sqrt();
        for l in &self.layers {
            let qkv = l.qkv.forward(&x)?;
            let split = |k: usize| -> Result<Tensor> {
                Ok(qkv
                    .narrow(1, k * d, d)?
                    .reshape((t, self.heads, dh))?
                    .transpose(0, 1)?
                    .contiguous()?)
            };
            let (q, k, v) = (split(0)?, split(1)?, split(2)?);
            let scores = (q.matmul(&k.transpose(1, 2)?.contiguous()?)? * scale)?;
            let probs = candle_nn_softmax(&scores)?;
            let ctx = probs
                .matmul(&v)?
                .transpose(0, 1)?
                .contiguous()?
                .reshape((t, d))?;
            let a = l.attn_norm.forward(&(l.attn_out.forward(&ctx)? + &x)?)?;
            let h = l.down.forward(&self.act.forward(&l.up.forward(&a)?)?)?;
            x = l.out_norm.forward(&(h + &a)?)?;
        }
        let cls = x.i(0..1)?;
        let h = self.dense.forward(&cls)?.tanh()?;
        Ok(self.out_proj.forward(&h)?.i(0)?.to_vec1::<f32>()?)
    }
}

/// Softmax over the last dimension, in f32.
fn candle_nn_softmax(x: &Tensor) -> Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?;
    let e = x.broadcast_sub(&max)?.exp()?;
    Ok(e.broadcast_div(&e.sum_keepdim(D::Minus1)?)?)
}
