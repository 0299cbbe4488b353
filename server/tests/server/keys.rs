//! API keys on `/v1/*`, through the router (plain and sealed) and the real OHTTP gateway,
//! against the real model; the key database holds no key.

use crate::common;

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::{Value, json};
use veil_engine::EngineConfig;
use veil_engine::model::DEFAULT_MODEL_ID;
use veil_server::api::{ApiConfig, Sealed};
use veil_server::keys::{KEY_PREFIX, KeySelector, KeyStore, Limits, SecretKey};

use common::keyed::{
    assert_401, bearer, complete, completion_body, create, keyed_app, limits, plaintext, request,
    send,
};

#[tokio::test]
async fn a_created_key_is_served_and_missing_wrong_or_revoked_keys_get_401() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("keys.sqlite3");
    let admin = KeyStore::open(&db).expect("key store");
    let key = create(&admin, "alice", Limits::default());
    let (app, worker) = keyed_app(&db, plaintext(), EngineConfig::default());
    worker.spawn().expect("worker thread");

    let r = send(&app, request("GET", "/healthz", None, None)).await;
    assert_eq!(r.status, StatusCode::OK, "health needs no key");
    let r = send(
        &app,
        request("GET", "/v1/models", Some(&bearer(&key)), None),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["data"][0]["id"], DEFAULT_MODEL_ID);
    let r = complete(&app, &key, 2).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    assert_eq!(r.json()["usage"]["completion_tokens"], 2);
    assert!(
        r.header("x-ratelimit-limit-tokens").is_none(),
        "no rate, no headers"
    );
    let lower = format!("bearer {}", key.expose());
    let r = send(&app, request("GET", "/v1/models", Some(&lower), None)).await;
    assert_eq!(r.status, StatusCode::OK, "the scheme is case-insensitive");

    let random = &key.expose()[KEY_PREFIX.len()..];
    let mut near = key.expose().to_owned();
    let last = near.pop().expect("non-empty");
    near.push(if last == 'A' { 'B' } else { 'A' });
    let other = SecretKey::generate(&mut rand::rng());
    let body = completion_body(2, false);
    let cases: Vec<(&str, Option<String>)> = vec![
        ("missing header", None),
        ("unknown key", Some(bearer(&other))),
        ("one character off", Some(format!("Bearer {near}"))),
        (
            "not a Veil key",
            Some("Bearer sk-proj-abcdefghijklmnopqrstuvwxyz0123456789".to_owned()),
        ),
        ("empty token", Some("Bearer ".to_owned())),
        ("the key without a scheme", Some(key.expose().to_owned())),
        ("the key as Basic", Some(format!("Basic {}", key.expose()))),
    ];
    for (what, auth) in cases {
        for (method, path, body) in [
            ("GET", "/v1/models", None),
            ("POST", "/v1/completions", Some(&body)),
            ("POST", "/v1/chat/completions", Some(&body)),
        ] {
            let r = send(&app, request(method, path, auth.as_deref(), body)).await;
            assert_401(&r, &format!("{what} on {path}"));
            assert!(!r.body.contains(random), "{what}: the key is never echoed");
        }
    }

    // Revoked by another process (the CLI): refused from the next request on.
    admin
        .revoke(&KeySelector::Name("alice".into()))
        .expect("revoked");
    let r = complete(&app, &key, 2).await;
    assert_401(&r, "revoked key");
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("revoked"))
    );
    assert!(!r.body.contains(random));
}

