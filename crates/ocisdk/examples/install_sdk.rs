//! Resolves a version spec and installs that SDK, the job ocisdk exists for.
//!
//! ```sh
//! cargo run -p ocisdk --example install_sdk -- http://localhost:5000 python 3.11 /tmp/sdks
//! ```

// An example program prints its results.
#![allow(clippy::print_stdout)]

use ocisdk::sdk::{Catalogue, CatalogueSettings, VersionSpec};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [registry, platform, spec, root] = args.as_slice() else {
        return Err("usage: install_sdk REGISTRY_URL PLATFORM SPEC ROOT".into());
    };
    let settings = CatalogueSettings::new(
        registry.as_str(),
        root.as_str(),
        std::env::temp_dir().join("ocisdk-example-cache"),
    );
    let client = ocisdk::Client::builder()
        .plain_http(settings.wants_plain_http())
        .build()?;
    let catalogue = Catalogue::new(client, settings)?;
    let resolved = catalogue
        .resolve(platform, &VersionSpec::parse(spec)?, false)
        .await?;
    let installed = catalogue
        .install(&resolved, false, &ocisdk::NoProgress)
        .await?;
    println!(
        "{} {} -> {}",
        resolved.platform,
        resolved.version,
        installed.path.display()
    );
    Ok(())
}
