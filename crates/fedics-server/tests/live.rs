//! The real server on a loopback port, the pipeline on simulated attacks, WebSocket
//! clients: every stored alert reaches each subscriber exactly once as `alert_created`, and
//! a client that stops reading is dropped without holding the others back.

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
use fedics_pipeline::{Components, DetectorFactory, Pipeline, PipelineConfig};
use fedics_sensors::{SimConfig, Simulator};
use fedics_server::{AppState, AuthConfig, ServerConfig};
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
