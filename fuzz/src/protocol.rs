//! The fuzz entry points of `veil-protocol`: every parser of bytes from the network.
//!
//! Shared by the cargo-fuzz targets (`fuzz_targets/ohttp_*.rs`, `bhttp_message.rs`) and by
//! the stable smoke test `protocol/tests/protocol/fuzz_smoke.rs`, which includes this file with
//! `#[path]`; it depends on nothing but `std` and `veil-protocol`.
//!
//! Besides "never panics", each entry point asserts what must hold for every input:
//! decoding then encoding gives back the bytes, a gateway accepts exactly what parses,
//! a replay is refused, and an opener never releases plaintext that was not sealed, in
//! order. A failed assertion is a bug like a panic.

use std::sync::OnceLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use veil_protocol::bhttp::Message;
use veil_protocol::message::{date, decode_message, encode_message, header};
use veil_protocol::rand_core::{TryCryptoRng, TryRng};
use veil_protocol::{
    ChunkedRequestOpener, ChunkedRequestSealer, Client, DateWindow, Error, Gateway, GatewayKey,
    Kem, KeyConfig, MAX_CONFIGS, Padding, SymmetricSuite, build_request, decapsulate_request,
    encapsulate_chunked_request, encapsulate_request,
};

/// The X25519 gateway key: key id 1, every suite, a fixed secret.
pub const KEY_ID: u8 = 1;
/// The X-Wing gateway key: key id 2, every suite, the same fixed input keying material.
pub const XWING_KEY_ID: u8 = 2;
const KEY_IKM: [u8; 32] = [0x42; 32];

/// The gateway's clock: 2025-06-15T16:26:40Z. Seed requests carry this `Date`.
pub fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_750_004_800)
}

/// The fixed X25519 gateway key (derived once).
pub fn gateway_key() -> &'static GatewayKey {
    static KEY: OnceLock<GatewayKey> = OnceLock::new();
    KEY.get_or_init(|| GatewayKey::derive(KEY_ID, &SymmetricSuite::ALL, &KEY_IKM))
}

/// The fixed X-Wing gateway key (derived once).
pub fn xwing_gateway_key() -> &'static GatewayKey {
    static KEY: OnceLock<GatewayKey> = OnceLock::new();
    KEY.get_or_init(|| {
        GatewayKey::derive_with(Kem::XWing, XWING_KEY_ID, &SymmetricSuite::ALL, &KEY_IKM)
    })
}

/// A gateway holding both fixed keys, X-Wing first, as Veil's server publishes them.
pub fn gateway() -> Gateway {
    let mut g = Gateway::new(DateWindow::default());
    g.rotate_all([
        GatewayKey::derive_with(Kem::XWing, XWING_KEY_ID, &SymmetricSuite::ALL, &KEY_IKM),
        GatewayKey::derive(KEY_ID, &SymmetricSuite::ALL, &KEY_IKM),
    ]);
    g
}

/// A deterministic generator (xorshift64*) for ephemeral keys and nonces: fuzzing must be
/// reproducible. Never use outside tests.
#[derive(Debug)]
pub struct TestRng(u64);

impl TestRng {
    /// A generator whose sequence depends on `seed`.
    pub fn new(seed: &[u8]) -> Self {
        let h = seed.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
        Self(h | 1)
    }

    fn step(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

impl TryRng for TestRng {
    type Error = std::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        Ok(self.step() as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        Ok(self.step())
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for chunk in dst.chunks_mut(8) {
            let v = self.step().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
        Ok(())
    }
}

impl TryCryptoRng for TestRng {}

/// Cuts `data` into pieces of 1..=`max` bytes (sizes drawn from `rng`), as a network would.
fn pieces<'a>(data: &'a [u8], max: usize, rng: &mut TestRng) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let n = 1 + (rng.step() as usize) % max.max(1);
        let (head, tail) = rest.split_at(n.min(rest.len()));
        out.push(head);
        rest = tail;
    }
    out
}

/// The known-length Binary HTTP bytes of a message, without padding.
fn bhttp_bytes(m: &Message) -> Option<Vec<u8>> {
    encode_message(m, &Padding::none()).ok()
}

/// `ohttp_key_config`: the bytes as one key configuration (RFC 9458 §3) and as an
/// `application/ohttp-keys` list (RFC 9540). What decodes re-encodes to the same bytes, and
/// a client can seal to it without panicking.
pub fn ohttp_key_config(data: &[u8]) {
    if let Ok(config) = KeyConfig::decode(data) {
        assert_eq!(
            config.encode(),
            data,
            "decode then encode changed the bytes"
        );
        if let Ok(client) = Client::new(config) {
            let request = build_request("GET", "veil", "/v1/models", &[], b"", now());
            let _ = client.seal(&request, &mut TestRng::new(data));
        }
    }
    if let Ok(list) = KeyConfig::decode_list(data) {
        assert!(list.len() <= MAX_CONFIGS);
        for c in &list {
            assert_eq!(KeyConfig::decode(&c.encode()).as_ref(), Ok(c));
        }
        let again = KeyConfig::decode_list(&KeyConfig::encode_list(&list));
        assert_eq!(again.as_ref(), Ok(&list), "list did not round-trip");
    }
}

