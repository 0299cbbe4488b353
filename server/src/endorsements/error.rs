//! Why endorsements could not be fetched or served.

use std::path::{Path, PathBuf};

/// Why endorsements could not be fetched or served.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EndorsementError {
    /// The service could not be reached, or did not answer in time.
    #[error("{url}: {reason}")]
    Transport {
        /// The URL asked.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The service answered with an error status.
    #[error("{url}: HTTP {status}")]
    Status {
        /// The URL asked.
        url: String,
        /// The status.
        status: u16,
    },
    /// A response body was larger than its cap.
    #[error("{url}: response larger than {cap} bytes")]
    TooLarge {
        /// The URL asked.
        url: String,
        /// The cap.
        cap: usize,
    },
    /// What came back is not usable (malformed, wrong root, does not verify).
    #[error("invalid endorsements: {0}")]
    Invalid(String),
    /// The collateral is for another platform than the quote's.
    #[error("collateral for FMSPC {served}, the quote's is {asked}")]
    WrongPlatform {
        /// The quote's FMSPC.
        asked: String,
        /// The collateral's FMSPC.
        served: String,
    },
    /// The only set there is has expired (or is not valid yet) and no new one could be had.
    #[error("endorsements {key} valid {not_before} .. {expires}, now {now}: not served")]
    Expired {
        /// The cache key.
        key: String,
        /// Start of the window (RFC 3339).
        not_before: String,
        /// End of the window (RFC 3339).
        expires: String,
        /// The time of the check (RFC 3339).
        now: String,
    },
    /// A fetch failed recently; the next is not tried before the backoff ends.
    #[error("endorsements {key} unavailable (retry after {retry_after}): {reason}")]
    Backoff {
        /// The cache key.
        key: String,
        /// When a fetch is tried again (RFC 3339).
        retry_after: String,
        /// The last failure.
        reason: String,
    },
    /// The disk cache could not be written or read.
    #[error("endorsement cache {path}: {reason}")]
    Cache {
        /// Where.
        path: PathBuf,
        /// What the OS said.
        reason: String,
    },
    /// The fetch runtime could not start or stopped.
    #[error("endorsement fetcher: {0}")]
    Runtime(String),
}

impl EndorsementError {
    pub(crate) fn cache(path: &Path, e: &std::io::Error) -> Self {
        Self::Cache {
            path: path.to_owned(),
            reason: e.to_string(),
        }
    }

    /// Whether another attempt may succeed (transport errors, 5xx, 429).
    pub(crate) fn is_transient(&self) -> bool {
        match self {
            Self::Transport { .. } => true,
            Self::Status { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }
}
