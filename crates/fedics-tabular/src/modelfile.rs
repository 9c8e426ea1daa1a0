//! The on-disk container every FedICS model file uses.
//!
//! ```text
//! offset  size  field
//! 0       8     magic  b"FEDICSMF"
//! 8       4     container version, u32 little-endian (this build writes and reads 1)
//! 12      8     header length H, u64 LE
//! 20      H     header: UTF-8 JSON {"kind", "format_version", "meta", "body"}
//! 20+H    8     payload length P, u64 LE
//! 28+H    P     payload (model weights, e.g. a burnpack record; may be empty)
//! 28+H+P  8     FNV-1a 64 of every preceding byte, u64 LE
//! ```
//!
//! `kind` names the model (`iforest`, `ae`, `lstm-ae`, `mlp`) and `format_version` the
//! version of that model's body and payload, so each model evolves its own format. A
//! reader refuses, with a message saying what it found and what it expected: a file that
//! is not a model file, another container or model format version, another kind, a
//! truncated file (lengths say how many bytes are missing), trailing bytes and a
//! checksum mismatch. Files are written atomically (temporary file in the same directory,
//! then rename), so a process that watches a model file for hot swap never reads half a
//! file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::fingerprint::Fnv1a64;

pub const MAGIC: &[u8; 8] = b"FEDICSMF";
pub const CONTAINER_VERSION: u32 = 1;
/// Largest header accepted (the header holds a preprocessor or a forest as JSON).
const MAX_HEADER: u64 = 1 << 30;

/// Metadata every model carries.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    /// Version id of this trained model (recorded in every anomaly it scores).
    pub version: String,
    /// RFC 3339 UTC time of training.
    pub created_at: String,
    /// FNV-1a 64 of the training data (see [`crate::RawTable::fingerprint`]).
    pub train_data_hash: String,
    pub n_train: usize,
    /// Names of the model's input features (after preprocessing).
    pub feature_names: Vec<String>,
    /// Anomaly threshold on the model's score, when the model has one.
    pub threshold: Option<f64>,
    /// Metrics measured at training time (loss, calibration, evaluation figures).
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    /// The software that wrote the file.
    pub written_by: String,
}

/// A decoded model file: its header and payload. The body is model specific.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelFile<B> {
    pub kind: String,
    pub format_version: u32,
    pub meta: ModelMeta,
    pub body: B,
    pub payload: Vec<u8>,
}

#[derive(Serialize)]
struct HeaderOut<'a, B> {
    kind: &'a str,
    format_version: u32,
    meta: &'a ModelMeta,
    body: &'a B,
}

#[derive(Deserialize)]
struct HeaderIn {
    kind: String,
    format_version: u32,
    meta: ModelMeta,
    body: serde_json::Value,
}

/// Why a model file could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("model file {}: {problem}", path.display())]
pub struct ModelFileError {
    pub path: PathBuf,
    pub problem: String,
}

fn fail(path: &Path, problem: impl Into<String>) -> ModelFileError {
    ModelFileError {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

impl<B: Serialize> ModelFile<B> {
    /// The file's bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>, serde_json::Error> {
        let header = serde_json::to_vec(&HeaderOut {
            kind: &self.kind,
            format_version: self.format_version,
            meta: &self.meta,
            body: &self.body,
        })?;
        let mut out = Vec::with_capacity(36 + header.len() + self.payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&CONTAINER_VERSION.to_le_bytes());
        out.extend_from_slice(&(header.len() as u64).to_le_bytes());
        out.extend_from_slice(&header);
        out.extend_from_slice(&(self.payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.payload);
        let mut h = Fnv1a64::new();
        h.update(&out);
        out.extend_from_slice(&h.finish().to_le_bytes());
        Ok(out)
    }

    /// Writes the file atomically (temporary file beside it, then rename).
    pub fn save(&self, path: &Path) -> Result<(), ModelFileError> {
        let bytes = self
            .to_bytes()
            .map_err(|e| fail(path, format!("cannot encode header: {e}")))?;
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "model".into());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            fail(path, format!("cannot write: {e}"))
        })
    }
}

