//! No content at rest, with the real `veil-server` binary: a random canary sent in prompts
//! (plain and encrypted, whole and streamed, refused mid-way and dropped mid-stream) and
//! the API key appear in no log line (RUST_LOG=trace) and no file the server leaves in its
//! working directory, nor in the operator metrics (`--metrics-listen`), which count them; and
//! core dumps are disabled at start.

use crate::common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::binary::{self, http, post, status};
use futures_util::StreamExt as _;
use serde_json::json;
use veil_client::{Client, Policy, Request};
use veil_engine::model::DEFAULT_MODEL_ID;

/// Every file under `dir` (recursively) that contains one of `needles`, with the needle.
fn files_containing(dir: &Path, needles: &[&str]) -> Vec<(PathBuf, String)> {
    let mut hits = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read_dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let bytes = std::fs::read(&path).expect("read");
            for n in needles {
                if bytes.windows(n.len()).any(|w| w == n.as_bytes()) {
                    hits.push((path.clone(), (*n).to_owned()));
                }
            }
        }
    }
    hits
}

fn chat_body(content: &str, stream: bool, max_tokens: u64) -> serde_json::Value {
    json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": content}],
        "max_tokens": max_tokens,
        "temperature": 0,
        "stream": stream,
    })
}

/// The plain path: whole, streamed, refused, and dropped mid-stream.
fn plain_requests(addr: std::net::SocketAddr, canary: &str, key: &str) {
    let auth = format!("Bearer {key}");
    let auth = Some(auth.as_str());
    let send = |path: &str, body: &str| http(addr, &post(path, body, auth));
    let prompt = format!("Repeat after me: {canary}");
    let ok = send(
        "/v1/chat/completions",
        &chat_body(&prompt, false, 4).to_string(),
    );
    assert_eq!(status(&ok), 200, "{ok}");
    let streamed = send(
        "/v1/chat/completions",
        &chat_body(&prompt, true, 4).to_string(),
    );
    assert!(streamed.contains("data: [DONE]"), "{streamed}");
    let completion = json!({"model": DEFAULT_MODEL_ID, "prompt": prompt, "max_tokens": 3});
    assert_eq!(
        status(&send("/v1/completions", &completion.to_string())),
        200
    );
    // Refused after the canary was read: a bad parameter, broken JSON, a wrong model.
    let mut bad = chat_body(&prompt, false, 4);
    bad["temperature"] = json!(9);
    assert_eq!(status(&send("/v1/chat/completions", &bad.to_string())), 400);
    let broken = format!(
        r#"{{"model": "{DEFAULT_MODEL_ID}", "messages": [{{"role": "user", "content": "{canary}"}}], "#
    );
    assert_eq!(status(&send("/v1/chat/completions", &broken)), 400);
    let mut wrong_model = chat_body(&prompt, false, 4);
    wrong_model["model"] = json!(canary);
    assert_eq!(
        status(&send("/v1/chat/completions", &wrong_model.to_string())),
        404
    );
    // The canary in headers, and as a wrong API key.
    let headers = format!(
        "GET /v1/models HTTP/1.1\r\nHost: localhost\r\nUser-Agent: {canary}\r\nX-Canary: {canary}\r\n\
         Authorization: Bearer veil_sk_{canary}\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(status(&http(addr, headers.as_bytes())), 401);
    // A stream the client drops after its first chunk.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(&post(
        "/v1/chat/completions",
        &chat_body(&prompt, true, 200).to_string(),
        auth,
    ))
    .expect("send");
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        assert!(reader.read_line(&mut line).expect("read") > 0);
    }
    drop(reader);
}

/// The encrypted path through the SDK: whole, streamed, refused, and dropped mid-stream.
async fn sealed_requests(base: &str, canary: &str, key: &str) {
    let client = Client::connect(base, Policy::default().allow_simulated(true))
        .await
        .expect("attested")
        .with_api_key(key);
    let prompt = format!("Say {canary} twice");
    let req = |body: serde_json::Value| {
        Request::post_json("/v1/chat/completions", body.to_string().into_bytes())
    };
    let r = client
        .send(&req(chat_body(&prompt, false, 4)))
        .await
        .expect("sent");
    assert_eq!(r.status, 200);
    let s = client
        .send_streaming(&req(chat_body(&prompt, true, 4)))
        .await
        .expect("sent");
    let body = s.collect().await.expect("whole stream");
    assert!(String::from_utf8_lossy(&body).contains("[DONE]"));
    let mut bad = chat_body(&prompt, false, 4);
    bad["top_p"] = json!(7);
    let r = client.send(&req(bad)).await.expect("sent");
    assert_eq!(r.status, 400);
    let s = client
        .send_streaming(&req(chat_body(&prompt, true, 200)))
        .await
        .expect("sent");
    let mut events = s.events();
    assert!(events.next().await.expect("an event").is_ok());
    drop(events);
    // A wrong key carrying the canary.
    let wrong = client
        .send(&Request::get("/v1/models").with_authorization(format!("Bearer veil_sk_{canary}")))
        .await
        .expect("sent");
    assert_eq!(wrong.status, 401);
}

