//! `/ws`: the seeds' WebSocket protocol, driven by the store's change feed.
//!
//! * On connect the server sends `{"type": "connection", "data": {…}}`.
//! * Client messages: `{"action": "subscribe" | "unsubscribe", "room": R}` (or `"rooms":
//!   [R…]`; `"type"` is accepted in place of `"action"`) with rooms `alerts`, `fl-status`,
//!   `attack-graph`, `dashboard`; `{"action": "ping"}` → `{"type": "pong"}`; anything else →
//!   `{"type": "error", "message"}`.
//! * Server pushes `{"type", "data"}`: `alert_created`, `alert_updated` (rooms `alerts`,
//!   `dashboard`), `attack_detected` and `prediction_created`/`prediction_updated`
//!   (`attack-graph`, `dashboard`), `fl_progress` (`fl-status`, `dashboard`) and periodic
//!   `dashboard_update` (`dashboard`: alert stats, the pipeline's cumulative counters as in
//!   [`crate::PipelineCounters`] with `facilities` = `{"<facility>": {"flows_in", "anomalies"}}`,
//!   the current round, connections, timestamp). Each tick's counters are also kept as a
//!   sample for `GET /api/pipeline/counters`.
//!
//! Each message is built and serialised once and delivered once to every connection
//! subscribed to at least one of its rooms. Every connection has a bounded queue; a
//! connection whose queue is full is closed with code 1013 and a reason, so one slow client
//! never delays the others or grows memory.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use fedics_store::{Change, Store};
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::{Notify, broadcast, mpsc};

use crate::error::{ApiError, ErrorBody};
use crate::routes::pipeline::{HISTORY_MAX, PipelineSample};
use crate::{AppState, PipelineStatus, auth};

/// Room bits.
const ALERTS: u8 = 1;
const FL_STATUS: u8 = 2;
const ATTACK_GRAPH: u8 = 4;
const DASHBOARD: u8 = 8;

/// Room names and bits.
pub const ROOMS: [(&str, u8); 4] = [
    ("alerts", ALERTS),
    ("fl-status", FL_STATUS),
    ("attack-graph", ATTACK_GRAPH),
    ("dashboard", DASHBOARD),
];

fn room_bit(name: &str) -> Option<u8> {
    ROOMS.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

fn room_names(bits: u8) -> Vec<&'static str> {
    ROOMS
        .iter()
        .filter(|(_, b)| bits & b != 0)
        .map(|(n, _)| *n)
        .collect()
}

/// Shortest interval of `dashboard_update` (and of pipeline samples).
const MIN_DASHBOARD_EVERY: Duration = Duration::from_millis(100);

/// Close code for a client that cannot keep up (RFC 6455 1013, "try again later").
const CLOSE_TOO_SLOW: u16 = 1013;

/// Longest a single send to a client may take before the connection is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest the close frame to a dropped slow client may wait for it to read.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(30);

struct Conn {
    rooms: Arc<AtomicU8>,
    tx: mpsc::Sender<Utf8Bytes>,
    kick: Arc<Notify>,
}

struct HubInner {
    conns: Mutex<HashMap<u64, Conn>>,
    next_id: AtomicU64,
    queue: usize,
    /// The pipeline's latest counter samples (one per `dashboard_update` tick), oldest first.
    samples: Mutex<VecDeque<PipelineSample>>,
    interval: Duration,
}

/// The connections and the tasks that feed them. Cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<HubInner>,
}

impl Hub {
    /// Starts following `store`'s change feed (and, every `dashboard_every`, sampling the
    /// pipeline's counters and sending `dashboard_update`). Needs a Tokio runtime.
    pub fn start(
        store: Store,
        queue: usize,
        dashboard_every: Duration,
        pipeline: Option<Arc<dyn PipelineStatus>>,
    ) -> Hub {
        let hub = Hub {
            inner: Arc::new(HubInner {
                conns: Mutex::new(HashMap::new()),
                next_id: AtomicU64::new(1),
                queue: queue.max(1),
                samples: Mutex::new(VecDeque::with_capacity(HISTORY_MAX)),
                interval: dashboard_every.max(MIN_DASHBOARD_EVERY),
            }),
        };
        let rx = store.subscribe_changes();
        tokio::spawn(follow_changes(hub.clone(), store.clone(), rx));
        tokio::spawn(dashboard_updates(hub.clone(), store, pipeline));
        hub
    }

    /// The pipeline's latest counter samples, oldest first (empty without a pipeline).
    pub fn pipeline_samples(&self) -> Vec<PipelineSample> {
        self.samples().iter().cloned().collect()
    }

    /// Time between two samples (and two `dashboard_update` messages).
    pub fn sample_interval(&self) -> Duration {
        self.inner.interval
    }

