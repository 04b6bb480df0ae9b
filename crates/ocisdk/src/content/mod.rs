//! Content on disk: verified blob downloads and single-layer pulls.

mod download;
mod pull;

pub use download::{download_blob, Downloaded};
pub use pull::{choose_layer, pull_layer, LayerChoice, LayerInfo, Pulled};
