//! Listing tags, following `Link` pagination.
//! <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#listing-tags>

use std::collections::HashSet;
use std::ops::ControlFlow;

use reqwest::header::{ACCEPT, LINK};
use reqwest::Method;
use url::Url;

use super::{location, parse_json, read_capped, ApiRequest, Client, Endpoints};
use crate::error::{Error, Location, Result};
use crate::reference::{is_valid_tag, Repository};

/// The most tag pages followed. A `Link` chain that comes back to a page already listed is
/// a loop and fails at once; one that goes on through new pages longer than this is hostile
/// (10,000 pages is far beyond any real repository).
pub const TAG_PAGE_LIMIT: usize = 10_000;

/// The most bytes of one tag page: tens of thousands of tags fit, and a hostile registry
/// cannot make us buffer more.
const TAG_PAGE_BYTES: u64 = 16 * 1024 * 1024;

/// One page of a tag listing.
#[derive(Debug, Clone, Default)]
pub struct TagPage {
    /// The tags on this page that are valid tag names
    /// ([`is_valid_tag`](crate::reference::is_valid_tag)), in registry order.
    pub tags: Vec<String>,
}

#[derive(serde::Deserialize)]
struct TagList {
    // Distribution answers `"tags": null` for a repository whose tags were all deleted.
    #[serde(default)]
    tags: Option<Vec<String>>,
}

impl Client {
    /// Lists tags page by page, calling `on_page` for each; return `ControlFlow::Break` to
    /// stop early. `page_size` sets the `n` parameter (registries may ignore it). A listed
    /// tag that is no valid tag name is left out, with a warning logged: no reference can
    /// name it, and it may hold control characters.
    ///
    /// Follows `Link: <…>; rel="next"` (absolute or relative), only on the same origin, never
    /// to a page already listed, at most [`TAG_PAGE_LIMIT`] pages.
    pub async fn tags_pages<F>(
        &self,
        repo: &Repository,
        page_size: Option<usize>,
        mut on_page: F,
    ) -> Result<()>
    where
        F: FnMut(TagPage) -> ControlFlow<()>,
    {
        let endpoints = self.endpoints(repo)?;
        let mut url = endpoints.tags(repo, page_size);
        let mut listed = HashSet::new();
        for _ in 0..TAG_PAGE_LIMIT {
            listed.insert(url.to_string());
            let req = ApiRequest::new(
                Method::GET,
                url.clone(),
                "listing tags",
                location(repo, None),
            )
            .header(ACCEPT, "application/json");
            let response = self.send(&req).await?;
            let next = next_link(&response, &url, &endpoints, &req)?;
            let bytes = read_capped(response, TAG_PAGE_BYTES, "tag list", &req.at).await?;
            let list: TagList = parse_json(&bytes, "tag list", &url)?;
            let page = TagPage {
                tags: well_formed(list.tags.unwrap_or_default(), &req.at),
            };
            if on_page(page).is_break() {
                return Ok(());
            }
            match next {
                Some(next) if listed.contains(next.as_str()) => {
                    return Err(Error::Protocol {
                        at: location(repo, None),
                        message: format!(
                            "tag listing loops: the next-page Link {next} points to a page already listed"
                        ),
                    })
                }
                Some(next) => url = next,
                None => return Ok(()),
            }
        }
        Err(Error::Protocol {
            at: location(repo, None),
            message: format!(
                "tag listing did not end after {TAG_PAGE_LIMIT} pages (an endless Link chain?)"
            ),
        })
    }

    /// Lists every tag of a repository that is a valid tag name (see
    /// [`Client::tags_pages`]), in registry order (from a mirror when one answers:
    /// see [`super::Mirror`]).
    pub async fn tags(&self, repo: &Repository) -> Result<Vec<String>> {
        self.read_via_mirrors(repo, "tag list", |client, repo| async move {
            let mut all = Vec::new();
            client
                .tags_pages(&repo, None, |page| {
                    all.extend(page.tags);
                    ControlFlow::Continue(())
                })
                .await?;
            Ok(all)
        })
        .await
    }
}

/// The tags of a page that a reference can name. A registry that lists others (control
/// characters, spaces, 500 bytes) is broken or hostile: such a tag cannot be pulled, and
/// printed as it is it could rewrite the user's terminal. Dropped with a warning that shows
/// the first one escaped.
fn well_formed(mut tags: Vec<String>, at: &Location) -> Vec<String> {
    let before = tags.len();
    let first_bad = tags.iter().find(|t| !is_valid_tag(t)).cloned();
    tags.retain(|t| is_valid_tag(t));
    if let Some(bad) = first_bad {
        let skipped = before - tags.len();
        tracing::warn!(
            "{at}: skipped {skipped} listed tag(s) that are not valid tag names, such as {:?}",
            bad.chars().take(80).collect::<String>()
        );
    }
    tags
}

/// The next page's URL from a `Link` header, if any. A link to another origin is an error:
/// following it would send our requests (and later our credentials) to a stranger.
fn next_link(
    response: &reqwest::Response,
    request_url: &Url,
    endpoints: &Endpoints,
    req: &ApiRequest,
) -> Result<Option<Url>> {
    for value in response.headers().get_all(LINK) {
        let Ok(value) = value.to_str() else { continue };
        let Some(target) = parse_next_link(value) else {
            continue;
        };
        let url = Endpoints::resolve(request_url, target).ok_or_else(|| Error::Protocol {
            at: req.at.clone(),
            message: format!("unusable Link header {value:?}"),
        })?;
        if !endpoints.same_origin(&url) {
            return Err(Error::Protocol {
                at: req.at.clone(),
                message: format!("refusing to follow a tag-list Link to another origin: {url}"),
            });
        }
        return Ok(Some(url));
    }
    Ok(None)
}

/// Extracts the target of the `rel="next"` link from a `Link` header value (RFC 8288), e.g.
/// `</v2/x/tags/list?last=b&n=1>; rel="next"`. Hand-written: the grammar needed here is a
/// few lines, and no well-kept crate parses just this.
pub(crate) fn parse_next_link(value: &str) -> Option<&str> {
    for link in value.split(',') {
        let link = link.trim();
        let Some(rest) = link.strip_prefix('<') else {
            continue;
        };
        let Some(end) = rest.find('>') else { continue };
        let target = &rest[..end];
        let is_next = rest[end + 1..].split(';').any(|param| {
            let Some((name, val)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && val
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|r| r.eq_ignore_ascii_case("next"))
        });
        if is_next {
            return Some(target);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_link_headers() {
        let cases = [
            (
                r#"</v2/x/tags/list?last=b&n=1>; rel="next""#,
                Some("/v2/x/tags/list?last=b&n=1"),
            ),
            (
                r#"<https://h/v2/x/tags/list?n=2>;rel=next"#,
                Some("https://h/v2/x/tags/list?n=2"),
            ),
            (r#"</a>; rel="prev", </b>; rel="next""#, Some("/b")),
            (r#"</a>; rel="prev""#, None),
            (r#"garbage"#, None),
            (r#"</a; rel="next""#, None),
        ];
        for (header, want) in cases {
            assert_eq!(parse_next_link(header), want, "{header}");
        }
    }
}
