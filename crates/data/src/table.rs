//! Raw tables read from CSV, JSON Lines, Arrow IPC streams and Parquet: named columns of
//! loosely typed cells, each row remembering where it came from (a line or a row number) so that
//! errors can point at it.

use crate::error::{DataError, Result};
use arrow_array::cast::AsArray;
use arrow_array::{Array, RecordBatch};
use arrow_schema::DataType;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// One cell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<Value>),
    /// A record (an Arrow struct, a JSON object): fields in order.
    Struct(Vec<(String, Value)>),
}

impl Value {
    /// A short description of the cell's type, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::List(_) => "a list",
            Value::Struct(_) => "a record",
        }
    }

    /// The field `name` of a record.
    pub fn field(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Struct(f) => f.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }
}

/// File formats a table can be read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    Jsonl,
    /// Arrow IPC stream (what Hugging Face `datasets` writes as `data-*.arrow`); IPC files too.
    Arrow,
    Parquet,
}

impl Format {
    /// The format named by a file's extension.
    pub fn from_path(path: &Path) -> Result<Format> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        match ext.as_str() {
            "csv" => Ok(Format::Csv),
            "jsonl" | "json" | "ndjson" => Ok(Format::Jsonl),
            "arrow" | "ipc" | "feather" => Ok(Format::Arrow),
            "parquet" => Ok(Format::Parquet),
            _ => Err(DataError::at(
                path,
                format!("unknown data file extension '.{ext}'; expected .csv, .jsonl, .arrow or .parquet"),
            )),
        }
    }
}

/// Where a row came from: a 1-based line of a text file or a 1-based row of a columnar file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loc {
    Line(u64),
    Row(u64),
}

impl std::fmt::Display for Loc {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Loc::Line(n) => write!(f, "line {n}"),
            Loc::Row(n) => write!(f, "row {n}"),
        }
    }
}

/// A table: column names and rows of cells, in file order.
#[derive(Debug, Clone)]
pub struct Table {
    pub path: PathBuf,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
    pub locs: Vec<Loc>,
}

impl Table {
    /// Reads a table in the format its extension names.
    pub fn read(path: &Path) -> Result<Table> {
        Self::read_as(path, Format::from_path(path)?)
    }

    pub fn read_as(path: &Path, format: Format) -> Result<Table> {
        if !path.is_file() {
            return Err(DataError::at(path, "no such file"));
        }
        match format {
            Format::Csv => read_csv(path),
            Format::Jsonl => read_jsonl(path),
            Format::Arrow => read_arrow(path),
            Format::Parquet => read_parquet(path),
        }
    }

    /// Index of a column, or an error listing the columns there are.
    pub fn column(&self, name: &str) -> Result<usize> {
        self.columns.iter().position(|c| c == name).ok_or_else(|| {
            DataError::at(
                &self.path,
                format!(
                    "column '{name}' is missing; the columns are: {}",
                    self.columns.join(", ")
                ),
            )
        })
    }

    /// The cell of `row` in column `col` as a string, or an error naming the row and column.
    pub fn str_at(&self, row: usize, col: usize) -> Result<&str> {
        match &self.rows[row][col] {
            Value::Str(s) => Ok(s),
            v => Err(self.err(
                row,
                format!(
                    "column '{}' should be a string, found {}",
                    self.columns[col],
                    v.kind()
                ),
            )),
        }
    }

    /// An error at a row.
    pub fn err(&self, row: usize, msg: impl std::fmt::Display) -> DataError {
        DataError::at(&self.path, format!("{}: {msg}", self.locs[row]))
    }
}

