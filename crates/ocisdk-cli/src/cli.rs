//! The command line: flags and commands (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other error
  2  usage error or invalid reference
  3  not found (repository, tag, manifest, blob, version)
  4  authentication or authorisation refused
  5  verification failed (digest or size mismatch)
  6  registry unreachable or still failing after retries";

/// Discover, verify, install and publish SDKs kept as images in an OCI registry.
#[derive(Debug, Parser)]
#[command(name = "ocisdk", version, after_help = EXIT_CODES, max_term_width = 100)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,

    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// Use plain HTTP for every registry (loopback registries always use it).
    #[arg(long, global = true)]
    pub plain_http: bool,

    /// Skip TLS certificate verification (self-signed test registries only).
    #[arg(long, global = true)]
    pub insecure: bool,

    /// Print results (and errors) as JSON.
    #[arg(long, global = true)]
    pub json: bool,

    /// More detail on stderr (-v: steps, -vv: every request).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Only errors on stderr.
    #[arg(short, long, global = true, conflicts_with = "verbose")]
    pub quiet: bool,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the tags of a repository, one per line in registry order.
    ///
    /// Example: ocisdk tags mcr.microsoft.com/oryx/python-sdk
    Tags {
        /// Repository, e.g. localhost:5000/sdks/python (a tag, if given, is ignored).
        repo: String,
    },

    /// Print a manifest exactly as served (its sha256 equals its digest).
    ///
    /// Example: ocisdk manifest localhost:5000/sdks/python:bookworm-3.11.0
    Manifest {
        /// Image reference: [HOST[:PORT]/]PATH[:TAG][@DIGEST].
        reference: String,
        /// Resolve an index to this platform's manifest (OS/ARCH[/VARIANT]).
        #[arg(long)]
        platform: Option<String>,
    },

    /// Print the manifest digest (sha256:…) from a HEAD request.
    ///
    /// Example: ocisdk digest localhost:5000/sdks/python:bookworm-default
    Digest {
        /// Image reference.
        reference: String,
    },

    /// Print the image config JSON.
    ///
    /// Example: ocisdk config localhost:5000/sdks/python:bookworm-3.11.0
    Config {
        /// Image reference.
        reference: String,
        /// Platform to choose from an index (default: this machine's).
        #[arg(long)]
        platform: Option<String>,
    },

    /// Download one blob and verify it against its digest.
    ///
    /// Example: ocisdk blob localhost:5000/sdks/python@sha256:… -o layer.tar.gz
    Blob {
        /// REPO@DIGEST.
        reference: String,
        /// Where to write the blob.
        #[arg(short, long)]
        output: PathBuf,
    },

    /// Download and verify the single layer of a one-layer image or artifact.
    ///
    /// Example: ocisdk pull localhost:5000/sdks/python:bookworm-3.11.0 -o python.tar.gz
    Pull {
        /// Image reference.
        reference: String,
        /// Where to write the layer.
        #[arg(short, long)]
        output: PathBuf,
        /// Platform to choose from an index (default: this machine's).
        #[arg(long)]
        platform: Option<String>,
        /// Take layer N (0-based) of a multi-layer image.
        #[arg(long)]
        layer: Option<usize>,
    },
}
