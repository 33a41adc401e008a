//! A byte-level BPE tokenizer fitted to the lab's corpus with the `tokenizers` crate's trainer (the
//! GPT-2 scheme: byte-level pre-tokenizer without a prefix space, byte-level decoder), with
//! `<|endoftext|>` as its one special token, which also begins every sequence encoded with special
//! tokens.

use crate::{LabError, Result};
use tokenizers::models::bpe::{BpeTrainerBuilder, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, NormalizerWrapper, PostProcessorWrapper, Tokenizer, TokenizerBuilder, TokenizerImpl,
};

/// The end-of-text token, id 0.
pub const EOT: &str = "<|endoftext|>";

/// Trains a tokenizer of at most `vocab` entries on `docs`; returns its `tokenizer.json` text.
pub fn train(docs: &[String], vocab: usize) -> Result<String> {
    let err = |e: tokenizers::Error| LabError::Invalid(format!("tokenizer training: {e}"));
    let mut trainer = BpeTrainerBuilder::new()
        .vocab_size(vocab)
        .min_frequency(2)
        .show_progress(false)
        .special_tokens(vec![AddedToken::from(EOT, true)])
        .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
        .build();
    let mut tok: TokenizerImpl<BPE, NormalizerWrapper, ByteLevel, PostProcessorWrapper, ByteLevel> =
        TokenizerBuilder::new()
            .with_model(BPE::default())
            .with_pre_tokenizer(Some(ByteLevel::new(false, true, true)))
            .with_decoder(Some(ByteLevel::default()))
            .with_normalizer(None)
            .with_post_processor(None)
            .build()
            .map_err(err)?;
    tok.train(&mut trainer, docs.iter()).map_err(err)?;
    // Every document starts with `<|endoftext|>` (the beginning-of-sequence token, as GPT-2's
    // separators are), so encoding with special tokens prepends it.
    let template = TemplateProcessing::builder()
        .try_single(format!("{EOT} $A"))
        .map_err(|e| LabError::Invalid(format!("tokenizer template: {e}")))?
        .special_tokens(vec![(EOT, 0u32)])
        .build()
        .map_err(|e| LabError::Invalid(format!("tokenizer template: {e}")))?;
    tok.with_post_processor(Some(PostProcessorWrapper::Template(template)));
    let json = tok.to_string(false).map_err(err)?;
    // Loadable as a generic tokenizer (what every reader of tokenizer.json uses).
    json.parse::<Tokenizer>().map_err(err)?;
    Ok(json)
}
