//! One small function per command, each a wrapper over a library call.

mod image;
mod sdk;

use ocisdk::{Client, Error, Platform, Reference};

use crate::cli::{Cli, Command, GlobalArgs};

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let g = &cli.global;
    match &cli.command {
        Command::Tags { repo } => image::tags(g, repo).await,
        Command::Manifest {
            reference,
            platform,
        } => image::manifest(g, reference, platform.as_deref()).await,
        Command::Digest { reference } => image::digest(g, reference).await,
        Command::Config {
            reference,
            platform,
        } => image::config(g, reference, platform.as_deref()).await,
        Command::Blob { reference, output } => image::blob(g, reference, output).await,
        Command::Pull {
            reference,
            output,
            platform,
            layer,
        } => image::pull(g, reference, output, platform.as_deref(), *layer).await,
        Command::Push {
            file,
            reference,
            label,
            annotation,
            artifact_type,
        } => {
            image::push(
                g,
                file,
                reference,
                label,
                annotation,
                artifact_type.as_deref(),
            )
            .await
        }
        Command::Sdk(sdk) => sdk::run(g, sdk).await,
    }
}

fn client_with(g: &GlobalArgs, plain_http: bool) -> anyhow::Result<Client> {
    Ok(Client::builder()
        .plain_http(g.plain_http || plain_http)
        .insecure(g.insecure)
        .build()?)
}

fn client(g: &GlobalArgs) -> anyhow::Result<Client> {
    client_with(g, false)
}

fn parse_reference(text: &str) -> anyhow::Result<Reference> {
    Ok(text.parse::<Reference>().map_err(Error::from)?)
}

fn parse_platform(text: Option<&str>) -> anyhow::Result<Option<Platform>> {
    text.map(|t| t.parse::<Platform>().map_err(Error::InvalidInput))
        .transpose()
        .map_err(Into::into)
}
