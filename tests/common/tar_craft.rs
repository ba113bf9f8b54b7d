//! Layer tars written byte by byte, as a hostile tool could write them (PAX records, GNU long
//! names, links), and docker-archives that put such layers on top of a base.

use std::path::Path;

use super::archive;

/// One 512-byte ustar header: `kind`, `name` and `link` stored verbatim, `size` bytes of data.
pub fn header(kind: u8, name: &str, link: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_ustar();
    h.as_mut_bytes()[..name.len()].copy_from_slice(name.as_bytes());
    h.as_mut_bytes()[157..157 + link.len()].copy_from_slice(link.as_bytes());
    h.set_size(size);
    h.set_mode(if kind == b'5' { 0o755 } else { 0o644 });
    h.set_mtime(0);
    h.as_mut_bytes()[156] = kind;
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// Appends an entry to `tar`: its header, then `data` padded to a block.
pub fn entry(tar: &mut Vec<u8>, kind: u8, name: &str, link: &str, data: &[u8]) {
    tar.extend(header(kind, name, link, data.len() as u64));
    tar.extend_from_slice(data);
    tar.resize(tar.len().div_ceil(512) * 512, 0);
}

/// One PAX record, `LEN key=value\n`.
pub fn record(key: &str, value: &str) -> String {
    let body = format!(" {key}={value}\n");
    let mut len = body.len() + 1;
    while len.to_string().len() + body.len() != len {
        len = len.to_string().len() + body.len();
    }
    format!("{len}{body}")
}

/// Appends a PAX `x` header holding `records` for the next entry.
pub fn pax(tar: &mut Vec<u8>, records: &[(&str, &str)]) {
    let data: String = records.iter().map(|(k, v)| record(k, v)).collect();
    entry(tar, b'x', "PaxHeaders/entry", "", data.as_bytes());
}

/// `tar` with the end-of-archive blocks.
pub fn finish(mut tar: Vec<u8>) -> Vec<u8> {
    tar.extend([0u8; 1024]);
    tar
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    archive::sha256(bytes)
}

/// Writes the docker-archive `out`: the image of the docker-archive `base` with `layers` on
/// top, each its stored bytes (a tar, or a gzip of one) and the diff_id of its tar.
pub fn with_layers(base: &Path, out: &Path, layers: &[(Vec<u8>, String)]) {
    let base = archive::open(base);
    let mut config = base.config.clone();
    let mut names = base.layers.clone();
    let mut files: Vec<(String, Vec<u8>)> = names
        .iter()
        .map(|n| (n.clone(), base.files[n].clone()))
        .collect();
    for (bytes, diff_id) in layers {
        let name = format!(
            "blobs/sha256/{}",
            digest(bytes).trim_start_matches("sha256:")
        );
        config["rootfs"]["diff_ids"]
            .as_array_mut()
            .unwrap()
            .push(diff_id.clone().into());
        if let Some(history) = config["history"].as_array_mut() {
            history.push(serde_json::json!({"created_by": "a crafted layer"}));
        }
        names.push(name.clone());
        files.push((name, bytes.clone()));
    }
    let config = config.to_string().into_bytes();
    let config_name = format!(
        "blobs/sha256/{}",
        digest(&config).trim_start_matches("sha256:")
    );
    let manifest =
        serde_json::json!([{"Config": config_name, "RepoTags": ["crafted:1"], "Layers": names}]);
    files.push((config_name, config));
    files.push(("manifest.json".into(), manifest.to_string().into_bytes()));
    let mut builder = tar::Builder::new(std::fs::File::create(out).unwrap());
    for (name, bytes) in files {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        h.set_cksum();
        builder
            .append_data(&mut h, &name, bytes.as_slice())
            .unwrap();
    }
    builder.finish().unwrap();
}
