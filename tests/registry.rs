//! Pulling bases from and pushing results to real registries (CNCF distribution): no auth,
//! htpasswd Basic auth, and bearer tokens from a token server; checked with skopeo, Docker, podman.

mod common;

use common::ok;

use std::path::Path;
use std::process::{Command, Output};

use common::tools::{Docker, PASSWORD, Podman, Registry, RegistryAuth, USER, tool};
use common::{channel, conda_docker, glibc_base, run_ok, tempdir};

/// Copies the glibc base into `registry` as `repo:tag` with skopeo.
fn push_base(test: &str, registry: &Registry, target: &str, creds: bool) -> Option<()> {
    let mut skopeo = tool("skopeo", test)?;
    skopeo.args(["copy", "--dest-tls-verify=false"]);
    if creds {
        skopeo.arg(format!("--dest-creds={USER}:{PASSWORD}"));
    }
    run_ok(
        skopeo
            .arg(format!("docker-archive:{}", glibc_base().display()))
            .arg(format!("docker://{}/{target}", registry.addr)),
    );
    Some(())
}

/// A registry with `auth` holding the glibc base as `base:1`, a scratch dir and a cache path in it.
fn with_base(
    test: &str,
    auth: RegistryAuth,
    creds: bool,
) -> Option<(Registry, tempfile::TempDir, std::path::PathBuf)> {
    let registry = Registry::start(auth, test)?;
    push_base(test, &registry, "base:1", creds)?;
    let dir = tempdir();
    let cache = dir.path().join("cache");
    Some((registry, dir, cache))
}

fn build(cache: &Path, base: &str, outputs: &[String], extra: &[&str]) -> Output {
    let mut cmd = conda_docker();
    cmd.env("CONDA_DOCKER_CACHE_DIR", cache)
        .args(["build", "-b", base, "-c"])
        .arg(channel());
    for o in outputs {
        cmd.args(["-o", o]);
    }
    cmd.args(extra).arg("bzip2").output().unwrap()
}

/// Builds bzip2 on `base` and pushes it to `target`, with extra environment variables.
fn push_as(cache: &Path, env: &[(&str, &std::ffi::OsStr)], base: &str, target: &str) -> Output {
    conda_docker()
        .env("CONDA_DOCKER_CACHE_DIR", cache)
        .envs(env.iter().copied())
        .args(["build", "-b", base, "-c"])
        .arg(channel())
        .args(["-o", target, "bzip2"])
        .output()
        .unwrap()
}

/// Pushes with the credentials in `config_dir` and checks skopeo sees the digest we printed.
fn push_and_compare(cache: &Path, config_dir: &Path, base: &str, target: &str) {
    let out = push_as(
        cache,
        &[("DOCKER_CONFIG", config_dir.as_os_str())],
        base,
        &format!("docker://{target}"),
    );
    let printed = ok(&out);
    assert_eq!(
        skopeo_digest(target, true),
        printed.split_once('@').unwrap().1
    );
}

fn failed(out: &Output) -> String {
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "should have failed:\n{err}");
    err
}

fn skopeo_digest(reference: &str, creds: bool) -> String {
    let mut cmd = Command::new("skopeo");
    cmd.args(["inspect", "--tls-verify=false"]);
    if creds {
        cmd.arg(format!("--creds={USER}:{PASSWORD}"));
    }
    let got = run_ok(cmd.arg(format!("docker://{reference}")));
    let v: serde_json::Value = serde_json::from_str(&got).unwrap();
    v["Digest"].as_str().unwrap().to_string()
}

