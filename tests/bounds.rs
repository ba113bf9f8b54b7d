//! What the build writes stays within what its own readers take.

mod common;

use std::time::Duration;

use common::tools::run_within;
use common::{assert_no_output, channel, conda_docker, failing_build, glibc_base, tempdir};

/// A refusal takes milliseconds; a build still parsing after this is a regression, killed and
/// failed rather than left to hang the run (speed itself is never asserted here).
const WATCHDOG: Duration = Duration::from_secs(30);

/// Builds from the input file `name` holding `text` in a fresh directory; it must fail.
/// Returns stderr.
fn refused_input(name: &str, text: &[u8]) -> String {
    let dir = tempdir();
    let path = dir.path().join(name);
    std::fs::write(&path, text).unwrap();
    let out = run_within(
        conda_docker()
            .args(["build", "--dry-run", "-c"])
            .arg(channel())
            .arg("-f")
            .arg(&path),
        WATCHDOG,
    );
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success(), "{name} should be refused:\n{stderr}");
    assert!(stderr.contains(name), "the file is named: {stderr}");
    assert!(
        stderr.contains("check that this is the file you meant"),
        "{stderr}"
    );
    assert_no_output(dir.path());
    stderr
}

#[test]
fn a_config_over_the_readers_cap_is_refused_at_build_time_naming_the_cap() {
    let dir = tempdir();
    let env = dir.path().join("input-environment.yml");
    // 70 MiB of variables, from a 14 MiB file (under the 16 MiB an input file may have)
    // through YAML aliases: over the 64 MiB a config is read with.
    let big = "x".repeat(14 << 20);
    std::fs::write(
        &env,
        format!(
            "name: big\ndependencies:\n  - bzip2\nvariables:\n  A: &big {big}\n  B: *big\n  \
             C: *big\n  D: *big\n  E: *big\n"
        ),
    )
    .unwrap();
    let stderr = failing_build(dir.path(), |cmd| {
        cmd.args(["-b", &format!("docker-archive:{}", glibc_base().display())])
            .arg("-c")
            .arg(channel())
            .arg("-f")
            .arg(&env);
    });
    assert!(
        stderr.contains("the image config would be") && stderr.contains("67108864 bytes"),
        "{stderr}"
    );
}

#[test]
fn a_deeply_nested_environment_file_or_lockfile_is_refused_before_it_is_parsed() {
    let deep = "[".repeat(200_000) + &"]".repeat(200_000);
    for (name, text) in [
        (
            "input-environment.yml",
            format!("name: deep\ndependencies:\n  - {deep}\n"),
        ),
        // rattler_lock's parser took over 90 s on this one.
        (
            "input-pixi.lock",
            format!("version: 6\nenvironments:\n  default: {deep}\npackages: []\n"),
        ),
        (
            "input-conda-lock.yml",
            format!("version: 1\nmetadata: {deep}\npackage: []\n"),
        ),
    ] {
        let stderr = refused_input(name, text.as_bytes());
        assert!(
            stderr.contains("more than 128 levels deep (at line"),
            "{stderr}"
        );
    }
    // Deep blocks, not flows: one more level per line.
    let blocks: String = (0..200)
        .map(|i| format!("{}k{i}:\n", " ".repeat(i)))
        .collect();
    let stderr = refused_input(
        "input-blocks.yml",
        format!("name: deep\nvariables:\n{blocks}").as_bytes(),
    );
    assert!(stderr.contains("more than 128 levels deep"), "{stderr}");
}

#[test]
fn an_input_file_over_16_mib_is_refused_naming_the_cap() {
    let mut text = b"name: big\ndependencies:\n".to_vec();
    text.extend(b"  - bzip2\n".repeat((17 << 20) / 10));
    let stderr = refused_input("input-environment.yml", &text);
    assert!(stderr.contains("larger than 16 MiB"), "{stderr}");
}
