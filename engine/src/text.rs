//! Incremental detokenization: token bytes in, text deltas out, never splitting a UTF-8
//! character across deltas, and holding back text that may be the start of a stop string.

/// What one push produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// New text (possibly empty while a character or a possible stop string is incomplete).
    Text(String),
    /// A stop string was completed: the text before it; generation ends here.
    Stopped(String),
}

/// The text side of one generation.
#[derive(Debug, Default)]
pub struct TextStream {
    /// Bytes that do not yet form a complete UTF-8 character.
    pending: Vec<u8>,
    /// Decoded text not yet emitted, because it may begin a stop string.
    held: String,
    stop: Vec<String>,
}

impl TextStream {
    /// A stream that ends at the first occurrence of any of `stop` (empty strings ignored).
    pub fn new(stop: Vec<String>) -> Self {
        Self {
            stop: stop.into_iter().filter(|s| !s.is_empty()).collect(),
            ..Self::default()
        }
    }

    /// Adds one token's bytes.
    pub fn push(&mut self, bytes: &[u8]) -> Delta {
        self.pending.extend_from_slice(bytes);
        self.decode_pending();
        if let Some(at) = self.first_stop() {
            let mut text = std::mem::take(&mut self.held);
            text.truncate(at);
            return Delta::Stopped(text);
        }
        let keep = self.stop_prefix_len();
        let emit_to = self.held.len() - keep;
        let rest = self.held.split_off(emit_to);
        Delta::Text(std::mem::replace(&mut self.held, rest))
    }

    /// Everything still held back, at the end of generation (an incomplete trailing
    /// character becomes U+FFFD).
    pub fn finish(&mut self) -> String {
        let mut text = std::mem::take(&mut self.held);
        text.push_str(&String::from_utf8_lossy(&std::mem::take(&mut self.pending)));
        text
    }

    fn decode_pending(&mut self) {
        loop {
            match std::str::from_utf8(&self.pending) {
                Ok(s) => {
                    self.held.push_str(s);
                    self.pending.clear();
                    return;
                }
                Err(e) => {
                    let valid = e.valid_up_to();
                    // Valid by construction: `valid_up_to` bytes are UTF-8.
                    self.held
                        .push_str(&String::from_utf8_lossy(&self.pending[..valid]));
                    match e.error_len() {
                        // Incomplete character at the end: wait for more bytes.
                        None => {
                            self.pending.drain(..valid);
                            return;
                        }
                        // Invalid bytes: replace them, go on after them.
                        Some(n) => {
                            self.held.push(char::REPLACEMENT_CHARACTER);
                            self.pending.drain(..valid + n);
                        }
                    }
                }
            }
        }
    }

    fn first_stop(&self) -> Option<usize> {
        self.stop
            .iter()
            .filter_map(|s| self.held.find(s.as_str()))
            .min()
    }

    /// Length of the longest suffix of `held` that is a proper prefix of a stop string.
    fn stop_prefix_len(&self) -> usize {
        let mut best = 0;
        for s in &self.stop {
            for (i, _) in self.held.char_indices() {
                let suffix = &self.held[i..];
                if suffix.len() <= best {
                    break;
                }
                if s.starts_with(suffix) {
                    best = suffix.len();
                    break;
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(d: Delta) -> String {
        match d {
            Delta::Text(t) => t,
            Delta::Stopped(t) => panic!("unexpected stop with {t:?}"),
        }
    }

    #[test]
    fn never_splits_a_utf8_character() {
        let mut s = TextStream::new(vec![]);
        let emoji = "🦀".as_bytes();
        assert_eq!(text(s.push(b"a")), "a");
        assert_eq!(text(s.push(&emoji[..1])), "");
        assert_eq!(text(s.push(&emoji[1..3])), "");
        assert_eq!(text(s.push(&emoji[3..])), "🦀");
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn replaces_invalid_bytes_and_flushes_incomplete_tail() {
        let mut s = TextStream::new(vec![]);
        assert_eq!(text(s.push(b"x\xffy")), "x\u{fffd}y");
        assert_eq!(text(s.push(&"é".as_bytes()[..1])), "");
        assert_eq!(s.finish(), "\u{fffd}");
    }

    #[test]
    fn stops_at_a_stop_string_split_across_tokens() {
        let mut s = TextStream::new(vec!["END".to_owned()]);
        assert_eq!(text(s.push(b"abc E")), "abc ");
        assert_eq!(text(s.push(b"N")), "");
        assert_eq!(s.push(b"D and more"), Delta::Stopped(String::new()));
    }

    #[test]
    fn releases_held_text_when_the_stop_string_does_not_follow() {
        let mut s = TextStream::new(vec!["END".to_owned()]);
        assert_eq!(text(s.push(b"EN")), "");
        assert_eq!(text(s.push(b"X")), "ENX");
        assert_eq!(text(s.push(b"E")), "");
        assert_eq!(s.finish(), "E");
    }

    #[test]
    fn earliest_of_several_stop_strings_wins() {
        let mut s = TextStream::new(vec!["b".to_owned(), "a".to_owned(), String::new()]);
        assert_eq!(s.push(b"xxab"), Delta::Stopped("xx".to_owned()));
    }
}