#[test]
fn push_then_run_with_docker_and_podman_and_push_again_for_free() {
    let test = "push_then_run_with_docker_and_podman_and_push_again_for_free";
    let Some((registry, dir, cache)) = with_base(test, RegistryAuth::None, false) else {
        return;
    };
    let reg = &registry.addr;

    let printed = ok(build(
        &cache,
        &format!("{reg}/base:1"),
        &[format!("docker://{reg}/app:1")],
        &[],
    ));
    let (pinned, digest) = printed.split_once('@').expect("REF@DIGEST on stdout");
    assert_eq!(pinned, format!("{reg}/app:1"));
    assert_eq!(
        skopeo_digest(&format!("{reg}/app:1"), false),
        digest,
        "skopeo sees the printed digest"
    );

    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().args(["pull", &format!("{reg}/app:1")]));
        let got = run_ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            &format!("{reg}/app:1"),
            "sh",
            "-c",
            "echo hi | bzip2 | bzip2 -d",
        ]));
        assert_eq!(got, "hi\n");
    }
    if let Some(podman) = Podman::new(test) {
        let got = run_ok(podman.cmd().args([
            "run",
            "--rm",
            "--network=none",
            "--tls-verify=false",
            &format!("{reg}/app:1"),
            "sh",
            "-c",
            "echo hi | bzip2 | bzip2 -d",
        ]));
        assert_eq!(got, "hi\n");
    }

    // The same build again: every blob is already there, nothing is uploaded.
    let uploads = registry.requests("POST", "/blobs/uploads");
    let downloads = registry.requests("GET", "/blobs/sha256:");
    assert!(
        downloads >= 2,
        "the first build fetched the base's config and layer"
    );
    let out = build(
        &cache,
        &format!("{reg}/base:1"),
        &[format!("docker://{reg}/app:1")],
        &[],
    );
    assert_eq!(ok(&out), printed, "a rebuild gives the same digest");
    assert_eq!(
        registry.requests("GET", "/blobs/sha256:"),
        downloads,
        "the second build downloaded base blobs again"
    );
    assert_eq!(
        registry.requests("POST", "/blobs/uploads"),
        uploads,
        "a second push uploaded blobs"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("0 blobs uploaded"), "{stderr}");
    // Nor compressed again: the 7 layers conda-docker made find their gzip blobs by diff_id in
    // the blob cache (the base layer was pulled compressed and is pushed as it is).
    assert!(stderr.contains("7 layers not compressed again"), "{stderr}");

    // Another repository on the same registry: the base layer is mounted, not uploaded.
    let out = build(
        &cache,
        &format!("{reg}/base:1"),
        &[format!("docker://{reg}/team/other:2")],
        &[],
    );
    ok(&out);
    assert!(
        registry.requests("POST", "mount=") >= 1,
        "no mount request in the registry log"
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("1 mounted"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A docker-archive and a registry from one build.
    let tar = dir.path().join("both.tar");
    let out = build(
        &cache,
        &format!("{reg}/base:1"),
        &[tar.display().to_string(), format!("docker://{reg}/app:3")],
        &[],
    );
    ok(&out);
    assert!(tar.exists());
}

#[test]
fn a_base_index_resolves_to_the_build_platform() {
    let test = "a_base_index_resolves_to_the_build_platform";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let Some(mut skopeo) = tool("skopeo", test) else {
        return;
    };
    let dir = tempdir();
    let layout = common::base::write_multi_arch_layout(&dir.path().join("layout"), glibc_base());
    run_ok(
        skopeo
            .args(["copy", "--all", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:multi", layout.display()))
            .arg(format!("docker://{}/multi:1", registry.addr)),
    );
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{}/multi:1", registry.addr),
    ]));
    assert!(
        raw.contains("image.index"),
        "the registry holds an index: {raw}"
    );

    let cache = dir.path().join("cache");
    let out_tar = dir.path().join("from-index.tar");
    ok(build(
        &cache,
        &format!("{}/multi:1", registry.addr),
        &[out_tar.display().to_string()],
        &[],
    ));
    // The amd64 entry (the glibc base) was picked: its Cmd is in the config.
    let config = run_ok(Command::new("skopeo").args([
        "inspect",
        "--config",
        &format!("docker-archive:{}", out_tar.display()),
    ]));
    assert!(config.contains("org.example.base"), "{config}");

    let err = failed(&build(
        &cache,
        &format!("{}/multi:1", registry.addr),
        &[out_tar.display().to_string()],
        &["--platform", "linux-ppc64le"],
    ));
    assert!(
        err.contains("linux/ppc64le") && err.contains("linux/amd64") && err.contains("linux/arm64"),
        "{err}"
    );
}