#[tokio::test]
async fn sealed_requests_need_a_key_too_through_the_real_gateway() {
    use veil_server::confidential::{self, Confidential, ConfidentialConfig, Tee, TeeOptions};

    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("keys.sqlite3");
    let admin = KeyStore::open(&db).expect("key store");
    let key = create(&admin, "sealed", Limits::default());
    let revoked = create(&admin, "gone", Limits::default());
    admin
        .revoke(&KeySelector::Name("gone".into()))
        .expect("revoked");
    // Plaintext refused: only the encrypted path serves.
    let (app, worker) = keyed_app(&db, ApiConfig::default(), EngineConfig::default());
    worker.spawn().expect("worker thread");

    // The router sees a sealed request exactly as the gateway hands it over.
    let sealed = |auth: Option<String>| {
        let mut req = request("GET", "/v1/models", auth.as_deref(), None);
        req.extensions_mut().insert(Sealed);
        req
    };
    assert_401(&send(&app, sealed(None)).await, "sealed, no key");
    assert_eq!(
        send(&app, sealed(Some(bearer(&key)))).await.status,
        StatusCode::OK
    );
    let plain = send(
        &app,
        request("GET", "/v1/models", Some(&bearer(&key)), None),
    )
    .await;
    assert_eq!(
        plain.status,
        StatusCode::FORBIDDEN,
        "plaintext is refused before the key is read"
    );

    // The real gateway, over a socket, with the attesting client.
    let manifest = &common::source().manifest;
    let claims = confidential::manifest_claims(&manifest.id, manifest.digest()).expect("claims");
    let (attester, _) = confidential::attester(Tee::Simulated, &TeeOptions::new(None, None, None))
        .expect("attester");
    let conf = Arc::new(Confidential::new(
        attester,
        claims,
        ConfidentialConfig::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let served = confidential::routes(conf, app);
    tokio::spawn(async move { axum::serve(listener, served).await });
    veil_client::install_crypto_provider();
    let policy = veil_attest::Policy::default().allow_simulated(true);
    let client = veil_client::Client::connect(&base, policy)
        .await
        .expect("attested");

    let models = veil_client::Request::get("/v1/models");
    let r = client.send(&models).await.expect("sealed exchange");
    assert_eq!(r.status, 401);
    let err: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(err["error"]["code"], "invalid_api_key");
    for bad in [
        bearer(&revoked),
        bearer(&SecretKey::generate(&mut rand::rng())),
    ] {
        let r = client
            .send(&models.clone().with_authorization(bad))
            .await
            .expect("sealed exchange");
        assert_eq!(r.status, 401);
    }
    let client = client.with_api_key(key.expose());
    assert_eq!(
        client.send(&models).await.expect("sealed exchange").status,
        200
    );
    let chat = json!({
        "model": DEFAULT_MODEL_ID,
        "messages": [{"role": "user", "content": "Hi"}],
        "max_tokens": 2,
        "temperature": 0,
    });
    let r = client
        .send(&veil_client::Request::post_json(
            "/v1/chat/completions",
            serde_json::to_vec(&chat).expect("json"),
        ))
        .await
        .expect("sealed exchange");
    assert_eq!(r.status, 200);
    let v: Value = serde_json::from_slice(&r.body).expect("json");
    assert_eq!(v["usage"]["completion_tokens"], 2);
}

#[tokio::test]
async fn the_database_holds_no_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("keys.sqlite3");
    let keys: Vec<SecretKey> = {
        let store = KeyStore::open(&db).expect("key store");
        let keys = vec![
            create(&store, "one", limits(Some(1000), None)),
            create(&store, "two", limits(None, Some(3))),
        ];
        store
            .revoke(&KeySelector::Name("two".into()))
            .expect("revoked");
        keys
    };
    // Usage rows too: a served request with a limited key.
    let (app, worker) = keyed_app(&db, plaintext(), EngineConfig::default());
    worker.spawn().expect("worker thread");
    assert_eq!(complete(&app, &keys[0], 2).await.status, StatusCode::OK);
    drop(app);

    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(dir.path()).expect("dir") {
        bytes.extend(std::fs::read(entry.expect("entry").path()).expect("read"));
    }
    let contains = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    for key in &keys {
        let random = &key.expose()[KEY_PREFIX.len()..];
        assert!(
            !contains(key.expose().as_bytes()),
            "the key is in the database"
        );
        assert!(
            !contains(random.as_bytes()),
            "the key's random part is in the database"
        );
        assert!(
            !contains(&random.as_bytes()[..16]),
            "part of the key is in the database"
        );
        // What is there: its SHA-256 (so the bytes read are the database's).
        let hash: [u8; 32] = <sha2::Sha256 as sha2::Digest>::digest(key.expose().as_bytes()).into();
        assert!(contains(&hash), "the key's hash is stored");
    }
}
