//! Per-site API keys: every call carries `authorization: Bearer <key>`; the aggregator knows
//! the key of each site id and compares in constant time.

use std::collections::BTreeMap;
use std::fmt;

use subtle::ConstantTimeEq;
use tonic::Status;
use tonic::metadata::MetadataMap;

/// The metadata key of the credentials.
pub const AUTHORIZATION: &str = "authorization";

/// The site ids and API keys the aggregator accepts.
#[derive(Clone, Default)]
pub struct SiteKeys {
    keys: BTreeMap<String, Vec<u8>>,
}

impl fmt::Debug for SiteKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never print the keys.
        f.debug_struct("SiteKeys")
            .field("sites", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl SiteKeys {
    /// No sites.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) a site's key (builder style).
    pub fn with(mut self, site_id: impl Into<String>, api_key: impl AsRef<[u8]>) -> Self {
        self.insert(site_id, api_key);
        self
    }

    /// Adds (or replaces) a site's key.
    pub fn insert(&mut self, site_id: impl Into<String>, api_key: impl AsRef<[u8]>) {
        self.keys.insert(site_id.into(), api_key.as_ref().to_vec());
    }

    /// Number of sites.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no site is configured.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Whether `site_id` is configured.
    pub fn contains(&self, site_id: &str) -> bool {
        self.keys.contains_key(site_id)
    }

    /// The configured site ids, sorted.
    pub fn site_ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Checks the bearer key in `metadata` against `site_id`'s key.
    ///
    /// # Errors
    /// `UNAUTHENTICATED` for missing or malformed credentials, an unknown site or a wrong key
    /// (the message does not say which of the last two).
    pub fn authenticate(&self, metadata: &MetadataMap, site_id: &str) -> Result<(), Status> {
        let presented = bearer(metadata)?;
        // Compare against a decoy key for unknown sites, so both paths do the same work.
        let (expected, known) = match self.keys.get(site_id) {
            Some(k) => (k.as_slice(), true),
            None => (&[0u8; 32][..], false),
        };
        let equal: bool = presented.as_bytes().ct_eq(expected).into();
        if known && equal {
            Ok(())
        } else {
            tracing::warn!(site_id, "refused credentials");
            Err(Status::unauthenticated("unknown site or invalid API key"))
        }
    }
}

/// The key of an `authorization: Bearer <key>` entry.
fn bearer(metadata: &MetadataMap) -> Result<&str, Status> {
    let value = metadata
        .get(AUTHORIZATION)
        .ok_or_else(|| Status::unauthenticated("missing authorization metadata"))?;
    let value = value
        .to_str()
        .map_err(|_| Status::unauthenticated("authorization metadata is not ASCII"))?;
    let (scheme, key) = value
        .split_once(' ')
        .ok_or_else(|| Status::unauthenticated("authorization must be `Bearer <key>`"))?;
    if !scheme.eq_ignore_ascii_case("bearer") || key.is_empty() {
        return Err(Status::unauthenticated(
            "authorization must be `Bearer <key>`",
        ));
    }
    Ok(key.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(v: &str) -> MetadataMap {
        let mut m = MetadataMap::new();
        m.insert(AUTHORIZATION, v.parse().unwrap());
        m
    }

    #[test]
    fn checks_site_and_key() {
        let keys = SiteKeys::new().with("a", "secret-a").with("b", "secret-b");
        assert!(keys.authenticate(&meta("Bearer secret-a"), "a").is_ok());
        assert!(keys.authenticate(&meta("bearer secret-b"), "b").is_ok());
        for (m, site) in [
            ("Bearer secret-b", "a"),
            ("Bearer secret-a", "c"),
            ("Basic secret-a", "a"),
            ("Bearer ", "a"),
            ("secret-a", "a"),
        ] {
            let err = keys.authenticate(&meta(m), site).unwrap_err();
            assert_eq!(err.code(), tonic::Code::Unauthenticated, "{m} {site}");
        }
        assert_eq!(
            keys.authenticate(&MetadataMap::new(), "a")
                .unwrap_err()
                .code(),
            tonic::Code::Unauthenticated
        );
        assert!(!format!("{keys:?}").contains("secret"));
    }
}
