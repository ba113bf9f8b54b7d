//! The same environment gives the same image digest on any machine: whatever the umask, the
//! user, the cache and temporary directories, where the channel is, whether it is read through
//! a mirror or from a lockfile; and no build-machine path or `file://` URL reaches an image.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::archive::open;
use common::{channel, conda_docker, copy_channel, glibc_base, run_ok, tempdir};

/// `conda-docker build` of bzip2 on the glibc base into a docker-archive at `out`, with its own
/// cache; `configure` adds arguments and environment.
fn build_in(cache: &Path, out: &Path, configure: impl FnOnce(&mut Command)) -> Output {
    let mut cmd = conda_docker();
    cmd.env("CONDA_DOCKER_CACHE_DIR", cache)
        .args(["build", "-b"])
        .arg(format!("docker-archive:{}", glibc_base().display()))
        .args(["-i", "repro:test", "-o"])
        .arg(out);
    configure(&mut cmd);
    cmd.output().expect("running conda-docker")
}

/// The image ID a successful build printed.
fn image_id(out: Output) -> String {
    assert!(
        out.status.success(),
        "conda-docker build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Every byte of every layer of the docker-archive at `path`, one blob per layer.
fn layer_bytes(path: &Path) -> Vec<(String, Vec<u8>)> {
    let archive = open(path);
    (0..archive.diff_ids().len())
        .map(|i| {
            let files = archive.layer(i);
            let mut all = Vec::new();
            for (name, data) in files {
                all.extend_from_slice(name.as_bytes());
                all.push(0);
                all.extend_from_slice(&data);
            }
            (archive.diff_ids()[i].clone(), all)
        })
        .collect()
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// A static file server for `dir` on a free loopback port, stopped when dropped.
struct Server {
    child: std::process::Child,
    port: u16,
}

impl Server {
    fn start(dir: &Path) -> Server {
        let port = common::tools::free_port();
        let python = common::tools::require("python3", "reproducible").expect("python3");
        let child = Command::new(python)
            .args(["-m", "http.server", "--bind", "127.0.0.1"])
            .arg(port.to_string())
            .current_dir(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("starting python3 -m http.server");
        let mut server = Server { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return server;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        let _ = server.child.kill();
        panic!("the http.server on port {port} did not start");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn one_environment_gives_one_digest_anywhere() {
    let dir = tempdir();
    let d = dir.path();
    // The channel as conda-forge's copy, at two paths under two directory names.
    let here = d.join("a/conda-forge");
    let there = d.join("b/elsewhere/copy-of-cf");
    copy_channel(&here);
    copy_channel(&there);
    let cache = d.join("cache-1");
    let out = |n: &str| d.join(n);
    let lock = d.join("lock.yml");
    let explicit = d.join("explicit.txt");

    // A local channel is conda-forge's only when named so (else it is its file:// URL).
    let named = |dir: &Path| format!("conda-forge={}", dir.display());
    let reference = image_id(build_in(&cache, &out("ref.tar"), |c| {
        c.arg("-c")
            .arg(&here)
            .arg("--channel-name")
            .arg(named(&here))
            .arg("--lock-output")
            .arg(&lock)
            .arg("bzip2");
    }));
    let mut variations: Vec<(&str, String)> = Vec::new();

    // umask 077, another cache and TMPDIR, another HOME and working directory.
    let tmp2 = d.join("tmp-2");
    std::fs::create_dir_all(&tmp2).unwrap();
    let cwd = d.join("cwd");
    std::fs::create_dir_all(&cwd).unwrap();
    let sh = "umask 077 && exec \"$@\"";
    let mut cmd = Command::new("sh");
    cmd.args(["-c", sh, "sh", env!("CARGO_BIN_EXE_conda-docker")])
        .env("CONDA_DOCKER_CACHE_DIR", d.join("cache-2"))
        .env("TMPDIR", &tmp2)
        .env("HOME", &cwd)
        .env_remove("SOURCE_DATE_EPOCH")
        .current_dir(&cwd)
        .args(["build", "-b"])
        .arg(format!("docker-archive:{}", glibc_base().display()))
        .args(["-i", "repro:test", "-o"])
        .arg(out("umask.tar"))
        .arg("-c")
        .arg(&here)
        .arg("--channel-name")
        .arg(named(&here))
        .arg("--lock-output")
        .arg(&explicit)
        .arg("bzip2");
    variations.push((
        "umask 077, other cache, TMPDIR, HOME and cwd",
        image_id(cmd.output().unwrap()),
    ));
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(out("umask.tar")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o644, "the output takes no umask");

    // Another user (nobody), when the tests run as root and can switch.
    let is_root = run_ok(Command::new("id").arg("-u")).trim() == "0";
    if let (true, Some(setpriv)) = (is_root, common::tools::which("setpriv")) {
        let shared = d.join("shared");
        copy_channel(&shared.join("conda-forge"));
        std::fs::copy(glibc_base(), shared.join("base.tar")).unwrap();
        run_ok(Command::new("chmod").args(["-R", "a+rwX"]).arg(&shared));
        run_ok(Command::new("chmod").arg("a+rx").arg(d));
        let mut cmd = Command::new(setpriv);
        cmd.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_conda-docker"))
            .env("CONDA_DOCKER_CACHE_DIR", shared.join("cache"))
            .env("HOME", &shared)
            .env("TMPDIR", &shared)
            .env_remove("SOURCE_DATE_EPOCH")
            .current_dir(&shared)
            .args(["build", "-b"])
            .arg(format!(
                "docker-archive:{}",
                shared.join("base.tar").display()
            ))
            .args(["-i", "repro:test", "-o", "nobody.tar", "-c"])
            .arg(shared.join("conda-forge"))
            .arg("--channel-name")
            .arg(named(&shared.join("conda-forge")))
            .arg("bzip2");
        variations.push(("another user", image_id(cmd.output().unwrap())));
    } else {
        // Only root can run the build as another user: the variation is a counted skip.
        common::tools::skip::<()>(
            "one_environment_gives_one_digest_anywhere",
            "not root or no setpriv: the other-user variation",
        );
    }

    // The channel at another path, under another directory name, named by --channel-name.
    variations.push((
        "the channel at another path",
        image_id(build_in(&d.join("cache-3"), &out("there.tar"), |c| {
            c.arg("-c")
                .arg(&there)
                .arg("--channel-name")
                .arg(named(&there))
                .arg("bzip2");
        })),
    ));

    // conda-forge, fetched through a mirror served over HTTP (named on the command line, and
    // in the config file).
    let server = Server::start(&d.join("b/elsewhere"));
    let mirror = format!("http://127.0.0.1:{}/copy-of-cf", server.port);
    variations.push((
        "conda-forge through --mirror",
        image_id(build_in(&d.join("cache-4"), &out("mirror.tar"), |c| {
            c.args(["-c", "conda-forge", "--mirror"])
                .arg(format!("conda-forge={mirror}"))
                .arg("bzip2");
        })),
    ));
    let config = d.join("config.toml");
    std::fs::write(
        &config,
        format!("[mirrors]\n\"https://conda.anaconda.org/conda-forge\" = [\"{mirror}\"]\n"),
    )
    .unwrap();
    variations.push((
        "conda-forge through the config file's mirror",
        image_id(build_in(&d.join("cache-5"), &out("config.tar"), |c| {
            c.env("CONDA_DOCKER_CONFIG", &config)
                .args(["-c", "conda-forge", "bzip2"]);
        })),
    ));
    drop(server);

    // From its lockfiles, with the channel as the place to fetch from.
    for (what, file) in [("conda-lock", &lock), ("explicit", &explicit)] {
        variations.push((
            what,
            image_id(build_in(
                &d.join("cache-6"),
                &out(&format!("{what}.tar")),
                |c| {
                    c.arg("-f")
                        .arg(file)
                        .arg("-c")
                        .arg(&there)
                        .arg("--channel-name")
                        .arg(named(&there));
                },
            )),
        ));
    }
    for (what, id) in &variations {
        assert_eq!(id, &reference, "{what} gave another image");
    }

    // The lockfiles name conda-forge, never the build machine.
    for file in [&lock, &explicit] {
        let text = std::fs::read_to_string(file).unwrap();
        assert!(
            text.contains("https://conda.anaconda.org/conda-forge/linux-64/bzip2-"),
            "{text}"
        );
        assert!(
            !text.contains("file://") && !text.contains(d.to_str().unwrap()),
            "{text}"
        );
    }

    // No layer holds a file:// URL or a path of the build machine.
    let home = std::env::var("HOME").unwrap_or_default();
    let needles: Vec<String> = vec![
        "file://".into(),
        d.display().to_string(),
        cache.display().to_string(),
        std::env::temp_dir().join("cdtest").display().to_string(),
        common::repo().display().to_string(),
        format!("{home}/.cache"),
    ];
    for (diff_id, bytes) in layer_bytes(&out("ref.tar")) {
        for needle in &needles {
            assert!(
                !contains(&bytes, needle),
                "layer {diff_id} holds `{needle}`"
            );
        }
    }
}

#[test]
fn a_lockfile_builds_with_no_channel_and_no_network() {
    let dir = tempdir();
    let d = dir.path();
    let ch = d.join("conda-forge");
    copy_channel(&ch);
    let cache = d.join("cache");
    let lock = d.join("conda-lock.yml");
    let first = image_id(build_in(&cache, &d.join("first.tar"), |c| {
        c.arg("-c")
            .arg(&ch)
            .arg("--lock-output")
            .arg(&lock)
            .args(["bzip2", "zstd"]);
    }));
    // The channel is gone, and any network use would fail.
    std::fs::remove_dir_all(&ch).unwrap();
    let offline = |c: &mut Command| {
        c.env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("HTTP_PROXY", "http://127.0.0.1:9")
            .env("https_proxy", "http://127.0.0.1:9")
            .env("http_proxy", "http://127.0.0.1:9")
            .env_remove("NO_PROXY")
            .env_remove("no_proxy");
    };
    let again = image_id(build_in(&cache, &d.join("again.tar"), |c| {
        offline(c);
        c.arg("-f").arg(&lock);
    }));
    assert_eq!(again, first, "the lockfile rebuilt another image");

    // A fresh layer cache but the same package cache: the layers are composed again, from the
    // packages the cache holds, still offline.
    let layers = cache.join("oci-v1");
    assert!(layers.is_dir());
    std::fs::remove_dir_all(&layers).unwrap();
    let composed = image_id(build_in(&cache, &d.join("composed.tar"), |c| {
        offline(c);
        c.arg("-f").arg(&lock);
    }));
    assert_eq!(
        composed, first,
        "composing from the package cache gave another image"
    );
}

#[test]
fn a_lockfile_whose_hash_was_changed_is_refused() {
    let dir = tempdir();
    let d = dir.path();
    let ch = d.join("conda-forge");
    copy_channel(&ch);
    let lock = d.join("explicit.txt");
    let first = image_id(build_in(&d.join("cache"), &d.join("first.tar"), |c| {
        c.arg("-c")
            .arg(&ch)
            .arg("--lock-output")
            .arg(&lock)
            .arg("bzip2");
    }));
    let text = std::fs::read_to_string(&lock).unwrap();
    let line = text
        .lines()
        .find(|l| l.contains("/bzip2-"))
        .expect("bzip2 in the lockfile")
        .to_string();
    let (url, hash) = line.split_once("#sha256:").unwrap();
    let forged = format!("{url}#sha256:{}", "0".repeat(hash.len()));
    std::fs::write(&lock, text.replace(&line, &forged)).unwrap();
    for cache in [d.join("cache"), d.join("fresh-cache")] {
        let out = d.join("forged.tar");
        let result = build_in(&cache, &out, |c| {
            c.arg("-f").arg(&lock).arg("-c").arg(&ch);
        });
        let err = String::from_utf8_lossy(&result.stderr);
        assert!(!result.status.success(), "a forged hash was accepted");
        assert!(err.contains("bzip2-1.0.8"), "{err}");
        assert!(err.to_lowercase().contains("hash"), "{err}");
        assert!(!out.exists(), "a refused build left its output");
    }
    // The refusal poisoned nothing: the true lockfile still builds from the cache, offline.
    std::fs::write(&lock, &text).unwrap();
    std::fs::remove_dir_all(&ch).unwrap();
    let again = image_id(build_in(&d.join("cache"), &d.join("again.tar"), |c| {
        c.env("HTTPS_PROXY", "http://127.0.0.1:9")
            .env("https_proxy", "http://127.0.0.1:9")
            .arg("-f")
            .arg(&lock);
    }));
    assert_eq!(again, first, "the cache changed after a refused build");
}

#[test]
fn files_conda_docker_writes_have_explicit_modes() {
    let dir = tempdir();
    let d = dir.path();
    let out = d.join("image.tar");
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "umask 077 && exec \"$@\"",
        "sh",
        env!("CARGO_BIN_EXE_conda-docker"),
    ])
    .env("CONDA_DOCKER_CACHE_DIR", d.join("cache"))
    .env_remove("SOURCE_DATE_EPOCH")
    .args(["build", "-b"])
    .arg(format!("docker-archive:{}", glibc_base().display()))
    .args(["-i", "repro:test", "-o"])
    .arg(&out)
    .arg("-c")
    .arg(channel())
    .arg("bzip2");
    image_id(cmd.output().unwrap());
    // Every blob on disk is 0644, whatever the umask.
    let mut blobs = Vec::new();
    collect_files(&d.join("cache/oci-v1"), &mut blobs);
    assert!(!blobs.is_empty());
    for blob in blobs {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&blob).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o644, "{}", blob.display());
    }
    // And the files conda-docker writes into the image are 0644 in it.
    let listing = run_ok(Command::new("tar").arg("-tvf").arg(&out));
    assert!(listing.contains("manifest.json"), "{listing}");
    let archive = open(&out);
    let top = archive.diff_ids().len() - 1;
    let layer_path = d.join("top.tar");
    std::fs::write(&layer_path, &archive.files[&archive.layers[top]]).unwrap();
    let entries = run_ok(Command::new("tar").arg("-tvf").arg(&layer_path));
    for name in ["conda-meta/history", "conda-meta/explicit.txt"] {
        let line = entries
            .lines()
            .find(|l| l.ends_with(name))
            .unwrap_or_else(|| panic!("{name} is not in the top layer:\n{entries}"));
        assert!(line.starts_with("-rw-r--r--"), "{line}");
    }
}

fn collect_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let t = e.file_type().unwrap();
        if t.is_dir() {
            collect_files(&e.path(), out);
        } else if t.is_file() {
            out.push(e.path());
        }
    }
}
