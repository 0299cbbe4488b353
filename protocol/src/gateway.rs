//! The Veil gateway: live keys (the current epoch's, one per KEM, and the previous epoch's
//! for a grace period), per-key replay caches, the `Date` window and response padding,
//! around the OHTTP functions of this crate.
//!
//! Opening a request takes `&self`: decryption runs without any lock, and each key's replay
//! record is locked only for its lookup and insert, so concurrent requests decrypt in
//! parallel and a flood cannot hold others up behind one lock. Key changes take `&mut self`.

use std::{
    fmt,
    sync::{Mutex, PoisonError},
    time::SystemTime,
};

use bhttp::Message;
use hpke::rand_core::CryptoRng;

use crate::{
    ChunkedRequestOpener, ChunkedResponseSealer, DateWindow, Error, GatewayKey, KeyConfig, Padding,
    ReplayCache, ResponseSealer,
    message::{date, decode_message, encode_message},
    request::{decapsulate_request, request_key_id},
};

/// Default number of requests each key accepts per `Date` second (see [`ReplayCache`]): at
/// most 131 s × 1,280 entries of 32 bytes are kept per key with the default window.
pub const DEFAULT_REPLAY_PER_SECOND: usize = 1024;

struct LiveKey {
    key: GatewayKey,
    replay: Mutex<ReplayCache>,
    epoch: u64,
}

/// The gateway's keys and request checks.
pub struct Gateway {
    /// Current epoch's keys first (in the order given), then the previous epoch's.
    keys: Vec<LiveKey>,
    epoch: u64,
    window: DateWindow,
    replay_per_second: usize,
    padding: Padding,
}

/// A request that passed every check.
#[non_exhaustive]
pub struct OpenedRequest {
    /// The inner request.
    pub message: Message,
    /// The key id it was addressed to.
    pub key_id: u8,
    /// Seals the response (`message/ohttp-res`).
    pub response: ResponseSealer,
    padding: Padding,
}

impl OpenedRequest {
    /// Seals `response` (padded per the gateway's policy) as `message/ohttp-res`.
    pub fn seal_response(
        self,
        response: &Message,
        rng: &mut impl CryptoRng,
    ) -> Result<Vec<u8>, Error> {
        let plain = encode_message(response, &self.padding)?;
        self.response.seal(&plain, rng)
    }
}

impl fmt::Debug for OpenedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedRequest")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

/// A chunked request that passed every check, with its response started.
#[non_exhaustive]
pub struct OpenedChunkedRequest {
    /// The inner request.
    pub message: Message,
    /// The key id it was addressed to.
    pub key_id: u8,
    /// The response nonce: the first bytes of the `message/ohttp-chunked-res` body.
    pub response_nonce: Vec<u8>,
    /// Seals the response chunks that follow the nonce.
    pub response: ChunkedResponseSealer,
}

