//! SentencePiece `tokenizer.model` files (LLaMA-1/2-era repositories ship only these), converted to
//! the fast tokenizer transformers 4.x builds from them: `convert_slow_tokenizer.LlamaConverter`
//! (BPE with merges recovered from the piece scores, or Unigram; byte fallback; control and
//! user-defined pieces as added tokens; the legacy `Prepend("▁")` + `Replace(" ", "▁")` normalizer or
//! the non-legacy `Metaspace(prepend_scheme="first", split=False)` pre-tokenizer).
//!
//! The model file is a protobuf `ModelProto`; the few fields the conversion needs are read here
//! directly (no protobuf dependency).

use serde_json::{json, Value};

/// A piece's type in `ModelProto.SentencePiece.Type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PieceType {
    Normal,
    Unknown,
    Control,
    UserDefined,
    Unused,
    Byte,
}

#[derive(Debug, Clone)]
pub struct Piece {
    pub piece: String,
    pub score: f32,
    pub kind: PieceType,
}

/// The parts of a SentencePiece model the conversion reads.
#[derive(Debug, Clone)]
pub struct SpModel {
    pub pieces: Vec<Piece>,
    /// `trainer_spec.model_type`: 1 Unigram (the default), 2 BPE, 3 word, 4 char.
    pub model_type: u64,
    /// `trainer_spec.unk_piece` (default `<unk>`).
    pub unk_piece: String,
}

/// A protobuf reader over one message.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

enum Field<'a> {
    Varint(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self
                .buf
                .get(self.pos)
                .ok_or("the file ends inside a number")?;
            self.pos += 1;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("a number is longer than 10 bytes".into())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|&e| e <= self.buf.len())
            .ok_or("a field runs past the end of the file")?;
        let s = &self.buf[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// The next field: its number and value, or None at the end.
    fn next(&mut self) -> Result<Option<(u64, Field<'a>)>, String> {
        if self.pos >= self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let (num, wire) = (key >> 3, key & 7);
        let f = match wire {
            0 => Field::Varint(self.varint()?),
            1 => {
                self.take(8)?;
                Field::Varint(0)
            }
            2 => {
                let n = usize::try_from(self.varint()?).map_err(|_| "a length overflows")?;
                Field::Bytes(self.take(n)?)
            }
            5 => {
                let b = self.take(4)?;
                Field::Fixed32(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            }
            w => {
                return Err(format!(
                    "field {num} has wire type {w}, which a ModelProto never uses"
                ))
            }
        };
        Ok(Some((num, f)))
    }
}

fn text(b: &[u8], what: &str) -> Result<String, String> {
    String::from_utf8(b.to_vec()).map_err(|_| format!("{what} is not UTF-8"))
}

impl SpModel {
    /// Parses a `tokenizer.model` file's bytes.
    pub fn parse(bytes: &[u8]) -> Result<SpModel, String> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let mut pieces = Vec::new();
        let mut model_type = 1;
        let mut unk_piece = "<unk>".to_string();
        while let Some((num, f)) = r.next()? {
            match (num, f) {
                (1, Field::Bytes(b)) => {
                    let mut p = Reader { buf: b, pos: 0 };
                    let mut piece = Piece {
                        piece: String::new(),
                        score: 0.0,
                        kind: PieceType::Normal,
                    };
                    while let Some((n, f)) = p.next()? {
                        match (n, f) {
                            (1, Field::Bytes(s)) => piece.piece = text(s, "a piece")?,
                            (2, Field::Fixed32(v)) => piece.score = f32::from_bits(v),
                            (3, Field::Varint(t)) => {
                                piece.kind = match t {
                                    1 => PieceType::Normal,
                                    2 => PieceType::Unknown,
                                    3 => PieceType::Control,
                                    4 => PieceType::UserDefined,
                                    5 => PieceType::Unused,
                                    6 => PieceType::Byte,
                                    t => {
                                        return Err(format!(
                                            "piece {} has unknown type {t}",
                                            pieces.len()
                                        ))
                                    }
                                }
                            }
                            _ => {}
                        }
                    }
                    pieces.push(piece);
                }
                (2, Field::Bytes(b)) => {
                    let mut t = Reader { buf: b, pos: 0 };
                    while let Some((n, f)) = t.next()? {
                        match (n, f) {
                            (3, Field::Varint(v)) => model_type = v,
                            (45, Field::Bytes(s)) => unk_piece = text(s, "trainer_spec.unk_piece")?,
                            _ => {}
                        }
                    }
                }
                _ => {}
            }
        }
        if pieces.len() < 3 {
            return Err(format!(
                "holds {} pieces; a SentencePiece model has at least <unk>, <s> and </s>",
                pieces.len()
            ));
        }
        Ok(SpModel {
            pieces,
            model_type,
            unk_piece,
        })
    }
}

