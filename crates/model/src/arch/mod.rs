//! The architecture registry. Each architecture is one file that parses its config.json into a
//! validated [`ModelConfig`] and assembles the shared [`Block`](crate::layers::Block) from its
//! weights; adding one means one new file and one line in [`ARCHS`].

use crate::error::{ModelError, Result};
use crate::layers::{Act, Attention, Block, Linear, Mlp, Norm, Rope};
use crate::weights::Weights;
use candle_core::Tensor;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::path::Path;

pub mod gpt2;
pub mod gpt_neox;
pub mod llama;
pub mod olmo;
pub mod olmo2;

/// One architecture: the `model_type` values it serves and how to build it.
pub struct ArchSpec {
    pub model_types: &'static [&'static str],
    pub build: fn(&BuildCtx) -> Result<Parts>,
}

/// Every supported architecture.
pub const ARCHS: &[ArchSpec] = &[
    llama::SPEC,
    gpt_neox::SPEC,
    olmo::SPEC,
    olmo2::SPEC,
    gpt2::SPEC,
];

/// All supported `model_type` values, for messages.
pub fn supported() -> Vec<&'static str> {
    ARCHS
        .iter()
        .flat_map(|a| a.model_types.iter().copied())
        .collect()
}

/// The spec serving `model_type`.
pub fn find(model_type: &str) -> Option<&'static ArchSpec> {
    ARCHS.iter().find(|a| a.model_types.contains(&model_type))
}

/// What an architecture builder gets.
pub struct BuildCtx<'a> {
    pub config: &'a Value,
    pub config_path: &'a Path,
    pub weights: &'a Weights,
}

/// The validated, architecture-independent description of a model.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ModelConfig {
    /// The `model_type` of config.json.
    pub arch: String,
    pub n_layers: usize,
    pub d_model: usize,
    pub n_heads: usize,
    pub n_kv_heads: usize,
    pub head_dim: usize,
    pub d_mlp: usize,
    pub vocab_size: usize,
    /// Longest sequence the position scheme supports (learned positions), if bounded.
    pub max_positions: Option<usize>,
    /// Keys further back than this are not attended to (Mistral).
    pub sliding_window: Option<usize>,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
}

/// Builds one block from a build context and a layer index.
pub type BlockFn = Box<dyn Fn(&BuildCtx, usize) -> Result<Block> + Send + Sync>;

/// What a builder returns: the model's parts.
pub struct Parts {
    pub config: ModelConfig,
    /// `[V, D]`.
    pub embed: Tensor,
    /// `[P, D]` learned positions (GPT-2).
    pub pos_embed: Option<Tensor>,
    /// Builds block `l` from the weights in the context it is given: called for every layer when a
    /// model loads whole, or one block at a time when it streams (see [`crate::Model::load_streamed`]).
    pub block: BlockFn,
    pub final_norm: Norm,
    /// `[V, D]`; the embedding itself when tied.
    pub lm_head: Tensor,
    pub rope: Option<Rope>,
}

/// Parses config.json into an architecture's raw struct (serde defaults mirror transformers').
pub fn parse<T: DeserializeOwned>(ctx: &BuildCtx) -> Result<T> {
    serde_json::from_value(ctx.config.clone())
        .map_err(|e| ModelError::config(ctx.config_path, format!("{e}; fix config.json")))
}

/// A config error at `ctx`.
pub fn bad(ctx: &BuildCtx, msg: impl Into<String>) -> ModelError {
    ModelError::config(ctx.config_path, msg)
}

/// Largest width, depth, head count or vocabulary accepted from a config: far beyond any model,
/// and small enough that products of two never overflow.
pub const MAX_DIM: u64 = 1 << 24;
/// Largest context length accepted from a config.
pub const MAX_POSITIONS: u64 = 1 << 27;

/// How a numeric config field must look.
enum Num {
    /// A finite number > 0.
    Positive,
    /// A finite number in (0, 1].
    Fraction,
    /// An integer in 1..=max.
    Count(u64),
}

