//! The stage loops. Each one polls a batch from its consumer group, decodes and validates
//! every record (rejecting bad ones with a logged reason and a counter, never stopping),
//! does its work, sends its output, and only then commits: at-least-once delivery, with
//! idempotent ids downstream.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use fedics_bus::{Bus, BusError, Consumer, OutRecord, Record};
use fedics_core::{
    AlertEvent, AnomalyEvent, AttackClassification, DecodeError, DetectorEvidence, FlowRecord,
    SCHEMA_VERSION, attack, decode, encode, ids, topics,
};
use fedics_detect::{Classifier, Detector, JoinedFlow, Verdict};
use fedics_store::{ClassificationRecord, Store, StoredFlow, WriteBatch};

use crate::correlate::{Correlator, absorb};
use crate::join::{Completed, Join};
use crate::stats::{FacilityBatch, LatencyRecorder, Stats, now_micros};

/// Header carrying the wall-clock time (µs since epoch) a flow entered the pipeline.
pub const ORIGIN_HEADER: &str = "fedics-origin-us";

const POLL_TIMEOUT: Duration = Duration::from_millis(100);

pub(crate) struct StageCtx {
    pub stats: Arc<Stats>,
    pub latency: Arc<LatencyRecorder>,
    pub batch: usize,
}

static REJECT_LOGS: AtomicU64 = AtomicU64::new(0);

/// Counts and logs a rejected record. Logging is thinned after the first 20 so that a
/// hostile producer cannot flood the log: every 1000th is logged after that.
pub(crate) fn reject(stats: &Stats, stage: &'static str, rec: &Record, err: &DecodeError) {
    Stats::add(&stats.rejected, 1);
    metrics::counter!("fedics_rejects_total", "stage" => stage, "reason" => err.reason())
        .increment(1);
    let n = REJECT_LOGS.fetch_add(1, Ordering::Relaxed);
    if n < 20 || n.is_multiple_of(1000) {
        tracing::warn!(
            stage,
            topic = %rec.topic,
            partition = rec.partition,
            offset = rec.offset,
            reason = err.reason(),
            error = %err,
            rejected_so_far = n + 1,
            "rejected malformed event"
        );
    }
}

fn origin(rec: &Record) -> Option<u64> {
    let b = rec.header(ORIGIN_HEADER)?;
    Some(u64::from_le_bytes(b.try_into().ok()?))
}

fn with_origin(mut out: OutRecord, origin_us: Option<u64>) -> OutRecord {
    if let Some(o) = origin_us {
        out.headers
            .push((ORIGIN_HEADER.to_string(), o.to_le_bytes().to_vec()));
    }
    out
}

/// Polls, returning `None` when the bus is closed and drained.
async fn poll<C: Consumer>(
    consumer: &mut C,
    max: usize,
    timeout: Duration,
    stage: &'static str,
) -> Option<Vec<Record>> {
    match consumer.poll(max, timeout).await {
        Ok(b) => Some(b),
        Err(BusError::Closed) => None,
        Err(e) => {
            tracing::warn!(stage, error = %e, "poll failed; retrying");
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some(Vec::new())
        }
    }
}

/// Sends, returning `false` when the bus is closed (the stage then stops without commit).
async fn send<B: Bus>(bus: &B, topic: &str, out: Vec<OutRecord>, stage: &'static str) -> bool {
    if out.is_empty() {
        return true;
    }
    let n = out.len() as u64;
    match bus.send(topic, out).await {
        Ok(()) => {
            metrics::counter!("fedics_events_total", "topic" => topic.to_string()).increment(n);
            true
        }
        Err(e) => {
            tracing::warn!(stage, topic, error = %e, "send failed; stopping stage");
            false
        }
    }
}

fn commit<C: Consumer>(consumer: &mut C, batch: &[Record], stage: &'static str) {
    if let Err(e) = consumer.commit_batch(batch) {
        tracing::warn!(stage, error = %e, "commit failed; records will be redelivered");
    }
}

/// Source → `network_data`: publishes flows keyed by facility, stamped with their origin time.
pub async fn publish_flows<B: Bus>(
    bus: &B,
    flows: &[FlowRecord],
    stats: &Stats,
) -> Result<(), BusError> {
    let now = now_micros();
    let mut out = Vec::with_capacity(flows.len());
    for f in flows {
        let payload = encode(f).map_err(|e| BusError::Backend(e.to_string()))?;
        out.push(with_origin(
            OutRecord::new(f.facility_id.as_bytes(), payload),
            Some(now),
        ));
    }
    let n = out.len() as u64;
    bus.send(topics::NETWORK_DATA, out).await?;
    metrics::counter!("fedics_events_total", "topic" => topics::NETWORK_DATA).increment(n);
    Stats::add(&stats.flows_in, n);
    Ok(())
}

