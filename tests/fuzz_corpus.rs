//! Every file of the fuzz corpus (`fuzz/corpus/TARGET/`) replayed through the fuzz target's entry
//! point in `conda_docker::fuzzing`, on the stable toolchain with no extra build: the real seed
//! files and every finding added there stay regression tests of each CI run. `scripts/fuzz`
//! runs the fuzzers themselves (cargo-fuzz, nightly).

use std::path::Path;
use std::time::Duration;

/// A fuzz target's entry point.
type Entry = fn(&[u8]);

/// Each fuzz target and the entry point it calls.
const TARGETS: &[(&str, Entry)] = &[
    ("docker_archive", conda_docker::fuzzing::docker_archive),
    ("docker_manifest", conda_docker::fuzzing::docker_manifest),
    ("env_file", conda_docker::fuzzing::env_file),
    ("layer_tar", conda_docker::fuzzing::layer_tar),
    ("lockfile", conda_docker::fuzzing::lockfile),
    ("oci_archive", conda_docker::fuzzing::oci_archive),
    ("oci_json", conda_docker::fuzzing::oci_json),
    ("reference", conda_docker::fuzzing::reference),
];

/// How long one corpus file may take before the replay counts as hung: generous, since this is
/// a debug build on a shared machine (speed belongs in `scripts/bench`).
const HANG: Duration = Duration::from_secs(120);

fn fuzz_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz"))
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn every_fuzz_target_is_replayed() {
    let targets: Vec<String> = names(&fuzz_dir().join("fuzz_targets"))
        .into_iter()
        .filter_map(|n| n.strip_suffix(".rs").map(str::to_string))
        .collect();
    let replayed: Vec<String> = TARGETS.iter().map(|(t, _)| t.to_string()).collect();
    assert_eq!(targets, replayed, "a fuzz target this test does not know");
    assert_eq!(names(&fuzz_dir().join("corpus")), replayed);
}

#[test]
fn the_fuzz_corpus_replays_without_a_crash_or_a_hang() {
    let mut replayed = 0;
    for (target, entry) in TARGETS {
        let dir = fuzz_dir().join("corpus").join(target);
        let files = names(&dir);
        assert!(!files.is_empty(), "no seeds in {}", dir.display());
        for name in files {
            let path = dir.join(&name);
            let data = std::fs::read(&path).unwrap();
            // A watchdog: the replay runs on its own thread, and one not done after HANG fails
            // the test as a hang.
            let (done, outcome) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let _ = done.send(std::panic::catch_unwind(|| entry(&data)).is_ok());
            });
            match outcome.recv_timeout(HANG) {
                Ok(ok) => assert!(ok, "{target}: {} crashed", path.display()),
                Err(_) => panic!(
                    "{target}: {} hung (not done after {HANG:?})",
                    path.display()
                ),
            }
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} corpus files");
}
