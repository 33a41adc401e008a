//! Structured generators: inputs that keep a format's shape (a JSON document, a safetensors header,
//! a GGUF header, a pickle inside its zip, a table) and put arbitrary values in it, drawn with the
//! `arbitrary` crate from the engine's random bytes.

use crate::engine::{bytes, chance, mutate, Rng, INTERESTING, INTERESTING_TEXT};
use arbitrary::Unstructured;
use serde_json::{json, Map, Value};

/// Random bytes for `arbitrary` to draw from.
pub fn entropy(rng: &mut Rng, n: usize) -> Vec<u8> {
    bytes(rng, n)
}

/// An arbitrary JSON leaf: interesting numbers and words, arbitrary strings, floats and integers.
pub fn leaf(u: &mut Unstructured, words: &[&str]) -> Value {
    match u.int_in_range(0u8..=9).unwrap_or(0) {
        0 => Value::Null,
        1 => json!(u.arbitrary::<bool>().unwrap_or(false)),
        2 => json!(u.arbitrary::<i64>().unwrap_or(-1)),
        3 => json!(INTERESTING[u.choose_index(INTERESTING.len()).unwrap_or(0)]),
        4 => {
            let f = u.arbitrary::<f64>().unwrap_or(0.5);
            serde_json::Number::from_f64(f).map_or(json!(-1e308), Value::Number)
        }
        5 => json!(u.arbitrary::<String>().unwrap_or_default()),
        6 if !words.is_empty() => json!(words[u.choose_index(words.len()).unwrap_or(0)]),
        7 => json!(u.int_in_range(-3i64..=70000).unwrap_or(0)),
        8 => json!([1e39, -1e4, 0.0, -0.0, 1e-45][u.choose_index(5).unwrap_or(0)]),
        _ => {
            // The text of an interesting token, as a string.
            json!(INTERESTING_TEXT[u.choose_index(INTERESTING_TEXT.len()).unwrap_or(0)])
        }
    }
}

/// An arbitrary JSON value up to `depth` levels deep.
pub fn value(u: &mut Unstructured, words: &[&str], depth: u32) -> Value {
    if depth == 0 || u.ratio(2u8, 3).unwrap_or(true) {
        return leaf(u, words);
    }
    if u.arbitrary::<bool>().unwrap_or(false) {
        let n = u.int_in_range(0usize..=6).unwrap_or(0);
        Value::Array((0..n).map(|_| value(u, words, depth - 1)).collect())
    } else {
        let n = u.int_in_range(0usize..=4).unwrap_or(0);
        let mut m = Map::new();
        for _ in 0..n {
            m.insert(key(u, words), value(u, words, depth - 1));
        }
        Value::Object(m)
    }
}

fn key(u: &mut Unstructured, words: &[&str]) -> String {
    if !words.is_empty() && u.ratio(3u8, 4).unwrap_or(true) {
        words[u.choose_index(words.len()).unwrap_or(0)].to_string()
    } else {
        u.arbitrary::<String>().unwrap_or_default()
    }
}

/// Every object key in `v`, for use as the vocabulary of new keys.
pub fn keys_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if !out.contains(k) {
                    out.push(k.clone());
                }
                keys_of(x, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| keys_of(x, out)),
        _ => {}
    }
}

