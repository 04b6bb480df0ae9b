//! Every `/v2/` URL of the distribution API, built in one place.
//! <https://github.com/opencontainers/distribution-spec/blob/main/spec.md#endpoints>

use url::Url;

use crate::digest::Digest;
use crate::reference::Repository;
use crate::transport::scheme_for;

/// Builds the API URLs of one registry host.
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    base: Url,
}

impl Endpoints {
    /// `host` is where the API is served (`Repository::api_host`).
    pub(crate) fn new(host: &str, plain_http: bool) -> Result<Endpoints, url::ParseError> {
        let base = Url::parse(&format!("{}://{host}/v2/", scheme_for(host, plain_http)))?;
        Ok(Endpoints { base })
    }

    fn join(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("/v2/{path}"));
        url
    }

    /// `GET /v2/`: the API version check, also where auth challenges come from.
    pub(crate) fn ping(&self) -> Url {
        self.base.clone()
    }

    /// `GET /v2/<name>/tags/list[?n=N]`.
    pub(crate) fn tags(&self, repo: &Repository, page_size: Option<usize>) -> Url {
        let mut url = self.join(&format!("{}/tags/list", repo.path()));
        if let Some(n) = page_size {
            url.query_pairs_mut().append_pair("n", &n.to_string());
        }
        url
    }

    /// `/v2/<name>/manifests/<tag or digest>`.
    pub(crate) fn manifest(&self, repo: &Repository, reference: &str) -> Url {
        self.join(&format!("{}/manifests/{reference}", repo.path()))
    }

    /// `/v2/<name>/blobs/<digest>`.
    pub(crate) fn blob(&self, repo: &Repository, digest: &Digest) -> Url {
        self.join(&format!("{}/blobs/{digest}", repo.path()))
    }

    /// `POST /v2/<name>/blobs/uploads/`, optionally as a cross-repository mount.
    pub(crate) fn upload_start(&self, repo: &Repository, mount: Option<(&Digest, &str)>) -> Url {
        let mut url = self.join(&format!("{}/blobs/uploads/", repo.path()));
        if let Some((digest, from)) = mount {
            url.query_pairs_mut()
                .append_pair("mount", &digest.to_string())
                .append_pair("from", from);
        }
        url
    }

    /// Resolves a `Location` or `Link` value against the URL it came with; `None` when it does
    /// not parse.
    pub(crate) fn resolve(base: &Url, location: &str) -> Option<Url> {
        base.join(location).ok()
    }

    /// Whether `url` is on this registry's origin (scheme, host and port).
    pub(crate) fn same_origin(&self, url: &Url) -> bool {
        url.origin() == self.base.origin()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_api_urls() {
        let repo: Repository = "127.0.0.1:5000/oryx/python-sdk".parse().unwrap();
        let e = Endpoints::new(repo.api_host(), false).unwrap();
        assert_eq!(e.ping().as_str(), "http://127.0.0.1:5000/v2/");
        assert_eq!(
            e.tags(&repo, Some(50)).as_str(),
            "http://127.0.0.1:5000/v2/oryx/python-sdk/tags/list?n=50"
        );
        assert_eq!(
            e.manifest(&repo, "bookworm-3.11.0").as_str(),
            "http://127.0.0.1:5000/v2/oryx/python-sdk/manifests/bookworm-3.11.0"
        );
        let d = Digest::of_bytes(b"");
        assert_eq!(
            e.upload_start(&repo, Some((&d, "oryx/other"))).as_str(),
            format!("http://127.0.0.1:5000/v2/oryx/python-sdk/blobs/uploads/?mount=sha256%3A{}&from=oryx%2Fother", d.hex())
        );
        let mcr: Repository = "mcr.microsoft.com/oryx/python-sdk".parse().unwrap();
        let e = Endpoints::new(mcr.api_host(), false).unwrap();
        assert!(e
            .blob(&mcr, &d)
            .as_str()
            .starts_with("https://mcr.microsoft.com/v2/oryx/python-sdk/blobs/sha256:"));
        let next = Endpoints::resolve(&e.ping(), "/v2/x/tags/list?last=b&n=1").unwrap();
        assert!(e.same_origin(&next));
        let other = Endpoints::resolve(&e.ping(), "https://evil.example/v2/").unwrap();
        assert!(!e.same_origin(&other));
    }
}