impl<B: DeserializeOwned> ModelFile<B> {
    /// Reads and checks a model file of `kind` in `format_version`.
    pub fn load(path: &Path, kind: &str, format_version: u32) -> Result<Self, ModelFileError> {
        let bytes = std::fs::read(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
        Self::from_bytes(&bytes, kind, format_version).map_err(|problem| fail(path, problem))
    }

    /// Decodes a model file's bytes; the error says what is wrong.
    pub fn from_bytes(bytes: &[u8], kind: &str, format_version: u32) -> Result<Self, String> {
        if bytes.len() < 8 || &bytes[..8] != MAGIC {
            return Err("not a FedICS model file (no FEDICSMF signature)".into());
        }
        let mut cur = Cursor { bytes, at: 8 };
        let version = cur.u64_or_u32(4, "container version")? as u32;
        if version != CONTAINER_VERSION {
            return Err(format!(
                "container format version {version}; this build of FedICS reads version {CONTAINER_VERSION}"
            ));
        }
        let header_len = cur.u64_or_u32(8, "header length")?;
        if header_len > MAX_HEADER {
            return Err(format!("header length {header_len} is implausible"));
        }
        let header = cur.take(header_len as usize, "header")?;
        let payload_len = cur.u64_or_u32(8, "payload length")?;
        let payload_len = usize::try_from(payload_len)
            .map_err(|_| format!("payload length {payload_len} is implausible"))?;
        let payload = cur.take(payload_len, "payload")?.to_vec();
        let body_end = cur.at;
        let sum = cur.u64_or_u32(8, "checksum")?;
        if cur.at != bytes.len() {
            return Err(format!(
                "{} unexpected bytes after the checksum",
                bytes.len() - cur.at
            ));
        }
        let mut h = Fnv1a64::new();
        h.update(&bytes[..body_end]);
        if h.finish() != sum {
            return Err("checksum mismatch: the file is corrupted".into());
        }
        let head: HeaderIn =
            serde_json::from_slice(header).map_err(|e| format!("header is not valid: {e}"))?;
        if head.kind != kind {
            return Err(format!("holds a `{}` model, expected `{kind}`", head.kind));
        }
        if head.format_version != format_version {
            return Err(format!(
                "`{}` model format version {}; this build of FedICS reads version {format_version}",
                head.kind, head.format_version
            ));
        }
        let body: B = serde_json::from_value(head.body)
            .map_err(|e| format!("`{kind}` model body is not valid: {e}"))?;
        Ok(Self {
            kind: head.kind,
            format_version: head.format_version,
            meta: head.meta,
            body,
            payload,
        })
    }
}

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], String> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&e| e <= self.bytes.len())
            .ok_or_else(|| {
                format!(
                    "truncated: {what} needs {n} bytes at offset {}, the file has {} bytes",
                    self.at,
                    self.bytes.len()
                )
            })?;
        let s = &self.bytes[self.at..end];
        self.at = end;
        Ok(s)
    }

    /// A little-endian integer of `n` (4 or 8) bytes.
    fn u64_or_u32(&mut self, n: usize, what: &str) -> Result<u64, String> {
        let s = self.take(n, what)?;
        let mut buf = [0u8; 8];
        buf[..n].copy_from_slice(s);
        Ok(u64::from_le_bytes(buf))
    }
}

/// Reads only the kind and metadata of a model file (e.g. to list models or pick a loader).
pub fn peek(path: &Path) -> Result<(String, u32, ModelMeta), ModelFileError> {
    let bytes = std::fs::read(path).map_err(|e| fail(path, format!("cannot read: {e}")))?;
    let f = ModelFile::<serde_json::Value>::from_bytes_any(&bytes).map_err(|p| fail(path, p))?;
    Ok((f.kind, f.format_version, f.meta))
}

impl ModelFile<serde_json::Value> {
    fn from_bytes_any(bytes: &[u8]) -> Result<Self, String> {
        // Decode with a permissive kind/version by peeking at the header first.
        let kind_version = (|| {
            let len = u64::from_le_bytes(bytes.get(12..20)?.try_into().ok()?) as usize;
            let head: HeaderIn =
                serde_json::from_slice(bytes.get(20..20usize.checked_add(len)?)?).ok()?;
            Some((head.kind, head.format_version))
        })();
        match kind_version {
            Some((k, v)) => Self::from_bytes(bytes, &k, v),
            None => Self::from_bytes(bytes, "", 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ModelFile<BTreeMap<String, f64>> {
        ModelFile {
            kind: "ae".into(),
            format_version: 3,
            meta: ModelMeta {
                version: "ae-0123".into(),
                created_at: "2026-11-21T00:00:00Z".into(),
                train_data_hash: "00ff".into(),
                n_train: 10,
                feature_names: vec!["a".into(), "b".into()],
                threshold: Some(0.25),
                metrics: BTreeMap::from([("loss".to_string(), 0.5)]),
                written_by: "test".into(),
            },
            body: BTreeMap::from([("x".to_string(), 1.5)]),
            payload: vec![1, 2, 3, 4, 5],
        }
    }

    #[test]
    fn round_trip_and_refusals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.model");
        let m = sample();
        m.save(&path).unwrap();
        let back = ModelFile::<BTreeMap<String, f64>>::load(&path, "ae", 3).unwrap();
        assert_eq!(back, m);
        let (kind, v, meta) = peek(&path).unwrap();
        assert_eq!(
            (kind.as_str(), v, meta.version.as_str()),
            ("ae", 3, "ae-0123")
        );

        let err = |r: Result<ModelFile<BTreeMap<String, f64>>, ModelFileError>| {
            r.err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(
            err(ModelFile::load(&path, "mlp", 3)).contains("holds a `ae` model, expected `mlp`")
        );
        assert!(
            err(ModelFile::load(&path, "ae", 4))
                .contains("format version 3; this build of FedICS reads version 4")
        );

        let bytes = std::fs::read(&path).unwrap();
        for cut in [3, 10, 30, bytes.len() - 9, bytes.len() - 1] {
            std::fs::write(&path, &bytes[..cut]).unwrap();
            let e = err(ModelFile::load(&path, "ae", 3));
            assert!(
                e.contains("truncated") || e.contains("signature"),
                "{cut}: {e}"
            );
        }
        let mut flipped = bytes.clone();
        let n = flipped.len();
        flipped[n - 12] ^= 1;
        std::fs::write(&path, &flipped).unwrap();
        assert!(err(ModelFile::load(&path, "ae", 3)).contains("checksum mismatch"));
        let mut other = bytes.clone();
        other[8] = 2;
        std::fs::write(&path, &other).unwrap();
        assert!(err(ModelFile::load(&path, "ae", 3)).contains("container format version 2"));
        std::fs::write(&path, b"{\"not\": \"a model\"}").unwrap();
        assert!(err(ModelFile::load(&path, "ae", 3)).contains("not a FedICS model file"));
    }
}
