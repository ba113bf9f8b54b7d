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
