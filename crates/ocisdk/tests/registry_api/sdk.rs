//! Errors of the SDK layer, and pulls of a `Resolved` a program changed or built, or of one
//! SDK into one folder twice at once.

use super::*;

/// A one-file SDK tarball, `python.tar.gz` in `work`.
fn python_tarball_in(work: &std::path::Path) -> std::path::PathBuf {
    let tarball = work.join("python.tar.gz");
    std::fs::write(
        &tarball,
        tar_gz_of(&[("bin/python", b"#!/bin/sh\n", 0o755)]),
    )
    .unwrap();
    tarball
}

/// A catalogue of `registry` whose install root and cache are `root` and `cache` in `work`.
fn catalogue_in(registry: &Registry, work: &std::path::Path) -> ocisdk::sdk::Catalogue {
    let settings =
        ocisdk::sdk::CatalogueSettings::new(registry.url(), work.join("root"), work.join("cache"));
    ocisdk::sdk::Catalogue::new(client(), settings).unwrap()
}

/// A program embedding the catalogue handles its errors as it handles the registry layer's:
/// by kind, HTTP status, place and whether to retry, without unpacking the variant.
#[tokio::test]
async fn sdk_errors_give_the_registrys_status_place_and_retry_advice() {
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let catalogue = catalogue_in(&registry, work.path());
    let err = catalogue.versions("nothere").await.unwrap_err();
    assert_eq!(err.kind(), ocisdk::ErrorKind::NotFound, "{err}");
    assert_eq!(err.status(), Some(404), "{err}");
    assert!(!err.is_retryable(), "{err}");
    let at = err.location().expect("a registry error has a place");
    assert_eq!(
        (&*at.registry, &*at.repository),
        (registry.host().as_str(), "oryx/nothere-sdk")
    );
}

/// The catalogue's own not-found errors say where, as registry errors do: the repository,
/// and for a missing default the `{os}-default` tag. `location()` used to be `None` for them.
#[tokio::test]
async fn no_default_and_no_match_errors_give_their_place() {
    use ocisdk::sdk::{SdkVersion, VersionSpec};
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let tarball = python_tarball_in(work.path());
    let catalogue = catalogue_in(&registry, work.path());
    let version = SdkVersion::parse("3.11.4").unwrap();
    catalogue
        .publish("python", &version, &tarball, false, &NoProgress)
        .await
        .unwrap();
    let place = |err: &ocisdk::sdk::SdkError| {
        let at = err.location().unwrap_or_else(|| panic!("no place: {err}"));
        (
            at.registry.to_string(),
            at.repository.to_string(),
            at.reference.as_deref().map(str::to_string),
        )
    };
    let host = registry.host();

    let err = catalogue.default_version("python").await.unwrap_err();
    assert_eq!(err.kind(), ocisdk::ErrorKind::NotFound, "{err}");
    assert_eq!(
        place(&err),
        (
            host.clone(),
            "oryx/python-sdk".into(),
            Some("bookworm-default".into())
        )
    );
    let spec = VersionSpec::parse("3.99").unwrap();
    let err = catalogue.resolve("python", &spec, false).await.unwrap_err();
    assert_eq!(err.kind(), ocisdk::ErrorKind::NotFound, "{err}");
    assert_eq!(place(&err), (host, "oryx/python-sdk".into(), None));
}

