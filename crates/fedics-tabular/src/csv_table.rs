//! Generic labelled CSV reader (CIC-IDS2017, CIC-IDS2018, UNSW-NB15 style files).
//!
//! * The first row is the header. Names are trimmed (CIC-IDS headers start with a
//!   space); a repeated name gets a suffix `.1`, `.2`, ... as pandas does (CIC-IDS2017
//!   repeats `Fwd Header Length`), reported in [`CsvReport::renamed_columns`].
//! * One column is the label ([`CsvOptions::label_col`]); the columns in
//!   [`CsvOptions::drop`] are skipped (a name not in the file is ignored); every other
//!   column is a feature.
//! * Training file ([`read_csv`]): column kinds are inferred (a first pass over the file):
//!   a column is categorical if it is listed in [`CsvOptions::categorical`] or if any
//!   non-empty value fails to parse as a number; binary if every value is 0 or 1;
//!   numeric otherwise. `NaN`, `inf` and `Infinity` parse as numbers.
//! * Test file ([`read_csv_with_schema`]): the training schema is given; its columns are
//!   matched by name (order may differ; extra columns are ignored and listed in
//!   [`CsvReport::ignored_columns`]); a missing one is an error.
//! * Numeric cells that are NaN, infinite or empty follow [`NonFinitePolicy`]: an error
//!   naming the cell (default), replaced by 0, or the row dropped; what was found is
//!   counted per column in [`CsvReport::non_finite`].
//! * Categorical and label cells are strings (invalid UTF-8 is replaced by U+FFFD, as in
//!   CIC-IDS2017's `Web Attack \x96 Brute Force`); an empty categorical cell is the
//!   category `""`.
//!
//! Errors name the file, the 1-based line, the column and the value.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;

use csv::ByteRecord;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TabularError};
use crate::io::{CsvReader, csv_error, open_csv, parse_f64, record_line, show};
use crate::table::{ColumnData, ColumnKind, ColumnSpec, RawTable, Schema};

/// What to do with a numeric cell that is NaN, infinite or empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NonFinitePolicy {
    /// Stop with an error naming the file, line, column and value.
    #[default]
    Error,
    /// Use 0 in place of the value.
    ReplaceWithZero,
    /// Leave the whole row out.
    DropRow,
}

/// Options of the CSV reader.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CsvOptions {
    /// Name of the label column (after trimming).
    pub label_col: String,
    /// Columns to leave out (names not in the file are ignored).
    pub drop: Vec<String>,
    /// Columns that are categorical even if every value parses as a number (training
    /// file only; each must exist).
    pub categorical: Vec<String>,
    pub non_finite: NonFinitePolicy,
    /// Field delimiter, `b','` by default.
    pub delimiter: u8,
}

impl CsvOptions {
    pub fn new(label_col: impl Into<String>) -> Self {
        Self {
            label_col: label_col.into(),
            drop: Vec::new(),
            categorical: Vec::new(),
            non_finite: NonFinitePolicy::Error,
            delimiter: b',',
        }
    }

    pub fn drop_columns<I: IntoIterator<Item = S>, S: Into<String>>(mut self, columns: I) -> Self {
        self.drop.extend(columns.into_iter().map(Into::into));
        self
    }

    pub fn categorical_columns<I: IntoIterator<Item = S>, S: Into<String>>(
        mut self,
        columns: I,
    ) -> Self {
        self.categorical.extend(columns.into_iter().map(Into::into));
        self
    }

    pub fn non_finite(mut self, policy: NonFinitePolicy) -> Self {
        self.non_finite = policy;
        self
    }

    pub fn delimiter(mut self, delimiter: u8) -> Self {
        self.delimiter = delimiter;
        self
    }
}

/// Non-finite numeric cells found in one column.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NonFiniteCounts {
    pub nan: u64,
    pub pos_inf: u64,
    pub neg_inf: u64,
    pub empty: u64,
}