fn read_csv(path: &Path) -> Result<Table> {
    let bytes =
        std::fs::read(path).map_err(|e| DataError::at(path, format!("cannot read: {e}")))?;
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes.as_slice());
    // Line numbers are counted here: the reader's own count lags on CRLF files.
    let (mut counted_to, mut lines_before) = (0usize, 0u64);
    let mut line_at = |offset: u64| -> u64 {
        let mut offset = (offset as usize).min(bytes.len());
        // A record after CRLF is reported as starting at the LF; it starts after it.
        while offset < bytes.len() && (bytes[offset] == b'\n' || bytes[offset] == b'\r') {
            offset += 1;
        }
        if offset >= counted_to {
            lines_before += bytes[counted_to..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
            counted_to = offset;
        }
        lines_before + 1
    };
    let mut columns: Option<Vec<String>> = None;
    let mut rows = Vec::new();
    let mut locs = Vec::new();
    let mut rec = csv::ByteRecord::new();
    loop {
        match rdr.read_byte_record(&mut rec) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                let at = e
                    .position()
                    .map_or(String::new(), |p| format!("line {}: ", line_at(p.byte())));
                return Err(DataError::at(path, format!("{at}not valid CSV ({e})")));
            }
        }
        let line = rec.position().map_or(0, |p| line_at(p.byte()));
        let mut cells = Vec::with_capacity(rec.len());
        for (i, field) in rec.iter().enumerate() {
            let s = std::str::from_utf8(field).map_err(|e| {
                DataError::at(
                    path,
                    format!(
                        "line {line}: field {} is not valid UTF-8 (byte {} of the field); re-encode the file as UTF-8",
                        i + 1,
                        e.valid_up_to()
                    ),
                )
            })?;
            cells.push(s.to_string());
        }
        match &columns {
            None => {
                if cells.iter().any(|c| c.is_empty()) {
                    return Err(DataError::at(
                        path,
                        "line 1: the header has an empty column name",
                    ));
                }
                columns = Some(cells);
            }
            Some(cols) => {
                if cells.len() != cols.len() {
                    return Err(DataError::at(
                        path,
                        format!(
                            "line {line}: {} fields, the header has {}; quote fields that contain commas",
                            cells.len(),
                            cols.len()
                        ),
                    ));
                }
                rows.push(cells.into_iter().map(Value::Str).collect());
                locs.push(Loc::Line(line));
            }
        }
    }
    let columns =
        columns.ok_or_else(|| DataError::at(path, "the file is empty; expected a header line"))?;
    Ok(Table {
        path: path.to_path_buf(),
        columns,
        rows,
        locs,
    })
}

fn json_value(v: serde_json::Value) -> Value {
    match v {
        serde_json::Value::Null => Value::Null,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        serde_json::Value::String(s) => Value::Str(s),
        serde_json::Value::Array(a) => Value::List(a.into_iter().map(json_value).collect()),
        serde_json::Value::Object(m) => {
            Value::Struct(m.into_iter().map(|(k, v)| (k, json_value(v))).collect())
        }
    }
}

fn read_jsonl(path: &Path) -> Result<Table> {
    let f =
        std::fs::File::open(path).map_err(|e| DataError::at(path, format!("cannot open: {e}")))?;
    let mut reader = std::io::BufReader::new(f);
    let mut columns: Vec<String> = Vec::new();
    let mut objects = Vec::new();
    let mut buf = Vec::new();
    let mut line = 0u64;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| DataError::at(path, format!("cannot read: {e}")))?;
        if n == 0 {
            break;
        }
        line += 1;
        let text = std::str::from_utf8(&buf).map_err(|e| {
            DataError::at(
                path,
                format!(
                    "line {line}: not valid UTF-8 (byte {} of the line); re-encode the file as UTF-8",
                    e.valid_up_to()
                ),
            )
        })?;
        if text.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| DataError::at(path, format!("line {line}: not valid JSON ({e})")))?;
        let serde_json::Value::Object(map) = v else {
            return Err(DataError::at(
                path,
                format!("line {line}: expected a JSON object per line"),
            ));
        };
        for k in map.keys() {
            if !columns.contains(k) {
                columns.push(k.clone());
            }
        }
        objects.push((line, map));
    }
    let mut rows = Vec::with_capacity(objects.len());
    let mut locs = Vec::with_capacity(objects.len());
    for (line, mut map) in objects {
        rows.push(
            columns
                .iter()
                .map(|c| map.remove(c).map_or(Value::Null, json_value))
                .collect(),
        );
        locs.push(Loc::Line(line));
    }
    Ok(Table {
        path: path.to_path_buf(),
        columns,
        rows,
        locs,
    })
}

