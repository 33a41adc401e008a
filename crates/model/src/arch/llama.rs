//! LLaMA (also Mistral and Qwen2, whose math is the same up to biases and sliding windows).
//!
//! Paper: Touvron et al., "LLaMA: Open and Efficient Foundation Language Models" (2023).
//! Reference code: transformers `models/llama/modeling_llama.py`, `models/mistral`, `models/qwen2`.

use super::{
    bad, check_heads, lm_head, parse, rms_norm, rope_spec, ArchSpec, BuildCtx, ModelConfig, Parts,
};
use crate::error::Result;
use crate::layers::{Act, Block, Residual, Rope};
use serde::Deserialize;

pub const SPEC: ArchSpec = ArchSpec {
    model_types: &["llama", "mistral", "qwen2"],
    build,
};

#[derive(Deserialize, Clone)]
struct Raw {
    model_type: String,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    vocab_size: usize,
    head_dim: Option<usize>,
    #[serde(default = "default_act")]
    hidden_act: String,
    #[serde(default = "default_eps")]
    rms_norm_eps: f64,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: bool,
    #[serde(default)]
    mlp_bias: bool,
    max_position_embeddings: Option<usize>,
    sliding_window: Option<usize>,
    #[serde(default)]
    use_sliding_window: bool,
    #[serde(default = "one")]
    pretraining_tp: usize,
}
fn default_act() -> String {
    "silu".into()
}
fn default_eps() -> f64 {
    1e-6
}
fn one() -> usize {
    1
}

fn build(ctx: &BuildCtx) -> Result<Parts> {
    let c: Raw = parse(ctx)?;
    let arch = c.model_type.as_str();
    let d = c.hidden_size;
    let heads = c.num_attention_heads;
    let kv = c.num_key_value_heads.unwrap_or(heads);
    check_heads(ctx, d, heads, kv)?;
    let hd = c.head_dim.unwrap_or(d / heads);
    let act = Act::parse(&c.hidden_act).map_err(|m| bad(ctx, m))?;
    let _ = c.pretraining_tp; // only changes how the reference splits its matmuls, not the math
                              // Qwen2 always has q/k/v biases and no o bias; LLaMA/Mistral follow attention_bias.
    let (qkv_bias, o_bias) = if arch == "qwen2" {
        (true, false)
    } else {
        (c.attention_bias, c.attention_bias)
    };
    let sliding_window = match arch {
        "mistral" => c.sliding_window,
        "qwen2" if c.use_sliding_window => return Err(bad(ctx, "qwen2 use_sliding_window = true is not supported; set it to false only if the model was run without it")),
        _ => None,
    };
    let rope = rope_spec(ctx, &["rope_theta"], None)?;
    let w = ctx.weights;
    let p = w
        .detect_prefix(&["model.", ""], "embed_tokens.weight")
        .unwrap_or("model.");
    let embed = w.get(&format!("{p}embed_tokens.weight"), &[c.vocab_size, d], arch)?;
    let cfg = c.clone();
    let block = move |ctx: &BuildCtx, l: usize| -> Result<Block> {
        let c = &cfg;
        let arch = c.model_type.as_str();
        let b = format!("{p}layers.{l}");
        let attn = super::llama_attention(
            ctx,
            arch,
            &format!("{b}.self_attn"),
            d,
            heads,
            kv,
            hd,
            qkv_bias,
            o_bias,
        )?;
        let mlp = super::llama_mlp(
            ctx,
            arch,
            &format!("{b}.mlp"),
            d,
            c.intermediate_size,
            c.mlp_bias,
            act,
        )?;
        Ok(Block {
            pre_attn: Some(rms_norm(
                ctx,
                arch,
                &format!("{b}.input_layernorm"),
                d,
                c.rms_norm_eps,
            )?),
            attn,
            post_attn: None,
            pre_mlp: Some(rms_norm(
                ctx,
                arch,
                &format!("{b}.post_attention_layernorm"),
                d,
                c.rms_norm_eps,
            )?),
            mlp,
            post_mlp: None,
            residual: Residual::Sequential,
        })
    };
    let final_norm = rms_norm(ctx, arch, &format!("{p}norm"), d, c.rms_norm_eps)?;
    let lm_head = lm_head(
        ctx,
        arch,
        "lm_head.weight",
        c.tie_word_embeddings,
        &embed,
        c.vocab_size,
        d,
    )?;
    // Old checkpoints store the rotary table as a buffer; it is recomputed from the config.
    w.ignore(|n| n.ends_with("rotary_emb.inv_freq"));
    Ok(Parts {
        config: ModelConfig {
            arch: arch.to_string(),
            n_layers: c.num_hidden_layers,
            d_model: d,
            n_heads: heads,
            n_kv_heads: kv,
            head_dim: hd,
            d_mlp: c.intermediate_size,
            vocab_size: c.vocab_size,
            // transformers' defaults when config.json has none.
            max_positions: Some(c.max_position_embeddings.unwrap_or(match arch {
                "mistral" => 4096 * 32,
                "qwen2" => 32768,
                _ => 2048,
            })),
            sliding_window,
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