impl NonFiniteCounts {
    pub fn total(&self) -> u64 {
        self.nan + self.pos_inf + self.neg_inf + self.empty
    }
}

/// What the reader did besides reading.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CsvReport {
    /// Data rows in the file.
    pub rows_read: usize,
    /// Rows in the table.
    pub rows_kept: usize,
    /// Rows left out by [`NonFinitePolicy::DropRow`].
    pub rows_dropped: usize,
    /// Cells set to 0 by [`NonFinitePolicy::ReplaceWithZero`].
    pub cells_replaced: u64,
    /// Non-finite or empty numeric cells found, per column (only columns with some).
    pub non_finite: BTreeMap<String, NonFiniteCounts>,
    /// Repeated header names and the names given to them: (original, new).
    pub renamed_columns: Vec<(String, String)>,
    /// Requested drops that were in the file.
    pub dropped_columns: Vec<String>,
    /// Columns of a test file that the schema does not use (neither label nor dropped).
    pub ignored_columns: Vec<String>,
}

/// A CSV file read into a table.
#[derive(Debug, Clone, PartialEq)]
pub struct CsvTable {
    pub table: RawTable,
    pub report: CsvReport,
}

/// Infers the schema of a training file and reads it (two passes over the file).
pub fn read_csv(path: impl AsRef<Path>, options: &CsvOptions) -> Result<CsvTable> {
    let schema = infer_csv_schema(path.as_ref(), options)?;
    read_csv_with_schema(path, options, &schema)
}

struct Header {
    names: Vec<String>,
    renamed: Vec<(String, String)>,
    label: usize,
}

fn reader(path: &Path, options: &CsvOptions) -> Result<CsvReader> {
    open_csv(
        path,
        csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .delimiter(options.delimiter),
    )
}

fn read_header(path: &Path, rdr: &mut CsvReader, options: &CsvOptions) -> Result<Header> {
    let raw = rdr.byte_headers().map_err(|e| csv_error(path, e))?;
    if raw.is_empty() || (raw.len() == 1 && raw[0].is_empty()) {
        return Err(TabularError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let mut names: Vec<String> = Vec::with_capacity(raw.len());
    let mut seen = HashSet::new();
    let mut renamed = Vec::new();
    for f in raw.iter() {
        let name = String::from_utf8_lossy(f).into_owned();
        let mut unique = name.clone();
        let mut k = 1;
        while seen.contains(&unique) {
            unique = format!("{name}.{k}");
            k += 1;
        }
        if unique != name {
            renamed.push((name, unique.clone()));
        }
        seen.insert(unique.clone());
        names.push(unique);
    }
    let label = names
        .iter()
        .position(|n| *n == options.label_col)
        .ok_or_else(|| TabularError::MissingColumn {
            path: path.to_path_buf(),
            column: options.label_col.clone(),
            required_by: format!("CsvOptions::label_col; the header has {}", list(&names)),
        })?;
    Ok(Header {
        names,
        renamed,
        label,
    })
}

/// The first names of a header, for error messages.
fn list(names: &[String]) -> String {
    const SHOWN: usize = 12;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(", ... ({} columns)", names.len()));
    }
    s
}

fn next_record(
    path: &Path,
    rdr: &mut CsvReader,
    rec: &mut ByteRecord,
    n_fields: usize,
) -> Result<Option<u64>> {
    if !rdr.read_byte_record(rec).map_err(|e| csv_error(path, e))? {
        return Ok(None);
    }
    let line = record_line(rdr, rec);
    if rec.len() != n_fields {
        return Err(TabularError::FieldCount {
            path: path.to_path_buf(),
            line,
            expected: n_fields,
            found: rec.len(),
        });
    }
    Ok(Some(line))
}

