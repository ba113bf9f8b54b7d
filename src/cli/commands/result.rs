//! The JSON `build --json` prints on stdout: what each output holds, for a script to read
//! instead of the summary lines.

use serde_json::{Value, json};

use crate::builder::LayerFrom;
use crate::transport::{Written, WrittenImage};

/// One layer as written: its digests, its size, how it is compressed, and where it came from
/// (`base`, `cache`, `remote` with the `cache` it was found in, or `built`).
fn layer(l: &crate::image::WrittenLayer, from: Option<&LayerFrom>) -> Value {
    let mut value = json!({
        "digest": l.digest,
        "diff_id": l.diff_id,
        "size": l.size,
        "compression": l.compression,
    });
    if let (Value::Object(map), Some(Ok(Value::Object(from)))) =
        (&mut value, from.map(serde_json::to_value))
    {
        map.extend(from);
    }
    value
}

/// One image of an output: its ID, its manifest and its layers, with where each came from.
fn image(written: &WrittenImage, platform: Option<&String>, sources: &[LayerFrom]) -> Value {
    json!({
        "platform": platform,
        "image_id": written.config_digest,
        "manifest_digest": written.manifest_digest,
        "size": written.layers.iter().map(|l| l.size).sum::<u64>(),
        "layers": written
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| layer(l, sources.get(i)))
            .collect::<Vec<_>>(),
    })
}

/// One output: where it went, what identifies it, its images, and what a push transferred.
fn output(written: &Written, platforms: &[String], sources: &[&[LayerFrom]]) -> Value {
    let push = written.push.as_ref().map(|p| {
        json!({
            "uploaded": p.uploaded,
            "already_there": p.skipped,
            "mounted": p.mounted,
            "compression_reused": p.compressed_reused,
        })
    });
    json!({
        "output": written.location.to_string(),
        "id": written.id(),
        "digest": written.digest(),
        "pushed": written.pushed(),
        "index": written.index,
        "images": written
            .images
            .iter()
            .enumerate()
            .map(|(i, one)| image(one, platforms.get(i), sources.get(i).copied().unwrap_or(&[])))
            .collect::<Vec<_>>(),
        "referrers": written.referrers,
        "push": push,
    })
}

/// The whole build: every output, the files written beside them, and how long it took.
pub(crate) fn build(
    written: &[Written],
    platforms: &[String],
    sources: &[&[LayerFrom]],
    lockfile: Option<&std::path::Path>,
    sbom_dir: Option<&std::path::Path>,
    seconds: f64,
) -> Value {
    json!({
        "outputs": written.iter().map(|w| output(w, platforms, sources)).collect::<Vec<_>>(),
        "lockfile": lockfile,
        "sbom_dir": sbom_dir,
        "seconds": seconds,
    })
}
