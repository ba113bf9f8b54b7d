//! The `conda-docker` command (also `conda docker ...` through conda's plugin dispatch); the
//! program itself is [`conda_docker::cli`].

fn main() -> std::process::ExitCode {
    conda_docker::cli::run(std::env::args_os())
}
