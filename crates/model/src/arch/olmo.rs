//! OLMo-1 (`model_type: olmo`): LLaMA-like, but its layer norms have neither weight nor bias, and
//! `clip_qkv` clamps the q, k, v projections.
//!
//! Paper: Groeneveld et al., "OLMo: Accelerating the Science of Language Models" (2024).
//! Reference code: transformers `models/olmo/modeling_olmo.py`.

use super::{bad, check_heads, lm_head, parse, rope_spec, ArchSpec, BuildCtx, ModelConfig, Parts};
use crate::error::Result;
use crate::layers::{Act, Block, Norm, Residual, Rope};
use serde::Deserialize;

pub const SPEC: ArchSpec = ArchSpec {
    model_types: &["olmo"],
    build,
};

/// `OlmoLayerNorm` hard-codes eps = 1e-5.
const OLMO_LN_EPS: f64 = 1e-5;

#[derive(Deserialize, Clone)]
struct Raw {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    vocab_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    clip_qkv: Option<f64>,
    max_position_embeddings: Option<usize>,
}
fn default_act() -> String {
    "silu".into()
}

fn build(ctx: &BuildCtx) -> Result<Parts> {
    let c: Raw = parse(ctx)?;
    let arch = "olmo";
    let d = c.hidden_size;
    let heads = c.num_attention_heads;
    let kv = c.num_key_value_heads.unwrap_or(heads);
    check_heads(ctx, d, heads, kv)?;
    let hd = d / heads;
    let act = Act::parse(&c.hidden_act).map_err(|m| bad(ctx, m))?;
    let rope = rope_spec(ctx, &["rope_theta"], None)?;
    let w = ctx.weights;
    let ln = || Norm::layer_no_params(d, OLMO_LN_EPS, w.dtype, &w.device);
    let embed = w.get("model.embed_tokens.weight", &[c.vocab_size, d], arch)?;
    let cfg = c.clone();
    let block = move |ctx: &BuildCtx, l: usize| -> Result<Block> {
        let c = &cfg;
        let ln = || Norm::layer_no_params(d, OLMO_LN_EPS, ctx.weights.dtype, &ctx.weights.device);
        let b = format!("model.layers.{l}");
        let mut attn = super::llama_attention(
            ctx,
            arch,
            &format!("{b}.self_attn"),
            d,
            heads,
            kv,
            hd,
            c.attention_bias,
            c.attention_bias,
        )?;
        attn.clip_qkv = c.clip_qkv;
        let mlp = super::llama_mlp(
            ctx,
            arch,
            &format!("{b}.mlp"),
            d,
            c.intermediate_size,
            false,
            act,
        )?;
        Ok(Block {
            pre_attn: Some(ln()?),
            attn,
            post_attn: None,
            pre_mlp: Some(ln()?),
            mlp,
            post_mlp: None,
            residual: Residual::Sequential,
        })
    };
    let lm_head = lm_head(
        ctx,
        arch,
        "lm_head.weight",
        c.tie_word_embeddings,
        &embed,
        c.vocab_size,
        d,
    )?;
    w.ignore(|n| n.ends_with("rotary_emb.inv_freq"));
    Ok(Parts {
        config: ModelConfig {
            arch: arch.into(),
            n_layers: c.num_hidden_layers,
            d_model: d,
            n_heads: heads,
            n_kv_heads: kv,
            head_dim: hd,
            d_mlp: c.intermediate_size,
            vocab_size: c.vocab_size,
            // transformers' default when config.json has none.
            max_positions: Some(c.max_position_embeddings.unwrap_or(2048)),
            sliding_window: None,
            bos_token_id: super::bos_id(ctx.config),
            eos_token_ids: super::eos_ids(ctx.config),
        },
        embed,
        pos_embed: None,
        block: Box::new(block),
        final_norm: ln()?,
        lm_head,
        rope: Some(Rope::new(hd, rope.theta, rope.linear_factor)),
    })
}
