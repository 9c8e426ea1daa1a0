//! The binary's API commands end to end: `fedics serve --simulate` against PostgreSQL and
//! `fedics demo` on SQLite answer logins and serve the alerts their pipelines store;
//! `fedics user` and `fedics apikey` manage accounts in the store a server reads.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fedics_store::testing::TestDb;
use fedics_store::{Engine, Store};
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_fedics");
const SECRET: &str = "serve-test-secret-0123456789abcdef0123456789";
const ADMIN_PASSWORD: &str = "admin-password-for-tests";

/// A free loopback port (bound and released; the server binds it right after).
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// A minimal HTTP/1.1 request (tests only; `Connection: close`).
fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&Value>,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    let (head, rest) = out.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    Some((status, body))
}

fn dechunk(mut s: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = s.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        s = rest[n..].trim_start_matches("\r\n");
    }
    out
}

fn json_of(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `fedics demo ARGS` on `dir` and `addr`, with the tests' admin password.
fn spawn_demo(dir: &std::path::Path, addr: SocketAddr, args: &[&str]) -> Child {
    Command::new(BIN)
        .arg("demo")
        .args(args)
        .arg("--data-dir")
        .arg(dir)
        .args(["--bind", &addr.to_string()])
        .env("FEDICS_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts")
}

fn wait_healthy(addr: SocketAddr, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some((200, _)) = http(addr, "GET", "/health", None, None) {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the server exited early: {status}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("the server did not come up on {addr}");
}

fn login(addr: SocketAddr) -> String {
    let (status, body) = http(
        addr,
        "POST",
        "/api/auth/login",
        None,
        Some(&json!({"username": "admin", "password": ADMIN_PASSWORD})),
    )
    .expect("login answers");
    assert_eq!(status, 200, "{body}");
    json_of(&body)["access_token"]
        .as_str()
        .expect("token")
        .to_string()
}

/// Polls `/api/alerts` until the pipeline has stored some alerts.
fn wait_alerts(addr: SocketAddr, token: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if let Some((200, body)) = http(addr, "GET", "/api/alerts?limit=5", Some(token), None) {
            let v = json_of(&body);
            if v["total"].as_u64().unwrap_or(0) > 0 {
                return v;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("no alert was stored");
}

fn check_api(addr: SocketAddr) {
    let (status, _) = http(addr, "GET", "/api/alerts", None, None).expect("answers");
    assert_eq!(status, 401, "the API needs a token");
    let token = login(addr);
    let page = wait_alerts(addr, &token);
    let first = &page["alerts"][0];
    let id = first["id"].as_str().unwrap();
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/alerts/{id}"),
        Some(&token),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    let detail = json_of(&body);
    assert!(
        !detail["sources"].as_array().unwrap().is_empty(),
        "evidence: {detail}"
    );
    assert!(!detail["flow_ids"].as_array().unwrap().is_empty());
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/alerts/{id}/flows"),
        Some(&token),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    assert!(
        !json_of(&body).as_array().unwrap().is_empty(),
        "the alert's flow records"
    );
    let (status, body) = http(addr, "GET", "/ready", None, None).unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(json_of(&body)["pipeline_running"], true);
    let (status, metrics) = http(addr, "GET", "/metrics", None, None).unwrap();
    assert_eq!(status, 200);
    assert!(
        metrics.contains("fedics_http_requests_total"),
        "HTTP metrics"
    );
    assert!(metrics.contains("fedics_events_total"), "pipeline metrics");
    let (status, _) = http(addr, "GET", "/docs/", None, None).unwrap();
    assert_eq!(status, 200, "docs UI served");
}

#[test]
fn serve_with_simulation_on_postgres() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(TestDb::new(Engine::Postgres));
    let addr = free_addr();
    let mut child = Command::new(BIN)
        .args([
            "serve",
            "--simulate",
            "--no-neural",
            "--rate",
            "3000",
            "--duration",
            "90",
        ])
        .args(["--db", db.url()])
        .args(["--bind", &addr.to_string()])
        .env("FEDICS_JWT_SECRET", SECRET)
        .env("FEDICS_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve starts");
    wait_healthy(addr, &mut child);
    let mut running = Running(child);
    check_api(addr);
    let (_, health) = http(addr, "GET", "/health", None, None).unwrap();
    assert_eq!(json_of(&health)["store"], "postgres");
    let _ = running.0.kill();
}

#[test]
fn serve_refuses_insecure_configurations() {
    let out = Command::new(BIN)
        .args([
            "serve",
            "--db",
            "sqlite::memory:",
            "--bind",
            "127.0.0.1:0",
            "--duration",
            "1",
        ])
        .env_remove("FEDICS_JWT_SECRET")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("JWT secret"));
    let out = Command::new(BIN)
        .args([
            "serve",
            "--db",
            "sqlite::memory:",
            "--bind",
            "0.0.0.0:0",
            "--no-auth",
            "--duration",
            "1",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("loopback"));
    let out = Command::new(BIN)
        .args([
            "serve",
            "--db",
            "sqlite::memory:",
            "--bind",
            "127.0.0.1:0",
            "--duration",
            "1",
        ])
        .env("FEDICS_JWT_SECRET", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 32"));
}

#[test]
fn demo_serves_the_api_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = spawn_demo(
        dir.path(),
        addr,
        &[
            "--no-neural",
            "--rate",
            "3000",
            "--duration",
            "90",
            "--sites",
            "2",
        ],
    );
    wait_healthy(addr, &mut child);
    let mut running = Running(child);
    check_api(addr);
    let _ = running.0.kill();
    assert!(
        dir.path().join("jwt.secret").is_file(),
        "the demo keeps its generated secret"
    );
}

#[test]
fn user_and_apikey_commands_manage_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("fedics.db").display().to_string();
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut c = Command::new(BIN);
        c.args(args).args(["--db", &db]);
        c.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = c.spawn().unwrap();
        if let Some(s) = stdin {
            child.stdin.take().unwrap().write_all(s.as_bytes()).unwrap();
        } else {
            drop(child.stdin.take());
        }
        child.wait_with_output().unwrap()
    };
    let out = run(
        &[
            "user",
            "add",
            "ann",
            "--role",
            "analyst",
            "--password-stdin",
        ],
        Some("correct horse battery\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run(&["user", "add", "bob"], None);
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        printed.contains("password: "),
        "a generated password is printed: {printed}"
    );
    let out = run(&["user", "add", "eve", "--role", "root"], None);
    assert!(!out.status.success(), "unknown roles are refused");
    let out = run(&["user", "add", "short", "--password-stdin"], Some("abc\n"));
    assert!(!out.status.success(), "short passwords are refused");
    let out = run(&["user", "list"], None);
    let list = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        list.contains("ann\tanalyst") && list.contains("bob\tviewer"),
        "{list}"
    );
    let out = run(
        &["apikey", "create", "--name", "site-a", "--role", "viewer"],
        None,
    );
    assert!(out.status.success());
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(key.starts_with("fedics_"), "{key}");
    let prefix = key.split('_').nth(1).unwrap().to_string();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let store = Store::open(&db).await.unwrap();
        let ann = store.get_user("ann").await.unwrap().expect("ann stored");
        assert!(ann.password_hash.starts_with("$argon2id$"));
        assert!(fedics_server::auth::verify_password(
            "correct horse battery",
            &ann.password_hash
        ));
        let row = store
            .api_key_by_prefix(&prefix)
            .await
            .unwrap()
            .expect("key stored");
        assert!(!row.secret_hash.contains(&key), "only a hash is stored");
        assert!(row.revoked_at.is_none());
        store.close().await;
    });
    let out = run(&["apikey", "revoke", &prefix], None);
    assert!(out.status.success());
    let out = run(&["apikey", "revoke", &prefix], None);
    assert!(!out.status.success(), "revoking twice is an error");
    let out = run(&["apikey", "list"], None);
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));
    let out = run(&["user", "remove", "bob"], None);
    assert!(out.status.success());
    let out = run(&["user", "remove", "bob"], None);
    assert!(!out.status.success());
}

