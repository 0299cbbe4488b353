//! The built-in [`OutputFilter`]: words and phrases withheld wherever they occur in the
//! generated text, case-insensitively (also inside longer words). `serve --deny-word WORD`
//! and `serve --deny-list FILE` (one entry per line) configure it; it is off by default.
//!
//! Matching compares Unicode lowercase forms; it does not normalize, so a model that spells
//! an entry with look-alike characters or inserted spaces is not caught.

use std::fmt;
use std::path::{Path, PathBuf};

use super::filter::OutputFilter;

/// Why a deny list could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DenyListError {
    /// The file could not be read (or is not UTF-8).
    #[error("deny list {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Every entry was blank.
    #[error("the deny list has no entries")]
    Empty,
}

/// Entries withheld from completions, compared in lowercase.
#[derive(Clone)]
pub struct DenyList {
    entries: Vec<String>,
    max_chars: usize,
}

impl fmt::Debug for DenyList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DenyList")
            .field("entries", &self.entries.len())
            .finish_non_exhaustive()
    }
}

fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

impl DenyList {
    /// A list of `entries`, each trimmed; blank ones are skipped, and at least one must remain.
    pub fn new<I, S>(entries: I) -> Result<Self, DenyListError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut entries: Vec<String> = entries
            .into_iter()
            .map(|e| fold(e.as_ref().trim()))
            .filter(|e| !e.is_empty())
            .collect();
        entries.sort();
        entries.dedup();
        let max_chars = entries
            .iter()
            .map(|e| e.chars().count())
            .max()
            .ok_or(DenyListError::Empty)?;
        Ok(Self { entries, max_chars })
    }

    /// The entries of a file, one per line (blank lines are skipped by [`DenyList::new`]).
    pub fn read_entries(path: &Path) -> Result<Vec<String>, DenyListError> {
        let text = std::fs::read_to_string(path).map_err(|source| DenyListError::Io {
            path: path.to_owned(),
            source,
        })?;
        Ok(text.lines().map(str::to_owned).collect())
    }

    /// How many distinct entries the list has.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Never true: a list has at least one entry.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl OutputFilter for DenyList {
    fn find(&self, text: &str) -> Option<usize> {
        // The lowercase text, and where each original character's lowercase form starts.
        let mut folded = String::with_capacity(text.len());
        let mut starts = Vec::with_capacity(text.len());
        for (at, c) in text.char_indices() {
            starts.push((folded.len(), at));
            folded.extend(c.to_lowercase());
        }
        let first = self
            .entries
            .iter()
            .filter_map(|e| folded.find(e.as_str()))
            .min()?;
        // The original character whose lowercase form holds the match's first byte.
        let i = starts.partition_point(|&(f, _)| f <= first);
        starts.get(i.checked_sub(1)?).map(|&(_, at)| at)
    }

    fn max_match_chars(&self) -> usize {
        // An original character lowercases to one or more characters.
        self.max_chars
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_match_in_any_case_and_inside_words() {
        let list = DenyList::new(["Marseillaise", "  ", "two words"]).expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list.find("la MARSEILLAISE!"), Some(3));
        assert_eq!(list.find("xmarseillaisex"), Some(1));
        assert_eq!(list.find("TWO WORDS"), Some(0));
        assert_eq!(list.max_match_chars(), 12);
    }

    #[test]
    fn text_without_an_entry_is_not_matched() {
        let list = DenyList::new(["marseillaise", "two words"]).expect("list");
        assert_eq!(list.find("Marseille, la ville"), None);
        assert_eq!(list.find("two  words"), None);
        assert_eq!(list.find(""), None);
    }

    #[test]
    fn offsets_are_those_of_the_original_text() {
        // 'İ' lowercases to two characters: offsets after it still point into the original.
        let list = DenyList::new(["étoile"]).expect("list");
        assert_eq!(list.find("İİ L'ÉTOILE"), Some("İİ L'".len()));
        let list = DenyList::new(["i\u{307}x"]).expect("list");
        assert_eq!(list.find("aİx"), Some(1));
    }

    #[test]
    fn the_earliest_match_wins() {
        let list = DenyList::new(["beta", "alpha"]).expect("list");
        assert_eq!(list.find("beta alpha"), Some(0));
        assert_eq!(list.find("alpha beta"), Some(0));
        assert_eq!(list.find("x beta alpha"), Some(2));
    }

    #[test]
    fn an_empty_list_is_refused() {
        assert!(matches!(
            DenyList::new(["", " \t"]),
            Err(DenyListError::Empty)
        ));
        assert!(matches!(
            DenyList::new(Vec::<String>::new()),
            Err(DenyListError::Empty)
        ));
    }

    #[test]
    fn a_file_has_one_entry_per_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("deny.txt");
        std::fs::write(&path, "alpha\r\n\n  beta gamma  \n").expect("write");
        let list = DenyList::new(DenyList::read_entries(&path).expect("read")).expect("list");
        assert_eq!(list.len(), 2);
        assert_eq!(list.find("BETA GAMMA"), Some(0));
        assert_eq!(list.find("beta"), None);
        assert!(matches!(
            DenyList::read_entries(&dir.path().join("absent")),
            Err(DenyListError::Io { .. })
        ));
    }
}
