//! The SDK catalogue: which SDK versions a registry holds for an OS flavour, which is the
//! default, and pulling, installing and publishing them.
//!
//! Built on the registry layer; nothing in the registry layer knows about SDKs.
//!
//! ```no_run
//! # async fn demo() -> Result<(), ocisdk::sdk::SdkError> {
//! use ocisdk::sdk::{Catalogue, CatalogueSettings, VersionSpec};
//! let settings = CatalogueSettings::new("http://localhost:5000", "/opt/sdks", "/tmp/ocisdk-cache");
//! let catalogue = Catalogue::new(ocisdk::Client::builder().build()?, settings)?;
//! let resolved = catalogue.resolve("python", &VersionSpec::parse("3.11")?, false).await?;
//! let installed = catalogue.install(&resolved, false, &ocisdk::NoProgress).await?;
//! println!("python {} in {}", resolved.version, installed.path.display());
//! # Ok(()) }
//! ```

mod catalogue;
mod error;
mod fetch;
mod install;
mod installed;
mod mirror;
mod overlap;
mod publish;
mod record;
mod settings;
mod trust;
mod turn;
pub mod version;

pub use catalogue::{
    Catalogue, Resolved, VersionList, ANNOTATION_DEFAULT_VERSION, ANNOTATION_VERSION,
    LABEL_DOTNET_RUNTIME_VERSION, LABEL_DOTNET_SDK_VERSION, LABEL_VERSION,
};
pub use error::{NoMatch, SdkError};
pub use fetch::{PulledSdk, ANNOTATION_SHA256, SIDECAR_SUFFIX};
pub use install::{InstalledSdk, SENTINEL};
pub use installed::UninstalledSdk;
pub use mirror::MirrorTarget;
pub use publish::Published;
pub use record::INSTALL_RECORD;
pub use settings::{
    CatalogueSettings, DEFAULT_OS, DEFAULT_PREFIX, DEFAULT_REGISTRY, DEFAULT_REPO_TEMPLATE,
    DEFAULT_ROOT,
};
pub use version::{SdkTag, SdkVersion, TagVersion, VersionError, VersionSpec};