/// Checks, with one strictness for every architecture, the fields config.json may hold that the
/// architectures read leniently or compute with: a field that is present and not null must have
/// its type and a usable value (`rope_theta: "oops"` or `rms_norm_eps: -1` is an error, never a
/// default). Typed fields are checked again by each architecture's serde struct.
pub fn validate(ctx: &BuildCtx) -> Result<()> {
    let Some(obj) = ctx.config.as_object() else {
        return Err(bad(ctx, "config.json is not a JSON object"));
    };
    let rules: &[(&str, Num)] = &[
        ("rope_theta", Num::Positive),
        ("rotary_emb_base", Num::Positive),
        ("rms_norm_eps", Num::Positive),
        ("layer_norm_eps", Num::Positive),
        ("layer_norm_epsilon", Num::Positive),
        ("clip_qkv", Num::Positive),
        ("rotary_pct", Num::Fraction),
        ("partial_rotary_factor", Num::Fraction),
        ("hidden_size", Num::Count(MAX_DIM)),
        ("n_embd", Num::Count(MAX_DIM)),
        ("intermediate_size", Num::Count(MAX_DIM)),
        ("n_inner", Num::Count(MAX_DIM)),
        ("num_hidden_layers", Num::Count(MAX_DIM)),
        ("n_layer", Num::Count(MAX_DIM)),
        ("num_attention_heads", Num::Count(MAX_DIM)),
        ("n_head", Num::Count(MAX_DIM)),
        ("num_key_value_heads", Num::Count(MAX_DIM)),
        ("head_dim", Num::Count(MAX_DIM)),
        ("vocab_size", Num::Count(MAX_DIM)),
        ("max_position_embeddings", Num::Count(MAX_POSITIONS)),
        ("n_positions", Num::Count(MAX_POSITIONS)),
        ("sliding_window", Num::Count(MAX_POSITIONS)),
    ];
    let check = |scope: &str, key: &str, v: &Value, rule: &Num| -> Result<()> {
        let name = format!("{scope}{key}");
        match rule {
            Num::Positive | Num::Fraction => {
                let x = v.as_f64().ok_or_else(|| {
                    bad(
                        ctx,
                        format!(
                            "field '{name}' is {}, expected a number; fix config.json",
                            show_value(v)
                        ),
                    )
                })?;
                let ok = x.is_finite() && x > 0.0 && (!matches!(rule, Num::Fraction) || x <= 1.0);
                if !ok {
                    let want = if matches!(rule, Num::Fraction) {
                        "a number in (0, 1]"
                    } else {
                        "a positive finite number"
                    };
                    return Err(bad(
                        ctx,
                        format!("field '{name}' is {x}, expected {want}; fix config.json"),
                    ));
                }
            }
            Num::Count(max) => {
                let ok = v.as_u64().is_some_and(|n| (1..=*max).contains(&n));
                if !ok {
                    return Err(bad(
                        ctx,
                        format!("field '{name}' is {}, expected an integer from 1 to {max}; fix config.json", show_value(v)),
                    ));
                }
            }
        }
        Ok(())
    };
    for (key, rule) in rules {
        if let Some(v) = obj.get(*key).filter(|v| !v.is_null()) {
            check("", key, v, rule)?;
        }
    }
    for key in ["rope_scaling", "rope_parameters"] {
        match obj.get(key) {
            None | Some(Value::Null) => {}
            Some(Value::Object(s)) => {
                for (k, rule) in [
                    ("rope_theta", Num::Positive),
                    ("factor", Num::Positive),
                    ("partial_rotary_factor", Num::Fraction),
                ] {
                    if let Some(v) = s.get(k).filter(|v| !v.is_null()) {
                        check(&format!("{key}."), k, v, &rule)?;
                    }
                }
            }
            Some(v) => {
                return Err(bad(
                    ctx,
                    format!(
                        "field '{key}' is {}, expected an object or null; fix config.json",
                        show_value(v)
                    ),
                ))
            }
        }
    }
    let token_id = |v: &Value| v.as_u64().is_some_and(|n| n <= u32::MAX as u64);
    if let Some(v) = obj.get("bos_token_id").filter(|v| !v.is_null()) {
        if !token_id(v) {
            return Err(bad(
                ctx,
                format!(
                    "field 'bos_token_id' is {}, expected a token id or null; fix config.json",
                    show_value(v)
                ),
            ));
        }
    }
    match obj.get("eos_token_id") {
        None | Some(Value::Null) => {}
        Some(Value::Array(a)) if a.iter().all(token_id) => {}
        Some(v) if token_id(v) => {}
        Some(v) => {
            return Err(bad(ctx, format!("field 'eos_token_id' is {}, expected a token id, a list of them, or null; fix config.json", show_value(v))))
        }
    }
    Ok(())
}

