//! A lockfile carries everything the image was built from: the packages, the platform, and the
//! environment's name, variables and image settings (in comment lines every other reader
//! ignores). `build -f` of a lockfile `--lock-output` or `lock IMAGE` wrote gives the same
//! image, with every setting used.

mod common;

use common::ok;

use std::path::Path;
use std::process::Output;

use common::{channel, conda_docker, glibc_base, tempdir};

/// An environment file that uses every setting the `conda-docker:` section has.
const ENVIRONMENT: &str = "\
name: bar5env
channels: []
dependencies:
  - bzip2
variables:
  GREETING: hello
conda-docker:
  env: {MODE: prod}
  labels: {org.example.team: data}
  annotations: {org.opencontainers.image.source: https://example.org/app}
  user: app:1001
  writable-prefix: true
  entrypoint: [bzip2]
  cmd: [--help]
  workdir: /data
  expose: [\"8080\", 53/udp]
  target-prefix: /srv/env
  layering: layered
  max-layers: 30
  trim: [docs, headers]
  compression: zstd:5
";

fn run(args: &[&str]) -> Output {
    conda_docker()
        .args(args)
        .output()
        .expect("running conda-docker")
}

/// Builds `file` (with `extra` arguments) on the glibc base into the OCI layout `layout`; the
/// image ID.
fn build(file: &Path, layout: &Path, extra: &[&str]) -> String {
    let base = format!("docker-archive:{}", glibc_base().display());
    let output = format!("oci:{}", layout.display());
    let mut args = vec![
        "build",
        "-b",
        &base,
        "-f",
        file.to_str().unwrap(),
        "-o",
        &output,
    ];
    args.extend_from_slice(extra);
    let id = ok(run(&args));
    assert!(id.starts_with("sha256:"), "{id}");
    id
}

/// The manifest of the one image in the OCI layout `layout`.
fn manifest(layout: &Path) -> serde_json::Value {
    let read = |path: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    };
    let index = read(&layout.join("index.json"));
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    read(
        &layout
            .join("blobs/sha256")
            .join(digest.trim_start_matches("sha256:")),
    )
}

/// The image in `layout` was written with the environment file's compression and annotations,
/// and configured as it says.
fn assert_written_as_declared(layout: &Path) {
    let m = manifest(layout);
    let config_digest = m["config"]["digest"].as_str().unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            layout
                .join("blobs/sha256")
                .join(config_digest.trim_start_matches("sha256:")),
        )
        .unwrap(),
    )
    .unwrap();
    let env = config["config"]["Env"].to_string();
    for var in [
        "CONDA_PREFIX=/srv/env",
        "CONDA_DEFAULT_ENV=bar5env",
        "GREETING=hello",
        "MODE=prod",
    ] {
        assert!(env.contains(var), "no {var} in {env}");
    }
    assert_eq!(config["config"]["User"], "1001:1001");
    assert_eq!(config["config"]["WorkingDir"], "/data");
    let types: Vec<&str> = m["layers"]
        .as_array()
        .unwrap()
        .iter()
        .skip(1)
        .map(|l| l["mediaType"].as_str().unwrap())
        .collect();
    assert!(types.iter().all(|t| t.ends_with("+zstd")), "{types:?}");
    assert_eq!(
        m["annotations"]["org.opencontainers.image.source"],
        "https://example.org/app"
    );
}

#[test]
fn a_lock_rebuilds_the_image_with_every_setting() {
    let dir = tempdir();
    let d = dir.path();
    let env_file = d.join("environment.yml");
    let named = format!("conda-forge={}", channel().display());
    std::fs::write(&env_file, ENVIRONMENT).unwrap();
    let (conda_lock, explicit) = (d.join("lock.yml"), d.join("explicit.txt"));
    let source = d.join("source");
    let channel_dir = channel();
    let channel_args = [
        "-c",
        channel_dir.to_str().unwrap(),
        "--channel-name",
        &named,
    ];
    let mut first = channel_args.to_vec();
    first.extend(["--lock-output", conda_lock.to_str().unwrap()]);
    let id = build(&env_file, &source, &first);
    assert_written_as_declared(&source);
    let mut second = channel_args.to_vec();
    second.extend(["--lock-output", explicit.to_str().unwrap()]);
    assert_eq!(build(&env_file, &d.join("again"), &second), id);

    // Each lockfile names the environment and its settings in comment lines.
    for file in [&conda_lock, &explicit] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains("# name: \"bar5env\"\n"), "{text}");
        assert!(
            text.contains("# variables: {\"GREETING\":\"hello\"}\n"),
            "{text}"
        );
        assert!(text.contains("\"compression\":\"zstd:5\""), "{text}");
        assert!(text.contains("\"target-prefix\":\"/srv/env\""), "{text}");
    }

    // `lock IMAGE` reads them back from the image.
    let layout = format!("oci:{}", source.display());
    let (image_lock, image_explicit) = (d.join("image.yml"), d.join("image.txt"));
    for file in [&image_lock, &image_explicit] {
        ok(run(&["lock", &layout, "-o", file.to_str().unwrap()]));
    }

    // Every lockfile builds the same image, on a fresh cache, with no setting given.
    for (n, file) in [&conda_lock, &explicit, &image_lock, &image_explicit]
        .into_iter()
        .enumerate()
    {
        let rebuilt = d.join(format!("rebuilt-{n}"));
        let cache = d.join(format!("cache-{n}"));
        // The channel given only as where conda-forge's packages are (offline).
        let mut args = channel_args.to_vec();
        args.extend(["--cache-dir", cache.to_str().unwrap()]);
        assert_eq!(
            build(file, &rebuilt, &args),
            id,
            "{} built another image",
            file.display()
        );
        if n < 2 {
            assert_written_as_declared(&rebuilt);
        }
    }

    // The command line still wins over what a lockfile records.
    let mut args = channel_args.to_vec();
    args.push("--cmd=--version");
    let other = build(&explicit, &d.join("other"), &args);
    assert_ne!(other, id, "--cmd was not applied over the lockfile's cmd");
}
