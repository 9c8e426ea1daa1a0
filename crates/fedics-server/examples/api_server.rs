//! The API server alone, for load tests (`scripts/load/alerts.sh`): the same router, auth
//! and store as `fedics serve`, without the pipeline, so a release build does not have to
//! compile the ML stack.
//!
//! ```text
//! cargo run --release -p fedics-server --example api_server -- \
//!     --db postgres://postgres@127.0.0.1:5432/test --bind 127.0.0.1:18080 [--token-out FILE] [--migrate-only]
//! ```
//!
//! The JWT secret comes from `FEDICS_JWT_SECRET` (at least 32 bytes). `--token-out` writes a
//! viewer token for the load generator. Rate limiting is off (one client makes all the load).
//! It uses mimalloc, like the `fedics` binary.

use std::net::SocketAddr;

use fedics_server::{AppState, AuthConfig, ServerConfig};
use fedics_store::{Role, Store};

/// The `fedics` binary's allocator (glibc's malloc was ~17% of this server's profile).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1).cloned())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let db = arg(&args, "--db").ok_or("--db URL is required")?;
    let store = Store::open(&db).await?;
    if args.iter().any(|a| a == "--migrate-only") {
        store.close().await;
        return Ok(());
    }
    let bind: SocketAddr = arg(&args, "--bind")
        .unwrap_or_else(|| "127.0.0.1:18080".into())
        .parse()?;
    let secret = std::env::var("FEDICS_JWT_SECRET").map_err(|_| "set FEDICS_JWT_SECRET")?;
    let auth = AuthConfig::enabled(secret.into_bytes())?;
    if let Some(path) = arg(&args, "--token-out") {
        std::fs::write(path, auth.issue_token("load", Role::Viewer)?)?;
    }
    let state = AppState::builder(store, auth)
        .config(ServerConfig {
            rate_limit_per_s: 0,
            ..ServerConfig::default()
        })
        .build();
    let listener = tokio::net::TcpListener::bind(bind).await?;
    eprintln!("serving on http://{bind}");
    fedics_server::serve(listener, state, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
