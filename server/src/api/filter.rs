//! The output filter hook: generated text passes an [`OutputFilter`] before it leaves the
//! server, whole or streamed, on `/v1/chat/completions` and `/v1/completions` alike.
//!
//! On a match the completion ends where the match starts: the text before it is sent, the
//! match and everything after it are not, generation is cancelled, and `finish_reason` is
//! `content_filter` (OpenAI's name). A stream holds back the last
//! [`OutputFilter::max_match_chars`] − 1 characters until more text arrives or generation
//! ends, so a passage split across tokens is caught before any of it is sent. Streamed and
//! whole answers therefore carry the same text.

use std::fmt;
use std::sync::Arc;

/// Screens generated text. Implementations must not log or keep the text they see.
pub trait OutputFilter: fmt::Debug + Send + Sync {
    /// Where the first passage to withhold starts in `text` (a byte offset), if any.
    fn find(&self, text: &str) -> Option<usize>;

    /// The most characters of text one passage that [`find`](Self::find) matches can span
    /// (at least 1). A stream holds back one less than this.
    fn max_match_chars(&self) -> usize;
}

/// What [`Screen::push`] lets out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Screened {
    /// Text that may be sent (possibly empty: it is being held back).
    Pass(String),
    /// The text before a match, which may be sent; the completion ends here.
    Blocked(String),
}

/// One completion's text on its way out through the filter (if there is one).
#[derive(Debug)]
pub(crate) struct Screen {
    filter: Option<Arc<dyn OutputFilter>>,
    held: String,
}

impl Screen {
    pub(crate) fn new(filter: Option<Arc<dyn OutputFilter>>) -> Self {
        Self {
            filter,
            held: String::new(),
        }
    }

    /// More generated text: what may be sent now.
    pub(crate) fn push(&mut self, text: &str) -> Screened {
        let Some(filter) = &self.filter else {
            return Screened::Pass(text.to_owned());
        };
        self.held.push_str(text);
        // Text before `held` was sent, and no passage of at most `max_match_chars` can
        // start there and end in the new text: searching `held` finds every new match.
        if let Some(at) = filter.find(&self.held) {
            let mut at = at.min(self.held.len());
            while !self.held.is_char_boundary(at) {
                at -= 1;
            }
            self.held.truncate(at);
            return Screened::Blocked(std::mem::take(&mut self.held));
        }
        let keep = filter.max_match_chars().saturating_sub(1);
        let chars = self.held.chars().count();
        let split = self
            .held
            .char_indices()
            .nth(chars.saturating_sub(keep))
            .map_or(self.held.len(), |(i, _)| i);
        let rest = self.held.split_off(split);
        Screened::Pass(std::mem::replace(&mut self.held, rest))
    }

    /// Generation ended: the text still held back, which may now be sent.
    pub(crate) fn finish(&mut self) -> String {
        std::mem::take(&mut self.held)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::DenyList;

    fn screen(words: &[&str]) -> Screen {
        let list = DenyList::new(words.iter().copied()).expect("entries");
        Screen::new(Some(Arc::new(list)))
    }

    /// Pushes `pieces`; returns the text let out and whether it was blocked.
    fn run(screen: &mut Screen, pieces: &[&str]) -> (String, bool) {
        let mut out = String::new();
        for p in pieces {
            match screen.push(p) {
                Screened::Pass(t) => out.push_str(&t),
                Screened::Blocked(t) => {
                    out.push_str(&t);
                    return (out, true);
                }
            }
        }
        out.push_str(&screen.finish());
        (out, false)
    }

    #[test]
    fn a_word_split_across_pieces_is_caught_before_any_of_it_is_sent() {
        let mut s = screen(&["secret"]);
        assert_eq!(s.push("The se"), Screened::Pass("T".to_owned()));
        assert_eq!(s.push("cr"), Screened::Pass("he".to_owned()));
        assert_eq!(s.push("et is"), Screened::Blocked(" ".to_owned()));
    }

    #[test]
    fn text_without_a_match_comes_out_whole_and_in_order() {
        let mut s = screen(&["secret"]);
        assert_eq!(
            run(&mut s, &["Nothing ", "to ", "hi", "de", "."]),
            ("Nothing to hide.".to_owned(), false)
        );
    }

    #[test]
    fn a_match_inside_a_longer_word_blocks_too() {
        let mut s = screen(&["secret"]);
        assert_eq!(
            run(&mut s, &["The sec", "re", "tary ", "is ", "here."]),
            ("The ".to_owned(), true)
        );
    }

    #[test]
    fn without_a_filter_everything_passes_at_once() {
        let mut s = Screen::new(None);
        assert_eq!(s.push("secret"), Screened::Pass("secret".to_owned()));
        assert_eq!(s.finish(), "");
    }

    #[test]
    fn multibyte_text_is_held_by_characters() {
        let mut s = screen(&["étoile"]);
        let (text, blocked) = run(&mut s, &["L'", "É", "to", "ile"]);
        assert_eq!((text.as_str(), blocked), ("L'", true));
        let mut s = screen(&["étoile"]);
        assert_eq!(
            run(&mut s, &["L'", "É", "t", "é", "!"]),
            ("L'Été!".to_owned(), false)
        );
    }
}
