//! Token scopes (`repository:oryx/python-sdk:pull,push`), merged and sorted so that the same
//! access always makes the same token-cache key.
//! <https://distribution.github.io/distribution/spec/auth/scope/>

use std::collections::{BTreeMap, BTreeSet};

use reqwest::Method;

/// A set of scopes: for each resource (`type`, `name`), the union of the actions wanted.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct ScopeSet {
    resources: BTreeMap<(String, String), BTreeSet<String>>,
}

impl ScopeSet {
    /// The scopes a registry request needs: pull for reads; pull and push for writes
    /// (uploads, manifest puts, deletes); pull on the source of a cross-repository mount
    /// (`?mount=…&from=…`). `repository` is empty for registry-wide requests (`GET /v2/`).
    pub(crate) fn for_request(method: &Method, repository: &str, url: &url::Url) -> ScopeSet {
        let mut set = ScopeSet::default();
        if repository.is_empty() {
            return set;
        }
        let actions: &[&str] = if matches!(*method, Method::GET | Method::HEAD) {
            &["pull"]
        } else {
            &["pull", "push"]
        };
        set.add("repository", repository, actions.iter().copied());
        if let Some((_, from)) = url.query_pairs().find(|(k, _)| k == "from") {
            if !from.is_empty() {
                set.add("repository", &from, ["pull"]);
            }
        }
        set
    }

    /// Adds actions on a resource.
    pub(crate) fn add<'a>(
        &mut self,
        resource_type: &str,
        name: &str,
        actions: impl IntoIterator<Item = &'a str>,
    ) {
        let entry = self
            .resources
            .entry((resource_type.to_string(), name.to_string()))
            .or_default();
        entry.extend(
            actions
                .into_iter()
                .filter(|a| !a.is_empty())
                .map(str::to_string),
        );
    }

    /// Adds the scopes of a challenge's `scope` parameter: space-separated
    /// `type:name:actions` items. The name may itself hold colons (a registry host with a
    /// port), so the type ends at the first colon and the actions start after the last.
    /// Items that do not have that shape are ignored.
    pub(crate) fn add_parsed(&mut self, scopes: &str) {
        for item in scopes.split_ascii_whitespace() {
            let Some((resource_type, rest)) = item.split_once(':') else {
                continue;
            };
            let Some((name, actions)) = rest.rsplit_once(':') else {
                continue;
            };
            if resource_type.is_empty() || name.is_empty() {
                continue;
            }
            self.add(resource_type, name, actions.split(','));
        }
    }

    /// Each scope as the token server wants it, sorted: `repository:a:pull,push`.
    pub(crate) fn to_strings(&self) -> Vec<String> {
        self.resources
            .iter()
            .map(|((t, n), actions)| {
                let actions: Vec<&str> = actions.iter().map(String::as_str).collect();
                format!("{t}:{n}:{}", actions.join(","))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn request_scopes_follow_the_method() {
        let u = url("http://r/v2/a/manifests/1");
        assert_eq!(
            ScopeSet::for_request(&Method::GET, "a", &u).to_strings(),
            ["repository:a:pull"]
        );
        assert_eq!(
            ScopeSet::for_request(&Method::HEAD, "a", &u).to_strings(),
            ["repository:a:pull"]
        );
        for m in [Method::POST, Method::PUT, Method::PATCH, Method::DELETE] {
            assert_eq!(
                ScopeSet::for_request(&m, "a", &u).to_strings(),
                ["repository:a:pull,push"],
                "{m}"
            );
        }
        assert!(
            ScopeSet::for_request(&Method::GET, "", &url("http://r/v2/"))
                .to_strings()
                .is_empty()
        );
    }

    #[test]
    fn a_mount_also_needs_pull_on_the_source() {
        let u = url("http://r/v2/b/blobs/uploads/?mount=sha256%3Aab&from=team%2Fa");
        assert_eq!(
            ScopeSet::for_request(&Method::POST, "b", &u).to_strings(),
            ["repository:b:pull,push", "repository:team/a:pull"]
        );
    }

    #[test]
    fn scopes_merge_and_sort_into_one_key() {
        let mut one = ScopeSet::default();
        one.add_parsed("repository:z:push repository:a:pull");
        one.add_parsed("repository:z:pull");
        let mut two = ScopeSet::default();
        two.add("repository", "a", ["pull"]);
        two.add("repository", "z", ["pull", "push", "pull"]);
        assert_eq!(one, two);
        assert_eq!(
            one.to_strings(),
            ["repository:a:pull", "repository:z:pull,push"]
        );
        let mut three = two.clone();
        three.add_parsed("repository:a:delete");
        assert_eq!(
            three.to_strings(),
            ["repository:a:delete,pull", "repository:z:pull,push"]
        );
    }

    #[test]
    fn parsed_scopes_keep_colons_in_names_and_skip_junk() {
        let mut s = ScopeSet::default();
        s.add_parsed("repository:localhost:5000/x:pull registry:catalog:* junk :a:b x::pull");
        assert_eq!(
            s.to_strings(),
            ["registry:catalog:*", "repository:localhost:5000/x:pull"]
        );
    }
}
