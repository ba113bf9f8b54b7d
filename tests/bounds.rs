//! What the build writes stays within what its own readers take.

mod common;

use common::{channel, failing_build, glibc_base, tempdir};

#[test]
fn a_config_over_the_readers_cap_is_refused_at_build_time_naming_the_cap() {
    let dir = tempdir();
    let env = dir.path().join("input-environment.yml");
    // 65 MiB of variables: over the 64 MiB a config is read with.
    let big = "x".repeat(65 << 20);
    std::fs::write(
        &env,
        format!("name: big\ndependencies:\n  - bzip2\nvariables:\n  BIG: {big}\n"),
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
