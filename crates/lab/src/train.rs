//! Training a small LLaMA-architecture model from random initialization on pretrace's own runtime:
//! the forward pass is the one decoder loop of `pretrace-model` (whose fused kernels run with their
//! backward passes when its weights are candle `Var`s), the loss is next-token cross-entropy over the
//! positions a batch marks, and the optimizer is AdamW (decoupled weight decay on matrices only,
//! as is usual) with linear warm-up, cosine decay and global gradient-norm clipping.
//!
//! Checkpoints are Hugging Face directories (`config.json`, `tokenizer.json`,
//! `tokenizer_config.json`, `model.safetensors`) that transformers' `LlamaForCausalLM` loads as
//! they are.

use crate::{LabError, Result};
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::optim::{AdamW, Optimizer, ParamsAdamW};
use pretrace_data::builders::SplitMix64;
use pretrace_model::layers::exp_f32;
use pretrace_model::weights::Weights;
use pretrace_model::{Batch, Logits, Model, Padding};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The shape of a lab model: a LLaMA (RMSNorm, rotary, SwiGLU, no biases, untied head).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Arch {
    pub d_model: usize,
    pub n_layers: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub d_mlp: usize,
    pub vocab_size: usize,
    pub max_positions: usize,
    pub rope_theta: f64,
    pub rms_norm_eps: f64,
}

impl Arch {
    /// The lab's default model: 4 layers of width 96 (about 0.75 M parameters with a 2048-token
    /// vocabulary), small enough to train for a few hundred steps in about a minute on two cores.
    pub fn small(vocab_size: usize) -> Arch {
        Arch {
            d_model: 96,
            n_layers: 4,
            n_heads: 4,
            n_kv_heads: 4,
            d_mlp: 256,
            vocab_size,
            max_positions: 256,
            rope_theta: 10_000.0,
            rms_norm_eps: 1e-5,
        }
    }

    fn check(&self) -> Result<()> {
        let ok = self.d_model > 0
            && self.n_layers > 0
            && self.n_heads > 0
            && self.n_kv_heads > 0
            && self.d_model.is_multiple_of(self.n_heads)
            && self.n_heads.is_multiple_of(self.n_kv_heads)
            && (self.d_model / self.n_heads).is_multiple_of(2)
            && self.d_mlp > 0
            && self.vocab_size > 0;
        if !ok {
            return Err(LabError::Invalid(format!(
                "model shape {self:?} is not valid: d_model must split into an even head size over n_heads, and n_heads into n_kv_heads groups"
            )));
        }
        Ok(())
    }

    pub fn head_dim(&self) -> usize {
        self.d_model / self.n_heads
    }

    /// `config.json` as transformers writes it for `LlamaForCausalLM`.
    pub fn config_json(&self, bos_id: u32, eos_id: u32) -> serde_json::Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"],
            "model_type": "llama",
            "hidden_size": self.d_model,
            "intermediate_size": self.d_mlp,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.n_kv_heads,
            "head_dim": self.head_dim(),
            "vocab_size": self.vocab_size,
            "max_position_embeddings": self.max_positions,
            "rope_theta": self.rope_theta,
            "rms_norm_eps": self.rms_norm_eps,
            "hidden_act": "silu",
            "tie_word_embeddings": false,
            "attention_bias": false,
            "mlp_bias": false,
            "initializer_range": INIT_STD,
            "bos_token_id": bos_id,
            "eos_token_id": eos_id,
            "torch_dtype": "float32",
        })
    }

    /// Every parameter: its Hugging Face name, shape and initialization, in a fixed order.
    fn parameters(&self) -> Vec<(String, Vec<usize>, Init)> {
        let (d, v, f) = (self.d_model, self.vocab_size, self.d_mlp);
        let (qd, kvd) = (
            self.n_heads * self.head_dim(),
            self.n_kv_heads * self.head_dim(),
        );
        // GPT-2's scaling of the projections that write into the residual stream.
        let out_std = INIT_STD / (2.0 * self.n_layers as f64).sqrt();
        let mut p = vec![(
            "model.embed_tokens.weight".to_string(),
            vec![v, d],
            Init::Normal(INIT_STD),
        )];
        for l in 0..self.n_layers {
            let b = format!("model.layers.{l}");
            p.push((format!("{b}.input_layernorm.weight"), vec![d], Init::Ones));
            p.push((
                format!("{b}.self_attn.q_proj.weight"),
                vec![qd, d],
                Init::Normal(INIT_STD),
            ));
            p.push((
                format!("{b}.self_attn.k_proj.weight"),
                vec![kvd, d],
                Init::Normal(INIT_STD),
            ));
            p.push((
                format!("{b}.self_attn.v_proj.weight"),
                vec![kvd, d],
                Init::Normal(INIT_STD),
            ));
            p.push((
                format!("{b}.self_attn.o_proj.weight"),
                vec![d, qd],
                Init::Normal(out_std),
            ));
            p.push((
                format!("{b}.post_attention_layernorm.weight"),
                vec![d],
                Init::Ones,
            ));
            p.push((
                format!("{b}.mlp.gate_proj.weight"),
                vec![f, d],
                Init::Normal(INIT_STD),
            ));
            p.push((
                format!("{b}.mlp.up_proj.weight"),
                vec![f, d],
                Init::Normal(INIT_STD),
            ));
            p.push((
                format!("{b}.mlp.down_proj.weight"),
                vec![d, f],
                Init::Normal(out_std),
            ));
        }
        p.push(("model.norm.weight".to_string(), vec![d], Init::Ones));
        p.push((
            "lm_head.weight".to_string(),
            vec![v, d],
            Init::Normal(INIT_STD),
        ));
        p
    }
}