#[test]
fn htpasswd_credentials_from_config_json_and_helpers() {
    let test = "htpasswd_credentials_from_config_json_and_helpers";
    let Some((registry, dir, cache)) = with_base(test, RegistryAuth::Htpasswd, true) else {
        return;
    };
    let reg = registry.addr.clone();
    let base = format!("{reg}/base:1");
    let empty_config = dir.path().join("empty");
    std::fs::create_dir(&empty_config).unwrap();

    // No credentials anywhere: a clear 401 that says where we looked.
    let out = push_as(
        &cache,
        &[("DOCKER_CONFIG", empty_config.as_os_str())],
        &base,
        &format!("docker://{reg}/app:1"),
    );
    let err = failed(&out);
    assert!(
        err.contains(&reg) && err.contains("401") && err.contains("config.json"),
        "{err}"
    );

    // Wrong password: refused, and nothing tagged.
    let out = build(
        &cache,
        &base,
        &[format!("docker://{reg}/app:bad")],
        &[
            "--base-creds",
            &format!("{USER}:{PASSWORD}"),
            "--creds",
            &format!("{USER}:wrong"),
            "-vv",
        ],
    );
    let err = failed(&out);
    assert!(err.contains("refused") && err.contains("--creds"), "{err}");
    assert!(
        !err.contains("wrong") && !err.contains(PASSWORD),
        "a password reached the output:\n{err}"
    );

    // An `auths` entry in config.json.
    let config_dir = dir.path().join("docker-config");
    std::fs::create_dir(&config_dir).unwrap();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    std::fs::write(
        config_dir.join("config.json"),
        format!(r#"{{"auths":{{"{reg}":{{"auth":"{auth}"}}}}}}"#),
    )
    .unwrap();
    push_and_compare(&cache, &config_dir, &base, &format!("{reg}/app:1"));

    // A credential helper named in credHelpers.
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-testhelper");
    std::fs::write(
        &helper,
        format!("#!/bin/sh\nread server\n[ \"$1\" = get ] && [ \"$server\" = \"{reg}\" ] && echo '{{\"Username\":\"{USER}\",\"Secret\":\"{PASSWORD}\"}}' && exit 0\necho 'credentials not found' >&2; exit 1\n"),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        format!(r#"{{"credHelpers":{{"{reg}":"testhelper"}}}}"#),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = push_as(
        &cache,
        &[
            ("DOCKER_CONFIG", config_dir.as_os_str()),
            ("PATH", path.as_ref()),
        ],
        &base,
        &format!("docker://{reg}/app:2"),
    );
    ok(&out);

    // A credsStore (the default helper for every registry), filled by `conda-docker login` and
    // read back by a build: the password goes to the helper, never into config.json.
    let store = dir.path().join("store.json");
    let helper = bin.join("docker-credential-filestore");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nstore={}\ncase \"$1\" in\n\
             store) cat > \"$store\" ;;\n\
             get) read server; grep -q \"\\\"ServerURL\\\":\\\"$server\\\"\" \"$store\" 2>/dev/null && cat \"$store\" && exit 0\n\
             echo 'credentials not found in native keychain'; exit 1 ;;\n\
             *) exit 1 ;;\nesac\n",
            store.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    std::fs::write(
        config_dir.join("config.json"),
        r#"{"credsStore":"filestore"}"#,
    )
    .unwrap();
    let env = [
        ("DOCKER_CONFIG", config_dir.as_os_str()),
        ("PATH", path.as_ref()),
    ];
    // Before login the helper knows nothing: the push is refused.
    let err = failed(&push_as(
        &cache,
        &env,
        &base,
        &format!("docker://{reg}/app:3"),
    ));
    assert!(err.contains("401") || err.contains("refused"), "{err}");
    let mut login = conda_docker();
    login
        .envs(env)
        .args(["login", &reg, "-u", USER, "--password-stdin"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    use std::io::Write as _;
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(format!("{PASSWORD}\n").as_bytes()).unwrap();
    drop(stdin);
    ok(child.wait_with_output().unwrap());
    let stored = std::fs::read_to_string(&store).unwrap();
    assert!(
        stored.contains(PASSWORD) && stored.contains(&reg),
        "{stored}"
    );
    let config = std::fs::read_to_string(config_dir.join("config.json")).unwrap();
    // As `docker login` leaves it: an empty entry for the registry, the secret with the helper.
    let config: serde_json::Value = serde_json::from_str(&config).unwrap();
    assert_eq!(config["auths"][&reg], serde_json::json!({}), "{config}");
    assert_eq!(config["credsStore"], "filestore", "{config}");
    ok(push_as(
        &cache,
        &env,
        &base,
        &format!("docker://{reg}/app:3"),
    ));
    // Nothing was tagged by the refused push.
    let tags = run_ok(Command::new("curl").args([
        "-s",
        "-u",
        &format!("{USER}:{PASSWORD}"),
        &format!("http://{reg}/v2/app/tags/list"),
    ]));
    assert!(tags.contains("\"1\"") && !tags.contains("bad"), "{tags}");
}

#[test]
fn token_auth_with_login_and_identity_tokens() {
    let test = "token_auth_with_login_and_identity_tokens";
    let Some((registry, dir, cache)) = with_base(test, RegistryAuth::Token, true) else {
        return;
    };
    let reg = registry.addr.clone();
    let base = format!("{reg}/base:1");
    let config_dir = dir.path().join("docker-config");

    // Anonymous tokens pull, but may not push.
    let out = push_as(
        &cache,
        &[("DOCKER_CONFIG", config_dir.as_os_str())],
        &base,
        &format!("docker://{reg}/app:1"),
    );
    let err = failed(&out);
    assert!(
        err.contains("refused access") && err.contains("conda-docker login"),
        "{err}"
    );

    // `conda-docker login` stores what `docker login` would; builds then push.
    let mut login = conda_docker();
    login
        .env("DOCKER_CONFIG", &config_dir)
        .args(["login", &reg, "-u", USER, "--password-stdin"])
        .stdin(std::process::Stdio::piped());
    let mut child = login.stderr(std::process::Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stored = std::fs::read_to_string(config_dir.join("config.json")).unwrap();
    assert!(
        stored.contains(&reg) && stored.contains("\"auth\""),
        "{stored}"
    );

    push_and_compare(&cache, &config_dir, &base, &format!("{reg}/app:1"));

    // An identity (refresh) token, as registries that use OAuth store it.
    std::fs::write(
        config_dir.join("config.json"),
        format!(r#"{{"auths":{{"{reg}":{{"identitytoken":"refresh-{USER}"}}}}}}"#),
    )
    .unwrap();
    let out = push_as(
        &cache,
        &[
            ("DOCKER_CONFIG", config_dir.as_os_str()),
            ("CONDA_DOCKER_LOG", "trace".as_ref()),
        ],
        &base,
        &format!("docker://{reg}/app:idtoken"),
    );
    ok(&out);
    // Even at trace level, neither the refresh token nor an access token reaches the output.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !stderr.contains(&format!("refresh-{USER}")),
        "the identity token was printed"
    );
    assert!(
        !stderr.contains("Bearer ey") && !stderr.contains("\"token\""),
        "a token was printed"
    );

    // A wrong password at login is refused and stores nothing new.
    let out = conda_docker()
        .env("DOCKER_CONFIG", &config_dir)
        .args(["login", &reg, "-u", USER, "-p", "wrong"])
        .output()
        .unwrap();
    let err = failed(&out);
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn missing_tags_and_tampered_blobs_are_errors() {
    let test = "missing_tags_and_tampered_blobs_are_errors";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let Some(()) = push_base(test, &registry, "base:1", false) else {
        return;
    };
    let dir = tempdir();
    let reg = &registry.addr;
    let out_tar = dir.path().join("x.tar");

    let err = failed(&build(
        &dir.path().join("c1"),
        &format!("{reg}/base:nope"),
        &[out_tar.display().to_string()],
        &[],
    ));
    assert!(err.contains("nope") && err.contains("it holds: 1"), "{err}");
    let err = failed(&build(
        &dir.path().join("c1"),
        &format!("{reg}/nothing-here:1"),
        &[out_tar.display().to_string()],
        &[],
    ));
    assert!(err.contains("nothing-here"), "{err}");

    // Corrupt the stored layer: the pull notices the digest does not match.
    let manifest = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reg}/base:1"),
    ]));
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let layer = manifest["layers"][0]["digest"].as_str().unwrap();
    let file = registry.blob_file(layer);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 100;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();
    let err = failed(&build(
        &dir.path().join("c2"),
        &format!("{reg}/base:1"),
        &[out_tar.display().to_string()],
        &[],
    ));
    assert!(err.contains("expected") && err.contains(layer), "{err}");
    assert!(!out_tar.exists());
}

#[test]
fn a_registry_that_dies_mid_push_leaves_no_tag() {
    let test = "a_registry_that_dies_mid_push_leaves_no_tag";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let dir = tempdir();
    // A base with a large incompressible layer, so the push takes long enough to interrupt.
    let big_base = dir.path().join("big-base.tar");
    common::base::write_big_base(&big_base, 96 << 20);
    let child = conda_docker()
        .env("CONDA_DOCKER_CACHE_DIR", dir.path().join("cache"))
        .args(["build", "-b"])
        .arg(format!("docker-archive:{}", big_base.display()))
        .arg("-c")
        .arg(channel())
        .args(["-o", &format!("docker://{}/big:1", registry.addr), "bzip2"])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while registry.requests("POST", "/blobs/uploads") == 0
        && registry.requests("HEAD", "/blobs/") == 0
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the push never started: {}",
            registry.log()
        );
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    registry.kill();
    let out = child.wait_with_output().unwrap();
    let err = failed(&out);
    assert!(
        err.contains(&registry.addr) && err.contains("cannot reach"),
        "{err}"
    );
    registry.restart();
    let tags = run_ok(
        Command::new("curl").args(["-s", &format!("http://{}/v2/big/tags/list", registry.addr)]),
    );
    assert!(
        !tags.contains("\"1\""),
        "a tag points at an incomplete image: {tags}"
    );
}

#[test]
fn a_digest_reference_builds_offline_once_pulled() {
    let test = "a_digest_reference_builds_offline_once_pulled";
    let Some((registry, dir, cache)) = with_base(test, RegistryAuth::None, false) else {
        return;
    };
    let digest = skopeo_digest(&format!("{}/base:1", registry.addr), false);
    let pinned = format!("{}/base@{digest}", registry.addr);
    let out_tar = dir.path().join("x.tar");
    let first = ok(build(
        &cache,
        &pinned,
        &[out_tar.display().to_string()],
        &[],
    ));
    let blob_requests = registry.requests("GET", "/blobs/");
    // With the registry gone, the pinned base still builds, from the blob cache alone.
    registry.kill();
    std::fs::remove_file(&out_tar).unwrap();
    let second = ok(build(
        &cache,
        &pinned,
        &[out_tar.display().to_string()],
        &[],
    ));
    assert_eq!(first, second);
    assert!(
        blob_requests >= 2,
        "the first build fetched the config and layer"
    );
}

#[test]
fn podman_auth_json_is_read() {
    let test = "podman_auth_json_is_read";
    let Some(registry) = Registry::start(RegistryAuth::Htpasswd, test) else {
        return;
    };
    let Some(()) = push_base(test, &registry, "base:1", true) else {
        return;
    };
    let dir = tempdir();
    use base64::Engine as _;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"));
    let auth_file = dir.path().join("auth.json");
    std::fs::write(
        &auth_file,
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, registry.addr),
    )
    .unwrap();
    let out = conda_docker()
        .env("CONDA_DOCKER_CACHE_DIR", dir.path().join("cache"))
        .env("DOCKER_CONFIG", dir.path().join("no-docker-config"))
        .env("REGISTRY_AUTH_FILE", &auth_file)
        .args(["build", "-b", &format!("{}/base:1", registry.addr), "-c"])
        .arg(channel())
        .args(["-o", &format!("docker://{}/app:1", registry.addr), "bzip2"])
        .output()
        .unwrap();
    ok(&out);
}

