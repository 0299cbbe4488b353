//! `veil proxy` seals to X-Wing (KEM 0x647A) when the server offers it, plain and chunked, as
//! the request header on the wire shows (the SDK's own choice: `client-sdk/tests/post_quantum.rs`).

use std::sync::Arc;

use crate::support::{TestServer, last_request_kem, policy};
use veil_cli::proxy::{Upstream, router};
use veil_protocol::{MEDIA_TYPE_CHUNKED_REQUEST, MEDIA_TYPE_REQUEST};

const XWING: u16 = 0x647a;

fn last_media_type(server: &TestServer) -> String {
    let last = server.shared.last_post.lock().expect("lock");
    last.as_ref().expect("a request").0.clone()
}

#[tokio::test]
async fn veil_proxy_seals_to_xwing_plain_and_streamed() {
    let server = TestServer::start().await;
    let app = router(Arc::new(Upstream::new(&server.url, policy())));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("serve") });
    veil_client::install_crypto_provider();
    for (stream, media) in [
        (false, MEDIA_TYPE_REQUEST),
        (true, MEDIA_TYPE_CHUNKED_REQUEST),
    ] {
        let body = serde_json::json!({"model": "test-model", "stream": stream,
            "messages": [{"role": "user", "content": "hi"}]});
        let resp = reqwest::Client::new()
            .post(format!("{url}/v1/chat/completions"))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .expect("sent");
        assert_eq!(resp.status().as_u16(), 200);
        assert!(resp.text().await.expect("body").contains("Hello"));
        assert_eq!(last_media_type(&server), media);
        assert_eq!(last_request_kem(&server.shared), Some((1, XWING)));
    }
}