/// Infers the feature schema of a training file (see the module documentation).
pub fn infer_csv_schema(path: impl AsRef<Path>, options: &CsvOptions) -> Result<Schema> {
    let path = path.as_ref();
    let mut rdr = reader(path, options)?;
    let header = read_header(path, &mut rdr, options)?;
    for c in &options.categorical {
        if !header.names.contains(c) {
            return Err(TabularError::MissingColumn {
                path: path.to_path_buf(),
                column: c.clone(),
                required_by: format!(
                    "CsvOptions::categorical; the header has {}",
                    list(&header.names)
                ),
            });
        }
    }
    // (file index, forced categorical, numeric so far, binary so far)
    let mut cols: Vec<(usize, bool, bool, bool)> = header
        .names
        .iter()
        .enumerate()
        .filter(|&(i, n)| i != header.label && !options.drop.contains(n))
        .map(|(i, n)| (i, options.categorical.contains(n), true, true))
        .collect();
    let mut rec = ByteRecord::new();
    let mut rows = 0usize;
    while next_record(path, &mut rdr, &mut rec, header.names.len())?.is_some() {
        rows += 1;
        for (i, forced, numeric, binary) in &mut cols {
            if *forced || !*numeric {
                continue;
            }
            let field = &rec[*i];
            if field.is_empty() {
                continue;
            }
            match parse_f64(field) {
                Some(x) => *binary &= x == 0.0 || x == 1.0,
                None => *numeric = false,
            }
        }
    }
    if rows == 0 {
        return Err(TabularError::NoRows {
            path: path.to_path_buf(),
        });
    }
    if cols.is_empty() {
        return Err(TabularError::Schema(format!(
            "{}: no feature columns besides the label",
            path.display()
        )));
    }
    Schema::new(
        cols.into_iter()
            .map(|(i, forced, numeric, binary)| {
                let kind = if forced || !numeric {
                    ColumnKind::Categorical
                } else if binary {
                    ColumnKind::Binary
                } else {
                    ColumnKind::Numeric
                };
                ColumnSpec::new(header.names[i].clone(), kind)
            })
            .collect(),
    )
}