/// transformers' `initializer_range` default.
const INIT_STD: f64 = 0.02;

#[derive(Debug, Clone, Copy)]
enum Init {
    Normal(f64),
    Ones,
}

/// A standard normal draw (Box–Muller) from the lab's seeded generator.
fn normal(rng: &mut SplitMix64) -> f64 {
    let u1 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    let u2 = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
    (-2.0 * (1.0 - u1).ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// A model's parameters as trainable variables, by Hugging Face name.
pub struct Params {
    pub arch: Arch,
    vars: Vec<(String, Var)>,
    dtype: DType,
    device: Device,
}

impl Params {
    /// Random initialization from `seed`: normal(0, 0.02) for embeddings and projections (the
    /// residual-writing projections scaled by 1/√(2·layers)), ones for the norms.
    pub fn init(arch: &Arch, seed: u64, dtype: DType) -> Result<Params> {
        arch.check()?;
        let mut rng = SplitMix64::new(seed ^ 0x1a2b_3c4d_5e6f_7081);
        let mut vars = Vec::new();
        for (name, shape, init) in arch.parameters() {
            let n: usize = shape.iter().product();
            let data: Vec<f64> = match init {
                Init::Normal(std) => (0..n).map(|_| normal(&mut rng) * std).collect(),
                Init::Ones => vec![1.0; n],
            };
            let t = Tensor::from_vec(data, shape, &Device::Cpu)?.to_dtype(dtype)?;
            vars.push((name, Var::from_tensor(&t)?));
        }
        Ok(Params {
            arch: arch.clone(),
            vars,
            dtype,
            device: Device::Cpu,
        })
    }

    /// The same parameters on `device` (initialization and loading happen on the host, so a run
    /// starts from the same values on every device).
    pub fn on(self, device: &Device) -> Result<Params> {
        if device.same_device(&self.device) {
            return Ok(self);
        }
        let mut vars = Vec::with_capacity(self.vars.len());
        for (n, v) in self.vars {
            vars.push((n, Var::from_tensor(&v.as_tensor().to_device(device)?)?));
        }
        Ok(Params {
            arch: self.arch,
            vars,
            dtype: self.dtype,
            device: device.clone(),
        })
    }

    /// Where the parameters live.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The parameters of a lab checkpoint directory (to continue training it).
    pub fn load(dir: &Path, dtype: DType) -> Result<Params> {
        let config_path = dir.join("config.json");
        let text = std::fs::read_to_string(&config_path).map_err(|e| {
            LabError::Invalid(format!(
                "{}: cannot read ({e}); give a checkpoint directory the lab wrote",
                config_path.display()
            ))
        })?;
        let c: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            LabError::Invalid(format!("{}: not valid JSON ({e})", config_path.display()))
        })?;
        let field = |k: &str| -> Result<usize> {
            c.get(k)
                .and_then(|v| v.as_u64())
                .map(|v| v as usize)
                .ok_or_else(|| {
                    LabError::Invalid(format!(
                        "{}: field '{k}' is missing or not a whole number; the lab trains llama configs only",
                        config_path.display()
                    ))
                })
        };
        if c.get("model_type").and_then(|v| v.as_str()) != Some("llama") {
            return Err(LabError::Invalid(format!(
                "{}: model_type must be 'llama' to continue training in the lab",
                config_path.display()
            )));
        }
        let arch = Arch {
            d_model: field("hidden_size")?,
            n_layers: field("num_hidden_layers")?,
            n_heads: field("num_attention_heads")?,
            n_kv_heads: field("num_key_value_heads")?,
            d_mlp: field("intermediate_size")?,
            vocab_size: field("vocab_size")?,
            max_positions: field("max_position_embeddings")?,
            rope_theta: c.get("rope_theta").and_then(|v| v.as_f64()).unwrap_or(1e4),
            rms_norm_eps: c
                .get("rms_norm_eps")
                .and_then(|v| v.as_f64())
                .unwrap_or(1e-6),
        };
        arch.check()?;
        let path = dir.join("model.safetensors");
        let stored = candle_core::safetensors::load(&path, &Device::Cpu).map_err(|e| {
            LabError::Invalid(format!(
                "{}: cannot read ({e}); the checkpoint is incomplete",
                path.display()
            ))
        })?;
        let mut vars = Vec::new();
        for (name, shape, _) in arch.parameters() {
            let t = stored.get(&name).ok_or_else(|| {
                LabError::Invalid(format!("{}: tensor '{name}' is missing", path.display()))
            })?;
            if t.dims() != shape.as_slice() {
                return Err(LabError::Invalid(format!(
                    "{}: tensor '{name}' has shape {:?}, config.json implies {shape:?}",
                    path.display(),
                    t.dims()
                )));
            }
            vars.push((name, Var::from_tensor(&t.to_dtype(dtype)?)?));
        }
        if stored.len() != vars.len() {
            return Err(LabError::Invalid(format!(
                "{}: holds {} tensors, a llama of this shape has {}",
                path.display(),
                stored.len(),
                vars.len()
            )));
        }
        Ok(Params {
            arch,
            vars,
            dtype,
            device: Device::Cpu,
        })
    }

    /// Total number of parameters.
    pub fn count(&self) -> usize {
        self.vars.iter().map(|(_, v)| v.elem_count()).sum()
    }

    /// The variables, by name.
    pub fn vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.vars.iter().map(|(n, v)| (n.as_str(), v))
    }

    /// The model these parameters define, on pretrace's runtime. Built from the variables
    /// themselves, so a forward pass through it is recorded for backpropagation.
    pub fn model(&self) -> Result<Model> {
        let tensors: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().clone()))
            .collect();
        let origin = PathBuf::from("<lab parameters>");
        let weights = Weights::from_memory(&origin, tensors, self.dtype, &self.device)?;
        let config = self.arch.config_json(0, 0);
        Ok(Model::build(&config, &origin, &weights)?)
    }

    /// The same model from a copy of the current values, not recorded for backpropagation: the
    /// forward takes the fused inference kernels.
    pub fn frozen_model(&self) -> Result<Model> {
        let tensors: HashMap<String, Tensor> = self
            .vars
            .iter()
            .map(|(n, v)| (n.clone(), v.as_tensor().detach()))
            .collect();
        let origin = PathBuf::from("<lab parameters>");
        let weights = Weights::from_memory(&origin, tensors, self.dtype, &self.device)?;
        Ok(Model::build(
            &self.arch.config_json(0, 0),
            &origin,
            &weights,
        )?)
    }

    /// Writes a Hugging Face checkpoint directory `dir` (replaced whole, atomically): config.json,
    /// tokenizer.json, tokenizer_config.json and model.safetensors (f32). `meta` goes into the
    /// safetensors metadata beside `format: pt`.
    pub fn save(
        &self,
        dir: &Path,
        tokenizer_json: &str,
        bos_id: u32,
        eos_id: u32,
        meta: &[(&str, String)],
    ) -> Result<()> {
        let io = |p: &Path, e: std::io::Error| {
            LabError::Invalid(format!("{}: cannot write ({e})", p.display()))
        };
        let name = dir
            .file_name()
            .ok_or_else(|| LabError::Invalid(format!("{}: not a directory name", dir.display())))?
            .to_string_lossy()
            .to_string();
        let parent = dir.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| io(parent, e))?;
        let tmp = parent.join(format!(".{name}.partial"));
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        }
        std::fs::create_dir_all(&tmp).map_err(|e| io(&tmp, e))?;
        let config = serde_json::to_string_pretty(&self.arch.config_json(bos_id, eos_id))
            .map_err(|e| LabError::Invalid(e.to_string()))?;
        std::fs::write(tmp.join("config.json"), config + "\n").map_err(|e| io(&tmp, e))?;
        std::fs::write(tmp.join("tokenizer.json"), tokenizer_json).map_err(|e| io(&tmp, e))?;
        let tok_config = serde_json::json!({
            "tokenizer_class": "PreTrainedTokenizerFast",
            "bos_token": crate::tokenizer::EOT,
            "eos_token": crate::tokenizer::EOT,
            "model_max_length": self.arch.max_positions,
        });
        std::fs::write(
            tmp.join("tokenizer_config.json"),
            serde_json::to_string_pretty(&tok_config).unwrap_or_default() + "\n",
        )
        .map_err(|e| io(&tmp, e))?;
        let mut data = Vec::new();
        for (n, v) in &self.vars {
            let t = v.as_tensor().to_dtype(DType::F32)?.flatten_all()?;
            let bytes: Vec<u8> = t
                .to_vec1::<f32>()?
                .iter()
                .flat_map(|x| x.to_le_bytes())
                .collect();
            data.push((n.clone(), v.dims().to_vec(), bytes));
        }
        let views = data
            .iter()
            .map(|(n, s, b)| {
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, s.clone(), b)
                    .map(|v| (n.clone(), v))
            })
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(|e| LabError::Invalid(format!("safetensors: {e}")))?;
        let mut metadata: HashMap<String, String> = meta
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        metadata.insert("format".into(), "pt".into());
        let bytes = safetensors::tensor::serialize(views, Some(metadata))
            .map_err(|e| LabError::Invalid(format!("safetensors: {e}")))?;
        std::fs::write(tmp.join("model.safetensors"), bytes).map_err(|e| io(&tmp, e))?;
        if dir.exists() {
            std::fs::remove_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        std::fs::rename(&tmp, dir).map_err(|e| io(dir, e))?;
        Ok(())
    }
}

