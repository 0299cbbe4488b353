//! Graceful shutdown of the real `veil-server` binary on SIGTERM: streams in flight finish
//! (or, after the grace period, end with an error event), new connections are refused, and
//! the process exits 0.

use crate::common;

use std::io::{BufRead as _, BufReader, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::binary::{ServerProcess, start};
use serde_json::{Value, json};
use veil_engine::model::DEFAULT_MODEL_ID;

/// Opens a streamed chat of `tokens` tokens; returns the reader once the first chunk came.
fn open_stream(addr: SocketAddr, tokens: u64) -> BufReader<TcpStream> {
    let body = json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": "Tell me a long story."}],
        "max_tokens": tokens,
        "temperature": 0,
        "ignore_eos": true,
        "stream": true,
        "stream_options": {"include_usage": true},
    })
    .to_string();
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(120)))
        .expect("timeout");
    s.write_all(&common::binary::post("/v1/chat/completions", &body, None))
        .expect("send");
    let mut reader = BufReader::new(s);
    let mut line = String::new();
    while !line.starts_with("data: ") {
        line.clear();
        assert!(
            reader.read_line(&mut line).expect("read") > 0,
            "a first chunk"
        );
    }
    reader
}

/// The data payloads of the rest of the stream, until the server ends it.
fn rest_of(mut reader: BufReader<TcpStream>) -> Vec<String> {
    let mut data = Vec::new();
    let mut line = String::new();
    while reader.read_line(&mut line).unwrap_or(0) > 0 {
        if let Some(d) = line.trim_end().strip_prefix("data: ") {
            data.push(d.to_owned());
        }
        line.clear();
    }
    data
}

/// Whether connecting to `addr` is refused within `limit`.
fn refused_within(addr: SocketAddr, limit: Duration) -> bool {
    let started = Instant::now();
    while started.elapsed() < limit {
        if TcpStream::connect(addr).is_err() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

fn server(grace: &str) -> (ServerProcess, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("server.log");
    let server = start(
        &["--allow-plaintext", "--no-auth", "--shutdown-grace", grace],
        dir.path(),
        &log,
        "info",
    );
    (server, dir)
}

#[test]
fn sigterm_lets_a_stream_finish_refuses_new_connections_and_exits_0() {
    let (mut server, _dir) = server("60");
    let tokens = 64;
    let stream = open_stream(server.addr, tokens);
    // Before the signal, connections are accepted.
    assert!(!refused_within(server.addr, Duration::from_millis(200)));
    server.terminate();
    assert!(
        refused_within(server.addr, Duration::from_secs(5)),
        "new connections refused after SIGTERM"
    );
    let data = rest_of(stream);
    assert_eq!(
        data.last().map(String::as_str),
        Some("[DONE]"),
        "{data:?}\n{}",
        server.log_text()
    );
    let usage = data
        .iter()
        .filter_map(|d| serde_json::from_str::<Value>(d).ok())
        .find_map(|v| v["usage"]["completion_tokens"].as_u64());
    assert_eq!(usage, Some(tokens), "the whole stream was served");
    let status = server
        .wait(Duration::from_secs(30))
        .expect("exited after the stream");
    assert!(status.success(), "exit status {status}");
    let log = server.log_text();
    assert!(log.contains("every connection finished"), "{log}");
    // The stream was still open when the shutdown began.
    let open = log
        .lines()
        .find(|l| l.contains("no longer accepting connections"))
        .and_then(|l| l.split("connections=").nth(1))
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok());
    assert!(open.is_some_and(|n| n >= 1), "{log}");
}

#[test]
fn after_the_grace_period_streams_end_with_an_error_event_and_the_server_exits_0() {
    let grace = Duration::from_secs(1);
    let (mut server, _dir) = server("1");
    // Far more tokens than the grace period allows.
    let stream = open_stream(server.addr, 4000);
    let signalled = Instant::now();
    server.terminate();
    let data = rest_of(stream);
    let ended = signalled.elapsed();
    assert!(
        ended >= grace && ended < grace + Duration::from_secs(5),
        "stream ended after {ended:?}"
    );
    assert!(!data.iter().any(|d| d == "[DONE]"), "{data:?}");
    let last: Value = serde_json::from_str(data.last().expect("an event")).expect("JSON");
    assert_eq!(last["error"]["code"], "server_shutting_down", "{last}");
    assert_eq!(last["error"]["type"], "server_error", "{last}");
    let status = server
        .wait(Duration::from_secs(10))
        .expect("exited after the grace period");
    assert!(status.success(), "exit status {status}");
    assert!(signalled.elapsed() < grace + Duration::from_secs(10));
    let log = server.log_text();
    assert!(log.contains("grace period over"), "{log}");
}
