//! Records a federation into the store's FL tables (rounds, clients, privacy ledger), so the
//! API's `/api/fl/*` endpoints and `fl_progress` WebSocket messages show the real
//! federation. The aggregator's callbacks must not block: they hand off to a channel, and
//! one task writes in order.

use std::collections::HashMap;

use fedics_core::FlEvent;
use fedics_federation::{ClientProgress, FlObserver, RoundReport};
use fedics_store::{
    ClientStatus, FlClientRow, FlRoundCompletion, FlRoundUpdate, NewFlRound, PrivacyEntry,
    RoundPhase, RoundStatus, Store,
};
use tokio::sync::mpsc;

enum Msg {
    Event(FlEvent),
    Client(ClientProgress),
    Round(Box<RoundReport>),
}

/// An [`FlObserver`] writing to a store.
pub struct StoreRecorder {
    tx: mpsc::UnboundedSender<Msg>,
    rows: tokio::sync::watch::Receiver<Option<(u32, i64)>>,
}

/// Settings the rows need that the callbacks do not carry.
#[derive(Clone)]
pub struct RecorderConfig {
    pub federation_id: String,
    pub total_sites: u32,
    pub local_epochs: u32,
    pub dp: Option<(f64, f64, f64)>, // (noise multiplier, clip, q)
}

impl StoreRecorder {
    /// Starts the writer task; returns the observer and the task (finishes when the
    /// observer is dropped and everything is written).
    pub fn start(store: Store, config: RecorderConfig) -> (Self, tokio::task::JoinHandle<()>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (rows_tx, rows) = tokio::sync::watch::channel(None);
        let task = tokio::spawn(write(store, config, rx, rows_tx));
        (Self { tx, rows }, task)
    }

    /// The latest round written to the round table: (round number, row id).
    pub fn created_rounds(&self) -> tokio::sync::watch::Receiver<Option<(u32, i64)>> {
        self.rows.clone()
    }
}

impl FlObserver for StoreRecorder {
    fn event(&self, e: FlEvent) {
        let _ = self.tx.send(Msg::Event(e));
    }

    fn client_progress(&self, p: &ClientProgress) {
        let _ = self.tx.send(Msg::Client(p.clone()));
    }

    fn round_finished(&self, r: &RoundReport) {
        let _ = self.tx.send(Msg::Round(Box::new(r.clone())));
    }
}

async fn write(
    store: Store,
    c: RecorderConfig,
    mut rx: mpsc::UnboundedReceiver<Msg>,
    created: tokio::sync::watch::Sender<Option<(u32, i64)>>,
) {
    // Round number → row id, and (selected, updates received) for the progress.
    let mut rows: HashMap<u32, i64> = HashMap::new();
    let mut counts: HashMap<u32, (u32, u32)> = HashMap::new();
    while let Some(m) = rx.recv().await {
        let done = match m {
            Msg::Event(e) if e.phase == "round_started" => {
                let round = u32::try_from(e.round_id).unwrap_or(u32::MAX);
                let selected = e.metrics.get("selected").copied().unwrap_or(0.0) as u32;
                match store
                    .create_fl_round(&NewFlRound {
                        round_number: None,
                        total_clients: c.total_sites,
                        start_time: e.timestamp,
                    })
                    .await
                {
                    Ok(r) => {
                        rows.insert(round, r.id);
                        counts.insert(round, (selected, 0));
                        created.send_replace(Some((round, r.id)));
                        store
                            .update_fl_round(
                                r.id,
                                &FlRoundUpdate {
                                    phase: Some(RoundPhase::Training),
                                    clients_active: Some(selected),
                                    ..FlRoundUpdate::default()
                                },
                            )
                            .await
                            .map(|_| ())
                    }
                    Err(e) => Err(e),
                }
            }
            Msg::Event(_) => Ok(()),
            Msg::Client(p) if p.phase == "update_received" => match rows.get(&p.round) {
                Some(&round_id) => {
                    if let Some((selected, got)) = counts.get_mut(&p.round) {
                        *got += 1;
                        let all = *got >= *selected;
                        let progress = if *selected == 0 {
                            0
                        } else {
                            (u64::from(*got) * 100 / u64::from(*selected)).min(100) as u8
                        };
                        if let Err(e) = store
                            .update_fl_round(
                                round_id,
                                &FlRoundUpdate {
                                    progress: Some(progress),
                                    phase: all.then_some(RoundPhase::Aggregating),
                                    ..FlRoundUpdate::default()
                                },
                            )
                            .await
                        {
                            tracing::warn!(error = %e, "could not record the round's progress");
                        }
                    }
                    store
                        .upsert_fl_client(&FlClientRow {
                            id: format!("{}-r{}-{}", c.federation_id, p.round, p.site_id),
                            round_id,
                            facility_id: p.site_id.clone(),
                            name: p.site_id.clone(),
                            status: ClientStatus::Active,
                            progress: 100,
                            current_epoch: c.local_epochs,
                            total_epochs: c.local_epochs,
                            loss: p.metrics.get("loss").copied().filter(|v| v.is_finite()),
                            accuracy: p
                                .metrics
                                .get("accuracy")
                                .copied()
                                .filter(|v| (0.0..=1.0).contains(v)),
                            last_update: chrono::Utc::now(),
                        })
                        .await
                }
                None => Ok(()),
            },
            Msg::Client(_) => Ok(()),
            Msg::Round(r) => record_round(&store, &c, &rows, &r).await,
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "could not record the federation in the store");
        }
    }
}

