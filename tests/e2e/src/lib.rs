//! Shared helpers for the end-to-end tests: building the components once
//! per process, a local HTTP responder, a test runtime configuration and a
//! capture of everything logged through `tracing`.

pub mod balancer;
pub mod front;

use axum::Router;
use payhost::RuntimeConfig;
use payhost::egress::EgressPolicy;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("workspace root")
}

/// Builds `adapters/` into `<workspace>/target/components` (what a server
/// loads) and `tests/guests/` into `<workspace>/target/test-components`
/// (hostile and benchmark guests, never loaded by a server), once per
/// process, and returns the first directory.
pub fn components_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let ws = workspace();
        let out_dir = ws.join("target").join("components");
        for (dir, out) in [
            ("adapters", out_dir.clone()),
            ("tests/guests", test_components_dir()),
        ] {
            payhost::builder::build(&payhost::builder::BuildOptions {
                workspace: ws.clone(),
                dirs: vec![ws.join(dir)],
                out_dir: out,
                target_dir: None,
                js_dir: None,
            })
            .expect("building the adapter components");
        }
        out_dir
    })
    .clone()
}

/// The slots of the JavaScript adapters under `adapters/` (a package.json
/// naming them), as the builder names their components.
pub fn javascript_slots() -> Vec<String> {
    let Ok(dirs) = std::fs::read_dir(workspace().join("adapters")) else {
        return vec![];
    };
    dirs.filter_map(|d| {
        let text = std::fs::read_to_string(d.ok()?.path().join("package.json")).ok()?;
        let doc: serde_json::Value = serde_json::from_str(&text).ok()?;
        doc.get("payhost")?;
        Some(doc.get("name")?.as_str()?.to_string())
    })
    .collect()
}

/// Where the test guests are built.
pub fn test_components_dir() -> PathBuf {
    workspace().join("target").join("test-components")
}

/// The bytes of a built component (adapter or test guest), by package name.
pub fn component(name: &str) -> Vec<u8> {
    let adapters = components_dir();
    let path = [adapters, test_components_dir()]
        .into_iter()
        .map(|d| d.join(format!("{name}.wasm")))
        .find(|p| p.is_file())
        .unwrap_or_else(|| panic!("no component `{name}` was built"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// A runtime configuration for tests: short deadline, small memory cap,
/// few instances, local addresses allowed (the responder is on loopback).
pub fn test_config() -> RuntimeConfig {
    RuntimeConfig {
        memory_limit: 16 * 1024 * 1024,
        step_deadline: Duration::from_millis(200),
        operation_deadline: Duration::from_secs(20),
        max_steps: 8,
        max_instances: 16,
        cache_dir: None,
        egress: EgressPolicy {
            allow_private: true,
            timeout: Duration::from_secs(5),
            // The hostile guest declares these for its loopback responder.
            slots: [(
                "hostile".to_string(),
                vec![
                    "127.0.0.1:*".parse().unwrap(),
                    "localhost:*".parse().unwrap(),
                ],
            )]
            .into(),
            ..Default::default()
        },
    }
}

/// A fresh directory under `target/e2e-tmp` for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = workspace()
        .join("target")
        .join("e2e-tmp")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("creating temp dir");
    dir
}

/// An HTTP server on 127.0.0.1 serving `router` on the current tokio runtime.
pub struct Responder {
    pub addr: SocketAddr,
}

impl Responder {
    pub async fn start(router: Router) -> Responder {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding responder");
        let addr = listener.local_addr().expect("responder address");
        tokio::spawn(async move {
            axum::serve(listener, router).await.expect("responder");
        });
        Responder { addr }
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

static LOGS: Mutex<Vec<u8>> = Mutex::new(Vec::new());

struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        LOGS.lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Routes every `tracing` event of payhost, at every level, into a
/// buffer that [`logs`] returns. Call it at the start of each test.
pub fn capture_logs() {
    static INIT: OnceLock<()> = OnceLock::new();
    INIT.get_or_init(|| {
        tracing_subscriber::fmt()
            // All of payhost, at every level; other crates (cranelift logs
            // every compiler pass at trace level) only when they warn.
            .with_env_filter(tracing_subscriber::EnvFilter::new("warn,payhost=trace"))
            .with_ansi(false)
            .with_writer(|| LogWriter)
            .try_init()
            .expect("installing the log capture");
    });
}

/// Everything logged so far in this process.
pub fn logs() -> String {
    String::from_utf8_lossy(&LOGS.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
}
