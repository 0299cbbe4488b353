//! A fake AMD KDS and a fake Intel PCS/PCCS on 127.0.0.1, serving the real certificates and
//! collateral of the vectors at the paths, with the headers, the real services use; and
//! the ways a real service fails (errors, cut or oversized bodies, slowness).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use veil_attest::snp::Product;

/// How the fake answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Mode {
    /// As the real service.
    Normal,
    /// HTTP 500 on every path.
    Fail,
    /// The first half of each body.
    Truncated,
    /// 2 MiB bodies.
    Oversized,
    /// Answers after 3 seconds.
    Slow,
}

/// What the fake serves and what it was asked.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    mode: AtomicU8,
    /// Requests answered (path and query).
    pub(crate) hits: Mutex<Vec<String>>,
}

impl Shared {
    pub(crate) fn set(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }

    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            1 => Mode::Fail,
            2 => Mode::Truncated,
            3 => Mode::Oversized,
            4 => Mode::Slow,
            _ => Mode::Normal,
        }
    }

    pub(crate) fn count(&self) -> usize {
        self.hits.lock().expect("hits").len()
    }
}

/// A running fake; stops with the process.
#[derive(Debug)]
pub(crate) struct Fake {
    pub(crate) url: String,
    pub(crate) shared: Arc<Shared>,
}

fn start(router: Router, shared: Arc<Shared>) -> Fake {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            tx.send(l.local_addr().expect("addr")).expect("send");
            axum::serve(l, router).await.expect("serve");
        });
    });
    let addr = rx.recv().expect("fake started");
    Fake {
        url: format!("http://{addr}"),
        shared,
    }
}

/// Applies the failure mode to an answer the real service would give.
async fn answer(s: &Shared, what: String, headers: HeaderMap, body: Vec<u8>) -> Response {
    s.hits.lock().expect("hits").push(what);
    let body = match s.mode() {
        Mode::Normal => body,
        Mode::Fail => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        Mode::Truncated => body[..body.len() / 2].to_vec(),
        Mode::Oversized => vec![b'0'; 2 << 20],
        Mode::Slow => {
            tokio::time::sleep(Duration::from_secs(3)).await;
            body
        }
    };
    (headers, body).into_response()
}

/// Percent-encodes all but unreserved characters, as Intel encodes issuer chains.
pub(crate) fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn pem_block(tag: &str, der: &[u8]) -> String {
    pem::encode(&pem::Pem::new(tag, der.to_vec()))
}

/// The KDS side: one chip's VCEK (DER) for its reported TCB.
#[derive(Debug, Clone)]
pub(crate) struct Chip {
    pub(crate) product: Product,
    pub(crate) hwid: String,
    /// `blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..` exactly.
    pub(crate) query: String,
    pub(crate) vcek_der: Vec<u8>,
    /// Serve this product's chain instead of the chip's own (a wrong root).
    pub(crate) chain_of: Product,
    /// The CRL to serve (DER); `None`: 404.
    pub(crate) crl: Option<Vec<u8>>,
}

#[derive(Clone)]
struct KdsState {
    shared: Arc<Shared>,
    chip: Chip,
}

async fn kds(
    State(st): State<KdsState>,
    Path((product, rest)): Path<(String, String)>,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    let c = &st.chip;
    if product != c.product.name() {
        return StatusCode::NOT_FOUND.into_response();
    }
    let mut h = HeaderMap::new();
    match rest.as_str() {
        "cert_chain" => {
            let p = c.chain_of;
            let body = pem_block("CERTIFICATE", &p.ask_der().expect("ask"))
                + &pem_block("CERTIFICATE", &p.ark_der().expect("ark"));
            h.insert(
                "content-type",
                HeaderValue::from_static("application/x-pem-file"),
            );
            answer(
                &st.shared,
                format!("/vcek/v1/{product}/cert_chain"),
                h,
                body.into_bytes(),
            )
            .await
        }
        // No ARK-signed CRL can be made here (AMD holds the key), and none was captured: by
        // default the fake answers as a KDS without one would.
        "crl" => match &c.crl {
            Some(der) => {
                h.insert(
                    "content-type",
                    HeaderValue::from_static("application/pkix-crl"),
                );
                let what = format!("/vcek/v1/{product}/crl");
                answer(&st.shared, what, h, der.clone()).await
            }
            None => {
                st.shared
                    .hits
                    .lock()
                    .expect("hits")
                    .push(format!("/vcek/v1/{product}/crl"));
                StatusCode::NOT_FOUND.into_response()
            }
        },
        hwid => {
            let query = q
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("&");
            if hwid != c.hwid || query != c.query {
                st.shared
                    .hits
                    .lock()
                    .expect("hits")
                    .push(format!("404 {hwid}?{query}"));
                return StatusCode::NOT_FOUND.into_response();
            }
            h.insert(
                "content-type",
                HeaderValue::from_static("application/octet-stream"),
            );
            answer(
                &st.shared,
                format!("/vcek/v1/{product}/{hwid}?{query}"),
                h,
                c.vcek_der.clone(),
            )
            .await
        }
    }
}