    fn samples(&self) -> std::sync::MutexGuard<'_, VecDeque<PipelineSample>> {
        // Pushes and pops only: poisoning cannot leave the queue inconsistent.
        self.inner
            .samples
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record_sample(&self, sample: PipelineSample) {
        let mut q = self.samples();
        while q.len() >= HISTORY_MAX {
            q.pop_front();
        }
        q.push_back(sample);
    }

    /// Connections open now.
    pub fn connections(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Conn>> {
        // A panic while holding the lock cannot leave the map inconsistent (every
        // operation on it is a single insert/remove/iteration), so poisoning is ignored.
        self.inner
            .conns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The union of every connection's rooms.
    fn subscribed(&self) -> u8 {
        self.lock()
            .values()
            .fold(0, |acc, c| acc | c.rooms.load(Ordering::Relaxed))
    }

    fn register(&self) -> (u64, Arc<AtomicU8>, mpsc::Receiver<Utf8Bytes>, Arc<Notify>) {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(self.inner.queue);
        let rooms = Arc::new(AtomicU8::new(0));
        let kick = Arc::new(Notify::new());
        self.lock().insert(
            id,
            Conn {
                rooms: rooms.clone(),
                tx,
                kick: kick.clone(),
            },
        );
        metrics::gauge!("fedics_ws_connections").increment(1.0);
        (id, rooms, rx, kick)
    }

    fn remove(&self, id: u64) {
        if self.lock().remove(&id).is_some() {
            metrics::gauge!("fedics_ws_connections").decrement(1.0);
        }
    }

    /// Queues `text` once for every connection in one of `rooms`; connections whose queue
    /// is full are dropped (and told why).
    fn broadcast(&self, rooms: u8, text: Utf8Bytes) {
        let mut slow = Vec::new();
        {
            let conns = self.lock();
            for (id, c) in conns.iter() {
                if c.rooms.load(Ordering::Relaxed) & rooms == 0 {
                    continue;
                }
                match c.tx.try_send(text.clone()) {
                    Ok(()) => metrics::counter!("fedics_ws_messages_total").increment(1),
                    Err(mpsc::error::TrySendError::Full(_)) => slow.push(*id),
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
        }
        for id in slow {
            if let Some(c) = self.lock().remove(&id) {
                metrics::gauge!("fedics_ws_connections").decrement(1.0);
                metrics::counter!("fedics_ws_slow_clients_dropped_total").increment(1);
                tracing::warn!(target: "fedics_server", connection = id, "WebSocket client too slow: closing it");
                c.kick.notify_one();
            }
        }
    }
}

fn message(kind: &str, data: impl serde::Serialize) -> Option<Utf8Bytes> {
    serde_json::to_string(&serde_json::json!({ "type": kind, "data": data }))
        .ok()
        .map(Utf8Bytes::from)
}

/// Turns committed store changes into messages for the rooms that want them.
async fn follow_changes(hub: Hub, store: Store, mut rx: broadcast::Receiver<Change>) {
    loop {
        let change = match rx.recv().await {
            Ok(c) => c,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                metrics::counter!("fedics_ws_changes_missed_total").increment(n);
                tracing::warn!(target: "fedics_server", missed = n, "WebSocket hub fell behind the store's changes");
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        };
        let wanted = hub.subscribed();
        if wanted == 0 {
            continue;
        }
        if let Err(e) = publish(&hub, &store, wanted, change).await {
            tracing::warn!(target: "fedics_server", error = %e, "could not build a WebSocket message");
        }
    }
}

async fn publish(
    hub: &Hub,
    store: &Store,
    wanted: u8,
    change: Change,
) -> Result<(), fedics_store::StoreError> {
    match change {
        Change::AlertCreated(id) | Change::AlertUpdated(id) => {
            let created = matches!(change, Change::AlertCreated(_));
            let Some(d) = store.get_alert(id).await? else {
                return Ok(());
            };
            let kind = if created {
                "alert_created"
            } else {
                "alert_updated"
            };
            if wanted & (ALERTS | DASHBOARD) != 0
                && let Some(m) = message(kind, &d.alert)
            {
                hub.broadcast(ALERTS | DASHBOARD, m);
            }
            if created
                && wanted & (ATTACK_GRAPH | DASHBOARD) != 0
                && let Some(m) = message(
                    "attack_detected",
                    serde_json::json!({
                        "alert_id": d.alert.id,
                        "facility_id": d.alert.facility_id,
                        "technique_id": d.alert.attack_type,
                        "technique_name": d.alert.attack_name,
                        "tactic_ids": d.alert.tactic_ids,
                        "severity": d.alert.severity,
                        "timestamp": d.alert.timestamp,
                    }),
                )
            {
                hub.broadcast(ATTACK_GRAPH | DASHBOARD, m);
            }
        }
        Change::PredictionCreated(id) | Change::PredictionUpdated(id) => {
            let kind = if matches!(change, Change::PredictionCreated(_)) {
                "prediction_created"
            } else {
                "prediction_updated"
            };
            if wanted & (ATTACK_GRAPH | DASHBOARD) != 0
                && let Some(p) = store.get_prediction(id).await?
                && let Some(m) = message(kind, &p)
            {
                hub.broadcast(ATTACK_GRAPH | DASHBOARD, m);
            }
        }
        Change::FlRound(id) => {
            if wanted & (FL_STATUS | DASHBOARD) != 0
                && let Some(r) = store.get_fl_round(id).await?
                && let Some(m) = message("fl_progress", serde_json::json!({ "round": r }))
            {
                hub.broadcast(FL_STATUS | DASHBOARD, m);
            }
        }
        Change::FlClient(id) => {
            if wanted & (FL_STATUS | DASHBOARD) != 0
                && let Some(c) = store.get_fl_client(&id).await?
                && let Some(m) = message("fl_progress", serde_json::json!({ "client": c }))
            {
                hub.broadcast(FL_STATUS | DASHBOARD, m);
            }
        }
    }
    Ok(())
}

/// Every interval: a sample of the pipeline's counters (kept for `/api/pipeline/counters`)
/// and, while someone is in the dashboard room, `dashboard_update`.
async fn dashboard_updates(hub: Hub, store: Store, pipeline: Option<Arc<dyn PipelineStatus>>) {
    let mut tick = tokio::time::interval(hub.inner.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if Arc::strong_count(&hub.inner) == 1 {
            return; // the server is gone
        }
        let timestamp = chrono::Utc::now();
        let counters = pipeline.as_ref().map(|p| p.snapshot());
        if let Some(c) = &counters {
            hub.record_sample(PipelineSample {
                timestamp,
                counters: c.clone(),
            });
        }
        if hub.subscribed() & DASHBOARD == 0 {
            continue;
        }
        let stats = match store.alert_stats().await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(target: "fedics_server", error = %e, "dashboard_update: alert stats");
                continue;
            }
        };
        let round = store.current_fl_round().await.ok().flatten();
        let data = serde_json::json!({
            "alerts": stats,
            "pipeline": counters,
            "fl_round": round,
            "connections": hub.connections(),
            "timestamp": timestamp,
        });
        if let Some(m) = message("dashboard_update", data) {
            hub.broadcast(DASHBOARD, m);
        }
    }
}

/// A client's message.
#[derive(Debug, Deserialize)]
struct ClientMessage {
    action: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    room: Option<String>,
    rooms: Option<Vec<String>>,
}

/// Query of `/ws`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WsQuery {
    /// Bearer token or API key (browsers cannot set headers on a WebSocket).
    token: Option<String>,
}

#[utoipa::path(get, path = "/ws", tag = "system",
    params(WsQuery),
    responses(
        (status = 101, description = "Switching to the WebSocket protocol (see the module docs for messages)"),
        (status = 401, description = "Not authenticated", body = ErrorBody)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn websocket(
    State(s): State<AppState>,
    Query(q): Query<WsQuery>,
    headers: HeaderMap,
    upgrade: WebSocketUpgrade,
) -> Response {
    match auth::authenticate(&s, &headers, q.token.as_deref()).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return ApiError::Unauthorized(
                "not authenticated: pass ?token=<bearer token or API key>".into(),
            )
            .into_response();
        }
        Err(e) => return e.into_response(),
    }
    let hub = s.hub().clone();
    upgrade
        .max_message_size(64 * 1024)
        .on_upgrade(move |socket| run_connection(hub, socket))
}