/// A JSON value as it may appear in a one-line message.
fn show_value(v: &Value) -> String {
    let s = match v {
        Value::String(s) => format!("the string \"{s}\""),
        other => other.to_string(),
    };
    pretrace_core::shown(&s, 60)
}

/// Rotary settings from either the transformers 5 `rope_parameters` object or the older
/// `rope_theta` / `rope_scaling` / `rotary_emb_base` / `rotary_pct` keys.
pub struct RopeSpec {
    pub theta: f64,
    pub linear_factor: f64,
    pub partial: f64,
}

pub fn rope_spec(
    ctx: &BuildCtx,
    theta_keys: &[&str],
    partial_key: Option<&str>,
) -> Result<RopeSpec> {
    let c = ctx.config;
    let mut spec = RopeSpec {
        theta: 10000.0,
        linear_factor: 1.0,
        partial: 1.0,
    };
    for k in theta_keys {
        if let Some(v) = c.get(*k).and_then(Value::as_f64) {
            spec.theta = v;
        }
    }
    if let Some(k) = partial_key {
        if let Some(v) = c.get(k).and_then(Value::as_f64) {
            spec.partial = v;
        }
    }
    let scaling = c
        .get("rope_parameters")
        .filter(|v| !v.is_null())
        .or_else(|| c.get("rope_scaling").filter(|v| !v.is_null()));
    if let Some(s) = scaling {
        if let Some(v) = s.get("rope_theta").and_then(Value::as_f64) {
            spec.theta = v;
        }
        if let Some(v) = s.get("partial_rotary_factor").and_then(Value::as_f64) {
            spec.partial = v;
        }
        let kind = s
            .get("rope_type")
            .or_else(|| s.get("type"))
            .and_then(Value::as_str)
            .unwrap_or("default");
        match kind {
            "default" => {}
            "linear" => {
                spec.linear_factor = s
                    .get("factor")
                    .and_then(Value::as_f64)
                    .ok_or_else(|| bad(ctx, "rope scaling 'linear' needs a numeric 'factor'"))?;
            }
            other => {
                return Err(bad(
                    ctx,
                    format!(
                        "rope scaling type '{other}' is not supported; supported: default, linear"
                    ),
                ))
            }
        }
    }
    Ok(spec)
}

/// Loads `{prefix}.weight` `[out, in]` and, if `bias`, `{prefix}.bias` `[out]`.
pub fn linear(
    ctx: &BuildCtx,
    arch: &str,
    prefix: &str,
    out: usize,
    inp: usize,
    bias: bool,
) -> Result<Linear> {
    let w = ctx
        .weights
        .get(&format!("{prefix}.weight"), &[out, inp], arch)?;
    let b = if bias {
        Some(ctx.weights.get(&format!("{prefix}.bias"), &[out], arch)?)
    } else {
        None
    };
    Linear::new(&w, b)
}

