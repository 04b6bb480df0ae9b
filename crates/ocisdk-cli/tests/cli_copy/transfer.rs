//! How a copy moves blobs and asks for manifests: mounted within one registry (or sent when
//! the mount is refused), streamed between two, verified on the way and resumed.

use super::*;

// ---------------------------------------------------------------------------------------
// Cross-repository mount
// ---------------------------------------------------------------------------------------

#[test]
fn copy_within_one_registry_mounts_blobs_instead_of_sending_them() {
    let a = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "team/a", "t");
    let front = Recorder::forwarding(&a.url());
    let src = format!("{}/team/a:t", front.host());
    let dst = format!("{}/team/b:t", front.host());
    let report = h.run(&["copy", &src, &dst, "--json"]).success().json();
    let blobs = report["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 5);
    assert!(blobs.iter().all(|b| b["outcome"] == "mounted"), "{blobs:?}");

    let log = front.log();
    let mounts: Vec<&Exchange> = log
        .iter()
        .filter(|e| e.method == "POST" && e.target.contains("mount="))
        .collect();
    assert_eq!(mounts.len(), 5, "{log:?}");
    for m in &mounts {
        assert!(m.target.starts_with("/v2/team/b/blobs/uploads/?"), "{m:?}");
        assert!(m.target.contains("from=team%2Fa"), "{m:?}");
        assert_eq!(m.status, 201, "{m:?}");
    }
    let blob_puts: Vec<&Exchange> = log
        .iter()
        .filter(|e| matches!(e.method.as_str(), "PUT" | "PATCH") && e.target.contains("/blobs/"))
        .collect();
    assert!(blob_puts.is_empty(), "{blob_puts:?}");
    assert_eq!(
        stored_manifest(&format!("{}/team/b:t", a.host())),
        stored_manifest(&format!("{}/team/a:t", a.host()))
    );
}

/// A registry that refuses the mount (403, as one does when the token may not pull the
/// source) still gets the blobs, sent: the copy succeeds. The refusal is about the
/// credentials, not the blob, so only the first blob's mount is asked.
#[test]
fn a_refused_mount_falls_back_to_sending_the_blob() {
    let a = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "team/a", "t");
    let front = Recorder::start(&a.url(), |req, response| {
        if req.method == "POST" && req.target.contains("mount=") {
            ocisdk_testkit::ScriptedResponse::json(
                403,
                &serde_json::json!({"errors": [{"code": "DENIED", "message": "no mounts"}]}),
            )
        } else {
            response
        }
    });
    let src = format!("{}/team/a:t", front.host());
    let dst = format!("{}/team/b:t", front.host());
    let report = h.run(&["copy", &src, &dst, "--json"]).success().json();
    let blobs = report["blobs"].as_array().unwrap();
    assert_eq!(blobs.len(), 5);
    assert!(blobs.iter().all(|b| b["outcome"] == "copied"), "{blobs:?}");
    let refused = front.log().iter().filter(|e| e.status == 403).count();
    assert_eq!(refused, 1, "{:?}", front.log());
    assert_eq!(
        stored_manifest(&format!("{}/team/b:t", a.host())),
        stored_manifest(&format!("{}/team/a:t", a.host()))
    );
}

/// A copy into an empty repository asks the target for each manifest once, by `HEAD`: its
/// 404 is the answer. Asking again by `GET` (as `ocisdk digest` does, for registries that
/// answer HEAD 404 where GET serves) doubled the manifest requests of every copy, and every
/// `sdk mirror`, into a repository that lacks them; a registry whose HEAD says 404 wrongly
/// only gets a manifest written that it had, which changes nothing.
#[test]
fn a_copy_into_an_empty_repository_asks_for_each_manifest_once() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "team/a", "t");
    let front = Recorder::forwarding(&b.url());
    let src = format!("{}/team/a:t", a.host());
    let dst = format!("{}/team/b:t", front.host());
    let report = h.run(&["copy", &src, &dst, "--json"]).success().json();
    let manifests = report["manifests"].as_array().unwrap();
    assert_eq!(manifests.len(), 3, "{report}");

    let mut want: Vec<String> = manifests
        .iter()
        .map(|m| {
            format!(
                "HEAD /v2/team/b/manifests/{} 404",
                m["digest"].as_str().unwrap()
            )
        })
        .collect();
    want.push("HEAD /v2/team/b/manifests/t 404".into());
    want.sort();
    let mut asked: Vec<String> = front
        .log()
        .into_iter()
        .filter(|e| e.target.contains("/manifests/") && e.method != "PUT")
        .map(|e| format!("{} {} {}", e.method, e.target, e.status))
        .collect();
    asked.sort();
    assert_eq!(asked, want);
    assert_eq!(
        stored_manifest(&format!("{}/team/b:t", b.host())),
        stored_manifest(&format!("{}/team/a:t", a.host()))
    );
}

