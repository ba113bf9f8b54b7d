//! A layer cache shared through the registry. Two "machines" (each its own cache, HOME and
//! TMPDIR) build against one distribution registry and one channel served over loopback HTTP,
//! whose access log shows every package download: a fresh machine takes every layer an earlier
//! push left in the registry by its key, and downloads only the packages of the others.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::http_server::StaticServer;
use common::tools::{Docker, Podman, Registry, RegistryAuth, tool};
use common::{conda_docker, glibc_base, run_ok, tempdir};

/// A build machine: its own caches, home and temporary directory under `dir`.
struct Machine {
    dir: PathBuf,
}

impl Machine {
    fn new(dir: PathBuf) -> Machine {
        for sub in ["cache", "home", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        Machine { dir }
    }

    /// `conda-docker build` on this machine, on the glibc base, with `args`.
    fn build(&self, args: &[&str]) -> Output {
        self.build_on(&format!("docker-archive:{}", glibc_base().display()), args)
    }

    /// `conda-docker build` on this machine, on `base`, with `args`.
    fn build_on(&self, base: &str, args: &[&str]) -> Output {
        conda_docker()
            .env("CONDA_DOCKER_CACHE_DIR", self.dir.join("cache"))
            .env("HOME", self.dir.join("home"))
            .env("TMPDIR", self.dir.join("tmp"))
            .env_remove("CONDA_DOCKER_CACHE_FROM")
            .env_remove("XDG_CACHE_HOME")
            .args(["build", "-b", base])
            .args(args)
            .output()
            .unwrap()
    }

    /// Every file under the machine's cache, relative to it.
    fn cache_files(&self) -> Vec<String> {
        let root = self.dir.join("cache");
        let mut files = Vec::new();
        let mut dirs = vec![root.clone()];
        while let Some(d) = dirs.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let e = e.unwrap();
                let path = e.path();
                if e.file_type().unwrap().is_dir() {
                    dirs.push(path);
                } else {
                    files.push(path.strip_prefix(&root).unwrap().display().to_string());
                }
            }
        }
        files
    }
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "conda-docker failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// The digest the registry gives `reference`'s manifest, as skopeo reads it.
fn digest_of(reference: &str, test: &str) -> Option<String> {
    let got = run_ok(
        tool("skopeo", test)?
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{reference}")),
    );
    Some(common::archive::sha256(got.as_bytes()))
}

/// The raw manifest of `reference`.
fn manifest_of(reference: &str, test: &str) -> Option<serde_json::Value> {
    let got = run_ok(
        tool("skopeo", test)?
            .args(["inspect", "--tls-verify=false", "--raw"])
            .arg(format!("docker://{reference}")),
    );
    Some(serde_json::from_str(&got).unwrap())
}

/// The blob digests (hex) uploads to the registry completed so far.
fn uploaded(registry: &Registry) -> Vec<String> {
    registry
        .log()
        .lines()
        .filter(|l| l.contains("\"PUT ") && l.contains("/blobs/uploads/"))
        .filter_map(|l| {
            let at = l.find("sha256")?;
            let hex: String = l[at + 6..]
                .trim_start_matches(':')
                .trim_start_matches("%3A")
                .chars()
                .take_while(char::is_ascii_hexdigit)
                .collect();
            (hex.len() == 64).then_some(hex)
        })
        .collect()
}

/// The keyed layers of a manifest: (key, blob digest hex).
fn keyed_layers(manifest: &serde_json::Value) -> Vec<(String, String)> {
    manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|l| {
            let key = l["annotations"]["org.conda-docker.layer.key"].as_str()?;
            let digest = l["digest"].as_str()?.trim_start_matches("sha256:");
            Some((key.to_string(), digest.to_string()))
        })
        .collect()
}

/// A registry, the fixture channel served over HTTP (with its access log) and a scratch dir.
fn setup(test: &str) -> Option<(Registry, StaticServer, tempfile::TempDir)> {
    setup_with(RegistryAuth::None, test)
}

