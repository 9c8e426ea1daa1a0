//! NSL-KDD reader (`KDDTrain+.txt`, `KDDTest+.txt`, `KDDTest-21.txt`, plain or `.gz`).
//!
//! Each line has 43 comma-separated fields and no header: the 41 features of
//! [`NSL_KDD_FEATURES`] (as listed in `feature_names.csv`), the attack label and the
//! difficulty level (0–21). The attack → category mapping (normal, DoS, Probe, R2L, U2R)
//! is read from `attack_categories.csv`, by default the one next to the data file, or
//! falls back to the same 40-label table embedded here ([`AttackCategoryTable::embedded`]).
//!
//! Errors name the file, the line and the column, and what was expected. A label absent
//! from the category table is an error (it would otherwise silently drop out of every
//! per-category figure).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use csv::ByteRecord;
use serde::{Deserialize, Serialize};

use crate::error::{Result, TabularError};
use crate::io::{csv_error, open_csv, parse_f64, record_line, show};
use crate::table::{ColumnData, ColumnKind, ColumnSpec, RawTable, Schema};

/// The 41 NSL-KDD features in file order (from `feature_names.csv`: `symbolic` →
/// categorical, `binary` → binary, `continuous` → numeric).
pub const NSL_KDD_FEATURES: [(&str, ColumnKind); 41] = [
    ("duration", ColumnKind::Numeric),
    ("protocol_type", ColumnKind::Categorical),
    ("service", ColumnKind::Categorical),
    ("flag", ColumnKind::Categorical),
    ("src_bytes", ColumnKind::Numeric),
    ("dst_bytes", ColumnKind::Numeric),
    ("land", ColumnKind::Binary),
    ("wrong_fragment", ColumnKind::Numeric),
    ("urgent", ColumnKind::Numeric),
    ("hot", ColumnKind::Numeric),
    ("num_failed_logins", ColumnKind::Numeric),
    ("logged_in", ColumnKind::Binary),
    ("num_compromised", ColumnKind::Numeric),
    ("root_shell", ColumnKind::Numeric),
    ("su_attempted", ColumnKind::Numeric),
    ("num_root", ColumnKind::Numeric),
    ("num_file_creations", ColumnKind::Numeric),
    ("num_shells", ColumnKind::Numeric),
    ("num_access_files", ColumnKind::Numeric),
    ("num_outbound_cmds", ColumnKind::Numeric),
    ("is_host_login", ColumnKind::Binary),
    ("is_guest_login", ColumnKind::Binary),
    ("count", ColumnKind::Numeric),
    ("srv_count", ColumnKind::Numeric),
    ("serror_rate", ColumnKind::Numeric),
    ("srv_serror_rate", ColumnKind::Numeric),
    ("rerror_rate", ColumnKind::Numeric),
    ("srv_rerror_rate", ColumnKind::Numeric),
    ("same_srv_rate", ColumnKind::Numeric),
    ("diff_srv_rate", ColumnKind::Numeric),
    ("srv_diff_host_rate", ColumnKind::Numeric),
    ("dst_host_count", ColumnKind::Numeric),
    ("dst_host_srv_count", ColumnKind::Numeric),
    ("dst_host_same_srv_rate", ColumnKind::Numeric),
    ("dst_host_diff_srv_rate", ColumnKind::Numeric),
    ("dst_host_same_src_port_rate", ColumnKind::Numeric),
    ("dst_host_srv_diff_host_rate", ColumnKind::Numeric),
    ("dst_host_serror_rate", ColumnKind::Numeric),
    ("dst_host_srv_serror_rate", ColumnKind::Numeric),
    ("dst_host_rerror_rate", ColumnKind::Numeric),
    ("dst_host_srv_rerror_rate", ColumnKind::Numeric),
];

/// Fields per line: 41 features, the label, the difficulty.
pub const NSL_KDD_FIELDS: usize = 43;

/// Name of the label column (field 41, 0-based).
pub const NSL_KDD_LABEL_COLUMN: &str = "label";

/// Name of the difficulty column (field 42, 0-based).
pub const NSL_KDD_DIFFICULTY_COLUMN: &str = "difficulty_level";

/// File name of the category table looked for next to the data file.
pub const ATTACK_CATEGORIES_FILE: &str = "attack_categories.csv";

