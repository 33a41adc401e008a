//! GPT-2: learned positions, LayerNorm, tanh-GELU, and Conv1D weights stored as `[in, out]`.
//!
//! Paper: Radford et al., "Language Models are Unsupervised Multitask Learners" (2019).
//! Reference code: transformers `models/gpt2/modeling_gpt2.py`.

use super::{bad, check_heads, layer_norm, parse, ArchSpec, BuildCtx, ModelConfig, Parts};
use crate::error::Result;
use crate::layers::{Act, Attention, Block, Linear, Mlp, Residual};
use candle_core::Tensor;
use serde::Deserialize;

pub const SPEC: ArchSpec = ArchSpec {
    model_types: &["gpt2"],
    build,
};

#[derive(Deserialize, Clone)]
struct Raw {
    n_embd: usize,
    n_layer: usize,
    n_head: usize,
    vocab_size: usize,
    n_positions: usize,
    n_inner: Option<usize>,
    #[serde(default = "default_act")]
    activation_function: String,
    #[serde(default = "default_eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "yes")]
    scale_attn_weights: bool,
    #[serde(default)]
    scale_attn_by_inverse_layer_idx: bool,
    #[serde(default)]
    add_cross_attention: bool,
}
fn default_act() -> String {
    "gelu_new".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// GPT-2's `Conv1D` computes `x @ W + b` with `W: [in, out]`, already the layout [`Linear`] keeps.
fn conv1d_parts(ctx: &BuildCtx, prefix: &str, inp: usize, out: usize) -> Result<(Tensor, Tensor)> {
    let w = ctx
        .weights
        .get(&format!("{prefix}.weight"), &[inp, out], "gpt2")?;
    let b = ctx.weights.get(&format!("{prefix}.bias"), &[out], "gpt2")?;
    Ok((w, b))
}

fn conv1d(ctx: &BuildCtx, prefix: &str, inp: usize, out: usize) -> Result<Linear> {
    let (w, b) = conv1d_parts(ctx, prefix, inp, out)?;
    Linear::from_transposed(w, Some(b))
}

/// `c_attn` produces `[q | k | v]` along its output columns: split them in three.
fn split_c_attn(ctx: &BuildCtx, prefix: &str, d: usize) -> Result<[Linear; 3]> {
    let (w, b) = conv1d_parts(ctx, prefix, d, 3 * d)?;
    let part = |p: usize| -> Result<Linear> {
        Linear::from_transposed(
            w.narrow(1, p * d, d)?,
            Some(b.narrow(0, p * d, d)?.contiguous()?),
        )
    };
    Ok([part(0)?, part(1)?, part(2)?])
}

fn build(ctx: &BuildCtx) -> Result<Parts> {
    let c: Raw = parse(ctx)?;
    let arch = "gpt2";
    let d = c.n_embd;
    let heads = c.n_head;
    check_heads(ctx, d, heads, heads)?;
    if c.add_cross_attention {
        return Err(bad(
            ctx,
            "add_cross_attention = true (an encoder-decoder GPT-2) is not supported",
        ));
    }
    let hd = d / heads;
    let inner = c.n_inner.unwrap_or(4 * d);
    let act = Act::parse(&c.activation_function).map_err(|m| bad(ctx, m))?;
    let w = ctx.weights;
    let p = w
        .detect_prefix(&["transformer.", ""], "wte.weight")
        .unwrap_or("transformer.");
    let embed = w.get(&format!("{p}wte.weight"), &[c.vocab_size, d], arch)?;
    let pos = w.get(&format!("{p}wpe.weight"), &[c.n_positions, d], arch)?;
    let cfg = c.clone();
    let block = move |ctx: &BuildCtx, l: usize| -> Result<Block> {
        let c = &cfg;
        let b = format!("{p}h.{l}");
        let [q, k, v] = split_c_attn(ctx, &format!("{b}.attn.c_attn"), d)?;
        let mut scale = if c.scale_attn_weights {
            1.0 / (hd as f64).sqrt()
        } else {
            1.0
        };
        if c.scale_attn_by_inverse_layer_idx {
            scale /= (l + 1) as f64;
        }
        let mut attn = Attention::new(
            Linear::concat(&[&q, &k, &v])?,
            conv1d(ctx, &format!("{b}.attn.c_proj"), d, d)?,
            heads,
            heads,
            hd,
        );
        attn.scale = scale;
        let mlp = Mlp::Plain {
            fc: conv1d(ctx, &format!("{b}.mlp.c_fc"), d, inner)?,
            proj: conv1d(ctx, &format!("{b}.mlp.c_proj"), inner, d)?,
            act,
        };
        Ok(Block {
            pre_attn: Some(layer_norm(
                ctx,
                arch,
                &format!("{b}.ln_1"),
                d,
                c.layer_norm_epsilon,
            )?),
            attn,
            post_attn: None,
            pre_mlp: Some(layer_norm(
                ctx,
                arch,
                &format!("{b}.ln_2"),
                d,
                c.layer_norm_epsilon,
            )?),
            mlp,
            post_mlp: None,
            residual: Residual::Sequential,
        })
    };
    let final_norm = layer_norm(ctx, arch, &format!("{p}ln_f"), d, c.layer_norm_epsilon)?;
    // GPT-2's head is always the token embedding; causal-mask buffers are recomputed.
    w.ignore(|n| {
        n == "lm_head.weight" || n.ends_with(".attn.bias") || n.ends_with(".attn.masked_bias")
    });
    Ok(Parts {
        config: ModelConfig {
            arch: arch.into(),
            n_layers: c.n_layer,
            d_model: d,
            n_heads: heads,
            n_kv_heads: heads,
            head_dim: hd,
            d_mlp: inner,
            vocab_size: c.vocab_size,
            max_positions: Some(c.n_positions),
            sliding_window: None,
            bos_token_id: super::bos_id(ctx.config),
            eos_token_ids: super::eos_ids(ctx.config),
        },
        lm_head: embed.clone(),
        embed,
        pos_embed: Some(pos),
        block: Box::new(block),
        final_norm,
        rope: None,
    })
}