/// One structural change at a random place in `v`: a value replaced, a key removed or added, an
/// array grown, shrunk or an element replaced.
pub fn mutate_json(v: &mut Value, u: &mut Unstructured, words: &[&str]) {
    // Go down to a random node, then change it.
    let deeper = u.ratio(3u8, 4).unwrap_or(false);
    match v {
        Value::Object(m) if deeper && !m.is_empty() => {
            let i = u.choose_index(m.len()).unwrap_or(0);
            if let Some(x) = m.values_mut().nth(i) {
                return mutate_json(x, u, words);
            }
        }
        Value::Array(a) if deeper && !a.is_empty() => {
            let i = u.choose_index(a.len()).unwrap_or(0);
            return mutate_json(&mut a[i], u, words);
        }
        _ => {}
    }
    let node = v;
    match node {
        Value::Object(m) => match u.int_in_range(0u8..=3).unwrap_or(0) {
            0 if !m.is_empty() => {
                let i = u.choose_index(m.len()).unwrap_or(0);
                let k = m.keys().nth(i).cloned().unwrap_or_default();
                m.remove(&k);
            }
            1 if !m.is_empty() => {
                let i = u.choose_index(m.len()).unwrap_or(0);
                let k = m.keys().nth(i).cloned().unwrap_or_default();
                m.insert(k, value(u, words, 2));
            }
            2 => {
                m.insert(key(u, words), value(u, words, 2));
            }
            _ => *node = value(u, words, 2),
        },
        Value::Array(a) => match u.int_in_range(0u8..=4).unwrap_or(0) {
            0 if !a.is_empty() => {
                let i = u.choose_index(a.len()).unwrap_or(0);
                a.remove(i);
            }
            1 if !a.is_empty() => {
                let i = u.choose_index(a.len()).unwrap_or(0);
                a[i] = leaf(u, words);
            }
            2 if !a.is_empty() => {
                let i = u.choose_index(a.len()).unwrap_or(0);
                let x = a[i].clone();
                a.insert(i, x);
            }
            3 => a.push(value(u, words, 1)),
            _ => *node = value(u, words, 2),
        },
        _ => *node = value(u, words, 2),
    }
}

/// A JSON seed with 1–4 structural changes, serialized compactly or pretty.
pub fn json_variant(rng: &mut Rng, seed: &Value, words: &[&str]) -> Vec<u8> {
    let raw = entropy(rng, 2048);
    let mut u = Unstructured::new(&raw);
    let mut v = seed.clone();
    for _ in 0..1 + rng.below(4) {
        mutate_json(&mut v, &mut u, words);
    }
    if chance(rng, 0.5) {
        serde_json::to_vec(&v).unwrap_or_default()
    } else {
        serde_json::to_vec_pretty(&v).unwrap_or_default()
    }
}

/// Words safetensors headers are made of.
pub const SAFETENSORS_WORDS: &[&str] = &[
    "dtype",
    "shape",
    "data_offsets",
    "__metadata__",
    "F32",
    "F16",
    "BF16",
    "F64",
    "I64",
    "I32",
    "I8",
    "U8",
    "BOOL",
    "F8_E4M3",
    "F8_E5M2",
    "F4",
    "Q4",
    "",
];

/// A safetensors file whose header was changed structurally (and sometimes its length prefix or
/// its data): the JSON stays JSON, the values are arbitrary.
pub fn safetensors_variant(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let n = seed.get(..8).map_or(0, |b| {
        u64::from_le_bytes(b.try_into().unwrap_or([0; 8])) as usize
    });
    let (header, data) = match seed.get(8..8usize.saturating_add(n)) {
        Some(h) => (h, &seed[8 + n..]),
        None => return seed.to_vec(),
    };
    let Ok(mut v) = serde_json::from_slice::<Value>(header) else {
        return seed.to_vec();
    };
    let mut words: Vec<String> = SAFETENSORS_WORDS.iter().map(|s| s.to_string()).collect();
    keys_of(&v, &mut words);
    let words: Vec<&str> = words.iter().map(String::as_str).collect();
    let raw = entropy(rng, 2048);
    let mut u = Unstructured::new(&raw);
    for _ in 0..1 + rng.below(3) {
        mutate_json(&mut v, &mut u, &words);
    }
    let mut h = serde_json::to_vec(&v).unwrap_or_default();
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut len = h.len() as u64;
    if chance(rng, 0.1) {
        len = INTERESTING[rng.below(INTERESTING.len())];
    }
    let mut out = len.to_le_bytes().to_vec();
    out.extend_from_slice(&h);
    let mut data = data.to_vec();
    match rng.below(6) {
        0 => data.truncate(rng.below(data.len() + 1)),
        1 => {
            let n = 1 + rng.below(64);
            data.extend(bytes(rng, n))
        }
        _ => {}
    }
    out.extend_from_slice(&data);
    out
}

