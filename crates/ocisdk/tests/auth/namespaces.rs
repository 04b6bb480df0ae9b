//! Copies between namespaces of one registry, each read and written with its own
//! credentials: a mount refused for want of authorisation is not asked again.

use super::*;

/// (method, target, status) of each request a proxy passed on.
type Exchanges = Arc<Mutex<Vec<(String, String, u16)>>>;

/// A proxy to `upstream` that records each request with the status it was answered with.
fn recording_proxy(upstream: &str) -> (ScriptedServer, Exchanges) {
    let log = Exchanges::default();
    let (upstream, sink) = (upstream.to_string(), Arc::clone(&log));
    let proxy = ScriptedServer::start(move |req| {
        let response = forward(req, &upstream);
        let exchange = (req.method.clone(), req.target.clone(), response.status);
        sink.lock().unwrap().push(exchange);
        response
    });
    (proxy, log)
}

/// A copy from team-a to team-b whose team-b account may not read team-a: the registry
/// refuses the cross-repository mount of the first blob for want of authorisation, and the
/// rest of the copy, and a second copy with the same client (as `sdk mirror` makes), send
/// their blobs without asking again. Each refused mount cost a token request and two
/// refused `POST`s, for every blob.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mount_refused_for_want_of_authorisation_is_not_asked_again() {
    use ocisdk::copy::{copy, CopyOptions, ImageRef, Outcome};
    let tokens = TokenServer::builder()
        .user(USER, PASSWORD)
        .user_in("ann", "pw-a", "team-a")
        .user_in("ben", "pw-b", "team-b")
        .start();
    let registry = RegistryBuilder::new()
        .extra_config(&tokens.registry_config())
        .start();
    let (proxy, log) = recording_proxy(&registry.url());
    let host = proxy.host();
    // Two images of three layers each, written by the account that may write anywhere.
    let mut layout = OciLayout::new();
    for (tag, seed) in [("1", 10), ("2", 20)] {
        let mut image = ImageBuilder::new().label("tag", tag);
        for i in 0..3 {
            image = image.layer(
                pseudo_random_bytes(40_000, seed + i),
                media_types::OCI_LAYER_TAR,
            );
        }
        layout.add_image(tag, &image);
        let from = ImageRef::Layout {
            dir: layout.path().to_path_buf(),
            name: Some(tag.into()),
        };
        let to = ImageRef::Registry(reference(&format!("{host}/team-a/tool:{tag}")));
        copy(&alice(), &from, &to, &CopyOptions::default())
            .await
            .unwrap_or_else(|e| panic!("pushing {tag}: {e}"));
    }
    let auths = format!(
        r#"{{"auths":{{"{host}/team-a":{{"username":"ann","password":"pw-a"}},"{host}/team-b":{{"username":"ben","password":"pw-b"}}}}}}"#
    );
    let teams = Client::builder()
        .credentials(DockerConfig::parse(&auths, "auth.json").unwrap())
        .build()
        .unwrap();
    log.lock().unwrap().clear();

    for tag in ["1", "2"] {
        let from = ImageRef::Registry(reference(&format!("{host}/team-a/tool:{tag}")));
        let to = ImageRef::Registry(reference(&format!("{host}/team-b/tool:{tag}")));
        let report = copy(&teams, &from, &to, &CopyOptions::default())
            .await
            .unwrap_or_else(|e| panic!("copying {tag}: {e}"));
        assert_eq!(report.blobs.len(), 4, "{tag}: {report:#?}");
        assert_eq!(report.blobs_with(Outcome::Copied), 4, "{tag}: {report:#?}");
        let copied = teams
            .manifest(&reference(&format!("{host}/team-b/tool:{tag}")))
            .await
            .unwrap();
        let original = teams
            .manifest(&reference(&format!("{host}/team-a/tool:{tag}")))
            .await
            .unwrap();
        assert_eq!(copied.bytes, original.bytes, "{tag}");
        // Every layer reads back from team-b, verified against its digest.
        let dir = tempfile::tempdir().unwrap();
        for layer in copied.image().unwrap().layers() {
            let digest = Digest::parse(layer.digest().as_ref()).unwrap();
            fetch_blob(&teams, &format!("{host}/team-b/tool"), &digest, dir.path())
                .await
                .unwrap_or_else(|e| panic!("{tag}: {e}"));
        }
    }
    let log = log.lock().unwrap().clone();
    let mounts: Vec<&(String, String, u16)> = log
        .iter()
        .filter(|(method, target, _)| method == "POST" && target.contains("mount="))
        .collect();
    let blobs_asked: HashSet<&str> = mounts
        .iter()
        .filter_map(|(_, target, _)| target.split("mount=").nth(1)?.split('&').next())
        .collect();
    assert_eq!(blobs_asked.len(), 1, "{mounts:#?}");
    // Sent with the token got for it, then with a new one: a refused token is replaced once.
    assert_eq!(mounts.len(), 2, "{mounts:#?}");
    // What distribution answers a token without pull on the source.
    assert!(
        mounts.iter().all(|(_, _, status)| *status == 401),
        "{mounts:#?}"
    );
}
