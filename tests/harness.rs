//! The test harness itself: a test whose real tool is missing never passes silently. With
//! `CI=true` it fails, naming itself and the tool; elsewhere `.ci/run`'s closing line counts it
//! as skipped, not passed.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::tools::{SKIP_LOG, require};
use common::{repo, run_ok, tempdir};

/// The tools the suite drives that answer `--version` without a daemon.
const TOOLS: [&str; 4] = ["skopeo", "umoci", "oci-image-tool", "docker-registry"];

#[test]
fn the_real_tools_answer() {
    let test = "the_real_tools_answer";
    for name in TOOLS {
        let Some(path) = require(name, test) else {
            return;
        };
        let out = run_ok(Command::new(path).arg("--version"));
        // Each names itself and its version number.
        let versioned =
            out.contains(name) && out.split(['.', ' ', '+']).any(|w| w.parse::<u32>().is_ok());
        assert!(versioned, "{name} --version: {out}");
    }
}

/// Runs [`the_real_tools_answer`] alone in this test binary, on a PATH without any tool, with
/// `CI` as given (or unset) and the skip file at `skips`.
fn without_tools(ci: Option<&str>, dir: &Path, skips: &Path) -> Output {
    let mut cmd = Command::new(std::env::current_exe().expect("the test binary"));
    cmd.args(["--exact", "the_real_tools_answer", "--test-threads=1"])
        .env("PATH", dir.join("empty-bin"))
        .env(SKIP_LOG, skips)
        .env_remove("CI");
    if let Some(ci) = ci {
        cmd.env("CI", ci);
    }
    std::fs::create_dir_all(dir.join("empty-bin")).unwrap();
    cmd.output().expect("running the test binary")
}

#[test]
fn under_ci_a_missing_tool_fails_the_test_naming_it() {
    let dir = tempdir();
    let skips = dir.path().join("skips");
    let out = without_tools(Some("true"), dir.path(), &skips);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "it passed:\n{stdout}");
    assert!(
        stdout.contains("test the_real_tools_answer ... FAILED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("the_real_tools_answer: `skopeo` is not on PATH"),
        "the failure names the test and the tool:\n{stdout}"
    );
    assert!(!skips.exists(), "a failure is not a skip");
}

#[test]
fn elsewhere_a_missing_tool_is_a_counted_skip() {
    let dir = tempdir();
    let skips = dir.path().join("skips");
    let out = without_tools(None, dir.path(), &skips);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    let recorded = std::fs::read_to_string(&skips).expect("the skip was recorded");
    assert_eq!(
        recorded,
        "harness: SKIPPED the_real_tools_answer: `skopeo` is not on PATH \
         (run .ci/run to install it)\n"
    );
    // The closing line of .ci/run, over what cargo would have printed of this binary.
    let exe = std::env::current_exe().unwrap();
    let log = dir.path().join("log");
    std::fs::write(
        &log,
        format!(
            "     Running tests/harness.rs ({})\n{stdout}",
            exe.display()
        ),
    )
    .unwrap();
    let closing = |skips: &Path| {
        run_ok(
            Command::new("bash")
                .arg(repo().join(".ci/run"))
                .arg("--closing-line")
                .arg(&log)
                .arg(skips),
        )
    };
    assert_eq!(closing(&skips), "0 passed, 0 failed, 1 skipped\n");
    // Without the skip recorded, the same output would be a pass.
    let none = dir.path().join("no-skips");
    std::fs::write(&none, "").unwrap();
    assert_eq!(closing(&none), "1 passed, 0 failed, 0 skipped\n");
}