/// Reads a file with a known schema (typically a test file with the training schema).
/// [`CsvOptions::categorical`] is not used: the schema decides.
pub fn read_csv_with_schema(
    path: impl AsRef<Path>,
    options: &CsvOptions,
    schema: &Schema,
) -> Result<CsvTable> {
    let path = path.as_ref();
    schema.validate()?;
    let mut rdr = reader(path, options)?;
    let header = read_header(path, &mut rdr, options)?;
    let mut file_index = Vec::with_capacity(schema.len());
    for spec in &schema.columns {
        let i = header
            .names
            .iter()
            .position(|n| *n == spec.name)
            .ok_or_else(|| TabularError::MissingColumn {
                path: path.to_path_buf(),
                column: spec.name.clone(),
                required_by: "the schema (the columns the model was trained on)".into(),
            })?;
        file_index.push(i);
    }
    let mut report = CsvReport {
        renamed_columns: header.renamed.clone(),
        ..CsvReport::default()
    };
    for (i, n) in header.names.iter().enumerate() {
        if i == header.label {
            continue;
        }
        if options.drop.contains(n) {
            report.dropped_columns.push(n.clone());
        } else if !file_index.contains(&i) {
            report.ignored_columns.push(n.clone());
        }
    }
    let mut table = RawTable::new(schema.clone())?;
    let mut counts = vec![NonFiniteCounts::default(); schema.len()];
    let mut rec = ByteRecord::new();
    while let Some(line) = next_record(path, &mut rdr, &mut rec, header.names.len())? {
        report.rows_read += 1;
        let kept = table.n_rows();
        let mut drop_row = false;
        let (cols, labels) = table.parts_mut();
        for (j, col) in cols.iter_mut().enumerate() {
            let field = &rec[file_index[j]];
            match col {
                ColumnData::Categorical(c) => c.push(&String::from_utf8_lossy(field)),
                ColumnData::Numeric(v) => {
                    let x = if field.is_empty() {
                        counts[j].empty += 1;
                        f64::NAN
                    } else {
                        let x = parse_f64(field).ok_or_else(|| TabularError::BadValue {
                            path: path.to_path_buf(),
                            line,
                            column: schema.columns[j].name.clone(),
                            expected: "a number".into(),
                            value: show(field),
                        })?;
                        if x.is_nan() {
                            counts[j].nan += 1;
                        } else if x == f64::INFINITY {
                            counts[j].pos_inf += 1;
                        } else if x == f64::NEG_INFINITY {
                            counts[j].neg_inf += 1;
                        }
                        x
                    };
                    if x.is_finite() {
                        v.push(x);
                    } else {
                        match options.non_finite {
                            NonFinitePolicy::Error => {
                                return Err(TabularError::NonFinite {
                                    path: path.to_path_buf(),
                                    line,
                                    column: schema.columns[j].name.clone(),
                                    value: show(field),
                                });
                            }
                            NonFinitePolicy::ReplaceWithZero => {
                                report.cells_replaced += 1;
                                v.push(0.0);
                            }
                            NonFinitePolicy::DropRow => {
                                drop_row = true;
                                v.push(0.0);
                            }
                        }
                    }
                }
            }
        }
        labels.push(String::from_utf8_lossy(&rec[header.label]).into_owned());
        if drop_row {
            table.truncate(kept);
            report.rows_dropped += 1;
        }
    }
    if report.rows_read == 0 {
        return Err(TabularError::NoRows {
            path: path.to_path_buf(),
        });
    }
    report.rows_kept = table.n_rows();
    report.non_finite = schema
        .columns
        .iter()
        .zip(counts)
        .filter(|(_, c)| c.total() > 0)
        .map(|(s, c)| (s.name.clone(), c))
        .collect();
    Ok(CsvTable { table, report })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{PreprocessOptions, Preprocessor};
    use crate::table::Cell;
    use std::io::Write;
    use std::path::PathBuf;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .unwrap();
        p
    }

    fn err(path: &Path, options: &CsvOptions) -> String {
        read_csv(path, options).unwrap_err().to_string()
    }

    const TRAIN: &str = " Flow ID, Destination Port,Protocol,Flow Bytes/s,Flag,Fwd Header Length,Fwd Header Length, Label\n\
        a,80,tcp,10.5,0,20,21,BENIGN\n\
        b,443,udp,3,1,20,22,DDoS\n\
        c,22,tcp,7,1,40,23,BENIGN\n";

    #[test]
    fn infers_kinds_and_reads() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "train.csv", TRAIN);
        let opts = CsvOptions::new("Label").drop_columns(["Flow ID", "not there"]);
        let t = read_csv(&p, &opts).unwrap();
        let kinds: Vec<(&str, ColumnKind)> = t
            .table
            .schema()
            .columns
            .iter()
            .map(|c| (c.name.as_str(), c.kind))
            .collect();
        assert_eq!(
            kinds,
            [
                ("Destination Port", ColumnKind::Numeric),
                ("Protocol", ColumnKind::Categorical),
                ("Flow Bytes/s", ColumnKind::Numeric),
                ("Flag", ColumnKind::Binary),
                ("Fwd Header Length", ColumnKind::Numeric),
                ("Fwd Header Length.1", ColumnKind::Numeric),
            ]
        );
        assert_eq!(t.table.labels(), ["BENIGN", "DDoS", "BENIGN"]);
        assert_eq!(t.table.cell(1, 1), Some(Cell::Cat("udp")));
        assert_eq!(t.table.cell(0, 2), Some(Cell::Num(10.5)));
        assert_eq!(t.report.rows_read, 3);
        assert_eq!(t.report.rows_kept, 3);
        assert_eq!(t.report.dropped_columns, ["Flow ID"]);
        assert_eq!(
            t.report.renamed_columns,
            [(
                "Fwd Header Length".to_string(),
                "Fwd Header Length.1".to_string()
            )]
        );
        // Forcing a numeric-looking column to be categorical.
        let opts2 = opts.clone().categorical_columns(["Destination Port"]);
        let t2 = read_csv(&p, &opts2).unwrap();
        assert_eq!(t2.table.schema().columns[0].kind, ColumnKind::Categorical);
        assert_eq!(t2.table.cell(0, 0), Some(Cell::Cat("80")));
        let e = read_csv(&p, &opts.clone().categorical_columns(["Nope"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("train.csv: missing column `Nope` (required by CsvOptions::categorical"),
            "{e}"
        );
    }

    #[test]
    fn test_file_with_training_schema() {
        let dir = tempfile::tempdir().unwrap();
        let train = write(dir.path(), "train.csv", TRAIN);
        let opts = CsvOptions::new(" Label".trim()).drop_columns(["Flow ID"]);
        let t = read_csv(&train, &opts).unwrap();
        let p = Preprocessor::fit(&t.table, PreprocessOptions::default()).unwrap();
        // Other column order, an extra column, an unseen protocol, gzip-compressed.
        let text = "Label,Extra,Fwd Header Length,Fwd Header Length,Flag,Flow Bytes/s,Protocol,Destination Port,Flow ID\n\
                    BENIGN,9,30,21,0,7,icmp,80,z\n";
        let gz = dir.path().join("test.csv.gz");
        let mut enc = flate2::write::GzEncoder::new(
            std::fs::File::create(&gz).unwrap(),
            flate2::Compression::default(),
        );
        enc.write_all(text.as_bytes()).unwrap();
        enc.finish().unwrap();
        let test = read_csv_with_schema(&gz, &opts, t.table.schema()).unwrap();
        assert_eq!(test.report.ignored_columns, ["Extra"]);
        let (m, unseen) = p.transform_with_report(&test.table).unwrap();
        assert_eq!(unseen.get("Protocol").map(|c| c.rows), Some(1));
        assert_eq!(m.cols(), p.n_features());

        // A test file lacking a column the schema needs.
        let bad = write(
            dir.path(),
            "test2.csv",
            "Label,Protocol,Flow Bytes/s,Flag,Fwd Header Length,Fwd Header Length\nBENIGN,tcp,1,0,2,3\n",
        );
        let e = read_csv_with_schema(&bad, &opts, t.table.schema())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("test2.csv: missing column `Destination Port` (required by the schema"),
            "{e}"
        );
        // A non-number in a column that is numeric in the schema.
        let bad = write(
            dir.path(),
            "test3.csv",
            "Destination Port,Protocol,Flow Bytes/s,Flag,Fwd Header Length,Fwd Header Length,Label\n\
             80,tcp,1,0,2,3,BENIGN\n80,tcp,1,0,2,three,BENIGN\n",
        );
        let e = read_csv_with_schema(&bad, &opts, t.table.schema())
            .unwrap_err()
            .to_string();
        assert!(
            e.ends_with(
                "test3.csv:3: column `Fwd Header Length.1`: expected a number, found `three`"
            ),
            "{e}"
        );
    }

    #[test]
    fn error_messages() {
        let dir = tempfile::tempdir().unwrap();
        let opts = CsvOptions::new("label");

        let p = write(dir.path(), "nolabel.csv", "a,b\n1,2\n");
        let e = err(&p, &opts);
        assert!(
            e.contains("nolabel.csv: missing column `label` (required by CsvOptions::label_col; the header has `a`, `b`)"),
            "{e}"
        );

        let p = write(dir.path(), "empty.csv", "");
        assert!(err(&p, &opts).ends_with("empty.csv: empty file: expected a header row"));
        let p = write(dir.path(), "blank.csv", "\n\n");
        assert!(err(&p, &opts).ends_with("blank.csv: empty file: expected a header row"));

        let p = write(dir.path(), "header.csv", "a,label\n");
        assert!(err(&p, &opts).ends_with("header.csv: no data rows"));

        let p = write(dir.path(), "fields.csv", "a,label\n1,x\n\n2,x,3\n");
        let e = err(&p, &opts);
        assert!(
            e.ends_with("fields.csv:4: expected 2 comma-separated fields, found 3"),
            "{e}"
        );

        let p = write(dir.path(), "crlf.csv", "a,label\r\n1,x\r\n2\r\n");
        let e = err(&p, &opts);
        assert!(
            e.ends_with("crlf.csv:3: expected 2 comma-separated fields, found 1"),
            "{e}"
        );

        let p = write(dir.path(), "only_label.csv", "label\nx\n");
        assert!(err(&p, &opts).contains("no feature columns"));
    }

    #[test]
    fn non_finite_policies() {
        let dir = tempfile::tempdir().unwrap();
        let text = "a,b,label\n1,2,x\nInfinity,3,y\n4,NaN,z\n5,,w\n-inf,6,v\n7,8,u\n";
        let p = write(dir.path(), "cic.csv", text);
        let opts = CsvOptions::new("label");
        // Default: an error naming the first such cell.
        let e = err(&p, &opts);
        assert!(
            e.contains("cic.csv:3: column `a`: found `Infinity` (NaN, infinite or empty)"),
            "{e}"
        );
        // Inference still sees both columns as numeric (empty cells are skipped).
        let schema = infer_csv_schema(&p, &opts).unwrap();
        assert!(schema.columns.iter().all(|c| c.kind == ColumnKind::Numeric));

        let t = read_csv(
            &p,
            &opts.clone().non_finite(NonFinitePolicy::ReplaceWithZero),
        )
        .unwrap();
        assert_eq!(t.table.n_rows(), 6);
        assert_eq!(t.report.cells_replaced, 4);
        assert_eq!(t.table.cell(1, 0), Some(Cell::Num(0.0)));
        assert_eq!(t.table.cell(3, 1), Some(Cell::Num(0.0)));
        let a = t.report.non_finite["a"];
        assert_eq!((a.pos_inf, a.neg_inf, a.nan, a.empty), (1, 1, 0, 0));
        let b = t.report.non_finite["b"];
        assert_eq!((b.nan, b.empty, b.total()), (1, 1, 2));

        let t = read_csv(&p, &opts.clone().non_finite(NonFinitePolicy::DropRow)).unwrap();
        assert_eq!(t.report.rows_read, 6);
        assert_eq!(t.report.rows_dropped, 4);
        assert_eq!(t.report.rows_kept, 2);
        assert_eq!(t.table.labels(), ["x", "u"]);
        assert_eq!(t.table.row(1), Some(vec![Cell::Num(7.0), Cell::Num(8.0)]));
        assert!(t.table.columns().iter().all(|c| c.len() == 2));
    }

    #[test]
    fn drop_row_does_not_leak_categories() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "d.csv", "c,n,label\nx,1,a\ny,NaN,b\n");
        let opts = CsvOptions::new("label").non_finite(NonFinitePolicy::DropRow);
        let t = read_csv(&p, &opts).unwrap();
        let pre = Preprocessor::fit(&t.table, PreprocessOptions::default()).unwrap();
        assert_eq!(pre.feature_names(), ["c=x", "n"]);
    }

    #[test]
    fn semicolon_and_invalid_utf8_labels() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("w.csv");
        std::fs::write(&p, b"x;Label\n1;Web Attack \x96 Brute Force\n").unwrap();
        let t = read_csv(&p, &CsvOptions::new("Label").delimiter(b';')).unwrap();
        assert_eq!(t.table.labels(), ["Web Attack \u{FFFD} Brute Force"]);
    }
}