/// `network_data` → detectors → `anomalies` (one verdict per flow and detector).
pub(crate) async fn detect<B: Bus>(
    bus: B,
    mut consumer: B::Consumer,
    mut detectors: Vec<Box<dyn Detector>>,
    ctx: Arc<StageCtx>,
) {
    const STAGE: &str = "detect";
    while let Some(batch) = poll(&mut consumer, ctx.batch, POLL_TIMEOUT, STAGE).await {
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let mut out = Vec::with_capacity(batch.len() * detectors.len());
        let mut anomalies = 0;
        let mut flows: Vec<FlowRecord> = Vec::with_capacity(batch.len());
        let mut origins = Vec::with_capacity(batch.len());
        for rec in &batch {
            match decode::<FlowRecord>(&rec.payload) {
                Ok(f) => {
                    flows.push(f);
                    origins.push(origin(rec));
                }
                Err(e) => reject(&ctx.stats, STAGE, rec, &e),
            }
        }
        let mut verdicts: Vec<Vec<Verdict>> = (0..flows.len())
            .map(|_| Vec::with_capacity(detectors.len()))
            .collect();
        for d in detectors.iter_mut() {
            let vs = d.inspect_batch(&flows, &verdicts);
            if vs.len() != flows.len() {
                tracing::error!(
                    stage = STAGE,
                    detector = d.name(),
                    "detector returned {} verdicts for {} flows",
                    vs.len(),
                    flows.len()
                );
            }
            for (all, v) in verdicts.iter_mut().zip(vs) {
                all.push(v);
            }
        }
        let mut per_facility = FacilityBatch::default();
        for ((flow, vs), org) in flows.iter().zip(verdicts).zip(origins) {
            per_facility.flow(&flow.facility_id, vs.iter().any(|v| v.is_anomaly));
            let mut attached = false;
            for (d, v) in detectors.iter().zip(vs) {
                anomalies += u64::from(v.is_anomaly);
                // The record travels once per flow, with its first anomalous verdict.
                let attach = v.is_anomaly && !attached;
                attached |= attach;
                let ev = v.into_event(d.name(), d.layer(), flow, attach);
                match encode(&ev) {
                    Ok(p) => out.push(with_origin(
                        OutRecord::new(flow.facility_id.as_bytes(), p),
                        org,
                    )),
                    Err(e) => tracing::error!(stage = STAGE, error = %e, "cannot encode verdict"),
                }
            }
        }
        if !send(&bus, topics::ANOMALIES, out, STAGE).await {
            return;
        }
        commit(&mut consumer, &batch, STAGE);
        Stats::add(&ctx.stats.anomalies, anomalies);
        ctx.stats.facilities.add(per_facility);
        Stats::busy(&ctx.stats.busy_detect_ns, started);
        metrics::histogram!("fedics_stage_batch_seconds", "stage" => STAGE)
            .record(started.elapsed().as_secs_f64());
    }
}

/// `anomalies` → per-flow join (deadline) → classifier → `attack_classified`.
pub(crate) async fn classify<B: Bus>(
    bus: B,
    mut consumer: B::Consumer,
    mut classifier: Box<dyn Classifier>,
    mut join: Join,
    ctx: Arc<StageCtx>,
) {
    const STAGE: &str = "classify";
    let mut polled_next: Vec<u64> = Vec::new();
    loop {
        let timeout = join
            .next_deadline()
            .map(|d| {
                d.saturating_duration_since(Instant::now())
                    .min(POLL_TIMEOUT)
            })
            .unwrap_or(POLL_TIMEOUT);
        let Some(batch) = poll(
            &mut consumer,
            ctx.batch,
            timeout.max(Duration::from_millis(1)),
            STAGE,
        )
        .await
        else {
            // Bus closed and drained: decide what is still waiting.
            let rest = join.expire(Instant::now() + Duration::from_secs(3600));
            let _ = emit(&bus, classifier.as_mut(), rest, &ctx).await;
            return;
        };
        let now = Instant::now();
        let busy_since = now;
        let mut done: Vec<Completed> = Vec::new();
        for rec in &batch {
            let p = rec.partition as usize;
            if polled_next.len() <= p {
                polled_next.resize(p + 1, 0);
            }
            polled_next[p] = polled_next[p].max(rec.offset + 1);
            match decode::<AnomalyEvent>(&rec.payload) {
                Ok(ev) => {
                    if let Some(c) = join.offer(ev, rec.partition, rec.offset, origin(rec), now) {
                        done.push(c);
                    }
                }
                Err(e) => reject(&ctx.stats, STAGE, rec, &e),
            }
        }
        let expired = join.expire(Instant::now());
        Stats::add(&ctx.stats.join_deadline_expired, expired.len() as u64);
        done.extend(expired);
        if !done.is_empty() && !emit(&bus, classifier.as_mut(), done, &ctx).await {
            return;
        }
        for (p, &next) in polled_next.iter().enumerate() {
            if next > 0 {
                let to = join.commit_offset(p as u32, next);
                if let Err(e) = consumer.commit(p as u32, to) {
                    tracing::debug!(stage = STAGE, partition = p, error = %e, "commit skipped");
                }
            }
        }
        if !batch.is_empty() {
            Stats::busy(&ctx.stats.busy_classify_ns, busy_since);
        }
    }
}