/// `ohttp_request`: the bytes as a `message/ohttp-req` and a `message/ohttp-chunked-req`
/// body at the gateway (fixed key), whole and in pieces; then as the *inner* request,
/// sealed to the key as a client would: the gateway must accept it only if it parses
/// (Binary HTTP, padding, `Date` window), hand over exactly that message, and refuse its
/// replay.
pub fn ohttp_request(data: &[u8]) {
    let mut rng = TestRng::new(data);

    // Arbitrary bytes as an encapsulated request, to either key.
    let g = gateway();
    let _ = g.open_request(data, now());
    let _ = g.open_chunked_request(data, now(), &mut rng);
    for key in [gateway_key(), xwing_gateway_key()] {
        let _ = decapsulate_request(key, data);
        let mut opener = ChunkedRequestOpener::new(key);
        for piece in pieces(data, 64, &mut rng) {
            if opener.push(piece).is_err() {
                break;
            }
        }
        let _ = opener.finish();
    }

    // Arbitrary bytes as the inner request, sealed properly (to X-Wing for odd lengths).
    let key = if data.len() % 2 == 1 {
        xwing_gateway_key()
    } else {
        gateway_key()
    };
    let suite = SymmetricSuite::ALL[data.len() % SymmetricSuite::ALL.len()];
    let direct = decode_message(data);
    if let Ok(m) = &direct {
        let _ = date(m);
        let _ = header(m, "content-type");
    }
    for chunked in [false, true] {
        let g = gateway();
        let (body, opened) = if chunked {
            let Ok((body, _)) = encapsulate_chunked_request(key.config(), suite, data, &mut rng)
            else {
                continue;
            };
            let opened = g.open_chunked_request(&body, now(), &mut rng);
            (body, opened.map(|o| o.message))
        } else {
            let Ok((body, _)) = encapsulate_request(key.config(), suite, data, &mut rng) else {
                continue;
            };
            let opened = g.open_request(&body, now());
            (body, opened.map(|o| o.message))
        };
        let Ok(message) = opened else { continue };
        let Ok(parsed) = &direct else {
            panic!("the gateway accepted an inner request that does not parse");
        };
        assert_eq!(
            bhttp_bytes(&message),
            bhttp_bytes(parsed),
            "the gateway handed over another message than the one sealed"
        );
        let replay = if chunked {
            g.open_chunked_request(&body, now(), &mut rng).map(|_| ())
        } else {
            g.open_request(&body, now()).map(|_| ())
        };
        assert_eq!(
            replay,
            Err(Error::Replay {
                key_id: key.key_id()
            }),
            "a replayed request was not refused"
        );
    }
}

