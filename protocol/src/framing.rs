//! Chunk framing of chunked OHTTP (draft-ietf-ohai-chunked-ohttp §3–§5), shared by both
//! directions:
//!
//! ```text
//! non_final_chunk = varint(len(sealed)) ‖ Seal(nonce_i, "", chunk)       (len ≥ 1)
//! final_chunk     = varint(0)           ‖ Seal(nonce_n, "final", chunk)  (to end of stream)
//! ```
//! Nonces advance with the chunk counter inside the context, so reordering, dropping or
//! re-marking a chunk fails authentication; a stream that ends before the final chunk is
//! truncated.

use crate::{
    Aead, Error,
    cipher::{Opener, Sealer},
    varint::{peek_varint, write_varint},
};

/// The largest plaintext a sealer puts in one chunk (the draft's 2^14, which every
/// receiver must accept); longer input is split.
pub const MAX_CHUNK_PLAINTEXT: usize = 1 << 14;

/// The largest sealed chunk (non-final or final) an opener accepts before it allocates.
pub const MAX_SEALED_CHUNK: usize = 1 << 16;

const FINAL_AAD: &[u8] = b"final";

/// Seals chunks with a context whose sequence number is the chunk counter.
pub(crate) struct ChunkSealer {
    sealer: Sealer,
    aead: Aead,
    finished: bool,
}

impl ChunkSealer {
    pub(crate) fn new(sealer: Sealer, aead: Aead) -> Self {
        Self {
            sealer,
            aead,
            finished: false,
        }
    }

    fn check_open(&self) -> Result<(), Error> {
        if self.finished {
            return Err(Error::InvalidState("sealing after the final chunk"));
        }
        Ok(())
    }

    /// Seals `data` as one or more non-final chunks (none if `data` is empty, since a
    /// non-final chunk may not be empty), appending their framing to `out`.
    pub(crate) fn seal(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        self.check_open()?;
        for piece in data.chunks(MAX_CHUNK_PLAINTEXT) {
            let sealed = self.sealer.seal(piece, b"")?;
            write_varint(sealed.len() as u64, out);
            out.extend_from_slice(&sealed);
        }
        Ok(())
    }

    /// Seals `data` as the final chunk (preceded by non-final chunks if it is longer than
    /// [`MAX_CHUNK_PLAINTEXT`]); nothing can be sealed afterwards.
    pub(crate) fn seal_final(&mut self, data: &[u8], out: &mut Vec<u8>) -> Result<(), Error> {
        self.check_open()?;
        let split = data.len().saturating_sub(MAX_CHUNK_PLAINTEXT);
        let (head, last) = data.split_at(split);
        self.seal(head, out)?;
        let sealed = self.sealer.seal(last, FINAL_AAD)?;
        out.push(0);
        out.extend_from_slice(&sealed);
        self.finished = true;
        Ok(())
    }

    pub(crate) fn aead(&self) -> Aead {
        self.aead
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading non-final chunks.
    Chunks,
    /// The zero length was read: the rest of the stream is the final chunk.
    Final,
    /// The final chunk was opened.
    Done,
    /// An error occurred; the stream is dead.
    Failed,
}

/// Incrementally parses and opens chunks with a context whose sequence number is the
/// chunk counter.
pub(crate) struct ChunkOpener {
    opener: Opener,
    buf: Vec<u8>,
    state: State,
    index: u64,
}

impl ChunkOpener {
    pub(crate) fn new(opener: Opener) -> Self {
        Self {
            opener,
            buf: Vec::new(),
            state: State::Chunks,
            index: 0,
        }
    }

    /// Feeds bytes (after any header); returns the plaintext of every non-final chunk
    /// completed by them, in order.
    pub(crate) fn push(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        let r = self.push_inner(data);
        if r.is_err() {
            self.fail();
        }
        r
    }