/// How the conversion is asked to behave (`tokenizer_config.json`'s `legacy` and
/// `add_prefix_space`, both true by default in transformers 4.x).
#[derive(Debug, Clone, Copy)]
pub struct LlamaStyle {
    pub legacy: bool,
    pub add_prefix_space: bool,
}

/// BPE merges as transformers' `generate_merges` recovers them from a vocabulary ordered by score:
/// every split of a piece into two pieces of the vocabulary, ordered by score, then by the lengths
/// (in characters) of the two halves, all descending; ties keep vocabulary order.
fn merges(
    vocab: &std::collections::HashMap<&str, usize>,
    scores: &[(String, f32)],
) -> Vec<(String, String)> {
    let mut all: Vec<(&str, &str, f32)> = Vec::new();
    for (piece, score) in scores {
        let mut local: Vec<(&str, &str, f32)> = Vec::new();
        for (i, _) in piece.char_indices().skip(1) {
            let (l, r) = piece.split_at(i);
            if vocab.contains_key(l) && vocab.contains_key(r) {
                local.push((l, r, *score));
            }
        }
        local.sort_by_key(|&(l, r, _)| (vocab[l], vocab[r]));
        all.extend(local);
    }
    let chars = |s: &str| s.chars().count();
    all.sort_by(|a, b| {
        b.2.total_cmp(&a.2)
            .then_with(|| chars(b.0).cmp(&chars(a.0)))
            .then_with(|| chars(b.1).cmp(&chars(a.1)))
    });
    all.into_iter()
        .map(|(l, r, _)| (l.to_string(), r.to_string()))
        .collect()
}