async fn emit<B: Bus>(
    bus: &B,
    classifier: &mut dyn Classifier,
    done: Vec<Completed>,
    ctx: &StageCtx,
) -> bool {
    let started = Instant::now();
    let now_us = now_micros();
    let mut lat = Vec::with_capacity(done.len());
    let mut out = Vec::new();
    let n = done.len() as u64;
    for c in done {
        if let Some(o) = c.origin_us {
            lat.push(now_us.saturating_sub(o).min(u64::from(u32::MAX)) as u32);
        }
        // Only flagged flows are classified; a flagged verdict carries the flow context.
        let Some((first, context)) = c
            .verdicts
            .iter()
            .find_map(|v| v.is_anomaly.then_some(v).zip(v.context.as_ref()))
        else {
            continue;
        };
        let joined = JoinedFlow {
            flow_id: c.flow_id,
            facility_id: &first.facility_id,
            context,
            verdicts: &c.verdicts,
            missing: &c.missing,
            flow: c.verdicts.iter().find_map(|v| v.flow.as_deref()),
        };
        let Some(class) = classifier.classify(&joined) else {
            continue;
        };
        let tactic_ids = attack::technique(&class.technique_id)
            .map(|t| t.tactics.iter().map(|s| s.to_string()).collect())
            .unwrap_or_default();
        let ev = AttackClassification {
            schema_version: SCHEMA_VERSION,
            event_id: ids::child(c.flow_id, "classified"),
            flow_id: c.flow_id,
            facility_id: first.facility_id.clone(),
            timestamp: context.ts_end,
            technique_name: attack::technique_name(&class.technique_id).to_string(),
            technique_id: class.technique_id,
            tactic_ids,
            confidence: class.confidence,
            classifier: classifier.name().to_string(),
            classifier_version: classifier.version(),
            evidence: c.verdicts.iter().map(DetectorEvidence::from).collect(),
            missing_detectors: c.missing.clone(),
            context: *context,
            flow: c.verdicts.iter().find_map(|v| v.flow.clone()),
        };
        match encode(&ev) {
            Ok(p) => out.push(with_origin(
                OutRecord::new(ev.facility_id.as_bytes(), p),
                c.origin_us,
            )),
            Err(e) => {
                tracing::error!(stage = "classify", error = %e, "cannot encode classification")
            }
        }
    }
    ctx.latency.record_batch(&lat);
    let latency = metrics::histogram!("fedics_flow_latency_seconds");
    for l in &lat {
        latency.record(f64::from(*l) / 1e6);
    }
    Stats::add(&ctx.stats.flows_classified, n);
    Stats::add(&ctx.stats.attacks, out.len() as u64);
    let ok = send(bus, topics::ATTACK_CLASSIFIED, out, "classify").await;
    metrics::histogram!("fedics_stage_batch_seconds", "stage" => "classify")
        .record(started.elapsed().as_secs_f64());
    ok
}