/// One training batch: rows of equal length; `targets[r][i]` is the token to predict after
/// `inputs[r][..=i]`, learnt where `weight[r][i]`; `valid` is false at padding.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainBatch {
    pub inputs: Vec<Vec<u32>>,
    pub targets: Vec<Vec<u32>>,
    pub weight: Vec<Vec<bool>>,
    pub valid: Vec<Vec<bool>>,
}

impl TrainBatch {
    /// Windows of `seq + 1` tokens of a stream: predict every next token.
    pub fn windows(stream: &[u32], starts: &[usize], seq: usize) -> TrainBatch {
        let rows: Vec<&[u32]> = starts.iter().map(|&s| &stream[s..s + seq + 1]).collect();
        TrainBatch {
            inputs: rows.iter().map(|r| r[..seq].to_vec()).collect(),
            targets: rows.iter().map(|r| r[1..].to_vec()).collect(),
            weight: vec![vec![true; seq]; rows.len()],
            valid: vec![vec![true; seq]; rows.len()],
        }
    }

    /// Prompt–answer pairs, right-padded with `pad`: only the answer tokens are learnt.
    pub fn supervised(pairs: &[(Vec<u32>, Vec<u32>)], pad: u32) -> Result<TrainBatch> {
        let rows: Vec<Vec<u32>> = pairs
            .iter()
            .map(|(p, a)| p.iter().chain(a).copied().collect())
            .collect();
        if pairs.iter().any(|(p, a)| p.is_empty() || a.is_empty()) {
            return Err(LabError::Invalid(
                "a supervised example needs a prompt and an answer of at least one token".into(),
            ));
        }
        let t = rows.iter().map(|r| r.len() - 1).max().unwrap_or(0);
        let padded = Batch::pad(
            &rows
                .iter()
                .map(|r| r[..r.len() - 1].to_vec())
                .collect::<Vec<_>>(),
            Padding::Right,
            pad,
        )?;
        let mut targets = Vec::new();
        let mut weight = Vec::new();
        for ((p, _), r) in pairs.iter().zip(&rows) {
            let mut tg: Vec<u32> = r[1..].to_vec();
            let mut w: Vec<bool> = (1..r.len()).map(|i| i >= p.len()).collect();
            tg.resize(t, pad);
            w.resize(t, false);
            targets.push(tg);
            weight.push(w);
        }
        Ok(TrainBatch {
            inputs: padded.ids,
            targets,
            weight,
            valid: padded.valid,
        })
    }
}

