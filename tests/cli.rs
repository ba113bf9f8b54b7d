//! The command line's surface: closed pipes, help, aliases, completions, output levels.

mod common;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use common::{build, conda_docker, tempdir};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// An image built once for the tests that read one: `(its docker-archive, a second one)`.
fn images() -> &'static (PathBuf, PathBuf) {
    static IMAGES: OnceLock<(PathBuf, PathBuf)> = OnceLock::new();
    IMAGES.get_or_init(|| {
        let dir = tempdir().keep();
        common::tools::remove_at_exit(&dir);
        let (a, b) = (dir.join("a.tar"), dir.join("b.tar"));
        build(a.to_str().unwrap(), "a:1", &[], &["bzip2"]);
        build(b.to_str().unwrap(), "b:1", &[], &["bzip2", "zstd"]);
        (a, b)
    })
}

fn archive(path: &Path) -> String {
    format!("docker-archive:{}", path.display())
}

/// Every command that prints on stdout, with its arguments (the `--json` ones first).
fn printing_commands(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let (a, b) = images();
    let (a, b) = (archive(a), archive(b));
    let channel = common::channel().display().to_string();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let out = |name: &str| dir.join(name).display().to_string();
    vec![
        ("cache info --json", s(&["cache", "info", "--json"])),
        (
            "build --dry-run --json",
            s(&[
                "build",
                "--dry-run",
                "--json",
                "-b",
                "scratch",
                "-c",
                &channel,
                "bzip2",
            ]),
        ),
        ("inspect --json", s(&["inspect", "--json", &a])),
        ("diff --json", s(&["diff", "--json", &a, &b])),
        ("sbom", s(&["sbom", &a])),
        (
            "build --json",
            s(&[
                "build",
                "--json",
                "-b",
                "scratch",
                "-c",
                &channel,
                "-o",
                &out("j.tar"),
                "bzip2",
            ]),
        ),
        (
            "lock --json",
            s(&["lock", "--json", &a, "-o", &out("lock.txt")]),
        ),
        ("cache info", s(&["cache", "info"])),
        (
            "build --dry-run",
            s(&[
                "build",
                "--dry-run",
                "-b",
                "scratch",
                "-c",
                &channel,
                "bzip2",
            ]),
        ),
        ("inspect", s(&["inspect", &a])),
        ("diff", s(&["diff", &a, &b])),
        (
            "build",
            s(&[
                "build",
                "-b",
                "scratch",
                "-c",
                &channel,
                "-o",
                &out("built.tar"),
                "bzip2",
            ]),
        ),
        ("copy", s(&["copy", &a, &format!("oci:{}", out("copied"))])),
        ("--help", s(&["--help"])),
        ("build --help", s(&["build", "--help"])),
        ("--version", s(&["--version"])),
        ("completions bash", s(&["completions", "bash"])),
        ("man", s(&["man"])),
    ]
}

/// The command's status and stderr when the reader of its stdout is gone before it writes.
fn with_closed_stdout(args: &[String]) -> (Option<i32>, String) {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = conda_docker()
        .args(args)
        .stdout(Stdio::from(writer))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (out.status.code(), stderr(&out))
}

