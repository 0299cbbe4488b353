//! The `[gpu]` section of a policy: what NVIDIA GPU evidence must show.
//!
//! ```toml
//! [gpu]
//! driver_versions = ["550.90.07"]        # accepted driver versions; empty: any (a warning)
//! vbios_versions = ["96.00.9f.00.01"]    # accepted VBIOS versions; empty: any (a warning)
//! [gpu.measurements]                     # measurement index -> accepted value(s), hex
//! 2 = "8048dfd18fe2…"                    # one value
//! 3 = ["164f445c3e28…", "…"]             # or several (a manifest may list alternatives)
//! ```
//!
//! Every pinned index must be in the report with one of its values; indices left out are not
//! checked (the verdict lists them). A policy with a `[gpu]` section also requires GPU
//! evidence in a bundle, and a client refuses a `[gpu]` section that pins no measurement
//! unless `accept_any_measurement`.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

/// `[gpu]`: NVIDIA GPU rules and reference values.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct GpuPolicy {
    /// Driver versions accepted, as the report's opaque data gives them (`550.90.07`).
    #[serde(default)]
    pub driver_versions: Vec<String>,
    /// VBIOS versions accepted, as NVIDIA prints them (`96.00.9f.00.01`).
    #[serde(default)]
    pub vbios_versions: Vec<String>,
    /// Reference values: measurement index -> accepted values.
    #[serde(default)]
    pub measurements: GpuMeasurements,
}

/// Measurement index -> the values accepted for it (any one of them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GpuMeasurements(pub BTreeMap<u8, Vec<Vec<u8>>>);

impl<'de> Deserialize<'de> for GpuMeasurements {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum OneOrMany {
            One(String),
            Many(Vec<String>),
        }
        let raw = BTreeMap::<String, OneOrMany>::deserialize(d)?;
        let mut out = BTreeMap::new();
        for (k, v) in raw {
            let index: u8 = k
                .parse()
                .ok()
                .filter(|i| (1..=254).contains(i))
                .ok_or_else(|| {
                    serde::de::Error::custom(format!("GPU measurement index {k:?}: 1..=254"))
                })?;
            let values = match v {
                OneOrMany::One(s) => vec![s],
                OneOrMany::Many(v) => v,
            };
            if values.is_empty() {
                return Err(serde::de::Error::custom(format!(
                    "GPU measurement {index}: no value"
                )));
            }
            let values = values
                .iter()
                .map(|s| {
                    let t = s.trim();
                    let t = t.strip_prefix("0x").unwrap_or(t);
                    hex::decode(t)
                        .ok()
                        .filter(|v| (1..=64).contains(&v.len()))
                        .ok_or_else(|| {
                            serde::de::Error::custom(format!(
                                "GPU measurement {index}: {s:?} is not 1..=64 bytes of hex"
                            ))
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            out.insert(index, values);
        }
        Ok(Self(out))
    }
}

impl GpuPolicy {
    /// Accepts these driver versions.
    pub fn with_driver_versions(mut self, v: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.driver_versions = v.into_iter().map(Into::into).collect();
        self
    }

    /// Accepts these VBIOS versions.
    pub fn with_vbios_versions(mut self, v: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.vbios_versions = v.into_iter().map(Into::into).collect();
        self
    }

    /// Pins one measurement index to one value.
    pub fn with_measurement(mut self, index: u8, value: Vec<u8>) -> Self {
        self.measurements.0.insert(index, vec![value]);
        self
    }
}
