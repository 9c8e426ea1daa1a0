//! Records a federation into the store's FL tables (rounds, clients, privacy ledger), so the
//! API's `/api/fl/*` endpoints and `fl_progress` WebSocket messages show the real
//! federation. The aggregator's callbacks must not block: they hand off to a channel, and
//! one task writes in order.

use std::collections::HashMap;

use fedics_core::FlEvent;
use fedics_federation::{
    AggregatorConfig, ClientProgress, DpConfig, FlObserver, NoiseMode, RoundReport,
};
use fedics_fl::strategy::{RoundSettings, StrategyConfig};
use fedics_store::{
    ClientStatus, FlClientRow, FlDpSettings, FlFederationRow, FlRoundCompletion, FlRoundUpdate,
    NewFlRound, PrivacyEntry, RoundPhase, RoundStatus, Store,
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

/// Settings the rows need that the callbacks do not carry: the aggregator's own
/// configuration, recorded as the federation's row when the recorder starts.
#[derive(Clone)]
pub struct RecorderConfig {
    pub federation_id: String,
    pub total_sites: u32,
    pub strategy: StrategyConfig,
    pub settings: RoundSettings,
    pub dp: Option<DpConfig>,
}

impl RecorderConfig {
    /// The configuration of an aggregator of `total_sites` sites.
    pub fn of(federation_id: String, total_sites: usize, a: &AggregatorConfig) -> Self {
        Self {
            federation_id,
            total_sites: u32::try_from(total_sites).unwrap_or(u32::MAX),
            strategy: a.strategy.clone(),
            settings: a.settings.clone(),
            dp: a.dp,
        }
    }

    /// The federation's row in the store.
    pub fn federation_row(&self, now: chrono::DateTime<chrono::Utc>) -> FlFederationRow {
        FlFederationRow {
            id: self.federation_id.clone(),
            strategy: self.strategy.name().to_string(),
            strategy_params: strategy_params(&self.strategy),
            local_epochs: self.settings.local_epochs,
            // The f32 as written (0.01, not 0.009999999776…).
            learning_rate: self
                .settings
                .learning_rate
                .to_string()
                .parse()
                .unwrap_or(f64::from(self.settings.learning_rate)),
            fraction_fit: self.settings.fraction_fit,
            total_sites: self.total_sites,
            dp: self.dp.map(|d| FlDpSettings {
                noise_multiplier: d.noise_multiplier,
                clip_norm: d.clip,
                mode: match d.mode {
                    NoiseMode::Central => "central",
                    NoiseMode::Distributed => "distributed",
                }
                .into(),
                max_epsilon: d.budget.max_epsilon,
                delta: d.budget.delta,
            }),
            started_at: now,
            updated_at: now,
        }
    }
}

/// A strategy's numeric hyper-parameters by name (its serde form without the `name` tag;
/// an unset optional parameter is left out).
fn strategy_params(s: &StrategyConfig) -> std::collections::BTreeMap<String, f64> {
    match serde_json::to_value(s) {
        Ok(serde_json::Value::Object(m)) => m
            .into_iter()
            .filter(|(k, _)| k != "name")
            .filter_map(|(k, v)| v.as_f64().map(|v| (k, v)))
            .collect(),
        _ => Default::default(),
    }
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
    if let Err(e) = store
        .upsert_fl_federation(&c.federation_row(chrono::Utc::now()))
        .await
    {
        tracing::warn!(error = %e, "could not record the federation's configuration in the store");
    }
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
                            current_epoch: c.settings.local_epochs,
                            total_epochs: c.settings.local_epochs,
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
                total_epochs: c.settings.local_epochs,
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
    if let (Some(dp), Some(epsilon), Some(delta)) = (c.dp, r.epsilon, r.delta) {
        // The sampling rate the accountant charged (selected / allowed sites).
        let q = r.train_metrics.get("agg.dp_q").copied().unwrap_or(1.0);
        store
            .record_privacy(&PrivacyEntry {
                federation_id: c.federation_id.clone(),
                round_number: i64::from(r.round),
                site_id: None,
                sampling_rate: q,
                noise_multiplier: dp.noise_multiplier,
                // The round's bound (with adaptive clipping it moves from round to round).
                clip_norm: r
                    .train_metrics
                    .get("agg.dp_clip")
                    .copied()
                    .unwrap_or(dp.clip),
                epsilon,
                delta,
                recorded_at: chrono::Utc::now(),
            })
            .await?;
    }
    Ok(())
}

/// The observer of a federation run from the command line: a [`StoreRecorder`] on the
/// store `db` names (federation id `<prefix>-<random>`, the configuration of `aggregator`),
/// or one that ignores everything. The task finishes once the aggregator is gone and
/// everything is written.
pub async fn observer_for(
    db: Option<&str>,
    prefix: &str,
    sites: usize,
    aggregator: &AggregatorConfig,
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
        RecorderConfig::of(
            format!("{prefix}-{}", fedics_server::auth::random_hex(4)),
            sites,
            aggregator,
        ),
    );
    Ok((std::sync::Arc::new(r), Some(task)))
}