/// The five NSL-KDD classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AttackCategory {
    #[serde(rename = "normal")]
    Normal,
    #[serde(rename = "DoS")]
    Dos,
    #[serde(rename = "Probe")]
    Probe,
    #[serde(rename = "R2L")]
    R2l,
    #[serde(rename = "U2R")]
    U2r,
}

impl AttackCategory {
    /// All categories, in order.
    pub const ALL: [AttackCategory; 5] = [
        AttackCategory::Normal,
        AttackCategory::Dos,
        AttackCategory::Probe,
        AttackCategory::R2l,
        AttackCategory::U2r,
    ];

    /// `normal`, `DoS`, `Probe`, `R2L` or `U2R`, as in `attack_categories.csv`.
    pub fn as_str(self) -> &'static str {
        match self {
            AttackCategory::Normal => "normal",
            AttackCategory::Dos => "DoS",
            AttackCategory::Probe => "Probe",
            AttackCategory::R2l => "R2L",
            AttackCategory::U2r => "U2R",
        }
    }

    pub fn is_attack(self) -> bool {
        self != AttackCategory::Normal
    }
}

impl fmt::Display for AttackCategory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name given is not one of the five categories.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown attack category `{0}` (expected one of normal, DoS, Probe, R2L, U2R)")]
pub struct UnknownCategory(pub String);

impl FromStr for AttackCategory {
    type Err = UnknownCategory;

    /// Case-insensitive (`dos`, `DoS` and `DOS` are all [`AttackCategory::Dos`]).
    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        AttackCategory::ALL
            .into_iter()
            .find(|c| c.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownCategory(s.to_string()))
    }
}

/// The 40 labels of NSL-KDD (KDDTrain+, KDDTest+) and their categories, as in
/// `attack_categories.csv`: the 22 training attack types of KDD'99 and the 17 attack
/// types found only in the test sets, with the usual literature mapping.
const EMBEDDED_ATTACK_CATEGORIES: [(&str, AttackCategory); 40] = [
    ("normal", AttackCategory::Normal),
    ("back", AttackCategory::Dos),
    ("land", AttackCategory::Dos),
    ("neptune", AttackCategory::Dos),
    ("pod", AttackCategory::Dos),
    ("smurf", AttackCategory::Dos),
    ("teardrop", AttackCategory::Dos),
    ("ipsweep", AttackCategory::Probe),
    ("nmap", AttackCategory::Probe),
    ("portsweep", AttackCategory::Probe),
    ("satan", AttackCategory::Probe),
    ("ftp_write", AttackCategory::R2l),
    ("guess_passwd", AttackCategory::R2l),
    ("imap", AttackCategory::R2l),
    ("multihop", AttackCategory::R2l),
    ("phf", AttackCategory::R2l),
    ("spy", AttackCategory::R2l),
    ("warezclient", AttackCategory::R2l),
    ("warezmaster", AttackCategory::R2l),
    ("buffer_overflow", AttackCategory::U2r),
    ("loadmodule", AttackCategory::U2r),
    ("perl", AttackCategory::U2r),
    ("rootkit", AttackCategory::U2r),
    ("apache2", AttackCategory::Dos),
    ("mailbomb", AttackCategory::Dos),
    ("processtable", AttackCategory::Dos),
    ("udpstorm", AttackCategory::Dos),
    ("mscan", AttackCategory::Probe),
    ("saint", AttackCategory::Probe),
    ("named", AttackCategory::R2l),
    ("sendmail", AttackCategory::R2l),
    ("snmpgetattack", AttackCategory::R2l),
    ("snmpguess", AttackCategory::R2l),
    ("worm", AttackCategory::R2l),
    ("xlock", AttackCategory::R2l),
    ("xsnoop", AttackCategory::R2l),
    ("httptunnel", AttackCategory::U2r),
    ("ps", AttackCategory::U2r),
    ("sqlattack", AttackCategory::U2r),
    ("xterm", AttackCategory::U2r),
];

/// Attack label → category.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttackCategoryTable {
    map: HashMap<String, AttackCategory>,
    source: String,
}

