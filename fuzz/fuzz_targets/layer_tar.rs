#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| conda_docker::fuzzing::layer_tar(data));
