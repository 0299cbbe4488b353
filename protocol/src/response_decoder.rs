//! An incremental decoder of Binary HTTP responses (RFC 9292), the counterpart of
//! [`IndeterminateResponseEncoder`](crate::IndeterminateResponseEncoder): fed decrypted
//! chunked-OHTTP plaintext as it arrives, the indeterminate-length form (§3.2) yields its
//! head, then each content chunk as soon as it is complete; the known-length form is
//! buffered and decoded whole by `bhttp`, which has no incremental reader.
//!
//! Every length is checked against a cap before anything is buffered, and each piece (a
//! field line, a content chunk) is parsed once, when complete: the work is linear in the
//! bytes received however they are split.

use crate::Error;
use crate::message::decode_message;
use crate::varint::peek_varint;

/// Cap on one content chunk before it is buffered.
const MAX_CHUNK: u64 = 16 << 20;
/// Cap on one field section (header or trailer), in encoded bytes.
const MAX_FIELD_SECTION: usize = 64 << 10;
/// Cap on a whole known-length response, buffered until the final chunk.
const MAX_KNOWN_LENGTH: usize = 64 << 20;

/// What a push produced.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// Status and header fields, once.
    pub head: Option<ResponseHead>,
    /// Content bytes completed by this push.
    pub content: Vec<u8>,
}

/// The response status and header fields (names as sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseHead {
    /// The final status code (200–599; informational responses are skipped).
    pub status: u16,
    /// The header fields, in order.
    pub headers: Vec<(Vec<u8>, Vec<u8>)>,
}

impl ResponseHead {
    /// The first field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v.as_slice())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Framing,
    Status,
    Informational,
    Headers(u16),
    Content,
    Trailers,
    Padding,
    KnownLength,
}

/// Feeds a response's bytes in, takes the head and content out.
///
/// Each piece (a field line, a content chunk) is parsed once, when it is complete: input is
/// never re-scanned, so the work is linear in the bytes received however they are split.
#[derive(Debug)]
pub struct ResponseDecoder {
    buf: Vec<u8>,
    state: State,
    /// Field lines of the section being parsed, and its encoded size so far.
    fields: Vec<(Vec<u8>, Vec<u8>)>,
    section_len: usize,
}

/// Parses one length-prefixed byte string of at most `max` bytes; `Ok(None)` if more input
/// is needed.
fn string<'a>(
    b: &'a [u8],
    max: u64,
    what: &'static str,
) -> Result<Option<(&'a [u8], usize)>, Error> {
    let Some((len, n)) = peek_varint(b) else {
        return Ok(None);
    };
    if len > max {
        return Err(Error::TooLarge { what, len, max });
    }
    let end = n + len as usize;
    Ok(b.get(n..end).map(|s| (s, end)))
}

/// Parses one field line (name, value); `Ok(None)` if more input is needed.
type FieldLine<'a> = (&'a [u8], &'a [u8], usize);
fn field_line(b: &[u8]) -> Result<Option<FieldLine<'_>>, Error> {
    let max = MAX_FIELD_SECTION as u64;
    let Some((name, n)) = string(b, max, "field name")? else {
        return Ok(None);
    };
    let Some((value, m)) = string(b.get(n..).unwrap_or_default(), max, "field value")? else {
        return Ok(None);
    };
    Ok(Some((name, value, n + m)))
}

impl Default for ResponseDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl ResponseDecoder {
    /// A decoder waiting for the first byte.
    pub fn new() -> Self {
        Self {
            buf: Vec::new(),
            state: State::Framing,
            fields: Vec::new(),
            section_len: 0,
        }
    }

    /// Feeds the next bytes; returns what became complete.
    pub fn push(&mut self, data: &[u8]) -> Result<Decoded, Error> {
        if self.state == State::KnownLength && self.buf.len() + data.len() > MAX_KNOWN_LENGTH {
            return Err(known_length_too_large(self.buf.len() + data.len()));
        }
        self.buf.extend_from_slice(data);
        let mut out = Decoded::default();
        let mut at = 0;
        let result = self.parse(&mut at, &mut out);
        // Consumed bytes leave the buffer once per push, not once per piece.
        self.buf.drain(..at);
        result.map(|()| out)
    }