fn reply(kind: &str, extra: serde_json::Value) -> Message {
    let mut v = serde_json::json!({ "type": kind });
    if let (Some(m), serde_json::Value::Object(e)) = (v.as_object_mut(), extra) {
        m.extend(e);
    }
    Message::Text(Utf8Bytes::from(v.to_string()))
}

fn error_reply(message: impl Into<String>) -> Message {
    reply("error", serde_json::json!({ "message": message.into() }))
}

/// What to answer a client's text message with.
fn handle_client(text: &str, rooms: &AtomicU8) -> Message {
    let m: ClientMessage = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            return error_reply(format!(
                "invalid message (expected JSON with \"action\"): {e}"
            ));
        }
    };
    let action = m.action.or(m.kind).unwrap_or_default();
    match action.as_str() {
        "ping" => reply(
            "pong",
            serde_json::json!({ "timestamp": chrono::Utc::now() }),
        ),
        "subscribe" | "unsubscribe" => {
            let names: Vec<String> = m
                .rooms
                .unwrap_or_default()
                .into_iter()
                .chain(m.room)
                .collect();
            if names.is_empty() {
                return error_reply(format!("{action}: name a \"room\""));
            }
            let mut bits = 0u8;
            for n in &names {
                match room_bit(n) {
                    Some(b) => bits |= b,
                    None => {
                        return error_reply(format!(
                            "unknown room {:?}: expected one of alerts, fl-status, attack-graph, dashboard",
                            n.chars().take(64).collect::<String>()
                        ));
                    }
                }
            }
            let now = if action == "subscribe" {
                rooms.fetch_or(bits, Ordering::Relaxed) | bits
            } else {
                rooms.fetch_and(!bits, Ordering::Relaxed) & !bits
            };
            let kind = if action == "subscribe" {
                "subscribed"
            } else {
                "unsubscribed"
            };
            reply(
                kind,
                serde_json::json!({ "rooms": room_names(bits), "subscribed": room_names(now) }),
            )
        }
        "" => error_reply("missing \"action\""),
        other => error_reply(format!(
            "unknown action {:?}: expected subscribe, unsubscribe or ping",
            other.chars().take(64).collect::<String>()
        )),
    }
}

