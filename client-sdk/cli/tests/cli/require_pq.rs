//! `veil chat --require-pq` (the policy key `require_post_quantum`, shared by `veil proxy`):
//! a server that offers only X25519 is refused before any prompt is read or sent.

use crate::support::TestServer;

fn chat(url: String, extra: &'static [&'static str]) -> std::process::Output {
    std::thread::spawn(move || {
        let mut args = vec!["chat".to_owned(), url, "--allow-simulated".to_owned()];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        std::process::Command::new(env!("CARGO_BIN_EXE_veil"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("runs")
    })
    .join()
    .expect("thread")
}

#[tokio::test]
async fn require_pq_refuses_a_server_without_xwing() {
    let server = TestServer::start_x25519_only().await;
    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || chat(url, &["--require-pq"]))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("rejected: post_quantum"), "{stderr}");
    assert_eq!(server.posts(), 0, "nothing sent");

    // Without the flag the same server is used over X25519; with it, an X-Wing server is.
    let url = server.url.clone();
    let out = tokio::task::spawn_blocking(move || chat(url, &[]))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("key exchange X25519"), "{stderr}");
    let pq = TestServer::start().await;
    let url = pq.url.clone();
    let out = tokio::task::spawn_blocking(move || chat(url, &["--require-pq"]))
        .await
        .expect("join");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("key exchange X-Wing"), "{stderr}");
}