/// The tokenizer.json document transformers 4.x's `LlamaConverter` makes of `m` (no
/// post-processor: the tokenizer class sets it).
pub fn llama_tokenizer_json(m: &SpModel, style: LlamaStyle) -> Result<Value, String> {
    // The first three pieces with score 0 (LlamaConverter.vocab).
    let scores: Vec<(String, f32)> = m
        .pieces
        .iter()
        .enumerate()
        .map(|(i, p)| (p.piece.clone(), if i < 3 { 0.0 } else { p.score }))
        .collect();
    let model = match m.model_type {
        1 => json!({
            "type": "Unigram",
            "unk_id": 0,
            "vocab": scores.iter().map(|(p, s)| json!([p, f64::from(*s)])).collect::<Vec<_>>(),
            "byte_fallback": true,
        }),
        2 => {
            // Later duplicates win, as in a Python dict comprehension.
            let mut ids: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
            for (i, p) in m.pieces.iter().enumerate() {
                ids.insert(p.piece.as_str(), i);
            }
            // Python's dict(vocab_scores): first position, last value.
            let mut seen: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
            let mut unique: Vec<(String, f32)> = Vec::new();
            for (p, s) in &scores {
                match seen.get(p.as_str()) {
                    Some(&k) => unique[k].1 = *s,
                    None => {
                        seen.insert(p.as_str(), unique.len());
                        unique.push((p.clone(), *s));
                    }
                }
            }
            let merges = merges(&ids, &unique);
            let mut vocab = serde_json::Map::new();
            for (i, (p, _)) in scores.iter().enumerate() {
                vocab.insert(p.clone(), json!(i));
            }
            json!({
                "type": "BPE",
                "dropout": null,
                "unk_token": m.unk_piece,
                "continuing_subword_prefix": null,
                "end_of_word_suffix": null,
                "fuse_unk": true,
                "byte_fallback": true,
                "ignore_merges": false,
                "vocab": vocab,
                "merges": merges.iter().map(|(l, r)| json!([l, r])).collect::<Vec<_>>(),
            })
        }
        t => {
            return Err(format!(
                "was trained as SentencePiece model type {t}; only Unigram (1) and BPE (2) models convert to a fast tokenizer"
            ))
        }
    };
    let added: Vec<Value> = m
        .pieces
        .iter()
        .enumerate()
        .filter(|(_, p)| matches!(p.kind, PieceType::Control | PieceType::UserDefined))
        .map(|(i, p)| {
            json!({
                "id": i, "content": p.piece, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": p.kind == PieceType::Control,
            })
        })
        .collect();
    let replace = |from: &str, to: &str| json!({"type": "Replace", "pattern": {"String": from}, "content": to});
    let (normalizer, pre_tokenizer) = if style.legacy {
        let mut seq = Vec::new();
        if style.add_prefix_space {
            seq.push(json!({"type": "Prepend", "prepend": "▁"}));
        }
        seq.push(replace(" ", "▁"));
        (json!({"type": "Sequence", "normalizers": seq}), Value::Null)
    } else {
        let scheme = if style.add_prefix_space {
            "first"
        } else {
            "never"
        };
        (
            Value::Null,
            json!({"type": "Metaspace", "replacement": "▁", "prepend_scheme": scheme, "split": false}),
        )
    };
    let mut decoders = vec![
        replace("▁", " "),
        json!({"type": "ByteFallback"}),
        json!({"type": "Fuse"}),
    ];
    if style.add_prefix_space {
        decoders.push(json!({"type": "Strip", "content": " ", "start": 1, "stop": 0}));
    }
    Ok(json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        "normalizer": normalizer,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": null,
        "decoder": {"type": "Sequence", "decoders": decoders},
        "model": model,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(out: &mut Vec<u8>, s: &str, score: f32, kind: u8) {
        let mut p = vec![0x0a, s.len() as u8];
        p.extend_from_slice(s.as_bytes());
        p.push(0x15);
        p.extend_from_slice(&score.to_le_bytes());
        p.extend_from_slice(&[0x18, kind]);
        out.push(0x0a);
        out.push(p.len() as u8);
        out.extend(p);
    }

    #[test]
    fn parses_pieces_and_trainer_spec() {
        let mut b = Vec::new();
        piece(&mut b, "<unk>", 0.0, 2);
        piece(&mut b, "<s>", 0.0, 3);
        piece(&mut b, "</s>", 0.0, 3);
        piece(&mut b, "▁a", -1.5, 1);
        b.extend_from_slice(&[0x12, 2, 0x18, 2]);
        let m = SpModel::parse(&b).unwrap();
        assert_eq!(m.pieces.len(), 4);
        assert_eq!(m.model_type, 2);
        assert_eq!(m.pieces[3].piece, "▁a");
        assert_eq!(m.pieces[3].score, -1.5);
        assert_eq!(m.pieces[1].kind, PieceType::Control);
    }

    #[test]
    fn truncated_or_tiny_models_are_refused() {
        let mut b = Vec::new();
        piece(&mut b, "<unk>", 0.0, 2);
        assert!(SpModel::parse(&b).unwrap_err().contains("at least"));
        b.truncate(b.len() - 2);
        assert!(SpModel::parse(&b).is_err());
        assert!(SpModel::parse(&[0x0b]).unwrap_err().contains("wire type"));
    }

    #[test]
    fn merges_follow_score_then_length() {
        let scores: Vec<(String, f32)> = ["a", "b", "c", "ab", "bc", "abc"]
            .iter()
            .zip([0.0, 0.0, 0.0, -1.0, -2.0, -3.0])
            .map(|(p, s)| (p.to_string(), s))
            .collect();
        let ids = scores
            .iter()
            .enumerate()
            .map(|(i, (p, _))| (p.as_str(), i))
            .collect();
        let m = merges(&ids, &scores);
        let m: Vec<String> = m.iter().map(|(l, r)| format!("{l} {r}")).collect();
        assert_eq!(m, ["a b", "b c", "ab c", "a bc"]);
    }
}
