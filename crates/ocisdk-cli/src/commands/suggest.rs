//! "Did you mean": when a tag is not found, the closest tags the repository does have.

use ocisdk::{Client, Error, Reference};

use crate::output::Hint;

/// Turns a failure into an error, adding the closest existing tags when it says the tag of
/// `reference` does not exist. Costs one tag listing, only on that failure.
pub(crate) async fn with_close_tags(
    client: &Client,
    reference: &Reference,
    err: Error,
) -> anyhow::Error {
    let wanted = reference.tag().unwrap_or("latest");
    // The 404 must be the tag's own: a missing layer, config or index child of an image whose
    // tag exists is another failure, which a list of tags would only muddle.
    let about_the_tag = err
        .location()
        .is_some_and(|at| at.reference.as_deref() == Some(wanted));
    let tag_missing = err.status() == Some(404) && reference.digest().is_none() && about_the_tag;
    if !tag_missing {
        return err.into();
    }
    let Ok(tags) = client.tags(reference.repository()).await else {
        // The repository itself is missing (or unreadable): nothing to suggest.
        return err.into();
    };
    if tags.iter().any(|t| t == wanted) {
        return err.into();
    }
    let close = closest(wanted, &tags, 3);
    if close.is_empty() {
        return err.into();
    }
    anyhow::Error::new(err).context(Hint(format!(
        "tag \"{wanted}\" does not exist; close matches: {}",
        close.join(", ")
    )))
}

/// Up to `n` candidates most like `wanted`: a long common prefix first (tags share
/// flavour prefixes such as `bookworm-`), then edit distance.
fn closest<'a>(wanted: &str, candidates: &'a [String], n: usize) -> Vec<&'a str> {
    let mut scored: Vec<(f64, &str)> = candidates
        .iter()
        .map(|c| {
            let prefix = wanted
                .chars()
                .zip(c.chars())
                .take_while(|(a, b)| a == b)
                .count();
            let prefix_share = prefix as f64 / wanted.chars().count().max(1) as f64;
            let similarity = strsim::normalized_levenshtein(wanted, c);
            (prefix_share.max(similarity), c.as_str())
        })
        .filter(|(score, _)| *score >= 0.5)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    scored.into_iter().take(n).map(|(_, c)| c).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_prefers_shared_prefixes_and_drops_strangers() {
        let tags: Vec<String> = [
            "bookworm-3.11.9",
            "bookworm-3.11.10",
            "bookworm-3.12.4",
            "bullseye-3.11.9",
            "latest",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let close = closest("bookworm-3.11.11", &tags, 3);
        assert_eq!(close.len(), 3);
        assert!(
            close[..2].contains(&"bookworm-3.11.10") && close[..2].contains(&"bookworm-3.11.9"),
            "{close:?}"
        );
        assert!(!close.contains(&"latest"));
        assert!(closest("zzz", &tags, 3).is_empty());
    }
}
