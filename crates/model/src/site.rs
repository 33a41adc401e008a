//! Hook sites: the named places in the decoder loop where activations can be read or changed.
//!
//! The string form is TransformerLens's (`blocks.5.hook_resid_post`), used only where the tensor is
//! the same one TransformerLens exposes under that name.

use crate::error::{ModelError, Result};
use std::fmt;
use std::str::FromStr;

/// A hook site. Block sites carry the layer index.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Site {
    /// Token embeddings, `[B, T, D]` (`hook_embed`).
    Embed,
    /// Learned position embeddings, only for models that have them (`hook_pos_embed`).
    PosEmbed,
    /// The residual stream entering block `l` (`blocks.{l}.hook_resid_pre`).
    ResidPre(usize),
    /// What the attention sub-block writes into the residual stream (`blocks.{l}.hook_attn_out`).
    AttnOut(usize),
    /// The residual stream between attention and MLP; sequential-residual models only
    /// (`blocks.{l}.hook_resid_mid`).
    ResidMid(usize),
    /// What the MLP sub-block writes into the residual stream (`blocks.{l}.hook_mlp_out`).
    MlpOut(usize),
    /// The output of block `l`, before the final norm (`blocks.{l}.hook_resid_post`).
    ResidPost(usize),
    /// The output of the final norm, the LM head's input (`ln_final.hook_normalized`).
    FinalNorm,
}

impl Site {
    /// The block this site belongs to, if any.
    pub fn layer(&self) -> Option<usize> {
        match *self {
            Site::ResidPre(l)
            | Site::AttnOut(l)
            | Site::ResidMid(l)
            | Site::MlpOut(l)
            | Site::ResidPost(l) => Some(l),
            Site::Embed | Site::PosEmbed | Site::FinalNorm => None,
        }
    }

    /// How many blocks must run for this site to fire, out of `n_layers`.
    pub fn blocks_needed(&self, n_layers: usize) -> usize {
        match *self {
            Site::Embed | Site::PosEmbed => 0,
            Site::FinalNorm => n_layers,
            _ => self.layer().map_or(n_layers, |l| l + 1),
        }
    }

    /// The order in which the decoder loop reaches sites.
    pub fn order_key(&self) -> (usize, usize) {
        match *self {
            Site::Embed => (0, 0),
            Site::PosEmbed => (0, 1),
            Site::ResidPre(l) => (l + 1, 0),
            Site::AttnOut(l) => (l + 1, 1),
            Site::ResidMid(l) => (l + 1, 2),
            Site::MlpOut(l) => (l + 1, 3),
            Site::ResidPost(l) => (l + 1, 4),
            Site::FinalNorm => (usize::MAX, 0),
        }
    }

    /// Checks that the site exists in a model with `n_layers` blocks.
    pub fn check(&self, n_layers: usize) -> Result<()> {
        match self.layer() {
            Some(l) if l >= n_layers => Err(ModelError::Invalid(format!(
                "hook site '{self}': layer {l} is out of range; the model has {n_layers} layers (0..={})",
                n_layers.saturating_sub(1)
            ))),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Site::Embed => write!(f, "hook_embed"),
            Site::PosEmbed => write!(f, "hook_pos_embed"),
            Site::ResidPre(l) => write!(f, "blocks.{l}.hook_resid_pre"),
            Site::AttnOut(l) => write!(f, "blocks.{l}.hook_attn_out"),
            Site::ResidMid(l) => write!(f, "blocks.{l}.hook_resid_mid"),
            Site::MlpOut(l) => write!(f, "blocks.{l}.hook_mlp_out"),
            Site::ResidPost(l) => write!(f, "blocks.{l}.hook_resid_post"),
            Site::FinalNorm => write!(f, "ln_final.hook_normalized"),
        }
    }
}

impl FromStr for Site {
    type Err = ModelError;

    /// Strict parsing: anything but a known site name is an error.
    fn from_str(s: &str) -> Result<Site> {
        let bad = || {
            ModelError::Invalid(format!(
                "unknown hook site '{s}'; expected hook_embed, hook_pos_embed, ln_final.hook_normalized or \
                 blocks.L.hook_{{resid_pre,attn_out,resid_mid,mlp_out,resid_post}}"
            ))
        };
        match s {
            "hook_embed" => return Ok(Site::Embed),
            "hook_pos_embed" => return Ok(Site::PosEmbed),
            "ln_final.hook_normalized" => return Ok(Site::FinalNorm),
            _ => {}
        }
        let rest = s.strip_prefix("blocks.").ok_or_else(bad)?;
        let (num, name) = rest.split_once('.').ok_or_else(bad)?;
        if num.is_empty()
            || !num.bytes().all(|c| c.is_ascii_digit())
            || (num.len() > 1 && num.starts_with('0'))
        {
            return Err(bad());
        }
        let l: usize = num.parse().map_err(|_| bad())?;
        Ok(match name {
            "hook_resid_pre" => Site::ResidPre(l),
            "hook_attn_out" => Site::AttnOut(l),
            "hook_resid_mid" => Site::ResidMid(l),
            "hook_mlp_out" => Site::MlpOut(l),
            "hook_resid_post" => Site::ResidPost(l),
            _ => return Err(bad()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_strictness() {
        for s in [
            Site::Embed,
            Site::PosEmbed,
            Site::ResidPre(3),
            Site::AttnOut(0),
            Site::ResidMid(12),
            Site::MlpOut(7),
            Site::ResidPost(31),
            Site::FinalNorm,
        ] {
            assert_eq!(s.to_string().parse::<Site>().unwrap(), s);
        }
        for bad in [
            "blocks.x.hook_resid_post",
            "blocks.1.hook_resid",
            "hook_resid_post",
            "blocks.01.hook_resid_post",
            "",
            "blocks..hook_attn_out",
        ] {
            assert!(bad.parse::<Site>().is_err(), "{bad} parsed");
        }
    }
}
