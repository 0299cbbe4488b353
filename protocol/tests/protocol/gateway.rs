//! The gateway's deployment rules: replay cache per key, `Date` window, key rotation with a
//! grace key, padding; and parsing entry points that never panic on any input.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use veil_protocol::{
    ChunkedRequestOpener, Client, DateWindow, Error, Gateway, GatewayKey, KeyConfig, Padding,
    SymmetricSuite,
    bhttp::{Message, StatusCode},
    build_request, decapsulate_request, message, os_rng,
};

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_764_000_000;

fn gateway(ids: &[u8]) -> Gateway {
    let mut g = Gateway::new(DateWindow::new(Duration::from_secs(60)));
    for &id in ids {
        g.rotate(GatewayKey::generate(
            id,
            &SymmetricSuite::ALL,
            &mut os_rng(),
        ));
    }
    g
}

fn sealed(config: &KeyConfig, date: SystemTime, chunked: bool) -> Vec<u8> {
    let req = build_request(
        "POST",
        "veil",
        "/v1/chat/completions",
        &[("Authorization", b"Bearer sk-test")],
        br#"{"model":"m","messages":[]}"#,
        date,
    );
    let client = Client::new(config.clone()).expect("client");
    if chunked {
        client.seal_chunked(&req, &mut os_rng()).expect("seal").0
    } else {
        client.seal(&req, &mut os_rng()).expect("seal").0
    }
}

#[test]
fn accepts_fresh_request_and_answers() {
    let g = gateway(&[1]);
    let config = g.current_config().expect("key").clone();
    let req = build_request("GET", "veil", "/v1/models", &[], b"", at(NOW));
    let (body, opener) = Client::new(config)
        .expect("client")
        .seal(&req, &mut os_rng())
        .expect("seal");
    let opened = g.open_request(&body, at(NOW + 5)).expect("accepted");
    assert_eq!(opened.message.control().path(), Some(&b"/v1/models"[..]));
    let mut res = Message::response(StatusCode::OK);
    res.write_content(b"{}");
    let sealed = opened.seal_response(&res, &mut os_rng()).expect("seal");
    let plain = opener.open(&sealed).expect("open");
    assert_eq!(plain.len(), 128, "response padded to its bucket");
    assert_eq!(
        message::decode_message(&plain).expect("bhttp").content(),
        b"{}"
    );
}

#[test]
fn rejects_replayed_enc() {
    let g = gateway(&[1]);
    let body = sealed(g.current_config().expect("key"), at(NOW), false);
    g.open_request(&body, at(NOW)).expect("first");
    assert_eq!(
        g.open_request(&body, at(NOW + 1)).err(),
        Some(Error::Replay { key_id: 1 })
    );
    let chunked = sealed(g.current_config().expect("key"), at(NOW), true);
    g.open_chunked_request(&chunked, at(NOW), &mut os_rng())
        .expect("first chunked");
    assert_eq!(
        g.open_chunked_request(&chunked, at(NOW), &mut os_rng())
            .err(),
        Some(Error::Replay { key_id: 1 })
    );
}

/// Regression (found by the `ohttp_request` fuzz invariant "a replay is refused"): a
/// request dated exactly one window before `now` was recorded as expiring at `now`, so its
/// replay in that same second passed both the replay cache and the `Date` check.
#[test]
fn replay_at_the_edge_of_the_window_is_refused() {
    let g = gateway(&[1]);
    let config = g.current_config().expect("key").clone();
    for (chunked, offset_ms) in [(false, 0), (true, 0), (false, 999), (true, 500)] {
        let body = sealed(&config, at(NOW - 60), chunked);
        let now = at(NOW) + Duration::from_millis(offset_ms);
        let first = if chunked {
            g.open_chunked_request(&body, now, &mut os_rng())
                .map(|_| ())
        } else {
            g.open_request(&body, now).map(|_| ())
        };
        first.expect("the Date is at the edge of the window: accepted once");
        let replay = if chunked {
            g.open_chunked_request(&body, now, &mut os_rng())
                .map(|_| ())
        } else {
            g.open_request(&body, now).map(|_| ())
        };
        assert_eq!(
            replay,
            Err(Error::Replay { key_id: 1 }),
            "chunked {chunked}, +{offset_ms} ms"
        );
    }
}

#[test]
fn replay_after_window_fails_on_date() {
    let g = gateway(&[1]);
    let body = sealed(g.current_config().expect("key"), at(NOW), false);
    g.open_request(&body, at(NOW)).expect("first");
    assert!(matches!(
        g.open_request(&body, at(NOW + 3600)),
        Err(Error::StaleDate { .. })
    ));
}

#[test]
fn rejects_stale_date() {
    let g = gateway(&[1]);
    let config = g.current_config().expect("key").clone();
    let old = sealed(&config, at(NOW - 61), false);
    assert_eq!(
        g.open_request(&old, at(NOW)).err(),
        Some(Error::StaleDate {
            skew_secs: -61,
            window_secs: 60
        })
    );
    let future = sealed(&config, at(NOW + 61), true);
    assert!(matches!(
        g.open_chunked_request(&future, at(NOW), &mut os_rng()),
        Err(Error::StaleDate { skew_secs: 61, .. })
    ));
    // A rejected request is not recorded: the same request is still refused for its Date,
    // not reported as a replay.
    assert!(matches!(
        g.open_request(&old, at(NOW)),
        Err(Error::StaleDate { .. })
    ));
}

#[test]
fn rejects_request_without_date() {
    let g = gateway(&[1]);
    let config = g.current_config().expect("key").clone();
    let req = Message::request(
        b"GET".to_vec(),
        b"https".to_vec(),
        b"veil".to_vec(),
        b"/".to_vec(),
    );
    let (body, _) = Client::new(config)
        .expect("c")
        .seal(&req, &mut os_rng())
        .expect("seal");
    assert_eq!(
        g.open_request(&body, at(NOW)).err(),
        Some(Error::MissingDate)
    );
}