/// One step of a chunk script (see [`ohttp_chunks`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step<'a> {
    Chunk(&'a [u8]),
    Final(&'a [u8]),
    Raw(&'a [u8]),
    Flip(u8),
    Cut(u8),
}

/// Reads a script: each step is an op byte, then its operand (a length-prefixed payload,
/// or one byte).
fn script(mut data: &[u8]) -> Vec<Step<'_>> {
    let mut out = Vec::new();
    while let Some((&op, rest)) = data.split_first() {
        let Some((&arg, rest)) = rest.split_first() else {
            break;
        };
        data = rest;
        let mut payload = || {
            let (p, r) = data.split_at(usize::from(arg).min(data.len()));
            data = r;
            p
        };
        out.push(match op % 8 {
            0..=2 => Step::Chunk(payload()),
            3 => Step::Final(payload()),
            4 => Step::Raw(payload()),
            5 => Step::Flip(arg),
            6 => Step::Cut(arg),
            _ => Step::Chunk(&[]),
        });
    }
    out
}

/// Runs a script against one sealer: returns the wire bytes, the plaintext sealed (in
/// order), and whether the stream is clean (only seals, ending with the final chunk).
fn run_script(
    steps: &[Step<'_>],
    mut seal: impl FnMut(&[u8], bool) -> Result<Vec<u8>, Error>,
    wire: &mut Vec<u8>,
) -> (Vec<u8>, bool) {
    let mut sealed = Vec::new();
    let mut clean = true;
    let mut finished = false;
    for step in steps {
        match *step {
            Step::Chunk(p) | Step::Final(p) => {
                let last = matches!(step, Step::Final(_));
                match seal(p, last) {
                    Ok(bytes) => {
                        assert!(!finished, "a sealer sealed after the final chunk");
                        wire.extend_from_slice(&bytes);
                        sealed.extend_from_slice(p);
                        finished |= last;
                    }
                    Err(_) => assert!(finished, "sealing failed before the final chunk"),
                }
            }
            Step::Raw(p) => {
                clean &= p.is_empty();
                wire.extend_from_slice(p);
            }
            Step::Flip(at) if !wire.is_empty() => {
                clean = false;
                let i = usize::from(at) % wire.len();
                wire[i] ^= 0x01;
            }
            Step::Cut(n) if n > 0 && !wire.is_empty() => {
                clean = false;
                wire.truncate(wire.len().saturating_sub(usize::from(n)));
            }
            Step::Flip(_) | Step::Cut(_) => {}
        }
    }
    (sealed, clean && finished)
}

/// Feeds `wire` to an opener in pieces (`open(Some(piece))`), then finishes it
/// (`open(None)`); returns the plaintext released and whether every call succeeded.
fn open_pieces(
    wire: &[u8],
    rng: &mut TestRng,
    mut open: impl FnMut(Option<&[u8]>) -> Result<Vec<u8>, Error>,
) -> (Vec<u8>, bool) {
    let mut got = Vec::new();
    for piece in pieces(wire, 97, rng).into_iter().map(Some).chain([None]) {
        match open(piece) {
            Ok(p) => got.extend(p),
            Err(_) => return (got, false),
        }
    }
    (got, true)
}

fn check_opened(direction: &str, sealed: &[u8], clean: bool, (got, ok): (Vec<u8>, bool)) {
    assert!(
        sealed.starts_with(&got),
        "{direction}: the opener released plaintext that was not sealed in this order"
    );
    if clean {
        assert!(ok, "{direction}: a clean stream was refused");
        assert_eq!(got, sealed, "{direction}: a clean stream lost plaintext");
    }
}

/// `ohttp_chunks`: the chunk openers of chunked OHTTP (request at the gateway, response at
/// the client) fed streams built by a script in the input (`data[0]` picks the suite, then
/// steps: seal a chunk, seal the final chunk, append raw bytes, flip a bit, cut the tail),
/// delivered in pieces. A clean stream must open to exactly what was sealed; any other
/// stream must never release a byte that was not sealed, in order. Also the one-shot
/// response (`message/ohttp-res`): the bytes sealed open back, and the bytes as a sealed
/// response never authenticate.
pub fn ohttp_chunks(data: &[u8]) {
    let Some((&suite_byte, rest)) = data.split_first() else {
        return;
    };
    let key = gateway_key();
    let suite = SymmetricSuite::ALL[usize::from(suite_byte) % SymmetricSuite::ALL.len()];
    let mut rng = TestRng::new(data);
    let Ok((mut req_sealer, header)) = ChunkedRequestSealer::start(key.config(), suite, &mut rng)
    else {
        panic!("sealing to the fixed key failed");
    };
    let mut req_opener = ChunkedRequestOpener::new(key);
    assert_eq!(req_opener.push(&header), Ok(Vec::new()));
    let (mut res_sealer, res_nonce) = req_opener
        .response_sealer(&mut rng)
        .expect("the header was read");
    let mut res_opener = req_sealer.response_opener().expect("first call");
    let steps = script(rest);

    let mut wire = Vec::new();
    let (sealed, clean) = run_script(
        &steps,
        |p, last| {
            if last {
                req_sealer.seal_final(p)
            } else {
                req_sealer.seal_chunk(p)
            }
        },
        &mut wire,
    );
    let opened = open_pieces(&wire, &mut rng, |p| match p {
        Some(p) => req_opener.push(p),
        None => req_opener.finish(),
    });
    check_opened("request", &sealed, clean, opened);

    let mut wire = res_nonce;
    let (sealed, clean) = run_script(
        &steps,
        |p, last| {
            if last {
                res_sealer.seal_final(p)
            } else {
                res_sealer.seal_chunk(p)
            }
        },
        &mut wire,
    );
    let opened = open_pieces(&wire, &mut rng, |p| match p {
        Some(p) => res_opener.push(p),
        None => res_opener.finish(),
    });
    check_opened("response", &sealed, clean, opened);

    // The one-shot response: arbitrary bytes never authenticate; sealed bytes open back.
    let Ok((_, opener)) = encapsulate_request(key.config(), suite, b"", &mut rng) else {
        panic!("sealing to the fixed key failed");
    };
    assert!(
        opener.open(rest).is_err(),
        "arbitrary bytes authenticated as a response"
    );
    let Ok((request, opener)) = encapsulate_request(key.config(), suite, b"", &mut rng) else {
        panic!("sealing to the fixed key failed");
    };
    let d = decapsulate_request(key, &request).expect("a sealed request opens");
    let sealed = d.response.seal(rest, &mut rng).expect("seal");
    assert_eq!(opener.open(&sealed).as_deref(), Ok(rest));
}

/// `bhttp_message`: the bytes as a Binary HTTP message (either framing, zero padding).
/// What parses re-encodes (known length) to bytes that parse to the same message, padded
/// or not.
pub fn bhttp_message(data: &[u8]) {
    let Ok(message) = decode_message(data) else {
        return;
    };
    let _ = date(&message);
    let _ = header(&message, "date");
    let Some(once) = bhttp_bytes(&message) else {
        return;
    };
    let again = decode_message(&once).expect("a re-encoded message parses");
    assert_eq!(bhttp_bytes(&again).as_ref(), Some(&once), "not idempotent");
    let padded = encode_message(&message, &Padding::default()).expect("pads");
    let unpadded = decode_message(&padded).expect("a padded message parses");
    assert_eq!(bhttp_bytes(&unpadded), Some(once), "padding changed it");
}
