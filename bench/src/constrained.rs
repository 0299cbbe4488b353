//! What structured outputs cost a served request: aggregate tokens/s at 1 and 8 streams of
//! `/v1/completions`, free and with a JSON Schema (`response_format`), greedy and sampled at
//! temperature 1, interleaved within each round (free, schema, free sampled, schema sampled
//! at 1 stream, then the same at 8; every other round in reverse order), each ratio taken
//! within its round; figures are medians. A warm-up request compiles the schema first.
//!
//! Both sides generate the same number of tokens: the free streams ignore end-of-generation
//! tokens, the constrained ones follow a schema none can finish within the count (an array of
//! at least 400 strings of at most 16 characters: a length llguidance's precomputed slices do
//! not cover, so inside a string each mask walks the token trie, its slow path). The array
//! cannot close in fewer than 400 tokens (one a string at least): `--tokens` up to that.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::{aggregate, median, round};

/// How a measured request asks for its tokens.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ask {
    /// At temperature 1 (seeded), else greedy.
    pub(crate) sampled: bool,
    /// Following [`schema`] (`response_format`), else free of any grammar.
    pub(crate) constrained: bool,
}

impl Ask {
    pub(crate) const FREE: Self = Self {
        sampled: false,
        constrained: false,
    };

    /// A streamed completion of exactly `tokens` tokens of `prompt`: a free request ignores
    /// end-of-generation tokens; a constrained one follows a schema it cannot finish sooner.
    pub(crate) fn body(self, model: &str, prompt: &str, tokens: usize) -> Value {
        let mut body = json!({
            "model": model, "prompt": prompt, "max_tokens": tokens,
            "temperature": if self.sampled { 1 } else { 0 },
            "stream": true, "stream_options": {"include_usage": true},
        });
        if self.sampled {
            body["seed"] = 7.into();
        }
        if self.constrained {
            body["response_format"] = json!({
                "type": "json_schema",
                "json_schema": {"name": "names", "strict": true, "schema": schema()},
            });
        } else {
            body["ignore_eos"] = true.into();
        }
        body
    }
}

/// Stream counts measured.
const STREAMS: [usize; 2] = [1, 8];

/// The four ways a request asks, in the order of a round.
const ASKS: [Ask; 4] = [
    Ask::FREE,
    Ask {
        sampled: false,
        constrained: true,
    },
    Ask {
        sampled: true,
        constrained: false,
    },
    Ask {
        sampled: true,
        constrained: true,
    },
];

/// The schema of the constrained requests.
pub(crate) fn schema() -> Value {
    json!({
        "type": "object",
        "properties": {"names": {
            "type": "array",
            "items": {"type": "string", "maxLength": 16},
            "minItems": 400,
        }},
        "required": ["names"],
        "additionalProperties": false,
    })
}

/// Per stream count and way of sampling (greedy, sampled): medians of free tok/s, schema
/// tok/s and of the within-round ratio.
pub(crate) struct Cost {
    pub(crate) streams: usize,
    pub(crate) sampled: bool,
    pub(crate) free: f64,
    pub(crate) schema: f64,
    pub(crate) ratio: f64,
}

/// Runs `rounds` interleaved rounds of `tokens` tokens per stream.
pub(crate) async fn measure(
    client: &reqwest::Client,
    url: &Arc<String>,
    model: &str,
    tokens: usize,
    rounds: u32,
) -> anyhow::Result<Vec<Cost>> {
    // Per round, per stream count, tok/s of each of ASKS.
    // Warm-up, not measured: the first schema compiles its grammar.
    aggregate(client, url, model, 8, 1, ASKS[1]).await?;
    let mut runs: Vec<Vec<[f64; 4]>> = Vec::new();
    for r in 0..rounds {
        let mut round = Vec::new();
        for n in STREAMS {
            let mut each = [0.0; 4];
            // Every other round in reverse, so that neither side always goes first.
            let order: Vec<usize> = if r % 2 == 0 {
                (0..ASKS.len()).collect()
            } else {
                (0..ASKS.len()).rev().collect()
            };
            for k in order {
                each[k] = aggregate(client, url, model, tokens, n, ASKS[k]).await?.0;
            }
            round.push(each);
        }
        runs.push(round);
    }
    let mut costs = Vec::new();
    for (i, streams) in STREAMS.into_iter().enumerate() {
        for (sampled, free, schema) in [(false, 0, 1), (true, 2, 3)] {
            let column = |k: usize| runs.iter().map(|r| r[i][k]).collect::<Vec<f64>>();
            costs.push(Cost {
                streams,
                sampled,
                free: median(column(free)),
                schema: median(column(schema)),
                ratio: median(runs.iter().map(|r| r[i][schema] / r[i][free]).collect()),
            });
        }
    }
    Ok(costs)
}

impl Cost {
    fn sampling(&self) -> &'static str {
        if self.sampled { "sampled" } else { "greedy" }
    }

    /// One line of the text report.
    pub(crate) fn line(&self) -> String {
        format!(
            "schema at {} stream(s), {}: {:.1} tok/s vs {:.1} free, schema / free {:.3}",
            self.streams,
            self.sampling(),
            self.schema,
            self.free,
            self.ratio
        )
    }

    /// The JSON report's entry.
    pub(crate) fn json(&self) -> Value {
        json!({
            "streams": self.streams,
            "sampling": self.sampling(),
            "free_tok_s": round(self.free),
            "schema_tok_s": round(self.schema),
            "schema_over_free": (self.ratio * 1000.0).round() / 1000.0,
        })
    }
}
