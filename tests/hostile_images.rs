//! Hostile base images (issue 8): layers whose PAX records or GNU long names hide an escaping
//! path, extended headers and JSON files meant to exhaust memory, hard links to nothing. Each
//! build must fail with a message naming the layer and the entry, leave no output behind, and
//! stay small in memory; a legitimate layer with long paths through PAX still builds and runs.

mod common;

use std::path::Path;

use common::tar_craft::{digest, entry, finish, pax, with_layers};
use common::tools::{Docker, run_measured};
use common::{channel, conda_docker, failing_build, glibc_base, run_ok, tempdir};

/// A generous bound on a refused build's peak memory (the unchecked readers took 3-4 GB).
const RSS_BOUND: u64 = 500 << 20;

/// The glibc base with `layer` (an uncompressed tar) on top, written to `dir/input-NAME.tar`.
fn base_with(dir: &Path, name: &str, layer: Vec<u8>) -> (String, String) {
    let path = dir.join(format!("input-{name}.tar"));
    let diff_id = digest(&layer);
    with_layers(glibc_base(), &path, &[(layer, diff_id.clone())]);
    (format!("docker-archive:{}", path.display()), diff_id)
}

/// A build of bzip2 on `base` that must fail; returns stderr.
fn refused(dir: &Path, base: &str) -> String {
    failing_build(dir, |c| {
        c.args(["-b", base, "-c"]).arg(channel()).arg("bzip2");
    })
}

#[test]
fn pax_records_and_gnu_long_names_cannot_smuggle_a_path() {
    let dir = tempdir();
    let mut lower = Vec::new();
    entry(&mut lower, b'0', "etc/ok", "", b"ok\n");
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "pax-linkpath",
            {
                let mut t = lower.clone();
                pax(&mut t, &[("linkpath", "../../../etc/shadow")]);
                entry(&mut t, b'1', "evil", "etc/ok", b"");
                t
            },
            "hard link `evil` points to `../../../etc/shadow`",
        ),
        (
            "gnu-long-link",
            {
                let mut t = lower.clone();
                entry(&mut t, b'K', "././@LongLink", "", b"/etc/shadow\0");
                entry(&mut t, b'1', "evil", "etc/ok", b"");
                t
            },
            "points to `/etc/shadow`",
        ),
        (
            "gnu-long-name",
            {
                let mut t = Vec::new();
                entry(&mut t, b'L', "././@LongLink", "", b"../../../tmp/evil\0");
                entry(&mut t, b'0', "innocent", "", b"x");
                t
            },
            "entry `../../../tmp/evil` is an absolute path or leaves the image root",
        ),
        (
            "pax-path",
            {
                let mut t = Vec::new();
                pax(&mut t, &[("path", "/etc/cron.d/evil")]);
                entry(&mut t, b'0', "innocent", "", b"x");
                t
            },
            "entry `/etc/cron.d/evil` is an absolute path",
        ),
        (
            "fake-path-first",
            {
                // The tar crate takes the first `path`, Docker (Go) the last.
                let mut t = Vec::new();
                pax(
                    &mut t,
                    &[("path", "innocent"), ("path", "../../../tmp/evil")],
                );
                entry(&mut t, b'0', "innocent", "", b"x");
                t
            },
            "read differently",
        ),
        (
            "gnu-and-pax-differ",
            {
                let mut t = Vec::new();
                entry(&mut t, b'L', "././@LongLink", "", b"innocent\0");
                pax(&mut t, &[("path", "../../../tmp/evil")]);
                entry(&mut t, b'0', "innocent", "", b"x");
                t
            },
            "differ",
        ),
    ];
    for (name, layer, needle) in cases {
        let (base, diff_id) = base_with(dir.path(), name, finish(layer));
        let err = refused(dir.path(), &base);
        assert!(err.contains(needle), "{name}: {err}");
        assert!(
            err.contains(&format!("layer {diff_id}")) && err.contains("is refused"),
            "{name}: the layer is not named: {err}"
        );
    }
}