impl fmt::Debug for OpenedChunkedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedChunkedRequest")
            .field("key_id", &self.key_id)
            .finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway with no key yet, the given `Date` window, and default padding and
    /// replay-cache bound.
    pub fn new(window: DateWindow) -> Self {
        Self {
            keys: Vec::new(),
            epoch: 0,
            window,
            replay_per_second: DEFAULT_REPLAY_PER_SECOND,
            padding: Padding::default(),
        }
    }

    /// Sets how many requests each key accepts per `Date` second (applies to keys added
    /// later).
    pub fn with_replay_per_second(mut self, per_second: usize) -> Self {
        self.replay_per_second = per_second;
        self
    }

    /// Sets the padding of sealed responses.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// Makes `key` the only current key; see [`Gateway::rotate_all`].
    pub fn rotate(&mut self, key: GatewayKey) {
        self.rotate_all([key]);
    }

    /// Starts a new epoch whose current keys are `keys`, in order of preference (Veil's
    /// server: X-Wing, then X25519). The previous epoch's keys stay live for a grace period;
    /// older keys are dropped together with their replay caches, as is any live key that
    /// shares a key id with a new one. An empty `keys` changes nothing.
    pub fn rotate_all(&mut self, keys: impl IntoIterator<Item = GatewayKey>) {
        let keys: Vec<GatewayKey> = keys.into_iter().collect();
        if keys.is_empty() {
            return;
        }
        let previous = self.epoch;
        self.epoch += 1;
        self.keys
            .retain(|k| k.epoch == previous && !keys.iter().any(|n| n.key_id() == k.key.key_id()));
        let epoch = self.epoch;
        let fresh = keys.into_iter().map(|key| LiveKey {
            replay: Mutex::new(ReplayCache::new(
                key.key_id(),
                self.window,
                self.replay_per_second,
            )),
            key,
            epoch,
        });
        self.keys.splice(0..0, fresh);
    }

    /// Drops the key `key_id` and its replay cache; returns whether it was live.
    pub fn retire(&mut self, key_id: u8) -> bool {
        let before = self.keys.len();
        self.keys.retain(|k| k.key.key_id() != key_id);
        self.keys.len() != before
    }

    /// The live key configurations, current first.
    pub fn key_configs(&self) -> Vec<KeyConfig> {
        self.keys.iter().map(|k| k.key.config().clone()).collect()
    }

    /// The first live key's configuration (the current epoch's preferred one, unless it was
    /// retired), if any key is live.
    pub fn current_config(&self) -> Option<&KeyConfig> {
        self.keys.first().map(|k| k.key.config())
    }

    /// The current epoch's key configurations, in order of preference: what attestation
    /// binds and clients choose from. Empty once every current key is retired.
    pub fn current_configs(&self) -> Vec<KeyConfig> {
        self.keys
            .iter()
            .filter(|k| k.epoch == self.epoch)
            .map(|k| k.key.config().clone())
            .collect()
    }

    /// The `application/ohttp-keys` body for `GET /.well-known/ohttp-gateway`.
    pub fn ohttp_keys(&self) -> Vec<u8> {
        KeyConfig::encode_list(&self.key_configs())
    }

    fn live(&self, encapsulated: &[u8]) -> Result<&LiveKey, Error> {
        let key_id = request_key_id(encapsulated).ok_or(Error::Malformed("empty request"))?;
        self.keys
            .iter()
            .find(|k| k.key.key_id() == key_id)
            .ok_or(Error::UnknownKeyId(key_id))
    }

    /// Checks freshness, then replay, recording `enc` (only for requests that passed). The
    /// replay record's lock is held for the lookup and insert only.
    fn admit(
        &self,
        live: &LiveKey,
        enc: &[u8],
        message: &Message,
        now: SystemTime,
    ) -> Result<(), Error> {
        let date = date(message)?;
        self.window.check(date, now)?;
        // A panic inside `insert` leaves the record consistent (it mutates last), so a
        // poisoned lock is still usable.
        live.replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(enc, date, now)
    }

    /// Opens a `message/ohttp-req` body: key lookup, decapsulation, Binary HTTP parsing,
    /// `Date` and replay checks. Never panics on any input.
    pub fn open_request(&self, body: &[u8], now: SystemTime) -> Result<OpenedRequest, Error> {
        let padding = self.padding.clone();
        let live = self.live(body)?;
        let d = decapsulate_request(&live.key, body)?;
        let message = decode_message(&d.request)?;
        self.admit(live, &d.enc, &message, now)?;
        Ok(OpenedRequest {
            message,
            key_id: d.key_id,
            response: d.response,
            padding,
        })
    }

    /// Opens a complete `message/ohttp-chunked-req` body with the same checks, and starts
    /// the chunked response with a nonce from `rng`. Never panics on any input.
    pub fn open_chunked_request(
        &self,
        body: &[u8],
        now: SystemTime,
        rng: &mut impl CryptoRng,
    ) -> Result<OpenedChunkedRequest, Error> {
        let live = self.live(body)?;
        let mut opener = ChunkedRequestOpener::new(&live.key);
        let mut plain = opener.push(body)?;
        plain.extend_from_slice(&opener.finish()?);
        let enc = opener.enc().ok_or(Error::Truncated)?.to_vec();
        let (response, response_nonce) = opener.response_sealer(rng)?;
        let key_id = live.key.key_id();
        let message = decode_message(&plain)?;
        self.admit(live, &enc, &message, now)?;
        Ok(OpenedChunkedRequest {
            message,
            key_id,
            response_nonce,
            response,
        })
    }

    /// The response padding policy.
    pub fn padding(&self) -> &Padding {
        &self.padding
    }
}

impl fmt::Debug for Gateway {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<u8> = self.keys.iter().map(|k| k.key.key_id()).collect();
        f.debug_struct("Gateway")
            .field("key_ids", &ids)
            .field("window", &self.window)
            .field("replay_per_second", &self.replay_per_second)
            .field("padding", &self.padding)
            .finish()
    }
}
