//! The module boundaries hold: the image side and its transports know nothing of conda, and the
//! conda side knows nothing of tar headers or OCI (as go-containerregistry's depcheck test).

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

fn assert_free_of(dir: &str, forbidden: &[&str]) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src").join(dir);
    let files = sources(&root);
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
        assert_free_of(dir, &["rattler", "crate::conda", "crate::build"]);
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
            "crate::build",
            "Manifest",
        ],
    );
}
