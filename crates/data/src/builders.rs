//! Builders for the paper's datasets from their public sources. Each takes the source table (any
//! format [`Table`] reads) and returns a [`Dataset`] of `statement,label` rows.

use crate::dataset::Dataset;
use crate::error::Result;
use crate::table::{Table, Value};

/// A small seeded generator (SplitMix64): the same seed gives the same dataset on every machine.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> SplitMix64 {
        SplitMix64(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_f64() * n as f64) as usize % n.max(1)
    }
    /// Fisher–Yates shuffle.
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
    }
}

/// The answers of a TruthfulQA cell: a `"; "`-separated string (TruthfulQA.csv) or a list
/// (the Hugging Face `truthful_qa` generation config).
fn answers(t: &Table, row: usize, col: usize) -> Result<Vec<String>> {
    Ok(match &t.rows[row][col] {
        Value::List(items) => items
            .iter()
            .filter_map(|v| match v {
                Value::Str(s) => Some(s.trim().to_string()),
                _ => None,
            })
            .filter(|s| !s.is_empty())
            .collect(),
        _ => t
            .str_at(row, col)?
            .split("; ")
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
    })
}

/// TruthfulQA → true/false statements, the paper's reliability set.
///
/// Source: `TruthfulQA.csv` from github.com/sylinrl/TruthfulQA, columns `Type, Category, Question,
/// Best Answer, Correct Answers, Incorrect Answers, Source`, answers separated by `"; "` (the Hugging
/// Face `truthful_qa` generation config, with `question, correct_answers, incorrect_answers` lists,
/// works too). Each answer becomes `Q: {question}\tA: {answer}` (a literal TAB, as in the paper's
/// files) with label 1 for a correct answer and 0 for an incorrect one; questions in source order,
/// correct answers first. `questions` keeps a range of question indices (the paper probes on 410
/// questions and evaluates on the other 407).
pub fn truthfulqa(
    t: &Table,
    name: &str,
    questions: Option<std::ops::Range<usize>>,
) -> Result<Dataset> {
    let q = t.column("Question").or_else(|_| t.column("question"))?;
    let correct = t
        .column("Correct Answers")
        .or_else(|_| t.column("correct_answers"))?;
    let incorrect = t
        .column("Incorrect Answers")
        .or_else(|_| t.column("incorrect_answers"))?;
    let range = questions.unwrap_or(0..t.rows.len());
    let mut rows = Vec::new();
    for i in range.filter(|&i| i < t.rows.len()) {
        let question = t.str_at(i, q)?.trim().to_string();
        if question.is_empty() {
            return Err(t.err(i, "column 'Question' is empty"));
        }
        for (col, label) in [(correct, 1), (incorrect, 0)] {
            for a in answers(t, i, col)? {
                rows.push((format!("Q: {question}\tA: {a}"), Some(label)));
            }
        }
    }
    Ok(Dataset::from_pairs(name, rows))
}

/// Flips the case of each ASCII letter with probability `rate`, at least one letter when there is
/// any, so the copy always differs from the original.
pub fn flip_case(text: &str, rate: f64, rng: &mut SplitMix64) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    let letters: Vec<usize> = (0..chars.len())
        .filter(|&i| chars[i].is_ascii_alphabetic())
        .collect();
    let mut flipped = 0;
    for &i in &letters {
        if rng.next_f64() < rate {
            chars[i] = swap_case(chars[i]);
            flipped += 1;
        }
    }
    if flipped == 0 && !letters.is_empty() {
        let i = letters[rng.below(letters.len())];
        chars[i] = swap_case(chars[i]);
    }
    chars.into_iter().collect()
}

fn swap_case(c: char) -> char {
    if c.is_ascii_uppercase() {
        c.to_ascii_lowercase()
    } else {
        c.to_ascii_uppercase()
    }
}

/// SST-2 → the paper's robustness set: each sentence (label 0) and a copy with about `rate` of its
/// letters' case flipped (label 1), seeded.
///
/// Source: GLUE `sst2` (`sentence, label, idx`; Hugging Face `glue/sst2`), or any table with a
/// `sentence` (or `statement`/`text`) column; the sentiment label is not used. Pairs are adjacent
/// (original first) unless `shuffle`, which shuffles all rows with the same seed, as the paper's
/// released file is shuffled.
pub fn sst2_robustness(
    t: &Table,
    name: &str,
    rate: f64,
    seed: u64,
    shuffle: bool,
) -> Result<Dataset> {
    let col = t
        .column("sentence")
        .or_else(|_| t.column("statement"))
        .or_else(|_| t.column("text"))?;
    let mut rng = SplitMix64::new(seed);
    let mut rows = Vec::with_capacity(2 * t.rows.len());
    for i in 0..t.rows.len() {
        let s = t.str_at(i, col)?;
        if s.is_empty() {
            return Err(t.err(i, format!("column '{}' is empty", t.columns[col])));
        }
        let p = flip_case(s, rate, &mut rng);
        rows.push((s.to_string(), Some(0)));
        rows.push((p, Some(1)));
    }
    if shuffle {
        rng.shuffle(&mut rows);
    }
    Ok(Dataset::from_pairs(name, rows))
}

fn truth(t: &Table, row: usize, col: usize) -> Result<bool> {
    match &t.rows[row][col] {
        Value::Bool(b) => Ok(*b),
        Value::Int(i @ (0 | 1)) => Ok(*i == 1),
        Value::Str(s) if s.eq_ignore_ascii_case("true") || s == "1" => Ok(true),
        Value::Str(s) if s.eq_ignore_ascii_case("false") || s == "0" => Ok(false),
        v => Err(t.err(
            row,
            format!(
                "column '{}' should be true or false, found {}",
                t.columns[col],
                v.kind()
            ),
        )),
    }
}

/// PKU-SafeRLHF → safe/unsafe statements for steering.
///
/// Source: PKU-Alignment/PKU-SafeRLHF (`prompt, response_0, response_1, is_response_0_safe,
/// is_response_1_safe`, …). Only prompts whose two responses differ in safety are kept, giving
/// contrastive pairs: `Q: {prompt}\tA: {response}` for the safe response (label 1) then the unsafe
/// one (label 0). Repeated statements are kept once.
pub fn pku_saferlhf(t: &Table, name: &str) -> Result<Dataset> {
    let p = t.column("prompt")?;
    let r = [t.column("response_0")?, t.column("response_1")?];
    let s = [
        t.column("is_response_0_safe")?,
        t.column("is_response_1_safe")?,
    ];
    let mut seen = std::collections::HashSet::new();
    let mut rows = Vec::new();
    for i in 0..t.rows.len() {
        let safe = [truth(t, i, s[0])?, truth(t, i, s[1])?];
        if safe[0] == safe[1] {
            continue;
        }
        let prompt = t.str_at(i, p)?.trim();
        let (good, bad) = if safe[0] { (r[0], r[1]) } else { (r[1], r[0]) };
        let good = format!("Q: {prompt}\tA: {}", t.str_at(i, good)?.trim());
        let bad = format!("Q: {prompt}\tA: {}", t.str_at(i, bad)?.trim());
        if good == bad || seen.contains(&good) || seen.contains(&bad) {
            continue;
        }
        seen.insert(good.clone());
        seen.insert(bad.clone());
        rows.push((good, Some(1)));
        rows.push((bad, Some(0)));
    }
    Ok(Dataset::from_pairs(name, rows))
}
