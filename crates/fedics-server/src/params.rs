//! Input extraction that names the offending field: query parameters, JSON bodies and path
//! ids. Every failure is a 422 listing each bad field (not just the first).

use std::str::FromStr;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::error::{ApiError, FieldError};

/// Longest free-text parameter accepted (search strings, facility ids).
pub const MAX_TEXT: usize = 256;

/// Query parameters, read field by field; errors accumulate until [`Params::finish`].
pub struct Params {
    pairs: Vec<(String, String)>,
    errors: Vec<FieldError>,
}

impl<S: Send + Sync> FromRequestParts<S> for Params {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Query(pairs) = Query::<Vec<(String, String)>>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::field("query", "", format!("malformed query string: {e}")))?;
        Ok(Params {
            pairs,
            errors: Vec::new(),
        })
    }
}

impl Params {
    #[cfg(test)]
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Params {
            pairs: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            errors: Vec::new(),
        }
    }

    fn raw(&self, name: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn fail(&mut self, name: &str, msg: impl Into<String>) {
        self.errors.push(FieldError::new("query", name, msg));
    }

    /// A text parameter: at most [`MAX_TEXT`] characters, no control characters (NUL
    /// bytes are refused by PostgreSQL and never legitimate here). Empty counts as absent.
    pub fn text(&mut self, name: &str) -> Option<String> {
        let v = self.raw(name)?.to_string();
        if v.is_empty() {
            return None;
        }
        match check_text(&v) {
            Ok(()) => Some(v),
            Err(msg) => {
                self.fail(name, msg);
                None
            }
        }
    }

    /// An integer in `min..=max`, or `default` when absent.
    pub fn int_in(&mut self, name: &str, min: i64, max: i64, default: i64) -> i64 {
        let Some(v) = self.raw(name) else {
            return default;
        };
        match v.trim().parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => n,
            Ok(n) => {
                self.fail(
                    name,
                    format!("{n} is out of range: expected an integer from {min} to {max}"),
                );
                default
            }
            Err(_) => {
                let msg = format!("{v:?} is not an integer (expected {min} to {max})");
                self.fail(name, msg);
                default
            }
        }
    }

    /// A boolean (`true`/`false`, `1`/`0`).
    pub fn bool(&mut self, name: &str) -> Option<bool> {
        let v = self.raw(name)?;
        match v.to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => Some(true),
            "false" | "0" | "no" => Some(false),
            "" => None,
            _ => {
                let msg = format!("{v:?} is not a boolean (expected true or false)");
                self.fail(name, msg);
                None
            }
        }
    }

    /// A value parsed with `FromStr`; `expected` says what is accepted.
    pub fn parse<T: FromStr>(&mut self, name: &str, expected: &str) -> Option<T> {
        let v = self.raw(name)?;
        if v.is_empty() {
            return None;
        }
        match v.parse::<T>() {
            Ok(t) => Some(t),
            Err(_) => {
                let msg = format!("{v:?} is not valid: expected {expected}");
                self.fail(name, msg);
                None
            }
        }
    }

    /// Ok, or a 422 with every invalid field.
    pub fn finish(self) -> Result<(), ApiError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Validation(self.errors))
        }
    }
}

/// Refuses control characters and overlong text.
pub fn check_text(v: &str) -> Result<(), String> {
    if v.chars().count() > MAX_TEXT {
        return Err(format!("longer than {MAX_TEXT} characters"));
    }
    if v.chars().any(|c| c.is_control()) {
        return Err("contains control characters (e.g. NUL)".into());
    }
    Ok(())
}

/// A UUID path segment (`name` is the route's parameter name).
pub fn path_uuid(name: &str, v: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(v).map_err(|_| {
        ApiError::Validation(vec![FieldError::new(
            "path",
            name,
            format!(
                "{:?} is not a UUID (expected e.g. 3f2504e0-4f89-11d3-9a0c-0305e82c3301)",
                truncate(v)
            ),
        )])
    })
}