/// Optimizer and schedule settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// Optimizer steps.
    pub steps: usize,
    /// Peak learning rate.
    pub lr: f64,
    /// Linear warm-up steps from lr/warmup to lr.
    pub warmup: usize,
    /// The cosine decays to `lr · min_lr_ratio` at the last step.
    pub min_lr_ratio: f64,
    pub weight_decay: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Global gradient-norm clipping threshold (0 = off).
    pub clip: f64,
}

impl Settings {
    /// The learning rate of step `step` (0-based): linear warm-up over `warmup` steps, then a
    /// cosine from `lr` down to `lr · min_lr_ratio` at the last step.
    pub fn lr_at(&self, step: usize) -> f64 {
        if step < self.warmup {
            return self.lr * (step + 1) as f64 / self.warmup as f64;
        }
        let span = self.steps.saturating_sub(self.warmup + 1).max(1) as f64;
        let p = ((step - self.warmup) as f64 / span).min(1.0);
        let min = self.lr * self.min_lr_ratio;
        min + 0.5 * (self.lr - min) * (1.0 + (std::f64::consts::PI * p).cos())
    }
}

/// What one optimizer step measured.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepLog {
    /// Steps completed after this one (1-based).
    pub step: usize,
    pub lr: f64,
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
}

/// AdamW over a model's parameters: matrices and embeddings decay, norm weights do not.
pub struct Trainer {
    decay: AdamW,
    no_decay: AdamW,
    pub settings: Settings,
    /// Steps taken.
    pub step: usize,
}

