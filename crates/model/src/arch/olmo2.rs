//! OLMo-2 (`model_type: olmo2`): RMSNorm applied to what attention and the MLP write (no pre-norms),
//! and RMSNorm over the whole q and k projections (QK-norm).
//!
//! Paper: OLMo Team, "2 OLMo 2 Furious" (2024).
//! Reference code: transformers `models/olmo2/modeling_olmo2.py`.

use super::{
    bad, check_heads, lm_head, parse, rms_norm, rope_spec, ArchSpec, BuildCtx, ModelConfig, Parts,
};
use crate::error::Result;
use crate::layers::{Act, Block, Residual, Rope};
use serde::Deserialize;

pub const SPEC: ArchSpec = ArchSpec {
    model_types: &["olmo2"],
    build,
};

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
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    max_position_embeddings: Option<usize>,
}
fn default_act() -> String {
    "silu".into()
}
fn default_eps() -> f64 {
    1e-5
}

fn build(ctx: &BuildCtx) -> Result<Parts> {
    let c: Raw = parse(ctx)?;
    let arch = "olmo2";
    let d = c.hidden_size;
    let heads = c.num_attention_heads;
    let kv = c.num_key_value_heads.unwrap_or(heads);
    check_heads(ctx, d, heads, kv)?;
    let hd = d / heads;
    let eps = c.rms_norm_eps;
    let act = Act::parse(&c.hidden_act).map_err(|m| bad(ctx, m))?;
    let rope = rope_spec(ctx, &["rope_theta"], None)?;
    let w = ctx.weights;
    let embed = w.get("model.embed_tokens.weight", &[c.vocab_size, d], arch)?;
    let cfg = c.clone();
    let block = move |ctx: &BuildCtx, l: usize| -> Result<Block> {
        let c = &cfg;
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
        attn.qk_norm = Some((
            rms_norm(ctx, arch, &format!("{b}.self_attn.q_norm"), heads * hd, eps)?,
            rms_norm(ctx, arch, &format!("{b}.self_attn.k_norm"), kv * hd, eps)?,
        ));
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
            pre_attn: None,
            attn,
            post_attn: Some(rms_norm(
                ctx,
                arch,
                &format!("{b}.post_attention_layernorm"),
                d,
                eps,
            )?),
            pre_mlp: None,
            mlp,
            post_mlp: Some(rms_norm(
                ctx,
                arch,
                &format!("{b}.post_feedforward_layernorm"),
                d,
                eps,
            )?),
            residual: Residual::Sequential,
        })
    };
    let final_norm = rms_norm(ctx, arch, "model.norm", d, eps)?;
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
        final_norm,
        lm_head,
        rope: Some(Rope::new(hd, rope.theta, rope.linear_factor)),
    })
}
