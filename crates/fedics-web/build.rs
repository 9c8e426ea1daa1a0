//! Builds the dashboard (`web/`, at the workspace root) with npm into `web/dist`, which
//! `rust-embed` then embeds. `npm ci` runs only when `web/node_modules` is missing (it needs
//! the npm registry once); `npm run build` works offline. Without npm, or with
//! `FEDICS_SKIP_WEB_BUILD=1`, an existing `web/dist` is embedded as it is, else a page that
//! says how to build the UI.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = manifest.join("../../web");
    let dist = web.join("dist");
    println!("cargo:rerun-if-env-changed=FEDICS_SKIP_WEB_BUILD");
    for p in [
        "package.json",
        "package-lock.json",
        "index.html",
        "vite.config.ts",
        "tsconfig.json",
        "src",
        "public",
    ] {
        println!("cargo:rerun-if-changed={}", web.join(p).display());
    }
    let skip = std::env::var_os("FEDICS_SKIP_WEB_BUILD").is_some_and(|v| v == "1");
    if web.join("package.json").is_file() && !skip {
        match build(&web) {
            Ok(()) => return,
            Err(e) if dist.join("index.html").is_file() => {
                println!(
                    "cargo:warning=the web UI was not rebuilt ({e}); embedding the existing web/dist"
                );
                return;
            }
            Err(e) => {
                println!("cargo:warning=the web UI was not built: {e}");
            }
        }
    }
    if !dist.join("index.html").is_file() {
        placeholder(&dist);
    }
}

fn npm() -> &'static str {
    if cfg!(windows) { "npm.cmd" } else { "npm" }
}

fn run(web: &Path, args: &[&str]) -> Result<(), String> {
    let status = Command::new(npm())
        .args(args)
        .current_dir(web)
        .status()
        .map_err(|e| {
            format!(
                "cannot run `npm {}`: {e} (install Node.js 20 and npm)",
                args.join(" ")
            )
        })?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`npm {}` failed in {} ({status})",
            args.join(" "),
            web.display()
        ))
    }
}

fn build(web: &Path) -> Result<(), String> {
    if !web.join("node_modules").is_dir() {
        run(web, &["ci", "--no-audit", "--no-fund"])?;
    }
    run(web, &["run", "build"])
}

fn placeholder(dist: &Path) {
    let _ = std::fs::create_dir_all(dist);
    let page = "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>FedICS</title></head>\
        <body style=\"background:#0b0f14;color:#e6edf3;font-family:sans-serif\"><h1>FedICS</h1>\
        <p>The dashboard was not built into this binary: install Node.js 20 and npm and rebuild \
        (<code>cargo build -p fedics</code> runs <code>npm ci</code> and <code>npm run build</code> in <code>web/</code>). \
        The API is at <a href=\"/docs\" style=\"color:#58a6ff\">/docs</a>.</p></body></html>";
    let _ = std::fs::write(dist.join("index.html"), page);
}