impl AttackCategoryTable {
    /// The 40-label table built into this crate.
    pub fn embedded() -> Self {
        Self {
            map: EMBEDDED_ATTACK_CATEGORIES
                .iter()
                .map(|&(a, c)| (a.to_string(), c))
                .collect(),
            source: "(embedded)".into(),
        }
    }

    /// Loads a CSV table with a header that has (at least) the columns `attack` and
    /// `category`, like `attack_categories.csv`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let mut rdr = open_csv(
            path,
            csv::ReaderBuilder::new()
                .flexible(true)
                .trim(csv::Trim::All),
        )?;
        let header = rdr.byte_headers().map_err(|e| csv_error(path, e))?.clone();
        if header.is_empty() {
            return Err(TabularError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        let find = |name: &str| {
            header
                .iter()
                .position(|h| h == name.as_bytes())
                .ok_or_else(|| TabularError::MissingColumn {
                    path: path.to_path_buf(),
                    column: name.into(),
                    required_by: "the attack category table".into(),
                })
        };
        let (ia, ic) = (find("attack")?, find("category")?);
        let mut map = HashMap::new();
        let mut rec = ByteRecord::new();
        while rdr
            .read_byte_record(&mut rec)
            .map_err(|e| csv_error(path, e))?
        {
            let line = record_line(&mut rdr, &rec);
            let (Some(attack), Some(category)) = (rec.get(ia), rec.get(ic)) else {
                return Err(TabularError::FieldCount {
                    path: path.to_path_buf(),
                    line,
                    expected: header.len(),
                    found: rec.len(),
                });
            };
            let attack = String::from_utf8_lossy(attack).into_owned();
            if attack.is_empty() {
                return Err(TabularError::BadValue {
                    path: path.to_path_buf(),
                    line,
                    column: "attack".into(),
                    expected: "an attack label".into(),
                    value: String::new(),
                });
            }
            let category =
                AttackCategory::from_str(&String::from_utf8_lossy(category)).map_err(|_| {
                    TabularError::BadValue {
                        path: path.to_path_buf(),
                        line,
                        column: "category".into(),
                        expected: "one of normal, DoS, Probe, R2L, U2R".into(),
                        value: show(category),
                    }
                })?;
            if let Some(old) = map.insert(attack.clone(), category)
                && old != category
            {
                return Err(TabularError::BadCategoryTable {
                    path: path.to_path_buf(),
                    line,
                    message: format!(
                        "attack `{attack}` is mapped to {old} on an earlier line and to {category} here"
                    ),
                });
            }
        }
        if map.is_empty() {
            return Err(TabularError::NoRows {
                path: path.to_path_buf(),
            });
        }
        Ok(Self {
            map,
            source: path.display().to_string(),
        })
    }

    /// The category of an attack label (exact, case-sensitive match).
    pub fn get(&self, attack: &str) -> Option<AttackCategory> {
        self.map.get(attack).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Where the table came from: a path, or `(embedded)`.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// All entries, sorted by label.
    pub fn entries(&self) -> Vec<(&str, AttackCategory)> {
        let mut v: Vec<_> = self.map.iter().map(|(a, &c)| (a.as_str(), c)).collect();
        v.sort_unstable();
        v
    }
}

/// Where the attack → category table comes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum CategorySource {
    /// `attack_categories.csv` next to the data file if it exists, else the embedded table.
    #[default]
    Auto,
    /// The table built into this crate.
    Embedded,
    /// This file (an error if it cannot be read).
    File(PathBuf),
}

/// Options of [`read_nsl_kdd_with`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NslKddOptions {
    pub categories: CategorySource,
}

/// An NSL-KDD file: the features and raw labels in `table`, plus per row the 5-class
/// category, the binary attack flag and the difficulty level.
#[derive(Debug, Clone, PartialEq)]
pub struct NslKdd {
    /// 41 feature columns ([`nsl_kdd_schema`]); labels are the raw attack names
    /// (`normal`, `neptune`, ...).
    pub table: RawTable,
    pub categories: Vec<AttackCategory>,
    pub is_attack: Vec<bool>,
    pub difficulty: Vec<u8>,
    /// [`AttackCategoryTable::source`] of the table used.
    pub category_source: String,
}

impl NslKdd {
    pub fn n_rows(&self) -> usize {
        self.table.n_rows()
    }

