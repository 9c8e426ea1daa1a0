//! Test harness: a server over a fresh store of one engine, requests as a given role.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::IpAddr;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode};
use chrono::{DateTime, Utc};
use fedics_core::{
    AlertEvent, AlertSource, AlertStatus, AttackPrediction, PredictedTechnique, SCHEMA_VERSION,
    Severity,
};
use fedics_server::{AppState, AuthConfig, ServerConfig};
use fedics_store::testing::TestDb;
use fedics_store::{Engine, Role, Store, WriteBatch};
use serde_json::Value;
use tower::ServiceExt;
use uuid::Uuid;

pub const SECRET: &[u8] = b"test secret: 0123456789abcdef0123456789abcdef";

/// Runs a test body once per engine: `api_test!(name, |h| { … })` makes `name::sqlite` and
/// `name::postgres`.
#[macro_export]
macro_rules! api_test {
    ($name:ident, |$h:ident| $body:block) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let $h = common::Harness::new(fedics_store::Engine::Sqlite).await;
                $body
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let $h = common::Harness::new(fedics_store::Engine::Postgres).await;
                $body
            }
        }
    };
}

/// Who sends a request.
#[derive(Debug, Clone)]
pub enum Who {
    Anonymous,
    Viewer,
    Analyst,
    Admin,
    /// `Authorization: Bearer <token>`.
    Bearer(String),
    /// `X-API-Key: <key>`.
    ApiKey(String),
}

pub struct Harness {
    pub db: TestDb,
    pub store: Store,
    pub state: AppState,
    pub app: Router,
    pub auth: AuthConfig,
}

pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    /// Field names of a 422's `detail[].loc` (their last element).
    pub fn fields(&self) -> Vec<String> {
        self.body["detail"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|d| {
                        d["loc"].as_array()?.last().map(|v| match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        })
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Harness {
    pub async fn new(engine: Engine) -> Harness {
        Self::with_config(
            engine,
            ServerConfig {
                rate_limit_per_s: 0,
                ..ServerConfig::default()
            },
        )
        .await
    }

    pub async fn with_config(engine: Engine, config: ServerConfig) -> Harness {
        let db = TestDb::new(engine).await;
        let store = db.open().await;
        let auth = AuthConfig::enabled(SECRET.to_vec()).unwrap();
        let state = AppState::builder(store.clone(), auth.clone())
            .config(config)
            .build();
        let app = fedics_server::app(state.clone());
        Harness {
            db,
            store,
            state,
            app,
            auth,
        }
    }

    pub fn token(&self, role: Role) -> String {
        self.auth
            .issue_token(&format!("test-{}", role.as_str()), role)
            .unwrap()
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        who: Who,
        body: Option<Value>,
    ) -> Answer {
        let raw = body.map(|b| b.to_string().into_bytes());
        self.raw(method, path, who, raw, "application/json").await
    }

    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        who: Who,
        body: Option<Vec<u8>>,
        content_type: &str,
    ) -> Answer {
        let mut b = Request::builder().method(method).uri(path);
        let bearer = match &who {
            Who::Anonymous | Who::ApiKey(_) => None,
            Who::Viewer => Some(self.token(Role::Viewer)),
            Who::Analyst => Some(self.token(Role::Analyst)),
            Who::Admin => Some(self.token(Role::Admin)),
            Who::Bearer(t) => Some(t.clone()),
        };
        if let Some(t) = bearer {
            b = b.header("authorization", format!("Bearer {t}"));
        }
        if let Who::ApiKey(k) = &who {
            b = b.header("x-api-key", k.as_str());
        }
        let req = match body {
            Some(bytes) => b
                .header("content-type", content_type)
                .body(Body::from(bytes))
                .unwrap(),
            None => b.body(Body::empty()).unwrap(),
        };
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = axum::body::to_bytes(res.into_body(), 16 << 20)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Answer {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str, who: Who) -> Answer {
        self.request(Method::GET, path, who, None).await
    }

    pub async fn post(&self, path: &str, who: Who, body: Value) -> Answer {
        self.request(Method::POST, path, who, Some(body)).await
    }

    pub async fn put(&self, path: &str, who: Who, body: Value) -> Answer {
        self.request(Method::PUT, path, who, Some(body)).await
    }

    /// Stores alerts (and their flow links) as the pipeline would.
    pub async fn seed(&self, alerts: Vec<AlertEvent>) {
        self.store
            .apply(&WriteBatch {
                alerts,
                ..WriteBatch::default()
            })
            .await
            .unwrap();
    }
}

pub fn base() -> DateTime<Utc> {
    Utc::now() - chrono::Duration::hours(1)
}

pub fn uid(s: &str) -> Uuid {
    fedics_core::ids::derive(&[b"api-test", s.as_bytes()])
}

/// An alert update of incident `name`.
pub fn alert(
    name: &str,
    facility: &str,
    severity: Severity,
    technique: &str,
    at: DateTime<Utc>,
) -> AlertEvent {
    let ip: IpAddr = "10.0.0.5".parse().unwrap();
    let dst: IpAddr = "10.0.1.10".parse().unwrap();
    let mut model_versions = BTreeMap::new();
    model_versions.insert("iforest".to_string(), "if-1".to_string());
    model_versions.insert("evidence".to_string(), "ev-1".to_string());
    AlertEvent {
        schema_version: SCHEMA_VERSION,
        event_id: uid(&format!("{name}/event")),
        alert_id: uid(name),
        facility_id: facility.into(),
        timestamp: at,
        first_seen: at,
        last_seen: at,
        severity,
        title: format!(
            "{} at {facility}",
            fedics_core::attack::technique_name(technique)
        ),
        description: format!("incident {name}"),
        status: AlertStatus::New,
        attack_type: technique.into(),
        attack_name: fedics_core::attack::technique_name(technique).into(),
        tactic_ids: vec!["TA0102".into()],
        correlation_confidence: 0.8,
        correlation_summary: "test".into(),
        src_ip: ip,
        dst_ip: dst,
        sources: vec![AlertSource {
            layer: 1,
            model_name: "iforest".into(),
            model_version: "if-1".into(),
            confidence: 0.7,
            detection_time: at,
            evidence: "score above threshold".into(),
            context_evidence: serde_json::json!({
                "score": 0.71, "threshold": 0.6,
                "top_features": [
                    {"name": "packets_per_s", "value": 900.0, "contribution": 0.6},
                    {"name": "dst_ports", "value": 40.0, "contribution": 0.3}
                ]
            }),
        }],
        flow_ids: vec![uid(&format!("{name}/flow"))],
        model_versions,
        prediction: None,
    }
}

pub fn prediction(name: &str, alert: &AlertEvent, at: DateTime<Utc>) -> AttackPrediction {
    AttackPrediction {
        schema_version: SCHEMA_VERSION,
        event_id: uid(&format!("{name}/prediction")),
        facility_id: alert.facility_id.clone(),
        timestamp: at,
        alert_id: alert.alert_id,
        current_technique: alert.attack_type.clone(),
        current_technique_name: alert.attack_name.clone(),
        predicted: vec![
            PredictedTechnique {
                technique_id: "T0855".into(),
                technique_name: "Unauthorized Command Message".into(),
                probability: 0.6,
                rank: 1,
                timeframe: "5-15 minutes".into(),
            },
            PredictedTechnique {
                technique_id: "T0831".into(),
                technique_name: "Manipulation of Control".into(),
                probability: 0.3,
                rank: 2,
                timeframe: "15-60 minutes".into(),
            },
        ],
        model: "dirichlet-1".into(),
        observations: 12,
    }
}
