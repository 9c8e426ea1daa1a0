//! The real server on a loopback port, the pipeline on simulated attacks, WebSocket
//! clients: every stored alert reaches each subscriber exactly once as `alert_created`, a
//! client that stops reading is dropped without holding the others back, and the pipeline's
//! per-facility counters reach `dashboard_update` and `/api/pipeline/counters`.

mod common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use fedics_bus::embedded::{EmbeddedBus, EmbeddedConfig};
use fedics_detect::iforest_detector::{IForestDetector, IForestDetectorConfig};
use fedics_detect::rules::{AssetInventory, DEFAULT_RULES, RuleFile, RulesDetector};
use fedics_detect::{Detector, EvidenceClassifier};
use fedics_intel::{Predictor, PredictorConfig};
use fedics_pipeline::{Components, DetectorFactory, Liveness, Pipeline, PipelineConfig, Stats};
use fedics_sensors::{SimConfig, Simulator};
use fedics_server::{
    AppState, AuthConfig, FacilityCounters, PipelineCounters, PipelineStatus, ServerConfig,
};
use fedics_store::testing::TestDb;
use fedics_store::{Engine, Role, Store, WriteBatch};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use uuid::Uuid;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

struct Server {
    addr: SocketAddr,
    auth: AuthConfig,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
    }
}

async fn serve(store: Store, config: ServerConfig) -> Server {
    let auth = AuthConfig::enabled(common::SECRET.to_vec()).unwrap();
    let state = AppState::builder(store, auth.clone())
        .config(config)
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(fedics_server::serve(listener, state, async move {
        let _ = rx.await;
    }));
    Server {
        addr,
        auth,
        stop: Some(tx),
    }
}

async fn connect(server: &Server, rooms: &[&str]) -> Ws {
    let token = server.auth.issue_token("watcher", Role::Viewer).unwrap();
    let url = format!("ws://{}/ws?token={token}", server.addr);
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("ws connects");
    let hello = next_json(&mut ws).await.expect("hello");
    assert_eq!(hello["type"], "connection");
    ws.send(Message::text(
        json!({"action": "subscribe", "rooms": rooms}).to_string(),
    ))
    .await
    .unwrap();
    let ack = next_json(&mut ws).await.expect("ack");
    assert_eq!(ack["type"], "subscribed", "{ack}");
    ws
}

async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
            _ => return None,
        }
    }
}

/// Counts `alert_created` per alert id until `quiet` passes without a message.
async fn collect_created(ws: &mut Ws, quiet: Duration) -> HashMap<Uuid, usize> {
    let mut seen = HashMap::new();
    loop {
        match tokio::time::timeout(quiet, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "alert_created" {
                    let id: Uuid = v["data"]["id"].as_str().unwrap().parse().unwrap();
                    *seen.entry(id).or_insert(0) += 1;
                }
            }
            Ok(Some(Ok(_))) => {}
            _ => return seen,
        }
    }
}

fn components(sim: &Simulator, store: Store) -> Components {
    let assets: Vec<AssetInventory> = sim
        .topology()
        .iter()
        .map(|t| AssetInventory {
            facility: t.facility_id.clone(),
            plcs: t.plcs.clone(),
            writers: t.allowed_writers(),
        })
        .collect();
    let rules = RuleFile::parse(&format!(
        "{DEFAULT_RULES}{}",
        RuleFile::assets_toml(&assets)
    ))
    .expect("rules parse");
    let factory: DetectorFactory = Arc::new(move || {
        vec![
            Box::new(RulesDetector::new(rules.clone())) as Box<dyn Detector>,
            Box::new(IForestDetector::new(IForestDetectorConfig::default())),
        ]
    });
    Components {
        detectors: factory,
        classifier: Box::new(EvidenceClassifier::new()),
        predictor: Predictor::new(PredictorConfig::default(), None),
        store: Some(store),
    }
}