#[test]
fn tls_registries_are_verified_against_certs_d() {
    let test = "tls_registries_are_verified_against_certs_d";
    let Some((registry, dir, cache)) = with_base(test, RegistryAuth::Tls, false) else {
        return;
    };
    let reg = &registry.addr;
    let base = format!("{reg}/base:1");

    // A certificate from an unknown CA is refused (no falling back to plain HTTP), with where
    // its CA should go named (not --insecure, kept for plain-HTTP servers), and nothing is
    // written.
    let out_tar = dir.path().join("x.tar");
    let err = failed(&build(&cache, &base, &[out_tar.display().to_string()], &[]));
    assert!(
        err.contains("not trusted")
            && err.contains(&format!("/etc/docker/certs.d/{reg}/ca.crt"))
            && err.contains("--cert-dir")
            && !err.contains("--insecure"),
        "{err}"
    );
    assert!(
        !err.contains("rustls"),
        "log noise beside the error:\n{err}"
    );
    assert!(!out_tar.exists());

    // With the CA in a certs.d directory: pulled and pushed over verified TLS, and skopeo,
    // trusting the same CA, sees the digest we printed.
    let certs = registry.certs_d();
    let printed = ok(build(
        &cache,
        &base,
        &[format!("docker://{reg}/app:1")],
        &["--cert-dir", certs.to_str().unwrap()],
    ));
    let inspected = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--cert-dir"])
            .arg(certs.join(reg))
            .arg(format!("docker://{reg}/app:1")),
    );
    let inspected: serde_json::Value = serde_json::from_str(&inspected).unwrap();
    assert_eq!(
        Some(inspected["Digest"].as_str().unwrap()),
        printed.split_once('@').map(|(_, d)| d)
    );

    // --insecure accepts the certificate unverified, as Docker's insecure registries do.
    ok(build(
        &cache,
        &base,
        &[format!("docker://{reg}/app:2")],
        &["--insecure"],
    ));
}

