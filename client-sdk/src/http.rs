//! The HTTP edge: one `reqwest` client (rustls on ring), the server's base URL, and
//! bounded body reads.

use std::time::Duration;

use crate::Error;

/// Where the server is and how to reach it.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub(crate) http: reqwest::Client,
    /// `scheme://host[:port][/prefix]` without a trailing slash.
    pub(crate) base: String,
    /// `host[:port]`, the inner request's authority.
    pub(crate) authority: String,
}

/// Installs ring as the process-wide rustls crypto provider unless one is installed.
/// Call it before building any other `reqwest::Client` in a process that links this crate
/// (the `rustls-no-provider` feature makes such a client panic without a provider).
pub fn install_crypto_provider() {
    // Fails only if a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Endpoint {
    pub(crate) fn new(url: &str) -> Result<Self, Error> {
        let parsed = reqwest::Url::parse(url).map_err(|e| Error::InvalidUrl(e.to_string()))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::InvalidUrl(format!(
                "scheme {:?} is not http or https",
                parsed.scheme()
            )));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| Error::InvalidUrl("no host".into()))?;
        let authority = match parsed.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_owned(),
        };
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::transport(&e))?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            authority,
        })
    }
}

/// Reads a whole response body, refusing more than `max` bytes.
pub(crate) async fn read_capped(mut resp: reqwest::Response, max: usize) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Error::transport(&e))? {
        if out.len() + chunk.len() > max {
            return Err(Error::Transport(format!(
                "response body over the limit of {max} bytes"
            )));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