/// A registry with `auth`, the channel over HTTP and a scratch dir.
fn setup_with(
    auth: RegistryAuth,
    test: &str,
) -> Option<(Registry, StaticServer, tempfile::TempDir)> {
    let registry = Registry::start(auth, test)?;
    let dir = tempdir();
    let channel = dir.path().join("channel");
    common::copy_channel(&channel);
    let server = StaticServer::start(&channel, &dir.path().join("access.log"), test)?;
    Some((registry, server, dir))
}

/// Machine A's cold build of `specs` (with `extra` arguments), pushed to `app:a` and written
/// to the docker-archive `cold`; returns the package archives it downloaded.
fn cold_push(
    registry: &Registry,
    server: &StaticServer,
    dir: &std::path::Path,
    cold: &std::path::Path,
    extra: &[&str],
    specs: &[&str],
) -> Vec<String> {
    let a = Machine::new(dir.join("a"));
    let reg = &registry.addr;
    let (channel, push, archive) = (
        server.url(""),
        format!("docker://{reg}/app:a"),
        format!("docker-archive:{}", cold.display()),
    );
    let mut args = vec!["-c", &channel, "-o", &push, "-o", &archive];
    args.extend(extra);
    args.extend(specs);
    ok(&a.build(&args));
    server.archives()
}

/// Runs `program` in `image` under Docker and podman (each pulled from the registry).
fn runs_everywhere(test: &str, image: &str, script: &str) {
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().args(["pull", image]));
        let got =
            run_ok(
                docker
                    .cmd()
                    .args(["run", "--rm", "--network=none", image, "sh", "-c", script]),
            );
        assert_eq!(got, "hi\n", "Docker ran {image}");
    }
    if let Some(podman) = Podman::new(test) {
        let got = run_ok(podman.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "--tls-verify=false",
            image,
            "sh",
            "-c",
            script,
        ]));
        assert_eq!(got, "hi\n", "podman ran {image}");
    }
}

#[test]
fn a_fresh_runner_takes_every_layer_from_the_registry_and_downloads_no_package() {
    let test = "a_fresh_runner_takes_every_layer_from_the_registry_and_downloads_no_package";
    let Some((registry, server, dir)) = setup(test) else {
        return;
    };
    let reg = &registry.addr;
    let channel = server.url("");
    let lock = dir.path().join("input-lock.yml");
    let a = Machine::new(dir.path().join("a"));
    ok(&a.build(&[
        "-c",
        &channel,
        "--lock-output",
        lock.to_str().unwrap(),
        "-o",
        &format!("docker://{reg}/app:a"),
        "bzip2",
    ]));
    let fetched_by_a = server.archives();
    assert!(!fetched_by_a.is_empty(), "machine A downloads its packages");
    let uploads_by_a = uploaded(&registry).len();

    let b = Machine::new(dir.path().join("b"));
    // The dry run says where each layer would come from, and that nothing is downloaded.
    let dry = b.build(&[
        "-f",
        lock.to_str().unwrap(),
        "--cache-from",
        &format!("{reg}/app:a"),
        "--dry-run",
        "--json",
    ]);
    let plans: serde_json::Value = serde_json::from_str(&ok(&dry)).unwrap();
    let planned = plans[0]["layers"]
        .as_array()
        .expect("the layers' sources are known");
    assert!(!planned.is_empty());
    for layer in planned {
        assert_eq!(layer["source"], "remote", "{layer}");
        assert_eq!(layer["cache"], format!("{reg}/app:a"), "{layer}");
    }
    assert_eq!(plans[0]["downloads"], serde_json::json!([]), "{plans}");
    let out = b.build(&[
        "-f",
        lock.to_str().unwrap(),
        "--cache-from",
        &format!("{reg}/app:a"),
        "-o",
        &format!("docker://{reg}/app:b"),
        "--json",
    ]);
    let result: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let sources: Vec<String> = result["outputs"][0]["images"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["source"].as_str().unwrap(),
                l["cache"].as_str().unwrap_or("")
            )
        })
        .collect();
    let remote = format!("remote {reg}/app:a");
    assert!(
        sources.iter().filter(|s| **s == remote).count() >= 6,
        "bzip2's six packages come from the cache: {sources:?}"
    );
    assert_eq!(
        sources.first().map(String::as_str),
        Some("base "),
        "{sources:?}"
    );
    assert_eq!(
        sources.last().map(String::as_str),
        Some("built "),
        "{sources:?}"
    );
    assert_eq!(
        server.archives(),
        fetched_by_a,
        "machine B downloaded packages:\n{}",
        stderr(&out)
    );
    assert_eq!(
        uploaded(&registry).len(),
        uploads_by_a,
        "machine B uploaded blobs"
    );
    assert_eq!(
        digest_of(&format!("{reg}/app:b"), test),
        digest_of(&format!("{reg}/app:a"), test),
        "the same lockfile gives the same image from the cache"
    );
    let packages: Vec<String> = b
        .cache_files()
        .into_iter()
        .filter(|f| {
            f.ends_with(".conda") || f.ends_with(".tar.bz2") || f.ends_with("info/index.json")
        })
        .collect();
    assert!(
        packages.is_empty(),
        "machine B's cache holds packages: {packages:?}"
    );
    runs_everywhere(test, &format!("{reg}/app:b"), "echo hi | bzip2 | bzip2 -d");
}