/// `attack_classified` → incidents + predictor → `alerts` and `attack_predicted`.
pub(crate) async fn correlate<B: Bus>(
    bus: B,
    mut consumer: B::Consumer,
    mut correlator: Correlator,
    ctx: Arc<StageCtx>,
) {
    const STAGE: &str = "predict";
    while let Some(batch) = poll(&mut consumer, ctx.batch, POLL_TIMEOUT, STAGE).await {
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        // One update per incident per batch (up to AlertEvent::MAX_FLOWS flows each).
        let mut updates: Vec<AlertEvent> = Vec::new();
        let mut open: HashMap<uuid::Uuid, usize> = HashMap::new();
        let mut predictions = Vec::new();
        for rec in &batch {
            let c: AttackClassification = match decode(&rec.payload) {
                Ok(c) => c,
                Err(e) => {
                    reject(&ctx.stats, STAGE, rec, &e);
                    continue;
                }
            };
            let r = correlator.on_classification(&c);
            if r.new_incident {
                ctx.stats.incident(r.alert.severity);
            }
            if let Some(p) = &r.prediction
                && let Ok(b) = encode(p)
            {
                predictions.push(OutRecord::new(p.facility_id.as_bytes(), b));
            }
            let pending = match open.get(&r.alert.alert_id) {
                Some(&i) => absorb(&mut updates[i], r.alert),
                None => Some(r.alert),
            };
            if let Some(a) = pending {
                open.insert(a.alert_id, updates.len());
                updates.push(a);
            }
        }
        let mut alerts = Vec::with_capacity(updates.len());
        for a in &updates {
            match encode(a) {
                Ok(b) => alerts.push(OutRecord::new(a.facility_id.as_bytes(), b)),
                Err(e) => tracing::error!(stage = STAGE, error = %e, "cannot encode alert"),
            }
        }
        Stats::add(&ctx.stats.predictions, predictions.len() as u64);
        if !send(&bus, topics::ATTACK_PREDICTED, predictions, STAGE).await
            || !send(&bus, topics::ALERTS, alerts, STAGE).await
        {
            return;
        }
        commit(&mut consumer, &batch, STAGE);
        Stats::busy(&ctx.stats.busy_predict_ns, started);
    }
}

