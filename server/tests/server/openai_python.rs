//! The real `openai` and `langchain-openai` Python packages against the real `veil-server`
//! binary.
//!
//! Setup: a virtualenv under cargo's target tmp directory with a pinned `openai`
//! (installed once, from the package index pip is configured with), an API key made with
//! `veil-server keys create`, the server started on a free loopback port with that key
//! database, then `tests/python/openai_client.py` with the key (and a wrong one, refused).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use veil_engine::model::DEFAULT_MODEL_ID;

const OPENAI_PIN: &str = "openai==3.57.0";
/// LangChain's OpenAI chat model, the other client applications are built on.
const LANGCHAIN_PIN: &str = "langchain-openai==1.8.1";

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(status.success(), "{what}: {status}");
}

/// The virtualenv, made once per test binary (the tests run in parallel).
fn venv() -> PathBuf {
    static VENV: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    VENV.get_or_init(make_venv).clone()
}

fn make_venv() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("openai-venv");
    let python = dir.join("bin").join("python");
    let marker = dir.join(format!("installed-{OPENAI_PIN}-{LANGCHAIN_PIN}"));
    if !marker.exists() {
        let _ = std::fs::remove_dir_all(&dir);
        let py = std::env::var("VEIL_PYTHON").unwrap_or_else(|_| "python3".to_owned());
        run(
            Command::new(py).args(["-m", "venv"]).arg(&dir),
            "python3 -m venv",
        );
        run(
            Command::new(&python)
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                ])
                .args([OPENAI_PIN, LANGCHAIN_PIN]),
            "pip install openai langchain-openai",
        );
        std::fs::write(&marker, b"").expect("marker");
    }
    python
}

fn wait_with_timeout(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    None
}

/// A key database in `dir` with one key, made by `veil-server keys create`; returns the
/// database path and the key.
fn create_key(dir: &Path) -> (PathBuf, String) {
    let db = dir.join("keys.sqlite3");
    let key = common::binary::create_key(&db, "openai-python");
    (db, key)
}

/// Starts `veil-server serve` in `dir` on a free loopback port with `extra` arguments
/// (stderr in `dir/server.log`); returns the process guard and its base URL.
fn start_server(extra: &[&str], dir: &Path) -> (common::binary::ServerProcess, String) {
    let server = common::binary::start(extra, dir, &dir.join("server.log"), "info");
    let base = server.base.clone();
    (server, base)
}

/// Runs the `openai` client script against `base_url` and asserts it succeeds.
fn run_openai_script(python: &Path, base_url: &str, api_key: &str) {
    run_script(python, "openai_client.py", base_url, api_key);
}

/// Runs `tests/python/{script}` against `base_url` and asserts it succeeds.
fn run_script(python: &Path, script: &str, base_url: &str, api_key: &str) {
    let mut client = Command::new(python)
        .arg(
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/python")
                .join(script),
        )
        .env("OPENAI_BASE_URL", base_url)
        .env("OPENAI_API_KEY", api_key)
        .env("VEIL_MODEL", DEFAULT_MODEL_ID)
        .stdin(Stdio::null())
        .spawn()
        .expect("run the client script");
    let status = wait_with_timeout(&mut client, Duration::from_secs(300))
        .unwrap_or_else(|| panic!("{script} finished within 300 s"));
    assert!(status.success(), "{script} failed: {status}");
}

#[test]
fn openai_python_package_lists_chats_and_streams() {
    let python = venv();
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, key) = create_key(dir.path());
    let db = db.to_str().expect("UTF-8 path");
    let (_server, base) = start_server(&["--allow-plaintext", "--db", db], dir.path());
    run_openai_script(&python, &format!("{base}/v1"), &key);
}

/// The product path: an unmodified `openai` client talks to `veil proxy` (in-process here),
/// which attests the server, then encrypts every request through the OHTTP gateway of a
/// server that refuses plaintext.
#[test]
fn openai_python_package_through_the_attested_encrypted_proxy() {
    let python = venv();
    let dir = tempfile::tempdir().expect("tempdir");
    let (db, key) = create_key(dir.path());
    let (_server, base) = start_server(&["--db", db.to_str().expect("UTF-8 path")], dir.path());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let proxy = rt.block_on(async {
        let policy = veil_attest::Policy::default().allow_simulated(true);
        let upstream = std::sync::Arc::new(veil_cli::proxy::Upstream::new(base.clone(), policy));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, veil_cli::proxy::router(upstream)).await;
        });
        addr
    });
    // The server refuses the plain path...
    let plain = Command::new(&python)
        .args(["-c", &format!(
            "import urllib.request,sys\ntry:\n urllib.request.urlopen(urllib.request.Request('{base}/v1/models'))\n sys.exit(1)\nexcept urllib.error.HTTPError as e:\n sys.exit(0 if e.code == 403 else 2)"
        )])
        .status()
        .expect("python");
    assert!(plain.success(), "plain request was not refused with 403");
    // ...and the proxy's encrypted path serves the same client script; the key travels
    // inside the encryption.
    run_openai_script(&python, &format!("http://{proxy}/v1"), &key);
    // LangChain's chat model through the same proxy: invoke, stream, structured output and
    // tools.
    run_script(
        &python,
        "langchain_client.py",
        &format!("http://{proxy}/v1"),
        &key,
    );
    drop(rt);
}