/// A fake KDS for one chip.
pub(crate) fn kds_for(chip: Chip) -> Fake {
    let shared = Arc::new(Shared::default());
    let st = KdsState {
        shared: shared.clone(),
        chip,
    };
    let r = Router::new()
        .route("/vcek/v1/{product}/{rest}", get(kds))
        .with_state(st);
    start(r, shared)
}

/// The PCS side: one platform's collateral (a vector's `collateral.json`).
#[derive(Clone)]
struct PcsState {
    shared: Arc<Shared>,
    /// FMSPC (upper case) -> collateral JSON; the first also gives the CRLs and QE identity.
    collateral: Arc<Vec<(String, serde_json::Value)>>,
    /// Serve this FMSPC's collateral whatever is asked.
    always: Option<String>,
}

impl PcsState {
    fn pick(&self, fmspc: &str) -> Option<&serde_json::Value> {
        let key = self.always.as_deref().unwrap_or(fmspc).to_uppercase();
        self.collateral
            .iter()
            .find(|(f, _)| *f == key)
            .map(|(_, c)| c)
    }

    /// The platform-independent parts (CRLs, QE identity): the first vector's, as one PCS
    /// at one time serves the same to every platform.
    fn any(&self) -> &serde_json::Value {
        &self.collateral.first().expect("collateral").1
    }
}

fn field<'a>(c: &'a serde_json::Value, k: &str) -> &'a str {
    c[k].as_str().expect(k)
}

fn chain_header(h: &mut HeaderMap, name: &'static str, pem: &str) {
    h.insert(
        name,
        HeaderValue::from_str(&url_encode(pem)).expect("header"),
    );
}

async fn pckcrl(State(st): State<PcsState>, Query(q): Query<HashMap<String, String>>) -> Response {
    if !matches!(
        q.get("ca").map(String::as_str),
        Some("processor" | "platform")
    ) {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let c = st.any();
    let mut h = HeaderMap::new();
    chain_header(
        &mut h,
        "SGX-PCK-CRL-Issuer-Chain",
        field(c, "pck_crl_issuer_chain"),
    );
    let der = hex::decode(field(c, "pck_crl")).expect("hex");
    let what = format!("/sgx/certification/v4/pckcrl?ca={}", q["ca"]);
    answer(&st.shared, what, h, der).await
}

async fn tcb(State(st): State<PcsState>, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(fmspc) = q.get("fmspc") else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(c) = st.pick(fmspc) else {
        st.shared
            .hits
            .lock()
            .expect("hits")
            .push(format!("404 tcb {fmspc}"));
        return StatusCode::NOT_FOUND.into_response();
    };
    let mut h = HeaderMap::new();
    chain_header(
        &mut h,
        "TCB-Info-Issuer-Chain",
        field(c, "tcb_info_issuer_chain"),
    );
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let body = format!(
        r#"{{"tcbInfo":{},"signature":"{}"}}"#,
        field(c, "tcb_info"),
        field(c, "tcb_info_signature")
    );
    let what = format!("/tdx/certification/v4/tcb?fmspc={fmspc}");
    answer(&st.shared, what, h, body.into_bytes()).await
}

async fn qe(State(st): State<PcsState>) -> Response {
    let c = st.any();
    let mut h = HeaderMap::new();
    chain_header(
        &mut h,
        "SGX-Enclave-Identity-Issuer-Chain",
        field(c, "qe_identity_issuer_chain"),
    );
    h.insert("content-type", HeaderValue::from_static("application/json"));
    let body = format!(
        r#"{{"enclaveIdentity":{},"signature":"{}"}}"#,
        field(c, "qe_identity"),
        field(c, "qe_identity_signature")
    );
    answer(
        &st.shared,
        "/tdx/certification/v4/qe/identity".into(),
        h,
        body.into_bytes(),
    )
    .await
}

/// PCCS serves the root CA CRL hex-encoded.
async fn rootcacrl(State(st): State<PcsState>) -> Response {
    let body = field(st.any(), "root_ca_crl").as_bytes().to_vec();
    answer(
        &st.shared,
        "/sgx/certification/v4/rootcacrl".into(),
        HeaderMap::new(),
        body,
    )
    .await
}

/// A fake PCCS serving `collateral` (FMSPC -> `collateral.json`); `always`: one FMSPC's
/// TCB info for every request.
pub(crate) fn pccs_for(collateral: Vec<(String, serde_json::Value)>, always: Option<&str>) -> Fake {
    let shared = Arc::new(Shared::default());
    let st = PcsState {
        shared: shared.clone(),
        collateral: Arc::new(collateral),
        always: always.map(str::to_owned),
    };
    let r = Router::new()
        .route("/sgx/certification/v4/pckcrl", get(pckcrl))
        .route("/tdx/certification/v4/tcb", get(tcb))
        .route("/tdx/certification/v4/qe/identity", get(qe))
        .route("/sgx/certification/v4/rootcacrl", get(rootcacrl))
        .with_state(st);
    start(r, shared)
}
