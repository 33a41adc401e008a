//! The model: loading a checkpoint, the one decoder loop that owns every hook site, and greedy
//! generation with a KV cache.

use crate::arch::{self, BlockFn, BuildCtx, ModelConfig, Parts};
use crate::error::{ModelError, Result};
use crate::hooks::{Hook, SiteCtx};
use crate::layers::{AttnCtx, Block, KvEntry, Linear, Norm, Residual, Rope};
use crate::site::Site;
use crate::tokenizer::Tokenizer;
use crate::weights::{find_weight_files, Weights};
use candle_core::{DType, Device, IndexOp, Tensor};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// How to load a checkpoint.
#[derive(Debug, Clone)]
pub struct LoadOptions {
    /// Compute dtype: F32 (default) or BF16. Weights of any stored dtype are converted to it.
    pub dtype: DType,
    pub device: Device,
    /// A folder to take the tokenizer files from instead of the checkpoint's own (a checkpoint
    /// revision that ships none takes its repository's `main`).
    pub tokenizer: Option<PathBuf>,
}

impl Default for LoadOptions {
    fn default() -> Self {
        LoadOptions {
            dtype: DType::F32,
            device: Device::Cpu,
            tokenizer: None,
        }
    }
}

/// A loaded model. Immutable after loading and shareable across threads; hooks are passed per call.
pub struct Model {
    pub config: ModelConfig,
    embed: Tensor,
    pos_embed: Option<Tensor>,
    blocks: Vec<Block>,
    final_norm: Norm,
    /// `[D, V]` (kept transposed for the matrix kernel).
    lm_head: Linear,
    rope: Option<Rope>,
    pub dtype: DType,
    pub device: Device,
    /// The checkpoint's stored weight dtype.
    pub weight_dtype: DType,
    /// Number of stored parameters.
    pub parameters: usize,
    /// The checkpoint directory or GGUF file.
    pub source: PathBuf,
    /// Set when the model streams its blocks from disk instead of holding them.
    stream: Option<Stream>,
}

/// What a streamed model keeps to build its blocks one at a time.
struct Stream {
    block: BlockFn,
    config: serde_json::Value,
    config_path: PathBuf,
    files: Vec<PathBuf>,
    /// Tensors used (or deliberately ignored) so far, for the end-of-run completeness check.
    used: Mutex<BTreeSet<String>>,
}

/// A block held by the model, or built for one use by a streamed model.
pub enum BlockRef<'a> {
    Held(&'a Block),
    Built(Box<Block>),
}

impl std::ops::Deref for BlockRef<'_> {
    type Target = Block;
    fn deref(&self) -> &Block {
        match self {
            BlockRef::Held(b) => b,
            BlockRef::Built(b) => b,
        }
    }
}

/// A loaded checkpoint: the model and its tokenizer (if it has one).
pub struct Checkpoint {
    pub model: Model,
    pub tokenizer: Option<Tokenizer>,
}

/// Where padding goes in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Padding {
    Left,
    Right,
}

/// A padded batch of token rows.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `[B][T]` token ids, padded.
    pub ids: Vec<Vec<u32>>,
    /// `[B][T]`: false at padding.
    pub valid: Vec<Vec<bool>>,
}

impl Batch {
    /// Pads rows of different lengths to the longest.
    pub fn pad(rows: &[Vec<u32>], side: Padding, pad_id: u32) -> Result<Batch> {
        let t = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        if rows.is_empty() || rows.iter().any(|r| r.is_empty()) {
            return Err(ModelError::Invalid(
                "a batch needs at least one row and every row at least one token".into(),
            ));
        }
        let mut ids = Vec::with_capacity(rows.len());
        let mut valid = Vec::with_capacity(rows.len());
        for r in rows {
            let n = t - r.len();
            let (mut i, mut v) = (Vec::with_capacity(t), Vec::with_capacity(t));
            if side == Padding::Left {
                i.extend(std::iter::repeat_n(pad_id, n));
                v.extend(std::iter::repeat_n(false, n));
            }
            i.extend_from_slice(r);
            v.extend(std::iter::repeat_n(true, r.len()));
            if side == Padding::Right {
                i.extend(std::iter::repeat_n(pad_id, n));
                v.extend(std::iter::repeat_n(false, n));
            }
            ids.push(i);
            valid.push(v);
        }
        Ok(Batch { ids, valid })
    }