/// A pickle opcode with arbitrary arguments: what `torch.load`'s unpickler meets in a damaged or
/// hostile `data.pkl`.
fn pickle_op(rng: &mut Rng) -> Vec<u8> {
    let big = INTERESTING[rng.below(INTERESTING.len())];
    match rng.below(18) {
        0 => vec![b'K', rng.next_u64() as u8],
        1 => {
            let mut v = vec![b'M'];
            v.extend_from_slice(&(big as u16).to_le_bytes());
            v
        }
        2 => {
            let mut v = vec![b'J'];
            v.extend_from_slice(&(big as u32).to_le_bytes());
            v
        }
        3 => {
            let n = rng.below(12);
            let s = bytes(rng, n);
            let mut v = vec![b'X'];
            let n = if chance(rng, 0.2) {
                big as u32
            } else {
                s.len() as u32
            };
            v.extend_from_slice(&n.to_le_bytes());
            v.extend_from_slice(&s);
            v
        }
        4 => b"(".to_vec(),
        5 => b"t".to_vec(),
        6 => b"R".to_vec(),
        7 => {
            let g: &[&[u8]] = &[
                b"ctorch._utils\n_rebuild_tensor_v2\n",
                b"ctorch\nFloatStorage\n",
                b"ctorch\nHalfStorage\n",
                b"ctorch\nBFloat16Storage\n",
                b"ccollections\nOrderedDict\n",
                b"cos\nsystem\n",
                b"c\n\n",
            ];
            g[rng.below(g.len())].to_vec()
        }
        8 => vec![b'q', rng.next_u64() as u8],
        9 => vec![b'h', rng.next_u64() as u8],
        10 => b"}".to_vec(),
        11 => b"]".to_vec(),
        12 => b"e".to_vec(),
        13 => b"u".to_vec(),
        14 => b".".to_vec(),
        15 => vec![0x80, rng.below(6) as u8],
        16 => vec![[0x85u8, 0x86, 0x87, b'Q', b'0', b'2'][rng.below(6)]],
        _ => {
            let mut v = vec![0x8a, 8];
            v.extend_from_slice(&big.to_le_bytes());
            v
        }
    }
}

/// A PyTorch `.bin` zip whose `data.pkl` (or a storage record) was changed, rewritten as a valid
/// zip: the damage reaches the unpickler instead of stopping at the zip reader.
pub fn torch_zip_variant(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    use std::io::{Read, Write};
    let Ok(mut zin) = zip::ZipArchive::new(std::io::Cursor::new(seed)) else {
        return seed.to_vec();
    };
    let mut entries: Vec<(String, Vec<u8>)> = Vec::new();
    for i in 0..zin.len() {
        let Ok(mut f) = zin.by_index(i) else {
            return seed.to_vec();
        };
        let mut b = Vec::new();
        if f.read_to_end(&mut b).is_err() {
            return seed.to_vec();
        }
        entries.push((String::from_utf8_lossy(f.name_raw()).into_owned(), b));
    }
    let pkl = entries.iter().position(|(n, _)| n.ends_with("data.pkl"));
    let target = match pkl {
        Some(p) if chance(rng, 0.8) => p,
        _ if !entries.is_empty() => rng.below(entries.len()),
        _ => return seed.to_vec(),
    };
    let other = entries[target].1.clone();
    let data = &mut entries[target].1;
    for _ in 0..1 + rng.below(3) {
        if Some(target) == pkl && chance(rng, 0.6) {
            let at = rng.below(data.len() + 1);
            let op = pickle_op(rng);
            data.splice(at..at, op);
        } else {
            mutate(rng, data, &other, false);
        }
    }
    if chance(rng, 0.1) {
        entries.remove(rng.below(entries.len()));
    }
    let mut out = std::io::Cursor::new(Vec::new());
    {
        let mut w = zip::ZipWriter::new(&mut out);
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for (name, b) in &entries {
            if w.start_file(name.as_str(), opts).is_err() || w.write_all(b).is_err() {
                return seed.to_vec();
            }
        }
        if w.finish().is_err() {
            return seed.to_vec();
        }
    }
    out.into_inner()
}