impl Trainer {
    pub fn new(params: &Params, settings: &Settings) -> Result<Trainer> {
        if settings.steps == 0 || settings.lr <= 0.0 || !settings.lr.is_finite() {
            return Err(LabError::Invalid(format!(
                "training needs steps > 0 and a positive learning rate; got steps {} lr {}",
                settings.steps, settings.lr
            )));
        }
        let (mut d, mut nd) = (Vec::new(), Vec::new());
        for (_, v) in params.vars() {
            if v.rank() >= 2 {
                d.push(v.clone());
            } else {
                nd.push(v.clone());
            }
        }
        let p = |wd: f64| ParamsAdamW {
            lr: settings.lr_at(0),
            beta1: settings.beta1,
            beta2: settings.beta2,
            eps: settings.eps,
            weight_decay: wd,
        };
        Ok(Trainer {
            decay: AdamW::new(d, p(settings.weight_decay))?,
            no_decay: AdamW::new(nd, p(0.0))?,
            settings: settings.clone(),
            step: 0,
        })
    }

    /// One optimizer step on `batch`.
    pub fn step(&mut self, params: &Params, batch: &TrainBatch) -> Result<StepLog> {
        let model = params.model()?;
        let value = loss(&model, batch)?;
        let loss_value = value.to_dtype(DType::F64)?.to_scalar::<f64>()?;
        if !loss_value.is_finite() {
            return Err(LabError::Invalid(format!(
                "the loss became {loss_value} at step {}; lower the learning rate",
                self.step + 1
            )));
        }
        let mut grads = value.backward()?;
        let mut sq = 0f64;
        for (_, v) in params.vars() {
            if let Some(g) = grads.get(v.as_tensor()) {
                sq += g
                    .to_dtype(DType::F64)?
                    .sqr()?
                    .sum_all()?
                    .to_scalar::<f64>()?;
            }
        }
        let norm = sq.sqrt();
        let clip = self.settings.clip;
        if clip > 0.0 && norm > clip {
            let f = clip / (norm + 1e-6);
            for (_, v) in params.vars() {
                if let Some(g) = grads.remove(v.as_tensor()) {
                    grads.insert(v.as_tensor(), (g * f)?);
                }
            }
        }
        let lr = self.settings.lr_at(self.step);
        self.decay.set_learning_rate(lr);
        self.no_decay.set_learning_rate(lr);
        self.decay.step(&grads)?;
        self.no_decay.step(&grads)?;
        self.step += 1;
        Ok(StepLog {
            step: self.step,
            lr,
            loss: loss_value,
            grad_norm: norm,
        })
    }
}