#[test]
fn one_more_package_downloads_only_it_and_mounts_the_rest_into_another_repository() {
    let test = "one_more_package_downloads_only_it_and_mounts_the_rest_into_another_repository";
    let Some((registry, server, dir)) = setup(test) else {
        return;
    };
    let reg = &registry.addr;
    let channel = server.url("");
    let a = Machine::new(dir.path().join("a"));
    ok(&a.build(&[
        "-c",
        &channel,
        "-o",
        &format!("docker://{reg}/app:a"),
        "bzip2",
    ]));
    let fetched_by_a = server.archives();
    let uploads_by_a = uploaded(&registry);

    let b = Machine::new(dir.path().join("b"));
    let out = b.build(&[
        "-c",
        &channel,
        "--cache-from",
        &format!("{reg}/app:a"),
        "-o",
        &format!("docker://{reg}/other:b"),
        "bzip2",
        "zstd",
    ]);
    ok(&out);
    let fetched_by_b: Vec<String> = server.archives()[fetched_by_a.len()..].to_vec();
    assert!(
        fetched_by_b.iter().any(|p| p.contains("zstd-")),
        "machine B downloads zstd: {fetched_by_b:?}"
    );
    for p in &fetched_by_b {
        assert!(
            !fetched_by_a.contains(p),
            "machine B downloaded {p}, whose layer the registry has"
        );
    }
    let (Some(ma), Some(mb)) = (
        manifest_of(&format!("{reg}/app:a"), test),
        manifest_of(&format!("{reg}/other:b"), test),
    ) else {
        return;
    };
    let in_a = keyed_layers(&ma);
    let mounts = registry.requests("POST", "mount=");
    let uploads_by_b: Vec<String> = uploaded(&registry)[uploads_by_a.len()..].to_vec();
    for (key, digest) in keyed_layers(&mb) {
        let shared = in_a.iter().any(|(k, _)| *k == key);
        assert_eq!(
            uploads_by_b.contains(&digest),
            !shared,
            "layer {digest}: uploaded exactly when machine A's image lacks it"
        );
    }
    let shared = keyed_layers(&mb)
        .iter()
        .filter(|(k, _)| in_a.iter().any(|(ka, _)| ka == k))
        .count();
    assert!(
        mounts >= shared,
        "the {shared} shared layers are mounted from the other repository ({mounts} mounts)"
    );
    runs_everywhere(test, &format!("{reg}/other:b"), "echo hi | zstd | zstd -d");
}