/// A TOML document for a JSON value whose top level is a table (null values are left out).
pub fn toml_text(v: &Value) -> String {
    fn inline(v: &Value) -> Option<String> {
        Some(match v {
            Value::Null => return None,
            Value::Bool(b) => b.to_string(),
            Value::Number(n) => match n.as_f64() {
                Some(f) if n.is_f64() && f.fract() == 0.0 && f.abs() < 1e15 => format!("{f:.1}"),
                _ => n.to_string(),
            },
            Value::String(s) => serde_json::to_string(s).unwrap_or_default(),
            Value::Array(a) => format!(
                "[{}]",
                a.iter().filter_map(inline).collect::<Vec<_>>().join(", ")
            ),
            Value::Object(m) => format!(
                "{{{}}}",
                m.iter()
                    .filter_map(|(k, x)| Some(format!("{} = {}", quote(k), inline(x)?)))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        })
    }
    fn quote(k: &str) -> String {
        serde_json::to_string(k).unwrap_or_default()
    }
    let Value::Object(top) = v else {
        return inline(v).unwrap_or_default();
    };
    let mut out = String::new();
    // Plain keys first, then tables, then arrays of tables.
    for (k, x) in top {
        let table = x.is_object()
            || x.as_array()
                .is_some_and(|a| !a.is_empty() && a.iter().all(Value::is_object));
        if !table {
            if let Some(s) = inline(x) {
                out.push_str(&format!("{} = {s}\n", quote(k)));
            }
        }
    }
    for (k, x) in top {
        match x {
            Value::Object(m) => {
                out.push_str(&format!("\n[{}]\n", quote(k)));
                for (kk, xx) in m {
                    if let Some(s) = inline(xx) {
                        out.push_str(&format!("{} = {s}\n", quote(kk)));
                    }
                }
            }
            Value::Array(a) if !a.is_empty() && a.iter().all(Value::is_object) => {
                for t in a {
                    out.push_str(&format!("\n[[{}]]\n", quote(k)));
                    if let Value::Object(m) = t {
                        for (kk, xx) in m {
                            if let Some(s) = inline(xx) {
                                out.push_str(&format!("{} = {s}\n", quote(kk)));
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// Cell text for tables: ordinary, empty, huge, control characters, quotes and separators.
pub fn cell(u: &mut Unstructured) -> String {
    match u.int_in_range(0u8..=6).unwrap_or(0) {
        0 => String::new(),
        1 => "a \"quoted\", text\nwith a newline".into(),
        2 => "x".repeat(u.int_in_range(0usize..=5000).unwrap_or(0)),
        3 => INTERESTING_TEXT[u.choose_index(INTERESTING_TEXT.len()).unwrap_or(0)].into(),
        4 => "\u{0}\u{1b}[31m\u{202e}é中🙂".into(),
        _ => u.arbitrary::<String>().unwrap_or_default(),
    }
}

/// Column names a dataset reader looks for, and some it does not.
pub const COLUMNS: &[&str] = &[
    "statement",
    "Question",
    "sentence",
    "text",
    "prompt",
    "label",
    "labels",
    "topic",
    "",
    "text ",
];

/// A label cell: integers, booleans, floats, words, empty.
pub fn label(u: &mut Unstructured) -> String {
    [
        "0",
        "1",
        "2",
        "-1",
        "true",
        "false",
        "1.0",
        "0.5",
        "nan",
        "inf",
        "1e39",
        "",
        "yes",
        "18446744073709551616",
    ][u.choose_index(14).unwrap_or(0)]
    .to_string()
}