/// `Resolved` has public fields, so a program may fill one in from its own configuration: a
/// platform or OS flavour that is no single folder name is refused before anything is
/// written, instead of installing outside the root (`root/../escaped/3.11.4`) or pulling
/// outside the folder asked for.
#[tokio::test]
async fn install_refuses_a_platform_that_would_leave_the_root() {
    use ocisdk::sdk::{Catalogue, CatalogueSettings, VersionSpec};
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let tarball = python_tarball_in(work.path());
    let root = work.path().join("root");
    let settings = CatalogueSettings::new(registry.url(), &root, work.path().join("cache"));
    let catalogue = Catalogue::new(client(), settings).unwrap();
    let version = "3.11.4".parse().unwrap();
    catalogue
        .publish("python", &version, &tarball, false, &NoProgress)
        .await
        .unwrap();
    let spec = VersionSpec::parse("3.11").unwrap();
    let resolved = catalogue.resolve("python", &spec, false).await.unwrap();
    let pulled = work.path().join("pulled");
    std::fs::create_dir(&pulled).unwrap();
    for (platform, os) in [
        ("../escaped", "bookworm"),
        ("a/b", "bookworm"),
        ("..", "bookworm"),
        ("", "bookworm"),
        ("python", "../escaped"),
    ] {
        let mut bad = resolved.clone();
        (bad.platform, bad.os) = (platform.to_string(), os.to_string());
        let install = catalogue.install(&bad, false, &NoProgress).await.map(drop);
        let pull = catalogue.pull(&bad, &pulled, &NoProgress).await.map(drop);
        for (what, result) in [("install", install), ("pull", pull)] {
            let err = result.unwrap_err();
            assert_eq!(
                err.kind(),
                ocisdk::ErrorKind::Usage,
                "{what} {platform:?} {os:?}: {err}"
            );
        }
    }
    assert_eq!(list_dir(work.path()), ["pulled", "python.tar.gz"]);
    assert!(list_dir(&pulled).is_empty());
}

/// Resolving a version named in full fetches its tag's manifest, and a pull of the answer
/// uses it. `Resolved`'s fields are public, so a program may point the answer at another
/// image: the pull then reads that image, never the other manifest's layer under its name.
/// A `Resolved` a program builds itself pulls as well.
#[tokio::test]
async fn a_resolved_pointed_at_another_image_pulls_that_image() {
    use ocisdk::sdk::{Resolved, VersionSpec};
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let catalogue = catalogue_in(&registry, work.path());
    let mut tarballs = Vec::new();
    for version in ["3.11.9", "3.11.10"] {
        let tarball = tar_gz_of(&[("VERSION", version.as_bytes(), 0o644)]);
        let file = work.path().join(format!("python-{version}.tar.gz"));
        std::fs::write(&file, &tarball).unwrap();
        let version = version.parse().unwrap();
        catalogue
            .publish("python", &version, &file, false, &NoProgress)
            .await
            .unwrap();
        tarballs.push(tarball);
    }
    let exact = |text| VersionSpec::parse(text).unwrap();
    let older = catalogue.resolve("python", &exact("3.11.9"), false).await;
    let older = older.unwrap();
    let mut moved = catalogue.resolve("python", &exact("3.11.10"), false).await;
    let moved = moved.as_mut().unwrap();
    moved.version = older.version.clone();
    moved.tag = older.tag.clone();
    moved.reference = older.reference.clone();
    let built = Resolved::new(
        "python",
        "bookworm",
        older.version.clone(),
        older.tag.clone(),
        older.reference.clone(),
    );
    for (what, resolved) in [("moved", &*moved), ("built", &built)] {
        let dir = work.path().join(what);
        let pulled = catalogue.pull(resolved, &dir, &NoProgress).await.unwrap();
        assert_eq!(
            pulled.path,
            dir.join("python-bookworm-3.11.9.tar.gz"),
            "{what}"
        );
        assert_same_bytes(&std::fs::read(&pulled.path).unwrap(), &tarballs[0], what);
    }
}

/// Where each of two pulls is: which have come as far as a rendezvous point.
#[derive(Default)]
struct Rendezvous {
    arrived: Mutex<[bool; 2]>,
    changed: std::sync::Condvar,
}

impl Rendezvous {
    fn arrive(&self, pull: usize) {
        self.arrived.lock().unwrap()[pull] = true;
        self.changed.notify_all();
    }

    fn wait_for_both(&self) {
        let arrived = self.arrived.lock().unwrap();
        drop(
            self.changed
                .wait_while(arrived, |arrived| !arrived.iter().all(|a| *a))
                .unwrap(),
        );
    }
}

