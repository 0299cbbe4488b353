//! Binary HTTP (RFC 9292) messages inside OHTTP: known-length encoding with padding via
//! the `bhttp` crate, strict parsing of padding, and the `Date` field used for freshness.

use std::{io, time::SystemTime};

use bhttp::{Message, Mode};

use crate::{Error, Padding};

/// The largest inner message accepted for parsing.
pub const MAX_MESSAGE_LEN: usize = 16 << 20;

/// Encodes `message` in known-length form and pads it per `padding`.
pub fn encode_message(message: &Message, padding: &Padding) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    message.write_bhttp(Mode::KnownLength, &mut out)?;
    padding.pad_zeros(&mut out);
    Ok(out)
}

/// Parses a Binary HTTP message (either framing) and checks that whatever follows it is
/// zero padding (RFC 9292 §3.8). Never panics on any input.
pub fn decode_message(bytes: &[u8]) -> Result<Message, Error> {
    if bytes.len() > MAX_MESSAGE_LEN {
        return Err(Error::TooLarge {
            what: "binary HTTP message",
            len: bytes.len() as u64,
            max: MAX_MESSAGE_LEN as u64,
        });
    }
    let mut cur = io::Cursor::new(bytes);
    let message = Message::read_bhttp(&mut cur)?;
    let consumed = usize::try_from(cur.position()).unwrap_or(bytes.len());
    if bytes.iter().skip(consumed).any(|&b| b != 0) {
        return Err(Error::NonZeroPadding);
    }
    Ok(message)
}

/// The value of the header field `name` (ASCII case-insensitive), if present.
pub fn header<'m>(message: &'m Message, name: &str) -> Option<&'m [u8]> {
    message
        .header()
        .iter()
        .find(|f| f.name().eq_ignore_ascii_case(name.as_bytes()))
        .map(bhttp::Field::value)
}

/// The message's `Date` field parsed as an HTTP date.
pub fn date(message: &Message) -> Result<SystemTime, Error> {
    let raw = header(message, "date").ok_or(Error::MissingDate)?;
    let text = std::str::from_utf8(raw).map_err(|_| Error::InvalidDate)?;
    httpdate::parse_http_date(text).map_err(|_| Error::InvalidDate)
}

/// Formats `now` as an IMF-fixdate for a `Date` field.
pub fn format_date(now: SystemTime) -> String {
    httpdate::fmt_http_date(now)
}
