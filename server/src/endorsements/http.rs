//! The HTTP side of fetching endorsements: one `reqwest` client (rustls on ring, the
//! platform's roots), a timeout on every request, retries with exponential backoff on
//! transport errors, 5xx and 429 (never on other 4xx), and a size cap on every body.

use std::time::Duration;

use super::EndorsementError;

/// How requests are bounded.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Limits {
    /// Connect + whole-response timeout of one request.
    pub timeout: Duration,
    /// Attempts per URL (at least 1).
    pub attempts: u32,
    /// Wait before the second attempt; doubled before each later one.
    pub backoff: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(15),
            attempts: 3,
            backoff: Duration::from_millis(500),
        }
    }
}

/// A response whose body was read within its cap.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) headers: reqwest::header::HeaderMap,
    pub(crate) body: Vec<u8>,
}

impl Response {
    /// A header's value, URL-decoded (Intel's issuer chains are URL-encoded PEM).
    pub(crate) fn decoded_header(&self, name: &str) -> Result<String, EndorsementError> {
        let raw = self
            .headers
            .get(name)
            .ok_or_else(|| EndorsementError::Invalid(format!("missing header {name}")))?
            .to_str()
            .map_err(|_| EndorsementError::Invalid(format!("header {name} is not ASCII")))?;
        percent_decode(raw)
            .ok_or_else(|| EndorsementError::Invalid(format!("header {name} is not URL-encoded")))
    }
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// The client endorsements are fetched with.
#[derive(Debug, Clone)]
pub(crate) struct Http {
    client: reqwest::Client,
    limits: Limits,
}

impl Http {
    pub(crate) fn new(limits: Limits) -> Result<Self, EndorsementError> {
        // ring only, as the client SDK: a second provider would make rustls refuse to choose.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(limits.timeout)
                .timeout(limits.timeout)
                .redirect(reqwest::redirect::Policy::limited(3))
                .user_agent(concat!("veil-server/", env!("CARGO_PKG_VERSION")))
        };
        let client = match builder().build() {
            Ok(c) => c,
            // No system CA roots (the measured image carries none): HTTPS sources cannot be
            // authenticated, so they fail at fetch time; `http://` mirrors and PCCS still
            // work, their answers being signed. The server starts either way.
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "no system CA roots: HTTPS endorsement sources will fail; use an http:// \
                     mirror (--kds-url, --pccs-url) or a host-supplied certificate table"
                );
                builder().tls_certs_only(Vec::new()).build().map_err(|e| {
                    EndorsementError::Transport {
                        url: String::new(),
                        reason: e.to_string(),
                    }
                })?
            }
        };
        Ok(Self { client, limits })
    }

    /// GETs `url`, retrying what may pass; a body over `cap` bytes is an error, not truncated.
    pub(crate) async fn get(&self, url: &str, cap: usize) -> Result<Response, EndorsementError> {
        let mut wait = self.limits.backoff;
        let mut last = None;
        for attempt in 0..self.limits.attempts.max(1) {
            if attempt > 0 {
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
            match self.once(url, cap).await {
                Ok(r) => return Ok(r),
                Err(e) if e.is_transient() => {
                    tracing::warn!(%url, attempt = attempt + 1, error = %e, "endorsement fetch failed");
                    last = Some(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or(EndorsementError::Transport {
            url: url.to_owned(),
            reason: "no attempt made".into(),
        }))
    }

    async fn once(&self, url: &str, cap: usize) -> Result<Response, EndorsementError> {
        let transport = |e: reqwest::Error| EndorsementError::Transport {
            url: url.to_owned(),
            reason: if e.is_timeout() {
                "timed out".to_owned()
            } else {
                e.to_string()
            },
        };
        let mut resp = self.client.get(url).send().await.map_err(transport)?;
        let status = resp.status();
        if !status.is_success() {
            return Err(EndorsementError::Status {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        if resp.content_length().is_some_and(|n| n > cap as u64) {
            return Err(EndorsementError::TooLarge {
                url: url.to_owned(),
                cap,
            });
        }
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(transport)? {
            if body.len() + chunk.len() > cap {
                return Err(EndorsementError::TooLarge {
                    url: url.to_owned(),
                    cap,
                });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Response { headers, body })
    }
}

#[cfg(test)]
mod tests {
    use super::percent_decode;

    #[test]
    fn issuer_chains_are_url_decoded() {
        assert_eq!(
            percent_decode("-----BEGIN%20CERTIFICATE-----%0AMII%2B").as_deref(),
            Some("-----BEGIN CERTIFICATE-----\nMII+")
        );
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%4"), None);
    }
}
