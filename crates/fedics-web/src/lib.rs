//! # fedics-web
//!
//! The SOC dashboard, embedded: the files `npm run build` wrote to `web/dist` are compiled
//! into the binary (see `build.rs`), so `fedics demo` and `fedics serve` serve the UI at `/`
//! with no CDN and no files beside the binary. `FEDICS_WEB_DIR=path/to/dist` serves a
//! directory instead (for UI development without rebuilding the binary).
//!
//! Routing (the UI routes on the client):
//! * a file that exists is served with its MIME type; hashed files under `/assets/` are
//!   cacheable for a year, everything else is revalidated;
//! * any other `GET`/`HEAD` path without a file extension, outside `/api/` and `/ws`, gets
//!   `index.html` (a client-side route such as `/alerts/…`);
//! * anything else is 404 (an API path never turns into the UI).

use std::borrow::Cow;
use std::path::PathBuf;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};

#[derive(rust_embed::Embed)]
#[folder = "../../web/dist"]
struct Assets;

/// Where the files come from.
#[derive(Debug, Clone)]
enum Source {
    Embedded,
    Dir(PathBuf),
}

impl Source {
    fn from_env() -> Self {
        match std::env::var_os("FEDICS_WEB_DIR") {
            Some(d) if !d.is_empty() => {
                let d = PathBuf::from(d);
                tracing::info!(dir = %d.display(), "serving the web UI from a directory (FEDICS_WEB_DIR)");
                Source::Dir(d)
            }
            _ => Source::Embedded,
        }
    }

    fn get(&self, path: &str) -> Option<Cow<'static, [u8]>> {
        match self {
            Source::Embedded => Assets::get(path).map(|f| f.data),
            Source::Dir(d) => {
                // `path` has no `..` component (checked by the caller).
                std::fs::read(d.join(path)).ok().map(Cow::Owned)
            }
        }
    }
}

/// Whether the embedded UI is the real one (false: the placeholder page of a build without
/// npm).
pub fn is_built() -> bool {
    Assets::get("index.html").is_some_and(|f| {
        !String::from_utf8_lossy(&f.data).contains("was not built into this binary")
    })
}

/// The UI as a fallback router: merge it after the API routes.
pub fn router() -> Router {
    let source = Source::from_env();
    Router::new().fallback(move |req: Request| {
        let source = source.clone();
        async move { serve(&source, req) }
    })
}

fn not_found() -> Response {
    (StatusCode::NOT_FOUND, "not found").into_response()
}

fn serve(source: &Source, req: Request) -> Response {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return StatusCode::METHOD_NOT_ALLOWED.into_response();
    }
    let path = req.uri().path().trim_start_matches('/');
    if path.starts_with("api/") || path == "api" || path == "ws" {
        return not_found();
    }
    if path.split('/').any(|c| c == ".." || c.starts_with('.')) || path.contains('\\') {
        return not_found();
    }
    let file = if path.is_empty() { "index.html" } else { path };
    if let Some(data) = source.get(file) {
        return respond(file, data);
    }
    let last = path.rsplit('/').next().unwrap_or("");
    if last.contains('.') {
        return not_found();
    }
    match source.get("index.html") {
        Some(data) => respond("index.html", data),
        None => not_found(),
    }
}

fn respond(file: &str, data: Cow<'static, [u8]>) -> Response {
    let mime = mime_for(file);
    let cache = if file.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let mut r = Response::new(Body::from(data));
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&mime) {
        h.insert(header::CONTENT_TYPE, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if file == "index.html" {
        // The UI loads nothing from other origins (air-gapped sites).
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
                 connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'self'",
            ),
        );
    }
    r
}

fn mime_for(file: &str) -> String {
    match Assets::get(file) {
        Some(f) => f.metadata.mimetype().to_string(),
        None => {
            let ext = file.rsplit('.').next().unwrap_or("");
            match ext {
                "html" => "text/html; charset=utf-8",
                "js" | "mjs" => "text/javascript; charset=utf-8",
                "css" => "text/css; charset=utf-8",
                "json" => "application/json",
                "svg" => "image/svg+xml",
                "png" => "image/png",
                "ico" => "image/x-icon",
                "woff2" => "font/woff2",
                _ => "application/octet-stream",
            }
            .to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    async fn get(path: &str) -> (StatusCode, String, Vec<u8>) {
        let r = router()
            .oneshot(Request::get(path).body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = r.status();
        let ct = r
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let body = axum::body::to_bytes(r.into_body(), usize::MAX)
            .await
            .unwrap()
            .to_vec();
        (status, ct, body)
    }

    #[tokio::test]
    async fn index_and_client_routes_get_the_page_api_paths_do_not() {
        let (s, ct, body) = get("/").await;
        assert_eq!(s, StatusCode::OK);
        assert!(ct.starts_with("text/html"), "{ct}");
        assert!(String::from_utf8_lossy(&body).contains("<html"));
        let (s, _, routed) = get("/alerts/123").await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(routed, body);
        assert_eq!(get("/api/nope").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get("/ws").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get("/missing.js").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get("/../Cargo.toml").await.0, StatusCode::NOT_FOUND);
        assert_eq!(get("/.env").await.0, StatusCode::NOT_FOUND);
    }

    #[tokio::test]
    async fn every_embedded_file_is_served_with_its_type() {
        for f in Assets::iter() {
            let (s, ct, body) = get(&format!("/{f}")).await;
            assert_eq!(s, StatusCode::OK, "{f}");
            assert!(!ct.is_empty(), "{f}");
            assert_eq!(body, Assets::get(&f).unwrap().data.to_vec(), "{f}");
        }
    }
}