#[test]
fn a_docker_archive_from_the_cache_is_the_cold_builds_byte_for_byte() {
    let test = "a_docker_archive_from_the_cache_is_the_cold_builds_byte_for_byte";
    let Some((registry, server, dir)) = setup(test) else {
        return;
    };
    let reg = &registry.addr;
    let channel = server.url("");
    let cold = dir.path().join("cold.tar");
    let warm = dir.path().join("warm.tar");
    let fetched_by_a = cold_push(
        &registry,
        &server,
        dir.path(),
        &cold,
        &["-i", "from-cache:1"],
        &["bzip2", "zstd"],
    );

    let b = Machine::new(dir.path().join("b"));
    ok(&b.build(&[
        "-c",
        &channel,
        "--cache-from",
        &format!("{reg}/app:a"),
        "-i",
        "from-cache:1",
        "-o",
        &format!("docker-archive:{}", warm.display()),
        "bzip2",
        "zstd",
    ]));
    assert_eq!(
        server.archives(),
        fetched_by_a,
        "machine B downloaded packages"
    );
    assert!(
        std::fs::read(&cold).unwrap() == std::fs::read(&warm).unwrap(),
        "the archive from the cache differs from the cold build's"
    );
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().arg("load").arg("-i").arg(&warm));
        let got = run_ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "from-cache:1",
            "sh",
            "-c",
            "echo hi | zstd | zstd -d",
        ]));
        assert_eq!(got, "hi\n");
    }
}

/// Overwrites the registry's copy of blob `digest_hex` with other bytes.
fn tamper(registry: &Registry, digest_hex: &str) {
    let path = registry.blob_file(&format!("sha256:{digest_hex}"));
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();
}

#[test]
fn a_cache_that_is_missing_or_lies_is_a_warning_and_a_local_build() {
    let test = "a_cache_that_is_missing_or_lies_is_a_warning_and_a_local_build";
    let Some((registry, server, dir)) = setup(test) else {
        return;
    };
    let reg = &registry.addr;
    let channel = server.url("");
    let cold = dir.path().join("cold.tar");
    cold_push(&registry, &server, dir.path(), &cold, &[], &["bzip2"]);

    // A cache that does not exist.
    let b = Machine::new(dir.path().join("b"));
    let missing = b.build(&[
        "-c",
        &channel,
        "--cache-from",
        &format!("{reg}/nothing:here"),
        "-o",
        &format!("docker-archive:{}", dir.path().join("b.tar").display()),
        "bzip2",
    ]);
    ok(&missing);
    assert!(
        stderr(&missing).contains(&format!(
            "the layer cache `{reg}/nothing:here` cannot be read"
        )),
        "a warning names the cache:\n{}",
        stderr(&missing)
    );
    assert!(std::fs::read(dir.path().join("b.tar")).unwrap() == std::fs::read(&cold).unwrap());

    // A cache whose layer blob is not what its digest says.
    let Some(manifest) = manifest_of(&format!("{reg}/app:a"), test) else {
        return;
    };
    let (_, bad) = keyed_layers(&manifest)
        .into_iter()
        .next()
        .expect("a keyed layer");
    tamper(&registry, &bad);
    let c = Machine::new(dir.path().join("c"));
    let lied = c.build(&[
        "-c",
        &channel,
        "--cache-from",
        &format!("{reg}/app:a"),
        "-o",
        &format!("docker-archive:{}", dir.path().join("c.tar").display()),
        "bzip2",
    ]);
    ok(&lied);
    assert!(
        stderr(&lied).contains(&format!(
            "the layer sha256:{bad} from `{reg}/app:a` cannot be taken"
        )),
        "a warning names the layer:\n{}",
        stderr(&lied)
    );
    assert!(
        std::fs::read(dir.path().join("c.tar")).unwrap() == std::fs::read(&cold).unwrap(),
        "the image is made from the packages as a cold build makes it"
    );
    // Nothing poisoned stays: a second build on that machine, without the cache, is the same.
    let again = c.build(&[
        "-c",
        &channel,
        "-o",
        &format!("docker-archive:{}", dir.path().join("c2.tar").display()),
        "bzip2",
    ]);
    ok(&again);
    assert!(std::fs::read(dir.path().join("c2.tar")).unwrap() == std::fs::read(&cold).unwrap());
}

