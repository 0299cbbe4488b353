//! What each sequence feeds a step: its last token, or the next chunk of its prompt.

use super::PREFILL_CHUNK;

/// What a sequence feeds a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Feed {
    /// Nothing: a prompt waiting for room in the step.
    Skip,
    /// Its last token, to get the next one.
    Next,
    /// The next `n` tokens of its prompt.
    Prompt(usize),
}

/// What each sequence (`(positions cached, prompt length)`, in order of admission) feeds
/// the next step: every decoding sequence its last token; the prompts their next chunk (up
/// to the next multiple of [`PREFILL_CHUNK`] positions) while the step's prompt rows stay
/// within one chunk, the first waiting chunk always. Prompts with the fewest tokens left go
/// first (ties in order of admission): a short prompt arriving behind a long one waits one
/// chunk's pass, not the long prompt's whole prefill.
pub(super) fn feeds(sequences: impl Iterator<Item = (usize, usize)>) -> Vec<Feed> {
    let sequences: Vec<(usize, usize)> = sequences.collect();
    let mut feeds: Vec<Feed> = sequences
        .iter()
        .map(|&(fed, len)| if fed >= len { Feed::Next } else { Feed::Skip })
        .collect();
    let mut waiting: Vec<usize> = (0..sequences.len())
        .filter(|&i| feeds[i] == Feed::Skip)
        .collect();
    waiting.sort_by_key(|&i| sequences[i].1 - sequences[i].0);
    let mut rows = 0;
    for i in waiting {
        let (fed, len) = sequences[i];
        let n = (len - fed).min(PREFILL_CHUNK - fed % PREFILL_CHUNK);
        if rows > 0 && rows + n > PREFILL_CHUNK {
            continue;
        }
        rows += n;
        feeds[i] = Feed::Prompt(n);
    }
    feeds
}

#[cfg(test)]
mod tests {
    use super::{Feed, feeds};
    use crate::worker::PREFILL_CHUNK;

    const C: usize = PREFILL_CHUNK;

    #[test]
    fn prompts_are_fed_up_to_fixed_chunk_boundaries() {
        let long = 2 * C + 88;
        assert_eq!(feeds([(0, long)].into_iter()), [Feed::Prompt(C)]);
        assert_eq!(feeds([(C, long)].into_iter()), [Feed::Prompt(C)]);
        assert_eq!(feeds([(2 * C, long)].into_iter()), [Feed::Prompt(88)]);
        // A prompt that fits one chunk is one pass.
        assert_eq!(feeds([(0, C)].into_iter()), [Feed::Prompt(C)]);
        assert_eq!(feeds([(0, 7)].into_iter()), [Feed::Prompt(7)]);
    }

    #[test]
    fn decoding_sequences_always_go_and_prompt_rows_stay_within_one_chunk() {
        // Decoders (prompt fully cached) feed their token whatever the prompts take.
        let got = feeds([(9, 9), (0, 3 * C), (40, 40)].into_iter());
        assert_eq!(got, [Feed::Next, Feed::Prompt(C), Feed::Next]);
        // Short prompts share a step while they fit; one that does not waits its turn.
        let got = feeds([(0, 100), (0, 100), (0, 100), (0, 50)].into_iter());
        let want = [
            Feed::Prompt(100),
            Feed::Prompt(100),
            Feed::Skip,
            Feed::Prompt(50),
        ];
        assert_eq!(got, want);
        // The first waiting chunk always goes, however long.
        let got = feeds([(0, 5 * C), (0, 4 * C)].into_iter());
        assert_eq!(got, [Feed::Skip, Feed::Prompt(C)]);
    }

    #[test]
    fn a_short_prompt_goes_before_a_long_one() {
        // Admitted after a long prompt (even one partly fed), a short one is fed first; the
        // long one goes on in the next step.
        let got = feeds([(0, 3 * C), (7, 7), (0, 10)].into_iter());
        assert_eq!(got, [Feed::Skip, Feed::Next, Feed::Prompt(10)]);
        let got = feeds([(C, 3 * C), (0, 10)].into_iter());
        assert_eq!(got, [Feed::Skip, Feed::Prompt(10)]);
        let got = feeds([(C, 3 * C), (10, 10)].into_iter());
        assert_eq!(got, [Feed::Prompt(C), Feed::Next]);
    }
}
