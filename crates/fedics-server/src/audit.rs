//! The audit log: every state-changing request (POST, PUT, PATCH, DELETE) of an
//! authenticated caller, and every login attempt: who, what, when, and how it was answered,
//! with secrets redacted.

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use fedics_store::AuditEntry;

use crate::AppState;
use crate::auth::{Principal, client_ip};
use crate::error::ApiError;

/// A handler may name the object it created or changed (e.g. `alert:<id>`) by putting this
/// in its response's extensions; otherwise the target is derived from the path.
#[derive(Debug, Clone)]
pub struct AuditTarget(pub String);

/// Request fields never written to the log.
fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    ["password", "secret", "token", "api_key", "apikey"]
        .iter()
        .any(|s| k.contains(s))
}

fn redact(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if is_secret(k) {
                    *x = serde_json::Value::String("<redacted>".into());
                } else {
                    redact(x);
                }
            }
        }
        serde_json::Value::Array(a) => a.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The object a path acts on: `/api/alerts/<id>/status` → `alert:<id>`.
fn target_of(path: &str) -> Option<String> {
    let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
    let kind = match segs.as_slice() {
        ["api", "alerts", id, ..] if *id != "stats" => ("alert", *id),
        ["api", "predictions", id, ..] => ("prediction", *id),
        ["api", "fl", "rounds", id, ..] if *id != "trigger" && *id != "current" => {
            ("fl_round", *id)
        }
        ["api", "fl", "clients", id, ..] => ("fl_client", *id),
        _ => return None,
    };
    Some(format!("{}:{}", kind.0, kind.1))
}

/// Middleware recording state-changing requests. Reading the body here also enforces the
/// body size limit (413).
pub async fn layer(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !matches!(
        *req.method(),
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    ) {
        return next.run(req).await;
    }
    let limit = state.inner.config.body_limit;
    let (parts, body) = req.into_parts();
    let bytes = match axum::body::to_bytes(body, limit).await {
        Ok(b) => b,
        Err(_) => return ApiError::PayloadTooLarge { limit }.into_response(),
    };
    let principal = parts.extensions.get::<Principal>().cloned();
    let ip = client_ip(&parts.extensions);
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let mut detail = serde_json::from_slice::<serde_json::Value>(&bytes)
        .unwrap_or_else(|_| serde_json::json!({ "body_bytes": bytes.len() }));
    redact(&mut detail);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    // Anonymous requests refused for want of credentials changed nothing and are not
    // recorded (they would let anyone grow the log); login attempts always are.
    if principal.is_none() && path != "/api/auth/login" {
        return response;
    }

    let target = response
        .extensions()
        .get::<AuditTarget>()
        .map(|t| t.0.clone())
        .or_else(|| target_of(&path));
    let (actor, role) = match &principal {
        Some(p) => (p.name.clone(), p.role.as_str().to_string()),
        None => ("anonymous".to_string(), String::new()),
    };
    let entry = AuditEntry {
        timestamp: chrono::Utc::now(),
        actor,
        role,
        method,
        path,
        target,
        status: response.status().as_u16(),
        detail: serde_json::json!({ "request": detail }),
        client_ip: ip,
    };
    if let Err(e) = state.store().insert_audit(&entry).await {
        metrics::counter!("fedics_audit_failures_total").increment(1);
        tracing::error!(target: "fedics_server", error = %e, path = %entry.path, "could not write the audit log");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted_everywhere() {
        let mut v = serde_json::json!({"username": "a", "password": "p",
            "nested": [{"api_key": "k", "x": 1}], "jwt_secret": "s"});
        redact(&mut v);
        assert_eq!(v["password"], "<redacted>");
        assert_eq!(v["nested"][0]["api_key"], "<redacted>");
        assert_eq!(v["nested"][0]["x"], 1);
        assert_eq!(v["jwt_secret"], "<redacted>");
        assert_eq!(v["username"], "a");
    }

    #[test]
    fn targets_from_paths() {
        assert_eq!(
            target_of("/api/alerts/abc/status").as_deref(),
            Some("alert:abc")
        );
        assert_eq!(
            target_of("/api/fl/rounds/3/complete").as_deref(),
            Some("fl_round:3")
        );
        assert_eq!(target_of("/api/fl/rounds/trigger"), None);
        assert_eq!(target_of("/api/auth/login"), None);
    }
}