#[test]
fn a_token_auth_registry_serves_as_cache_and_push_target() {
    let test = "a_token_auth_registry_serves_as_cache_and_push_target";
    let Some((registry, server, dir)) = setup_with(RegistryAuth::Token, test) else {
        return;
    };
    let reg = &registry.addr;
    let channel = server.url("");
    let creds = format!("{}:{}", common::tools::USER, common::tools::PASSWORD);
    let a = Machine::new(dir.path().join("a"));
    ok(&a.build(&[
        "-c",
        &channel,
        "--creds",
        &creds,
        "-o",
        &format!("docker://{reg}/app:a"),
        "bzip2",
    ]));
    let fetched_by_a = server.archives();

    let b = Machine::new(dir.path().join("b"));
    let out = b.build(&[
        "-c",
        &channel,
        "--creds",
        &creds,
        "--cache-from",
        &format!("{reg}/app:a"),
        "-o",
        &format!("docker://{reg}/other:b"),
        "bzip2",
    ]);
    ok(&out);
    assert_eq!(
        server.archives(),
        fetched_by_a,
        "machine B downloaded packages:\n{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
}

#[test]
fn a_cache_that_refuses_access_is_a_warning_naming_it() {
    let test = "a_cache_that_refuses_access_is_a_warning_naming_it";
    let Some((registry, server, dir)) = setup_with(RegistryAuth::Htpasswd, test) else {
        return;
    };
    let reg = &registry.addr;
    let channel = server.url("");
    let creds = format!("{}:{}", common::tools::USER, common::tools::PASSWORD);
    let cold = dir.path().join("cold.tar");
    cold_push(
        &registry,
        &server,
        dir.path(),
        &cold,
        &["--creds", &creds],
        &["bzip2"],
    );
    let b = Machine::new(dir.path().join("b"));
    let warm = dir.path().join("warm.tar");
    let out = b.build(&[
        "-c",
        &channel,
        "--cache-from",
        &format!("{reg}/app:a"),
        "-o",
        &format!("docker-archive:{}", warm.display()),
        "bzip2",
    ]);
    ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains(&format!("the layer cache `{reg}/app:a` cannot be read")),
        "a warning names the cache:\n{err}"
    );
    assert!(std::fs::read(&warm).unwrap() == std::fs::read(&cold).unwrap());
}

#[test]
fn cache_to_lets_a_fresh_machine_make_the_cold_docker_archive_from_the_registry() {
    let test = "cache_to_lets_a_fresh_machine_make_the_cold_docker_archive_from_the_registry";
    let Some((registry, server, dir)) = setup(test) else {
        return;
    };
    let reg = &registry.addr;
    let channel = server.url("");
    let cold = dir.path().join("cold.tar");
    let warm = dir.path().join("warm.tar");
    let a = Machine::new(dir.path().join("a"));
    let out = a.build(&[
        "-c",
        &channel,
        "-i",
        "cached:1",
        "--cache-to",
        &format!("{reg}/cache:main"),
        "-o",
        &format!("docker-archive:{}", cold.display()),
        "bzip2",
        "zstd",
    ]);
    ok(&out);
    assert!(
        !stderr(&out).contains("warning: the layer cache"),
        "{}",
        stderr(&out)
    );
    let fetched_by_a = server.archives();

    let b = Machine::new(dir.path().join("b"));
    let out = b.build(&[
        "-c",
        &channel,
        "-i",
        "cached:1",
        "--cache-from",
        &format!("{reg}/cache:main"),
        "-o",
        &format!("docker-archive:{}", warm.display()),
        "bzip2",
        "zstd",
    ]);
    ok(&out);
    assert_eq!(
        server.archives(),
        fetched_by_a,
        "machine B downloaded packages:\n{}",
        stderr(&out)
    );
    assert!(
        std::fs::read(&cold).unwrap() == std::fs::read(&warm).unwrap(),
        "the archive from the cache differs from the cold build's"
    );
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().arg("load").arg("-i").arg(&warm));
        let got = run_ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "cached:1",
            "sh",
            "-c",
            "echo hi | zstd | zstd -d",
        ]));
        assert_eq!(got, "hi\n");
    }
}

