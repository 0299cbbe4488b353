//! The SDK chooses X-Wing (KEM 0x647A) when the server offers it, plain and
//! chunked, as the request header on the wire shows; fall back to X25519 when it does not;
//! and refuse such a server when the policy says `require_post_quantum`.

use crate::support;

use futures_util::StreamExt as _;
use support::{ANSWER, TestServer, last_request_kem, policy};
use veil_attest::Policy;
use veil_client::{ChatMessage, ChatRequest, Client, Error};
use veil_protocol::{Kem, MEDIA_TYPE_CHUNKED_REQUEST, MEDIA_TYPE_REQUEST};

const XWING: u16 = 0x647a;
const X25519: u16 = 0x0020;

fn chat_req() -> ChatRequest {
    ChatRequest::new("test-model", vec![ChatMessage::user("hi")])
}

fn last_media_type(server: &TestServer) -> String {
    let last = server.shared.last_post.lock().expect("lock");
    last.as_ref().expect("a request").0.clone()
}

/// A plain and a streamed chat; returns the (key id, KEM id) each request carried.
async fn chat_both_ways(server: &TestServer, client: &Client) -> [(u8, u16); 2] {
    let chat = client.chat(&chat_req()).await.expect("chat");
    assert_eq!(chat.text(), Some(ANSWER.concat().as_str()));
    assert_eq!(last_media_type(server), MEDIA_TYPE_REQUEST);
    let plain = last_request_kem(&server.shared).expect("captured");

    let mut s = client.chat_stream(&chat_req()).await.expect("stream");
    let mut text = String::new();
    while let Some(c) = s.next().await {
        text.push_str(c.expect("chunk").text().unwrap_or_default());
    }
    assert_eq!(text, ANSWER.concat());
    assert_eq!(last_media_type(server), MEDIA_TYPE_CHUNKED_REQUEST);
    [plain, last_request_kem(&server.shared).expect("captured")]
}

#[tokio::test]
async fn the_sdk_seals_to_xwing_plain_and_chunked() {
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    let attested = client.attested();
    assert_eq!(
        attested.key_configs.len(),
        2,
        "both configurations attested"
    );
    assert_eq!(attested.key_configs[1].kem(), Kem::X25519HkdfSha256);
    assert_eq!(attested.key_config.kem(), Kem::XWing);
    assert_eq!(chat_both_ways(&server, &client).await, [(1, XWING); 2]);
}

#[tokio::test]
async fn without_xwing_the_sdk_falls_back_to_x25519() {
    let server = TestServer::start_x25519_only().await;
    let client = Client::connect(&server.url, policy())
        .await
        .expect("attests");
    assert_eq!(client.attested().key_config.kem(), Kem::X25519HkdfSha256);
    assert_eq!(chat_both_ways(&server, &client).await, [(1, X25519); 2]);
}

#[tokio::test]
async fn require_post_quantum_refuses_a_server_without_xwing() {
    let server = TestServer::start_x25519_only().await;
    let strict = policy().require_post_quantum(true);
    let e = Client::connect(&server.url, strict.clone())
        .await
        .expect_err("refused");
    assert!(
        matches!(&e, Error::PostQuantumRequired { offered } if offered == &[X25519]),
        "{e:?}"
    );
    assert_eq!(e.check(), "post_quantum");
    assert!(e.is_integrity_failure());
    assert!(e.to_string().contains("0x0020"), "{e}");
    assert_eq!(server.posts(), 0, "nothing sent to the refused server");

    // The same policy accepts a server that offers X-Wing.
    let server = TestServer::start().await;
    let client = Client::connect(&server.url, strict)
        .await
        .expect("X-Wing offered");
    assert_eq!(client.attested().key_config.kem(), Kem::XWing);
}

#[test]
fn require_post_quantum_is_a_policy_key() {
    let toml = "require_post_quantum = true\nallow_simulated = true\n\
                [[reference]]\nplatform = \"simulated\"\nmeasurement = \"any\"\n";
    assert!(
        Policy::from_toml(toml)
            .expect("parses")
            .require_post_quantum
    );
    assert!(!Policy::default().require_post_quantum);
    assert!(Policy::from_toml("require_pq = true").is_err(), "no alias");
}
