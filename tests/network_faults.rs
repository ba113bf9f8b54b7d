//! Network faults between conda-docker and a real registry (CNCF distribution), injected by a
//! proxy in front of it (`tests/common/fault_proxy.py`): a download reset mid-body, a lost
//! answer to a blob `PUT`, an upload the registry never got, a download trickling at 1 byte/s,
//! an upload the registry reads at 512 bytes/s, a registry that never answers, a 429 with
//! `Retry-After`, Ctrl-C during a push, and a registry on a closed port. Each test checks the outcome (success after the
//! retry, or a clear error in bounded time) and that no partial state is left: no output file,
//! and no tag pointing at missing blobs.

mod common;

use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::fault_proxy::FaultProxy;
use common::tools::{HANG, Registry, RegistryAuth, run_within, tool};
use common::{assert_no_output, channel, conda_docker, glibc_base, run_ok, tempdir};

/// The most attempts a request without progress makes before the error: the first and 4
/// retries (`http::Retries`).
const RETRIES: usize = 5;

const MANIFEST_ACCEPT: &str = "Accept: application/vnd.docker.distribution.manifest.v2+json, \
    application/vnd.oci.image.manifest.v1+json";

/// A registry holding the glibc base as `base:1` (copied there by skopeo), with the base's
/// layer digest.
fn registry_with_base(test: &str) -> Option<(Registry, String)> {
    let registry = Registry::start(RegistryAuth::None, test)?;
    let mut skopeo = tool("skopeo", test)?;
    run_ok(
        skopeo
            .args(["copy", "--dest-tls-verify=false"])
            .arg(format!("docker-archive:{}", glibc_base().display()))
            .arg(format!("docker://{}/base:1", registry.addr)),
    );
    let manifest = manifest(&registry, "base", "1").expect("the base's manifest");
    let layer = manifest["layers"][0]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    Some((registry, layer))
}