    fn parse(&mut self, at: &mut usize, out: &mut Decoded) -> Result<(), Error> {
        loop {
            let b = self.buf.get(*at..).unwrap_or_default();
            let consumed = match self.state {
                State::KnownLength => {
                    if self.buf.len() > MAX_KNOWN_LENGTH {
                        return Err(known_length_too_large(self.buf.len()));
                    }
                    return Ok(());
                }
                State::Padding => {
                    if b.iter().any(|&x| x != 0) {
                        return Err(Error::NonZeroPadding);
                    }
                    b.len()
                }
                State::Framing => match peek_varint(b) {
                    None => return Ok(()),
                    Some((3, n)) => {
                        self.state = State::Status;
                        n
                    }
                    Some((1, _)) => {
                        self.state = State::KnownLength;
                        continue;
                    }
                    Some(_) => {
                        return Err(Error::BinaryHttp("framing indicator is not a response"));
                    }
                },
                State::Status => match peek_varint(b) {
                    None => return Ok(()),
                    Some((100..=199, n)) => {
                        self.state = State::Informational;
                        n
                    }
                    Some((s @ 200..=599, n)) => {
                        self.state = State::Headers(s as u16);
                        n
                    }
                    Some(_) => return Err(Error::BinaryHttp("invalid status code")),
                },
                State::Informational | State::Headers(_) | State::Trailers => {
                    if b.first() == Some(&0) {
                        // The end of the section.
                        let fields = std::mem::take(&mut self.fields);
                        self.section_len = 0;
                        self.state = match self.state {
                            State::Informational => State::Status,
                            State::Headers(status) => {
                                out.head = Some(ResponseHead {
                                    status,
                                    headers: fields,
                                });
                                State::Content
                            }
                            _ => State::Padding,
                        };
                        1
                    } else {
                        let Some((name, value, n)) = field_line(b)? else {
                            if self.section_len + b.len() > MAX_FIELD_SECTION {
                                return Err(field_section_too_large(self.section_len + b.len()));
                            }
                            return Ok(());
                        };
                        self.section_len += n;
                        if self.section_len > MAX_FIELD_SECTION {
                            return Err(field_section_too_large(self.section_len));
                        }
                        self.fields.push((name.to_vec(), value.to_vec()));
                        n
                    }
                }
                State::Content => {
                    if b.first() == Some(&0) {
                        self.state = State::Trailers;
                        1
                    } else {
                        let Some((chunk, n)) = string(b, MAX_CHUNK, "content chunk")? else {
                            return Ok(());
                        };
                        out.content.extend_from_slice(chunk);
                        n
                    }
                }
            };
            if consumed == 0 {
                return Ok(());
            }
            *at += consumed;
        }
    }

    /// Called after the authenticated final chunk: the message must be complete.
    pub fn finish(&mut self) -> Result<Decoded, Error> {
        match self.state {
            State::Padding => Ok(Decoded::default()),
            // Trailers may be omitted entirely at the end (RFC 9292 §3.8).
            State::Trailers if self.buf.is_empty() && self.fields.is_empty() => {
                Ok(Decoded::default())
            }
            State::KnownLength => {
                let msg = decode_message(&self.buf)?;
                let status = msg
                    .control()
                    .status()
                    .map(|s| s.code())
                    .ok_or(Error::BinaryHttp("not a response"))?;
                let headers = msg
                    .header()
                    .iter()
                    .map(|f| (f.name().to_vec(), f.value().to_vec()))
                    .collect();
                self.state = State::Padding;
                let content = msg.content().to_vec();
                self.buf.clear();
                Ok(Decoded {
                    head: Some(ResponseHead { status, headers }),
                    content,
                })
            }
            _ => Err(Error::BinaryHttp(
                "response ends before its content is complete",
            )),
        }
    }
}

fn known_length_too_large(len: usize) -> Error {
    Error::TooLarge {
        what: "known-length response",
        len: len as u64,
        max: MAX_KNOWN_LENGTH as u64,
    }
}

