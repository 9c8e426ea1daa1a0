//! Hot swap: a [`ModelSlot`] holds the current model; detectors take a snapshot per batch
//! (one atomic load), so a new model takes effect at the next batch, no flow is scored
//! twice or skipped, and a batch never mixes two models. [`watch`] replaces the model
//! when its file changes on disk (model files are written atomically by rename).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwapOption;

/// The current model of a detector, shared by every detect worker and the reloader.
pub struct ModelSlot<M> {
    inner: Arc<ArcSwapOption<M>>,
}

impl<M> Clone for ModelSlot<M> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

impl<M> Default for ModelSlot<M> {
    fn default() -> Self {
        Self {
            inner: Arc::new(ArcSwapOption::empty()),
        }
    }
}

impl<M> ModelSlot<M> {
    pub fn new(model: Option<M>) -> Self {
        Self {
            inner: Arc::new(ArcSwapOption::from(model.map(Arc::new))),
        }
    }

    /// The current model (a cheap snapshot that stays valid while it is held).
    pub fn load(&self) -> Option<Arc<M>> {
        self.inner.load_full()
    }

    /// Replaces the model; later snapshots see the new one.
    pub fn store(&self, model: M) {
        self.inner.store(Some(Arc::new(model)));
    }
}

/// Stops the watcher thread when dropped.
pub struct WatchGuard {
    stop: Arc<AtomicBool>,
}

impl Drop for WatchGuard {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Watches `path` every `every`; when its modification time or size changes, loads it
/// with `load` and, if that succeeds, stores the model in `slot` (a file that fails to
/// load is logged and counted in `fedics_model_reload_failures_total`, and the current
/// model stays). The file as it is at the call counts as already loaded.
pub fn watch<M, F>(
    slot: ModelSlot<M>,
    path: PathBuf,
    every: Duration,
    load: F,
) -> std::io::Result<WatchGuard>
where
    M: Send + Sync + 'static,
    F: Fn(&Path) -> Result<(M, String), String> + Send + 'static,
{
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let mut seen = stamp(&path);
    std::thread::Builder::new()
        .name("model-watch".into())
        .spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                std::thread::sleep(every);
                let now = stamp(&path);
                if now.is_none() || now == seen {
                    continue;
                }
                seen = now;
                match load(&path) {
                    Ok((model, version)) => {
                        slot.store(model);
                        metrics::counter!("fedics_model_reloads_total").increment(1);
                        tracing::info!(path = %path.display(), %version, "model reloaded");
                    }
                    Err(e) => {
                        metrics::counter!("fedics_model_reload_failures_total").increment(1);
                        tracing::warn!(path = %path.display(), error = %e, "model file not loaded; keeping the current model");
                    }
                }
            }
        })?;
    Ok(WatchGuard { stop })
}
