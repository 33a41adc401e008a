//! GPT-NeoX (Pythia): parallel or sequential residual, partial rotary, LayerNorm with bias, q/k/v
//! fused into one matrix interleaved per head.
//!
//! Paper: Black et al., "GPT-NeoX-20B" (2022); Biderman et al., "Pythia" (2023).
//! Reference code: transformers `models/gpt_neox/modeling_gpt_neox.py`.

use super::{
    bad, check_heads, layer_norm, linear, lm_head, parse, rope_spec, ArchSpec, BuildCtx,
    ModelConfig, Parts,
};
use crate::error::Result;
use crate::layers::{Act, Attention, Block, Linear, Mlp, Residual, Rope};
use candle_core::Tensor;
use serde::Deserialize;

pub const SPEC: ArchSpec = ArchSpec {
    model_types: &["gpt_neox"],
    build,
};

#[derive(Deserialize, Clone)]
struct Raw {
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    vocab_size: usize,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    layer_norm_eps: f64,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default = "yes")]
    use_parallel_residual: bool,
    #[serde(default = "yes")]
    attention_bias: bool,
    max_position_embeddings: Option<usize>,
}
fn default_act() -> String {
    "gelu".into()
}
fn default_eps() -> f64 {
    1e-5
}
fn yes() -> bool {
    true
}

/// Splits the fused `query_key_value` projection. transformers views its output as
/// `[B, T, heads, 3·head_dim]` and takes q, k, v from each head's slice, so the weight's rows are
/// ordered (head, part, dim): reshape to `[heads, 3, head_dim, ·]` and take part 0, 1, 2.
fn split_fused_qkv(w: &Tensor, b: Option<&Tensor>, heads: usize, hd: usize) -> Result<[Linear; 3]> {
    let d_in = w.dim(1)?;
    let w = w.reshape((heads, 3, hd, d_in))?;
    let b = match b {
        Some(b) => Some(b.reshape((heads, 3, hd))?),
        None => None,
    };
    let part = |p: usize| -> Result<Linear> {
        let wp = w
            .narrow(1, p, 1)?
            .contiguous()?
            .reshape((heads * hd, d_in))?;
        let bp = match &b {
            Some(b) => Some(b.narrow(1, p, 1)?.contiguous()?.reshape(heads * hd)?),
            None => None,
        };
        Linear::new(&wp, bp)
    };
    Ok([part(0)?, part(1)?, part(2)?])
}

fn build(ctx: &BuildCtx) -> Result<Parts> {
    let c: Raw = parse(ctx)?;
    let arch = "gpt_neox";
    let d = c.hidden_size;
    let heads = c.num_attention_heads;
    check_heads(ctx, d, heads, heads)?;
    let hd = d / heads;
    let act = Act::parse(&c.hidden_act).map_err(|m| bad(ctx, m))?;
    let rope = rope_spec(ctx, &["rotary_emb_base", "rope_theta"], Some("rotary_pct"))?;
    let rot = (hd as f64 * rope.partial) as usize;
    if rot == 0 || !rot.is_multiple_of(2) {
        return Err(bad(ctx, format!("rotary dimensions = head_dim {hd} × rotary_pct {} = {rot}; must be a positive even number", rope.partial)));
    }
    let w = ctx.weights;
    let embed = w.get("gpt_neox.embed_in.weight", &[c.vocab_size, d], arch)?;
    let cfg = c.clone();
    let block = move |ctx: &BuildCtx, l: usize| -> Result<Block> {
        let c = &cfg;
        let w = ctx.weights;
        let b = format!("gpt_neox.layers.{l}");
        let qkv = format!("{b}.attention.query_key_value");
        let fw = w.get(&format!("{qkv}.weight"), &[3 * d, d], arch)?;
        let fb = if c.attention_bias {
            Some(w.get(&format!("{qkv}.bias"), &[3 * d], arch)?)
        } else {
            None
        };
        let [q, k, v] = split_fused_qkv(&fw, fb.as_ref(), heads, hd)?;
        let o = linear(
            ctx,
            arch,
            &format!("{b}.attention.dense"),
            d,
            d,
            c.attention_bias,
        )?;
        let attn = Attention::new(Linear::concat(&[&q, &k, &v])?, o, heads, heads, hd);
        let mlp = Mlp::Plain {
            fc: linear(
                ctx,
                arch,
                &format!("{b}.mlp.dense_h_to_4h"),
                c.intermediate_size,
                d,
                true,
            )?,
            proj: linear(
                ctx,
                arch,
                &format!("{b}.mlp.dense_4h_to_h"),
                d,
                c.intermediate_size,
                true,
            )?,
            act,
        };
        Ok(Block {
            pre_attn: Some(layer_norm(
                ctx,
                arch,
                &format!("{b}.input_layernorm"),
                d,
                c.layer_norm_eps,
            )?),
            attn,
            post_attn: None,
            pre_mlp: Some(layer_norm(
                ctx,
                arch,
                &format!("{b}.post_attention_layernorm"),
                d,
                c.layer_norm_eps,
            )?),
            mlp,
            post_mlp: None,
            residual: if c.use_parallel_residual {
                Residual::Parallel
            } else {
                Residual::Sequential
            },
        })
    };
    let final_norm = layer_norm(ctx, arch, "gpt_neox.final_layer_norm", d, c.layer_norm_eps)?;
    let lm_head = lm_head(
        ctx,
        arch,
        "embed_out.weight",
        c.tie_word_embeddings,
        &embed,
        c.vocab_size,
        d,
    )?;
    // Causal-mask and rotary buffers that old checkpoints store; both are recomputed.
    w.ignore(|n| {
        n.ends_with(".attention.bias")
            || n.ends_with(".attention.masked_bias")
            || n.ends_with("rotary_emb.inv_freq")
    });
    Ok(Parts {
        config: ModelConfig {
            arch: arch.into(),
            n_layers: c.num_hidden_layers,
            d_model: d,
            n_heads: heads,
            n_kv_heads: heads,
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
        rope: Some(Rope::new(rot, rope.theta, rope.linear_factor)),
    })
}
