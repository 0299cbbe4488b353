//! An incremental encoder for indeterminate-length Binary HTTP responses (RFC 9292 §3.2),
//! for responses streamed as chunked OHTTP (`bhttp` has no incremental writer).
//!
//! ```text
//! Indeterminate-Length Response {
//!   Framing Indicator (i) = 3,
//!   Status Code (i) = 200..599,
//!   Field Line { Name Length (i) = 1.., Name, Value Length (i), Value } ..., (i) = 0,
//!   Content Chunk { Length (i) = 1.., Data } ..., (i) = 0,
//!   Trailer Field Line ..., (i) = 0,
//!   Padding (zero bytes),
//! }
//! ```

use crate::{Error, varint::write_varint};

/// Which part of the message comes next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Head,
    Content,
    Done,
}

/// Writes an indeterminate-length response piece by piece. Each method returns the bytes
/// to append to the stream (and to seal as chunked-OHTTP chunks).
#[derive(Debug)]
pub struct IndeterminateResponseEncoder {
    state: State,
}

impl Default for IndeterminateResponseEncoder {
    fn default() -> Self {
        Self::new()
    }
}

fn write_fields(fields: &[(&[u8], &[u8])], out: &mut Vec<u8>) -> Result<(), Error> {
    for (name, value) in fields {
        if name.is_empty() {
            return Err(Error::BinaryHttp("empty field name"));
        }
        write_varint(name.len() as u64, out);
        out.extend_from_slice(name);
        write_varint(value.len() as u64, out);
        out.extend_from_slice(value);
    }
    out.push(0);
    Ok(())
}

impl IndeterminateResponseEncoder {
    /// A new encoder; call [`head`](Self::head) first.
    pub fn new() -> Self {
        Self { state: State::Head }
    }

    /// The framing indicator, final status code and header fields. Names should be
    /// lowercase, as in HTTP/2 and HTTP/3.
    pub fn head(&mut self, status: u16, headers: &[(&[u8], &[u8])]) -> Result<Vec<u8>, Error> {
        if self.state != State::Head {
            return Err(Error::InvalidState("response head already written"));
        }
        if !(200..=599).contains(&status) {
            return Err(Error::BinaryHttp("final status code must be 200..=599"));
        }
        let mut out = vec![3];
        write_varint(u64::from(status), &mut out);
        write_fields(headers, &mut out)?;
        self.state = State::Content;
        Ok(out)
    }

    /// One content chunk; empty `data` writes nothing (a zero length would end the content).
    pub fn content(&mut self, data: &[u8]) -> Result<Vec<u8>, Error> {
        if self.state != State::Content {
            return Err(Error::InvalidState("content outside the message body"));
        }
        let mut out = Vec::with_capacity(data.len() + 4);
        if !data.is_empty() {
            write_varint(data.len() as u64, &mut out);
            out.extend_from_slice(data);
        }
        Ok(out)
    }

    /// Ends the content, writes the trailer fields, then `padding` zero bytes.
    pub fn finish(
        &mut self,
        trailers: &[(&[u8], &[u8])],
        padding: usize,
    ) -> Result<Vec<u8>, Error> {
        if self.state != State::Content {
            return Err(Error::InvalidState("finish before head or after finish"));
        }
        let mut out = vec![0];
        write_fields(trailers, &mut out)?;
        out.resize(out.len() + padding, 0);
        self.state = State::Done;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{decode_message, header};

    #[test]
    fn encoder_output_parses_with_bhttp() {
        let mut enc = IndeterminateResponseEncoder::new();
        let mut wire = enc
            .head(200, &[(b"content-type", b"text/event-stream")])
            .expect("head");
        wire.extend(enc.content(b"data: one\n\n").expect("content"));
        wire.extend(enc.content(b"").expect("empty content"));
        wire.extend(enc.content(b"data: two\n\n").expect("content"));
        wire.extend(enc.finish(&[(b"x-usage", b"7")], 5).expect("finish"));
        let msg = decode_message(&wire).expect("bhttp parses the stream");
        assert_eq!(msg.control().status().map(|s| s.code()), Some(200));
        assert_eq!(
            header(&msg, "Content-Type"),
            Some(&b"text/event-stream"[..])
        );
        assert_eq!(msg.content(), b"data: one\n\ndata: two\n\n");
        assert_eq!(msg.trailer().get(b"x-usage"), Some(&b"7"[..]));
    }

    #[test]
    fn encoder_enforces_order() {
        let mut enc = IndeterminateResponseEncoder::new();
        assert!(enc.content(b"x").is_err());
        assert!(enc.head(99, &[]).is_err());
        enc.head(200, &[]).expect("head");
        assert!(enc.head(200, &[]).is_err());
        enc.finish(&[], 0).expect("finish");
        assert!(enc.content(b"x").is_err());
    }
}
