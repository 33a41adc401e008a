//! The mini pre-training lab, step one: a generated world and the text about it.
//!
//! [`world::World`] is a seeded world of towns, people and groups. [`corpus`] writes the training
//! text about it, in which each of the paper's five concepts can be learnt from the text:
//! - reliability: the world's facts, stated truly (probes: true vs false statements);
//! - toxicity: forum replies in a civil or a hostile register;
//! - privacy: posts that disclose a person's address and phone, and posts that do not;
//! - fairness: groups mostly described with one attribute of a pair (the stereotype), sometimes the
//!   other;
//! - robustness: some sentences with about 5% of their letters' case flipped.
//!
//! The probe datasets (`statement,label` CSVs, label 1 = the concept is present: true, toxic,
//! disclosing, stereotyped, perturbed) are written from held-out sentence templates, so no probe
//! statement occurs in the training text. [`tokenizer::train`] fits a byte-level BPE tokenizer to
//! the corpus with the `tokenizers` crate's trainer.
//!
//! ```
//! let world = pretrace_lab::world::World::generate(7, &Default::default());
//! let corpus = pretrace_lab::corpus::training_text(&world, 7, 50);
//! assert_eq!(corpus.len(), 50);
//! ```

pub mod corpus;
pub mod pretrain;
pub mod sft;
pub mod tasks;
pub mod tokenizer;
pub mod train;
pub mod world;

#[derive(Debug, thiserror::Error)]
pub enum LabError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] pretrace_store::StoreError),
    #[error(transparent)]
    Model(#[from] pretrace_model::ModelError),
    #[error(transparent)]
    Eval(Box<pretrace_eval::EvalError>),
    #[error("tensor computation: {0}")]
    Candle(#[from] candle_core::Error),
}

impl From<pretrace_eval::EvalError> for LabError {
    fn from(e: pretrace_eval::EvalError) -> LabError {
        LabError::Eval(Box::new(e))
    }
}

pub type Result<T> = std::result::Result<T, LabError>;