fn arrow_cell(a: &dyn Array, i: usize) -> Value {
    if a.is_null(i) {
        return Value::Null;
    }
    use arrow_array::types::*;
    match a.data_type() {
        DataType::Null => Value::Null,
        DataType::Boolean => Value::Bool(a.as_boolean().value(i)),
        DataType::Int8 => Value::Int(a.as_primitive::<Int8Type>().value(i) as i64),
        DataType::Int16 => Value::Int(a.as_primitive::<Int16Type>().value(i) as i64),
        DataType::Int32 => Value::Int(a.as_primitive::<Int32Type>().value(i) as i64),
        DataType::Int64 => Value::Int(a.as_primitive::<Int64Type>().value(i)),
        DataType::UInt8 => Value::Int(a.as_primitive::<UInt8Type>().value(i) as i64),
        DataType::UInt16 => Value::Int(a.as_primitive::<UInt16Type>().value(i) as i64),
        DataType::UInt32 => Value::Int(a.as_primitive::<UInt32Type>().value(i) as i64),
        DataType::UInt64 => Value::Int(a.as_primitive::<UInt64Type>().value(i) as i64),
        DataType::Float32 => Value::Float(a.as_primitive::<Float32Type>().value(i) as f64),
        DataType::Float64 => Value::Float(a.as_primitive::<Float64Type>().value(i)),
        DataType::Utf8 => Value::Str(a.as_string::<i32>().value(i).to_string()),
        DataType::LargeUtf8 => Value::Str(a.as_string::<i64>().value(i).to_string()),
        DataType::Utf8View => Value::Str(a.as_string_view().value(i).to_string()),
        DataType::List(_) => list_cell(a.as_list::<i32>().value(i).as_ref()),
        DataType::LargeList(_) => list_cell(a.as_list::<i64>().value(i).as_ref()),
        DataType::Dictionary(_, _) => {
            let d = a.as_any_dictionary();
            let key = d.normalized_keys()[i];
            arrow_cell(d.values().as_ref(), key)
        }
        DataType::Struct(fields) => {
            let st = a.as_struct();
            Value::Struct(
                fields
                    .iter()
                    .zip(st.columns())
                    .map(|(f, c)| (f.name().clone(), arrow_cell(c.as_ref(), i)))
                    .collect(),
            )
        }
        // Other nested types are not needed by any dataset here.
        other => Value::Str(format!("<{other}>")),
    }
}

/// The items of one list cell.
fn list_cell(inner: &dyn Array) -> Value {
    Value::List((0..inner.len()).map(|j| arrow_cell(inner, j)).collect())
}

fn table_from_batches(
    path: &Path,
    columns: Vec<String>,
    batches: Vec<RecordBatch>,
) -> Result<Table> {
    let mut rows = Vec::new();
    let mut locs = Vec::new();
    for b in &batches {
        for i in 0..b.num_rows() {
            let mut row = Vec::with_capacity(columns.len());
            for c in 0..columns.len() {
                row.push(arrow_cell(b.column(c).as_ref(), i));
            }
            rows.push(row);
            locs.push(Loc::Row(locs.len() as u64 + 1));
        }
    }
    Ok(Table {
        path: path.to_path_buf(),
        columns,
        rows,
        locs,
    })
}

fn read_arrow(path: &Path) -> Result<Table> {
    // The Arrow reader panics on some malformed buffers; such a panic is an error naming the file.
    pretrace_core::contain(|| read_arrow_inner(path)).map_err(|e| {
        DataError::at(
            path,
            format!("not a readable Arrow IPC stream or file (the reader failed: {e}); the file is truncated or not Arrow"),
        )
    })?
}

fn read_arrow_inner(path: &Path) -> Result<Table> {
    let bad = |e: &dyn std::fmt::Display| {
        DataError::at(
            path,
            format!(
                "not a readable Arrow IPC stream or file ({e}); the file is truncated or not Arrow"
            ),
        )
    };
    let open =
        || std::fs::File::open(path).map_err(|e| DataError::at(path, format!("cannot open: {e}")));
    // Hugging Face `datasets` writes the stream format; accept the file format too.
    let (schema, batches) =
        match arrow_ipc::reader::StreamReader::try_new(std::io::BufReader::new(open()?), None) {
            Ok(r) => {
                let schema = r.schema();
                let batches = r
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| bad(&e))?;
                (schema, batches)
            }
            Err(stream_err) => match arrow_ipc::reader::FileReader::try_new(open()?, None) {
                Ok(r) => {
                    let schema = r.schema();
                    let batches = r
                        .collect::<std::result::Result<Vec<_>, _>>()
                        .map_err(|e| bad(&e))?;
                    (schema, batches)
                }
                Err(_) => return Err(bad(&stream_err)),
            },
        };
    let columns = schema.fields().iter().map(|f| f.name().clone()).collect();
    table_from_batches(path, columns, batches)
}

fn read_parquet(path: &Path) -> Result<Table> {
    pretrace_core::contain(|| read_parquet_inner(path)).map_err(|e| {
        DataError::at(
            path,
            format!("not a readable Parquet file (the reader failed: {e}); the file is truncated or corrupt"),
        )
    })?
}

fn read_parquet_inner(path: &Path) -> Result<Table> {
    let bad = |e: &dyn std::fmt::Display| {
        DataError::at(
            path,
            format!("not a readable Parquet file ({e}); the file is truncated or uses an unsupported compression"),
        )
    };
    let f =
        std::fs::File::open(path).map_err(|e| DataError::at(path, format!("cannot open: {e}")))?;
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(f)
        .map_err(|e| bad(&e))?;
    let columns = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    let reader = builder.build().map_err(|e| bad(&e))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| bad(&e))?;
    table_from_batches(path, columns, batches)
}