/// An integer path segment.
pub fn path_int(name: &str, v: &str) -> Result<i64, ApiError> {
    v.parse::<i64>().map_err(|_| {
        ApiError::Validation(vec![FieldError::new(
            "path",
            name,
            format!("{:?} is not an integer", truncate(v)),
        )])
    })
}

fn truncate(v: &str) -> String {
    v.chars().take(64).collect()
}

/// A JSON request body decoded into `T`; a decoding failure is a 422 whose `loc` is the
/// path of the offending field (`["body", "sources", 0, "layer"]`).
pub struct ValidJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ValidJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type = req
            .headers()
            .get(axum::http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().starts_with("application/json"));
        let bytes = Bytes::from_request(req, state).await.map_err(|e| {
            if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge { limit: 0 }
            } else {
                ApiError::field("body", "", format!("cannot read the body: {e}"))
            }
        })?;
        if !json_type {
            return Err(ApiError::field(
                "body",
                "",
                "expected a JSON body (Content-Type: application/json)",
            ));
        }
        decode_json(&bytes).map(ValidJson)
    }
}

/// An optional JSON body: empty (or only whitespace) means `T::default()`; otherwise it is
/// decoded as by [`decode_json`].
pub fn optional_json<T: DeserializeOwned + Default>(bytes: &[u8]) -> Result<T, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        Ok(T::default())
    } else {
        decode_json(bytes)
    }
}

/// Decodes JSON, naming the field of the first error.
pub fn decode_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let mut loc: Vec<serde_json::Value> = vec!["body".into()];
        for seg in e.path().iter() {
            match seg {
                serde_path_to_error::Segment::Seq { index } => loc.push((*index).into()),
                serde_path_to_error::Segment::Map { key } => loc.push(key.clone().into()),
                serde_path_to_error::Segment::Enum { variant } => loc.push(variant.clone().into()),
                serde_path_to_error::Segment::Unknown => {}
            }
        }
        let inner = e.into_inner();
        let msg = inner.to_string();
        // serde reports a missing field at its parent: name the field itself.
        let kind = if let Some(field) = msg
            .strip_prefix("missing field `")
            .and_then(|r| r.split('`').next())
        {
            loc.push(field.into());
            "missing"
        } else if inner.is_syntax() || inner.is_eof() {
            "json_invalid"
        } else {
            "value_error"
        };
        ApiError::Validation(vec![FieldError {
            loc,
            msg,
            kind: kind.into(),
        }])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_collect_every_error() {
        let mut p = Params::from_pairs(&[("limit", "100000"), ("page", "-1"), ("search", "a\0b")]);
        assert_eq!(p.int_in("limit", 1, 1000, 50), 50);
        assert_eq!(p.int_in("page", 1, i64::from(u32::MAX), 1), 1);
        assert_eq!(p.text("search"), None);
        let Err(ApiError::Validation(errs)) = p.finish() else {
            panic!("expected validation errors");
        };
        let fields: Vec<_> = errs.iter().map(|e| e.loc[1].clone()).collect();
        assert_eq!(fields, vec!["limit", "page", "search"]);
    }

    #[test]
    fn json_errors_name_the_field() {
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Inner {
            layer: u8,
        }
        #[derive(serde::Deserialize, Debug)]
        #[allow(dead_code)]
        struct Outer {
            title: String,
            sources: Vec<Inner>,
        }
        let Err(ApiError::Validation(e)) =
            decode_json::<Outer>(br#"{"title":"x","sources":[{"layer":300}]}"#)
        else {
            panic!("expected an error");
        };
        assert_eq!(
            e[0].loc,
            vec![
                serde_json::json!("body"),
                "sources".into(),
                0.into(),
                "layer".into()
            ]
        );
        let Err(ApiError::Validation(e)) = decode_json::<Outer>(br#"{"sources":[]}"#) else {
            panic!("expected an error");
        };
        assert_eq!(e[0].loc, vec![serde_json::json!("body"), "title".into()]);
        assert_eq!(e[0].kind, "missing");
    }
}
