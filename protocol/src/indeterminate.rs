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

use crate::{
    Error, Padding,
    varint::{varint_len, write_varint},
};

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

    /// [`head`](Self::head) with one more field, `x-veil-padding` (spaces), sized so that the
    /// head's length is a size of `padding`: the head chunk then tells nothing about the
    /// answer's status line and headers beyond their bucket. Without padding, the plain head.
    pub fn head_padded(
        &mut self,
        status: u16,
        headers: &[(&[u8], &[u8])],
        padding: &Padding,
    ) -> Result<Vec<u8>, Error> {
        const NAME: &[u8] = b"x-veil-padding";
        if !padding.is_enabled() {
            return self.head(status, headers);
        }
        let plain = Self::new().head(status, headers)?.len();
        // The field adds the name's length (1 byte) and name, the value's length and value.
        let fixed = plain + 1 + NAME.len();
        let mut target = padding.padded_len(fixed + 1);
        let value_len = loop {
            let fits = [1usize, 2, 4].into_iter().find_map(|len_bytes| {
                let v = target.checked_sub(fixed + len_bytes)?;
                (varint_len(v as u64) == len_bytes).then_some(v)
            });
            match fits {
                Some(v) => break v,
                None => target = padding.padded_len(target + 1),
            }
        };
        let pad = vec![b' '; value_len];
        let mut fields = headers.to_vec();
        fields.push((NAME, &pad));
        self.head(status, &fields)
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
    fn a_padded_head_fills_its_bucket_and_keeps_the_fields() {
        let padding = Padding::default();
        for value_len in [0usize, 1, 40, 60, 100, 118, 119, 120, 250, 5000, 20_000] {
            let value = vec![b'a'; value_len];
            let fields: [(&[u8], &[u8]); 1] = [(b"x-long", &value)];
            let head = IndeterminateResponseEncoder::new()
                .head_padded(200, &fields, &padding)
                .expect("head");
            let plain = IndeterminateResponseEncoder::new()
                .head(200, &fields)
                .expect("head")
                .len();
            assert_eq!(
                head.len(),
                padding.padded_len(head.len()),
                "value {value_len}"
            );
            assert!(head.len() > plain, "value {value_len}");
            let mut wire = head;
            wire.extend([0, 0]);
            let msg = decode_message(&wire).expect("parses");
            assert_eq!(header(&msg, "x-long"), Some(&value[..]));
            let pad = header(&msg, "x-veil-padding").expect("padding field");
            assert!(pad.iter().all(|&b| b == b' '));
        }
        let head = IndeterminateResponseEncoder::new()
            .head_padded(200, &[], &Padding::none())
            .expect("head");
        assert_eq!(head, [3, 0x40, 200, 0]);
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
