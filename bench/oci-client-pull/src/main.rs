//! Pull one blob by digest with the `oci-client` crate, the way its documentation shows:
//! `Client::pull_blob` into a `tokio::fs::File`. pull_blob verifies the digest itself
//! (the layer digest, and the Docker-Content-Digest header when the registry sends one).
//!
//! Usage: oci-client-pull HOST:PORT/REPO@sha256:DIGEST OUTPUT_FILE
//! Plain HTTP only (ClientProtocol::Http): the benchmark's registry is on loopback.

use std::process::ExitCode;

use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::{Client, Reference};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.len() != 3 {
        eprintln!("usage: oci-client-pull HOST:PORT/REPO@sha256:DIGEST OUTPUT_FILE");
        return ExitCode::from(2);
    }
    match pull(&args[1], &args[2]).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("oci-client-pull: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn pull(reference: &str, output: &str) -> Result<(), Box<dyn std::error::Error>> {
    // reqwest needs a process-wide TLS provider even for plain HTTP.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let reference: Reference = reference.parse()?;
    let digest = reference
        .digest()
        .ok_or("the reference needs an @sha256:… digest")?
        .to_string();
    let client = Client::new(ClientConfig {
        protocol: ClientProtocol::Http,
        ..Default::default()
    });
    let file = tokio::fs::File::create(output).await?;
    client.pull_blob(&reference, digest.as_str(), file).await?;
    Ok(())
}
