//! Decoding bytes from a bus into validated events, with errors that say which field
//! was wrong and what was expected.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::SCHEMA_VERSION;

/// A field that failed a semantic check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: expected {expected}")]
pub struct ValidationError {
    pub field: String,
    pub expected: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, expected: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            expected: expected.into(),
        }
    }
}

/// Why a message could not be turned into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("malformed JSON at line {line} column {column}: {message}")]
    Json {
        line: usize,
        column: usize,
        message: String,
    },
    /// Well-formed JSON of the wrong shape: a missing field, a value of the wrong type.
    #[error("invalid event at line {line} column {column}: {message}")]
    Shape {
        line: usize,
        column: usize,
        message: String,
    },
    #[error("unsupported schema_version {found} (this build reads version {expected})")]
    SchemaVersion { found: u64, expected: u16 },
    #[error("invalid event: {0}")]
    Invalid(#[from] ValidationError),
}

impl DecodeError {
    /// A short, stable label for metrics (`reason` label of the reject counter).
    pub fn reason(&self) -> &'static str {
        match self {
            DecodeError::Json { .. } => "malformed_json",
            DecodeError::Shape { .. } => "invalid_field",
            DecodeError::SchemaVersion { .. } => "schema_version",
            DecodeError::Invalid(_) => "invalid_field",
        }
    }
}

/// Semantic checks beyond what the type system and serde enforce.
pub trait Validate {
    /// The schema version the event claims.
    fn schema_version(&self) -> u16;
    fn validate(&self) -> Result<(), ValidationError>;
}

#[derive(serde::Deserialize)]
struct VersionProbe {
    schema_version: Option<u64>,
}

/// Decodes and validates one event. A payload that fails to parse is probed for its
/// schema version so that a newer producer is reported as such, not as "missing field".
pub fn decode<T: DeserializeOwned + Validate>(bytes: &[u8]) -> Result<T, DecodeError> {
    match serde_json::from_slice::<T>(bytes) {
        Ok(v) => {
            if v.schema_version() != SCHEMA_VERSION {
                return Err(DecodeError::SchemaVersion {
                    found: u64::from(v.schema_version()),
                    expected: SCHEMA_VERSION,
                });
            }
            v.validate()?;
            Ok(v)
        }
        Err(e) => {
            if let Ok(VersionProbe {
                schema_version: Some(found),
            }) = serde_json::from_slice::<VersionProbe>(bytes)
                && found != u64::from(SCHEMA_VERSION)
            {
                return Err(DecodeError::SchemaVersion {
                    found,
                    expected: SCHEMA_VERSION,
                });
            }
            Err(from_serde(&e))
        }
    }
}

/// Maps a serde_json error to a syntax error or a shape error (missing or mistyped field).
pub fn from_serde(e: &serde_json::Error) -> DecodeError {
    let (line, column, message) = (e.line(), e.column(), e.to_string());
    match e.classify() {
        serde_json::error::Category::Data => DecodeError::Shape {
            line,
            column,
            message,
        },
        _ => DecodeError::Json {
            line,
            column,
            message,
        },
    }
}

/// Encodes an event as JSON. Serialising our own types cannot fail (no maps with
/// non-string keys, no foreign `Serialize` impls), but the error is still surfaced.
pub fn encode<T: Serialize>(event: &T) -> Result<Vec<u8>, serde_json::Error> {
    // Sized for a typical event, so most encodings never regrow the buffer.
    let mut buf = Vec::with_capacity(1024);
    serde_json::to_writer(&mut buf, event)?;
    Ok(buf)
}

pub(crate) fn version(v: u16) -> Result<(), ValidationError> {
    if v == SCHEMA_VERSION {
        Ok(())
    } else {
        Err(ValidationError::new(
            "schema_version",
            format!("{SCHEMA_VERSION} (found {v})"),
        ))
    }
}

pub(crate) fn finite(field: &str, v: f64) -> Result<(), ValidationError> {
    if v.is_finite() {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("a finite number (found {v})"),
        ))
    }
}

pub(crate) fn probability(field: &str, v: f64) -> Result<(), ValidationError> {
    if v.is_finite() && (0.0..=1.0).contains(&v) {
        Ok(())
    } else {
        Err(ValidationError::new(
            field,
            format!("a number in [0, 1] (found {v})"),
        ))
    }
}