async fn record_round(
    store: &Store,
    c: &RecorderConfig,
    rows: &HashMap<u32, i64>,
    r: &RoundReport,
) -> Result<(), fedics_store::StoreError> {
    let Some(&id) = rows.get(&r.round) else {
        return Ok(()); // refused before it started: nothing in the round table
    };
    for site in &r.dropped {
        store
            .upsert_fl_client(&FlClientRow {
                id: format!("{}-r{}-{}", c.federation_id, r.round, site),
                round_id: id,
                facility_id: site.clone(),
                name: site.clone(),
                status: ClientStatus::Offline,
                progress: 0,
                current_epoch: 0,
                total_epochs: c.local_epochs,
                loss: None,
                accuracy: None,
                last_update: chrono::Utc::now(),
            })
            .await?;
    }
    let accuracy = r
        .eval_metrics
        .get("accuracy")
        .or(r.train_metrics.get("accuracy"))
        .copied()
        .filter(|v| (0.0..=1.0).contains(v));
    store
        .complete_fl_round(
            id,
            &FlRoundCompletion {
                status: RoundStatus::Completed,
                model_accuracy: accuracy,
                epsilon: r.epsilon,
                end_time: chrono::Utc::now(),
            },
        )
        .await?;
    if let (Some((noise, clip, q)), Some(epsilon), Some(delta)) = (c.dp, r.epsilon, r.delta) {
        store
            .record_privacy(&PrivacyEntry {
                federation_id: c.federation_id.clone(),
                round_number: i64::from(r.round),
                site_id: None,
                sampling_rate: q,
                noise_multiplier: noise,
                clip_norm: clip,
                epsilon,
                delta,
                recorded_at: chrono::Utc::now(),
            })
            .await?;
    }
    Ok(())
}

/// The observer of a federation run from the command line: a [`StoreRecorder`] on the
/// store `db` names (federation id `<prefix>-<random>`, every site in every round: q = 1),
/// or one that ignores everything. The task finishes once the aggregator is gone and
/// everything is written.
pub async fn observer_for(
    db: Option<&str>,
    prefix: &str,
    sites: usize,
    local_epochs: u32,
    dp: Option<(f64, f64)>,
) -> anyhow::Result<(
    std::sync::Arc<dyn FlObserver>,
    Option<tokio::task::JoinHandle<()>>,
)> {
    use anyhow::Context;
    let Some(url) = db else {
        return Ok((std::sync::Arc::new(fedics_federation::NoopObserver), None));
    };
    let store = Store::open(url)
        .await
        .with_context(|| format!("opening the store {url}"))?;
    let (r, task) = StoreRecorder::start(
        store,
        RecorderConfig {
            federation_id: format!("{prefix}-{}", fedics_server::auth::random_hex(4)),
            total_sites: u32::try_from(sites).unwrap_or(u32::MAX),
            local_epochs,
            dp: dp.map(|(noise, clip)| (noise, clip, 1.0)),
        },
    );
    Ok((std::sync::Arc::new(r), Some(task)))
}
