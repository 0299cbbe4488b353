//! The client side: builds the inner request (with its `Date`), pads and encapsulates it
//! to an attested key configuration.

use std::time::SystemTime;

use bhttp::Message;
use hpke::rand_core::CryptoRng;

use crate::{
    ChunkedResponseOpener, Error, KeyConfig, Padding, ResponseOpener, SymmetricSuite,
    chunked::encapsulate_chunked_request,
    message::{encode_message, format_date},
    request::encapsulate_request,
};

/// Encapsulates requests to one gateway key configuration.
#[derive(Debug, Clone)]
pub struct Client {
    config: KeyConfig,
    suite: SymmetricSuite,
    padding: Padding,
}

impl Client {
    /// A client for `config` (which the caller has authenticated, for Veil by attestation),
    /// using the first suite the configuration offers that this crate supports, and
    /// default padding.
    pub fn new(config: KeyConfig) -> Result<Self, Error> {
        let suite = config.preferred_suite()?;
        Ok(Self {
            config,
            suite,
            padding: Padding::default(),
        })
    }

    /// Uses `suite`, which the configuration must offer.
    pub fn with_suite(mut self, suite: SymmetricSuite) -> Result<Self, Error> {
        if !self.config.offers(suite) {
            return Err(Error::UnsupportedSuite {
                kdf: suite.kdf.id(),
                aead: suite.aead.id(),
            });
        }
        self.suite = suite;
        Ok(self)
    }

    /// Sets the request padding.
    pub fn with_padding(mut self, padding: Padding) -> Self {
        self.padding = padding;
        self
    }

    /// The key configuration requests are sealed to.
    pub fn config(&self) -> &KeyConfig {
        &self.config
    }

    /// The suite requests are sealed with.
    pub fn suite(&self) -> SymmetricSuite {
        self.suite
    }

    /// Seals `request` as `message/ohttp-req`.
    pub fn seal(
        &self,
        request: &Message,
        rng: &mut impl CryptoRng,
    ) -> Result<(Vec<u8>, ResponseOpener), Error> {
        let plain = encode_message(request, &self.padding)?;
        encapsulate_request(&self.config, self.suite, &plain, rng)
    }

    /// Seals `request` as `message/ohttp-chunked-req`, for a streamed response.
    pub fn seal_chunked(
        &self,
        request: &Message,
        rng: &mut impl CryptoRng,
    ) -> Result<(Vec<u8>, ChunkedResponseOpener), Error> {
        let plain = encode_message(request, &self.padding)?;
        encapsulate_chunked_request(&self.config, self.suite, &plain, rng)
    }
}

/// Builds an inner request: `method` on `https://{authority}{path}` with `headers`, a
/// `Date` of `now` (for the gateway's freshness check), and `body`.
pub fn build_request(
    method: &str,
    authority: &str,
    path: &str,
    headers: &[(&str, &[u8])],
    body: &[u8],
    now: SystemTime,
) -> Message {
    let mut m = Message::request(
        method.as_bytes().to_vec(),
        b"https".to_vec(),
        authority.as_bytes().to_vec(),
        path.as_bytes().to_vec(),
    );
    m.put_header("date", format_date(now));
    for (name, value) in headers {
        m.put_header(name.to_ascii_lowercase(), value.to_vec());
    }
    if !body.is_empty() {
        m.write_content(body);
    }
    m
}
