//! `--add SRC:DEST` and an environment file's `files:`: host files on top of the environment,
//! one layer each, deterministic, filtered by `.dockerignore`, symlinks never followed.

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use common::tools::Docker;
use common::{archive, channel, conda_docker, glibc_base, run_ok, tempdir};

/// One entry of a layer tar, as a reader sees it.
#[derive(Debug, PartialEq)]
struct Seen {
    kind: tar::EntryType,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
    link: Option<String>,
    bytes: Vec<u8>,
}

/// The entries of layer `i` of `image`, by path.
fn entries(image: &archive::Archive, i: usize) -> BTreeMap<String, Seen> {
    let bytes = &image.files[&image.layers[i]];
    let mut tar = tar::Archive::new(bytes.as_slice());
    let mut out = BTreeMap::new();
    for e in tar.entries().unwrap() {
        let mut e = e.unwrap();
        let h = e.header().clone();
        let link = e
            .link_name()
            .unwrap()
            .map(|l| l.to_string_lossy().into_owned());
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(
            e.path().unwrap().to_string_lossy().into_owned(),
            Seen {
                kind: h.entry_type(),
                mode: h.mode().unwrap(),
                uid: h.uid().unwrap(),
                gid: h.gid().unwrap(),
                mtime: h.mtime().unwrap(),
                link,
                bytes: data,
            },
        );
    }
    out
}

/// Makes a FIFO at `path`.
fn fifo(path: &Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        path,
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o644),
        0,
    )
    .unwrap();
}

/// A project: a script, a `.dockerignore` leaving out a secret file and a build directory,
/// and symlinks pointing outside it (at a secret file and at a FIFO, which a read would refuse).
fn project(root: &Path) -> std::path::PathBuf {
    let outside = root.join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("secret"), b"HOST-SECRET-OUTSIDE").unwrap();
    fifo(&outside.join("fifo"));
    let app = root.join("app");
    std::fs::create_dir_all(app.join("build")).unwrap();
    std::fs::create_dir_all(app.join("lib")).unwrap();
    std::fs::write(
        app.join("run.sh"),
        "#!/bin/sh\n. /srv/app/lib/greeting\necho \"$GREETING\" | bzip2 | bzip2 -d\n",
    )
    .unwrap();
    std::fs::write(app.join("lib/greeting"), "GREETING=hello-from-app\n").unwrap();
    std::fs::write(app.join("local.env"), "TOKEN=HOST-SECRET-IGNORED\n").unwrap();
    std::fs::write(app.join("build/huge.o"), b"object").unwrap();
    std::fs::write(app.join(".dockerignore"), "*.env\nbuild/\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(app.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), app.join("secret-link")).unwrap();
    std::os::unix::fs::symlink(outside.join("fifo"), app.join("fifo-link")).unwrap();
    app
}

/// Builds bzip2 on the glibc base into `out` with `extra` arguments, at a fixed epoch; the image.
fn image(out: &Path, cache: &Path, extra: &[&str]) -> archive::Archive {
    let base = format!("docker-archive:{}", glibc_base().display());
    let mut cmd = conda_docker();
    cmd.env("SOURCE_DATE_EPOCH", "1700000000")
        .args(["build", "-b", &base, "-c"])
        .arg(channel())
        .arg("--cache-dir")
        .arg(cache)
        .args(["-i", "app:1", "-o"])
        .arg(out)
        .args(extra)
        .arg("bzip2");
    run_ok(&mut cmd);
    archive::open(out)
}

/// The blobs the store holds.
fn stored_blobs(cache: &Path) -> usize {
    std::fs::read_dir(cache.join("oci-v1/blobs/sha256"))
        .map(|d| d.count())
        .unwrap_or(0)
}

