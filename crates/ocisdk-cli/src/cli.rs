//! The command line: flags and commands (clap derive).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

const EXIT_CODES: &str = "\
Exit codes:
  0  success
  1  other error
  2  usage error or invalid reference, or an install root another user could change
  3  not found (repository, tag, manifest, blob, version, installed SDK)
  4  authentication or authorisation refused
  5  verification failed (digest or size mismatch)
  6  registry unreachable or still failing after retries
130  interrupted (Ctrl-C); temporary files are removed, resumable partials kept";

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

    /// Progress display: tty (bars), plain (a line per finished step) or none
    /// [default: tty on a terminal, plain otherwise, none with -q].
    #[arg(long, global = true, value_enum, value_name = "MODE")]
    pub progress: Option<crate::progress::ProgressMode>,

    /// Registry username; the password (or token) comes from --password-stdin. Otherwise
    /// credentials come from OCISDK_USERNAME/OCISDK_PASSWORD, docker's config.json
    /// (DOCKER_CONFIG or ~/.docker) with its credential helpers, then REGISTRY_AUTH_FILE or
    /// $XDG_RUNTIME_DIR/containers/auth.json. The user and OCISDK_USERNAME are the
    /// command's registry's (never a read mirror's); between two registries (copy, sdk
    /// mirror), the target's, and the source uses the files.
    #[arg(short, long, global = true, value_name = "USER")]
    pub username: Option<String>,

    /// Read the password (or access token) for --username from standard input.
    #[arg(long, global = true)]
    pub password_stdin: bool,

    /// Read from this mirror before the registry itself (repeatable; tried in order):
    /// URL for every registry, or UPSTREAM=URL for one (mcr.microsoft.com=http://host:5001).
    /// The registry is still asked when a mirror lacks content, is down or serves wrong bytes.
    #[arg(long, global = true, value_name = "[UPSTREAM=]URL")]
    pub mirror: Vec<ocisdk::registry::Mirror>,

    /// Retry a failing request up to N times (transport errors, 408, 429, 5xx) [default: 4].
    #[arg(long, global = true, value_name = "N")]
    pub retries: Option<u32>,

    /// The longest wait honoured from a Retry-After, a registry's or its token server's, in
    /// seconds [default: 60].
    #[arg(long, global = true, value_name = "SECS")]
    pub retry_max_wait: Option<u64>,

    /// Fail a transfer that receives no bytes for this many seconds [default: 30].
    #[arg(long, global = true, value_name = "SECS")]
    pub stall_timeout: Option<u64>,

    /// Download a large blob over N parallel ranged requests (8 MiB chunks or more); helps
    /// on high-latency links or ones that cap each connection [default: 1].
    #[arg(long, global = true, value_name = "N")]
    pub chunks: Option<usize>,

    /// Trust the certificate authorities in this PEM file too (SSL_CERT_FILE replaces the
    /// system's).
    #[arg(long, global = true, value_name = "FILE")]
    pub ca_file: Option<PathBuf>,

    /// The configuration file, read at start-up (not a flag: OCISDK_CONFIG or
    /// ~/.config/ocisdk/config.toml).
    #[arg(skip)]
    pub config: crate::config::Loaded,
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

    /// Print the manifest digest (sha256:…), from a HEAD request (GET where HEAD fails).
    ///
    /// A registry that refuses HEAD, answers it 404 or leaves out Docker-Content-Digest is
    /// asked with GET instead.
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

    /// Push one file as a one-layer image (the layer is the file itself).
    ///
    /// The layer's media type follows the file name: a .tar.gz or .tgz file must be gzip,
    /// a .tar.zst, .tar.zstd or .tzst file zstd; one that is not is refused with exit code 2
    /// before anything is uploaded (rename it to push it as it is).
    ///
    /// Example: ocisdk push node.tar.gz localhost:5000/tools/node:20 --label team=build
    Push {
        /// The file to push.
        file: PathBuf,
        /// Where to push it: REPO:TAG.
        reference: String,
        /// Config label KEY=VALUE (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        label: Vec<String>,
        /// Manifest annotation KEY=VALUE (repeatable).
        #[arg(long, value_name = "KEY=VALUE")]
        annotation: Vec<String>,
        /// The manifest's artifactType.
        #[arg(long)]
        artifact_type: Option<String>,
    },

    /// Check credentials against a registry and store them like `docker login` (credential
    /// helper if configured, else ~/.docker/config.json, mode 0600).
    ///
    /// Example: echo "$TOKEN" | ocisdk login ghcr.io -u me --password-stdin
    Login {
        /// Registry host, e.g. ghcr.io or localhost:5000.
        registry: String,
    },

    /// Remove the stored credentials of a registry.
    ///
    /// Example: ocisdk logout ghcr.io
    Logout {
        /// Registry host.
        registry: String,
    },

    /// Copy an image (an index with all its platforms, or one with --platform) between
    /// registries, OCI layouts (oci:DIR[:NAME]) and layout archives (oci-archive:FILE[:NAME]),
    /// digests preserved. Blobs the target has are skipped, so a re-run resumes.
    ///
    /// Example: ocisdk copy mcr.microsoft.com/oryx/python-sdk:bookworm-3.11.4 oci:/srv/sdks:py
    Copy {
        /// Source: REGISTRY/REPO[:TAG][@DIGEST], oci:DIR[:NAME] or oci-archive:FILE[:NAME].
        src: String,
        /// Target, same forms; without a tag or name it takes the source's (a registry target
        /// needs a tag when the source, e.g. REPO@DIGEST, has none). An oci:DIR keeps the
        /// images it holds; an existing oci-archive:FILE is replaced whole.
        dst: String,
        /// From an index, copy only this platform's image (OS/ARCH[/VARIANT]); a
        /// single-platform image built for another is refused (exit code 3).
        #[arg(long)]
        platform: Option<String>,
        /// Blobs transferred at once [default: the configuration file's [network] jobs, else 4].
        ///
        /// When one fails, no other is started, each upload under way stops at the end of its
        /// current request and cancels its upload session (a blob streamed from another
        /// registry is finished), and then the command fails with that first error.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
        /// Only report what would be copied, and how many bytes.
        #[arg(long)]
        dry_run: bool,
    },

    /// Discover, resolve, install and publish SDKs.
    ///
    /// Example: ocisdk sdk install python 3.11 --registry http://localhost:5000
    Sdk(SdkCommand),

    /// Show or tidy the cache folder (OCISDK_CACHE_DIR).
    ///
    /// Example: ocisdk cache prune --older-than 14
    Cache {
        #[command(subcommand)]
        action: CacheAction,
    },

    /// Print the effective settings and where each came from (flag, env, file, default).
    ///
    /// Example: OCISDK_REGISTRY=http://localhost:5000 ocisdk config-show
    ConfigShow,

    /// Print a shell completion script.
    ///
    /// Example: ocisdk completions bash > /etc/bash_completion.d/ocisdk
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },

    /// Write man pages (ocisdk.1 and one per command) into DIR.
    ///
    /// Example: ocisdk manpages /usr/local/share/man/man1
    Manpages {
        /// The folder to write into (created when missing).
        dir: PathBuf,
    },
}