/// The manifest `repo:reference` as the registry itself serves it (not through the proxy).
fn manifest(registry: &Registry, repo: &str, reference: &str) -> Option<serde_json::Value> {
    let out = Command::new("curl")
        .args(["-sf", "-H", MANIFEST_ACCEPT])
        .arg(registry.url(&format!("/v2/{repo}/manifests/{reference}")))
        .output()
        .unwrap();
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// The tags of `repo`, asked of the registry itself.
fn tags(registry: &Registry, repo: &str) -> Vec<String> {
    let out =
        run_ok(Command::new("curl").args(["-s", &registry.url(&format!("/v2/{repo}/tags/list"))]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    // The images' tags; the SBOM referrers' fallback tags (`sha256-<hex>`) are left out.
    v["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| t.as_str().unwrap().to_string())
                .filter(|t| !t.starts_with("sha256-"))
                .collect()
        })
        .unwrap_or_default()
}

/// `repo:tag` exists and every blob its manifest names is in the registry.
fn assert_complete(registry: &Registry, repo: &str, tag: &str) {
    assert_eq!(tags(registry, repo), vec![tag.to_string()]);
    let manifest = manifest(registry, repo, tag).expect("the pushed manifest");
    let mut digests = vec![manifest["config"]["digest"].as_str().unwrap().to_string()];
    for layer in manifest["layers"].as_array().unwrap() {
        digests.push(layer["digest"].as_str().unwrap().to_string());
    }
    for digest in digests {
        let status = run_ok(Command::new("curl").args([
            "-s",
            "-I",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &registry.url(&format!("/v2/{repo}/blobs/{digest}")),
        ]));
        assert_eq!(
            status, "200",
            "{repo}:{tag} names the missing blob {digest}"
        );
    }
}

/// `conda-docker build` of bzip2 on `base` into `output`, with a fresh cache in `dir`; a build
/// still running after [`HANG`] fails the test as a hang.
fn build(dir: &Path, base: &str, output: &str, env: &[(&str, &str)], extra: &[&str]) -> Output {
    run_within(
        conda_docker()
            .env("CONDA_DOCKER_CACHE_DIR", dir.join("cache"))
            .envs(env.iter().copied())
            .args(["build", "-b", base, "-c"])
            .arg(channel())
            .args(["-o", output])
            .args(extra)
            .arg("bzip2"),
        HANG,
    )
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn succeeded(out: &Output) -> String {
    assert!(
        out.status.success(),
        "conda-docker failed:\n{}",
        stderr(out)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn failed(out: &Output) -> String {
    assert!(
        !out.status.success(),
        "conda-docker should have failed:\n{}",
        stderr(out)
    );
    stderr(out)
}

/// The first byte a logged request asked for with `Range: bytes=N-`.
fn range_start(line: &str) -> Option<u64> {
    line.split("range=bytes=")
        .nth(1)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// The status a logged request was answered with.
fn status(line: &str) -> &str {
    line.split(" -> ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .unwrap_or("")
}

/// The time a logged request arrived.
fn time(line: &str) -> f64 {
    line.split(' ').next().unwrap().parse().unwrap()
}

/// The image ID of bzip2 built on the base pulled straight from `registry` (no proxy), with a
/// cache of its own.
fn direct_build(registry: &Registry) -> String {
    let dir = tempdir();
    let out = dir.path().join("direct.tar");
    let base = format!("{}/base:1", registry.addr);
    succeeded(&build(
        dir.path(),
        &base,
        &out.display().to_string(),
        &[],
        &[],
    ))
}

#[test]
fn a_base_layer_reset_mid_body_resumes_from_where_it_broke() {
    let test = "a_base_layer_reset_mid_body_resumes_from_where_it_broke";
    let Some((registry, layer)) = registry_with_base(test) else {
        return;
    };
    let rule = format!("reset-body:GET:/blobs/{layer}");
    let Some(proxy) = FaultProxy::start(Some(&registry), &[&rule], test) else {
        return;
    };
    let dir = tempdir();
    let out_tar = dir.path().join("out.tar");
    let out = build(
        dir.path(),
        &format!("{}/base:1", proxy.addr),
        &out_tar.display().to_string(),
        &[],
        &[],
    );
    let id = succeeded(&out);
    let gets = proxy.requests("GET", &layer);
    assert_eq!(
        gets.len(),
        2,
        "one broken GET and one resumed:\n{}",
        proxy.log()
    );
    assert!(gets[0].ends_with("reset-body"), "{}", gets[0]);
    let from = range_start(&gets[1]).unwrap_or_else(|| panic!("no Range: {}", gets[1]));
    assert!(from > 0, "{}", gets[1]);
    assert_eq!(status(&gets[1]), "206", "{}", gets[1]);
    let err = stderr(&out);
    assert!(
        err.contains("reset by peer") && err.contains("retry 1"),
        "{err}"
    );
    // The resumed blob passed its digest check: the image is the one a clean pull gives.
    assert_eq!(id, direct_build(&registry));
    assert!(out_tar.exists());
}

#[test]
fn a_base_layer_the_registry_will_not_resume_is_fetched_again_whole() {
    let test = "a_base_layer_the_registry_will_not_resume_is_fetched_again_whole";
    let Some((registry, layer)) = registry_with_base(test) else {
        return;
    };
    let reset = format!("reset-body:GET:/blobs/{layer}");
    let no_range = format!("no-range:GET:/blobs/{layer}#0");
    let Some(proxy) = FaultProxy::start(Some(&registry), &[&reset, &no_range], test) else {
        return;
    };
    let dir = tempdir();
    let out_tar = dir.path().join("out.tar");
    let id = succeeded(&build(
        dir.path(),
        &format!("{}/base:1", proxy.addr),
        &out_tar.display().to_string(),
        &[],
        &[],
    ));
    let gets = proxy.requests("GET", &layer);
    assert_eq!(gets.len(), 2, "{}", proxy.log());
    assert!(range_start(&gets[1]).is_some_and(|n| n > 0), "{}", gets[1]);
    assert_eq!(status(&gets[1]), "200", "{}", gets[1]);
    // What was written before the break was discarded: the blob is whole and checked.
    assert_eq!(id, direct_build(&registry));
}

#[test]
fn a_trickling_download_fails_on_the_low_speed_limit_and_writes_nothing() {
    let test = "a_trickling_download_fails_on_the_low_speed_limit_and_writes_nothing";
    let Some((registry, _)) = registry_with_base(test) else {
        return;
    };
    let Some(proxy) = FaultProxy::start(Some(&registry), &["trickle:*:/blobs/#0"], test) else {
        return;
    };
    let dir = tempdir();
    let out_tar = dir.path().join("out.tar");
    let out = run_within(
        conda_docker()
            .env("CONDA_DOCKER_CACHE_DIR", dir.path().join("cache"))
            .env("CONDA_DOCKER_LOW_SPEED_TIME", "1")
            .env("CONDA_DOCKER_TIMEOUT", "4")
            .args(["copy", &format!("{}/base:1", proxy.addr)])
            .arg(format!("oci-archive:{}", out_tar.display())),
        HANG,
    );
    let err = failed(&out);
    assert!(
        err.contains("slower than 1024 bytes/s for 1 s (--low-speed-limit, --low-speed-time)"),
        "{err}"
    );
    assert!(
        err.contains("/v2/base/blobs/sha256:"),
        "the error names the blob: {err}"
    );
    // Retried, and then given up on: each attempt trickles, so none moves the download on.
    let gets = proxy.requests("GET", "/blobs/").len();
    assert!(
        (2..=RETRIES).contains(&gets),
        "{gets} attempts:\n{}",
        proxy.log()
    );
    assert!(!out_tar.exists());
}

#[test]
fn a_trickling_upload_fails_on_the_low_speed_limit_after_a_few_attempts_and_leaves_no_tag() {
    let test =
        "a_trickling_upload_fails_on_the_low_speed_limit_after_a_few_attempts_and_leaves_no_tag";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    // The proxy reads every blob body over 64 KiB at 512 bytes/s through a 16 KiB receive
    // window; 8 MiB of random bytes are more than the client's socket buffers hold.
    let Some(proxy) = FaultProxy::start(
        Some(&registry),
        &["trickle-upload:PUT:/blobs/uploads/#0"],
        test,
    ) else {
        return;
    };
    let dir = tempdir();
    let big = dir.path().join("big.tar");
    common::base::write_big_base(&big, 8 << 20);
    let out = run_within(
        conda_docker()
            .env("CONDA_DOCKER_CACHE_DIR", dir.path().join("cache"))
            .env("CONDA_DOCKER_LOW_SPEED_TIME", "1")
            .env("CONDA_DOCKER_TIMEOUT", "4")
            .args(["copy", &format!("docker-archive:{}", big.display())])
            .arg(format!("docker://{}/app:1", proxy.addr)),
        HANG,
    );
    let err = failed(&out);
    assert!(
        err.contains("slower than 1024 bytes/s for 1 s (--low-speed-limit, --low-speed-time)"),
        "{err}"
    );
    assert!(
        err.contains(&format!("registry `{}`: uploading sha256:", proxy.addr))
            && err.contains("to `app` failed"),
        "the error names the registry, the blob and the repository: {err}"
    );
    // Each attempt gives up a second or so after the buffers fill; the retries stop once
    // --timeout has passed since the last attempt moved. Every new upload starts from the
    // first byte, so what an attempt sent is no progress: the attempts are bounded (they used
    // to start over for ever).
    let attempts = proxy
        .log()
        .lines()
        .filter(|l| l.contains("trickle-upload of"))
        .count();
    assert!(
        (2..=RETRIES).contains(&attempts),
        "{attempts} attempts:\n{}",
        proxy.log()
    );
    assert!(tags(&registry, "app").is_empty(), "a tag was written");
}

#[test]
fn a_registry_that_never_answers_fails_within_the_timeout() {
    let test = "a_registry_that_never_answers_fails_within_the_timeout";
    let Some(proxy) = FaultProxy::start(None, &[], test) else {
        return;
    };
    let dir = tempdir();
    let out_tar = dir.path().join("out.tar");
    let start = Instant::now();
    let out = build(
        dir.path(),
        &format!("{}/base:1", proxy.addr),
        &out_tar.display().to_string(),
        &[],
        &["--timeout", "2"],
    );
    let waited = start.elapsed();
    let err = failed(&out);
    assert!(err.contains("no answer for 2 s (--timeout)"), "{err}");
    assert!(
        err.contains(&proxy.addr) && err.contains("/v2/base/manifests/1"),
        "{err}"
    );
    // It waited for the answer as long as --timeout says, not less.
    assert!(waited >= Duration::from_secs(2), "gave up after {waited:?}");
    // The reachability check before any work (which leaves silence to --timeout), the HTTPS
    // probe and one attempt in plain HTTP: three connections, not five attempts.
    let connections = proxy.requests("ACCEPT", "silent");
    assert_eq!(connections.len(), 3, "{}", proxy.log());
    assert!(!out_tar.exists());
}

#[test]
fn a_lost_answer_to_a_blob_put_is_settled_with_head() {
    let test = "a_lost_answer_to_a_blob_put_is_settled_with_head";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let Some(proxy) = FaultProxy::start(Some(&registry), &["drop-reply:PUT:/blobs/uploads/"], test)
    else {
        return;
    };
    let dir = tempdir();
    let base = format!("docker-archive:{}", glibc_base().display());
    succeeded(&build(
        dir.path(),
        &base,
        &format!("docker://{}/app:1", proxy.addr),
        &[],
        &[],
    ));
    let puts = proxy.requests("PUT", "/blobs/uploads/");
    let dropped = puts
        .iter()
        .find(|l| l.ends_with("drop-reply"))
        .expect("a dropped PUT");
    assert_eq!(status(dropped), "201", "the registry stored it: {dropped}");
    let digest = dropped
        .split("digest=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    // Asked whether the blob is there (it is), and not uploaded again.
    let heads = proxy.requests("HEAD", &format!("/blobs/{digest}"));
    assert_eq!(heads.len(), 2, "{}", proxy.log());
    assert_eq!(status(&heads[1]), "200");
    assert!(time(&heads[1]) >= time(dropped));
    assert_eq!(
        puts.iter().filter(|l| l.contains(digest)).count(),
        1,
        "{}",
        proxy.log()
    );
    assert_complete(&registry, "app", "1");
}

#[test]
fn an_upload_the_registry_never_got_starts_again() {
    let test = "an_upload_the_registry_never_got_starts_again";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let Some(proxy) = FaultProxy::start(Some(&registry), &["swallow:PUT:/blobs/uploads/"], test)
    else {
        return;
    };
    let dir = tempdir();
    let base = format!("docker-archive:{}", glibc_base().display());
    let out = build(
        dir.path(),
        &base,
        &format!("docker://{}/app:1", proxy.addr),
        &[],
        &[],
    );
    succeeded(&out);
    let puts = proxy.requests("PUT", "/blobs/uploads/");
    let swallowed = puts
        .iter()
        .find(|l| l.ends_with("swallow"))
        .expect("a swallowed PUT");
    let digest = swallowed
        .split("digest=")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    let heads = proxy.requests("HEAD", &format!("/blobs/{digest}"));
    assert_eq!(heads.len(), 2, "{}", proxy.log());
    assert_eq!(status(&heads[1]), "404", "not there after the lost PUT");
    // A new upload, to a new URL (the old one may be closed).
    let again: Vec<_> = puts.iter().filter(|l| l.contains(digest)).collect();
    assert_eq!(again.len(), 2, "{}", proxy.log());
    assert_eq!(status(again[1]), "201");
    let url = |l: &str| {
        l.split(' ')
            .nth(2)
            .unwrap()
            .split('?')
            .next()
            .unwrap()
            .to_string()
    };
    assert_ne!(url(again[0]), url(again[1]));
    assert!(stderr(&out).contains("retry 1"), "{}", stderr(&out));
    assert_complete(&registry, "app", "1");
}

#[test]
fn a_429_with_retry_after_is_waited_out_and_said() {
    let test = "a_429_with_retry_after_is_waited_out_and_said";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let Some(proxy) = FaultProxy::start(Some(&registry), &["429:PUT:/manifests/"], test) else {
        return;
    };
    let dir = tempdir();
    let base = format!("docker-archive:{}", glibc_base().display());
    let out = build(
        dir.path(),
        &base,
        &format!("docker://{}/app:1", proxy.addr),
        &[],
        &[],
    );
    succeeded(&out);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("registry `{}` asked us to wait 2 s", proxy.addr)),
        "{err}"
    );
    let puts = proxy.requests("PUT", "/manifests/1");
    assert_eq!(puts.len(), 2, "{}", proxy.log());
    assert_eq!(status(&puts[0]), "429");
    assert_eq!(status(&puts[1]), "201");
    let waited = time(&puts[1]) - time(&puts[0]);
    assert!((2.0..10.0).contains(&waited), "waited {waited} s");
    assert_complete(&registry, "app", "1");
}

#[test]
fn ctrl_c_during_a_push_says_which_blobs_were_uploaded() {
    let test = "ctrl_c_during_a_push_says_which_blobs_were_uploaded";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    // The manifest PUT never gets an answer: every blob is uploaded, the tag is not written.
    let Some(proxy) = FaultProxy::start(Some(&registry), &["hold:PUT:/manifests/"], test) else {
        return;
    };
    let dir = tempdir();
    let child = conda_docker()
        .env("CONDA_DOCKER_CACHE_DIR", dir.path().join("cache"))
        .args(["build", "-b"])
        .arg(format!("docker-archive:{}", glibc_base().display()))
        .arg("-c")
        .arg(channel())
        .args(["-o", &format!("docker://{}/app:1", proxy.addr), "bzip2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy.requests("PUT", "/manifests/").is_empty() {
        assert!(
            Instant::now() < deadline,
            "the push never reached its manifest:\n{}",
            proxy.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130), "{}", stderr(&out));
    let uploaded = proxy
        .requests("PUT", "/blobs/uploads/")
        .iter()
        .filter(|l| status(l) == "201")
        .count();
    assert!(uploaded > 0);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "{uploaded} blobs were uploaded to {}/app, no tag was written",
            proxy.addr
        )),
        "{err}"
    );
    assert!(!err.contains("nothing was written"), "{err}");
    assert!(tags(&registry, "app").is_empty(), "a tag was written");
}

/// A loopback address that counts the connections made to it, closing each at once.
fn counting_listener() -> (String, Arc<AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            if stream.is_ok() {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    (addr, count)
}

#[test]
fn a_registry_on_a_closed_port_fails_before_any_work_with_one_error() {
    let held = common::tools::closed_port();
    let closed = format!("127.0.0.1:{}", held.port);
    // The channel is served here: a solve would connect to it first.
    let (channel_addr, contacted) = counting_listener();
    for (base, registry_output) in [
        ("scratch".to_string(), true),
        (format!("{closed}/base:1"), false),
    ] {
        let dir = tempdir();
        let d = dir.path();
        let mut outputs = vec![d.join("out.tar").display().to_string()];
        if registry_output {
            outputs.insert(0, format!("docker://{closed}/app:1"));
        }
        let mut cmd = conda_docker();
        cmd.env("CONDA_DOCKER_CACHE_DIR", d.join("cache"))
            .args([
                "build",
                "-b",
                &base,
                "-c",
                &format!("http://{channel_addr}/ch"),
            ])
            .arg("--sbom-dir")
            .arg(d.join("sboms"))
            .arg("--lock-output")
            .arg(d.join("lock.txt"));
        for output in &outputs {
            cmd.args(["-o", output]);
        }
        let err = failed(&run_within(cmd.arg("bzip2"), HANG));
        // One error and its causes: no retry lines, no stage lines.
        assert_eq!(
            err.lines().filter(|l| l.starts_with("error")).count(),
            1,
            "{err}"
        );
        assert!(
            err.lines()
                .all(|l| l.starts_with("error: ") || l.starts_with("  caused by: ")),
            "{err}"
        );
        assert!(
            err.contains(&format!("registry `{closed}`: cannot reach it")),
            "{err}"
        );
        let role = if registry_output {
            format!("writing {closed}/app:1")
        } else {
            format!("reading base image `{base}`")
        };
        assert!(err.contains(&role), "{err}");
        assert_eq!(contacted.load(Ordering::SeqCst), 0, "a solve began: {err}");
        // Nothing written: no output, SBOM, lockfile nor cache.
        assert_no_output(d);
    }
}

/// The retry lines about `host` in `stderr`.
fn retry_lines(stderr: &str, host: &str) -> usize {
    stderr
        .lines()
        .filter(|l| l.contains(&format!(" on `{host}`: ")) && l.contains("; retry "))
        .count()
}

#[test]
fn retries_on_one_registry_give_one_line_and_each_with_v() {
    let test = "retries_on_one_registry_give_one_line_and_each_with_v";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let base = format!("docker-archive:{}", glibc_base().display());
    for verbose in [false, true] {
        // The first three blob checks are dropped unanswered: each is tried again.
        let Some(proxy) = FaultProxy::start(Some(&registry), &["swallow:HEAD:/blobs/#3"], test)
        else {
            return;
        };
        let dir = tempdir();
        let extra: &[&str] = if verbose { &["-v"] } else { &[] };
        let out = build(
            dir.path(),
            &base,
            &format!("docker://{}/app:1", proxy.addr),
            &[],
            extra,
        );
        succeeded(&out);
        let swallowed = proxy.requests("HEAD", "/blobs/");
        let swallowed = swallowed.iter().filter(|l| l.ends_with("swallow")).count();
        assert_eq!(swallowed, 3, "{}", proxy.log());
        let err = stderr(&out);
        let want = if verbose { swallowed } else { 1 };
        assert_eq!(retry_lines(&err, &proxy.addr), want, "-v {verbose}:\n{err}");
        assert_complete(&registry, "app", "1");
    }
}
