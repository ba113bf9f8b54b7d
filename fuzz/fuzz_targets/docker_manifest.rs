#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| conda_docker::fuzzing::docker_manifest(data));