/// Mean loss of `params` over batches, without recording gradients.
pub fn evaluate(params: &Params, batches: &[TrainBatch]) -> Result<f64> {
    let model = params.frozen_model()?;
    let mut total = 0f64;
    for b in batches {
        total += loss(&model, b)?.to_dtype(DType::F64)?.to_scalar::<f64>()?;
    }
    Ok(total / batches.len().max(1) as f64)
}

/// Mean next-token cross-entropy over the positions `batch` marks (a scalar tensor).
pub fn loss(model: &Model, batch: &TrainBatch) -> Result<Tensor> {
    let b = batch.inputs.len();
    let t = batch.inputs.first().map_or(0, |r| r.len());
    let input = Batch {
        ids: batch.inputs.clone(),
        valid: batch.valid.clone(),
    };
    let logits = model
        .forward(&input, &mut [], Logits::All, None)?
        .ok_or_else(|| LabError::Invalid("the forward pass returned no logits".into()))?;
    let v = model.config.vocab_size;
    let targets: Vec<u32> = batch.targets.iter().flatten().copied().collect();
    let weights: Vec<f64> = batch
        .weight
        .iter()
        .flatten()
        .map(|&w| if w { 1.0 } else { 0.0 })
        .collect();
    let count: f64 = weights.iter().sum();
    if count == 0.0 {
        return Err(LabError::Invalid(
            "a training batch has no position to learn".into(),
        ));
    }
    if let Some(t) = targets.iter().find(|&&t| t as usize >= v) {
        return Err(LabError::Invalid(format!(
            "target token {t} is outside the vocabulary of {v}"
        )));
    }
    let logits = logits.reshape((b * t, v))?;
    if !logits.device().is_cpu() {
        // On a GPU: log-softmax and a gather as candle's own operations (the same function as
        // the fused kernel, whose gradient autograd derives), in f32.
        let dev = logits.device();
        let lp = candle_nn::ops::log_softmax(&logits.to_dtype(DType::F32)?, 1)?;
        let idx = Tensor::from_vec(targets, (b * t, 1), dev)?;
        let picked = lp.gather(&idx, 1)?.squeeze(1)?;
        let w = Tensor::from_vec(
            weights.iter().map(|&w| w as f32).collect::<Vec<_>>(),
            b * t,
            dev,
        )?;
        let nll = (picked * w)?.neg()?;
        return Ok((nll.sum_all()? / count)?);
    }
    let nll = logits.apply_op1(WeightedNll {
        targets: Arc::new(targets),
        weights: Arc::new(weights),
    })?;
    Ok((nll.sum_all()? / count)?)
}

/// Per row of `[N, V]` logits, `w · (logsumexp(x) − x[target])`, with its gradient
/// `w · (softmax(x) − onehot(target))`: cross-entropy in one pass each way, without the
/// `[N, V]` intermediates of log-softmax and gather. Computed in f64 for f32 and f64 inputs.
struct WeightedNll {
    targets: Arc<Vec<u32>>,
    weights: Arc<Vec<f64>>,
}

/// `(row maximum, log Σ exp(x − max))` of one row.
fn lse(row: impl Iterator<Item = f64> + Clone) -> (f64, f64) {
    let m = row.clone().fold(f64::NEG_INFINITY, f64::max);
    (m, row.map(|x| (x - m).exp()).sum::<f64>().ln())
}

/// `max + log Σ exp(x − max)` of an f32 row, with the vectorized exponential and an f64 sum.
fn lse32(row: &[f32]) -> f64 {
    let m = row.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f64 = row.iter().map(|&x| exp_f32(x - m) as f64).sum();
    m as f64 + sum.ln()
}