    /// One unpadded row.
    pub fn single(ids: &[u32]) -> Result<Batch> {
        Batch::pad(&[ids.to_vec()], Padding::Right, 0)
    }

    pub fn rows(&self) -> usize {
        self.ids.len()
    }
    pub fn len(&self) -> usize {
        self.ids.first().map_or(0, |r| r.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which logits a forward call computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Logits {
    /// `[B, T, V]`.
    All,
    /// `[B, V]` at each row's last valid position.
    Last,
    /// None: the run stops after the deepest site the hooks need and never computes the LM head.
    None,
}

/// Keys and values of earlier calls, for generation.
#[derive(Debug, Default)]
pub struct KvCache {
    layers: Vec<KvEntry>,
    /// `[B][S]`: validity of every cached position.
    valid: Vec<Vec<bool>>,
}

impl KvCache {
    pub fn new() -> KvCache {
        KvCache::default()
    }
    /// Positions held so far.
    pub fn len(&self) -> usize {
        self.valid.first().map_or(0, |r| r.len())
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Rows cached so far.
    pub fn rows(&self) -> usize {
        self.valid.len()
    }

    /// A cache whose row `i` is row `rows[i]` of this one: one prefilled context continued by several
    /// sequences (e.g. every choice of a multiple-choice item).
    pub fn select_rows(&self, rows: &[usize]) -> Result<KvCache> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.valid.len()) {
            return Err(ModelError::Invalid(format!(
                "KV cache row {bad} requested; the cache holds {} rows",
                self.valid.len()
            )));
        }
        let idx: Vec<u32> = rows.iter().map(|&r| r as u32).collect();
        let layers = self
            .layers
            .iter()
            .map(|e| -> Result<KvEntry> {
                Ok(match e {
                    Some((k, v)) => {
                        let i = Tensor::from_vec(idx.clone(), idx.len(), k.device())?;
                        Some((k.index_select(&i, 0)?, v.index_select(&i, 0)?))
                    }
                    None => None,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(KvCache {
            layers,
            valid: rows.iter().map(|&r| self.valid[r].clone()).collect(),
        })
    }
}

/// Large negative additive mask value: exp() of it is exactly 0 in f32, and a row that masks every
/// key (a padding query) stays finite.
const MASKED: f32 = -1e30;

/// State of one forward call that every block shares.
struct Run {
    actx: AttnCtx,
    valid: Vec<Vec<bool>>,
    past_len: usize,
    positions: Vec<Vec<usize>>,
    d: usize,
}

/// Calls every hook at `site` on `x` (`[B·T, D]`, seen by hooks as `[B, T, D]`).
fn at(hooks: &mut [&mut dyn Hook], site: Site, x: Tensor, run: &Run) -> Result<Tensor> {
    if hooks.is_empty() {
        return Ok(x);
    }
    let (b, t) = (run.actx.b, run.actx.t);
    let sctx = SiteCtx {
        valid: &run.valid,
        past_len: run.past_len,
    };
    let mut x = x.reshape((b, t, run.d))?;
    for h in hooks.iter_mut() {
        x = h.at(site, x, &sctx)?;
    }
    Ok(x.reshape((b * t, run.d))?)
}

/// Fails with [`ModelError::NonFinite`] naming `site`, the batch row and the position of the first
/// NaN or infinite value of `x` (`[B·T, ·]` or `[B, T, ·]`, or `[B, V]` last-position logits).
fn check_finite(site: &str, x: &Tensor, run: &Run, last_only: bool) -> Result<()> {
    let Some((i, value)) = crate::finite::first_non_finite(x)? else {
        return Ok(());
    };
    let width = x.dims().last().copied().unwrap_or(1).max(1);
    let (row, position) = if last_only {
        let row = i / width;
        (
            row,
            run.positions
                .get(row)
                .and_then(|p| p.last())
                .copied()
                .unwrap_or(0),
        )
    } else {
        let t = run.actx.t.max(1);
        let (row, j) = (i / width / t, (i / width) % t);
        (
            row,
            run.positions
                .get(row)
                .and_then(|p| p.get(j))
                .copied()
                .unwrap_or(j),
        )
    };
    Err(ModelError::NonFinite {
        site: site.to_string(),
        row,
        position,
        value,
    })
}

/// Blocks a run without logits needs: up to the deepest site any hook asks for.
fn blocks_needed(hooks: &[&mut dyn Hook], n_layers: usize) -> usize {
    hooks
        .iter()
        .map(|h| {
            h.last_site()
                .map_or(n_layers, |s| s.blocks_needed(n_layers))
        })
        .max()
        .unwrap_or(n_layers)
}

impl Model {
    /// Loads a checkpoint directory (config.json + weights + tokenizer.json) or a `.gguf` file.
    pub fn load(path: &Path, opts: &LoadOptions) -> Result<Checkpoint> {
        Self::load_impl(path, opts, false)
    }

    /// Loads only the embeddings, final norm and head of a checkpoint directory; each block is read
    /// from disk when a forward pass reaches it and freed after ([`Model::forward_blockwise`] reads
    /// each block once for many batches). Memory holds one block at a time, so checkpoints larger
    /// than RAM can be run. GGUF files are dequantized into memory whole and load as usual.
    pub fn load_streamed(path: &Path, opts: &LoadOptions) -> Result<Checkpoint> {
        Self::load_impl(path, opts, true)
    }

    /// Whether blocks are read from disk on use.
    pub fn is_streamed(&self) -> bool {
        self.stream.is_some()
    }

    fn load_impl(path: &Path, opts: &LoadOptions, streamed: bool) -> Result<Checkpoint> {
        if !path.exists() {
            return Err(ModelError::NotFound(path.to_path_buf()));
        }
        if path.is_file() {
            if path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("gguf"))
            {
                return Self::load_gguf(path, opts);
            }
            return Err(ModelError::weights(
                path,
                "not a checkpoint: give a directory with config.json or a .gguf file",
            ));
        }
        let config_path = path.join("config.json");
        if !config_path.is_file() {
            return Err(ModelError::config(
                &config_path,
                "config.json is missing; a Hugging Face checkpoint directory needs one",
            ));
        }
        let text = std::fs::read_to_string(&config_path)
            .map_err(|e| ModelError::config(&config_path, format!("cannot read: {e}")))?;
        let config: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
            ModelError::config(
                &config_path,
                format!("not valid JSON ({e}); fix or re-download config.json"),
            )
        })?;
        let files = find_weight_files(path)?;
        let weights = Weights::open(path, &files, opts.dtype, &opts.device)?;
        let model = Self::assemble(&config, &config_path, &weights, streamed.then_some(files))?;
        let model_type = config.get("model_type").and_then(|v| v.as_str());
        let dir = opts.tokenizer.as_deref().unwrap_or(path);
        let tokenizer = model.fit_tokenizer(Tokenizer::from_dir(dir, model_type)?)?;
        Ok(Checkpoint { model, tokenizer })
    }

    fn load_gguf(path: &Path, opts: &LoadOptions) -> Result<Checkpoint> {
        let g = crate::gguf::load(path, &opts.device)?;
        let weights = Weights::from_memory(path, g.tensors, opts.dtype, &opts.device)?;
        let model = Self::build(&g.config, path, &weights)?;
        // A tokenizer beside the file (or the one asked for) takes precedence over the GGUF
        // metadata.
        let beside = match &opts.tokenizer {
            Some(dir) => Tokenizer::from_dir(dir, Some(model.config.arch.as_str()))?,
            None => {
                let p = path.with_file_name("tokenizer.json");
                if p.is_file() {
                    Some(Tokenizer::from_file(&p)?)
                } else {
                    None
                }
            }
        };
        let tokenizer = match model.fit_tokenizer(beside)? {
            Some(t) => Some(t),
            None => match g.tokenizer {
                Some(t) => {
                    t.check_fits(model.config.vocab_size)?;
                    Some(t)
                }
                None => None,
            },
        };
        Ok(Checkpoint { model, tokenizer })
    }

    /// A tokenizer, if there is one, checked against this model's vocabulary and given the
    /// config's BOS/EOS ids.
    fn fit_tokenizer(&self, t: Option<Tokenizer>) -> Result<Option<Tokenizer>> {
        let Some(mut t) = t else { return Ok(None) };
        t.bos_id = self.config.bos_token_id;
        t.eos_id = self.config.eos_token_ids.first().copied();
        t.check_fits(self.config.vocab_size)?;
        Ok(Some(t))
    }

    /// Builds a model from a parsed config and its weights.
    pub fn build(
        config: &serde_json::Value,
        config_path: &Path,
        weights: &Weights,
    ) -> Result<Model> {
        Self::assemble(config, config_path, weights, None)
    }

    /// Builds a model; with `stream_files`, only its stem, the blocks to be read from those files.
    fn assemble(
        config: &serde_json::Value,
        config_path: &Path,
        weights: &Weights,
        stream_files: Option<Vec<PathBuf>>,
    ) -> Result<Model> {
        let model_type = config
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| {
                ModelError::config(
                    config_path,
                    format!(
                        "field 'model_type' is missing; supported: {}",
                        arch::supported().join(", ")
                    ),
                )
            })?;
        let spec = arch::find(model_type).ok_or_else(|| {
            ModelError::config(
                config_path,
                format!(
                    "model_type '{model_type}' is not supported; supported: {}",
                    arch::supported().join(", ")
                ),
            )
        })?;
        let ctx = BuildCtx {
            config,
            config_path,
            weights,
        };
        arch::validate(&ctx)?;
        let Parts {
            config: cfg,
            embed,
            pos_embed,
            block,
            final_norm,
            lm_head,
            rope,
        } = (spec.build)(&ctx)?;
        let (blocks, stream) = match stream_files {
            None => {
                let blocks = (0..cfg.n_layers)
                    .map(|l| block(&ctx, l))
                    .collect::<Result<Vec<_>>>()?;
                weights.finish(&cfg.arch)?;
                (blocks, None)
            }
            Some(files) => (
                Vec::new(),
                Some(Stream {
                    block,
                    config: config.clone(),
                    config_path: config_path.to_path_buf(),
                    files,
                    used: Mutex::new(weights.used_names()),
                }),
            ),
        };
        let config = cfg;
        Ok(Model {
            config,
            embed,
            pos_embed,
            blocks,
            final_norm,
            lm_head: Linear::new(&lm_head, None)?,
            rope,
            dtype: weights.dtype,
            device: weights.device.clone(),
            weight_dtype: weights.stored_dtype().unwrap_or(DType::F32),
            parameters: weights.parameter_count(),
            source: weights.origin.clone(),
            stream,
        })
    }

    /// Block `l`: the held one, or for a streamed model one read from disk now (the weight files
    /// are mapped for the read and unmapped after).
    pub fn block(&self, l: usize) -> Result<BlockRef<'_>> {
        let Some(s) = &self.stream else {
            return self.blocks.get(l).map(BlockRef::Held).ok_or_else(|| {
                ModelError::Invalid(format!(
                    "block {l} does not exist: the model has {} layers",
                    self.config.n_layers
                ))
            });
        };
        let w = Weights::open(&self.source, &s.files, self.dtype, &self.device)?;
        let ctx = BuildCtx {
            config: &s.config,
            config_path: &s.config_path,
            weights: &w,
        };
        let block = (s.block)(&ctx, l)?;
        s.used
            .lock()
            .map_err(|_| ModelError::Invalid("weight bookkeeping poisoned".into()))?
            .extend(w.used_names());
        Ok(BlockRef::Built(Box::new(block)))
    }

    /// For a streamed model that has read every block: fails if a stored tensor was never used
    /// (the check a whole load makes up front). A no-op for a model loaded whole.
    pub fn check_all_weights_used(&self) -> Result<()> {
        let Some(s) = &self.stream else {
            return Ok(());
        };
        let w = Weights::open(&self.source, &s.files, self.dtype, &self.device)?;
        let used = s
            .used
            .lock()
            .map_err(|_| ModelError::Invalid("weight bookkeeping poisoned".into()))?;
        w.mark_used(used.iter().cloned());
        w.finish(&self.config.arch)
    }

    /// Parameters outside the embedding tables (what the FLOP count of a forward pass scales with).
    pub fn non_embedding_parameters(&self) -> usize {
        let emb = self.embed.elem_count() + self.pos_embed.as_ref().map_or(0, |p| p.elem_count());
        self.parameters.saturating_sub(emb)
    }

    /// Runs the decoder over a padded batch.
    ///
    /// Hooks see every site the loop reaches. With [`Logits::None`] the loop stops after the deepest
    /// site any hook asks for. With a `cache`, the batch continues the cached sequences.
    /// Returns logits `[B, T, V]` (All), `[B, V]` (Last) or nothing.
    pub fn forward(
        &self,
        batch: &Batch,
        hooks: &mut [&mut dyn Hook],
        logits: Logits,
        mut cache: Option<&mut KvCache>,
    ) -> Result<Option<Tensor>> {
        let n_layers = self.config.n_layers;
        let blocks_needed = match logits {
            Logits::None => blocks_needed(hooks, n_layers),
            _ => n_layers,
        };
        let run = self.prepare(batch, cache.as_deref_mut())?;
        let mut x = self.embed_batch(batch, &run, hooks)?;
        for l in 0..blocks_needed {
            let block = self.block(l)?;
            let mut entry = cache.as_deref_mut().map(|c| &mut c.layers[l]);
            x = self.block_step(l, &block, x, &run, hooks, &mut entry)?;
        }
        let wants_final = logits != Logits::None
            || hooks
                .iter()
                .any(|h| h.last_site().is_none_or(|s| s == Site::FinalNorm));
        if !wants_final {
            return Ok(None);
        }
        let (b, t, vocab) = (run.actx.b, run.actx.t, self.config.vocab_size);
        let x = at(hooks, Site::FinalNorm, self.final_norm.forward(&x)?, &run)?;
        let x = match logits {
            Logits::None => return Ok(None),
            Logits::All => x,
            Logits::Last => {
                let last: Vec<u32> = batch
                    .valid
                    .iter()
                    .enumerate()
                    .map(|(r, row)| (r * t + row.iter().rposition(|&v| v).unwrap_or(t - 1)) as u32)
                    .collect();
                x.index_select(&Tensor::from_vec(last, b, &self.device)?, 0)?
            }
        };
        // f32 logits, or f64 from an f64 model.
        let out = self.lm_head.forward(&x)?;
        let out = match out.dtype() {
            DType::F64 => out,
            _ => out.to_dtype(DType::F32)?,
        };
        check_finite("logits", &out, &run, logits == Logits::Last)?;
        Ok(Some(match logits {
            Logits::All => out.reshape((b, t, vocab))?,
            _ => out,
        }))
    }

    /// Runs several batches through the blocks the hooks need, block by block: each block is built
    /// once (read from disk, for a streamed model) and every batch passes through it before the next
    /// block is built and this one freed. `hooks[i]` observes `batches[i]`. Activations only: no
    /// final norm, no logits. `on_block(l)` is called after block `l` has seen every batch.
    ///
    /// Peak memory is one block's weights plus every batch's residual stream `[B, T, d_model]`.
    pub fn forward_blockwise(
        &self,
        batches: &[Batch],
        hooks: &mut [&mut dyn Hook],
        on_block: &mut dyn FnMut(usize),
    ) -> Result<()> {
        if hooks.len() != batches.len() {
            return Err(ModelError::Invalid(format!(
                "forward_blockwise needs one hook per batch: {} batches, {} hooks",
                batches.len(),
                hooks.len()
            )));
        }
        let n = blocks_needed(hooks, self.config.n_layers);
        let mut runs = Vec::with_capacity(batches.len());
        let mut xs = Vec::with_capacity(batches.len());
        for (batch, hook) in batches.iter().zip(hooks.iter_mut()) {
            let run = self.prepare(batch, None)?;
            xs.push(self.embed_batch(batch, &run, std::slice::from_mut(hook))?);
            runs.push(run);
        }
        for l in 0..n {
            let block = self.block(l)?;
            for ((x, run), hook) in xs.iter_mut().zip(&runs).zip(hooks.iter_mut()) {
                let cur = x.clone();
                *x = self.block_step(l, &block, cur, run, std::slice::from_mut(hook), &mut None)?;
            }
            drop(block);
            on_block(l);
        }
        Ok(())
    }

    /// The per-call state every block shares: positions, mask, rotary tables, validity.
    fn prepare(&self, batch: &Batch, cache: Option<&mut KvCache>) -> Result<Run> {
        let (b, t) = (batch.rows(), batch.len());
        if b == 0 || t == 0 {
            return Err(ModelError::Invalid(
                "forward needs at least one row of at least one token".into(),
            ));
        }
        let vocab = self.config.vocab_size;
        if let Some(bad) = batch.ids.iter().flatten().find(|&&i| i as usize >= vocab) {
            return Err(ModelError::Invalid(format!(
                "token id {bad} is out of range for a vocabulary of {vocab}"
            )));
        }
        // Cached state: earlier positions and their validity.
        let past_len = cache.as_ref().map_or(0, |c| c.len());
        let key_valid: Vec<Vec<bool>> = match cache {
            Some(c) => {
                if c.layers.is_empty() {
                    c.layers = vec![None; self.config.n_layers];
                    c.valid = vec![Vec::new(); b];
                } else if c.valid.len() != b {
                    return Err(ModelError::Invalid(format!(
                        "KV cache holds {} rows, the batch has {b}",
                        c.valid.len()
                    )));
                }
                for (cv, bv) in c.valid.iter_mut().zip(&batch.valid) {
                    cv.extend_from_slice(bv);
                }
                c.valid.clone()
            }
            None => batch.valid.clone(),
        };
        // Positions count the valid tokens before each one, so left padding does not shift them.
        let positions: Vec<Vec<usize>> = key_valid
            .iter()
            .map(|row| {
                let mut n = 0usize;
                let all: Vec<usize> = row
                    .iter()
                    .map(|&v| {
                        let p = if v { n } else { 0 };
                        n += v as usize;
                        p
                    })
                    .collect();
                all[past_len..].to_vec()
            })
            .collect();
        // Past the model's positions, learned positions do not exist and rotary ones were never
        // trained; the mask's memory also grows with the square of the length.
        if let (Some(max), Some(&hi)) =
            (self.config.max_positions, positions.iter().flatten().max())
        {
            if hi >= max {
                return Err(ModelError::TooLong {
                    tokens: hi + 1,
                    limit: max,
                });
            }
        }
        let (mask, mask_host) = self.mask(&key_valid, &positions, past_len, t)?;
        let rope = match &self.rope {
            Some(r) => Some(r.tables_for(&positions, self.dtype, &self.device)?),
            None => None,
        };
        Ok(Run {
            actx: AttnCtx {
                b,
                t,
                rope,
                mask,
                mask_host,
            },
            valid: batch.valid.clone(),
            past_len,
            positions,
            d: self.config.d_model,
        })
    }

    /// Token (and learned position) embeddings, `[B·T, D]`.
    fn embed_batch(&self, batch: &Batch, run: &Run, hooks: &mut [&mut dyn Hook]) -> Result<Tensor> {
        let (b, t) = (run.actx.b, run.actx.t);
        let flat: Vec<u32> = batch.ids.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, b * t, &self.device)?;
        let mut x = at(hooks, Site::Embed, self.embed.index_select(&ids, 0)?, run)?;
        if let Some(pe) = &self.pos_embed {
            let pos: Vec<u32> = run.positions.iter().flatten().map(|&p| p as u32).collect();
            let pos = Tensor::from_vec(pos, b * t, &self.device)?;
            let p = at(hooks, Site::PosEmbed, pe.index_select(&pos, 0)?, run)?;
            x = (x + p)?;
        }
        Ok(x)
    }

