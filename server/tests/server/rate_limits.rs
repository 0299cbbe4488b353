//! Per-key token rate and concurrency limits, through the router against the real model:
//! 429 with `Retry-After` and `x-ratelimit-*-tokens`, other keys unaffected, levels kept
//! across a restart, dropped streams charged.

use crate::common;

use std::time::Instant;

use axum::http::StatusCode;
use http_body_util::BodyExt;
use tower::ServiceExt;
use veil_engine::EngineConfig;
use veil_server::keys::{KeyStore, SecretKey};

use common::keyed::{
    Reply, bearer, complete, completion_body, create, keyed_app, limits, plaintext, request, send,
};

#[tokio::test]
async fn a_key_over_its_token_budget_gets_429_others_do_not_and_a_restart_keeps_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("keys.sqlite3");
    // 20 tokens a minute drain one token every 3 s.
    let (small, other, tiny) = {
        let store = KeyStore::open(&db).expect("key store");
        (
            create(&store, "small", limits(Some(20), None)),
            create(&store, "other", limits(Some(100), None)),
            create(&store, "tiny", limits(Some(5), None)),
        )
    };
    let (app, worker) = keyed_app(&db, plaintext(), EngineConfig::default());
    worker.spawn().expect("worker thread");

    let started = Instant::now();
    // 10 prompt tokens fit in 20; the 40 completion tokens are charged after: level 50.
    let r = complete(&app, &small, 40).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["usage"]["total_tokens"], 50);
    assert_eq!(r.number("x-ratelimit-limit-tokens"), 20.0);
    assert_eq!(
        r.number("x-ratelimit-remaining-tokens"),
        10.0,
        "the prompt is reserved"
    );
    assert_eq!(r.header("x-ratelimit-reset-tokens"), Some("30s"));

    let check_refused = |r: &Reply, elapsed: f64| {
        assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
        let err = &r.json()["error"];
        assert_eq!(err["code"], "rate_limit_exceeded");
        assert_eq!(err["type"], "tokens");
        // Admitted when 50 - t/3 + 10 <= 20, i.e. t = 120 s after the charge.
        let retry = r.number("retry-after");
        assert!(
            (120.0 - elapsed - 1.0..=120.0).contains(&retry),
            "Retry-After {retry} after {elapsed} s"
        );
        assert_eq!(r.number("x-ratelimit-limit-tokens"), 20.0);
        assert_eq!(r.number("x-ratelimit-remaining-tokens"), 0.0);
        // The level (50 - t/3) drains to zero in 150 s - t.
        let reset = r.reset_secs();
        assert!(
            (150.0 - elapsed - 1.0..=150.0).contains(&reset),
            "reset {reset} after {elapsed} s"
        );
    };
    let r = complete(&app, &small, 1).await;
    check_refused(&r, started.elapsed().as_secs_f64());

    // Another key is unaffected, and a prompt larger than a key's rate never fits.
    let r = complete(&app, &other, 1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.number("x-ratelimit-remaining-tokens"), 90.0);
    let r = complete(&app, &tiny, 1).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    assert!(r.header("retry-after").is_none(), "waiting would not help");

    // A restart: a new store and limiter over the same file; the level was saved.
    drop(app);
    let (app, worker) = keyed_app(&db, plaintext(), EngineConfig::default());
    worker.spawn().expect("worker thread");
    let r = complete(&app, &small, 1).await;
    check_refused(&r, started.elapsed().as_secs_f64());
    let r = complete(&app, &other, 1).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}

#[tokio::test]
async fn concurrent_requests_are_limited_per_key_and_a_dropped_stream_is_charged() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("keys.sqlite3");
    // 60 tokens a minute: one token a second drains.
    let (one, another) = {
        let store = KeyStore::open(&db).expect("key store");
        (
            create(&store, "one", limits(Some(60), Some(1))),
            create(&store, "another", limits(None, Some(1))),
        )
    };
    // The worker is not started: queued streams stay open.
    let (app, worker) = keyed_app(
        &db,
        plaintext(),
        EngineConfig {
            max_batch: 1,
            queue_capacity: 8,
        },
    );
    let stream_req = |key: &SecretKey| {
        request(
            "POST",
            "/v1/completions",
            Some(&bearer(key)),
            Some(&completion_body(3, true)),
        )
    };
    let first = app
        .clone()
        .oneshot(stream_req(&one))
        .await
        .expect("infallible");
    assert_eq!(
        first.status(),
        StatusCode::OK,
        "a stream answers once queued"
    );
    assert_eq!(first.headers()["x-ratelimit-remaining-tokens"], "50");

    let r = send(&app, stream_req(&one)).await;
    assert_eq!(r.status, StatusCode::TOO_MANY_REQUESTS, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], "rate_limit_exceeded");
    assert_eq!(r.json()["error"]["type"], "requests");
    assert_eq!(r.header("retry-after"), Some("1"));
    let r = send(
        &app,
        request(
            "POST",
            "/v1/completions",
            Some(&bearer(&one)),
            Some(&completion_body(1, false)),
        ),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::TOO_MANY_REQUESTS,
        "whole answers count too"
    );

    let unaffected = app
        .clone()
        .oneshot(stream_req(&another))
        .await
        .expect("infallible");
    assert_eq!(
        unaffected.status(),
        StatusCode::OK,
        "another key has its own slot"
    );

    // The client goes away: the slot is freed and its prompt is charged.
    drop(first);
    let third = app
        .clone()
        .oneshot(stream_req(&one))
        .await
        .expect("infallible");
    assert_eq!(third.status(), StatusCode::OK);
    let remaining: u64 = third.headers()["x-ratelimit-remaining-tokens"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert!(
        (40..=42).contains(&remaining),
        "60 - 10 charged - 10 reserved, plus a second's drain: {remaining}"
    );

    worker.spawn().expect("worker thread");
    for res in [third, unaffected] {
        let body = res.into_body().collect().await.expect("body").to_bytes();
        let body = std::str::from_utf8(&body).expect("utf-8");
        assert!(body.trim_end().ends_with("data: [DONE]"), "{body}");
    }
    // Both finished: the slot is free again.
    let r = send(
        &app,
        request(
            "POST",
            "/v1/completions",
            Some(&bearer(&one)),
            Some(&completion_body(1, false)),
        ),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
}
