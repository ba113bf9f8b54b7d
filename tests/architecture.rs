//! The module boundaries hold: the image side and its transports know nothing of conda, the image
//! side imports none of its callers (transports, store, builder), the store (`src/store/`) knows
//! no builder or front end, the conda side knows nothing of tar headers or OCI, and the HTTP
//! retry policy (`src/http.rs`) knows neither (as go-containerregistry's depcheck test).

use std::path::Path;

fn sources(dir: &Path) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push((
                path.display().to_string(),
                std::fs::read_to_string(&path).unwrap(),
            ));
        }
    }
    out
}

/// Fails when a source file under `src/<dir>` (a directory, or one file) uses a `forbidden`
/// word outside comments.
fn assert_free_of(dir: &str, forbidden: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let files = if root.is_file() {
        vec![(
            root.display().to_string(),
            std::fs::read_to_string(&root).unwrap(),
        )]
    } else {
        sources(&root)
    };
    assert!(!files.is_empty(), "no sources under {}", root.display());
    for (path, text) in files {
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for word in forbidden {
                assert!(
                    !code.contains(word),
                    "{path}:{}: uses `{word}`: {line}",
                    n + 1
                );
            }
        }
    }
}

#[test]
fn the_image_side_knows_no_conda() {
    for dir in ["image", "transport"] {
        assert_free_of(dir, &["rattler", "crate::conda", "crate::builder"]);
    }
}

#[test]
fn the_image_side_climbs_to_no_caller() {
    // The blob store is reached through `image::resolve::BlobStore`, which the store implements.
    assert_free_of(
        "image",
        &[
            "crate::transport",
            "crate::build",
            "crate::store",
            "crate::cli",
        ],
    );
}

#[test]
fn the_store_knows_no_builder_or_front_end() {
    assert_free_of(
        "store",
        &[
            "crate::build",
            "crate::cli",
            "crate::transport",
            "crate::pypi",
        ],
    );
}

#[test]
fn the_store_and_transports_read_no_environment() {
    // Their settings come from an `Env` a front end read once (`RegistryOptions::from_env`,
    // `Store::at`).
    for dir in ["store", "transport"] {
        assert_free_of(dir, &["std::env", "env::var", "current_dir"]);
    }
}

#[test]
fn the_conda_side_knows_no_tar_or_oci() {
    assert_free_of(
        "conda",
        &[
            "tar::",
            "crate::image::layer",
            "crate::transport",
            "Manifest",
        ],
    );
}

#[test]
fn the_pypi_side_knows_no_tar_or_oci() {
    assert_free_of(
        "pypi",
        &[
            "tar::",
            "crate::image",
            "crate::transport",
            "crate::builder",
            "Manifest",
        ],
    );
}

#[test]
fn http_knows_no_conda_pypi_or_oci() {
    let forbidden = [
        "crate::conda",
        "crate::pypi",
        "crate::image",
        "crate::transport",
    ];
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut checked = 0;
    for entry in std::fs::read_dir(&src).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name == "http" || name == "http.rs" {
            assert_free_of(&name, &forbidden);
            checked += 1;
        }
    }
    assert!(checked > 0, "no src/http.rs nor src/http/");
}

/// Every source file under `dir` (recursively), with its path.
fn all_sources(dir: &str) -> Vec<(String, String)> {
    sources(&Path::new(env!("CARGO_MANIFEST_DIR")).join(dir))
}

/// The code of `text`, less comments and `#[cfg(test)]` modules (tests may set variables).
fn code_lines(text: &str) -> Vec<(usize, &str)> {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .enumerate()
        .map(|(n, l)| (n + 1, l.split("//").next().unwrap_or("")))
        .collect()
}

#[test]
fn the_environment_is_read_only_in_env() {
    let readers = [
        "env::var(",
        "env::var_os(",
        "env::vars(",
        "env::vars_os(",
        "current_dir(",
    ];
    let allowed = Path::new("src").join("env.rs");
    for (path, text) in all_sources("src") {
        if path.ends_with(allowed.to_str().unwrap()) {
            continue;
        }
        for (n, code) in code_lines(&text) {
            for word in readers {
                assert!(
                    !code.contains(word),
                    "{path}:{n}: reads the environment (`{word}`): take it from crate::env::Env"
                );
            }
        }
    }
}

#[test]
fn only_front_ends_read_the_process_environment() {
    for (path, text) in all_sources("src") {
        if path.contains("/src/cli/") || path.contains("/src/bin/") || path.ends_with("env.rs") {
            continue;
        }
        for (n, code) in code_lines(&text) {
            assert!(
                !code.contains("Env::from_process"),
                "{path}:{n}: the library reads the process environment: take an Env from the caller"
            );
        }
    }
}

#[test]
fn front_ends_fill_a_request_and_build_no_builder() {
    let mut checked = 0;
    for dir in ["src/cli", "python/src"] {
        for (path, text) in all_sources(dir) {
            checked += 1;
            for (n, code) in code_lines(&text) {
                // `tokio::runtime::Builder` and `std::thread::Builder` are other builders.
                let builds = code
                    .match_indices("Builder::new()")
                    .any(|(at, _)| !code[..at].ends_with("::"));
                assert!(
                    !builds && !code.contains(".with_max_layers("),
                    "{path}:{n}: a front end assembles a Builder: fill a BuildRequest instead"
                );
            }
        }
    }
    assert!(checked > 2, "no front-end sources found");
}

#[test]
fn the_builder_stages_fit_on_a_screen() {
    // Each stage of the pipeline is one file, and no function in it is over ~80 lines.
    for (path, text) in all_sources("src/builder") {
        let mut start: Option<(usize, String)> = None;
        for (n, line) in text.lines().enumerate() {
            let trimmed = line.trim_start();
            let indent = line.len() - trimmed.len();
            if indent <= 4
                && (trimmed.starts_with("pub fn ")
                    || trimmed.starts_with("fn ")
                    || trimmed.starts_with("pub(crate) fn ")
                    || trimmed.starts_with("async fn ")
                    || trimmed.starts_with("pub async fn ")
                    || trimmed.starts_with("pub(crate) async fn "))
            {
                start = Some((n, format!("{}{}", " ".repeat(indent), "}")));
            } else if let Some((at, close)) = &start
                && line == close
            {
                let len = n - at + 1;
                assert!(len <= 85, "{path}:{}: a function of {len} lines", at + 1);
                start = None;
            }
        }
    }
}