#[test]
fn no_canary_or_key_in_logs_or_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let work = tmp.path().join("work");
    std::fs::create_dir(&work).expect("work dir");
    let db = work.join("keys.sqlite3");
    let key = binary::create_key(&db, "canary-test");
    let canary = format!("canary-{:032x}", rand::random::<u128>());
    let log = work.join("server.log");
    let mut server = binary::start(
        &[
            "--allow-plaintext",
            "--db",
            db.to_str().expect("UTF-8"),
            "--metrics-listen",
            "127.0.0.1:0",
        ],
        &work,
        &log,
        "trace",
    );
    plain_requests(server.addr, &canary, &key);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(sealed_requests(&server.base, &canary, &key));
    drop(rt);
    // Let the server notice the dropped streams, then read the metrics and stop it.
    std::thread::sleep(Duration::from_millis(500));
    let metrics = scrape_metrics(&server.log_text());
    for counted in [
        "veil_http_requests_total{route=\"/v1/chat/completions\",status=\"200\"}",
        "veil_http_requests_total{route=\"/v1/chat/completions\",status=\"400\"}",
        "veil_http_requests_total{route=\"/.well-known/ohttp-gateway\",status=\"200\"}",
        "veil_attestations_total{reason=\"ok\"}",
        "veil_generations_total{reason=\"length\"}",
        "veil_completion_tokens_total",
        "veil_first_token_seconds_count",
        "veil_between_tokens_seconds_count",
        "veil_gateway_key_id",
        "veil_engine_queued 0",
        "veil_engine_max_batch ",
        "veil_engine_running ",
        "veil_engine_pass_sequences_total ",
        "veil_engine_pass_rows_total ",
    ] {
        assert!(metrics.contains(counted), "{counted} in:\n{metrics}");
    }
    // The generations above ran forward passes.
    let passes: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("veil_engine_forward_passes_total "))
        .and_then(|v| v.trim().parse().ok())
        .expect("forward passes counted");
    assert!(passes > 0, "{metrics}");
    assert!(
        !metrics.contains(&canary) && !metrics.contains(&key),
        "no content or key in the metrics"
    );
    // The metrics are not on the API's listener.
    let api = http(
        server.addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&api), 404, "{api}");
    server.terminate();
    let exit = server.wait(Duration::from_secs(30)).expect("exited");
    assert!(exit.success(), "{exit}");

    let logged = server.log_text();
    assert!(
        logged.contains("request queued") && logged.contains("request refused"),
        "the server logged the requests:\n{logged}"
    );
    let hits = files_containing(&work, &[&canary, &key]);
    assert!(hits.is_empty(), "found at rest: {hits:?}");
    // The search finds what is there: the same needles in a file of the test's own.
    let control = tmp.path().join("control");
    std::fs::create_dir(&control).expect("control dir");
    std::fs::write(control.join("x"), format!("..{canary}..{key}..")).expect("write");
    assert_eq!(files_containing(&control, &[&canary, &key]).len(), 2);
}

/// The body of `GET /metrics` from the listener the server's log names.
fn scrape_metrics(log: &str) -> String {
    let addr: std::net::SocketAddr = log
        .lines()
        .find_map(|l| l.split("metrics on http://").nth(1))
        .and_then(|rest| rest.strip_suffix("/metrics"))
        .expect("the server names its metrics listener")
        .parse()
        .expect("address");
    let answer = http(
        addr,
        b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status(&answer), 200, "{answer}");
    answer
}

/// The `Max core file size` soft and hard limits of process `pid`.
fn core_limits(pid: u32) -> (String, String) {
    core_limits_in(&std::fs::read_to_string(format!("/proc/{pid}/limits")).expect("limits"))
}

/// The `Max core file size` soft and hard limits in the text of a `/proc/PID/limits`.
fn core_limits_in(limits: &str) -> (String, String) {
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .expect("core line")
        .to_owned();
    let mut cols = line["Max core file size".len()..].split_whitespace();
    (
        cols.next().expect("soft").to_owned(),
        cols.next().expect("hard").to_owned(),
    )
}

#[test]
fn core_dumps_are_disabled_at_start() {
    // A shell raises the soft limit before it runs the program (the hard limit allows it).
    let raise = "ulimit -S -c 4096 && exec \"$0\" \"$@\"";
    let control = Command::new("sh")
        .args(["-c", raise, "cat", "/proc/self/limits"])
        .output()
        .expect("sh");
    let (soft, _) = core_limits_in(&String::from_utf8_lossy(&control.stdout));
    assert_ne!(soft, "0", "a child of this shell may dump core");

    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let mut sh = Command::new("sh");
    sh.args(["-c", raise, env!("CARGO_BIN_EXE_veil-server")]);
    let mut server = binary::start_with(
        sh,
        &["--allow-plaintext", "--no-auth"],
        dir.path(),
        &log,
        "info",
    );
    assert_eq!(
        core_limits(server.pid()),
        ("0".to_owned(), "0".to_owned()),
        "RLIMIT_CORE of the server"
    );
    let logged = server.log_text();
    assert!(logged.contains("core dumps disabled"), "{logged}");
    server.terminate();
    assert!(
        server
            .wait(Duration::from_secs(30))
            .is_some_and(|s| s.success())
    );
}
