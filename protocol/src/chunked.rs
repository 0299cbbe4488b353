//! Chunked OHTTP (draft-ietf-ohai-chunked-ohttp-08): `message/ohttp-chunked-req` and
//! `message/ohttp-chunked-res`, sealed and opened incrementally.
//!
//! Each type is sans-IO: bytes in, bytes out. Openers return plaintext as soon as each
//! chunk authenticates; callers that need the complete message must wait for `finish`,
//! which fails with [`Error::Truncated`] when the stream ended without the final chunk.

use std::fmt;

use hpke::rand_core::CryptoRng;

use crate::{
    Error, GatewayKey, KeyConfig, SymmetricSuite,
    framing::{ChunkOpener, ChunkSealer},
    request::{self, LABEL_CHUNKED_REQUEST, RequestHeader},
    response::{LABEL_CHUNKED_RESPONSE, ResponseSecret},
    varint::Cursor,
};

/// Client: seals a chunked request.
pub struct ChunkedRequestSealer {
    chunks: ChunkSealer,
    response: Option<ResponseSecret>,
}

impl ChunkedRequestSealer {
    /// Starts a request to `config` with `suite`; the ephemeral key is drawn from `rng`.
    /// Returns the sealer and the request header `hdr ‖ enc` to send first.
    pub fn start(
        config: &KeyConfig,
        suite: SymmetricSuite,
        rng: &mut impl CryptoRng,
    ) -> Result<(Self, Vec<u8>), Error> {
        let (header, enc, sealer) = request::start(config, suite, LABEL_CHUNKED_REQUEST, rng)?;
        let response =
            ResponseSecret::from_sealer(&sealer, LABEL_CHUNKED_RESPONSE, suite.aead, enc)?;
        Ok((
            Self {
                chunks: ChunkSealer::new(sealer, suite.aead),
                response: Some(response),
            },
            header,
        ))
    }

    /// Seals `data` as non-final chunk(s) and returns their bytes (empty for empty `data`).
    pub fn seal_chunk(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.chunks.seal(data, &mut out)?;
        Ok(out)
    }

    /// Seals `data` as the final chunk and returns its bytes; the request is complete.
    pub fn seal_final(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.chunks.seal_final(data, &mut out)?;
        Ok(out)
    }

    /// The opener for this request's chunked response (callable once).
    pub fn response_opener(&mut self) -> Result<ChunkedResponseOpener, Error> {
        let secret = self
            .response
            .take()
            .ok_or(Error::InvalidState("response opener already taken"))?;
        Ok(ChunkedResponseOpener::new(secret))
    }
}

impl fmt::Debug for ChunkedRequestSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedRequestSealer")
            .field("aead", &self.chunks.aead())
            .finish_non_exhaustive()
    }
}

/// Client: seals a whole request as chunked OHTTP in one call (`hdr ‖ enc ‖ chunks`), with
/// the request body in one non-final chunk and an empty final chunk.
pub fn encapsulate_chunked_request(
    config: &KeyConfig,
    suite: SymmetricSuite,
    request: &[u8],
    rng: &mut impl CryptoRng,
) -> Result<(Vec<u8>, ChunkedResponseOpener), Error> {
    let (mut sealer, mut out) = ChunkedRequestSealer::start(config, suite, rng)?;
    out.extend_from_slice(&sealer.seal_chunk(request)?);
    out.extend_from_slice(&sealer.seal_final(b"")?);
    Ok((out, sealer.response_opener()?))
}

/// Gateway: opens a chunked request incrementally with one key.
pub struct ChunkedRequestOpener<'k> {
    key: &'k GatewayKey,
    header: Vec<u8>,
    pub(crate) opened: Option<(RequestHeader, ChunkOpener)>,
}

impl<'k> ChunkedRequestOpener<'k> {
    /// An opener for requests addressed to `key`.
    pub fn new(key: &'k GatewayKey) -> Self {
        Self {
            key,
            header: Vec::new(),
            opened: None,
        }
    }

