//! Length hiding: padding to size buckets.
//!
//! Known-length Binary HTTP messages are padded with zero bytes after the message
//! (RFC 9292 §3.8), which every conforming parser ignores. Streamed responses cannot put
//! zeros between content pieces, so each `text/event-stream` piece is padded with an SSE
//! comment line (`:` … `\n`, ignored by SSE parsers, WHATWG HTML §9.2.6), and the end of
//! the message with RFC 9292 zero padding.

/// A size-bucket policy: a length is padded up to the smallest bucket that holds it, and
/// beyond the largest bucket to a multiple of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Padding {
    buckets: Vec<usize>,
}

impl Default for Padding {
    /// On by default: buckets of 128 B, 256 B, … 16 KiB.
    fn default() -> Self {
        Self {
            buckets: (7..=14).map(|s| 1usize << s).collect(),
        }
    }
}

impl Padding {
    /// No padding (a loud opt-out: lengths leak).
    pub fn none() -> Self {
        Self {
            buckets: Vec::new(),
        }
    }

    /// Custom buckets; zero sizes are dropped, the rest sorted.
    pub fn buckets(mut buckets: Vec<usize>) -> Self {
        buckets.retain(|&b| b > 0);
        buckets.sort_unstable();
        buckets.dedup();
        Self { buckets }
    }

    /// Whether padding is on.
    pub fn is_enabled(&self) -> bool {
        !self.buckets.is_empty()
    }

    /// The padded size of a `len`-byte message.
    pub fn padded_len(&self, len: usize) -> usize {
        let Some(&largest) = self.buckets.last() else {
            return len;
        };
        match self.buckets.iter().find(|&&b| b >= len) {
            Some(&b) => b,
            None => len.div_ceil(largest).saturating_mul(largest),
        }
    }

    /// Appends zero bytes to `message` up to its bucket (RFC 9292 §3.8 padding).
    pub fn pad_zeros(&self, message: &mut Vec<u8>) {
        let target = self.padded_len(message.len());
        message.resize(target, 0);
    }

    /// Appends an SSE comment line to `events` (whole `text/event-stream` events) so that
    /// its length reaches a bucket. A comment needs at least two bytes (`:\n`), so a piece
    /// one byte short of a bucket goes to the next one.
    pub fn pad_sse(&self, events: &mut Vec<u8>) {
        if !self.is_enabled() {
            return;
        }
        let min = events.len() + 2;
        let target = self.padded_len(min);
        events.push(b':');
        events.resize(target - 1, b' ');
        events.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_padding_rounds_up_to_buckets() {
        let p = Padding::default();
        assert_eq!(p.padded_len(0), 128);
        assert_eq!(p.padded_len(128), 128);
        assert_eq!(p.padded_len(129), 256);
        assert_eq!(p.padded_len(16_385), 32_768);
        assert_eq!(Padding::none().padded_len(129), 129);
    }

    #[test]
    fn sse_padding_is_a_comment_line_reaching_the_bucket() {
        let p = Padding::default();
        for len in [0usize, 1, 60, 125, 126, 127, 128, 300] {
            let mut ev = vec![b'x'; len];
            p.pad_sse(&mut ev);
            assert_eq!(ev.len(), p.padded_len(len + 2), "len {len}");
            let tail = &ev[len..];
            assert_eq!(tail.first(), Some(&b':'));
            assert_eq!(tail.last(), Some(&b'\n'));
            assert!(tail[1..tail.len() - 1].iter().all(|&b| b == b' '));
        }
    }
}