/// `ocisdk cache …`.
#[derive(Debug, Subcommand)]
pub enum CacheAction {
    /// What the cache holds, by area.
    ///
    /// Counts cached content only: the lock files that prune and clean always keep are not
    /// counted, so a cache pruned of everything reports 0 files. A cache folder, or a folder
    /// in it, that another user could change (prune and clean refuse it) is warned about on
    /// stderr, naming it and why; the counts are printed all the same, with exit code 0.
    ///
    /// Example: ocisdk cache info --json
    Info,
    /// Remove cached files not used for a while.
    ///
    /// Example: ocisdk cache prune --older-than 7
    Prune {
        /// Age in days.
        #[arg(long, value_name = "DAYS", default_value_t = 30)]
        older_than: u64,
    },
    /// Remove everything ocisdk cached (a download or install in progress keeps its files).
    ///
    /// Example: ocisdk cache clean
    Clean,
}

/// `ocisdk sdk …`.
#[derive(Debug, Args)]
pub struct SdkCommand {
    #[command(flatten)]
    pub catalogue: CatalogueArgs,

    #[command(subcommand)]
    pub command: SdkCommandKind,
}

/// Where the catalogue is. Each flag falls back to environment variables, then a default.
#[derive(Debug, Args)]
pub struct CatalogueArgs {
    /// Registry URL [env: OCISDK_REGISTRY, ORYX_ACR_SDK_REGISTRY_URL] [default: https://mcr.microsoft.com]
    #[arg(long, global = true, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub registry: Option<String>,
    /// Repository prefix [env: OCISDK_REPOSITORY_PREFIX, ORYX_ACR_SDK_REPOSITORY_PREFIX] [default: oryx]
    #[arg(long, global = true)]
    pub prefix: Option<String>,
    /// Repository template; {prefix}/{platform} is the ACR layout [default: {prefix}/{platform}-sdk]
    #[arg(long, global = true, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub repo_template: Option<String>,
    /// OS flavour [env: DEBIAN_FLAVOR] [default: bookworm]
    #[arg(long, global = true, value_parser = clap::builder::NonEmptyStringValueParser::new())]
    pub os: Option<String>,
    /// Install root, yours or root's and writable by no one else [env: DYNAMIC_INSTALL_ROOT_DIR] [default: /tmp/oryx/platforms]
    // Any bytes, as a Linux path may be; not empty.
    #[arg(long, global = true, value_parser = clap::builder::PathBufValueParser::new())]
    pub root: Option<std::path::PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum SdkCommandKind {
    /// List the versions for the OS flavour, ascending, one per line.
    ///
    /// A flavour with no versions prints nothing (exit code 0) and a warning on stderr that
    /// names the flavours the repository does have.
    ///
    /// Example: ocisdk sdk versions python --registry http://localhost:5000
    Versions {
        /// Platform: python, nodejs, dotnet, php, …
        platform: String,
    },
    /// Print the default version (from the {os}-default tag).
    ///
    /// For .NET it is the SDK version (8.0.100); --json also gives the tag and runtime of the
    /// default image, and {version}_{runtime} (8.0.100_8.0.0) is the spec that installs that
    /// image when the SDK version is listed with several runtimes.
    ///
    /// Example: ocisdk sdk default python
    Default {
        /// Platform.
        platform: String,
        /// Without a default tag, take the highest stable version.
        #[arg(long)]
        or_latest: bool,
    },
    /// Resolve a version spec: 3.11.4, 3.11, >=3.10,<3.12, ~3.11, ^20.1, latest, default.
    ///
    /// A version in full (3.11.4) is looked up by its tag ({os}-3.11.4) alone; the tags are
    /// listed when that tag is missing or refused, and for every other spec.
    ///
    /// .NET's {sdk}_{runtime} (8.0.100_8.0.0), as `sdk versions` lists it, matches only tags
    /// of that runtime; it resolves to the SDK version (8.0.100), as 8.0.100 alone does.
    ///
    /// Example: ocisdk sdk resolve python 3.11
    Resolve {
        /// Platform.
        platform: String,
        /// Version spec.
        spec: String,
        /// Consider pre-releases.
        #[arg(long)]
        pre: bool,
    },
    /// Write the SDK tarball to DIR/{platform}-{os}-{version}.tar.gz, verified.
    ///
    /// A zstd tarball is written as .tar.zst, a plain tar as .tar. Pulls of one SDK into one
    /// DIR at once take turns: the second says that it waits, then finds the tarball there.
    /// The temporary files of a pull killed outright, the next pull of that SDK into DIR
    /// removes. For .NET the version is the SDK's, which its runtimes' images share: pulled
    /// into one DIR, 8.0.100_8.0.0 and 8.0.100_8.0.1 replace each other, so pull each runtime
    /// into a DIR of its own.
    ///
    /// Example: ocisdk sdk pull python 3.11 -o /tmp/sdks
    Pull {
        /// Platform.
        platform: String,
        /// Version spec.
        spec: String,
        /// Folder for the tarball.
        #[arg(short, long)]
        output: PathBuf,
        /// Consider pre-releases.
        #[arg(long)]
        pre: bool,
    },
    /// Install SDKs into ROOT/{platform}/{version}.
    ///
    /// A .NET SDK is installed under its SDK version: 8.0.100 and 8.0.100_8.0.0 both go to
    /// ROOT/dotnet/8.0.100. When that folder holds another runtime's image (8.0.100_8.0.0,
    /// where 8.0.100_8.0.1 is asked for, or is what 8.0.100 resolves to), the install is
    /// refused; --force replaces it.
    ///
    /// Example: ocisdk sdk install python 3.11 3.12 --root /opt/sdks
    Install {
        /// Platform.
        platform: String,
        /// Version specs: one or more.
        #[arg(required = true, num_args = 1.., value_name = "SPEC")]
        specs: Vec<String>,
        /// Consider pre-releases.
        #[arg(long)]
        pre: bool,
        /// Reinstall even when already installed.
        #[arg(long)]
        force: bool,
        /// How many installs run at once [default: the configuration file's [network] jobs, else 8].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
    },
    /// Install every SDK a file lists, one "PLATFORM SPEC" per line (# starts a comment).
    ///
    /// Example: ocisdk sdk sync sdks.txt --jobs 8
    Sync {
        /// The list file ("-" for standard input).
        file: PathBuf,
        /// Consider pre-releases.
        #[arg(long)]
        pre: bool,
        /// Reinstall even when already installed.
        #[arg(long)]
        force: bool,
        /// How many installs run at once [default: the configuration file's [network] jobs, else 8].
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
    },
    /// List the SDKs installed under ROOT.
    ///
    /// Example: ocisdk sdk list-installed --root /opt/sdks
    ListInstalled,
    /// Remove installed SDK versions from ROOT/{platform}/{version}.
    ///
    /// Nothing is removed unless every version named is installed.
    ///
    /// Example: ocisdk sdk uninstall python 3.11.4 --root /opt/sdks
    Uninstall {
        /// Platform.
        platform: String,
        /// Versions, as `list-installed` shows them, or .NET's {sdk}_{runtime} (8.0.100_8.0.0,
        /// which removes 8.0.100 only when installed from that runtime): one or more.
        #[arg(required = true, num_args = 1.., value_name = "VERSION")]
        versions: Vec<String>,
    },
    /// Push an SDK tarball as {repo}:{os}-{version}.
    ///
    /// The tarball must be one `sdk install` can unpack: a tar, plain or compressed as its
    /// name says (.tar.gz, .tgz, .tar.zst), that is not empty. Any other file is refused with
    /// exit code 2 before anything is uploaded; `ocisdk push` pushes any file.
    ///
    /// A .NET version is {sdk}_{runtime}, as Oryx tags it: `sdk publish dotnet 8.0.100_8.0.0`
    /// pushes {repo}:{os}-8.0.100_8.0.0, labelled with both versions; org.oryx.version names
    /// the SDK version, which default, resolve and install give.
    ///
    /// Example: ocisdk sdk publish python 3.12.4 python-bookworm-3.12.4.tar.gz --default
    Publish {
        /// Platform.
        platform: String,
        /// Version: 3.12.4, or for .NET {sdk}_{runtime} (8.0.100_8.0.0).
        version: String,
        /// The tarball.
        file: PathBuf,
        /// Also point {os}-default at it (said on stderr; --json lists it in tags).
        #[arg(long)]
        default: bool,
    },
    /// Copy SDK versions and the {os}-default tag into another registry or into OCI layouts,
    /// keeping repository paths and tags, so that --registry pointed at the copy just works.
    /// Several flavours: --os bookworm,bullseye.
    ///
    /// Example: ocisdk sdk mirror python 3.11 3.12 --to http://localhost:5000 --dry-run
    Mirror {
        /// Platform.
        platform: String,
        /// Version specs; each copies every matching version (latest and default: one).
        /// Without any: every version. A spec with nothing to copy fails (exit code 3)
        /// before anything is copied; so does a flavour without versions, unless other
        /// flavours named have some (then it is warned about).
        specs: Vec<String>,
        /// Where to: REGISTRY[/PREFIX] (http:// for plain HTTP) or oci:DIR (a layout per
        /// repository, DIR/PATH).
        #[arg(long, value_name = "TARGET")]
        to: String,
        /// Include pre-releases.
        #[arg(long)]
        pre: bool,
        /// Blobs transferred at once [default: the configuration file's [network] jobs, else 4].
        ///
        /// When one fails, no other is started, each upload under way stops at the end of its
        /// current request and cancels its upload session (a blob streamed from another
        /// registry is finished), and then the command fails with that first error.
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
        jobs: Option<u16>,
        /// Only list what would be copied, and how many bytes.
        #[arg(long)]
        dry_run: bool,
    },
}