/// Writes a batch: transient failures (database busy, I/O) are retried with backoff until
/// they pass — nothing is committed before, so good data is never dropped; a permanent
/// failure (a record the store cannot accept) splits the batch to store every good record
/// and reject, count and log the bad ones, so one record can never block a partition.
pub async fn write(store: &Store, wb: WriteBatch, stats: &Stats, stage: &'static str) {
    let mut backoff = Duration::from_millis(100);
    loop {
        match store.apply(&wb).await {
            Ok(()) => return,
            Err(e) if e.is_permanent() => break,
            Err(e) => {
                Stats::add(&stats.store_errors, 1);
                metrics::counter!("fedics_store_errors_total").increment(1);
                tracing::error!(stage, error = %e, retry_in_ms = backoff.as_millis() as u64, "store write failed; retrying");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }
    }
    // One record at a time, to find the ones the store refuses.
    let singles = wb
        .alerts
        .into_iter()
        .map(|a| WriteBatch {
            alerts: vec![a],
            ..WriteBatch::default()
        })
        .chain(wb.classifications.into_iter().map(|c| WriteBatch {
            classifications: vec![c],
            ..WriteBatch::default()
        }))
        .chain(wb.predictions.into_iter().map(|p| WriteBatch {
            predictions: vec![p],
            ..WriteBatch::default()
        }));
    for one in singles {
        let mut backoff = Duration::from_millis(100);
        loop {
            match store.apply(&one).await {
                Ok(()) => break,
                Err(e) if e.is_permanent() => {
                    Stats::add(&stats.rejected, 1);
                    metrics::counter!("fedics_rejects_total", "stage" => stage, "reason" => "store_refused").increment(1);
                    tracing::warn!(stage, error = %e, "store refused a record; rejected");
                    break;
                }
                Err(e) => {
                    Stats::add(&stats.store_errors, 1);
                    tracing::error!(stage, error = %e, retry_in_ms = backoff.as_millis() as u64, "store write failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

/// `alerts` (or `attack_classified`) → store (see [`write`]).
pub(crate) async fn persist<C: Consumer>(
    mut consumer: C,
    store: Store,
    what: Persist,
    ctx: Arc<StageCtx>,
) {
    let stage = what.stage();
    while let Some(batch) = poll(&mut consumer, ctx.batch.max(4096), POLL_TIMEOUT, stage).await {
        if batch.is_empty() {
            continue;
        }
        let started = Instant::now();
        let mut wb = WriteBatch::default();
        for rec in &batch {
            let r = match what {
                Persist::Alerts => decode::<AlertEvent>(&rec.payload).map(|a| wb.alerts.push(a)),
                Persist::Classifications => {
                    decode_for_store(&rec.payload).map(|c| wb.classifications.push(c))
                }
            };
            if let Err(e) = r {
                reject(&ctx.stats, stage, rec, &e);
            }
        }
        let n = (wb.alerts.len() + wb.classifications.len()) as u64;
        write(&store, wb, &ctx.stats, stage).await;
        Stats::add(&ctx.stats.persisted, n);
        commit(&mut consumer, &batch, stage);
        Stats::busy(&ctx.stats.busy_persist_ns, started);
    }
}

#[derive(Debug, Clone, Copy)]
pub(crate) enum Persist {
    Alerts,
    Classifications,
}

impl Persist {
    fn stage(self) -> &'static str {
        match self {
            Persist::Alerts => "persist_alerts",
            Persist::Classifications => "persist_classifications",
        }
    }
}

/// The columns of an `attack_classified` event the store keeps, borrowed from the payload:
/// the attached flow record is skipped, not built, and the evidence stays the JSON it came
/// as (a third of the pipeline's persistence time went to rebuilding and re-encoding them).
#[derive(serde::Deserialize)]
struct ClassificationColumns<'a> {
    schema_version: u16,
    event_id: uuid::Uuid,
    flow_id: uuid::Uuid,
    facility_id: String,
    timestamp: chrono::DateTime<chrono::Utc>,
    technique_id: String,
    technique_name: String,
    confidence: f64,
    classifier: String,
    classifier_version: String,
    #[serde(borrow)]
    evidence: &'a serde_json::value::RawValue,
    #[serde(borrow, default)]
    flow: Option<&'a serde_json::value::RawValue>,
}

/// Decodes and validates the stored part of an `attack_classified` event, with the same
/// error kinds as [`decode`]; the evidence must be a JSON array of detector evidence.
fn decode_for_store(bytes: &[u8]) -> Result<ClassificationRecord, DecodeError> {
    use fedics_core::codec::ValidationError;
    let c: ClassificationColumns<'_> = serde_json::from_slice(bytes).map_err(|e| {
        // Same probe as the full decoder: report a newer producer as such.
        match decode::<AttackClassification>(bytes) {
            Err(d @ DecodeError::SchemaVersion { .. }) => d,
            _ => fedics_core::codec::from_serde(&e),
        }
    })?;
    if c.schema_version != SCHEMA_VERSION {
        return Err(DecodeError::SchemaVersion {
            found: u64::from(c.schema_version),
            expected: SCHEMA_VERSION,
        });
    }
    let invalid =
        |field: &str, expected: &str| DecodeError::Invalid(ValidationError::new(field, expected));
    if c.facility_id.trim().is_empty() {
        return Err(invalid("facility_id", "a non-empty string"));
    }
    if c.technique_id.trim().is_empty() {
        return Err(invalid("technique_id", "a non-empty string"));
    }
    if !(c.confidence.is_finite() && (0.0..=1.0).contains(&c.confidence)) {
        return Err(invalid("confidence", "a number in [0, 1]"));
    }
    let evidence = c.evidence.get();
    if !evidence.trim_start().starts_with('[') {
        return Err(invalid("evidence", "a JSON array of detector evidence"));
    }
    // The flow is validated like any flow (a forged record must not reach the store and
    // break reads later), then stored as the JSON it arrived as.
    let flow = match c.flow {
        Some(raw) => {
            let f: FlowRecord = decode(raw.get().as_bytes()).map_err(|e| match e {
                DecodeError::Invalid(v) => DecodeError::Invalid(ValidationError::new(
                    format!("flow.{}", v.field),
                    v.expected,
                )),
                other => other,
            })?;
            Some(StoredFlow {
                flow_id: f.flow_id,
                facility_id: f.facility_id,
                ts_start: f.ts_start,
                ts_end: f.ts_end,
                src_ip: f.src_ip,
                dst_ip: f.dst_ip,
                dst_port: f.dst_port,
                label: f.ground_truth.map(|g| g.label),
                record_json: raw.get().to_string(),
            })
        }
        None => None,
    };
    Ok(ClassificationRecord {
        id: c.event_id,
        flow_id: c.flow_id,
        facility_id: c.facility_id,
        timestamp: c.timestamp,
        technique_id: c.technique_id,
        technique_name: c.technique_name,
        confidence: c.confidence,
        classifier: c.classifier,
        classifier_version: c.classifier_version,
        evidence_json: evidence.to_string(),
        flow,
    })
}
