//! `cache verify`: every entry of the store checked, as `git fsck` checks a repository's objects
//! and `nix store verify` a store's paths. A blob, a manifest, a package archive or a wheel must
//! hash to its name;
//! a layer key, a diff_id's entry and the JSON entries of the other buckets must parse (one
//! whose blob is damaged is sound: without the blob it is a miss); and nothing may be a symlink
//! or anything but a regular file.
//! With `repair`, each damaged entry is removed (a symlink itself, never what it points to), so
//! the next build makes or fetches it again.

use std::path::{Path, PathBuf};

use super::blobs::KeyedLayer;
use super::{ARCHIVES, BLOBS, CONTENTS, INSTALLED_WHEELS, Store, WHEELS};
use crate::beneath::{Dir, Kind};
use crate::image::{Digest, WrittenLayer};

/// An entry of the store found damaged.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Damaged {
    /// Its file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub reason: String,
    /// True when it was removed.
    pub removed: bool,
}

/// What [`Store::verify`] found.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct Verified {
    /// How many entries were checked.
    pub entries: u64,
    /// The damaged ones.
    pub damaged: Vec<Damaged>,
}

impl Store {
    /// Checks every entry of every bucket; with `repair`, removes the damaged ones.
    pub fn verify(&self, repair: bool) -> std::io::Result<Verified> {
        let mut verified = Verified::default();
        for bucket in [BLOBS, CONTENTS, ARCHIVES, WHEELS, INSTALLED_WHEELS] {
            let dir = self.root().join(bucket);
            let root = match Dir::open(&dir) {
                Ok(root) => root,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for rel in files(&dir, "")? {
                verified.entries += 1;
                if let Err(reason) = check(bucket, &root, &rel) {
                    let path = dir.join(&rel);
                    let removed = repair && std::fs::remove_file(&path).is_ok();
                    verified.damaged.push(Damaged {
                        path,
                        reason,
                        removed,
                    });
                }
            }
        }
        Ok(verified)
    }
}

/// Every entry below `dir`, relative to the bucket (`blobs/sha256/<hex>`), not following
/// symlinks; the temporaries of running or killed builds are left out.
fn files(dir: &Path, rel: &str) -> std::io::Result<Vec<String>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir.join(rel))? {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if crate::atomic::is_temp(&name) {
            continue;
        }
        let rel = if rel.is_empty() {
            name
        } else {
            format!("{rel}/{name}")
        };
        if entry.file_type()?.is_dir() {
            found.extend(files(dir, &rel)?);
        } else {
            found.push(rel);
        }
    }
    Ok(found)
}

/// Why the entry `rel` of `bucket` is damaged, if it is.
fn check(bucket: &str, root: &Dir, rel: &str) -> Result<(), String> {
    let stat = root.stat(rel).map_err(|e| format!("cannot read it: {e}"))?;
    if stat.kind != Kind::File {
        return Err("it is not a regular file".into());
    }
    let name = rel.rsplit('/').next().unwrap_or(rel);
    match (bucket, rel.split('/').next()) {
        (BLOBS, Some("blobs" | "manifests")) => hashes_to(root, rel, name),
        (BLOBS, Some("layer-keys")) => parse::<KeyedLayer>(root, rel).map(drop),
        (BLOBS, Some("diff-ids")) => parse::<WrittenLayer>(root, rel).map(drop),
        // A kept cache record is checked against its key when a build reads it.
        (BLOBS, Some("records")) => Ok(()),
        (WHEELS, _) => hashes_to(root, rel, name.strip_suffix(".whl").unwrap_or(name)),
        (ARCHIVES, _) => match name.strip_prefix("sha256-") {
            Some(rest) => hashes_to(root, rel, rest.split('.').next().unwrap_or(rest)),
            // Named by md5 (a record without sha256): regular, which is all a name says.
            None => Ok(()),
        },
        _ => parse::<serde::de::IgnoredAny>(root, rel).map(drop),
    }
}

/// The file `rel` hashes to `hex`, its name.
fn hashes_to(root: &Dir, rel: &str, hex: &str) -> Result<(), String> {
    let expected: Digest = format!("sha256:{hex}")
        .parse()
        .map_err(|_| "its name is not a sha256 digest".to_string())?;
    let actual = super::blobs::hash_file(root, rel).map_err(|e| format!("cannot read it: {e}"))?;
    if actual == expected {
        Ok(())
    } else {
        Err("its bytes do not match its name".into())
    }
}

/// The JSON entry `rel`.
fn parse<T: serde::de::DeserializeOwned>(root: &Dir, rel: &str) -> Result<T, String> {
    let file = root
        .open_file(rel)
        .map_err(|e| format!("cannot read it: {e}"))?;
    serde_json::from_reader(std::io::BufReader::new(file))
        .map_err(|e| format!("it is not a valid entry: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn damage_is_found_and_repaired() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path());
        let blobs = store.blobs();
        let key = Digest::of(b"key");
        let layer = blobs
            .put_layer(Some(&key), |w| w.write_all(&[1u8; 500]))
            .unwrap();
        let other = blobs.put_layer(None, |w| w.write_all(b"other")).unwrap();
        assert!(store.verify(false).unwrap().damaged.is_empty());
        let flipped = blobs.blob_path(&layer.diff_id);
        std::fs::write(&flipped, [2u8; 500]).unwrap();
        let linked = blobs.blob_path(&other.diff_id);
        std::fs::remove_file(&linked).unwrap();
        std::os::unix::fs::symlink("/etc/hostname", &linked).unwrap();
        std::fs::create_dir_all(store.contents_dir()).unwrap();
        std::fs::write(store.contents_dir().join("sha256-x.json"), b"{\"a\":").unwrap();
        std::fs::create_dir_all(store.archives_dir()).unwrap();
        let archive = format!("sha256-{}.conda", Digest::of(b"archive").hex());
        std::fs::write(store.archives_dir().join(&archive), b"another archive").unwrap();
        let found = store.verify(false).unwrap();
        assert_eq!(found.entries, 5);
        let reasons: Vec<&str> = found.damaged.iter().map(|d| d.reason.as_str()).collect();
        assert_eq!(found.damaged.len(), 4, "{reasons:?}");
        assert!(found.damaged.iter().all(|d| !d.removed));
        let repaired = store.verify(true).unwrap();
        assert!(repaired.damaged.iter().all(|d| d.removed));
        assert!(!linked.exists() && std::fs::symlink_metadata(&linked).is_err());
        assert!(
            std::path::Path::new("/etc/hostname").exists(),
            "never the target"
        );
        let after = store.verify(false).unwrap();
        assert!(after.damaged.is_empty(), "{:?}", after.damaged);
        assert_eq!(
            after.entries, 1,
            "the layer key alone, its blob gone: a miss"
        );
    }
}
