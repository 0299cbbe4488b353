//! Operator metrics without content, in the Prometheus text format (`prometheus-client`, the
//! Prometheus project's Rust client), served on their own listener (`--metrics-listen`).
//!
//! No label ever carries a prompt, a completion, an API key or a request id: labels come
//! from fixed sets (the route pattern, the status code, a refusal reason, a finish reason).
//! One registry per process ([`global`]), as the server is one process; tests that read it
//! assert increases, never absolute values.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// `route` (the matched pattern, not the path) and `status`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    route: String,
    status: u16,
}

/// One label from a fixed set of names.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

/// Every metric the server keeps.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    http: Family<HttpLabels, Counter>,
    gateway_refusals: Family<Reason, Counter>,
    attestations: Family<Reason, Counter>,
    attestation_seconds: Histogram,
    generations: Family<Reason, Counter>,
    active: Gauge,
    prompt_tokens: Counter,
    completion_tokens: Counter,
    first_token_seconds: Histogram,
    between_tokens_seconds: Histogram,
    gateway_key_id: Gauge,
    engine: Arc<EngineLoad>,
}

/// The engine's load, read from its probe at each scrape.
#[derive(Debug, Default)]
struct EngineLoad {
    probe: Mutex<Option<veil_engine::LoadProbe>>,
}

impl Collector for EngineLoad {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let probe = self
            .probe
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let Some(load) = probe.map(|p| p.read()) else {
            return Ok(());
        };
        let gauges = [
            (
                "engine_queued",
                "Requests waiting for a batch slot",
                load.queued,
            ),
            (
                "engine_queue_capacity",
                "Requests that may wait",
                load.queue_capacity,
            ),
            ("engine_running", "Sequences in the batch", load.running),
            (
                "engine_max_batch",
                "Sequences a batch holds at most",
                load.max_batch,
            ),
        ];
        for (name, help, value) in gauges {
            let g = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
            g.encode(encoder.encode_descriptor(name, help, None, g.metric_type())?)?;
        }
        let counters = [
            ("engine_forward_passes", "Forward passes run", load.passes),
            (
                "engine_pass_sequences",
                "Sequences advanced, summed over passes (divided by passes: batch occupancy)",
                load.pass_sequences,
            ),
            (
                "engine_pass_rows",
                "Token rows computed, summed over passes (prompt chunks count their length)",
                load.pass_rows,
            ),
        ];
        for (name, help, value) in counters {
            let c = ConstCounter::new(value);
            c.encode(encoder.encode_descriptor(name, help, None, c.metric_type())?)?;
        }
        Ok(())
    }
}

/// The process's metrics.
pub fn global() -> &'static Metrics {
    static METRICS: OnceLock<Metrics> = OnceLock::new();
    METRICS.get_or_init(Metrics::new)
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("veil");
        let m = Self {
            http: Family::default(),
            gateway_refusals: Family::default(),
            attestations: Family::default(),
            // 10 ms to about 40 s.
            attestation_seconds: Histogram::new(exponential_buckets(0.01, 2.0, 13)),
            generations: Family::default(),
            active: Gauge::default(),
            prompt_tokens: Counter::default(),
            completion_tokens: Counter::default(),
            // 5 ms to about 20 s.
            first_token_seconds: Histogram::new(exponential_buckets(0.005, 2.0, 13)),
            // 1 ms to about 4 s.
            between_tokens_seconds: Histogram::new(exponential_buckets(0.001, 2.0, 13)),
            gateway_key_id: Gauge::default(),
            engine: Arc::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern and status",
            m.http.clone(),
        );
        registry.register(
            "gateway_refusals",
            "Encapsulated requests the gateway refused, by reason",
            m.gateway_refusals.clone(),
        );
        registry.register(
            "attestations",
            "Attestation requests, by outcome",
            m.attestations.clone(),
        );
        registry.register(
            "attestation_seconds",
            "Time to produce evidence",
            m.attestation_seconds.clone(),
        );
        registry.register(
            "generations",
            "Generations ended, by finish reason",
            m.generations.clone(),
        );
        registry.register(
            "active_generations",
            "Generations queued or running",
            m.active.clone(),
        );
        registry.register(
            "prompt_tokens",
            "Prompt tokens of generations that ended",
            m.prompt_tokens.clone(),
        );
        registry.register(
            "completion_tokens",
            "Completion tokens generated",
            m.completion_tokens.clone(),
        );
        registry.register(
            "first_token_seconds",
            "Time from queueing a generation to its first text",
            m.first_token_seconds.clone(),
        );
        registry.register(
            "between_tokens_seconds",
            "Time between two pieces of a generation's text (per-token latency)",
            m.between_tokens_seconds.clone(),
        );
        registry.register(
            "gateway_key_id",
            "Key id of the current (preferred) gateway key",
            m.gateway_key_id.clone(),
        );
        registry.register_collector(Box::new(m.engine.clone()));
        Self { registry, ..m }
    }

    /// Reports `probe`'s engine from now on (the latest engine built in this process).
    pub fn watch_engine(&self, probe: veil_engine::LoadProbe) {
        *self
            .engine
            .probe
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(probe);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub(crate) fn gateway_refused(&self, reason: &'static str) {
        self.gateway_refusals
            .get_or_create(&Reason { reason })
            .inc();
    }

    pub(crate) fn attested(&self, outcome: &'static str, took: Duration) {
        self.attestations
            .get_or_create(&Reason { reason: outcome })
            .inc();
        if outcome == "ok" {
            self.attestation_seconds.observe(took.as_secs_f64());
        }
    }

    pub(crate) fn generation_started(&self) {
        self.active.inc();
    }

    pub(crate) fn first_token(&self, after: Duration) {
        self.first_token_seconds.observe(after.as_secs_f64());
    }

    pub(crate) fn between_tokens(&self, gap: Duration) {
        self.between_tokens_seconds.observe(gap.as_secs_f64());
    }

    pub(crate) fn generation_ended(&self, reason: &'static str, prompt: usize, completion: usize) {
        self.active.dec();
        self.generations.get_or_create(&Reason { reason }).inc();
        self.prompt_tokens.inc_by(prompt as u64);
        self.completion_tokens.inc_by(completion as u64);
    }

    pub(crate) fn key_rotated(&self, key_id: u8) {
        self.gateway_key_id.set(i64::from(key_id));
    }
}

/// Middleware: counts each answered request under its route pattern (`/v1/models/{id}`, never
/// the id) and status; requests that match no route count as `unmatched`.
pub async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    global()
        .http
        .get_or_create(&HttpLabels {
            route,
            status: resp.status().as_u16(),
        })
        .inc();
    resp
}

/// The metrics listener's application: `GET /metrics` only.
pub fn router() -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(
                    axum::http::header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                global().encode(),
            )
        }),
    )
}
