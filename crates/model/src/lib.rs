//! # pretrace-model — step 1 of the pipeline: checkpoint files → model → activations
//!
//! Loads Hugging Face checkpoints (safetensors, sharded safetensors, PyTorch `.bin`, sharded `.bin`)
//! and GGUF files, and runs them on the CPU (or, built with the `cuda` feature, on NVIDIA GPUs) through one decoder loop that owns every hook site.
//! Architectures: `llama` (also `mistral`, `qwen2`), `gpt_neox`, `olmo`, `olmo2`, `gpt2`; each lives in
//! one file under `arch/`.
//!
//! ```no_run
//! use pretrace_model::{Batch, Capture, Hook, LoadOptions, Logits, Model, Site};
//! # fn main() -> Result<(), pretrace_model::ModelError> {
//! let ckpt = Model::load("SmolLM2-135M-Instruct.Q4_1.gguf".as_ref(), &LoadOptions::default())?;
//! let ids = ckpt.tokenizer.as_ref().unwrap().encode("Q: Is the sky blue?\tA: yes")?;
//! let mut cap = Capture::new([Site::ResidPost(12)]);
//! // No logits: the run stops after block 12 and never computes the LM head.
//! ckpt.model.forward(&Batch::single(&ids)?, &mut [&mut cap as &mut dyn Hook], Logits::None, None)?;
//! let resid = cap.get(Site::ResidPost(12))?; // [1, T, d_model]
//! # Ok(()) }
//! ```

pub mod arch;
pub mod device;
pub mod error;
pub mod finite;
pub mod gguf;
pub mod hf_tokenizer;
pub mod hooks;
pub mod layers;
pub mod model;
pub mod site;
pub mod spm;
pub mod tokenizer;
pub mod weights;

pub use arch::ModelConfig;
pub use device::DeviceSpec;
pub use error::{ModelError, Result};
pub use hooks::{AddVector, Capture, Hook, Pool, PoolRows, Positions, SiteCtx};
pub use model::{
    argmax_rows, Batch, BlockRef, Checkpoint, KvCache, LoadOptions, Logits, Model, Padding,
};
pub use site::Site;
pub use tokenizer::Tokenizer;