#[test]
fn rotation_keeps_one_grace_key_and_drops_older_with_their_caches() {
    let mut g = gateway(&[1]);
    let c1 = g.current_config().expect("k1").clone();
    g.rotate(GatewayKey::generate(2, &SymmetricSuite::ALL, &mut os_rng()));
    assert_eq!(
        g.key_configs()
            .iter()
            .map(KeyConfig::key_id)
            .collect::<Vec<_>>(),
        [2, 1]
    );
    assert_eq!(
        KeyConfig::decode_list(&g.ohttp_keys()).expect("list"),
        g.key_configs()
    );
    // The grace key still works.
    g.open_request(&sealed(&c1, at(NOW), false), at(NOW))
        .expect("grace key");
    g.rotate(GatewayKey::generate(3, &SymmetricSuite::ALL, &mut os_rng()));
    assert_eq!(
        g.open_request(&sealed(&c1, at(NOW), false), at(NOW)).err(),
        Some(Error::UnknownKeyId(1))
    );
    assert!(g.retire(2));
    assert!(!g.retire(2));
}

#[test]
fn a_full_second_refuses_only_its_requests_and_a_flood_dated_ahead_locks_no_one_out() {
    let mut g = gateway(&[]).with_replay_per_second(4);
    g.rotate(GatewayKey::generate(4, &SymmetricSuite::ALL, &mut os_rng()));
    let c = g.current_config().expect("key").clone();
    let open = |date: u64, now: u64| g.open_request(&sealed(&c, at(date), false), at(now)).err();
    for _ in 0..4 {
        assert_eq!(open(NOW, NOW), None);
    }
    assert_eq!(open(NOW, NOW), Some(Error::ReplayCacheFull { key_id: 4 }));
    assert_eq!(open(NOW + 1, NOW + 1), None, "the next second has room");
    // Anyone can seal to the public key: 50 requests dated 30 s ahead get a quarter of
    // that second's room (one), and the clients whose clocks reach it still get all four.
    let early = (0..50).filter(|_| open(NOW + 30, NOW).is_none()).count();
    assert_eq!(early, 1);
    for _ in 0..4 {
        assert_eq!(open(NOW + 30, NOW + 30), None);
    }
}

#[test]
fn padding_hides_request_length() {
    let g = gateway(&[1]);
    let config = g.current_config().expect("key").clone();
    let client = Client::new(config).expect("client");
    let len = |body: &[u8]| {
        let req = build_request("POST", "veil", "/v1/chat/completions", &[], body, at(NOW));
        client.seal(&req, &mut os_rng()).expect("seal").0.len()
    };
    assert_eq!(len(b"hi"), len(&[b'x'; 20]));
    assert_ne!(len(b"hi"), len(&[b'x'; 200]));
    let plain = Client::new(g.current_config().expect("key").clone())
        .expect("client")
        .with_padding(Padding::none());
    let req = build_request("POST", "veil", "/", &[], b"hi", at(NOW));
    let short = plain.seal(&req, &mut os_rng()).expect("seal").0.len();
    assert!(short < len(b"hi"));
}

#[test]
fn rejects_nonzero_padding() {
    let req = build_request("GET", "veil", "/", &[], b"", at(NOW));
    let mut bytes = message::encode_message(&req, &Padding::default()).expect("encode");
    assert!(message::decode_message(&bytes).is_ok());
    let last = bytes.len() - 1;
    bytes[last] = 1;
    assert!(matches!(
        message::decode_message(&bytes),
        Err(Error::NonZeroPadding) | Err(Error::BinaryHttp(_))
    ));
    let mut plain = message::encode_message(&req, &Padding::none()).expect("encode");
    plain.extend_from_slice(&[0, 0, 7]);
    assert_eq!(
        message::decode_message(&plain).err(),
        Some(Error::NonZeroPadding)
    );
}

/// xorshift64*: a deterministic mutation source.
struct Mutator(u64);
impl Mutator {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn mutate(&mut self, seed: &[u8]) -> Vec<u8> {
        let mut v = seed.to_vec();
        let len = (self.next() % (seed.len() as u64 + 8)) as usize;
        v.resize(len, 0);
        for _ in 0..(self.next() % 4) {
            if !v.is_empty() {
                let i = (self.next() % v.len() as u64) as usize;
                v[i] = self.next() as u8;
            }
        }
        v
    }
}

#[test]
fn parsers_never_panic_on_mutated_input() {
    let key = GatewayKey::generate(1, &SymmetricSuite::ALL, &mut os_rng());
    let config_bytes = key.config().encode();
    let list = KeyConfig::encode_list(&[key.config().clone()]);
    let req = sealed(key.config(), at(NOW), false);
    let chunked = sealed(key.config(), at(NOW), true);
    let inner = message::encode_message(
        &build_request("GET", "veil", "/", &[], b"x", at(NOW)),
        &Padding::default(),
    )
    .expect("encode");
    let mut m = Mutator(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let _ = KeyConfig::decode(&m.mutate(&config_bytes));
        let _ = KeyConfig::decode_list(&m.mutate(&list));
        let _ = decapsulate_request(&key, &m.mutate(&req));
        let mut o = ChunkedRequestOpener::new(&key);
        let input = m.mutate(&chunked);
        let cut = (m.next() % (input.len() as u64 + 1)) as usize;
        let _ = o.push(&input[..cut]);
        let _ = o.push(&input[cut..]);
        let _ = o.finish();
        let _ = message::decode_message(&m.mutate(&inner));
    }
}