    /// The decoder loop's body: block `l` reads and writes the residual stream `[B·T, D]`, and every
    /// hook site of the block fires here and nowhere else.
    fn block_step(
        &self,
        l: usize,
        block: &Block,
        x: Tensor,
        run: &Run,
        hooks: &mut [&mut dyn Hook],
        entry: &mut Option<&mut KvEntry>,
    ) -> Result<Tensor> {
        let x = at(hooks, Site::ResidPre(l), x, run)?;
        let a = at(
            hooks,
            Site::AttnOut(l),
            block.attn_out(&x, &run.actx, entry)?,
            run,
        )?;
        let x = match block.residual {
            Residual::Sequential => {
                let mid = at(hooks, Site::ResidMid(l), (&x + &a)?, run)?;
                let m = at(hooks, Site::MlpOut(l), block.mlp_out(&mid)?, run)?;
                (&mid + &m)?
            }
            Residual::Parallel => {
                let m = at(hooks, Site::MlpOut(l), block.mlp_out(&x)?, run)?;
                ((&x + &a)? + &m)?
            }
        };
        let x = at(hooks, Site::ResidPost(l), x, run)?;
        check_finite(&Site::ResidPost(l).to_string(), &x, run, false)?;
        Ok(x)
    }

    /// `[B, 1, T, S]` additive mask: causal over the padded layout, padding keys masked, and the
    /// sliding window where the model has one.
    fn mask(
        &self,
        key_valid: &[Vec<bool>],
        positions: &[Vec<usize>],
        past_len: usize,
        t: usize,
    ) -> Result<(Tensor, std::sync::Arc<Vec<f32>>)> {
        let b = key_valid.len();
        let s = past_len + t;
        let window = self.config.sliding_window;
        let mut m = vec![MASKED; b * t * s];
        for (r, kv) in key_valid.iter().enumerate() {
            // Absolute positions of keys, for the sliding window.
            let mut kpos = Vec::with_capacity(s);
            let mut n = 0usize;
            for &v in kv {
                kpos.push(n);
                if v {
                    n += 1;
                }
            }
            for j in 0..t {
                let qi = past_len + j;
                let qp = positions[r][j];
                let row = &mut m[(r * t + j) * s..(r * t + j + 1) * s];
                for (k, slot) in row.iter_mut().enumerate().take(qi + 1) {
                    if kv[k] && window.is_none_or(|w| qp.saturating_sub(kpos[k]) < w) {
                        *slot = 0.0;
                    }
                }
            }
        }
        let tensor = Tensor::from_vec(m.clone(), (b, 1, t, s), &self.device)?;
        Ok((tensor, std::sync::Arc::new(m)))
    }

