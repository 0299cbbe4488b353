//! A gateway with one key per KEM, as Veil's server runs it: X-Wing first, then X25519,
//! rotated together; clients choose X-Wing; each key only accepts its own KEM.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use veil_protocol::{
    ChunkedRequestOpener, Client, DateWindow, Error, Gateway, GatewayKey, HEADER_LEN, Kem,
    KeyConfig, SymmetricSuite, bhttp, build_request, decapsulate_request, encapsulate_request,
    os_rng,
};

const NOW: u64 = 1_764_000_000;

fn at(secs: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(secs)
}

fn pair(first_id: u8) -> [GatewayKey; 2] {
    [
        GatewayKey::generate_with(Kem::XWing, first_id, &SymmetricSuite::ALL, &mut os_rng()),
        GatewayKey::generate(first_id + 1, &SymmetricSuite::ALL, &mut os_rng()),
    ]
}

fn gateway() -> Gateway {
    let mut g = Gateway::new(DateWindow::new(Duration::from_secs(60)));
    g.rotate_all(pair(1));
    g
}

fn inner() -> bhttp::Message {
    build_request("GET", "veil", "/v1/models", &[], b"", at(NOW))
}

fn ids(configs: &[KeyConfig]) -> Vec<(u8, u16)> {
    configs.iter().map(|c| (c.key_id(), c.kem_id())).collect()
}

#[test]
fn publishes_xwing_first_and_clients_choose_it() {
    let g = gateway();
    let published = KeyConfig::decode_list(&g.ohttp_keys()).expect("list");
    assert_eq!(ids(&published), [(1, 0x647a), (2, 0x0020)]);
    assert_eq!(g.current_configs(), published);
    assert_eq!(published[0].public_key().len(), 1216);
    // Every AEAD offered today, for both KEMs.
    for c in &published {
        assert_eq!(c.suites().collect::<Vec<_>>(), SymmetricSuite::ALL);
    }

    let chosen = KeyConfig::select(&published).expect("usable");
    assert_eq!(chosen.kem(), Kem::XWing);
    // Whatever the list order, X-Wing wins; without it, X25519.
    let reversed: Vec<KeyConfig> = published.iter().rev().cloned().collect();
    assert_eq!(KeyConfig::select(&reversed).expect("usable").key_id(), 1);
    assert_eq!(
        KeyConfig::select(&published[1..]).expect("usable").key_id(),
        2
    );
    assert_eq!(KeyConfig::select(&[]).err(), Some(Error::NoCommonSuite));

    for chunked in [false, true] {
        let client = Client::new(chosen.clone()).expect("client");
        let body = if chunked {
            client
                .seal_chunked(&inner(), &mut os_rng())
                .expect("seal")
                .0
        } else {
            client.seal(&inner(), &mut os_rng()).expect("seal").0
        };
        assert_eq!(
            body[..3],
            [1, 0x64, 0x7a],
            "key id 1, KEM 0x647A on the wire"
        );
        let message = if chunked {
            g.open_chunked_request(&body, at(NOW), &mut os_rng())
                .expect("chunked accepted")
                .message
        } else {
            g.open_request(&body, at(NOW)).expect("accepted").message
        };
        assert_eq!(message.control().path(), Some(&b"/v1/models"[..]));
        // The replay cache holds X-Wing requests too.
        let replay = if chunked {
            g.open_chunked_request(&body, at(NOW), &mut os_rng())
                .map(|_| ())
        } else {
            g.open_request(&body, at(NOW)).map(|_| ())
        };
        assert_eq!(replay, Err(Error::Replay { key_id: 1 }));
    }
}

#[test]
fn rotation_rotates_both_keys_and_keeps_the_previous_pair_for_grace() {
    let mut g = gateway();
    let old = g.current_configs();
    g.rotate_all(pair(3));
    assert_eq!(ids(&g.current_configs()), [(3, 0x647a), (4, 0x0020)]);
    assert_eq!(
        ids(&g.key_configs()),
        [(3, 0x647a), (4, 0x0020), (1, 0x647a), (2, 0x0020)]
    );
    // Both previous keys still open requests during the grace period.
    for c in &old {
        let body = Client::new(c.clone())
            .expect("client")
            .seal(&inner(), &mut os_rng())
            .expect("seal")
            .0;
        g.open_request(&body, at(NOW)).expect("grace key");
    }
    g.rotate_all(pair(5));
    assert_eq!(
        ids(&g.key_configs()),
        [(5, 0x647a), (6, 0x0020), (3, 0x647a), (4, 0x0020)]
    );
    let body = Client::new(old[0].clone())
        .expect("client")
        .seal(&inner(), &mut os_rng())
        .expect("seal")
        .0;
    assert_eq!(
        g.open_request(&body, at(NOW)).err(),
        Some(Error::UnknownKeyId(1))
    );
    // Nothing to rotate to changes nothing.
    g.rotate_all([]);
    assert_eq!(ids(&g.current_configs()), [(5, 0x647a), (6, 0x0020)]);
}

#[test]
fn a_key_accepts_only_its_own_kem() {
    let [xwing, x25519] = pair(1);
    let body = |config: &KeyConfig| {
        encapsulate_request(config, SymmetricSuite::ALL[0], b"x", &mut os_rng())
            .expect("seal")
            .0
    };
    // An X25519 request relabelled with the X-Wing key's id, and the reverse.
    let mut to_xwing = body(x25519.config());
    to_xwing[0] = 1;
    assert_eq!(
        decapsulate_request(&xwing, &to_xwing).err(),
        Some(Error::UnsupportedKem(0x0020))
    );
    let mut to_x25519 = body(xwing.config());
    to_x25519[0] = 2;
    assert_eq!(
        decapsulate_request(&x25519, &to_x25519).err(),
        Some(Error::UnsupportedKem(0x647a))
    );
    // An X-Wing request cut inside its 1120-byte enc is malformed, whole or streamed.
    let full = body(xwing.config());
    let cut = &full[..HEADER_LEN + 1000];
    assert!(matches!(
        decapsulate_request(&xwing, cut),
        Err(Error::Malformed(_))
    ));
    let mut opener = ChunkedRequestOpener::new(&xwing);
    assert_eq!(opener.push(cut).expect("buffers the header"), b"");
    assert_eq!(opener.enc(), None);
    assert_eq!(opener.finish(), Err(Error::Truncated));
}

#[test]
fn xwing_key_configuration_decoding_checks_lengths() {
    let [xwing, _] = pair(1);
    let good = xwing.config().encode();
    assert_eq!(good.len(), 1 + 2 + 1216 + 2 + 12);
    assert_eq!(KeyConfig::decode(&good).as_ref(), Ok(xwing.config()));
    // Every truncation fails, including an X25519-sized key under the X-Wing KEM id.
    for len in [0, 3, 35, 1218, good.len() - 1] {
        assert!(KeyConfig::decode(&good[..len]).is_err(), "length {len}");
    }
    assert_eq!(
        KeyConfig::new(1, Kem::XWing, &[0; 32], &SymmetricSuite::ALL).err(),
        Some(Error::InvalidPublicKey)
    );
    // A public key of the right length that is not an ML-KEM key (coefficients >= q) is
    // refused when sealing, not accepted.
    let bogus = KeyConfig::new(1, Kem::XWing, &[0xff; 1216], &SymmetricSuite::ALL).expect("len");
    assert_eq!(
        encapsulate_request(&bogus, SymmetricSuite::ALL[0], b"x", &mut os_rng()).err(),
        Some(Error::InvalidPublicKey)
    );
}