#[test]
fn openapi_command_prints_the_document() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert!(doc["paths"]["/api/alerts"]["get"].is_object());
}

#[test]
fn demo_federates_its_facilities_records_the_rounds_and_deploys_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = spawn_demo(
        dir.path(),
        addr,
        &[
            "--rate",
            "300",
            "--duration",
            "300",
            "--sites",
            "3",
            "--fl-first-after",
            "1",
            "--fl-every",
            "4",
            "--fl-max-epsilon",
            "12",
        ],
    );
    let model = dir.path().join("models").join("mlp.model");
    // Training the models at the first start takes a while in a debug build.
    let deadline = Instant::now() + Duration::from_secs(300);
    while http(addr, "GET", "/health", None, None).is_none() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the demo exited early: {status}");
        }
        assert!(Instant::now() < deadline, "the demo did not come up");
        std::thread::sleep(Duration::from_millis(500));
    }
    let _running = Running(child);
    let initial = std::fs::read(&model).expect("the classifier was trained");
    let token = login(addr);
    // Rounds run until the ε budget refuses the next one.
    let deadline = Instant::now() + Duration::from_secs(240);
    let privacy = loop {
        let (status, body) =
            http(addr, "GET", "/api/fl/privacy-metrics", Some(&token), None).unwrap();
        assert_eq!(status, 200, "{body}");
        let v = json_of(&body);
        if v["rounds"].as_u64().unwrap_or(0) >= 2 {
            break v;
        }
        assert!(Instant::now() < deadline, "no two federation rounds: {v}");
        std::thread::sleep(Duration::from_millis(500));
    };
    let eps = privacy["epsilon"].as_f64().expect("ε spent");
    assert!(eps > 0.0 && eps <= 12.0, "{privacy}");
    assert_eq!(privacy["budget"], 12.0, "{privacy}");
    // The demo's federation configuration: FedAvg selecting the sites, DP combining them.
    let fed = &privacy["federation"];
    assert_eq!(fed["strategy"], "fedavg", "{privacy}");
    assert_eq!(fed["total_sites"], 3, "{privacy}");
    assert_eq!(fed["dp"]["max_epsilon"], 12.0, "{privacy}");
    assert_eq!(fed["dp"]["mode"], "central", "{privacy}");
    assert_eq!(privacy["aggregation"], "dp-clipped-mean", "{privacy}");
    let ledger = privacy["ledger"].as_array().unwrap();
    assert!(
        ledger
            .windows(2)
            .all(|w| w[0]["epsilon"].as_f64() < w[1]["epsilon"].as_f64()),
        "ε grows round by round: {privacy}"
    );
    let (status, body) = http(addr, "GET", "/api/fl/rounds?limit=10", Some(&token), None).unwrap();
    assert_eq!(status, 200);
    let rounds = json_of(&body);
    let done: Vec<&Value> = rounds
        .as_array()
        .or(rounds["rounds"].as_array())
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "completed")
        .collect();
    assert!(!done.is_empty(), "{rounds}");
    let r = done[0];
    assert!(r["epsilon"].as_f64().is_some(), "{r}");
    let id = r["id"].as_i64().unwrap();
    let (status, body) = http(
        addr,
        "GET",
        &format!("/api/fl/rounds/{id}"),
        Some(&token),
        None,
    )
    .unwrap();
    assert_eq!(status, 200);
    let detail = json_of(&body);
    assert_eq!(
        detail["clients"].as_array().map(Vec::len),
        Some(3),
        "{detail}"
    );
    // An admin can start a round (or is told why not: running, or budget spent).
    let (status, body) = http(addr, "POST", "/api/fl/rounds/trigger", Some(&token), None).unwrap();
    assert!(status == 202 || status == 409, "{status} {body}");
    if status == 202 {
        assert!(json_of(&body)["round_id"].as_i64().is_some(), "{body}");
    }
    // The new global model replaced the running classifier (tiny clipped, noised updates
    // keep its accuracy, so it passes the deployment check).
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read(&model).unwrap() == initial {
        assert!(
            Instant::now() < deadline,
            "the federated model was never deployed"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // With the budget spent, a triggered round is refused with the reason.
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, body) =
            http(addr, "POST", "/api/fl/rounds/trigger", Some(&token), None).unwrap();
        if status == 409 && body.contains("budget") {
            break;
        }
        assert!(status == 202 || status == 409, "{status} {body}");
        assert!(
            Instant::now() < deadline,
            "the budget never refused a round: {body}"
        );
        std::thread::sleep(Duration::from_millis(1000));
    }
}