#[test]
fn a_project_goes_on_top_in_a_layer_of_its_own_and_runs() {
    let test = "a_project_goes_on_top_in_a_layer_of_its_own_and_runs";
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let app = project(dir.path());
    let add = format!("{}:/srv/app", app.display());

    let plain = image(&dir.path().join("plain.tar"), &cache, &[]);
    let added = image(&dir.path().join("added.tar"), &cache, &["--add", &add]);
    let (plain_ids, added_ids) = (plain.diff_ids(), added.diff_ids());
    assert_eq!(
        added_ids[..added_ids.len() - 1],
        plain_ids[..],
        "the environment's layers are the same with and without --add"
    );
    let top = entries(&added, added.layers.len() - 1);
    let names: Vec<&str> = top.keys().map(String::as_str).collect();
    assert_eq!(
        names,
        [
            "srv/",
            "srv/app/",
            "srv/app/.dockerignore",
            "srv/app/fifo-link",
            "srv/app/lib/",
            "srv/app/lib/greeting",
            "srv/app/run.sh",
            "srv/app/secret-link",
        ],
        "sorted, the excluded file and directory left out"
    );
    let link = &top["srv/app/secret-link"];
    assert_eq!(link.kind, tar::EntryType::Symlink);
    assert_eq!(
        link.link.as_deref(),
        Some(dir.path().join("outside/secret").to_str().unwrap())
    );
    assert_eq!(top["srv/app/fifo-link"].kind, tar::EntryType::Symlink);
    let raw = &added.files[&added.layers[added.layers.len() - 1]];
    let raw = String::from_utf8_lossy(raw);
    assert!(
        !raw.contains("HOST-SECRET"),
        "no byte of a symlink's target or an excluded file is read"
    );
    let script = &top["srv/app/run.sh"];
    assert_eq!(
        (script.mode, script.uid, script.gid, script.mtime),
        (0o755, 0, 0, 1_700_000_000),
        "modes kept, owned by root, mtime from SOURCE_DATE_EPOCH"
    );
    assert_eq!(top["srv/app/lib/greeting"].mode, 0o644);
    let history = added.config["history"].as_array().unwrap();
    let last = history.last().unwrap()["created_by"].as_str().unwrap();
    assert_eq!(last, "conda-docker: --add files at /srv/app");
    assert!(
        !last.contains(&*dir.path().to_string_lossy()),
        "no host path in the history"
    );

    // Unchanged: the same layer, and nothing new in the store.
    let blobs = stored_blobs(&cache);
    let again = image(&dir.path().join("again.tar"), &cache, &["--add", &add]);
    assert_eq!(again.diff_ids(), added_ids);
    assert_eq!(
        stored_blobs(&cache),
        blobs,
        "an unchanged project writes no blob"
    );

    // One file edited: only the top layer changes.
    std::fs::write(app.join("lib/greeting"), "GREETING=edited\n").unwrap();
    let edited = image(&dir.path().join("edited.tar"), &cache, &["--add", &add]);
    let edited_ids = edited.diff_ids();
    assert_eq!(
        edited_ids[..edited_ids.len() - 1],
        added_ids[..added_ids.len() - 1]
    );
    assert_ne!(edited_ids.last(), added_ids.last());

    let Some(docker) = Docker::get(test) else {
        return;
    };
    run_ok(
        docker
            .cmd()
            .arg("load")
            .arg("-i")
            .arg(dir.path().join("added.tar")),
    );
    let got =
        run_ok(
            docker
                .cmd()
                .args(["run", "--rm", "--network=none", "app:1", "/srv/app/run.sh"]),
        );
    assert_eq!(got, "hello-from-app\n");
}

#[test]
fn an_environment_file_adds_files_beside_it_owned_by_the_user_with_chown() {
    let dir = tempdir();
    let app = project(dir.path());
    std::fs::write(app.join("config.toml"), "x = 1\n").unwrap();
    let env = dir.path().join("environment.yml");
    std::fs::write(
        &env,
        "name: app\ndependencies: [bzip2]\nconda-docker:\n  user: app:1234\n  chown: true\n  \
         files:\n    - app/lib:/srv/lib\n    - app/config.toml:/etc/app/\n",
    )
    .unwrap();
    let out = dir.path().join("out.tar");
    // Run from elsewhere: `files:` are found from the environment file.
    let mut cmd = conda_docker();
    cmd.current_dir("/")
        .args(["build", "-b"])
        .arg(format!("docker-archive:{}", glibc_base().display()))
        .arg("-c")
        .arg(channel())
        .arg("-f")
        .arg(&env)
        .arg("-o")
        .arg(&out);
    run_ok(&mut cmd);
    let image = archive::open(&out);
    let n = image.layers.len();
    let lib = entries(&image, n - 2);
    assert_eq!(
        (lib["srv/lib/greeting"].uid, lib["srv/lib/greeting"].gid),
        (1234, 1234)
    );
    assert_eq!(lib["srv/"].uid, 0, "the parents DEST needs stay root's");
    let config = entries(&image, n - 1);
    assert_eq!(config["etc/app/config.toml"].bytes, b"x = 1\n");
    assert_eq!(config["etc/app/config.toml"].uid, 1234);
}

#[test]
fn a_special_file_in_src_is_refused_naming_it() {
    let dir = tempdir();
    let app = dir.path().join("input-app");
    std::fs::create_dir_all(&app).unwrap();
    fifo(&app.join("pipe"));
    let add = format!("{}:/srv/app", app.display());
    let err = common::failing_build(dir.path(), |cmd| {
        cmd.args(["-b"])
            .arg(format!("docker-archive:{}", glibc_base().display()))
            .arg("-c")
            .arg(channel())
            .args(["--add", &add, "bzip2"]);
    });
    assert!(err.contains(&format!("--add {add}")), "{err}");
    assert!(
        err.contains("pipe` is not a file, directory or symlink"),
        "{err}"
    );
    for bad in ["app", "app:srv/app", "app:/srv/../etc"] {
        let err = common::failing_build(dir.path(), |cmd| {
            cmd.args(["--add", bad, "bzip2"]);
        });
        assert!(err.contains("--add"), "{bad}: {err}");
    }
    let err = common::failing_build(dir.path(), |cmd| {
        cmd.args(["-b"])
            .arg(format!("docker-archive:{}", glibc_base().display()))
            .arg("-c")
            .arg(channel())
            .args(["--add", &add, "--chown", "bzip2"]);
    });
    assert!(err.contains("--chown"), "{err}");
}