impl candle_core::CustomOp1 for WeightedNll {
    fn name(&self) -> &'static str {
        "weighted-nll"
    }
    fn cpu_fwd(
        &self,
        storage: &candle_core::CpuStorage,
        layout: &candle_core::Layout,
    ) -> candle_core::Result<(candle_core::CpuStorage, candle_core::Shape)> {
        use candle_core::CpuStorage as S;
        use rayon::prelude::*;
        let (n, v) = layout.shape().dims2()?;
        if self.targets.len() != n || self.weights.len() != n {
            candle_core::bail!("weighted-nll: {n} rows, {} targets", self.targets.len());
        }
        let Some((a, e)) = layout.contiguous_offsets() else {
            candle_core::bail!("weighted-nll: needs contiguous logits")
        };
        let row_loss = |i: usize, row: &[f64]| -> f64 {
            let w = self.weights[i];
            if w == 0.0 {
                return 0.0;
            }
            let (m, l) = lse(row.iter().copied());
            w * (m + l - row[self.targets[i] as usize])
        };
        Ok(match storage {
            S::F32(x) => {
                let out: Vec<f32> = x[a..e]
                    .par_chunks(v)
                    .enumerate()
                    .map(|(i, r)| {
                        let w = self.weights[i];
                        if w == 0.0 {
                            return 0.0;
                        }
                        (w * (lse32(r) - r[self.targets[i] as usize] as f64)) as f32
                    })
                    .collect();
                (S::F32(out), candle_core::Shape::from(n))
            }
            S::F64(x) => {
                let out: Vec<f64> = x[a..e]
                    .par_chunks(v)
                    .enumerate()
                    .map(|(i, r)| row_loss(i, r))
                    .collect();
                (S::F64(out), candle_core::Shape::from(n))
            }
            _ => candle_core::bail!("weighted-nll: logits must be f32 or f64"),
        })
    }
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        use rayon::prelude::*;
        let (n, v) = arg.dims2()?;
        let g: Vec<f64> = grad_res.to_dtype(DType::F64)?.to_vec1()?;
        if arg.dtype() == DType::F32 {
            // f32 with the vectorized exponential; row statistics in f64.
            let x: Vec<f32> = arg.flatten_all()?.to_vec1()?;
            let mut out = vec![0f32; n * v];
            out.par_chunks_mut(v)
                .zip(x.par_chunks(v))
                .enumerate()
                .for_each(|(i, (o, r))| {
                    let w = self.weights[i] * g[i];
                    if w == 0.0 {
                        return;
                    }
                    let shift = lse32(r) as f32;
                    for (o, &x) in o.iter_mut().zip(r) {
                        *o = w as f32 * exp_f32(x - shift);
                    }
                    o[self.targets[i] as usize] -= w as f32;
                });
            return Ok(Some(Tensor::from_vec(out, (n, v), arg.device())?));
        }
        let x: Vec<f64> = arg.to_dtype(DType::F64)?.flatten_all()?.to_vec1()?;
        let mut out = vec![0f64; n * v];
        out.par_chunks_mut(v)
            .zip(x.par_chunks(v))
            .enumerate()
            .for_each(|(i, (o, r))| {
                let w = self.weights[i] * g[i];
                if w == 0.0 {
                    return;
                }
                let (m, l) = lse(r.iter().copied());
                for (o, &x) in o.iter_mut().zip(r) {
                    *o = w * (x - m - l).exp();
                }
                o[self.targets[i] as usize] -= w;
            });
        Ok(Some(
            Tensor::from_vec(out, (n, v), arg.device())?.to_dtype(arg.dtype())?,
        ))
    }
}

/// Draws `rows` window starts uniformly from a stream of `len` tokens.
pub fn window_starts(rng: &mut SplitMix64, len: usize, seq: usize, rows: usize) -> Vec<usize> {
    let span = len.saturating_sub(seq + 1) + 1;
    (0..rows)
        .map(|_| (rng.next_u64() % span as u64) as usize)
        .collect()
}

/// The checkpoint steps for a run of `steps`: dense early (0, 10, 20, 50, 100), then every 100 (or
/// every `steps/8` rounded to 50 for long runs), and the last step.
pub fn checkpoint_steps(steps: usize) -> Vec<usize> {
    let every = ((steps / 8) / 50 * 50).max(100);
    let mut s: Vec<usize> = [0, 10, 20, 50, 100]
        .into_iter()
        .chain((1..).map(|k| k * every).take_while(|&k| k < steps))
        .filter(|&k| k < steps)
        .collect();
    s.push(steps);
    s.sort_unstable();
    s.dedup();
    s
}