// ---------------------------------------------------------------------------------------
// Streaming between registries
// ---------------------------------------------------------------------------------------

#[test]
fn a_source_serving_wrong_bytes_never_lands_in_the_target() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    let (_, layer_digest) = push_one_layer(&a, "tools/small", "4", 30_000);
    let bad = Recorder::start(&a.url(), |req, mut response| {
        if req.method == "GET" && req.path().contains("/blobs/") && response.body.len() > 1000 {
            let i = response.body.len() - 1;
            response.body[i] ^= 0xff;
        }
        response
    });
    let run = h.run(&[
        "copy",
        &format!("{}/tools/small:4", bad.host()),
        &format!("{}/tools/small:4", b.host()),
        "--retries",
        "0",
    ]);
    assert_eq!(run.code, 5, "{}", run.stderr);
    assert!(run.stderr.contains("verification failed"), "{}", run.stderr);
    assert!(!b.blob_data_path(&layer_digest).exists());
    let tag = h.run(&["digest", &format!("{}/tools/small:4", b.host())]);
    assert_eq!(tag.code, 3, "the tag must not exist: {}", tag.stdout);
}

#[test]
fn an_interrupted_copy_resumes_without_sending_blobs_twice() {
    let a = Registry::start();
    let b = Registry::start();
    let h = Harness::new();
    push_two_platform_index(&a, "tools/sdk", "v6");
    let index: Value =
        serde_json::from_slice(&stored_manifest(&format!("{}/tools/sdk:v6", a.host()))).unwrap();
    let arm = index["manifests"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let arm_manifest: Value =
        serde_json::from_slice(&stored_manifest(&format!("{}/tools/sdk@{arm}", a.host()))).unwrap();
    let failing = arm_manifest["layers"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();

    // The target refuses the upload of one blob once.
    let log: Arc<Mutex<Vec<Exchange>>> = Arc::default();
    let (upstream, sink, refuse) = (b.url(), log.clone(), failing.clone());
    let refused_once = Arc::new(Mutex::new(false));
    let front = ScriptedServer::start(move |req| {
        let refuse_now = req.method == "PUT"
            && req.target.contains(&refuse.replace(':', "%3A"))
            && !std::mem::replace(&mut *refused_once.lock().unwrap(), true);
        let response = if refuse_now {
            ocisdk_testkit::ScriptedResponse::new(503)
        } else {
            forward(req, &upstream)
        };
        sink.lock().unwrap().push(Exchange {
            method: req.method.clone(),
            target: req.target.clone(),
            status: response.status,
        });
        response
    });
    let src = format!("{}/tools/sdk:v6", a.host());
    let dst = format!("{}/tools/sdk:v6", front.host());
    let first = h.run(&["copy", &src, &dst, "--jobs", "1", "--retries", "0"]);
    assert_eq!(first.code, 6, "{}", first.stderr);
    let landed: Vec<String> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.method == "PUT" && e.status == 201 && e.target.contains("digest="))
        .filter_map(|e| {
            e.target
                .split("digest=")
                .nth(1)
                .map(|d| d.replace("%3A", ":"))
        })
        .collect();
    assert!(!landed.is_empty(), "nothing landed before the failure");

    let second = h.run(&["copy", &src, &dst, "--json"]).success().json();
    for blob in second["blobs"].as_array().unwrap() {
        let digest = blob["digest"].as_str().unwrap();
        let want = if landed.iter().any(|d| d == digest) {
            "present"
        } else {
            "copied"
        };
        assert_eq!(blob["outcome"], want, "{digest}: {second}");
    }
    assert!(second["blobs"]
        .as_array()
        .unwrap()
        .iter()
        .any(|b| b["digest"] == failing.as_str() && b["outcome"] == "copied"));
    assert_eq!(
        stored_manifest(&format!("{}/tools/sdk:v6", b.host())),
        stored_manifest(&src)
    );
}
