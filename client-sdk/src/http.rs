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
        Self::new_from(url, None)
    }

    /// As [`Endpoint::new`], connecting from `local` when given.
    pub(crate) fn new_from(url: &str, local: Option<std::net::IpAddr>) -> Result<Self, Error> {
        // `127.0.0.1:8080` does not parse and `localhost:8080` parses with the scheme
        // `localhost`: either way, say what is missing.
        let no_scheme = || {
            Error::InvalidUrl(format!(
                "{url:?} has no scheme: add http:// (or https://) in front, as in http://{url}"
            ))
        };
        let parsed = match reqwest::Url::parse(url) {
            Ok(p) => p,
            Err(_) if !url.contains("://") => return Err(no_scheme()),
            Err(e) => return Err(Error::InvalidUrl(format!("{url:?}: {e}"))),
        };
        if !matches!(parsed.scheme(), "http" | "https") {
            if !url.contains("://") {
                return Err(no_scheme());
            }
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
            .local_address(local)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(url: &str) -> String {
        match Endpoint::new(url) {
            Err(Error::InvalidUrl(m)) => m,
            other => panic!("{url}: {other:?}"),
        }
    }

    #[test]
    fn a_url_without_scheme_is_refused_with_the_fix() {
        for url in ["127.0.0.1:8080", "localhost:8080", "veil.example"] {
            let m = refused(url);
            assert!(
                m.contains(&format!(
                    "add http:// (or https://) in front, as in http://{url}"
                )),
                "{m}"
            );
        }
        assert!(refused("ftp://veil.example").contains("\"ftp\" is not http or https"));
        assert!(Endpoint::new("http://127.0.0.1:8080").is_ok());
    }
}
