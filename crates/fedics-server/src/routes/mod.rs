//! The router: every route, registered once through `utoipa_axum::routes!` so the OpenAPI
//! document and the served routes cannot differ, and the layers around them.

pub mod alerts;
pub mod fl;
pub mod mitre;
pub mod pipeline;
pub mod predictions;
pub mod system;

use std::time::Instant;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::FieldError;
use crate::{AppState, audit, auth, openapi, ws};

/// The API routes with their OpenAPI description (no state yet).
pub(crate) fn api_router() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .routes(routes!(alerts::list_alerts, alerts::create_alert))
        .routes(routes!(alerts::alert_stats))
        .routes(routes!(alerts::get_alert))
        .routes(routes!(alerts::set_status))
        .routes(routes!(alerts::alert_flows))
        .routes(routes!(alerts::alert_audit))
        .routes(routes!(fl::current_round))
        .routes(routes!(fl::list_rounds))
        .routes(routes!(fl::get_round))
        .routes(routes!(fl::trigger_round))
        .routes(routes!(fl::round_progress))
        .routes(routes!(fl::complete_round))
        .routes(routes!(fl::list_clients))
        .routes(routes!(fl::get_client, fl::update_client))
        .routes(routes!(fl::privacy_metrics))
        .routes(routes!(
            predictions::list_predictions,
            predictions::create_prediction
        ))
        .routes(routes!(predictions::latest_prediction))
        .routes(routes!(predictions::get_prediction))
        .routes(routes!(predictions::validate_prediction))
        .routes(routes!(mitre::graph))
        .routes(routes!(mitre::techniques))
        .routes(routes!(mitre::technique))
        .routes(routes!(system::login))
        .routes(routes!(system::me))
        .routes(routes!(system::audit_log))
        .routes(routes!(pipeline::counters))
        .routes(routes!(system::health))
        .routes(routes!(system::ready))
        .routes(routes!(system::metrics))
        .routes(routes!(ws::websocket))
}

/// The whole application with its state and layers.
pub(crate) fn router(state: AppState) -> Router {
    let (api, doc) = api_router().split_for_parts();
    let config = &state.inner.config;
    let ui = state.inner.ui.clone();
    let origins: Vec<HeaderValue> = config
        .cors_origins
        .iter()
        .filter_map(|o| HeaderValue::from_str(o).ok())
        .collect();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(origins))
        .allow_methods([Method::GET, Method::POST, Method::PUT, Method::DELETE])
        .allow_headers([
            axum::http::header::AUTHORIZATION,
            axum::http::header::CONTENT_TYPE,
            HeaderName::from_static("x-api-key"),
        ])
        .allow_credentials(true);
    let app = api
        .merge(SwaggerUi::new("/docs").url("/openapi.json", doc))
        .layer(middleware::from_fn_with_state(state.clone(), audit::layer))
        .layer(middleware::from_fn_with_state(state.clone(), auth::layer))
        .layer(axum::extract::DefaultBodyLimit::max(config.body_limit))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            config.request_timeout,
        ))
        .layer(cors)
        .layer(middleware::from_fn(http_metrics))
        .with_state(state);
    match ui {
        Some(ui) => app.fallback_service(ui),
        None => app,
    }
}

/// Counts requests and their latency per route and status (`fedics_http_*`).
async fn http_metrics(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| "unmatched".into());
    let method = req.method().to_string();
    let r = next.run(req).await;
    let status = r.status().as_u16().to_string();
    metrics::counter!("fedics_http_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("fedics_http_request_duration_seconds", "method" => method, "route" => route)
        .record(started.elapsed().as_secs_f64());
    r
}

/// Parses a plain string into a serde enum (`"high"` → `Severity::High`).
pub(crate) fn parse_enum<T: serde::de::DeserializeOwned>(s: &str) -> Option<T> {
    serde_json::from_value(serde_json::Value::String(s.to_string())).ok()
}

/// An ATT&CK technique id: `T` and four digits, optionally `.` and three (sub-technique).
pub(crate) fn check_technique_id(id: &str) -> Result<(), String> {
    let b = id.as_bytes();
    let ok = match b.len() {
        5 => b[0] == b'T' && b[1..].iter().all(u8::is_ascii_digit),
        9 => {
            b[0] == b'T'
                && b[1..5].iter().all(u8::is_ascii_digit)
                && b[5] == b'.'
                && b[6..].iter().all(u8::is_ascii_digit)
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{:?} is not an ATT&CK technique id (expected e.g. T0855)",
            id.chars().take(32).collect::<String>()
        ))
    }
}

/// Checks a body text field: length in `min..=max` characters, no control characters.
pub(crate) fn text_field(
    errors: &mut Vec<FieldError>,
    field: &str,
    v: &str,
    min: usize,
    max: usize,
) {
    let n = v.trim().chars().count();
    if n < min || v.chars().count() > max {
        errors.push(FieldError::new(
            "body",
            field,
            format!("expected {min} to {max} characters"),
        ));
    } else if v.chars().any(char::is_control) {
        errors.push(FieldError::new(
            "body",
            field,
            "contains control characters (e.g. NUL)",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn technique_ids() {
        assert!(check_technique_id("T0855").is_ok());
        assert!(check_technique_id("T0855.001").is_ok());
        assert!(check_technique_id("T085").is_err());
        assert!(check_technique_id("X0855").is_err());
        assert!(check_technique_id("T0855'--").is_err());
    }
}