    /// How many tokens can follow a prompt of `prompt_len` tokens within the model's positions
    /// (`None` when the model declares no limit).
    pub fn generation_room(&self, prompt_len: usize) -> Option<usize> {
        self.config
            .max_positions
            .map(|m| m.saturating_sub(prompt_len))
    }

    /// Greedy decoding with a KV cache. Prompts are left-padded into one batch; hooks apply on every
    /// forward call (prefill and each step). A row stops at one of `stop` ids (kept in its output) or
    /// after `max_new` tokens. Returns each row's new ids.
    pub fn generate(
        &self,
        prompts: &[Vec<u32>],
        max_new: usize,
        stop: &[u32],
        hooks: &mut [&mut dyn Hook],
    ) -> Result<Vec<Vec<u32>>> {
        self.generate_with(prompts, max_new, stop, true, hooks)
    }

    /// [`Model::generate`], with or without the KV cache. Without it every step runs the whole
    /// sequence again, so a hook sees every position in every call (as transformers' `generate`
    /// with `use_cache=False` runs it).
    pub fn generate_with(
        &self,
        prompts: &[Vec<u32>],
        max_new: usize,
        stop: &[u32],
        use_cache: bool,
        hooks: &mut [&mut dyn Hook],
    ) -> Result<Vec<Vec<u32>>> {
        let mut out = vec![Vec::new(); prompts.len()];
        // Generation ends where the model's positions do.
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let max_new = self
            .generation_room(longest)
            .map_or(max_new, |room| max_new.min(room));
        if max_new == 0 {
            return Ok(out);
        }
        let pad = stop.first().copied().unwrap_or(0);
        let mut batch = Batch::pad(prompts, Padding::Left, pad)?;
        let mut cache = KvCache::new();
        let mut done = vec![false; prompts.len()];
        let mut logits = self
            .forward(&batch, hooks, Logits::Last, use_cache.then_some(&mut cache))?
            .ok_or_else(|| ModelError::Invalid("no logits".into()))?;
        for step in 0..max_new {
            let next = argmax_rows(&logits)?;
            for (r, &tok) in next.iter().enumerate() {
                if !done[r] {
                    out[r].push(tok);
                    if stop.contains(&tok) {
                        done[r] = true;
                    }
                }
            }
            if step + 1 == max_new || done.iter().all(|&d| d) {
                break;
            }
            logits = if use_cache {
                let step_batch = Batch {
                    ids: next.iter().map(|&i| vec![i]).collect(),
                    valid: vec![vec![true]; prompts.len()],
                };
                self.forward(&step_batch, hooks, Logits::Last, Some(&mut cache))?
            } else {
                for ((ids, valid), &tok) in batch.ids.iter_mut().zip(&mut batch.valid).zip(&next) {
                    ids.push(tok);
                    valid.push(true);
                }
                self.forward(&batch, hooks, Logits::Last, None)?
            }
            .ok_or_else(|| ModelError::Invalid("no logits".into()))?;
        }
        Ok(out)
    }
}

/// Index of the largest value of each row of `[B, V]` logits; ties go to the lowest index, as
/// `torch.argmax` does.
pub fn argmax_rows(logits: &Tensor) -> Result<Vec<u32>> {
    let (b, _) = logits.dims2()?;
    let mut out = Vec::with_capacity(b);
    for r in 0..b {
        let row: Vec<f32> = logits.i(r)?.to_dtype(DType::F32)?.to_vec1()?;
        let mut best = 0usize;
        for (i, &v) in row.iter().enumerate() {
            if v > row[best] {
                best = i;
            }
        }
        out.push(best as u32);
    }
    Ok(out)
}