/// The command's status and stderr with its stdout piped into `head -c1`.
fn into_head(args: &[String]) -> (Option<i32>, String) {
    let mut child = conda_docker()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let head = Command::new("head")
        .arg("-c1")
        .stdin(child.stdout.take().unwrap())
        .stdout(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(head.stdout.len(), 1, "{args:?} printed nothing");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (child.wait().unwrap().code(), err)
}

#[test]
fn a_closed_stdout_ends_every_command_quietly() {
    let dir = tempdir();
    for (name, args) in printing_commands(dir.path()) {
        for (how, (code, err)) in [
            ("into head -c1", into_head(&args)),
            ("into a closed pipe", with_closed_stdout(&args)),
        ] {
            assert!(
                matches!(code, Some(0 | 141)),
                "`{name}` {how}: status {code:?}\n{err}"
            );
            assert!(!err.contains("panicked"), "`{name}` {how} panicked:\n{err}");
            assert!(!err.contains("error:"), "`{name}` {how} complained:\n{err}");
        }
    }
}

#[test]
fn a_closed_stdout_is_status_141_and_other_write_errors_are_errors() {
    let (code, err) = with_closed_stdout(&["cache".into(), "info".into(), "--json".into()]);
    assert_eq!(code, Some(141), "{err}");
    assert_eq!(err, "");
    let full = std::fs::File::options()
        .write(true)
        .open("/dev/full")
        .unwrap();
    let out = conda_docker()
        .args(["cache", "info", "--json"])
        .stdout(full)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("cannot write to stdout"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn ctrl_c_prints_one_line() {
    let (dir, caches) = (tempdir(), tempdir());
    for attempt in 0..5 {
        let cache = caches.path().join(attempt.to_string());
        let mut child = conda_docker()
            .env("CONDA_DOCKER_CACHE_DIR", &cache)
            .args(["build", "-b", "scratch", "-c"])
            .arg(common::channel())
            .arg("-o")
            .arg(dir.path().join("out.tar"))
            .args(["bzip2", "zstd", "openssl", "ncurses"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut lines =
            std::io::BufRead::lines(std::io::BufReader::new(child.stderr.take().unwrap()));
        let mut before = Vec::new();
        for line in lines.by_ref() {
            let line = line.unwrap();
            let solved = line.starts_with("solving:");
            before.push(line);
            if solved {
                common::run_ok(Command::new("kill").args(["-INT", &child.id().to_string()]));
                break;
            }
        }
        let after: Vec<String> = lines.map(Result::unwrap).collect();
        let status = child.wait().unwrap();
        if status.success() {
            let _ = std::fs::remove_file(dir.path().join("out.tar"));
            continue;
        }
        assert_eq!(status.code(), Some(130), "{before:?}\n{after:?}");
        // The stage it was in may still say it ended; then one line says why it stopped.
        let last = after.last().expect("nothing printed after Ctrl-C");
        assert_eq!(
            last, "cancelled by Ctrl-C; nothing was written",
            "{after:?}"
        );
        let said: Vec<&String> = after
            .iter()
            .filter(|l| !l.starts_with("fetching"))
            .collect();
        assert_eq!(said, [last], "more than one line after Ctrl-C: {after:?}");
        common::assert_no_output(dir.path());
        return;
    }
    panic!("every build finished before Ctrl-C reached it");
}

/// The `RepoTags` of a docker-archive.
fn repo_tags(path: &Path) -> Vec<String> {
    let files = common::archive::open(path).files;
    let manifest: serde_json::Value = serde_json::from_slice(&files["manifest.json"]).unwrap();
    manifest[0]["RepoTags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn dash_t_and_tag_name_the_image_as_dash_i_does() {
    let dir = tempdir();
    let built = dir.path().join("built.tar");
    build(
        built.to_str().unwrap(),
        "first:1",
        &["-t", "second:2", "--tag", "third:3"],
        &["bzip2"],
    );
    assert_eq!(repo_tags(&built), ["first:1", "second:2", "third:3"]);
    let copied = dir.path().join("copied.tar");
    common::run_ok(
        conda_docker()
            .arg("copy")
            .arg(archive(&built))
            .arg(&copied)
            .args(["-t", "fourth:4"]),
    );
    assert_eq!(repo_tags(&copied), ["fourth:4"]);
}

/// `logout` with `DOCKER_CONFIG=dir`: status, stderr.
fn logout(config: &Path, registry: &str, path: &std::ffi::OsStr) -> (bool, String) {
    let out = conda_docker()
        .env("DOCKER_CONFIG", config)
        .env("PATH", path)
        .args(["logout", registry])
        .output()
        .unwrap();
    (out.status.success(), stderr(&out))
}

#[test]
fn logout_removes_what_login_stored_and_nothing_else() {
    let dir = tempdir();
    let config = dir.path().join("docker");
    std::fs::create_dir(&config).unwrap();
    let file = config.join("config.json");
    // One login in config.json, one in a credential helper that logs what it is asked.
    std::fs::write(
        &file,
        r#"{"auths":{"localhost:5000":{"auth":"YTpi"},"https://index.docker.io/v1/":{},
            "other.example":{"auth":"YzpkCg=="}},"credHelpers":{"https://index.docker.io/v1/":"log"},
            "proxies":{"default":{}}}"#,
    )
    .unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let helper = bin.join("docker-credential-log");
    let log = dir.path().join("helper.log");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\nread server\necho \"$1 $server\" >> {}\n",
            log.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(
        std::iter::once(bin.clone())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();

    let (ok, err) = logout(&config, "localhost:5000", &path);
    assert!(
        ok && err.contains("Removed the login for localhost:5000"),
        "{err}"
    );
    let left: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(left["auths"].as_object().unwrap().len(), 2, "{left}");
    assert!(left["auths"].get("localhost:5000").is_none(), "{left}");
    assert_eq!(
        left["proxies"],
        serde_json::json!({"default": {}}),
        "{left}"
    );

    let (ok, err) = logout(&config, "localhost:5000", &path);
    assert!(
        ok && err.contains("Not logged in to localhost:5000"),
        "{err}"
    );

    // Docker Hub's login lives in the helper: erased there, its empty entry removed.
    let (ok, err) = logout(&config, "index.docker.io", &path);
    assert!(ok && err.contains("docker-credential-log"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "erase https://index.docker.io/v1/\n"
    );
    let left: serde_json::Value = serde_json::from_slice(&std::fs::read(&file).unwrap()).unwrap();
    assert_eq!(left["auths"].as_object().unwrap().len(), 1, "{left}");
    assert!(left["auths"].get("other.example").is_some(), "{left}");
}

#[test]
fn login_names_the_password_it_was_given_and_logout_undoes_it() {
    use common::tools::{PASSWORD, Registry, RegistryAuth, USER};
    let test = "login_names_the_password_it_was_given_and_logout_undoes_it";
    let Some(registry) = Registry::start(RegistryAuth::Htpasswd, test) else {
        return;
    };
    let dir = tempdir();
    let reg = registry.addr.clone();
    let login = |password: &str| {
        let mut child = conda_docker()
            .env("DOCKER_CONFIG", dir.path())
            .args(["login", &reg, "-u", USER, "--password-stdin"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(format!("{password}\n").as_bytes()).unwrap();
        drop(stdin);
        child.wait_with_output().unwrap()
    };
    let refused = login("wrong");
    let err = stderr(&refused);
    assert!(!refused.status.success(), "{err}");
    assert!(
        err.contains(&format!("`{USER}`"))
            && err.contains("--password-stdin")
            && !err.contains("--creds"),
        "{err}"
    );
    assert!(!dir.path().join("config.json").exists());
    let accepted = login(PASSWORD);
    assert!(accepted.status.success(), "{}", stderr(&accepted));
    let stored = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(stored.contains(&reg), "{stored}");
    let (ok, err) = logout(dir.path(), &reg, &std::env::var_os("PATH").unwrap());
    assert!(ok && err.contains("Removed"), "{err}");
    let stored = std::fs::read_to_string(dir.path().join("config.json")).unwrap();
    assert!(!stored.contains(&reg), "{stored}");
}

#[test]
fn completions_and_manual_pages_cover_every_command() {
    let commands = [
        "build",
        "inspect",
        "diff",
        "lock",
        "copy",
        "cache",
        "sbom",
        "provenance",
        "login",
        "logout",
    ];
    for (shell, says) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef conda-docker"),
        ("fish", "complete -c conda-docker"),
    ] {
        let script = common::run_ok(conda_docker().args(["completions", shell]));
        assert!(script.contains(says), "{shell}: {script}");
        for c in commands {
            assert!(script.contains(c), "{shell} does not complete `{c}`");
        }
    }
    let bash = common::run_ok(conda_docker().args(["completions", "bash"]));
    assert!(
        bash.contains("--output") && bash.contains("--tag"),
        "{bash}"
    );

    let page = common::run_ok(conda_docker().arg("man"));
    assert!(
        page.starts_with(".ie") || page.contains(".TH conda-docker 1"),
        "{page}"
    );
    let build_page = common::run_ok(conda_docker().args(["man", "build"]));
    assert!(
        build_page.contains(".TH conda-docker-build 1"),
        "{build_page}"
    );
    assert!(build_page.contains("\\-\\-output"), "{build_page}");
    if let Some(mut man) =
        common::tools::tool("man", "completions_and_manual_pages_cover_every_command")
    {
        let dir = tempdir();
        let written = dir.path().join("man1");
        common::run_ok(conda_docker().args(["man", "--dir"]).arg(&written));
        for c in commands {
            assert!(
                written.join(format!("conda-docker-{c}.1")).is_file(),
                "no page for {c}"
            );
        }
        assert!(!written.join("conda-docker-help.1").exists());
        let text = common::run_ok(
            man.env("MANWIDTH", "200")
                .arg("-l")
                .arg(written.join("conda-docker-build.1")),
        );
        assert!(
            text.contains("conda-docker-build - Build") && text.contains("--output"),
            "{text}"
        );
    }
    let out = conda_docker().args(["man", "nope"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("there are: build"),
        "{}",
        stderr(&out)
    );
}

fn help(args: &[&str]) -> String {
    common::run_ok(conda_docker().args(args).env("COLUMNS", "100"))
}

#[test]
fn build_help_starts_with_usage_and_examples_and_groups_its_options() {
    let text = help(&["build", "--help"]);
    let head: Vec<&str> = text.lines().take(30).collect();
    let usage = head
        .iter()
        .position(|l| l.starts_with("Usage: conda-docker build"))
        .unwrap_or_else(|| panic!("no Usage in the first 30 lines:\n{}", head.join("\n")));
    assert!(head[usage].contains("-o OUTPUT"), "{}", head[usage]);
    let examples = head[usage + 1..]
        .iter()
        .take_while(|l| l.starts_with("       conda-docker build "))
        .count();
    assert!(
        examples >= 2,
        "fewer than two examples in Usage:\n{}",
        head.join("\n")
    );
    let headings: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with(':') || l.starts_with("Registry"))
        .filter(|l| !l.starts_with(' '))
        .collect();
    assert_eq!(
        headings,
        [
            "Options:",
            "Input:",
            "Image:",
            "Output:",
            "Layers:",
            "Registry (for images in a registry):",
            "Cache:",
            "Examples:"
        ],
        "{text}"
    );
    // Each option under its heading.
    let under = |heading: &str, flag: &str| {
        let after = text.split(&format!("\n{heading}\n")).nth(1).unwrap();
        let section: Vec<&str> = after
            .lines()
            .take_while(|l| l.is_empty() || l.starts_with(' '))
            .collect();
        let section = section.join("\n");
        assert!(
            section.contains(flag),
            "{flag} is not under {heading}:\n{section}"
        );
    };
    for (heading, flag) in [
        ("Input:", "--channel"),
        ("Image:", "--image"),
        ("Output:", "--output"),
        ("Layers:", "--max-layers"),
        ("Registry (for images in a registry):", "--insecure"),
        ("Cache:", "--cache-dir"),
    ] {
        under(heading, flag);
    }
}

#[test]
fn every_command_has_examples_and_registry_flags_only_where_they_apply() {
    for command in [
        vec![],
        vec!["build"],
        vec!["login"],
        vec!["logout"],
        vec!["inspect"],
        vec!["diff"],
        vec!["lock"],
        vec!["copy"],
        vec!["cache"],
        vec!["cache", "info"],
        vec!["cache", "prune"],
        vec!["sbom"],
        vec!["provenance"],
        vec!["completions"],
        vec!["man"],
    ] {
        let mut args = command.clone();
        args.push("--help");
        let text = help(&args);
        let examples = text
            .split("\nExamples:\n")
            .nth(1)
            .unwrap_or_else(|| panic!("`{}` has no Examples:\n{text}", command.join(" ")));
        assert!(
            examples
                .lines()
                .any(|l| l.trim_start().starts_with("conda-docker ")),
            "`{}`'s examples run nothing:\n{examples}",
            command.join(" ")
        );
        let reads_images = ["inspect", "diff", "lock", "sbom", "provenance"]
            .contains(&command.first().copied().unwrap_or(""));
        let writes_images = ["build", "copy"].contains(&command.first().copied().unwrap_or(""));
        assert_eq!(
            text.contains("--creds <"),
            writes_images,
            "`{}`: --creds is for registries written to:\n{text}",
            command.join(" ")
        );
        assert_eq!(
            text.contains("--timeout <"),
            reads_images || writes_images || command == ["login"],
            "`{}`: registry timeouts where no registry is reached:\n{text}",
            command.join(" ")
        );
    }
}

/// `count/total` of every frame of the bar whose line starts with `label`, in a pty's bytes.
fn frames(raw: &str, label: &str) -> Vec<(u64, u64)> {
    raw.split(['\r', '\n'])
        .filter_map(|segment| segment.split(label).nth(1))
        .filter_map(|rest| {
            rest.split_whitespace().find_map(|word| {
                let (pos, len) = word.split_once('/')?;
                Some((pos.parse().ok()?, len.parse().ok()?))
            })
        })
        .collect()
}

#[test]
fn on_a_terminal_each_bar_reaches_its_total_and_nothing_is_printed_twice() {
    let test = "on_a_terminal_each_bar_reaches_its_total_and_nothing_is_printed_twice";
    let Some(script) = common::tools::require("script", test) else {
        return;
    };
    let (dir, cache) = (tempdir(), tempdir());
    let command = format!(
        "stty cols 100 rows 60; exec '{}' build -b scratch -c '{}' -o '{}' -o 'oci:{}' bzip2 zstd openssl ncurses",
        env!("CARGO_BIN_EXE_conda-docker"),
        common::channel().display(),
        dir.path().join("out.tar").display(),
        dir.path().join("layout").display(),
    );
    let out = Command::new(script)
        .args(["-qfec", &command, "/dev/null"])
        .env("CONDA_DOCKER_CACHE_DIR", cache.path())
        .env_remove("CONDA_DOCKER_LOG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{raw}\n{}", stderr(&out));

    // Each bar was drawn, and drawn at its total.
    for label in ["fetching ", "writing layers "] {
        let drawn = frames(&raw, label);
        assert!(!drawn.is_empty(), "no `{label}` bar:\n{raw:?}");
        let (pos, len) = drawn.iter().max().copied().unwrap();
        assert_eq!(
            pos, len,
            "the `{label}` bar stopped at {pos}/{len}:\n{drawn:?}"
        );
        assert!(drawn.iter().all(|&(p, l)| p <= l), "{drawn:?}");
    }

    // What stays on the screen: each line once, no bar left.
    let size = |n| std::num::NonZero::new(n).unwrap();
    let mut screen = vt100::Parser::new(size(60), size(100), 0);
    screen.process(&out.stdout);
    let text = screen.screen().contents();
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    for bar in ['█', '░', '⠁', '⠂', '⠄'] {
        assert!(!text.contains(bar), "a bar was left on the screen:\n{text}");
    }
    let mut seen = std::collections::BTreeSet::new();
    for line in &lines {
        // Both outputs print the same image ID on stdout.
        if !line.starts_with("sha256:") {
            assert!(seen.insert(*line), "printed twice: {line}\n{text}");
        }
    }
    let expected = [
        "reading base image: 0 layers",
        "solving: 13 packages",
        "fetching: 13 packages, 13 of 13 layers to make",
        "wrote docker-archive:",
        "wrote oci:",
    ];
    let mut at = 0;
    for want in expected {
        at += lines[at..]
            .iter()
            .position(|l| l.starts_with(want))
            .unwrap_or_else(|| panic!("no `{want}` after line {at}:\n{text}"));
    }
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("wrote oci:") && l.contains(" gzip,") && l.contains(" in ")),
        "the summary does not label its size or say how long it took:\n{text}"
    );
}

/// Stderr of a build piped, at `level` (`-q`, `-v`, ...; empty for the default).
fn build_at(level: &[&str], dir: &Path) -> String {
    let out = conda_docker()
        .args(level)
        .args(["build", "-b", "scratch", "-c"])
        .arg(common::channel())
        .arg("-o")
        .arg(format!("oci:{}", dir.join("layout").display()))
        .args(["bzip2", "zstd"])
        .env_remove("CONDA_DOCKER_LOG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    stderr(&out)
}

#[test]
fn each_verbosity_level_says_more_than_the_one_before() {
    let dir = tempdir();
    let quiet = build_at(&["-q"], dir.path());
    assert_eq!(quiet, "", "-q printed more than the result");

    let normal = build_at(&[], dir.path());
    let lines: Vec<&str> = normal.lines().collect();
    assert!(
        normal.contains("solving: ") && normal.contains("fetching: "),
        "{normal}"
    );
    assert_eq!(
        lines.iter().filter(|l| l.starts_with("fetching: ")).count(),
        1,
        "a stage ended twice:\n{normal}"
    );
    let summary = lines.iter().find(|l| l.starts_with("wrote oci:")).unwrap();
    assert!(
        summary.contains(" gzip, image ID sha256:") && summary.contains(" in "),
        "{summary}"
    );
    assert!(
        !normal.contains("layer 1:") && !normal.contains(" ms)"),
        "{normal}"
    );
    assert!(
        !normal.contains("DEBUG") && !normal.contains("resolvo"),
        "{normal}"
    );

    let verbose = build_at(&["-v"], dir.path());
    let timed = |stage: &str| {
        verbose
            .lines()
            .any(|l| l.starts_with(stage) && (l.ends_with(" ms)") || l.ends_with(" s)")))
    };
    assert!(
        timed("solving: ") && timed("reading base image: "),
        "{verbose}"
    );
    assert!(
        verbose.contains("from the contents cache") && verbose.contains("downloaded"),
        "{verbose}"
    );
    assert!(
        verbose.lines().any(|l| l.starts_with("writing: ")
            && l.contains(" layers, ")
            && l.contains(" gzip (")),
        "{verbose}"
    );
    assert!(!verbose.contains("layer 1:"), "{verbose}");

    let detail = build_at(&["-vv"], dir.path());
    let layers: Vec<&str> = detail
        .lines()
        .filter(|l| l.starts_with("  layer "))
        .collect();
    assert!(!layers.is_empty(), "{detail}");
    for (i, line) in layers.iter().enumerate() {
        assert!(
            line.starts_with(&format!("  layer {}: ", i + 1)),
            "out of order:\n{detail}"
        );
        assert!(
            line.contains(" gzip sha256:"),
            "no compression named: {line}"
        );
    }
    assert!(
        !detail
            .lines()
            .any(|l| l.contains("DEBUG") && !l.contains("conda_docker")),
        "other crates' debug at -vv:\n{detail}"
    );

    let debug = build_at(&["-vvv"], dir.path());
    assert!(
        debug.contains("DEBUG"),
        "-vvv shows no library debug:\n{debug}"
    );
}

#[test]
fn build_and_lock_print_their_result_as_json() {
    let dir = tempdir();
    let tar = dir.path().join("out.tar");
    let layout = dir.path().join("layout");
    let out = conda_docker()
        .args(["build", "--json", "-b", "scratch", "-c"])
        .arg(common::channel())
        .arg("-o")
        .arg(&tar)
        .arg("-o")
        .arg(format!("oci:{}", layout.display()))
        .arg("--lock-output")
        .arg(dir.path().join("lock.yml"))
        .args(["bzip2", "zstd"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let result: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    let outputs = result["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), 2, "{result}");
    let id = outputs[0]["id"].as_str().unwrap();
    assert!(id.starts_with("sha256:"), "{result}");
    assert_eq!(outputs[1]["id"], id, "one image, two outputs: {result}");
    assert_eq!(
        outputs[0]["output"],
        format!("docker-archive:{}", tar.display())
    );
    for (output, compression) in outputs.iter().zip(["none", "gzip"]) {
        let image = &output["images"][0];
        assert_eq!(image["platform"], "linux-64");
        assert_eq!(image["image_id"], id);
        let layers = image["layers"].as_array().unwrap();
        assert!(layers.len() > 2, "{output}");
        let sum: u64 = layers.iter().map(|l| l["size"].as_u64().unwrap()).sum();
        assert_eq!(image["size"], sum);
        for l in layers {
            assert_eq!(l["compression"], compression, "{l}");
            assert!(l["digest"].as_str().unwrap().starts_with("sha256:"));
            assert!(l["diff_id"].as_str().unwrap().starts_with("sha256:"));
        }
    }
    // The archive's config and layers are the ones named.
    let opened = common::archive::open(&tar);
    let diff_ids: Vec<String> = outputs[0]["images"][0]["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["diff_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(opened.diff_ids(), diff_ids);
    assert_eq!(
        result["lockfile"],
        dir.path().join("lock.yml").display().to_string()
    );

    let lock = common::run_ok(
        conda_docker()
            .args(["lock", "--json"])
            .arg(archive(&tar))
            .arg("-o")
            .arg(dir.path().join("again.txt")),
    );
    let lock: serde_json::Value = serde_json::from_str(&lock).unwrap();
    assert_eq!(lock["platform"], "linux-64");
    assert_eq!(lock["prefix"], "/opt/conda");
    let names: Vec<&str> = lock["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"bzip2") && names.contains(&"zstd"),
        "{lock}"
    );
    assert!(
        lock["packages"][0]["sha256"]
            .as_str()
            .is_some_and(|h| h.len() == 64),
        "{lock}"
    );
    assert!(dir.path().join("again.txt").is_file());
}

#[test]
fn a_push_says_its_layers_in_order_and_its_bar_reaches_the_total() {
    use common::tools::{Registry, RegistryAuth};
    let test = "a_push_says_its_layers_in_order_and_its_bar_reaches_the_total";
    let Some(registry) = Registry::start(RegistryAuth::None, test) else {
        return;
    };
    let Some(script) = common::tools::require("script", test) else {
        return;
    };
    let channel = common::channel();
    let push = |to: &str| {
        let out = conda_docker()
            .args(["-vv", "build", "-b", "scratch", "-c"])
            .arg(&channel)
            .args(["-o", &format!("docker://{}/{to}", registry.addr)])
            .args(["bzip2", "zstd", "openssl", "ncurses"])
            .env_remove("CONDA_DOCKER_LOG")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
        stderr(&out)
    };
    let err = push("app:1");
    let layers: Vec<&str> = err.lines().filter(|l| l.starts_with("  layer ")).collect();
    assert!(layers.len() > 3, "{err}");
    for (i, line) in layers.iter().enumerate() {
        assert!(
            line.starts_with(&format!("  layer {}: ", i + 1)),
            "out of order:\n{err}"
        );
        assert!(line.contains(" gzip sha256:"), "{line}");
    }
    let pushed = err
        .lines()
        .find(|l| l.starts_with("pushed "))
        .unwrap_or_else(|| panic!("{err}"));
    assert!(
        pushed.contains(" gzip, image ID ") && pushed.contains(" in "),
        "{pushed}"
    );

    let command = format!(
        "stty cols 100 rows 60; exec '{}' build -b scratch -c '{}' -o docker://{}/app:2 bzip2 zstd openssl ncurses",
        env!("CARGO_BIN_EXE_conda-docker"),
        channel.display(),
        registry.addr,
    );
    let out = Command::new(script)
        .args(["-qfec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let raw = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{raw}");
    let drawn = frames(&raw, "writing layers ");
    assert_eq!(
        drawn.iter().max().map(|&(p, l)| p == l),
        Some(true),
        "{drawn:?}\n{raw:?}"
    );
}
