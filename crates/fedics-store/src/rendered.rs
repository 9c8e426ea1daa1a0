//! Rendered alert list entries, kept by (id, version).
//!
//! The alert list is the API's hottest read, and most of its cost was turning stored rows into
//! JSON. Every write of an alert gives it a new version (migration 0006: a trigger, so writes
//! from outside this process count too), and a version is never given out twice, so the JSON
//! of an alert at a version never changes: [`Store::list_alerts_json`] asks the database for
//! the page's ids and versions, takes the entries it has rendered before from here, and reads
//! and renders only the rest.
//!
//! [`Store::list_alerts_json`]: crate::Store::list_alerts_json

use std::sync::Arc;

use uuid::Uuid;

/// Bytes of rendered entries kept per store handle (and its clones): some 40,000 alerts of
/// the pipeline's size.
const CAPACITY_BYTES: u64 = 32 << 20;
/// Bytes an entry costs besides its text (key, pointer, the cache's own bookkeeping).
const ENTRY_OVERHEAD: u64 = 64;
/// Rendered size of a typical alert, for sizing the cache's table.
const TYPICAL_ENTRY: u64 = 700;

type Key = (u128, i64);

#[derive(Clone)]
struct ByLength;

impl quick_cache::Weighter<Key, Arc<str>> for ByLength {
    fn weight(&self, _: &Key, json: &Arc<str>) -> u64 {
        json.len() as u64 + ENTRY_OVERHEAD
    }
}

/// The cache: an alert's id and version to its list entry, as `serde_json` writes an
/// `AlertRow`'s fields.
pub(crate) struct RenderedAlerts {
    cache: quick_cache::sync::Cache<Key, Arc<str>, ByLength>,
}

impl RenderedAlerts {
    pub(crate) fn new() -> Self {
        Self::with_capacity(CAPACITY_BYTES)
    }

    pub(crate) fn with_capacity(bytes: u64) -> Self {
        let items = usize::try_from(bytes / (TYPICAL_ENTRY + ENTRY_OVERHEAD)).unwrap_or(1);
        Self {
            cache: quick_cache::sync::Cache::with_weighter(items.max(1), bytes, ByLength),
        }
    }

    pub(crate) fn get(&self, id: Uuid, version: i64) -> Option<Arc<str>> {
        self.cache.get(&(id.as_u128(), version))
    }

    pub(crate) fn insert(&self, id: Uuid, version: i64, json: Arc<str>) {
        self.cache.insert((id.as_u128(), version), json);
    }

    /// Entries held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.cache.len()
    }
}

impl std::fmt::Debug for RenderedAlerts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenderedAlerts")
            .field("entries", &self.cache.len())
            .field("bytes", &self.cache.weight())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_found_only_at_its_version() {
        let cache = RenderedAlerts::new();
        let id = Uuid::new_v4();
        cache.insert(id, 7, Arc::from("{\"v\":7}"));
        assert_eq!(cache.get(id, 7).as_deref(), Some("{\"v\":7}"));
        assert_eq!(cache.get(id, 8), None);
        assert_eq!(cache.get(Uuid::new_v4(), 7), None);
    }

    #[test]
    fn the_cache_stays_within_its_byte_budget() {
        let cache = RenderedAlerts::with_capacity(100 * (TYPICAL_ENTRY + ENTRY_OVERHEAD));
        let entry: Arc<str> = Arc::from("x".repeat(TYPICAL_ENTRY as usize));
        for v in 0..10_000 {
            cache.insert(Uuid::new_v4(), v, entry.clone());
        }
        assert!(cache.len() <= 100, "{} entries", cache.len());
        assert!(cache.cache.weight() <= 100 * (TYPICAL_ENTRY + ENTRY_OVERHEAD));
    }
}
