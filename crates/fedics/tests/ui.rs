//! The dashboard end to end: a real `fedics demo` (pipeline, store, API, federation and
//! the embedded UI) on a loopback port, driven by Debian's chromium through playwright-core
//! (`web/e2e/run.mjs`); the UI's own unit tests (vitest); and a check that the UI's API
//! types are the ones generated from this binary's OpenAPI document.
//!
//! Needs Node.js with npm and `/usr/bin/chromium` (`.ci/run` installs it); the npm packages
//! come from `web/package-lock.json` (installed by the `fedics-web` build script).

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_fedics");
const ADMIN_PASSWORD: &str = "admin-password-for-ui-tests";

fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

fn target_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target")
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    Some((status, out))
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn npm(args: &[&str], envs: &[(&str, String)]) -> std::process::Output {
    let mut c = Command::new("npm");
    c.args(args).current_dir(web_dir());
    for (k, v) in envs {
        c.env(k, v);
    }
    c.output()
        .unwrap_or_else(|e| panic!("cannot run npm {args:?}: {e} (install Node.js 20 and npm)"))
}

fn check(out: &std::process::Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn ui_api_types_match_the_openapi_document() {
    let out = Command::new(BIN).arg("openapi").output().unwrap();
    assert!(out.status.success());
    let dir = tempfile::tempdir().unwrap();
    let doc = dir.path().join("openapi.json");
    std::fs::write(&doc, &out.stdout).unwrap();
    let r = npm(
        &[
            "run",
            "--silent",
            "check:api",
            "--",
            &doc.display().to_string(),
        ],
        &[],
    );
    check(
        &r,
        "the UI's generated API types differ from `fedics openapi` (run `npm run gen:api` in web/ after `fedics openapi > web/openapi.json`)",
    );
}

#[test]
fn ui_unit_tests_pass() {
    let r = npm(&["test", "--silent"], &[("CI", "1".into())]);
    check(&r, "the UI's unit tests (npm test in web/)");
}

#[test]
fn dashboard_end_to_end_in_chromium() {
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    assert!(
        Path::new(&chromium).is_file(),
        "{chromium} is missing: apt-get install chromium (.ci/run does)"
    );
    let data = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--rate",
            "400",
            "--duration",
            "900",
            "--sites",
            "3",
            "--fl-first-after",
            "2",
            "--fl-every",
            "20",
        ])
        .arg("--data-dir")
        .arg(data.path())
        .args(["--bind", &addr.to_string()])
        .env("FEDICS_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("demo starts");
    // The first start trains the models (seconds to a minute in a debug build).
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if matches!(get(addr, "/ready"), Some((200, _))) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!("the demo exited early: {status}");
        }
        assert!(
            Instant::now() < deadline,
            "the demo did not get ready on {addr}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let _running = Running(child);
    let (status, page) = get(addr, "/").expect("/ answers");
    assert_eq!(status, 200);
    assert!(
        !page.contains("was not built into this binary"),
        "the binary embeds the real UI, not the placeholder"
    );
    let shots = target_dir().join("ui-screenshots");
    let _ = std::fs::remove_dir_all(&shots);
    let r = npm(
        &["run", "--silent", "e2e"],
        &[
            ("FEDICS_URL", format!("http://{addr}")),
            ("FEDICS_USER", "admin".into()),
            ("FEDICS_PASSWORD", ADMIN_PASSWORD.into()),
            ("SCREENSHOT_DIR", shots.display().to_string()),
            ("CHROMIUM", chromium),
        ],
    );
    check(&r, "the dashboard's end-to-end run (web/e2e/run.mjs)");
    let stdout = String::from_utf8_lossy(&r.stdout);
    // The run's figures (first load, heap), for the record.
    if let Some(line) = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
    {
        println!("ui e2e figures: {line}");
        let _ = std::fs::write(target_dir().join("ui-e2e.json"), line);
    }
    let pngs = std::fs::read_dir(&shots)
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.path().extension().is_some_and(|x| x == "png"))
                .count()
        })
        .unwrap_or(0);
    assert!(
        pngs >= 5,
        "a screenshot of every page ({pngs} in {})",
        shots.display()
    );
}
