//! The one validated in-memory form every dataset takes: rows in file order, each with its text,
//! an optional 0/1 label and the other fields of the source.

use crate::error::{DataError, Result};
use crate::table::{Table, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Position in the source, 0-based, in file order.
    pub id: usize,
    /// The text, byte-exact as stored (leading spaces, tabs and CR/LF kept).
    pub text: String,
    /// 0 or 1; `None` for unlabeled data.
    pub label: Option<i64>,
    /// The source's other columns.
    pub extra: BTreeMap<String, Value>,
}

/// A validated dataset.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// The file name without its extension (`sst2` for `sst2.csv`).
    pub name: String,
    /// The file it was read from, if any.
    pub path: Option<PathBuf>,
    /// sha256 of the source file's bytes (or of the canonical CSV, for built datasets), lower-case hex.
    pub sha256: String,
    pub text_column: String,
    pub label_column: Option<String>,
    pub rows: Vec<Row>,
}

/// Which column holds labels.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum LabelColumn {
    /// `label` if the file has one, else unlabeled.
    #[default]
    Auto,
    /// Read no labels.
    None,
    Named(String),
}

/// How to read a dataset file.
#[derive(Debug, Clone, Default)]
pub struct ReadOptions {
    /// The text column; by default the first of [`TEXT_COLUMNS`] the file has.
    pub text_column: Option<String>,
    pub label_column: LabelColumn,
}

/// Text columns recognised without a flag: the paper's CSVs (`statement`, and `Question` in
/// truthfulqa_test.csv), GLUE (`sentence`) and common Hugging Face names.
pub const TEXT_COLUMNS: &[&str] = &["statement", "Question", "sentence", "text", "prompt"];

/// Lower-case hex sha256 of bytes.
pub use pretrace_core::sha256_hex;

/// sha256 of a file, streamed.
pub fn sha256_file(path: &Path) -> Result<String> {
    pretrace_core::sha256_file(path).map_err(|e| match e {
        pretrace_core::FsError::Io { op, source, .. } => {
            DataError::at(path, format!("cannot {op}: {source}"))
        }
        other => DataError::at(path, other.to_string()),
    })
}

/// Parses a label cell: 0/1 as integers, strings, booleans or whole floats.
fn label_of(v: &Value) -> Option<i64> {
    match v {
        Value::Int(i @ (0 | 1)) => Some(*i),
        Value::Bool(b) => Some(*b as i64),
        Value::Float(f) if *f == 0.0 || *f == 1.0 => Some(*f as i64),
        Value::Str(s) => match s.trim() {
            "0" | "0.0" => Some(0),
            "1" | "1.0" => Some(1),
            _ => None,
        },
        _ => None,
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::Str(s) => format!("'{s}'"),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Null => "null".into(),
        Value::List(_) => "a list".into(),
        Value::Struct(_) => "a record".into(),
    }
}

impl Dataset {
    /// Reads a dataset file (format from its extension).
    pub fn read(path: &Path, opts: &ReadOptions) -> Result<Dataset> {
        let table = Table::read(path)?;
        let mut ds = Dataset::from_table(&table, opts)?;
        ds.sha256 = sha256_file(path)?;
        Ok(ds)
    }

    /// Validates a table into a dataset. `sha256` is left empty for the caller to fill.
    pub fn from_table(table: &Table, opts: &ReadOptions) -> Result<Dataset> {
        let path = &table.path;
        let text_name = match &opts.text_column {
            Some(c) => c.clone(),
            None => TEXT_COLUMNS
                .iter()
                .find(|c| table.columns.iter().any(|x| x == *c))
                .map(|c| c.to_string())
                .ok_or_else(|| {
                    DataError::at(
                        path,
                        format!(
                            "no text column: expected one of {} (or name it with --text-column); the columns are: {}",
                            TEXT_COLUMNS.join(", "),
                            table.columns.join(", ")
                        ),
                    )
                })?,
        };
        let text_col = table.column(&text_name)?;
        let label_name = match &opts.label_column {
            LabelColumn::None => None,
            LabelColumn::Auto => table
                .columns
                .iter()
                .any(|c| c == "label")
                .then(|| "label".to_string()),
            LabelColumn::Named(c) => Some(c.clone()),
        };
        let label_col = label_name.as_deref().map(|c| table.column(c)).transpose()?;
        let mut rows = Vec::with_capacity(table.rows.len());
        for (i, cells) in table.rows.iter().enumerate() {
            let text = table.str_at(i, text_col)?;
            if text.is_empty() {
                return Err(table.err(
                    i,
                    format!("column '{text_name}' is empty; every row needs text (remove the row or fill it in)"),
                ));
            }
            let label = match label_col {
                None => None,
                Some(c) => Some(label_of(&cells[c]).ok_or_else(|| {
                    table.err(
                        i,
                        format!(
                            "label {} in column '{}' is not 0 or 1; binary datasets need 0/1 labels",
                            show(&cells[c]),
                            table.columns[c]
                        ),
                    )
                })?),
            };
            let extra = table
                .columns
                .iter()
                .enumerate()
                .filter(|(c, _)| *c != text_col && Some(*c) != label_col)
                .map(|(c, name)| (name.clone(), cells[c].clone()))
                .collect();
            rows.push(Row {
                id: i,
                text: text.to_string(),
                label,
                extra,
            });
        }
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("data")
            .to_string();
        Ok(Dataset {
            name,
            path: Some(path.clone()),
            sha256: String::new(),
            text_column: text_name,
            label_column: label_name,
            rows,
        })
    }

    /// A dataset built in memory from `(text, label)` pairs; its hash is that of its CSV form.
    pub fn from_pairs(name: &str, rows: Vec<(String, Option<i64>)>) -> Dataset {
        let labeled = rows.iter().any(|r| r.1.is_some());
        let mut ds = Dataset {
            name: name.to_string(),
            path: None,
            sha256: String::new(),
            text_column: "statement".into(),
            label_column: labeled.then(|| "label".into()),
            rows: rows
                .into_iter()
                .enumerate()
                .map(|(id, (text, label))| Row {
                    id,
                    text,
                    label,
                    extra: BTreeMap::new(),
                })
                .collect(),
        };
        ds.sha256 = sha256_hex(&ds.to_csv());
        ds
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Labels of every row, if every row has one.
    pub fn labels(&self) -> Option<Vec<i64>> {
        self.rows.iter().map(|r| r.label).collect()
    }

    /// `(label 0, label 1)` counts.
    pub fn label_counts(&self) -> (usize, usize) {
        let ones = self.rows.iter().filter(|r| r.label == Some(1)).count();
        let zeros = self.rows.iter().filter(|r| r.label == Some(0)).count();
        (zeros, ones)
    }

    /// The paper's CSV form: `statement,label` (or `statement` alone when unlabeled), CRLF line ends,
    /// fields quoted where needed. Reading it back gives the same rows.
    pub fn to_csv(&self) -> Vec<u8> {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::CRLF)
            .from_writer(Vec::new());
        let labeled = self.rows.iter().any(|r| r.label.is_some());
        // Writing into a Vec cannot fail.
        let _ = if labeled {
            w.write_record(["statement", "label"])
        } else {
            w.write_record(["statement"])
        };
        for r in &self.rows {
            let _ = match (labeled, r.label) {
                (true, Some(l)) => w.write_record([r.text.as_str(), &l.to_string()]),
                (true, None) => w.write_record([r.text.as_str(), ""]),
                (false, _) => w.write_record([r.text.as_str()]),
            };
        }
        w.into_inner().unwrap_or_default()
    }
}