/// The reporter of pull `.1`: holds its transfer at the end until the other pull has come
/// as far, or reported a step (which a pull only does to say that it waits for another).
/// A download in ranges reports its end once the file is in place, before the pull names
/// it for its compression, so both pulls are then between those two points.
struct MeetAtTheEnd<'a>(&'a Rendezvous, usize);

impl ocisdk::Reporter for MeetAtTheEnd<'_> {
    fn transfer_finished(&self, _id: ocisdk::progress::TransferId) {
        self.0.arrive(self.1);
        self.0.wait_for_both();
    }

    fn step(&self, _message: &str) {
        self.0.arrive(self.1);
    }
}

/// Two pulls of one zstd SDK into one folder at once each end with the whole verified
/// tarball in place under its `.tar.zst` name, its sidecar beside it, and no temporary
/// file; one downloads it, the other waits for it and finds it there. Both used to land
/// their download under the `.tar.gz` name and rename it: the second rename found nothing
/// there, and that pull failed with "No such file or directory".
#[test]
fn two_pulls_of_one_sdk_into_one_folder_at_once_both_end_with_it_in_place() {
    use ocisdk::sdk::{Catalogue, CatalogueSettings, VersionSpec};
    let registry = Registry::start();
    let work = tempfile::tempdir().unwrap();
    let catalogue = || {
        let client = Client::builder().parallel_chunks(2).build().unwrap();
        let settings = CatalogueSettings::new(
            registry.url(),
            work.path().join("root"),
            work.path().join("cache"),
        );
        Catalogue::new(client, settings).unwrap()
    };
    let runtime = || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
    };
    // Big enough to be downloaded in ranges.
    let big = pseudo_random_bytes(2 * ocisdk::content::MIN_CHUNK_SIZE as usize + 4096, 31);
    let tarball = ocisdk_testkit::RawTar::new()
        .file("lib/libpython.so", &big, 0o644)
        .tar_zst();
    let file = work.path().join("python.tar.zst");
    std::fs::write(&file, &tarball).unwrap();
    let spec = VersionSpec::parse("3.11.4").unwrap();
    let resolved = runtime().block_on(async {
        let catalogue = catalogue();
        let version = "3.11.4".parse().unwrap();
        catalogue
            .publish("python", &version, &file, false, &NoProgress)
            .await
            .unwrap();
        catalogue.resolve("python", &spec, false).await.unwrap()
    });
    let out = work.path().join("pulled");
    let rendezvous = Rendezvous::default();

    let pulls: Vec<_> = std::thread::scope(|scope| {
        let pull = |n| {
            let (rendezvous, resolved, out) = (&rendezvous, &resolved, &out);
            scope.spawn(move || {
                let reporter = MeetAtTheEnd(rendezvous, n);
                let pulled = runtime().block_on(catalogue().pull(resolved, out, &reporter));
                // A pull that ended without meeting the other must not hold it forever.
                rendezvous.arrive(n);
                pulled
            })
        };
        let both = [pull(0), pull(1)];
        both.map(|pull| pull.join().unwrap()).into()
    });

    let mut downloaded = 0;
    for pulled in pulls {
        let pulled = pulled.expect("each pull succeeds");
        assert_eq!(pulled.path, out.join("python-bookworm-3.11.4.tar.zst"));
        downloaded += usize::from(!pulled.cached);
    }
    assert_eq!(downloaded, 1, "one pull downloads, the other finds it");
    assert_same_bytes(
        &std::fs::read(out.join("python-bookworm-3.11.4.tar.zst")).unwrap(),
        &tarball,
        "the pulled tarball",
    );
    assert_eq!(
        list_dir(&out),
        [
            "python-bookworm-3.11.4.tar.zst",
            "python-bookworm-3.11.4.tar.zst.manifest-digest"
        ]
    );
}