    fn push_inner(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        match self.state {
            State::Chunks | State::Final => {}
            State::Done | State::Failed => return Err(Error::UnexpectedInput),
        }
        self.buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut pos = 0usize;
        while self.state == State::Chunks {
            let Some((len, n)) = self.buf.get(pos..).and_then(peek_varint) else {
                break;
            };
            if len == 0 {
                pos += n;
                self.state = State::Final;
                break;
            }
            if len > MAX_SEALED_CHUNK as u64 {
                return Err(Error::TooLarge {
                    what: "chunk",
                    len,
                    max: MAX_SEALED_CHUNK as u64,
                });
            }
            let len = len as usize;
            let Some(sealed) = self.buf.get(pos + n..pos + n + len) else {
                break;
            };
            let index = self.index;
            let plain = self
                .opener
                .open(sealed, b"")
                .map_err(|_| Error::ChunkAuthentication { index })?;
            if plain.is_empty() {
                return Err(Error::EmptyChunk { index });
            }
            self.index += 1;
            out.extend_from_slice(&plain);
            pos += n + len;
        }
        self.buf.drain(..pos);
        if self.state == State::Final && self.buf.len() > MAX_SEALED_CHUNK {
            return Err(Error::TooLarge {
                what: "final chunk",
                len: self.buf.len() as u64,
                max: MAX_SEALED_CHUNK as u64,
            });
        }
        Ok(out)
    }

    /// Ends the stream: opens the final chunk and returns its plaintext. Fails with
    /// [`Error::Truncated`] if the stream ended before the final chunk began.
    pub(crate) fn finish(&mut self) -> Result<Vec<u8>, Error> {
        match self.state {
            State::Final => {}
            State::Chunks => {
                self.fail();
                return Err(Error::Truncated);
            }
            State::Done | State::Failed => return Err(Error::UnexpectedInput),
        }
        let index = self.index;
        let sealed = std::mem::take(&mut self.buf);
        match self.opener.open(&sealed, FINAL_AAD) {
            Ok(plain) => {
                self.state = State::Done;
                Ok(plain)
            }
            Err(_) => {
                self.fail();
                Err(Error::ChunkAuthentication { index })
            }
        }
    }

    /// The context chunks are opened with (for exporting the response secret).
    pub(crate) fn context(&self) -> &Opener {
        &self.opener
    }

    /// Whether the authenticated final chunk has been opened.
    pub(crate) fn is_complete(&self) -> bool {
        self.state == State::Done
    }

    fn fail(&mut self) {
        self.state = State::Failed;
        self.buf = Vec::new();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cipher::{response_opener, response_sealer};

    const KEY: [u8; 32] = [7; 32];
    const NONCE: [u8; 12] = [9; 12];

    #[test]
    fn rejects_empty_non_final_chunk() {
        // A sender that breaks the rule: seals an empty non-final chunk.
        let mut raw = response_sealer(Aead::Aes256Gcm, &KEY, &NONCE);
        let sealed = raw.seal(b"", b"").expect("seal");
        let mut wire = Vec::new();
        write_varint(sealed.len() as u64, &mut wire);
        wire.extend_from_slice(&sealed);
        let mut opener = ChunkOpener::new(response_opener(Aead::Aes256Gcm, &KEY, &NONCE));
        assert_eq!(opener.push(&wire), Err(Error::EmptyChunk { index: 0 }));
    }

    #[test]
    fn sealer_splits_long_input_and_allows_empty_final_chunk() {
        let mut sealer = ChunkSealer::new(
            response_sealer(Aead::Aes128Gcm, &KEY[..16], &NONCE),
            Aead::Aes128Gcm,
        );
        let data = vec![0x5a; MAX_CHUNK_PLAINTEXT * 2 + 3];
        let mut wire = Vec::new();
        sealer.seal(&data, &mut wire).expect("seal");
        sealer.seal(b"", &mut wire).expect("empty seals nothing");
        sealer.seal_final(b"", &mut wire).expect("final");
        assert!(
            sealer.seal(b"x", &mut wire).is_err(),
            "nothing after the final chunk"
        );
        let mut opener = ChunkOpener::new(response_opener(Aead::Aes128Gcm, &KEY[..16], &NONCE));
        let mut got = opener.push(&wire).expect("chunks");
        assert_eq!(
            opener.index, 3,
            "split into three chunks of at most 2^14 bytes"
        );
        got.extend(opener.finish().expect("final"));
        assert_eq!(got, data);
    }
}