fn field_section_too_large(len: usize) -> Error {
    Error::TooLarge {
        what: "field section",
        len: len as u64,
        max: MAX_FIELD_SECTION as u64,
    }
}

/// A response as [`decode_pieces`] reports it: status, header fields, content.
pub type DecodedResponse = (Option<u16>, Vec<(Vec<u8>, Vec<u8>)>, Vec<u8>);

/// Feeds `pieces` in order, then ends the stream (as after the authenticated final chunk):
/// the fuzz target `inner_response` checks that how the bytes are cut changes nothing.
pub fn decode_pieces(pieces: &[&[u8]]) -> Result<DecodedResponse, Error> {
    let mut p = ResponseDecoder::new();
    let mut head = None;
    let mut content = Vec::new();
    let mut take = |parsed: Decoded| {
        head = head.take().or(parsed.head);
        content.extend(parsed.content);
    };
    for piece in pieces {
        take(p.push(piece)?);
    }
    take(p.finish()?);
    let (status, headers) = head.map_or((None, Vec::new()), |h| (Some(h.status), h.headers));
    Ok((status, headers, content))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IndeterminateResponseEncoder;

    #[test]
    fn parses_indeterminate_response_byte_by_byte() {
        let mut enc = IndeterminateResponseEncoder::new();
        let mut wire = enc
            .head(200, &[(b"content-type", b"text/event-stream")])
            .expect("head");
        wire.extend(enc.content(b"data: one\n\n").expect("content"));
        wire.extend(enc.content(b"data: two\n\n").expect("content"));
        wire.extend(enc.finish(&[], 3).expect("finish"));
        let mut p = ResponseDecoder::new();
        let (mut head, mut content) = (None, Vec::new());
        for b in &wire {
            let got = p.push(std::slice::from_ref(b)).expect("parses");
            head = head.or(got.head);
            content.extend(got.content);
        }
        p.finish().expect("complete");
        let head = head.expect("head");
        assert_eq!(head.status, 200);
        assert_eq!(head.header("Content-Type"), Some(&b"text/event-stream"[..]));
        assert_eq!(content, b"data: one\n\ndata: two\n\n");
    }

    #[test]
    fn refuses_a_field_section_over_the_limit_before_it_is_complete() {
        let mut enc = IndeterminateResponseEncoder::new();
        let value = vec![b'x'; 1 << 10];
        let many: Vec<(&[u8], &[u8])> = (0..80).map(|_| (&b"x-pad"[..], &value[..])).collect();
        let wire = enc.head(200, &many).expect("head");
        let mut p = ResponseDecoder::new();
        // 80 KiB of header fields in 1 KiB pieces: refused once the section passes 64 KiB.
        let mut refused = None;
        for (i, piece) in wire.chunks(1 << 10).enumerate() {
            if let Err(e) = p.push(piece) {
                refused = Some((i, e));
                break;
            }
        }
        let (i, e) = refused.expect("refused");
        assert!(
            matches!(e, Error::TooLarge { what: "field section", max, .. } if max == 64 << 10),
            "{e}"
        );
        assert!((63..=65).contains(&i), "refused at piece {i}");
    }

    #[test]
    fn refuses_a_known_length_response_over_the_limit() {
        let mut p = ResponseDecoder::new();
        // Framing indicator 1: a known-length response, buffered until the end.
        p.push(&[1]).expect("framing");
        let mb = vec![0u8; 1 << 20];
        for _ in 0..63 {
            p.push(&mb).expect("under the limit");
        }
        let e = p.push(&mb).expect_err("over");
        assert!(
            matches!(e, Error::TooLarge { what: "known-length response", len, max }
                if max == 64 << 20 && len > max),
            "{e}"
        );
    }

    #[test]
    fn rejects_a_response_cut_inside_its_content() {
        let mut enc = IndeterminateResponseEncoder::new();
        let mut wire = enc.head(200, &[]).expect("head");
        wire.extend(enc.content(b"data: one\n\n").expect("content"));
        let mut p = ResponseDecoder::new();
        p.push(&wire).expect("parses");
        assert!(p.finish().is_err());
    }
}