#[test]
fn a_huge_pax_header_is_refused_at_once_in_little_memory() {
    use sha2::Digest as _;
    use std::io::Write;
    let dir = tempdir();
    // A 2 GiB PAX header of zeros: about 2 MB of gzip.
    let size: u64 = 2 << 30;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    let mut sha = sha2::Sha256::new();
    let mut put = |bytes: &[u8]| {
        gz.write_all(bytes).unwrap();
        sha.update(bytes);
    };
    put(&common::tar_craft::header(
        b'x',
        "PaxHeaders/bomb",
        "",
        size,
    ));
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..size / zeros.len() as u64 {
        put(&zeros);
    }
    put(&common::tar_craft::header(b'0', "after", "", 0));
    put(&[0u8; 1024]);
    let layer = gz.finish().unwrap();
    assert!(layer.len() < 8 << 20, "{} bytes of gzip", layer.len());
    let diff_id = format!("sha256:{}", hex::encode(sha.finalize()));
    let path = dir.path().join("input-bomb.tar");
    with_layers(glibc_base(), &path, &[(layer, diff_id.clone())]);

    // A build still running after `HANG` is killed and fails as a hang (run_measured).
    let (out, peak) = run_measured(
        conda_docker()
            .args(["build", "-o"])
            .arg(dir.path().join("out.tar"))
            .arg("-b")
            .arg(format!("docker-archive:{}", path.display()))
            .arg("-c")
            .arg(channel())
            .arg("bzip2"),
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the build should have failed: {err}");
    assert!(
        err.contains(&format!("layer {diff_id}"))
            && err.contains("extended header (PAX x)")
            && err.contains("is too large: 2147483648 bytes"),
        "{err}"
    );
    assert!(peak < RSS_BOUND, "peak RSS {} MB", peak >> 20);
    common::assert_no_output(dir.path());
    eprintln!("PAX bomb refused with peak RSS {} MB", peak >> 20);
}

/// A sparse file of `size` bytes starting with `head`.
fn sparse(path: &Path, head: &[u8], size: u64) {
    std::fs::write(path, head).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(size)
        .unwrap();
}

#[test]
fn huge_json_in_a_layout_is_refused_in_little_memory() {
    let dir = tempdir();
    let layout = dir.path().join("input-layout");
    std::fs::create_dir_all(layout.join("blobs/sha256")).unwrap();
    std::fs::write(
        layout.join("oci-layout"),
        br#"{"imageLayoutVersion":"1.0.0"}"#,
    )
    .unwrap();
    let build = |needle: &str| {
        let (out, peak) = run_measured(
            conda_docker()
                .args(["build", "-o"])
                .arg(dir.path().join("out.tar"))
                .arg("-b")
                .arg(format!("oci:{}", layout.display()))
                .arg("-c")
                .arg(channel())
                .arg("bzip2"),
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "the build should have failed: {err}");
        assert!(err.contains(needle), "{err}");
        assert!(peak < RSS_BOUND, "peak RSS {} MB: {err}", peak >> 20);
        common::assert_no_output(dir.path());
        eprintln!("refused with peak RSS {} MB", peak >> 20);
    };
    // A 3 GB index.json.
    sparse(
        &layout.join("index.json"),
        br#"{"schemaVersion":2,"manifests":["#,
        3 << 30,
    );
    build("`index.json` is larger than 64 MiB");
    // A 1 GiB manifest blob that the index names.
    let hex = "ab".repeat(32);
    sparse(&layout.join("blobs/sha256").join(&hex), b"{", 1 << 30);
    let index = serde_json::json!({"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": format!("sha256:{hex}"), "size": 1u64 << 30}]});
    std::fs::write(layout.join("index.json"), index.to_string()).unwrap();
    build(&format!("`blobs/sha256/{hex}` is larger than 64 MiB"));
}

#[test]
fn a_hard_link_to_no_earlier_entry_of_its_layer_is_refused() {
    let dir = tempdir();
    // Its target nowhere; in a lower layer only (Docker's overlay2 extracts a layer on its
    // own, so it fails too); later in the same layer.
    let cases: Vec<(&str, Vec<u8>, &str, &str)> = vec![
        (
            "nowhere",
            {
                let mut t = Vec::new();
                entry(&mut t, b'1', "bin/evil", "etc/nowhere", b"");
                t
            },
            "bin/evil",
            "etc/nowhere",
        ),
        (
            "lower-layer",
            {
                let mut t = Vec::new();
                entry(&mut t, b'1', "etc/passwd2", "etc/passwd", b"");
                t
            },
            "etc/passwd2",
            "etc/passwd",
        ),
        (
            "later",
            {
                let mut t = Vec::new();
                entry(&mut t, b'1', "b", "a", b"");
                entry(&mut t, b'0', "a", "", b"x");
                t
            },
            "b",
            "a",
        ),
    ];
    for (name, layer, link, target) in cases {
        let (base, diff_id) = base_with(dir.path(), name, finish(layer));
        let err = refused(dir.path(), &base);
        assert!(
            err.contains(&format!(
                "hard link `{link}` points to `{target}`, which is not an earlier entry of this layer"
            )) && err.contains(&format!("layer {diff_id}")),
            "{name}: {err}"
        );
    }
}

#[test]
fn long_paths_and_links_through_pax_still_build_and_run() {
    let dir = tempdir();
    let long_dir = format!("opt/{}", "long-directory-name-".repeat(7));
    let file = format!("{long_dir}/file.txt");
    let hard = format!("{long_dir}/hard.txt");
    assert!(file.len() > 100 && hard.len() > 100);
    let mut t = Vec::new();
    pax(&mut t, &[("path", &file)]);
    entry(&mut t, b'0', "placeholder", "", b"through PAX\n");
    pax(&mut t, &[("path", &hard), ("linkpath", &file)]);
    entry(&mut t, b'1', "placeholder2", "placeholder", b"");
    pax(&mut t, &[("linkpath", &format!("/{file}"))]);
    entry(&mut t, b'2', "opt/short-link", "placeholder", b"");
    let (base, _) = base_with(dir.path(), "long", finish(t));
    let out = dir.path().join("out.tar");
    run_ok(
        conda_docker()
            .args(["build", "-b", &base, "-c"])
            .arg(channel())
            .args(["-i", "long-pax:1", "-o"])
            .arg(&out)
            .arg("bzip2"),
    );
    let Some(docker) = Docker::get("long_paths_and_links_through_pax_still_build_and_run") else {
        return;
    };
    run_ok(docker.cmd().arg("load").arg("-i").arg(&out));
    let script = format!(
        "cat /{file} /{hard} && /bin/busybox readlink /opt/short-link && \
         /bin/busybox stat -c %h /{file}"
    );
    let got = run_ok(
        docker
            .cmd()
            .args(["run", "--rm", "long-pax:1", "sh", "-c", &script]),
    );
    assert_eq!(
        got,
        format!("through PAX\nthrough PAX\n/{file}\n2\n"),
        "the long paths did not survive"
    );
    let _ = docker.cmd().args(["rmi", "-f", "long-pax:1"]).output();
}