async fn pipeline_delivers_each_alert_once(engine: Engine) {
    let db = TestDb::new(engine).await;
    let store = db.open().await;
    let server = serve(
        store.clone(),
        ServerConfig {
            rate_limit_per_s: 0,
            ws_queue: 4096,
            ..ServerConfig::default()
        },
    )
    .await;
    let mut a = connect(&server, &["alerts"]).await;
    let mut b = connect(&server, &["alerts", "dashboard"]).await;

    let sim = Simulator::new(SimConfig {
        seed: 11,
        sites: 2,
        ..SimConfig::default()
    });
    let pipeline = Pipeline::start(
        EmbeddedBus::new(EmbeddedConfig::default()),
        PipelineConfig {
            join_deadline: Duration::from_millis(500),
            ..PipelineConfig::default()
        },
        components(&sim, store.clone()),
    )
    .unwrap();
    let flows: Vec<_> = sim.take(30_000).collect();
    let attacks = flows
        .iter()
        .filter(|f| f.ground_truth.as_ref().is_some_and(|g| g.label != "benign"))
        .count();
    assert!(attacks > 100, "the simulation has attacks ({attacks})");
    for chunk in flows.chunks(2048) {
        pipeline.publish(chunk).await.unwrap();
    }
    assert!(pipeline.drain(Duration::from_secs(300)).await);
    pipeline.shutdown(Duration::from_secs(30)).await;

    let stored: Vec<Uuid> = store
        .alert_ids_with_flows()
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert!(!stored.is_empty(), "the attacks raised alerts");
    for (name, ws) in [("a", &mut a), ("b", &mut b)] {
        let seen = collect_created(ws, Duration::from_secs(3)).await;
        assert_eq!(
            seen.len(),
            stored.len(),
            "client {name}: one alert_created per stored alert"
        );
        for id in &stored {
            assert_eq!(
                seen.get(id),
                Some(&1),
                "client {name}: alert {id} exactly once"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipeline_alerts_reach_each_subscriber_once_sqlite() {
    pipeline_delivers_each_alert_once(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pipeline_alerts_reach_each_subscriber_once_postgres() {
    pipeline_delivers_each_alert_once(Engine::Postgres).await;
}

/// The pipeline's counters as a server beside it sees them (the binary's `PipelineView`
/// does the same for every counter).
struct View {
    liveness: Liveness,
    stats: Arc<Stats>,
}

impl PipelineStatus for View {
    fn running(&self) -> bool {
        self.liveness.running()
    }

    fn snapshot(&self) -> PipelineCounters {
        let s = self.stats.snapshot();
        let f = self.stats.facilities.snapshot();
        let c = |c: fedics_pipeline::FacilityCount| FacilityCounters {
            flows_in: c.flows_in,
            anomalies: c.anomalies,
        };
        PipelineCounters {
            flows_in: s.flows_in,
            anomalies: s.anomalies,
            facilities: f.facilities.into_iter().map(|(k, v)| (k, c(v))).collect(),
            facilities_overflow: c(f.overflow),
            ..PipelineCounters::default()
        }
    }
}

async fn per_facility_counters(engine: Engine) {
    let db = TestDb::new(engine).await;
    let store = db.open().await;
    let sim = Simulator::new(SimConfig {
        seed: 5,
        sites: 2,
        ..SimConfig::default()
    });
    let facilities: Vec<String> = sim
        .topology()
        .iter()
        .map(|t| t.facility_id.clone())
        .collect();
    let pipeline = Pipeline::start(
        EmbeddedBus::new(EmbeddedConfig::default()),
        PipelineConfig {
            join_deadline: Duration::from_millis(500),
            ..PipelineConfig::default()
        },
        components(&sim, store.clone()),
    )
    .unwrap();
    let auth = AuthConfig::enabled(common::SECRET.to_vec()).unwrap();
    let state = AppState::builder(store.clone(), auth.clone())
        .config(ServerConfig {
            rate_limit_per_s: 0,
            dashboard_every: Duration::from_millis(100),
            ..ServerConfig::default()
        })
        .pipeline(Arc::new(View {
            liveness: pipeline.liveness(),
            stats: pipeline.stats().clone(),
        }))
        .build();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(fedics_server::serve(listener, state.clone(), async move {
        let _ = rx.await;
    }));
    let server = Server {
        addr,
        auth: auth.clone(),
        stop: Some(tx),
    };
    let mut ws = connect(&server, &["dashboard"]).await;

    let flows: Vec<_> = sim.take(12_000).collect();
    for chunk in flows.chunks(2048) {
        pipeline.publish(chunk).await.unwrap();
    }
    assert!(pipeline.drain(Duration::from_secs(300)).await);

    // The first dashboard_update that counts every flow (a bounded number of messages).
    let mut last = None;
    for _ in 0..3000 {
        let Some(m) = next_json(&mut ws).await else {
            break;
        };
        if m["type"] != "dashboard_update" {
            continue;
        }
        let p: PipelineCounters =
            serde_json::from_value(m["data"]["pipeline"].clone()).expect("typed counters");
        let counted: u64 = p.facilities.values().map(|f| f.flows_in).sum();
        if counted == flows.len() as u64 {
            last = Some((m["data"]["timestamp"].clone(), p));
            break;
        }
    }
    let (timestamp, p) = last.expect("a dashboard_update counting every flow");
    assert_eq!(
        p.facilities.keys().cloned().collect::<Vec<_>>(),
        facilities,
        "one entry per simulated facility"
    );
    for id in &facilities {
        let want = flows.iter().filter(|f| &f.facility_id == id).count() as u64;
        assert_eq!(p.facilities[id].flows_in, want, "{id}: flows counted");
        assert!(p.facilities[id].anomalies <= want, "{id}: anomalous flows");
    }
    assert_eq!(p.facilities_overflow, FacilityCounters::default());
    // Anomalous flows count each flow once; anomalies counts every anomalous verdict.
    let anomalous: u64 = p.facilities.values().map(|f| f.anomalies).sum();
    assert!(anomalous <= p.anomalies);
    assert_eq!(anomalous > 0, p.anomalies > 0);

    // The REST history holds that very sample.
    let app = fedics_server::app(state);
    let token = auth.issue_token("watcher", Role::Viewer).unwrap();
    let res = tower::ServiceExt::oneshot(
        app,
        axum::http::Request::get("/api/pipeline/counters")
            .header("authorization", format!("Bearer {token}"))
            .body(axum::body::Body::empty())
            .unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(res.status(), 200);
    let body = axum::body::to_bytes(res.into_body(), 1 << 24)
        .await
        .unwrap();
    let h: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(h["running"], true);
    assert_eq!(h["interval_s"], 0.1);
    let samples = h["samples"].as_array().unwrap();
    assert!(samples.len() <= fedics_server::HISTORY_MAX);
    let sample = samples
        .iter()
        .find(|s| s["timestamp"] == timestamp)
        .expect("the message's sample is kept");
    assert_eq!(
        serde_json::from_value::<PipelineCounters>(sample["counters"].clone()).unwrap(),
        p
    );
    pipeline.shutdown(Duration::from_secs(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_facility_counters_reach_the_dashboard_sqlite() {
    per_facility_counters(Engine::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn per_facility_counters_reach_the_dashboard_postgres() {
    per_facility_counters(Engine::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_client_is_dropped_and_the_others_keep_receiving() {
    let db = TestDb::new(Engine::Sqlite).await;
    let store = db.open().await;
    let server = serve(
        store.clone(),
        ServerConfig {
            rate_limit_per_s: 0,
            ws_queue: 64,
            ..ServerConfig::default()
        },
    )
    .await;
    let mut fast = connect(&server, &["alerts"]).await;
    let mut slow = connect(&server, &["alerts"]).await;
    // The fast client reads everything concurrently.
    let reader = tokio::spawn(async move {
        let seen = collect_created(&mut fast, Duration::from_secs(5)).await;
        seen.len()
    });
    // Large alerts, so the slow client's socket buffers fill and its queue with them.
    let total = 4000;
    for batch in 0..(total / 200) {
        let events = (0..200)
            .map(|i| {
                let mut e = common::alert(
                    &format!("slow-{batch}-{i}"),
                    "plant-a",
                    fedics_core::Severity::High,
                    "T0846",
                    common::base(),
                );
                e.description = "x".repeat(8000);
                e
            })
            .collect();
        store
            .apply(&WriteBatch {
                alerts: events,
                ..WriteBatch::default()
            })
            .await
            .unwrap();
    }
    assert_eq!(
        reader.await.unwrap(),
        total,
        "the fast client got every alert"
    );
    // The slow one is closed with 1013 and a reason once it reads again.
    let mut closed = None;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(10), slow.next()).await {
        match m {
            Ok(Message::Close(Some(frame))) => {
                closed = Some(frame);
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    let frame = closed.expect("the slow client was closed with a reason");
    assert_eq!(u16::from(frame.code), 1013);
    assert!(frame.reason.contains("too slow"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_needs_a_token_and_answers_the_protocol() {
    let db = TestDb::new(Engine::Sqlite).await;
    let store = db.open().await;
    let server = serve(store, ServerConfig::default()).await;
    let url = format!("ws://{}/ws", server.addr);
    let err = tokio_tungstenite::connect_async(url)
        .await
        .expect_err("refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(r) => assert_eq!(r.status(), 401),
        other => panic!("expected HTTP 401, got {other}"),
    }
    let mut ws = connect(&server, &["fl-status"]).await;
    ws.send(Message::text(r#"{"action":"ping"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "pong");
    ws.send(Message::text(r#"{"action":"fly"}"#)).await.unwrap();
    let e = next_json(&mut ws).await.unwrap();
    assert_eq!(e["type"], "error");
    assert!(e["message"].as_str().unwrap().contains("unknown action"));
    ws.send(Message::text(r#"{"action":"subscribe","room":"kitchen"}"#))
        .await
        .unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "error");
    ws.send(Message::text("{{{")).await.unwrap();
    assert_eq!(next_json(&mut ws).await.unwrap()["type"], "error");
}