/// The tags of `repo` in `registry`.
fn tags_of(registry: &Registry, repo: &str) -> Vec<String> {
    let got =
        run_ok(Command::new("curl").args(["-sf", &registry.url(&format!("/v2/{repo}/tags/list"))]));
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    v["tags"]
        .as_array()
        .map(|t| t.iter().map(|t| t.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn eight_concurrent_writers_keep_every_entry_and_the_oldest_go_past_the_bound() {
    let test = "eight_concurrent_writers_keep_every_entry_and_the_oldest_go_past_the_bound";
    let Some((registry, server, dir)) = setup(test) else {
        return;
    };
    let reg = registry.addr.clone();
    let channel = server.url("");
    let envs: [&[&str]; 8] = [
        &["bzip2"],
        &["zstd"],
        &["openssl"],
        &["ncurses"],
        &["bzip2", "zstd"],
        &["bzip2", "openssl"],
        &["zstd", "ncurses"],
        &["bzip2", "zstd", "openssl"],
    ];
    let writers: Vec<_> = envs
        .iter()
        .enumerate()
        .map(|(i, specs)| {
            let machine = Machine::new(dir.path().join(format!("w{i}")));
            let out = dir.path().join(format!("w{i}.tar"));
            let mut args = vec![
                "-c".to_string(),
                channel.clone(),
                "--cache-to".into(),
                format!("{reg}/cache:main"),
                "-o".into(),
                format!("docker-archive:{}", out.display()),
            ];
            args.extend(specs.iter().map(|s| s.to_string()));
            std::thread::spawn(move || {
                let refs: Vec<&str> = args.iter().map(String::as_str).collect();
                machine.build(&refs)
            })
        })
        .collect();
    for w in writers {
        let out = w.join().unwrap();
        ok(&out);
        assert!(
            !stderr(&out).contains("warning: the layer cache"),
            "{}",
            stderr(&out)
        );
    }
    assert_eq!(
        tags_of(&registry, "cache").len(),
        8,
        "one entry per environment"
    );
    // `cache remote` lists the eight entries, each with its layers and packages.
    let listed = run_ok(
        conda_docker()
            .args(["cache", "remote", "--json"])
            .arg(format!("{reg}/cache:main")),
    );
    let entries: serde_json::Value = serde_json::from_str(&listed).unwrap();
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 8, "{listed}");
    for e in entries {
        assert!(
            e["layers"].as_u64().unwrap() > 0 && e["packages"].as_u64().unwrap() > 0,
            "{e}"
        );
        assert!(
            e["reference"]
                .as_str()
                .unwrap()
                .starts_with(&format!("{reg}/cache:main-")),
            "{e}"
        );
    }
    // Every writer's layers are found: a fresh machine's dry run of each takes all of them.
    for (i, specs) in envs.iter().enumerate() {
        let fresh = Machine::new(dir.path().join(format!("r{i}")));
        let mut args = vec!["-c", &channel, "--cache-from", "", "--dry-run", "--json"];
        let from = format!("{reg}/cache:main");
        args[3] = &from;
        args.extend(specs.iter());
        let plans: serde_json::Value = serde_json::from_str(&ok(&fresh.build(&args))).unwrap();
        let layers = plans[0]["layers"]
            .as_array()
            .expect("every package described");
        for layer in layers {
            assert_eq!(layer["source"], "remote", "{specs:?}: {layer}");
        }
    }
    // A ninth writer with max-entries=3 leaves three entries, its own among them.
    let ninth = Machine::new(dir.path().join("w8"));
    ok(&ninth.build(&[
        "-c",
        &channel,
        "--cache-to",
        &format!("{reg}/cache:main,max-entries=3"),
        "-o",
        &format!("docker-archive:{}", dir.path().join("w8.tar").display()),
        "ncurses",
        "openssl",
    ]));
    assert_eq!(
        tags_of(&registry, "cache").len(),
        3,
        "{:?}",
        tags_of(&registry, "cache")
    );
}

#[test]
fn verify_cache_names_a_cache_entry_that_points_at_another_valid_layer() {
    let test = "verify_cache_names_a_cache_entry_that_points_at_another_valid_layer";
    let Some((registry, server, dir)) = setup(test) else {
        return;
    };
    let reg = &registry.addr;
    let channel = server.url("");
    let cold = dir.path().join("cold.tar");
    cold_push(
        &registry,
        &server,
        dir.path(),
        &cold,
        &[],
        &["bzip2", "zstd"],
    );
    // A cache that lies: the first keyed layer's key names the second keyed layer's blob (a
    // valid blob, with its true digest and diff_id).
    let Some(mut manifest) = manifest_of(&format!("{reg}/app:a"), test) else {
        return;
    };
    let layers = manifest["layers"].as_array_mut().unwrap();
    let keyed: Vec<usize> = (0..layers.len())
        .filter(|&i| layers[i]["annotations"]["org.conda-docker.layer.key"].is_string())
        .collect();
    let (first, second) = (keyed[0], keyed[1]);
    let lied_key = layers[first]["annotations"]["org.conda-docker.layer.key"].clone();
    let mut swapped = layers[second].clone();
    swapped["annotations"]["org.conda-docker.layer.key"] = lied_key.clone();
    layers[first] = swapped;
    let body = dir.path().join("input-evil.json");
    std::fs::write(&body, serde_json::to_vec(&manifest).unwrap()).unwrap();
    run_ok(Command::new("curl").args([
        "-sf",
        "-X",
        "PUT",
        "-H",
        "Content-Type: application/vnd.oci.image.manifest.v1+json",
        "--data-binary",
        &format!("@{}", body.display()),
        &registry.url("/v2/app/manifests/evil"),
    ]));

    let b = Machine::new(dir.path().join("b"));
    let checked = dir.path().join("checked.tar");
    let out = b.build(&[
        "-c",
        &channel,
        "--cache-from",
        &format!("{reg}/app:evil"),
        "--verify-cache",
        "-o",
        &format!("docker-archive:{}", checked.display()),
        "bzip2",
        "zstd",
    ]);
    ok(&out);
    let err = stderr(&out);
    assert!(
        err.contains("--verify-cache") && err.contains(lied_key.as_str().unwrap()),
        "the lying entry is named by its key:\n{err}"
    );
    assert_eq!(
        err.matches("--verify-cache:").count(),
        1,
        "only the lying layer is named:\n{err}"
    );
    assert!(
        std::fs::read(&checked).unwrap() == std::fs::read(&cold).unwrap(),
        "the image has the layers made from the packages"
    );
}

#[test]
fn one_cache_index_serves_every_platform() {
    let test = "one_cache_index_serves_every_platform";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let dir = tempdir();
    let root = dir.path().join("channels");
    common::copy_channel(&root.join("x64"));
    let arm = common::repo().join("tests/fixtures/channel-aarch64");
    for sub in ["linux-aarch64", "noarch"] {
        std::fs::create_dir_all(root.join("arm").join(sub)).unwrap();
        for e in std::fs::read_dir(arm.join(sub)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), root.join("arm").join(sub).join(e.file_name())).unwrap();
        }
    }
    let Some(server) = StaticServer::start(&root, &dir.path().join("access.log"), test) else {
        return;
    };
    let reg = &registry.addr;
    let layout = common::base::write_multi_arch_layout(&dir.path().join("base"), glibc_base());
    let base = format!("oci:{}:multi", layout.display());
    let lock = dir.path().join("input-lock.yml");
    let a = Machine::new(dir.path().join("a"));
    ok(&a.build_on(
        &base,
        &[
            "--platform",
            "linux-64,linux-aarch64",
            "-c",
            &server.url("x64/"),
            "-c",
            &server.url("arm/"),
            "--lock-output",
            lock.to_str().unwrap(),
            "-o",
            &format!("docker://{reg}/multi:a"),
            "bzip2",
        ],
    ));
    let fetched_by_a = server.archives();
    assert!(
        fetched_by_a.iter().any(|p| p.contains("/linux-aarch64/")),
        "{fetched_by_a:?}"
    );

    let b = Machine::new(dir.path().join("b"));
    let out = b.build_on(
        &base,
        &[
            "--platform",
            "linux-64,linux-aarch64",
            "-f",
            lock.to_str().unwrap(),
            "--cache-from",
            &format!("{reg}/multi:a"),
            "-o",
            &format!("docker://{reg}/multi:b"),
        ],
    );
    ok(&out);
    assert_eq!(
        server.archives(),
        fetched_by_a,
        "machine B downloaded packages:\n{}",
        stderr(&out)
    );
    assert_eq!(
        digest_of(&format!("{reg}/multi:b"), test),
        digest_of(&format!("{reg}/multi:a"), test),
        "the same index, both platforms from the cache"
    );
}
