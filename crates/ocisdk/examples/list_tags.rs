//! Lists the tags of a repository.
//!
//! ```sh
//! cargo run -p ocisdk --example list_tags -- localhost:5000/oryx/python-sdk
//! ```

// An example program prints its results.
#![allow(clippy::print_stdout)]

use std::ops::ControlFlow;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let repo: ocisdk::Repository = std::env::args()
        .nth(1)
        .ok_or("usage: list_tags HOST/REPOSITORY")?
        .parse()?;
    let client = ocisdk::Client::builder().build()?;
    // Page by page, so a huge repository starts printing at once.
    client
        .tags_pages(&repo, Some(100), |page| {
            for tag in page.tags {
                println!("{tag}");
            }
            ControlFlow::Continue(())
        })
        .await?;
    Ok(())
}