#[test]
fn a_plain_http_registry_off_loopback_needs_insecure() {
    let test = "a_plain_http_registry_off_loopback_needs_insecure";
    let Some((registry, dir, cache)) = with_base(test, RegistryAuth::None, false) else {
        return;
    };
    // On Linux, 0.0.0.0 reaches the local listener, but it is not a loopback name, so it gets
    // TLS only: the plain-HTTP server is named as such, with the flag that allows it.
    let port = registry.addr.rsplit_once(':').unwrap().1;
    let base = format!("0.0.0.0:{port}/base:1");
    let out_tar = dir.path().join("x.tar");
    let err = failed(&build(&cache, &base, &[out_tar.display().to_string()], &[]));
    assert!(
        err.contains("plain HTTP") && err.contains("--insecure"),
        "{err}"
    );
    assert!(!out_tar.exists());
    ok(build(
        &cache,
        &base,
        &[out_tar.display().to_string()],
        &["--insecure"],
    ));
    assert!(out_tar.exists());
}

#[test]
fn several_platforms_make_one_multi_platform_image() {
    let test = "several_platforms_make_one_multi_platform_image";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let dir = tempdir();
    let reg = &registry.addr;
    // A base with amd64 and arm64 entries, and a channel for each platform.
    let layout = common::base::write_multi_arch_layout(&dir.path().join("base"), glibc_base());
    let out_layout = dir.path().join("out");
    let out = conda_docker()
        .args(["build", "--platform", "linux-64,linux-aarch64", "-b"])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg("-c")
        .arg(channel())
        .arg("-c")
        .arg(common::repo().join("tests/fixtures/channel-aarch64"))
        .args(["-o", &format!("docker://{reg}/multi:1"), "-o"])
        .arg(format!("oci:{}:v1", out_layout.display()))
        .arg("--lock-output")
        .arg(dir.path().join("conda-lock.yml"))
        .arg("bzip2")
        .output()
        .unwrap();
    let printed = ok(&out);
    let mut lines = printed.lines();
    let pushed = lines.next().unwrap();
    let in_layout = lines.next().unwrap();
    let (_, digest) = pushed.split_once('@').expect("REF@DIGEST");
    assert_eq!(
        digest, in_layout,
        "the same index in the registry and the layout"
    );

    // The conda-lock file holds both platforms and rebuilds the same index.
    let relocked = dir.path().join("relocked");
    let again = ok(conda_docker()
        .args(["build", "--platform", "linux-64,linux-aarch64", "-b"])
        .arg(format!("oci:{}:multi", layout.display()))
        .arg("-f")
        .arg(dir.path().join("conda-lock.yml"))
        .arg("-o")
        .arg(format!("oci:{}:v1", relocked.display()))
        .output()
        .unwrap());
    assert_eq!(again, in_layout);

    // The tag names an OCI index with one entry per platform, each the right architecture.
    let raw = run_ok(Command::new("skopeo").args([
        "inspect",
        "--raw",
        "--tls-verify=false",
        &format!("docker://{reg}/multi:1"),
    ]));
    let index: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(
        index["mediaType"],
        "application/vnd.oci.image.index.v1+json"
    );
    let platforms: Vec<String> = index["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["platform"]["architecture"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(platforms, ["amd64", "arm64"]);
    use sha2::Digest as _;
    assert_eq!(
        digest,
        format!(
            "sha256:{}",
            hex::encode(sha2::Sha256::digest(raw.trim_end().as_bytes()))
        )
    );
    for (arch, want) in [("amd64", "amd64"), ("arm64", "arm64")] {
        let got = run_ok(Command::new("skopeo").args([
            "inspect",
            "--tls-verify=false",
            "--override-arch",
            arch,
            &format!("docker://{reg}/multi:1"),
        ]));
        let got: serde_json::Value = serde_json::from_str(&got).unwrap();
        assert_eq!(got["Architecture"], want);
    }
    if let Some(mut validate) = tool("oci-image-tool", test) {
        // oci-image-tool's `--ref` filter skips the entry after each one it drops
        // (image/descriptor.go findDescriptor), so it cannot pick `v1` beside the two platforms'
        // referrer indexes: it validates the same build without them.
        let plain = dir.path().join("plain");
        ok(conda_docker()
            .args([
                "build",
                "--no-sbom",
                "--platform",
                "linux-64,linux-aarch64",
                "-b",
            ])
            .arg(format!("oci:{}:multi", layout.display()))
            .arg("-c")
            .arg(channel())
            .arg("-c")
            .arg(common::repo().join("tests/fixtures/channel-aarch64"))
            .arg("-o")
            .arg(format!("oci:{}:v1", plain.display()))
            .arg("bzip2")
            .output()
            .unwrap());
        run_ok(
            validate
                .args(["validate", "--type", "image", "--ref", "name=v1"])
                .arg(&plain),
        );
    }

    // Docker on this amd64 machine pulls the amd64 entry and runs it.
    if let Some(docker) = Docker::get(test) {
        run_ok(docker.cmd().args(["pull", &format!("{reg}/multi:1")]));
        let got = run_ok(docker.cmd().args([
            "run",
            "--rm",
            "--network=none",
            &format!("{reg}/multi:1"),
            "sh",
            "-c",
            "echo hi | bzip2 | bzip2 -d",
        ]));
        assert_eq!(got, "hi\n");
    }

    // An archive output cannot hold two platforms: refused before any work, nothing written.
    let tar = dir.path().join("multi.tar");
    let err = failed(
        &conda_docker()
            .args([
                "build",
                "--platform",
                "linux-64,linux-aarch64",
                "-b",
                "scratch",
            ])
            .arg("-o")
            .arg(&tar)
            .arg("bzip2")
            .output()
            .unwrap(),
    );
    assert!(
        err.contains("one platform") && err.contains("oci:DIR"),
        "{err}"
    );
    assert!(!tar.exists());
}