    /// Feeds the next bytes of the request; returns the plaintext of the chunks they
    /// complete. Never panics on any input.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        if let Some((_, chunks)) = &mut self.opened {
            return chunks.push(data);
        }
        let header_len = RequestHeader::len_for(self.key);
        let need = header_len - self.header.len();
        let (head, rest) = data.split_at(need.min(data.len()));
        self.header.extend_from_slice(head);
        if self.header.len() < header_len {
            return Ok(Vec::new());
        }
        let mut cur = Cursor::new(&self.header);
        let header = RequestHeader::read(&mut cur, self.key)?;
        let opener = header.receiver(self.key, LABEL_CHUNKED_REQUEST)?;
        let (_, chunks) = self.opened.insert((header, ChunkOpener::new(opener)));
        chunks.push(rest)
    }

    /// Ends the request stream: returns the final chunk's plaintext, or
    /// [`Error::Truncated`] if the final chunk never began.
    pub fn finish(&mut self) -> Result<Vec<u8>, Error> {
        match &mut self.opened {
            Some((_, chunks)) => chunks.finish(),
            None => Err(Error::Truncated),
        }
    }

    /// Whether the request's authenticated final chunk has been opened.
    pub fn is_complete(&self) -> bool {
        self.opened.as_ref().is_some_and(|(_, c)| c.is_complete())
    }

    /// The client's encapsulated key, once the header has been read.
    pub fn enc(&self) -> Option<&[u8]> {
        self.opened.as_ref().map(|(h, _)| h.enc.as_slice())
    }

    /// Starts the chunked response, once the header has been read. The response nonce is
    /// drawn from `rng`; returns the sealer and the nonce, which must be sent first.
    pub fn response_sealer(
        &self,
        rng: &mut impl CryptoRng,
    ) -> Result<(ChunkedResponseSealer, Vec<u8>), Error> {
        let (header, chunks) = self
            .opened
            .as_ref()
            .ok_or(Error::InvalidState("response before the request header"))?;
        let secret = ResponseSecret::from_opener(
            chunks.context(),
            LABEL_CHUNKED_RESPONSE,
            header.suite.aead,
            header.enc.clone(),
        )?;
        let (nonce, sealer) = secret.sealer(rng);
        Ok((
            ChunkedResponseSealer {
                chunks: ChunkSealer::new(sealer, secret.aead()),
            },
            nonce,
        ))
    }
}

impl fmt::Debug for ChunkedRequestOpener<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedRequestOpener")
            .field("key_id", &self.key.key_id())
            .field("header_read", &self.opened.is_some())
            .finish_non_exhaustive()
    }
}

/// Gateway: seals a chunked response, chunk by chunk.
pub struct ChunkedResponseSealer {
    chunks: ChunkSealer,
}

impl ChunkedResponseSealer {
    /// Seals `data` as non-final chunk(s) and returns their bytes (empty for empty `data`).
    pub fn seal_chunk(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.chunks.seal(data, &mut out)?;
        Ok(out)
    }

    /// Seals `data` as the final chunk (AAD "final") and returns its bytes.
    pub fn seal_final(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = Vec::new();
        self.chunks.seal_final(data, &mut out)?;
        Ok(out)
    }
}

impl fmt::Debug for ChunkedResponseSealer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedResponseSealer")
            .field("aead", &self.chunks.aead())
            .finish_non_exhaustive()
    }
}

/// Client: opens a chunked response incrementally.
pub struct ChunkedResponseOpener {
    secret: ResponseSecret,
    nonce: Vec<u8>,
    chunks: Option<ChunkOpener>,
}

impl ChunkedResponseOpener {
    pub(crate) fn new(secret: ResponseSecret) -> Self {
        Self {
            secret,
            nonce: Vec::new(),
            chunks: None,
        }
    }

    /// Feeds the next bytes of the response; returns the plaintext of the chunks they
    /// complete (possibly empty). Never panics on any input.
    pub fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        if let Some(chunks) = &mut self.chunks {
            return chunks.push(data);
        }
        let need = self.secret.nonce_len() - self.nonce.len();
        let (head, rest) = data.split_at(need.min(data.len()));
        self.nonce.extend_from_slice(head);
        if self.nonce.len() < self.secret.nonce_len() {
            return Ok(Vec::new());
        }
        let chunks = self
            .chunks
            .insert(ChunkOpener::new(self.secret.opener(&self.nonce)));
        chunks.push(rest)
    }

    /// Ends the response stream: returns the final chunk's plaintext, or
    /// [`Error::Truncated`] if the stream ended before the final chunk.
    pub fn finish(&mut self) -> Result<Vec<u8>, Error> {
        match &mut self.chunks {
            Some(chunks) => chunks.finish(),
            None => Err(Error::Truncated),
        }
    }

    /// Whether the response's authenticated final chunk has been opened.
    pub fn is_complete(&self) -> bool {
        self.chunks.as_ref().is_some_and(ChunkOpener::is_complete)
    }

    /// Opens a whole chunked response in one call: every chunk, then the final one.
    pub fn open_all(mut self, encapsulated: &[u8]) -> Result<Vec<u8>, Error> {
        let mut out = self.push(encapsulated)?;
        out.extend_from_slice(&self.finish()?);
        Ok(out)
    }
}

impl fmt::Debug for ChunkedResponseOpener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ChunkedResponseOpener")
            .field("aead", &self.secret.aead())
            .field("complete", &self.is_complete())
            .finish_non_exhaustive()
    }
}