    /// The raw labels (`normal`, `neptune`, ...).
    pub fn labels(&self) -> &[String] {
        self.table.labels()
    }

    /// Rows per category (every category present, possibly with 0).
    pub fn category_counts(&self) -> BTreeMap<AttackCategory, usize> {
        let mut m: BTreeMap<_, _> = AttackCategory::ALL.iter().map(|&c| (c, 0)).collect();
        for c in &self.categories {
            *m.entry(*c).or_insert(0) += 1;
        }
        m
    }
}

/// The schema of the 41 NSL-KDD features.
pub fn nsl_kdd_schema() -> Schema {
    Schema {
        columns: NSL_KDD_FEATURES
            .iter()
            .map(|&(n, k)| ColumnSpec::new(n, k))
            .collect(),
    }
}

/// Reads an NSL-KDD file with the default options (category table next to the file,
/// else embedded).
pub fn read_nsl_kdd(path: impl AsRef<Path>) -> Result<NslKdd> {
    read_nsl_kdd_with(path, &NslKddOptions::default())
}

/// Reads an NSL-KDD file (plain or gzip).
pub fn read_nsl_kdd_with(path: impl AsRef<Path>, options: &NslKddOptions) -> Result<NslKdd> {
    let path = path.as_ref();
    let cats = match &options.categories {
        CategorySource::Auto => {
            let next = path.with_file_name(ATTACK_CATEGORIES_FILE);
            if next.is_file() {
                AttackCategoryTable::load(&next)?
            } else {
                AttackCategoryTable::embedded()
            }
        }
        CategorySource::Embedded => AttackCategoryTable::embedded(),
        CategorySource::File(p) => AttackCategoryTable::load(p)?,
    };
    let mut rdr = open_csv(
        path,
        csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .trim(csv::Trim::All),
    )?;
    let mut table = RawTable::new(nsl_kdd_schema())?;
    let (mut categories, mut is_attack, mut difficulty) = (Vec::new(), Vec::new(), Vec::new());
    let mut rec = ByteRecord::new();
    while rdr
        .read_byte_record(&mut rec)
        .map_err(|e| csv_error(path, e))?
    {
        let line = record_line(&mut rdr, &rec);
        if rec.len() != NSL_KDD_FIELDS {
            return Err(TabularError::FieldCount {
                path: path.to_path_buf(),
                line,
                expected: NSL_KDD_FIELDS,
                found: rec.len(),
            });
        }
        let bad = |column: &str, expected: &str, value: &[u8]| TabularError::BadValue {
            path: path.to_path_buf(),
            line,
            column: column.into(),
            expected: expected.into(),
            value: show(value),
        };
        let (cols, labels) = table.parts_mut();
        for (i, (col, field)) in cols.iter_mut().zip(rec.iter()).enumerate() {
            match col {
                ColumnData::Numeric(v) => match parse_f64(field) {
                    Some(x) if x.is_finite() => v.push(x),
                    _ => return Err(bad(NSL_KDD_FEATURES[i].0, "a finite number", field)),
                },
                ColumnData::Categorical(c) => c.push(&String::from_utf8_lossy(field)),
            }
        }
        let label = String::from_utf8_lossy(&rec[41]);
        let category = cats
            .get(&label)
            .ok_or_else(|| TabularError::UnknownAttack {
                path: path.to_path_buf(),
                line,
                label: label.to_string(),
                table: cats.source().to_string(),
            })?;
        let level = std::str::from_utf8(&rec[42])
            .ok()
            .and_then(|s| s.parse::<u8>().ok())
            .ok_or_else(|| {
                bad(
                    NSL_KDD_DIFFICULTY_COLUMN,
                    "an integer difficulty level (0-21)",
                    &rec[42],
                )
            })?;
        labels.push(label.into_owned());
        categories.push(category);
        is_attack.push(category.is_attack());
        difficulty.push(level);
    }
    if table.n_rows() == 0 {
        return Err(TabularError::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(NslKdd {
        table,
        categories,
        is_attack,
        difficulty,
        category_source: cats.source().to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::preprocess::{PreprocessOptions, Preprocessor};
    use std::io::Write;

    const DATA: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/nsl-kdd/");

    fn data(file: &str) -> PathBuf {
        let p = Path::new(DATA).join(file);
        assert!(p.is_file(), "NSL-KDD data file missing: {}", p.display());
        p
    }

    const ROW: &str = "0,tcp,ftp_data,SF,491,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,1.00,0.00,0.00,150,25,0.17,0.03,0.17,0.00,0.00,0.00,0.05,0.00";

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::File::create(&p)
            .and_then(|mut f| f.write_all(text.as_bytes()))
            .unwrap();
        p
    }

    #[test]
    fn embedded_tables_match_the_csv_files() {
        let loaded = AttackCategoryTable::load(data("attack_categories.csv")).unwrap();
        let embedded = AttackCategoryTable::embedded();
        assert_eq!(loaded.entries(), embedded.entries());
        assert_eq!(embedded.len(), 40);
        let text = std::fs::read_to_string(data("feature_names.csv")).unwrap();
        let rows: Vec<Vec<&str>> = text
            .lines()
            .skip(1)
            .map(|l| l.split(',').collect())
            .collect();
        for (i, (name, kind)) in NSL_KDD_FEATURES.iter().enumerate() {
            assert_eq!(rows[i][0], i.to_string());
            assert_eq!(rows[i][1], *name);
            let expected = match rows[i][2] {
                "symbolic" => ColumnKind::Categorical,
                "binary" => ColumnKind::Binary,
                _ => ColumnKind::Numeric,
            };
            assert_eq!(*kind, expected, "{name}");
        }
        assert_eq!(rows[41][1], NSL_KDD_LABEL_COLUMN);
        assert_eq!(rows[42][1], NSL_KDD_DIFFICULTY_COLUMN);
    }

    #[test]
    fn real_files_counts_and_122_features() {
        let train = read_nsl_kdd(data("KDDTrain+.txt.gz")).unwrap();
        assert_eq!(train.n_rows(), 125_973);
        assert!(train.category_source.ends_with(ATTACK_CATEGORIES_FILE));
        assert_eq!(
            train.labels().iter().filter(|l| *l == "normal").count(),
            67_343
        );
        assert_eq!(train.is_attack.iter().filter(|a| !**a).count(), 67_343);
        let counts = train.category_counts();
        assert_eq!(counts[&AttackCategory::Normal], 67_343);
        assert_eq!(counts[&AttackCategory::Dos], 45_927);
        assert_eq!(counts[&AttackCategory::Probe], 11_656);
        assert_eq!(counts[&AttackCategory::R2l], 995);
        assert_eq!(counts[&AttackCategory::U2r], 52);
        assert_eq!(train.table.label_counts()["neptune"], 41_214);
        assert!(train.difficulty.iter().all(|&d| d <= 21));
        assert_eq!(train.difficulty[0], 20);

        let test = read_nsl_kdd_with(
            data("KDDTest+.txt.gz"),
            &NslKddOptions {
                categories: CategorySource::Embedded,
            },
        )
        .unwrap();
        assert_eq!(test.n_rows(), 22_544);
        assert_eq!(test.category_source, "(embedded)");
        let counts = test.category_counts();
        assert_eq!(counts[&AttackCategory::Normal], 9_711);
        assert_eq!(counts[&AttackCategory::Dos], 7_458);
        assert_eq!(counts[&AttackCategory::Probe], 2_421);
        assert_eq!(counts[&AttackCategory::R2l], 2_754);
        assert_eq!(counts[&AttackCategory::U2r], 200);
        assert_eq!(
            read_nsl_kdd(data("KDDTest-21.txt.gz")).unwrap().n_rows(),
            11_850
        );

        let p = Preprocessor::fit(&train.table, PreprocessOptions::min_max()).unwrap();
        assert_eq!(p.n_features(), 122);
        assert_eq!(
            p.categories("protocol_type").unwrap(),
            ["icmp", "tcp", "udp"]
        );
        assert_eq!(p.categories("service").unwrap().len(), 70);
        assert_eq!(p.categories("flag").unwrap().len(), 11);
        let numeric = p
            .feature_names()
            .iter()
            .filter(|n| !n.contains('='))
            .count();
        assert_eq!(numeric, 38);
        assert_eq!(p.feature_names()[0], "duration");
        assert_eq!(p.feature_names()[1], "protocol_type=icmp");
        let m = p.transform(&train.table).unwrap();
        assert_eq!((m.rows(), m.cols()), (125_973, 122));
        assert!(m.as_slice().iter().all(|&x| (0.0..=1.0).contains(&x)));
        // Three one-hot groups: exactly three ones per row among the one-hot features.
        let onehot: Vec<usize> = (0..122)
            .filter(|&j| p.feature_names()[j].contains('='))
            .collect();
        assert!(
            m.iter_rows()
                .all(|r| onehot.iter().map(|&j| r[j]).sum::<f32>() == 3.0)
        );
        // src_bytes of the first row: 491 / max(src_bytes).
        let s = p.numeric_stats("src_bytes").unwrap();
        let j = p
            .feature_names()
            .iter()
            .position(|n| n == "src_bytes")
            .unwrap();
        assert_eq!(m.get(0, j), Some((491.0 / s.max) as f32));

        let (mt, unseen) = p.transform_with_report(&test.table).unwrap();
        assert_eq!((mt.rows(), mt.cols()), (22_544, 122));
        assert!(unseen.is_empty(), "{unseen}");
        // Reference: scikit-learn OneHotEncoder(handle_unknown="ignore") + MinMaxScaler()
        // fitted on KDDTrain+, applied to KDDTest+, columns in the same order.
        let total: f64 = mt.as_slice().iter().map(|&x| f64::from(x)).sum();
        assert!((total - 183_464.457_187_653_87).abs() < 0.05, "{total}");
        let col_sum = |j: usize| -> f64 { mt.iter_rows().map(|r| f64::from(r[j])).sum() };
        let reference = [114.989_256_082_781_7, 1043.0, 18880.0, 2621.0, 13.0, 15.0];
        for (j, r) in reference.iter().enumerate() {
            assert!(
                (col_sum(j) - r).abs() < 1e-3,
                "column {j}: {} vs {r}",
                col_sum(j)
            );
        }
        assert!((col_sum(j) - 0.169_826_929_558_029_1).abs() < 1e-6);
        // Test values beyond the training range are not clipped.
        let max = mt.as_slice().iter().fold(0f32, |a, &b| a.max(b));
        assert_eq!(max, 2.5);
    }

    #[test]
    fn plain_file_and_category_file_option() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(
            dir.path(),
            "t.txt",
            &format!("{ROW},normal,20\n{ROW},neptune,19\n"),
        );
        let cats = write(
            dir.path(),
            "cats.csv",
            "attack,category\nnormal,normal\nneptune,dos\n",
        );
        // No attack_categories.csv next to the file: embedded table.
        let d = read_nsl_kdd(&p).unwrap();
        assert_eq!(d.category_source, "(embedded)");
        assert_eq!(d.categories, [AttackCategory::Normal, AttackCategory::Dos]);
        assert_eq!(d.is_attack, [false, true]);
        assert_eq!(d.difficulty, [20, 19]);
        assert_eq!(
            d.table.cell(0, 2),
            Some(crate::table::Cell::Cat("ftp_data"))
        );
        assert_eq!(d.table.cell(0, 4), Some(crate::table::Cell::Num(491.0)));
        let opts = NslKddOptions {
            categories: CategorySource::File(cats.clone()),
        };
        let d = read_nsl_kdd_with(&p, &opts).unwrap();
        assert!(d.category_source.ends_with("cats.csv"));
        // A label the given table lacks is an error naming file, line and label.
        let p2 = write(
            dir.path(),
            "u.txt",
            &format!("{ROW},normal,20\n{ROW},smurf,19\n"),
        );
        let e = read_nsl_kdd_with(&p2, &opts).unwrap_err().to_string();
        assert!(
            e.contains("u.txt:2: column `label`: unknown attack label `smurf`"),
            "{e}"
        );
        assert!(e.contains("cats.csv"), "{e}");
    }

    #[test]
    fn error_messages_name_file_line_and_column() {
        let dir = tempfile::tempdir().unwrap();
        let bad_num = ROW.replacen("491", "4x1", 1);
        let p = write(
            dir.path(),
            "a.txt",
            &format!("{ROW},normal,20\n{bad_num},normal,20\n"),
        );
        let e = read_nsl_kdd(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("a.txt:2: column `src_bytes`: expected a finite number, found `4x1`"),
            "{e}"
        );

        let p = write(
            dir.path(),
            "b.txt",
            &format!("{ROW},normal,20\n{ROW},normal\n"),
        );
        let e = read_nsl_kdd(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("b.txt:2: expected 43 comma-separated fields, found 42"),
            "{e}"
        );

        let p = write(dir.path(), "c.txt", &format!("\n{ROW},normal,hard\n"));
        let e = read_nsl_kdd(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("c.txt:2: column `difficulty_level`: expected an integer difficulty level (0-21), found `hard`"),
            "{e}"
        );

        let p = write(
            dir.path(),
            "d.txt",
            &format!("{ROW},normal,20\n{ROW},nonsense,20\n"),
        );
        let e = read_nsl_kdd(&p).unwrap_err().to_string();
        assert!(
            e.contains("d.txt:2: column `label`: unknown attack label `nonsense`"),
            "{e}"
        );

        let p = write(dir.path(), "e.txt", "");
        let e = read_nsl_kdd(&p).unwrap_err().to_string();
        assert!(e.ends_with("e.txt: no data rows"), "{e}");

        let e = read_nsl_kdd(dir.path().join("missing.txt"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.txt: cannot read"), "{e}");

        let p = write(
            dir.path(),
            "nan.txt",
            &format!("{},normal,20\n", ROW.replacen("491", "NaN", 1)),
        );
        let e = read_nsl_kdd(&p).unwrap_err().to_string();
        assert!(e.contains("nan.txt:1: column `src_bytes`"), "{e}");
    }

    #[test]
    fn category_table_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "c1.csv", "name,category\nnormal,normal\n");
        let e = AttackCategoryTable::load(&p).unwrap_err().to_string();
        assert!(e.contains("c1.csv: missing column `attack`"), "{e}");
        let p = write(
            dir.path(),
            "c2.csv",
            "attack,category\nnormal,normal\nsmurf,Flood\n",
        );
        let e = AttackCategoryTable::load(&p).unwrap_err().to_string();
        assert!(
            e.ends_with("c2.csv:3: column `category`: expected one of normal, DoS, Probe, R2L, U2R, found `Flood`"),
            "{e}"
        );
        let p = write(
            dir.path(),
            "c3.csv",
            "attack,category\nsmurf,DoS\nsmurf,Probe\n",
        );
        let e = AttackCategoryTable::load(&p).unwrap_err().to_string();
        assert!(
            e.contains("c3.csv:3: attack `smurf` is mapped to DoS"),
            "{e}"
        );
        let p = write(dir.path(), "c4.csv", "attack,category\n");
        assert!(AttackCategoryTable::load(&p).is_err());
        // A broken table next to the data file is reported, not silently replaced.
        let data = write(dir.path(), "k.txt", &format!("{ROW},normal,20\n"));
        write(dir.path(), ATTACK_CATEGORIES_FILE, "attack\nnormal\n");
        assert!(read_nsl_kdd(&data).is_err());
    }

    #[test]
    fn category_names() {
        for c in AttackCategory::ALL {
            assert_eq!(c.as_str().parse::<AttackCategory>(), Ok(c));
            assert_eq!(
                serde_json::to_string(&c).unwrap(),
                format!("\"{}\"", c.as_str())
            );
        }
        assert_eq!("dos".parse::<AttackCategory>(), Ok(AttackCategory::Dos));
        assert!("worm".parse::<AttackCategory>().is_err());
    }

    /// Reading speed; run with `cargo test --release -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn timing_read_train() {
        let t = std::time::Instant::now();
        let d = read_nsl_kdd(data("KDDTrain+.txt.gz")).unwrap();
        let read = t.elapsed();
        let p = Preprocessor::fit(&d.table, PreprocessOptions::min_max()).unwrap();
        let fit = t.elapsed() - read;
        let m = p.transform(&d.table).unwrap();
        let all = t.elapsed();
        eprintln!(
            "read {} rows in {read:?}, fit in {fit:?}, transform to {}x{} in {:?}",
            d.n_rows(),
            m.rows(),
            m.cols(),
            all - read - fit
        );
    }
}