async fn run_connection(hub: Hub, socket: WebSocket) {
    let (id, rooms, mut rx, kick) = hub.register();
    let (mut sink, mut stream) = socket.split();
    let hello = reply(
        "connection",
        serde_json::json!({ "data": {
            "connection_id": id,
            "status": "connected",
            "rooms": ROOMS.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        }}),
    );
    if sink.send(hello).await.is_err() {
        hub.remove(id);
        return;
    }
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    let answer = handle_client(t.as_str(), &rooms);
                    if sink.send(answer).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Binary(_))) => {
                    if sink.send(error_reply("binary messages are not supported")).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
            },
            out = rx.recv() => match out {
                Some(text) => {
                    // A send blocks while the client's socket is full; being dropped for
                    // slowness interrupts it (the frame stays buffered ahead of the close).
                    let kicked = tokio::select! {
                        r = tokio::time::timeout(SEND_TIMEOUT, sink.send(Message::Text(text))) => {
                            if !matches!(r, Ok(Ok(()))) {
                                break;
                            }
                            false
                        }
                        _ = kick.notified() => true,
                    };
                    if kicked {
                        close_too_slow(&mut sink).await;
                        break;
                    }
                }
                None => break,
            },
            _ = kick.notified() => {
                close_too_slow(&mut sink).await;
                break;
            }
        }
    }
    hub.remove(id);
}

/// Tells a client it was dropped for not keeping up (waits a while for it to read).
async fn close_too_slow(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>) {
    let close = Message::Close(Some(CloseFrame {
        code: CLOSE_TOO_SLOW,
        reason: Utf8Bytes::from_static("client too slow: its message queue is full"),
    }));
    let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(close)).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: Message) -> serde_json::Value {
        match m {
            Message::Text(t) => serde_json::from_str(t.as_str()).unwrap(),
            other => panic!("expected text, got {other:?}"),
        }
    }

    #[test]
    fn protocol() {
        let rooms = AtomicU8::new(0);
        let r = text(handle_client(
            r#"{"action":"subscribe","room":"alerts"}"#,
            &rooms,
        ));
        assert_eq!(r["type"], "subscribed");
        assert_eq!(rooms.load(Ordering::Relaxed), ALERTS);
        let r = text(handle_client(
            r#"{"type":"subscribe","rooms":["dashboard","fl-status"]}"#,
            &rooms,
        ));
        assert_eq!(
            r["subscribed"],
            serde_json::json!(["alerts", "fl-status", "dashboard"])
        );
        let r = text(handle_client(
            r#"{"action":"unsubscribe","room":"alerts"}"#,
            &rooms,
        ));
        assert_eq!(r["type"], "unsubscribed");
        assert_eq!(rooms.load(Ordering::Relaxed), FL_STATUS | DASHBOARD);
        assert_eq!(
            text(handle_client(r#"{"action":"ping"}"#, &rooms))["type"],
            "pong"
        );
        for bad in [
            r#"{"action":"dance"}"#,
            "not json",
            r#"{"action":"subscribe","room":"x"}"#,
            "{}",
        ] {
            let r = text(handle_client(bad, &rooms));
            assert_eq!(r["type"], "error", "{bad}");
            assert!(r["message"].as_str().is_some_and(|m| !m.is_empty()));
        }
        assert_eq!(rooms.load(Ordering::Relaxed), FL_STATUS | DASHBOARD);
    }
}