/// Attention with LLaMA's projection names, `{prefix}.{q,k,v,o}_proj`, q/k/v fused into one product.
#[allow(clippy::too_many_arguments)]
pub fn llama_attention(
    ctx: &BuildCtx,
    arch: &str,
    prefix: &str,
    d: usize,
    heads: usize,
    kv: usize,
    hd: usize,
    qkv_bias: bool,
    o_bias: bool,
) -> Result<Attention> {
    let proj =
        |name: &str, out: usize| linear(ctx, arch, &format!("{prefix}.{name}"), out, d, qkv_bias);
    let qkv = Linear::concat(&[
        &proj("q_proj", heads * hd)?,
        &proj("k_proj", kv * hd)?,
        &proj("v_proj", kv * hd)?,
    ])?;
    let o = linear(
        ctx,
        arch,
        &format!("{prefix}.o_proj"),
        d,
        heads * hd,
        o_bias,
    )?;
    Ok(Attention::new(qkv, o, heads, kv, hd))
}

/// A gated MLP with LLaMA's names, `{prefix}.{gate,up,down}_proj`.
pub fn llama_mlp(
    ctx: &BuildCtx,
    arch: &str,
    prefix: &str,
    d: usize,
    inter: usize,
    bias: bool,
    act: Act,
) -> Result<Mlp> {
    let gate = linear(ctx, arch, &format!("{prefix}.gate_proj"), inter, d, bias)?;
    let up = linear(ctx, arch, &format!("{prefix}.up_proj"), inter, d, bias)?;
    let down = linear(ctx, arch, &format!("{prefix}.down_proj"), d, inter, bias)?;
    Mlp::gated(gate, up, down, act)
}

/// Loads an RMSNorm `{prefix}.weight` `[d]`.
pub fn rms_norm(ctx: &BuildCtx, arch: &str, prefix: &str, d: usize, eps: f64) -> Result<Norm> {
    Ok(Norm::Rms {
        w: ctx.weights.get(&format!("{prefix}.weight"), &[d], arch)?,
        eps,
    })
}

/// Loads a LayerNorm `{prefix}.weight`, `{prefix}.bias` `[d]`.
pub fn layer_norm(ctx: &BuildCtx, arch: &str, prefix: &str, d: usize, eps: f64) -> Result<Norm> {
    Ok(Norm::Layer {
        w: ctx.weights.get(&format!("{prefix}.weight"), &[d], arch)?,
        b: ctx.weights.get(&format!("{prefix}.bias"), &[d], arch)?,
        eps,
    })
}

/// The LM head: `lm_head.weight` (or `name`), or the embedding when tied.
pub fn lm_head(
    ctx: &BuildCtx,
    arch: &str,
    name: &str,
    tied: bool,
    embed: &Tensor,
    vocab: usize,
    d: usize,
) -> Result<Tensor> {
    if tied {
        // A tied checkpoint may still store a copy of the head; it is the same matrix.
        ctx.weights.ignore(|n| n == name);
        Ok(embed.clone())
    } else {
        ctx.weights.get(name, &[vocab, d], arch)
    }
}

/// `eos_token_id` may be an integer or a list.
pub fn eos_ids(v: &Value) -> Vec<u32> {
    match v.get("eos_token_id") {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(Value::as_u64)
            .map(|x| x as u32)
            .collect(),
        _ => Vec::new(),
    }
}

pub fn bos_id(v: &Value) -> Option<u32> {
    v.get("bos_token_id")
        .and_then(Value::as_u64)
        .map(|x| x as u32)
}

/// Checks head arithmetic common to every architecture.
pub fn check_heads(ctx: &BuildCtx, d: usize, heads: usize, kv: usize) -> Result<()> {
    if heads == 0 || kv == 0 || !heads.is_multiple_of(kv) {
        return Err(bad(ctx, format!("num_attention_heads ({heads}) must be a positive multiple of num_key_value_heads ({kv})")));
    }
    if d == 0 {
        return Err(bad(ctx, "hidden_size must be positive"));
    }
    Ok(())
}
